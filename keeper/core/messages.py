"""The peer messages of the agree step (protocol step 4) and how their bodies are signed.

A leader sends a `ReportBatch` (every report it leads at one head, `POST /v1/reports/batch`) or a
single `ReportRequest` (`POST /v1/reports`); a member answers a batch item by item, with a
signature or a `Refusal` carrying the status and code the item alone would have got.

Wire form is canonical JSON (sorted keys, no spaces, UTF-8). Decoding is strict: every field
must be present with exactly its type and range, nothing else may be there, and any failure is a
`MessageError`, never another exception, because bodies come from anyone on the network.

A body is authenticated by an EIP-191 signature of its exact bytes, carried in the
`X-Keeper-Signature` header; signing the bytes rather than a re-encoding means no two parsers
can disagree about what was signed. The signature proves who sent a body, not that it is fresh:
`sentBlock` lets the receiver refuse stale replays. A `ReportResponse` needs no body signature,
since the report signature it carries already proves its signer.
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
    SIGNATURE_LENGTH,
    Report,
    recover_digest_signer,
    sign_digest,
)

SIGNATURE_HEADER = "X-Keeper-Signature"
REPORT_MESSAGE_TYPE = "report"
REPORT_BATCH_MESSAGE_TYPE = "reportBatch"
# Reports one batch may carry; a leader splits larger sets (and bodies over the size limit).
MAX_BATCH_ITEMS = 16
# An upper bound on one batch item's JSON beyond its payload's hex digits (report ~520
# characters, leader signature 132, keys and punctuation): `split_batch` sizes bodies with it.
BATCH_ITEM_OVERHEAD = 1024
MAX_CODE_CHARS = 64
MAX_REASON_CHARS = 300
MAX_PAYLOAD_BYTES = 4096
MAX_JSON_DEPTH = 16
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1

MALFORMED = "Malformed"
BAD_SIGNATURE = "BadSignature"

_REQUEST_KEYS = frozenset({"type", "sender", "sentBlock", "report", "payload", "leaderSignature"})
_REPORT_KEYS = frozenset(
    {
        "jobId",
        "round",
        "epoch",
        "cursor",
        "checkBlock",
        "checkBlockHash",
        "payloadHash",
        "executor",
        "deadline",
    }
)
_RESPONSE_KEYS = frozenset({"signer", "signature", "overloaded"})
_BATCH_KEYS = frozenset({"type", "sender", "sentBlock", "items"})
_ITEM_KEYS = frozenset({"report", "payload", "leaderSignature"})
_BATCH_RESPONSE_KEYS = frozenset({"signer", "overloaded", "results"})
_SIGNED_KEYS = frozenset({"signature"})
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
class ReportRequest:
    """A leader asking a member to sign `report`; `leader_signature` is the leader's own."""

    sender: str
    sent_block: int
    report: Report
    payload: bytes
    leader_signature: bytes


@dataclass(frozen=True)
class ReportResponse:
    """A member's answer: its report signature, and whether it is overloaded right now."""

    signer: str
    signature: bytes
    overloaded: bool


@dataclass(frozen=True)
class BatchItem:
    """One report of a batch, with its payload and the leader's own signature of it."""

    report: Report
    payload: bytes
    leader_signature: bytes


@dataclass(frozen=True)
class ReportBatch:
    """A leader asking a member to sign every report it leads at one head, in one request.

    Each item is checked and answered on its own, exactly as the `ReportRequest` of `request`
    would be; only the envelope (sender, sentBlock, body signature) is shared.
    """

    sender: str
    sent_block: int
    items: tuple[BatchItem, ...]

    def request(self, index: int) -> ReportRequest:
        item = self.items[index]
        return ReportRequest(
            self.sender, self.sent_block, item.report, item.payload, item.leader_signature
        )


@dataclass(frozen=True)
class Refusal:
    """A member's refusal of one item of a batch: the status and error code it would have
    answered the item alone with."""

    status: int
    code: str
    reason: str


@dataclass(frozen=True)
class BatchResponse:
    """A member's answers to a batch, in item order: its report signature, or a refusal."""

    signer: str
    overloaded: bool
    results: tuple[bytes | Refusal, ...]


