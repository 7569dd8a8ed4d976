"""The peer port serves quorum peers in their turn and at a leader's rate (issue 13, item 5).

A member refuses a leader whose turn has not come (409 NotYourTurn) and accepts it from its turn
on; a peer that floods a member is answered 429 RateLimited with Retry-After, charged to its own
signer, while another member's request is still served.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from keeper.core.messages import decode_batch_response, encode_batch
from tests.node.peer_api_support import (
    World,
    expect_refused,
    given_an_honest_request,
    honest_report,
    leaders_in_order,
    make_due,
    mine_to_turn,
    open_world,
    post_request,
    request_for,
    signed_headers,
    the_report,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Far more than the default burst (40) plus what 20/s refills while they are answered.
FLOOD = 200


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with open_world(tmp_path_factory.mktemp("peer-api-limits")) as built:
        yield built


async def test_a_backup_leading_before_its_turn_is_refused_and_accepted_from_its_turn_on(
    world: World,
) -> None:
    # given a due round and its rank-2 member (turns start at the due block, then every
    # turn_blocks), leading at the due block itself
    due = await make_due(world)
    order = await leaders_in_order(world)
    receiver, backup = order[1], order[2]
    key = world.key(backup)
    early = request_for(world, key, await honest_report(world, backup))
    assert the_report(early).checkBlock == due
    body = encode_batch(early)

    # when it asks a member to sign, then the member refuses: not its turn (nothing changes)
    status, code = await expect_refused(world, receiver, body, signed_headers(body, key))
    assert (status, code) == (409, "NotYourTurn")

    # and still one turn and a block short of its turn (beyond the one block of slack)
    near = await mine_to_turn(world, 1)
    assert near + 1 < due + 2 * world.network.turn_blocks
    body = encode_batch(request_for(world, key, await honest_report(world, backup)))
    status, code = await expect_refused(world, receiver, body, signed_headers(body, key))
    assert (status, code) == (409, "NotYourTurn")

    # when its turn has come, then the same member signs its report
    await mine_to_turn(world, 1)
    on_turn = request_for(world, key, await honest_report(world, backup))
    status, answer = await post_request(world, receiver, on_turn, key)
    assert status == 200, answer


async def test_a_flooding_peer_is_rate_limited_and_another_is_still_served(world: World) -> None:
    leader, receiver, honest = await given_an_honest_request(world)
    flooder = world.key((await leaders_in_order(world))[2])
    options = world.node(receiver).options
    # given a member posting stale requests (each refused cheaply) as fast as it can
    stale = request_for(world, flooder, replace(the_report(honest), executor=flooder.address))
    stale = replace(stale, sent_block=0)
    body = encode_batch(stale)
    headers = signed_headers(body, flooder)
    url = world.node(receiver).endpoint + "/v1/reports/batch"

    async def post() -> tuple[int, str | None, str]:
        async with world.http.post(url, data=body, headers=headers) as resp:
            return resp.status, resp.headers.get("Retry-After"), await resp.text()

    # when it floods the receiver
    began = time.monotonic()
    answers = await asyncio.gather(*(post() for _ in range(FLOOD)))
    elapsed = time.monotonic() - began

    # then the receiver answered at most its burst plus the refill, the rest 429 RateLimited
    limited = [a for a in answers if a[0] == 429]
    refilled = math.ceil(elapsed * options.peer_rate_per_second)
    assert FLOOD - len(limited) <= options.peer_rate_burst + refilled
    assert limited
    assert all('"RateLimited"' in text and after is not None for _, after, text in limited)
    assert all(int(after) >= 1 for _, after, _ in limited if after is not None)
    assert {status for status, _, _ in answers} <= {422, 429}

    # and another member's honest request is still answered, and signed
    status, answer = await post_request(world, receiver, honest, leader)
    assert status == 200, answer
    assert (
        decode_batch_response(json.dumps(answer).encode(), 1).signer == world.key(receiver).address
    )
