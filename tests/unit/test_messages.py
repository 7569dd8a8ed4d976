"""Peer message formats: the batch request and response, canonical round trips, strict
decoding, and body signatures."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.core.messages import (
    MAX_PAYLOAD_BYTES,
    BatchRequest,
    BatchResponse,
    MessageError,
    _nesting_exceeds,
    decode_batch,
    decode_batch_response,
    encode_batch,
    encode_batch_response,
    format_signature_header,
    load_untrusted_json,
    parse_signature_header,
    recover_body_signer,
    sign_body,
)
from keeper.core.report import SECP256K1_N, Batch, Domain, Report, sign_batch
from keeper.errors import PeerError, PeerRejected

KEY = bytes([1]) * 32
OTHER_KEY = bytes([2]) * 32
SENDER = Account.from_key(KEY).address
OTHER = Account.from_key(OTHER_KEY).address
DOMAIN = Domain(chain_id=1337, verifying_contract="0x" + "ab" * 20)

uint64 = st.integers(0, 2**64 - 1)
uint256 = st.integers(0, 2**256 - 1)
word = st.binary(min_size=32, max_size=32)
address = st.integers(0, 2**160 - 1).map(lambda n: to_checksum_address(n.to_bytes(20, "big")))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


def a_report(payload: bytes = b"\x12\x34", **fields: Any) -> Report:
    values: dict[str, Any] = {
        "jobId": 1,
        "round": 0,
        "epoch": 1,
        "cursor": 17,
        "checkBlock": 100,
        "checkBlockHash": b"\x11" * 32,
        "payloadHash": keccak(payload),
        "executor": SENDER,
        "deadline": 140,
        "quorum": 2,
    }
    values.update(fields)
    return Report(**values)


def a_request(payload: bytes = b"\x12\x34", **report_fields: Any) -> BatchRequest:
    """A leader's batch of one item, signed by it."""
    return a_batch_request([payload], **report_fields)


def a_batch_request(payloads: list[bytes], **report_fields: Any) -> BatchRequest:
    """A leader's batch of one item per payload (jobs 1, 2, ... unless given), signed by it."""
    reports = [
        a_report(payload, **{"jobId": i + 1, **report_fields}) for i, payload in enumerate(payloads)
    ]
    batch = Batch.of(reports)
    return BatchRequest.of(SENDER, 123, batch, payloads, sign_batch(KEY, batch, DOMAIN))


BASE_BODY = encode_batch(a_request())


def wire() -> dict[str, Any]:
    """A valid request as a fresh mutable JSON object."""
    obj: dict[str, Any] = json.loads(BASE_BODY)
    return obj


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def assert_malformed(body: bytes, fragment: str = "") -> None:
    with pytest.raises(MessageError) as info:
        decode_batch(body)
    assert info.value.code == "Malformed"
    assert fragment in info.value.reason
    assert "\n" not in info.value.reason


# ---------------------------------------------------------------------------- round trips


def test_given_a_request_when_encoded_then_it_is_canonical_json_that_decodes_back() -> None:
    req = a_request()

    body = encode_batch(req)

    obj = json.loads(body)
    assert body == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    assert obj["type"] == "batch"
    assert obj["sender"] == SENDER
    assert obj["sentBlock"] == 123
    assert obj["header"] == {
        "epoch": 1,
        "quorum": 2,
        "checkBlock": 100,
        "checkBlockHash": "0x" + "11" * 32,
        "executor": SENDER,
        "deadline": 140,
    }
    # an item carries its payload, not its hash: the hash is what the member computes
    assert obj["items"] == [{"jobId": 1, "round": 0, "cursor": 17, "payload": "0x1234"}]
    assert len(obj["leaderSignature"]) == 2 + 130
    assert decode_batch(body) == req


def test_given_a_response_when_encoded_then_it_decodes_back() -> None:
    resp = BatchResponse(SENDER, True, (True,), b"\x07" * 65)

    body = encode_batch_response(resp)

    assert json.loads(body) == {
        "signer": SENDER,
        "signature": "0x" + "07" * 65,
        "overloaded": True,
        "results": [True],
    }
    assert decode_batch_response(body, 1) == resp


@given(
    job_id=uint256,
    rnd=uint64,
    cursor=uint256,
    check_block=uint64,
    block_hash=word,
    executor=address,
    sent_block=uint64,
    quorum=st.integers(0, 2**16 - 1),
    payload=st.binary(max_size=MAX_PAYLOAD_BYTES),
    signature=st.binary(min_size=65, max_size=65),
)
@settings(max_examples=150)
def test_property_any_valid_request_round_trips(
    job_id: int,
    rnd: int,
    cursor: int,
    check_block: int,
    block_hash: bytes,
    executor: str,
    sent_block: int,
    quorum: int,
    payload: bytes,
    signature: bytes,
) -> None:
    report = Report(
        job_id, rnd, 9, cursor, check_block, block_hash, keccak(payload), executor, 5, quorum
    )
    req = BatchRequest.of(executor, sent_block, Batch.of([report]), [payload], signature)

    assert decode_batch(encode_batch(req)) == req


