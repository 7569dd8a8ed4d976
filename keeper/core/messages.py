"""The peer messages of the agree step (protocol step 4) and how their bodies are signed.

A leader sends one `BatchRequest` (`POST /v1/reports/batch`, the only signing route): the
header of a batch and its items (jobId, round, cursor, payload), with the leader's own
signature over the `Batch` of all of them. A member checks each item on its own and answers
with a `BatchResponse`: per item `True` (accepted) or a `Refusal` carrying the status and code
the item got, and one signature over the `Batch` of the accepted items, in order (null when it
accepted none). A single round is the batch of one.

Wire form is canonical JSON (sorted keys, no spaces, UTF-8). Decoding is strict: every field
must be present with exactly its type and range, nothing else may be there, and any failure is a
`MessageError`, never another exception, because bodies come from anyone on the network.

A body is authenticated by an EIP-191 signature of its exact bytes, carried in the
`X-Keeper-Signature` header; signing the bytes rather than a re-encoding means no two parsers
can disagree about what was signed. The signature proves who sent a body, not that it is fresh:
`sentBlock` lets the receiver refuse stale replays. A `BatchResponse` needs no body signature,
since the batch signature it carries already proves its signer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from eth_utils.crypto import keccak

from keeper.core.addresses import checksum_address
from keeper.core.report import (
    MAX_BATCH_ITEMS,
    SIGNATURE_LENGTH,
    Batch,
    BatchHeader,
    Report,
    recover_digest_signer,
    sign_digest,
)

SIGNATURE_HEADER = "X-Keeper-Signature"
BATCH_MESSAGE_TYPE = "batch"
# An upper bound on one item's JSON beyond its payload's hex digits (jobId and cursor up to 78
# digits each, round, keys and punctuation), and on the envelope's (header, sender, leader
# signature): `split_batch` sizes bodies with them.
BATCH_ITEM_OVERHEAD = 256
BATCH_ENVELOPE_OVERHEAD = 1024
MAX_CODE_CHARS = 64
MAX_REASON_CHARS = 300
MAX_PAYLOAD_BYTES = 4096
MAX_JSON_DEPTH = 16
UINT16_MAX = 2**16 - 1
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1

MALFORMED = "Malformed"
BAD_SIGNATURE = "BadSignature"

_REQUEST_KEYS = frozenset({"type", "sender", "sentBlock", "header", "items", "leaderSignature"})
_HEADER_KEYS = frozenset(
    {"epoch", "quorum", "checkBlock", "checkBlockHash", "executor", "deadline"}
)
_ITEM_KEYS = frozenset({"jobId", "round", "cursor", "payload"})
_RESPONSE_KEYS = frozenset({"signer", "overloaded", "results", "signature"})
_REFUSED_KEYS = frozenset({"status", "error", "reason"})
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_JSON_SPECIAL = re.compile(r'["\\\[\]{}]')


class MessageError(ValueError):
    """A peer message or its signature is malformed. `code` is the error name peers see."""

    code: str
    reason: str

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.reason))


@dataclass(frozen=True)
class BatchRequest:
    """A leader asking a member to sign `batch`: its items' payloads in item order, and the
    leader's own signature over the whole batch."""

    sender: str
    sent_block: int
    batch: Batch
    payloads: tuple[bytes, ...]
    leader_signature: bytes

    @classmethod
    def of(
        cls,
        sender: str,
        sent_block: int,
        batch: Batch,
        payloads: Sequence[bytes],
        leader_signature: bytes,
    ) -> BatchRequest:
        return cls(sender, sent_block, batch, tuple(payloads), leader_signature)

    @property
    def header(self) -> BatchHeader:
        return self.batch.header

    @property
    def items(self) -> tuple[Report, ...]:
        return self.batch.items


@dataclass(frozen=True)
class Refusal:
    """A member's refusal of one item: the status and error code the item got."""

    status: int
    code: str
    reason: str


@dataclass(frozen=True)
class BatchResponse:
    """A member's answers to a batch, in item order (`True`: accepted, or a refusal), and its
    signature over the batch of the accepted items (None when it accepted none)."""

    signer: str
    overloaded: bool
    results: tuple[bool | Refusal, ...]
    signature: bytes | None

    @property
    def accepted(self) -> tuple[int, ...]:
        """The indices of the accepted items: what `signature` covers, in order."""
        return tuple(i for i, r in enumerate(self.results) if r is True)


