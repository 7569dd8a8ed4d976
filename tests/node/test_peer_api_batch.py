"""POST /v1/reports/batch of a live node: every report a leader leads at one head, in one request.

Protocol step 4: a leader asks each member once per head for all the rounds it leads there. The
member holds each item to exactly the rules of POST /v1/reports and answers item by item, a
signature or the status and error code the item alone would have got, so one bad item costs
the others nothing. Only the envelope (media type, size, body signature, shape) is the whole
request's, with its own 4xx, and then nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount

from keeper.core.messages import (
    MAX_BATCH_ITEMS,
    BatchItem,
    BatchResponse,
    Refusal,
    ReportBatch,
    ReportRequest,
    decode_batch_response,
    encode_batch,
)
from keeper.core.report import Report, recover_report_signer
from tests.node.peer_api_support import (
    INTERVAL,
    JSON_TYPE,
    STALE_BLOCKS,
    World,
    expect_refused,
    given_an_honest_request,
    metric,
    open_world,
    post_raw,
    request_for,
    signed_headers,
    snapshot,
    store_an_earlier_result,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

BATCH = "/v1/reports/batch"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with open_world(tmp_path_factory.mktemp("peer-api-batch")) as built:
        yield built


def batch_of(leader: LocalAccount, sent_block: int, *reqs: ReportRequest) -> ReportBatch:
    items = tuple(BatchItem(r.report, r.payload, r.leader_signature) for r in reqs)
    return ReportBatch(leader.address, sent_block, items)


async def post_batch(
    world: World, receiver: int, batch: ReportBatch, signer: LocalAccount
) -> BatchResponse:
    body = encode_batch(batch)
    status, answer = await post_raw(world, receiver, body, signed_headers(body, signer), BATCH)
    assert status == 200, answer
    return decode_batch_response(_canonical(answer), len(batch.items))


def _canonical(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, sort_keys=True, separators=(",", ":")).encode()


def signed_by(world: World, node: int, report: Report, signature: bytes | Refusal) -> bool:
    assert isinstance(signature, bytes), signature
    signer = recover_report_signer(report, world.network.net.domain, signature)
    return signer == world.key(node).address


async def signed_reports(world: World, node: int, report: Report) -> list[Report]:
    return [s.report for s in await world.node(node).store.signed_for(*report.equivocation_key)]


# ---------------------------------------------------------------------------- item by item


async def test_given_the_honest_batch_then_the_member_signs_and_stores_each_item(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)

    answer = await post_batch(world, receiver, batch_of(leader, req.sent_block, req), leader)

    assert answer.signer == world.key(receiver).address
    (signature,) = answer.results
    assert signed_by(world, receiver, req.report, signature)
    assert await signed_reports(world, receiver, req.report) == [req.report]


async def test_given_bad_items_next_to_a_good_one_then_only_the_good_one_is_signed(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    unknown_job = request_for(world, leader, replace(req.report, jobId=req.report.jobId + 999))
    wrong_cursor = request_for(
        world, leader, replace(req.report, cursor=req.report.cursor + INTERVAL)
    )
    before = await world.node(receiver).store.signature_count()

    answer = await post_batch(
        world, receiver, batch_of(leader, req.sent_block, unknown_job, req, wrong_cursor), leader
    )

    refused_job, signature, refused_cursor = answer.results
    assert refused_job == Refusal(404, "UnknownJob", refused_job.reason)  # type: ignore[union-attr]
    assert isinstance(refused_cursor, Refusal)
    assert (refused_cursor.status, refused_cursor.code) == (422, "CursorMismatch")
    assert signed_by(world, receiver, req.report, signature)
    assert await world.node(receiver).store.signature_count() == before + 1


async def test_given_a_conflicting_signature_stored_then_that_item_is_409_and_the_rest_signed(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    # given the node already signed another result for this round's key (an earlier run of it)
    earlier = await store_an_earlier_result(world, receiver, req.report)
    # and a second leader-side report of the same result with another deadline (a view change)
    later = request_for(world, leader, replace(req.report, deadline=req.report.deadline + 1))

    answer = await post_batch(world, receiver, batch_of(leader, req.sent_block, req, later), leader)

    # then both are refused as equivocation, and the store still holds only the earlier result
    assert [(r.status, r.code) for r in answer.results if isinstance(r, Refusal)] == [
        (409, "Conflict"),
        (409, "Conflict"),
    ]
    assert await signed_reports(world, receiver, req.report) == [earlier]


async def test_two_views_of_the_same_result_in_one_batch_are_both_signed(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    # the same honest result twice, once with another deadline: both are the node's result
    again = request_for(world, leader, replace(req.report, deadline=req.report.deadline + 2))

    answer = await post_batch(world, receiver, batch_of(leader, req.sent_block, req, again), leader)

    # a view change of the same result is signed (as for single requests), item by item
    assert all(
        signed_by(world, receiver, r.report, s)
        for r, s in zip((req, again), answer.results, strict=True)
    )
    stored = await signed_reports(world, receiver, req.report)
    assert sorted(stored, key=lambda r: r.deadline) == [req.report, again.report]


async def test_a_stale_batch_is_refused_item_by_item_and_changes_nothing(world: World) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    head = await world.network.net.block_number()
    before = await snapshot(world, receiver)

    answer = await post_batch(
        world, receiver, batch_of(leader, head - STALE_BLOCKS - 1, req), leader
    )

    (refused,) = answer.results
    assert isinstance(refused, Refusal) and (refused.status, refused.code) == (422, "Stale")
    assert await snapshot(world, receiver) == before
    assert await metric(world, receiver, "keeper_peer_rejections_total", 'code="Stale"') >= 1


# ---------------------------------------------------------------------------- the envelope


async def test_an_unsigned_batch_is_401_and_changes_nothing(world: World) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    body = encode_batch(batch_of(leader, req.sent_block, req))

    status, code = await expect_refused(world, receiver, body, dict(JSON_TYPE), BATCH)

    assert (status, code) == (401, "Unsigned")


async def test_a_batch_signed_by_someone_else_than_its_sender_is_401(world: World) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    body = encode_batch(batch_of(leader, req.sent_block, req))
    # a member's key, but not the sender's (the leader's)
    other = next(world.key(i) for i in world.members if world.key(i).address != leader.address)

    status, code = await expect_refused(world, receiver, body, signed_headers(body, other), BATCH)

    assert (status, code) == (401, "BadSignature")


async def test_a_batch_of_more_than_the_limit_is_400_malformed(world: World) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    body = encode_batch(batch_of(leader, req.sent_block, *[req] * (MAX_BATCH_ITEMS + 1)))

    status, code = await expect_refused(world, receiver, body, signed_headers(body, leader), BATCH)

    assert (status, code) == (400, "Malformed")
