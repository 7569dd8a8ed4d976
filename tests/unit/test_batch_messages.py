"""The batch peer messages beyond one item: a header and many items, and the member's answers.

1 to MAX_BATCH_ITEMS items share one header; each item is answered on its own (accepted, or a
refusal with its status), and the one signature covers exactly the accepted items.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils.crypto import keccak

from keeper.core.messages import (
    MAX_BATCH_ITEMS,
    MAX_PAYLOAD_BYTES,
    BatchRequest,
    BatchResponse,
    MessageError,
    Refusal,
    decode_batch,
    decode_batch_response,
    encode_batch,
    encode_batch_response,
    split_batch,
)
from keeper.core.report import Batch, recover_batch_signer
from tests.unit.test_messages import DOMAIN, SENDER, a_batch_request

SIGNATURE = b"\x01" * 64 + b"\x1b"


def malformed(body: bytes) -> str:
    with pytest.raises(MessageError) as info:
        decode_batch(body)
    assert info.value.code == "Malformed"
    return info.value.reason


def edited(edit: Any) -> bytes:
    obj = json.loads(encode_batch(a_batch_request([b"\x12", b"\x34"])))
    edit(obj)
    return json.dumps(obj).encode()


def test_a_batch_is_canonical_json_of_one_header_and_its_items_in_order() -> None:
    req = a_batch_request([b"\x01", b"\x02", b"\x03"])
    body = encode_batch(req)

    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    decoded = decode_batch(body)
    assert decoded == req
    # every item carries the header's fields and the hash of its own payload
    assert [r.jobId for r in decoded.items] == [1, 2, 3]
    assert all(r.header == decoded.header for r in decoded.items)
    assert [r.payloadHash for r in decoded.items] == [keccak(p) for p in decoded.payloads]
    # and the leader's signature is over the Batch of all of them
    assert recover_batch_signer(decoded.batch, DOMAIN, decoded.leader_signature) == SENDER


@pytest.mark.parametrize("count", [0, MAX_BATCH_ITEMS + 1])
def test_a_batch_holds_one_to_the_limit_of_items(count: int) -> None:
    def set_items(obj: dict[str, Any]) -> None:
        obj["items"] = [obj["items"][0]] * count

    assert "items must be a list" in malformed(edited(set_items))
    full = a_batch_request([b"\x01"] * MAX_BATCH_ITEMS)
    assert len(decode_batch(encode_batch(full)).items) == MAX_BATCH_ITEMS


def test_each_item_is_decoded_strictly() -> None:
    def extra_field(obj: dict[str, Any]) -> None:
        obj["items"][1]["note"] = 1

    def single_type(obj: dict[str, Any]) -> None:
        obj["type"] = "reportBatch"

    assert malformed(edited(extra_field)) == "items[1].unknown field note"
    assert "type must be 'batch'" in malformed(edited(single_type))


def test_a_response_round_trips_with_acceptances_and_refusals_in_item_order() -> None:
    resp = BatchResponse(
        SENDER, True, (True, Refusal(409, "RoundDone", "job 1 is at round 2"), True), SIGNATURE
    )

    decoded = decode_batch_response(encode_batch_response(resp), 3)

    assert decoded == resp
    assert decoded.accepted == (0, 2)


def test_a_response_that_accepts_nothing_carries_no_signature() -> None:
    resp = BatchResponse(SENDER, False, (Refusal(422, "NotDue", "not due"),), None)
    body = encode_batch_response(resp)

    assert json.loads(body)["signature"] is None
    assert decode_batch_response(body, 1) == resp
    # a signature without an accepted item (or an accepted item without one) is malformed
    obj = json.loads(body)
    obj["signature"] = "0x" + SIGNATURE.hex()
    with pytest.raises(MessageError, match="null when no item is accepted"):
        decode_batch_response(json.dumps(obj).encode(), 1)
    obj = json.loads(encode_batch_response(BatchResponse(SENDER, False, (True,), SIGNATURE)))
    obj["signature"] = None
    with pytest.raises(MessageError, match="must sign the accepted items"):
        decode_batch_response(json.dumps(obj).encode(), 1)


def test_a_response_must_answer_every_item_once_and_refusals_must_be_errors() -> None:
    body = encode_batch_response(BatchResponse(SENDER, False, (True, True), SIGNATURE))

    with pytest.raises(MessageError, match="results must be a list of 3"):
        decode_batch_response(body, 3)
    obj = json.loads(body)
    obj["results"][1] = {"status": 200, "error": "Fine", "reason": ""}
    with pytest.raises(MessageError, match=r"results\[1\].status must be an HTTP error"):
        decode_batch_response(json.dumps(obj).encode(), 2)
    obj["results"][1] = {"signature": "0x" + SIGNATURE.hex(), "status": 409}
    with pytest.raises(MessageError, match=r"results\[1\].missing field error"):
        decode_batch_response(json.dumps(obj).encode(), 2)
    obj["results"][1] = False
    with pytest.raises(MessageError, match=r"results\[1\] must be true or a refusal"):
        decode_batch_response(json.dumps(obj).encode(), 2)


def test_a_refusal_reason_is_one_line_of_bounded_length_on_the_wire() -> None:
    refusal = Refusal(422, "NotDue", "line\nbreak " + "x" * 500)
    resp = BatchResponse(SENDER, False, (refusal,), None)

    (decoded,) = decode_batch_response(encode_batch_response(resp), 1).results

    assert isinstance(decoded, Refusal)
    assert "\n" not in decoded.reason and len(decoded.reason) == 300


def test_split_batch_cuts_at_the_item_limit_and_keeps_order() -> None:
    parts = split_batch([2] * (2 * MAX_BATCH_ITEMS + 3))

    assert [len(p) for p in parts] == [MAX_BATCH_ITEMS, MAX_BATCH_ITEMS, 3]
    assert [i for p in parts for i in p] == list(range(2 * MAX_BATCH_ITEMS + 3))
    assert split_batch([]) == []


def test_split_batch_keeps_every_body_under_the_size_limit_with_the_largest_items() -> None:
    payload = b"\xff" * MAX_PAYLOAD_BYTES
    big = a_batch_request([payload] * MAX_BATCH_ITEMS, jobId=2**256 - 1, cursor=2**256 - 1)

    parts = split_batch([MAX_PAYLOAD_BYTES] * MAX_BATCH_ITEMS, max_body=65536)

    assert len(parts) > 1
    for part in parts:
        batch = Batch.of([big.items[i] for i in part])
        req = BatchRequest.of(SENDER, 2**64 - 1, batch, [payload] * len(part), SIGNATURE)
        body = encode_batch(req)
        assert len(body) <= 65536
        assert decode_batch(body).payloads[0] == payload
