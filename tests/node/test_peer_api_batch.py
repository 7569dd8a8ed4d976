"""POST /v1/reports/batch of a live node: a leader's batch, answered item by item, signed once.

Protocol step 4: a leader asks each member once per head for the batch of the rounds it leads
there. The member checks what the items share (sender, header, the leader's signature over the
whole batch) with a 4xx for the whole request, then each item on its own: accepted, or refused
with its status and code, so one bad item costs the others nothing. It signs the batch of the
accepted items once, after storing one guard row per item with that batch's digest.
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
    BatchRequest,
    BatchResponse,
    Refusal,
    decode_batch_response,
    encode_batch,
)
from keeper.core.report import Report, compute_batch_digest, recover_batch_signer
from tests.node.peer_api_support import (
    JSON_TYPE,
    STALE_BLOCKS,
    World,
    batch_for,
    expect_refused,
    given_an_honest_request,
    metric,
    open_world,
    post_batch_raw,
    signed_headers,
    snapshot,
    store_an_earlier_result,
    the_report,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with open_world(tmp_path_factory.mktemp("peer-api-batch")) as built:
        yield built


async def post_batch(
    world: World, receiver: int, req: BatchRequest, signer: LocalAccount
) -> BatchResponse:
    body = encode_batch(req)
    status, answer = await post_batch_raw(world, receiver, body, signed_headers(body, signer))
    assert status == 200, answer
    return decode_batch_response(_canonical(answer), len(req.items))


def _canonical(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, sort_keys=True, separators=(",", ":")).encode()


def signed_by(world: World, node: int, req: BatchRequest, answer: BatchResponse) -> bool:
    """Whether `answer`'s signature is `node`'s over the batch of the items it accepted."""
    assert answer.signature is not None, answer
    accepted = req.batch.subset(answer.accepted)
    signer = recover_batch_signer(accepted, world.network.net.domain, answer.signature)
    return signer == world.key(node).address


async def signed_reports(world: World, node: int, report: Report) -> list[Report]:
    return [s.report for s in await world.node(node).store.signed_for(*report.equivocation_key)]


async def digests(world: World, node: int, report: Report) -> set[bytes]:
    """The digests of the guard rows `node` stored for `report`'s key."""
    rows = [r for r in (await snapshot(world, node)).signatures if r[0] == report.jobId]
    return {bytes(r[6]) for r in rows if (r[1], r[2]) == (report.round, report.checkBlock)}


# ---------------------------------------------------------------------------- item by item


async def test_given_the_honest_batch_then_the_member_signs_it_once_and_stores_its_item(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)

    answer = await post_batch(world, receiver, req, leader)

    assert answer.signer == world.key(receiver).address
    assert answer.results == (True,)
    assert signed_by(world, receiver, req, answer)
    report = the_report(req)
    assert await signed_reports(world, receiver, report) == [report]
    assert await digests(world, receiver, report) == {
        compute_batch_digest(req.batch, world.network.net.domain)
    }


async def test_given_bad_items_next_to_a_good_one_then_the_good_one_alone_is_signed(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    good = the_report(req)
    unknown_job = replace(good, jobId=good.jobId + 999)
    past_round = replace(good, round=good.round - 1)
    batch = batch_for(world, leader, [unknown_job, good, past_round])
    before = await world.node(receiver).store.signature_count()

    answer = await post_batch(world, receiver, batch, leader)

    # then each bad item gets its own status and code, the good one is accepted
    refused_job, accepted, refused_round = answer.results
    assert isinstance(refused_job, Refusal) and refused_job.code == "UnknownJob"
    assert refused_job.status == 404
    assert accepted is True
    assert isinstance(refused_round, Refusal)
    assert (refused_round.status, refused_round.code) == (409, "RoundDone")
    # and the one signature is over the batch of the good item alone, its one row stored
    assert answer.accepted == (1,)
    assert signed_by(world, receiver, batch, answer)
    assert await world.node(receiver).store.signature_count() == before + 1
    assert await digests(world, receiver, good) == {
        compute_batch_digest(batch.batch.subset([1]), world.network.net.domain)
    }


async def test_a_round_twice_in_one_batch_is_refused_the_second_time(world: World) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    good = the_report(req)

    answer = await post_batch(world, receiver, batch_for(world, leader, [good, good]), leader)

    accepted, duplicate = answer.results
    assert accepted is True
    assert isinstance(duplicate, Refusal) and (duplicate.status, duplicate.code) == (
        422,
        "DuplicateItem",
    )


async def test_given_a_conflicting_signature_stored_then_the_item_is_409_and_nothing_signed(
    world: World,
) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    # given the node already signed another result for this round's key (an earlier run of it)
    report = the_report(req)
    earlier = await store_an_earlier_result(world, receiver, report)

    answer = await post_batch(world, receiver, req, leader)

    # then the item is refused as equivocation, no signature leaves the node, and the store
    # still holds only the earlier result
    (refused,) = answer.results
    assert isinstance(refused, Refusal) and (refused.status, refused.code) == (409, "Conflict")
    assert answer.signature is None
    assert await signed_reports(world, receiver, report) == [earlier]


async def test_another_view_of_the_same_result_is_signed_again(world: World) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    report = the_report(req)
    # the same honest result, once with another deadline (a view change): another batch
    again = batch_for(world, leader, [replace(report, deadline=report.deadline + 2)])

    first = await post_batch(world, receiver, req, leader)
    second = await post_batch(world, receiver, again, leader)

    # a view change of the same result is no conflict: both batches are signed
    assert signed_by(world, receiver, req, first) and signed_by(world, receiver, again, second)
    stored = await signed_reports(world, receiver, report)
    assert sorted(stored, key=lambda r: r.deadline) == [report, the_report(again)]


async def test_a_stale_batch_is_refused_whole_and_changes_nothing(world: World) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    head = await world.network.net.block_number()
    stale = replace(req, sent_block=head - STALE_BLOCKS - 1)
    body = encode_batch(stale)

    status, code = await expect_refused(world, receiver, body, signed_headers(body, leader))

    assert (status, code) == (422, "Stale")
    assert await metric(world, receiver, "keeper_peer_rejections_total", 'code="Stale"') >= 1


# ---------------------------------------------------------------------------- the envelope


async def test_an_unsigned_batch_is_401_and_changes_nothing(world: World) -> None:
    _, receiver, req = await given_an_honest_request(world)
    body = encode_batch(req)

    status, code = await expect_refused(world, receiver, body, dict(JSON_TYPE))

    assert (status, code) == (401, "Unsigned")


async def test_a_batch_signed_by_someone_else_than_its_sender_is_401(world: World) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    body = encode_batch(req)
    # a member's key, but not the sender's (the leader's)
    other = next(world.key(i) for i in world.members if world.key(i).address != leader.address)

    status, code = await expect_refused(world, receiver, body, signed_headers(body, other))

    assert (status, code) == (401, "BadSignature")


async def test_a_batch_of_more_than_the_limit_is_400_malformed(world: World) -> None:
    leader, receiver, req = await given_an_honest_request(world)
    obj = json.loads(encode_batch(req))
    obj["items"] = obj["items"] * (MAX_BATCH_ITEMS + 1)
    body = json.dumps(obj).encode()

    status, code = await expect_refused(world, receiver, body, signed_headers(body, leader))

    assert (status, code) == (400, "Malformed")