def split_batch(
    payload_sizes: Sequence[int], max_items: int = MAX_BATCH_ITEMS, max_body: int = 65536
) -> list[range]:
    """Consecutive index ranges of items (given their payload sizes in bytes) such that each
    range's batch has at most `max_items` items and its body at most `max_body` bytes."""
    ranges: list[range] = []
    start, size = 0, BATCH_ITEM_OVERHEAD  # the envelope fits in one item's overhead
    for i, payload in enumerate(payload_sizes):
        item = BATCH_ITEM_OVERHEAD + 2 * payload
        if i > start and (i - start >= max_items or size + item > max_body):
            ranges.append(range(start, i))
            start, size = i, BATCH_ITEM_OVERHEAD
        size += item
    if start < len(payload_sizes):
        ranges.append(range(start, len(payload_sizes)))
    return ranges


# ---------------------------------------------------------------------------- encoding


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _report_to_json(report: Report) -> dict[str, Any]:
    return {
        "jobId": report.jobId,
        "round": report.round,
        "epoch": report.epoch,
        "cursor": report.cursor,
        "checkBlock": report.checkBlock,
        "checkBlockHash": _hex(report.checkBlockHash),
        "payloadHash": _hex(report.payloadHash),
        "executor": checksum_address(report.executor),
        "deadline": report.deadline,
    }


def encode_request(req: ReportRequest) -> bytes:
    """The canonical body of `POST /v1/reports`."""
    return _canonical(
        {
            "type": REPORT_MESSAGE_TYPE,
            "sender": checksum_address(req.sender),
            "sentBlock": req.sent_block,
            "report": _report_to_json(req.report),
            "payload": _hex(req.payload),
            "leaderSignature": _hex(req.leader_signature),
        }
    )


def encode_response(resp: ReportResponse) -> bytes:
    """The canonical body of a successful `POST /v1/reports` answer."""
    return _canonical(
        {
            "signer": checksum_address(resp.signer),
            "signature": _hex(resp.signature),
            "overloaded": resp.overloaded,
        }
    )


def encode_batch(batch: ReportBatch) -> bytes:
    """The canonical body of `POST /v1/reports/batch`."""
    return _canonical(
        {
            "type": REPORT_BATCH_MESSAGE_TYPE,
            "sender": checksum_address(batch.sender),
            "sentBlock": batch.sent_block,
            "items": [
                {
                    "report": _report_to_json(item.report),
                    "payload": _hex(item.payload),
                    "leaderSignature": _hex(item.leader_signature),
                }
                for item in batch.items
            ],
        }
    )


def _result_to_json(result: bytes | Refusal) -> dict[str, Any]:
    if isinstance(result, Refusal):
        return {
            "status": result.status,
            "error": result.code[:MAX_CODE_CHARS],
            "reason": " ".join(result.reason.split())[:MAX_REASON_CHARS],
        }
    return {"signature": _hex(result)}