def split_batch(
    payload_sizes: Sequence[int], max_items: int = MAX_BATCH_ITEMS, max_body: int = 65536
) -> list[range]:
    """Consecutive index ranges of items (given their payload sizes in bytes) such that each
    range's batch has at most `max_items` items and its body at most `max_body` bytes."""
    ranges: list[range] = []
    start, size = 0, BATCH_ENVELOPE_OVERHEAD
    for i, payload in enumerate(payload_sizes):
        item = BATCH_ITEM_OVERHEAD + 2 * payload
        if i > start and (i - start >= max_items or size + item > max_body):
            ranges.append(range(start, i))
            start, size = i, BATCH_ENVELOPE_OVERHEAD
        size += item
    if start < len(payload_sizes):
        ranges.append(range(start, len(payload_sizes)))
    return ranges


# ---------------------------------------------------------------------------- encoding


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _header_to_json(header: BatchHeader) -> dict[str, Any]:
    return {
        "epoch": header.epoch,
        "quorum": header.quorum,
        "checkBlock": header.checkBlock,
        "checkBlockHash": _hex(header.checkBlockHash),
        "executor": checksum_address(header.executor),
        "deadline": header.deadline,
    }


def encode_batch(req: BatchRequest) -> bytes:
    """The canonical body of `POST /v1/reports/batch`."""
    return _canonical(
        {
            "type": BATCH_MESSAGE_TYPE,
            "sender": checksum_address(req.sender),
            "sentBlock": req.sent_block,
            "header": _header_to_json(req.header),
            "items": [
                {
                    "jobId": item.jobId,
                    "round": item.round,
                    "cursor": item.cursor,
                    "payload": _hex(payload),
                }
                for item, payload in zip(req.items, req.payloads, strict=True)
            ],
            "leaderSignature": _hex(req.leader_signature),
        }
    )


def _result_to_json(result: bool | Refusal) -> Any:
    if isinstance(result, Refusal):
        return {
            "status": result.status,
            "error": result.code[:MAX_CODE_CHARS],
            "reason": " ".join(result.reason.split())[:MAX_REASON_CHARS],
        }
    return True


def encode_batch_response(resp: BatchResponse) -> bytes:
    """The canonical body of a `POST /v1/reports/batch` answer."""
    return _canonical(
        {
            "signer": checksum_address(resp.signer),
            "overloaded": resp.overloaded,
            "results": [_result_to_json(r) for r in resp.results],
            "signature": None if resp.signature is None else _hex(resp.signature),
        }
    )


# ---------------------------------------------------------------------------- decoding


def _malformed(reason: str) -> NoReturn:
    raise MessageError(MALFORMED, reason)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers keeping different copies of a duplicated key would read different messages.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        _malformed("duplicate key in JSON object")
    return obj


def _reject_constant(name: str) -> NoReturn:
    _malformed(f"{name} is not valid JSON")


