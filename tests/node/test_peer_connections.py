"""A leader's requests to members outlive the round they were for.

Protocol, step 4: the leader asks every member at once and submits as soon as threshold stake
has signed. The members it did not wait for still answer: their requests run to the end, so the
leader's keep-alive connection to each member stays open for the next round instead of being
torn down (and paid for again) every time a member is not among the quickest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from keeper.core.messages import BatchRequest, BatchResponse
from tests.harness import TIME, selector, time_trigger
from tests.node.support import executions_after
from tests.nodes import Network, start_network

SLOW_SECONDS = 0.3


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


def closed_connections_to(port: int) -> int:
    """Loopback sockets that connected to `port` and were closed by their client side."""
    return sum(
        1
        for c in psutil.net_connections(kind="tcp4")
        if c.status == psutil.CONN_TIME_WAIT and c.raddr and c.raddr.port == port
    )


async def test_a_member_slower_than_the_threshold_is_heard_on_the_same_connection(
    network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    # given the member with the smallest stake (1 of 10 ether) answering 0.3 s late: any other
    # leader reaches 6667 bps with the two quicker members and never waits for it
    slow = network.nodes[0]
    assert slow.member is not None
    answer = slow.member.handle_batch

    async def late_answer(batch: BatchRequest) -> BatchResponse:
        await asyncio.sleep(SLOW_SECONDS)
        return await answer(batch)

    slow.member.handle_batch = late_answer  # type: ignore[method-assign]
    closed_before = closed_connections_to(slow.port)
    net = network.net
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))

    # when three rounds execute
    caplog.set_level(logging.INFO, logger="keeper.node.leader")
    executions = await executions_after(network, job_id, 3, max_blocks=25)
    await asyncio.sleep(2 * SLOW_SECONDS)

    # then leaders heard the slow member's answers after their rounds were decided (by then the
    # chain had closed the round, so the answer is a refusal, and a refusal is an answer)
    assert any(e["args"]["executor"] != slow.address for e in executions)
    late = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(f"peer.refused member={slow.address} code=RoundDone")
    ]
    assert late
    # and no leader closed its connection to the slow member to stop waiting
    assert closed_connections_to(slow.port) == closed_before