def encode_batch_response(resp: BatchResponse) -> bytes:
    """The canonical body of a `POST /v1/reports/batch` answer."""
    return _canonical(
        {
            "signer": checksum_address(resp.signer),
            "overloaded": resp.overloaded,
            "results": [_result_to_json(r) for r in resp.results],
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


def _report_from_json(obj: Any) -> Report:
    where = "report."
    if not isinstance(obj, dict):
        _malformed("report must be a JSON object")
    _check_keys(obj, _REPORT_KEYS, where)
    return Report(
        jobId=_uint(obj, "jobId", UINT256_MAX, where),
        round=_uint(obj, "round", UINT64_MAX, where),
        epoch=_uint(obj, "epoch", UINT64_MAX, where),
        cursor=_uint(obj, "cursor", UINT256_MAX, where),
        checkBlock=_uint(obj, "checkBlock", UINT64_MAX, where),
        checkBlockHash=_bytes(obj, "checkBlockHash", length=32, where=where),
        payloadHash=_bytes(obj, "payloadHash", length=32, where=where),
        executor=_address(obj, "executor", where),
        deadline=_uint(obj, "deadline", UINT64_MAX, where),
    )


def decode_request(body: bytes) -> ReportRequest:
    """Parse a `POST /v1/reports` body; any defect raises `MessageError` (code Malformed).

    Checks the message is self-consistent (the payload hashes to `payloadHash`); whether the
    sender and report are acceptable is the receiving node's decision, not the codec's.
    """
    obj = _load_object(body, "body")
    _check_keys(obj, _REQUEST_KEYS, "")
    if obj["type"] != REPORT_MESSAGE_TYPE:
        _malformed(f"type must be {REPORT_MESSAGE_TYPE!r}")
    report = _report_from_json(obj["report"])
    payload = _bytes(obj, "payload", max_length=MAX_PAYLOAD_BYTES)
    if keccak(payload) != report.payloadHash:
        _malformed("report.payloadHash does not match payload")
    return ReportRequest(
        sender=_address(obj, "sender"),
        sent_block=_uint(obj, "sentBlock", UINT64_MAX),
        report=report,
        payload=payload,
        leader_signature=_bytes(obj, "leaderSignature", length=SIGNATURE_LENGTH),
    )


def _item_from_json(obj: Any, index: int) -> BatchItem:
    where = f"items[{index}]."
    if not isinstance(obj, dict):
        _malformed(f"items[{index}] must be a JSON object")
    _check_keys(obj, _ITEM_KEYS, where)
    report = _report_from_json(obj["report"])
    payload = _bytes(obj, "payload", max_length=MAX_PAYLOAD_BYTES, where=where)
    if keccak(payload) != report.payloadHash:
        _malformed(f"{where}report.payloadHash does not match payload")
    return BatchItem(
        report=report,
        payload=payload,
        leader_signature=_bytes(obj, "leaderSignature", length=SIGNATURE_LENGTH, where=where),
    )


def decode_batch(body: bytes) -> ReportBatch:
    """Parse a `POST /v1/reports/batch` body: 1 to MAX_BATCH_ITEMS items, each held to the
    rules of `decode_request`; any defect raises `MessageError` (code Malformed)."""
    obj = _load_object(body, "body")
    _check_keys(obj, _BATCH_KEYS, "")
    if obj["type"] != REPORT_BATCH_MESSAGE_TYPE:
        _malformed(f"type must be {REPORT_BATCH_MESSAGE_TYPE!r}")
    items = obj["items"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_ITEMS:
        _malformed(f"items must be a list of 1 to {MAX_BATCH_ITEMS} reports")
    return ReportBatch(
        sender=_address(obj, "sender"),
        sent_block=_uint(obj, "sentBlock", UINT64_MAX),
        items=tuple(_item_from_json(item, i) for i, item in enumerate(items)),
    )


def _result_from_json(obj: Any, index: int) -> bytes | Refusal:
    where = f"results[{index}]."
    if not isinstance(obj, dict):
        _malformed(f"results[{index}] must be a JSON object")
    if obj.keys() == _SIGNED_KEYS:
        return _bytes(obj, "signature", length=SIGNATURE_LENGTH, where=where)
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
    """Parse a `POST /v1/reports/batch` answer to a batch of `items` reports; any defect
    (including a result count other than `items`) raises `MessageError`."""
    obj = _load_object(body, "response")
    _check_keys(obj, _BATCH_RESPONSE_KEYS, "")
    overloaded, results = obj["overloaded"], obj["results"]
    if not isinstance(overloaded, bool):
        _malformed("overloaded must be a boolean")
    if not isinstance(results, list) or len(results) != items:
        _malformed(f"results must be a list of {items} answers, one per item")
    return BatchResponse(
        signer=_address(obj, "signer"),
        overloaded=overloaded,
        results=tuple(_result_from_json(r, i) for i, r in enumerate(results)),
    )


def decode_response(body: bytes) -> ReportResponse:
    """Parse a successful `POST /v1/reports` answer; any defect raises `MessageError`."""
    obj = _load_object(body, "response")
    _check_keys(obj, _RESPONSE_KEYS, "")
    overloaded = obj["overloaded"]
    if not isinstance(overloaded, bool):
        _malformed("overloaded must be a boolean")
    return ReportResponse(
        signer=_address(obj, "signer"),
        signature=_bytes(obj, "signature", length=SIGNATURE_LENGTH),
        overloaded=overloaded,
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