def _nesting_exceeds(text: str, limit: int) -> bool:
    """Whether JSON `text` nests arrays/objects deeper than `limit`, strings lexed exactly."""
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_SPECIAL.finditer(text):
        char, pos = match.group(), match.start()
        if in_string:
            if pos == escaped_at:
                continue
            if char == "\\":
                escaped_at = pos + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def load_untrusted_json(data: bytes, what: str = "body") -> Any:
    """Parse JSON from the network; any defect is a `MessageError`, never a crash.

    The nesting pre-check is not optional: py_ecc (imported with eth_account) raises the
    recursion limit to 100000, so the C JSON parser would overflow the C stack and kill the
    process on a body of nested brackets instead of raising RecursionError.
    """
    try:
        text = bytes(data).decode("utf-8")
    except (UnicodeDecodeError, TypeError) as exc:
        raise MessageError(MALFORMED, f"{what} is not UTF-8") from exc
    if _nesting_exceeds(text, MAX_JSON_DEPTH):
        _malformed(f"{what} nests deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except MessageError:
        raise
    except (ValueError, RecursionError) as exc:
        raise MessageError(MALFORMED, f"{what} is not valid JSON") from exc


def _load_object(body: bytes, what: str) -> dict[str, Any]:
    obj = load_untrusted_json(body, what)
    if not isinstance(obj, dict):
        _malformed(f"{what} is not a JSON object")
    return obj


def _check_keys(obj: dict[str, Any], expected: frozenset[str], where: str) -> None:
    missing = sorted(expected - obj.keys())
    if missing:
        _malformed(f"{where}missing field {missing[0]}")
    extra = sorted(obj.keys() - expected)
    if extra:
        _malformed(f"{where}unknown field {extra[0][:40]}")


def _uint(obj: dict[str, Any], key: str, maximum: int, where: str = "") -> int:
    value = obj[key]
    # bool is an int subclass, but `true` is not a number on the wire.
    if type(value) is not int or not 0 <= value <= maximum:
        bits = maximum.bit_length()
        _malformed(f"{where}{key} must be an integer in [0, 2**{bits})")
    return value


def _bytes(
    obj: dict[str, Any],
    key: str,
    *,
    length: int | None = None,
    max_length: int | None = None,
    where: str = "",
) -> bytes:
    value = obj[key]
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        _malformed(f"{where}{key} must be 0x-prefixed hex bytes")
    data = bytes.fromhex(value[2:])
    if length is not None and len(data) != length:
        _malformed(f"{where}{key} must be {length} bytes, got {len(data)}")
    if max_length is not None and len(data) > max_length:
        _malformed(f"{where}{key} must be at most {max_length} bytes, got {len(data)}")
    return data


def _address(obj: dict[str, Any], key: str, where: str = "") -> str:
    value = obj[key]
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        _malformed(f"{where}{key} must be a 0x-prefixed 20-byte address")
    checksummed = checksum_address(value)
    # Mixed case claims an EIP-55 checksum; a wrong one is a typo or a tampered address.
    if value[2:] != value[2:].lower() and value != checksummed:
        _malformed(f"{where}{key} has an invalid EIP-55 checksum")
    return checksummed


def _header_from_json(obj: Any) -> BatchHeader:
    where = "header."
    if not isinstance(obj, dict):
        _malformed("header must be a JSON object")
    _check_keys(obj, _HEADER_KEYS, where)
    return BatchHeader(
        epoch=_uint(obj, "epoch", UINT64_MAX, where),
        quorum=_uint(obj, "quorum", UINT16_MAX, where),
        checkBlock=_uint(obj, "checkBlock", UINT64_MAX, where),
        checkBlockHash=_bytes(obj, "checkBlockHash", length=32, where=where),
        executor=_address(obj, "executor", where),
        deadline=_uint(obj, "deadline", UINT64_MAX, where),
    )


def _item_from_json(obj: Any, index: int, header: BatchHeader) -> tuple[Report, bytes]:
    where = f"items[{index}]."
    if not isinstance(obj, dict):
        _malformed(f"items[{index}] must be a JSON object")
    _check_keys(obj, _ITEM_KEYS, where)
    payload = _bytes(obj, "payload", max_length=MAX_PAYLOAD_BYTES, where=where)
    report = Report(
        jobId=_uint(obj, "jobId", UINT256_MAX, where),
        round=_uint(obj, "round", UINT64_MAX, where),
        epoch=header.epoch,
        cursor=_uint(obj, "cursor", UINT256_MAX, where),
        checkBlock=header.checkBlock,
        checkBlockHash=header.checkBlockHash,
        payloadHash=keccak(payload),
        executor=header.executor,
        deadline=header.deadline,
        quorum=header.quorum,
    )
    return report, payload


def decode_batch(body: bytes) -> BatchRequest:
    """Parse a `POST /v1/reports/batch` body: a header and 1 to MAX_BATCH_ITEMS items; any
    defect raises `MessageError` (code Malformed). Whether the sender and the items are
    acceptable is the receiving node's decision, not the codec's."""
    obj = _load_object(body, "body")
    _check_keys(obj, _REQUEST_KEYS, "")
    if obj["type"] != BATCH_MESSAGE_TYPE:
        _malformed(f"type must be {BATCH_MESSAGE_TYPE!r}")
    header = _header_from_json(obj["header"])
    items = obj["items"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_ITEMS:
        _malformed(f"items must be a list of 1 to {MAX_BATCH_ITEMS} items")
    decoded = [_item_from_json(item, i, header) for i, item in enumerate(items)]
    return BatchRequest(
        sender=_address(obj, "sender"),
        sent_block=_uint(obj, "sentBlock", UINT64_MAX),
        batch=Batch(header, tuple(report for report, _ in decoded)),
        payloads=tuple(payload for _, payload in decoded),
        leader_signature=_bytes(obj, "leaderSignature", length=SIGNATURE_LENGTH),
    )


def _result_from_json(obj: Any, index: int) -> bool | Refusal:
    where = f"results[{index}]."
    if obj is True:
        return True
    if not isinstance(obj, dict):
        _malformed(f"results[{index}] must be true or a refusal object")
    _check_keys(obj, _REFUSED_KEYS, where)
    status, code, reason = obj["status"], obj["error"], obj["reason"]
    if type(status) is not int or not 400 <= status <= 599:
        _malformed(f"{where}status must be an HTTP error status")
    if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE_CHARS:
        _malformed(f"{where}error must be a name of at most {MAX_CODE_CHARS} characters")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        _malformed(f"{where}reason must be text of at most {MAX_REASON_CHARS} characters")
    return Refusal(status, code, reason)


def decode_batch_response(body: bytes, items: int) -> BatchResponse:
    """Parse a `POST /v1/reports/batch` answer to a batch of `items` items; any defect
    (a result count other than `items`, a signature without an accepted item or the other way
    round) raises `MessageError`."""
    obj = _load_object(body, "response")
    _check_keys(obj, _RESPONSE_KEYS, "")
    overloaded, results = obj["overloaded"], obj["results"]
    if not isinstance(overloaded, bool):
        _malformed("overloaded must be a boolean")
    if not isinstance(results, list) or len(results) != items:
        _malformed(f"results must be a list of {items} answers, one per item")
    decoded = tuple(_result_from_json(r, i) for i, r in enumerate(results))
    accepted = any(r is True for r in decoded)
    signature = (
        None if obj["signature"] is None else _bytes(obj, "signature", length=SIGNATURE_LENGTH)
    )
    if accepted and signature is None:
        _malformed("signature must sign the accepted items")
    if not accepted and signature is not None:
        _malformed("signature must be null when no item is accepted")
    return BatchResponse(
        signer=_address(obj, "signer"),
        overloaded=overloaded,
        results=decoded,
        signature=signature,
    )


# ---------------------------------------------------------------------------- body signatures


def compute_body_digest(body: bytes) -> bytes:
    """EIP-191 (`personal_sign`) digest of the exact body bytes."""
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(body)).encode() + bytes(body))