def test_lowercase_addresses_are_accepted_and_checksummed() -> None:
    obj = wire()
    obj["sender"] = obj["sender"].lower()
    obj["header"]["executor"] = obj["header"]["executor"].lower()

    req = decode_batch(dumps(obj))

    assert req.sender == SENDER
    assert req.header.executor == SENDER and req.items[0].executor == SENDER


# ---------------------------------------------------------------------------- rejections


def test_given_bytes_that_are_not_json_then_malformed() -> None:
    assert_malformed(b"", "not valid JSON")
    assert_malformed(b"{", "not valid JSON")
    assert_malformed(b"\xff\xfe{}", "not UTF-8")
    assert_malformed(b"[]", "not a JSON object")
    assert_malformed(b'"batch"', "not a JSON object")
    assert_malformed(b"[" * 100_000 + b"]" * 100_000, "nests deeper")
    assert_malformed(b"[" * 100_000, "nests deeper")
    assert_malformed(b'{"sentBlock": ' + b"9" * 5000 + b"}")


def json_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(json_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(json_depth, value.values()), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\ab', max_size=8)
tricky_json = st.recursive(
    st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=20,
)


@given(tricky_json, st.integers(0, 6))
@settings(max_examples=300)
def test_property_nesting_check_agrees_with_the_parser(value: Any, limit: int) -> None:
    """Brackets, quotes and backslashes inside strings never count as nesting."""
    assert _nesting_exceeds(json.dumps(value), limit) == (json_depth(value) > limit)


def test_untrusted_json_parses_shallow_values() -> None:
    assert load_untrusted_json(b'{"a": [1, "[[["]}') == {"a": [1, "[[["]}
    with pytest.raises(MessageError):
        load_untrusted_json(b'{"a": 1, "a": 2}')


def test_given_a_duplicated_key_then_malformed() -> None:
    body = encode_batch(a_request())
    assert_malformed(body[:-1] + b',"sentBlock":124}', "duplicate key")


def test_given_nan_then_malformed() -> None:
    body = encode_batch(a_request()).replace(b'"sentBlock":123', b'"sentBlock":NaN')
    assert_malformed(body, "NaN")


TOP_MUTATIONS: list[tuple[str, Any, str]] = [
    ("type", "report", "type must be"),
    ("type", None, "type must be"),
    ("sender", "0x1234", "sender must be"),
    ("sender", "0x" + "zz" * 20, "sender must be"),
    ("sender", SENDER.upper().replace("0X", "0x"), "checksum"),
    ("sender", 1, "sender must be"),
    ("sentBlock", True, "sentBlock must be an integer"),
    ("sentBlock", -1, "sentBlock"),
    ("sentBlock", 2**64, "sentBlock"),
    ("sentBlock", 1.0, "sentBlock"),
    ("sentBlock", "123", "sentBlock"),
    ("leaderSignature", "0x" + "00" * 64, "65 bytes"),
    ("leaderSignature", "0x" + "00" * 66, "65 bytes"),
    ("leaderSignature", ["0x00"], "leaderSignature must be"),
    ("header", [], "header must be a JSON object"),
    ("items", [], "items must be a list of 1 to 64"),
    ("items", {"0": {}}, "items must be a list"),
    ("items", [[]], "items[0] must be a JSON object"),
]


@pytest.mark.parametrize(("field", "value", "fragment"), TOP_MUTATIONS)
def test_given_a_mutated_field_then_malformed(field: str, value: Any, fragment: str) -> None:
    obj = wire()
    obj[field] = value
    assert_malformed(dumps(obj), fragment)


HEADER_MUTATIONS: list[tuple[str, Any, str]] = [
    ("epoch", 1.5, "header.epoch"),
    ("epoch", 2**64, "header.epoch"),
    ("quorum", 2**16, "header.quorum"),
    ("quorum", True, "header.quorum"),
    ("checkBlock", None, "header.checkBlock"),
    ("deadline", "140", "header.deadline"),
    ("checkBlockHash", "0x" + "11" * 31, "32 bytes"),
    ("checkBlockHash", "0x" + "11" * 33, "32 bytes"),
    ("checkBlockHash", "0x" + "gg" * 32, "header.checkBlockHash must be"),
    ("executor", "0x" + "ab" * 19, "header.executor"),
    ("executor", "0x" + "ab" * 21, "header.executor"),
]


@pytest.mark.parametrize(("field", "value", "fragment"), HEADER_MUTATIONS)
def test_given_a_mutated_header_field_then_malformed(field: str, value: Any, fragment: str) -> None:
    obj = wire()
    obj["header"][field] = value
    assert_malformed(dumps(obj), fragment)


ITEM_MUTATIONS: list[tuple[str, Any, str]] = [
    ("jobId", 2**256, "items[0].jobId"),
    ("jobId", -1, "items[0].jobId"),
    ("jobId", False, "items[0].jobId"),
    ("cursor", 2**256, "items[0].cursor"),
    ("round", 2**64, "items[0].round"),
    ("payload", "1234", "items[0].payload must be"),
    ("payload", "0x123", "payload must be"),
    ("payload", "0x12 34", "payload must be"),
    ("payload", "0x" + "00" * (MAX_PAYLOAD_BYTES + 1), "at most 4096"),
]


@pytest.mark.parametrize(("field", "value", "fragment"), ITEM_MUTATIONS)
def test_given_a_mutated_item_field_then_malformed(field: str, value: Any, fragment: str) -> None:
    obj = wire()
    obj["items"][0][field] = value
    assert_malformed(dumps(obj), fragment)


def test_the_largest_values_are_accepted() -> None:
    req = a_request(
        payload=b"\x00" * MAX_PAYLOAD_BYTES,
        jobId=2**256 - 1,
        cursor=2**256 - 1,
        round=2**64 - 1,
        deadline=2**64 - 1,
        quorum=2**16 - 1,
    )
    assert decode_batch(encode_batch(req)) == req


@pytest.mark.parametrize(
    "field", ["type", "sender", "sentBlock", "header", "items", "leaderSignature"]
)
def test_given_a_missing_field_then_malformed(field: str) -> None:
    obj = wire()
    del obj[field]
    assert_malformed(dumps(obj), f"missing field {field}")


def test_given_a_missing_or_extra_header_or_item_field_then_malformed() -> None:
    obj = wire()
    del obj["header"]["deadline"]
    assert_malformed(dumps(obj), "header.missing field deadline")
    obj = wire()
    obj["header"]["gasPrice"] = 1
    assert_malformed(dumps(obj), "header.unknown field gasPrice")
    obj = wire()
    obj["items"][0]["payloadHash"] = "0x" + "00" * 32
    assert_malformed(dumps(obj), "items[0].unknown field payloadHash")
    obj = wire()
    del obj["items"][0]["cursor"]
    assert_malformed(dumps(obj), "items[0].missing field cursor")


def test_given_an_extra_field_then_malformed() -> None:
    obj = wire()
    obj["extra"] = 1
    assert_malformed(dumps(obj), "unknown field extra")


@given(st.binary(max_size=400))
@settings(max_examples=300)
def test_property_random_bytes_only_ever_raise_message_error(body: bytes) -> None:
    with pytest.raises(MessageError):
        decode_batch(body)


@given(json_values)
@settings(max_examples=300)
def test_property_arbitrary_json_only_ever_raises_message_error(value: Any) -> None:
    with pytest.raises(MessageError):
        decode_batch(dumps(value))


@given(
    path=st.sampled_from(
        [("type",), ("sender",), ("sentBlock",), ("header",), ("items",), ("leaderSignature",)]
        + [("header", k) for k in ("epoch", "quorum", "checkBlockHash", "executor")]
        + [("items", 0, k) for k in ("jobId", "round", "cursor", "payload")]
    ),
    value=json_values,
)
@settings(max_examples=300)
def test_property_a_field_replaced_by_arbitrary_json_is_rejected(
    path: tuple[Any, ...], value: Any
) -> None:
    obj = wire()
    target: Any = obj
    for key in path[:-1]:
        target = target[key]
    original = target[path[-1]]
    target[path[-1]] = value
    try:
        decoded = decode_batch(dumps(obj))
    except MessageError:
        return
    # What passes is a legitimate value: an unsigned integer where one belongs, or the same
    # bytes/address spelled in another case; and it survives a round trip.
    if type(original) is int:
        assert type(value) is int and value >= 0
    else:
        assert str(value).lower() == str(original).lower()
    assert decode_batch(encode_batch(decoded)) == decoded


RESPONSE_MUTATIONS: list[tuple[str, Any]] = [
    ("overloaded", 0),
    ("overloaded", "false"),
    ("signature", "0x" + "00" * 64),
    ("signature", 5),
    ("signature", None),
    ("signer", "0x00"),
    ("results", [False]),
    ("results", [1]),
    ("results", [True, True]),
]


@pytest.mark.parametrize(("field", "value"), RESPONSE_MUTATIONS)
def test_given_a_mutated_response_field_then_malformed(field: str, value: Any) -> None:
    obj = json.loads(encode_batch_response(BatchResponse(SENDER, False, (True,), b"\x01" * 65)))
    obj[field] = value
    with pytest.raises(MessageError):
        decode_batch_response(dumps(obj), 1)


def test_given_a_response_with_extra_or_missing_fields_then_malformed() -> None:
    good = {"signer": SENDER, "signature": "0x" + "01" * 65, "overloaded": False, "results": [True]}
    with pytest.raises(MessageError, match="unknown field"):
        decode_batch_response(dumps({**good, "extra": 1}), 1)
    with pytest.raises(MessageError, match="missing field overloaded"):
        decode_batch_response(dumps({k: v for k, v in good.items() if k != "overloaded"}), 1)
    with pytest.raises(MessageError):
        decode_batch_response(b"\x00\x01", 1)


@given(st.binary(max_size=200) | json_values.map(dumps))
@settings(max_examples=200)
def test_property_decode_response_only_ever_raises_message_error(body: bytes) -> None:
    with pytest.raises(MessageError):
        decode_batch_response(body, 1)


# ---------------------------------------------------------------------------- body signatures


def test_given_a_signed_body_then_the_signer_is_recovered() -> None:
    body = encode_batch(a_request())

    signature = sign_body(KEY, body)

    assert len(signature) == 65
    assert recover_body_signer(body, signature) == SENDER
    assert recover_body_signer(body, sign_body(OTHER_KEY, body)) == OTHER
    # and the signature is eth_account's personal_sign of the body, byte for byte
    reference = Account.sign_message(encode_defunct(primitive=body), KEY)
    assert signature == bytes(reference.signature)


def test_given_a_tampered_body_then_another_address_is_recovered() -> None:
    body = encode_batch(a_request())
    signature = sign_body(KEY, body)

    assert recover_body_signer(body.replace(b"123", b"124"), signature) != SENDER


def _with(
    signature: bytes, *, r: int | None = None, s: int | None = None, v: int | None = None
) -> bytes:
    rr = int.from_bytes(signature[:32], "big") if r is None else r
    ss = int.from_bytes(signature[32:64], "big") if s is None else s
    vv = signature[64] if v is None else v
    return rr.to_bytes(32, "big") + ss.to_bytes(32, "big") + bytes([vv])


def test_given_a_non_canonical_signature_then_bad_signature() -> None:
    body = b"{}"
    good = sign_body(KEY, body)
    high_s = SECP256K1_N - int.from_bytes(good[32:64], "big")
    bad = [
        good[:64],
        good + b"\x00",
        _with(good, v=0),
        _with(good, v=1),
        _with(good, v=37),
        _with(good, r=0),
        _with(good, s=0),
        _with(good, r=SECP256K1_N),
        _with(good, s=high_s, v=55 - good[64]),
    ]
    for signature in bad:
        with pytest.raises(MessageError) as info:
            recover_body_signer(body, signature)
        assert info.value.code == "BadSignature"


@given(st.binary(min_size=65, max_size=65))
@settings(max_examples=200)
def test_property_random_signatures_recover_or_raise_message_error(signature: bytes) -> None:
    try:
        signer = recover_body_signer(b"body", signature)
    except MessageError:
        return
    assert signer == to_checksum_address(signer)


def test_signature_header_round_trip_and_rejections() -> None:
    signature = sign_body(KEY, b"x")
    assert parse_signature_header(format_signature_header(signature)) == signature
    for value in ["", "0x", "0x" + "00" * 64, signature.hex(), "0x" + "zz" * 65, "0x" + "0" * 131]:
        with pytest.raises(MessageError) as info:
            parse_signature_header(value)
        assert info.value.code == "BadSignature"


# ---------------------------------------------------------------------------- errors


def test_message_error_is_a_value_error_and_pickles() -> None:
    err = MessageError("Malformed", "body is not JSON")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.code, copy.reason) == ("Malformed", "body is not JSON")


def test_peer_rejected_carries_a_code_and_stays_backwards_compatible() -> None:
    old_style = PeerRejected(403, "not a member")
    assert (old_style.status, old_style.reason, old_style.code) == (403, "not a member", "Rejected")
    err = PeerRejected(409, "already signed another result", "Equivocation")
    assert isinstance(err, PeerError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.status, copy.reason, copy.code) == (
        409,
        "already signed another result",
        "Equivocation",
    )


def test_request_dataclasses_are_frozen() -> None:
    req = a_request()
    with pytest.raises(AttributeError):
        req.sent_block = 5  # type: ignore[misc]
    assert replace(req, sent_block=5).sent_block == 5
