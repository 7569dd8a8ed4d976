"""Four nodes run a Time job: each due slot executes exactly once, by the quorum's agreement."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import TIME, selector, time_trigger
from tests.nodes import Network, start_network


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


async def test_time_job_executes_each_slot_once(network: Network) -> None:
    net = network.net
    # given a job every 60 s (5 blocks of 12 s)
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))

    # when the network runs for three slots
    async def three_rounds() -> bool:
        return len(await network.executions(job_id)) >= 3

    await network.step_until(three_rounds, max_blocks=30)

    # then each execution took a new slot on the grid, in order, once
    executions = await network.executions(job_id)
    start = (await net.job(job_id))["startTime"]
    cursors = [e["args"]["cursor"] for e in executions]
    assert cursors == sorted(set(cursors))
    assert all((c - start) % 60 == 0 for c in cursors)
    assert [e["args"]["round"] for e in executions] == list(range(len(executions)))
    assert await net.target.functions.timeCount().call() == len(executions)