def sign_body(private_key: bytes | str, body: bytes) -> bytes:
    """The sender's 65-byte EIP-191 signature of the exact body bytes."""
    return sign_digest(private_key, compute_body_digest(body))


def format_signature_header(signature: bytes) -> str:
    """The `X-Keeper-Signature` header value for `signature`."""
    return _hex(signature)


def parse_signature_header(value: str) -> bytes:
    """The 65 signature bytes of an `X-Keeper-Signature` header; MessageError if malformed."""
    text = value.strip()
    if not _HEX.fullmatch(text) or len(text) != 2 + 2 * SIGNATURE_LENGTH:
        raise MessageError(BAD_SIGNATURE, f"{SIGNATURE_HEADER} must be 0x and 130 hex digits")
    return bytes.fromhex(text[2:])


def recover_body_signer(body: bytes, signature: bytes) -> str:
    """The checksum address that signed `body`; MessageError (BadSignature) if unusable.

    Only canonical signatures count (v 27/28, 0 < r < n, 0 < s <= n/2), like OpenZeppelin's
    ECDSA, so each signer has exactly one signature per body.
    """
    try:
        signer = recover_digest_signer(compute_body_digest(body), signature)
    except ValueError as exc:
        raise MessageError(BAD_SIGNATURE, f"signature is not canonical or invalid: {exc}") from exc
    return checksum_address(signer)
