"""The batch peer messages: every report a leader leads at one head, and the member's answers.

Same rules as the single request (canonical JSON, strict decoding, anything malformed is a
MessageError), plus the batch's own: 1 to MAX_BATCH_ITEMS items, each checked on its own, and
exactly one answer per item, a signature or a refusal with the status the item alone would get.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils.crypto import keccak

from keeper.core.messages import (
    MAX_BATCH_ITEMS,
    MAX_PAYLOAD_BYTES,
    BatchItem,
    BatchResponse,
    MessageError,
    Refusal,
    ReportBatch,
    decode_batch,
    decode_batch_response,
    encode_batch,
    encode_batch_response,
    encode_request,
    split_batch,
)
from tests.unit.test_messages import SENDER, a_request

SIGNATURE = b"\x01" * 64 + b"\x1b"


def a_batch(count: int = 2, payload: bytes = b"\x12\x34") -> ReportBatch:
    reqs = [a_request(payload, jobId=job) for job in range(1, count + 1)]
    items = tuple(BatchItem(r.report, r.payload, r.leader_signature) for r in reqs)
    return ReportBatch(SENDER, 123, items)


def malformed(body: bytes) -> str:
    with pytest.raises(MessageError) as info:
        decode_batch(body)
    assert info.value.code == "Malformed"
    return info.value.reason


def edited(edit: Any) -> bytes:
    obj = json.loads(encode_batch(a_batch()))
    edit(obj)
    return json.dumps(obj).encode()


def test_a_batch_is_canonical_json_that_decodes_back_and_each_item_is_its_request() -> None:
    batch = a_batch(3)
    body = encode_batch(batch)

    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    assert decode_batch(body) == batch
    # an item read as a request is the single request with the batch's sender and block
    single = a_request(jobId=2)
    assert batch.request(1) == single
    assert json.loads(encode_request(single))["report"] == json.loads(body)["items"][1]["report"]


@pytest.mark.parametrize("count", [0, MAX_BATCH_ITEMS + 1])
def test_a_batch_holds_one_to_the_limit_of_items(count: int) -> None:
    def set_items(obj: dict[str, Any]) -> None:
        item = obj["items"][0]
        obj["items"] = [item] * count

    assert "items must be a list" in malformed(edited(set_items))
    full = a_batch(MAX_BATCH_ITEMS)
    assert len(decode_batch(encode_batch(full)).items) == MAX_BATCH_ITEMS


def test_each_item_is_decoded_as_strictly_as_a_single_request() -> None:
    def tamper_payload(obj: dict[str, Any]) -> None:
        obj["items"][1]["payload"] = "0x1235"

    def extra_field(obj: dict[str, Any]) -> None:
        obj["items"][0]["note"] = 1

    def single_type(obj: dict[str, Any]) -> None:
        obj["type"] = "report"

    def items_not_a_list(obj: dict[str, Any]) -> None:
        obj["items"] = {"0": obj["items"][0]}

    assert malformed(edited(tamper_payload)) == (
        "items[1].report.payloadHash does not match payload"
    )
    assert malformed(edited(extra_field)) == "items[0].unknown field note"
    assert "type must be 'reportBatch'" in malformed(edited(single_type))
    assert "items must be a list" in malformed(edited(items_not_a_list))


def test_a_response_round_trips_with_signatures_and_refusals_in_item_order() -> None:
    resp = BatchResponse(
        SENDER, True, (SIGNATURE, Refusal(409, "RoundDone", "job 1 is at round 2"), SIGNATURE)
    )

    assert decode_batch_response(encode_batch_response(resp), 3) == resp


def test_a_response_must_answer_every_item_once_and_refusals_must_be_errors() -> None:
    resp = BatchResponse(SENDER, False, (SIGNATURE, SIGNATURE))
    body = encode_batch_response(resp)

    with pytest.raises(MessageError, match="results must be a list of 3"):
        decode_batch_response(body, 3)
    obj = json.loads(body)
    obj["results"][1] = {"status": 200, "error": "Fine", "reason": ""}
    with pytest.raises(MessageError, match=r"results\[1\].status must be an HTTP error"):
        decode_batch_response(json.dumps(obj).encode(), 2)
    obj["results"][1] = {"signature": "0x" + SIGNATURE.hex(), "status": 409}
    with pytest.raises(MessageError, match=r"results\[1\].missing field error"):
        decode_batch_response(json.dumps(obj).encode(), 2)


def test_a_refusal_reason_is_one_line_of_bounded_length_on_the_wire() -> None:
    resp = BatchResponse(SENDER, False, (Refusal(422, "NotDue", "line\nbreak " + "x" * 500),))

    (refusal,) = decode_batch_response(encode_batch_response(resp), 1).results

    assert isinstance(refusal, Refusal)
    assert "\n" not in refusal.reason and len(refusal.reason) == 300


def test_split_batch_cuts_at_the_item_limit_and_keeps_order() -> None:
    parts = split_batch([2] * (2 * MAX_BATCH_ITEMS + 3))

    assert [len(p) for p in parts] == [MAX_BATCH_ITEMS, MAX_BATCH_ITEMS, 3]
    assert [i for p in parts for i in p] == list(range(2 * MAX_BATCH_ITEMS + 3))
    assert split_batch([]) == []


def test_split_batch_keeps_every_body_under_the_size_limit_with_the_largest_payloads() -> None:
    payload = b"\xff" * MAX_PAYLOAD_BYTES
    sizes = [MAX_PAYLOAD_BYTES] * MAX_BATCH_ITEMS
    batch = a_batch(MAX_BATCH_ITEMS, payload)

    parts = split_batch(sizes, max_body=65536)

    assert len(parts) > 1
    for part in parts:
        body = encode_batch(ReportBatch(SENDER, 123, tuple(batch.items[i] for i in part)))
        assert len(body) <= 65536
        assert keccak(decode_batch(body).items[0].payload) == keccak(payload)
