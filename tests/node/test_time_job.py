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


async def test_a_job_priced_out_by_its_own_max_gas_price_waits_and_costs_nothing(
    network: Network,
) -> None:
    net = network.net
    # given two Time jobs every 60 s: one pays at most 1 wei per gas (below any base fee plus
    # a tip), the other at most 100 gwei
    cheap = await net.create_job(
        net.spec(TIME, time_trigger(60), selector("onTime()"), max_gas_price=1)
    )
    capped = await net.create_job(
        net.spec(TIME, time_trigger(60), selector("onTime()"), max_gas_price=100 * 10**9)
    )

    # when the network runs until the capped job has executed twice
    async def two_rounds() -> bool:
        return len(await network.executions(capped)) >= 2

    await network.step_until(two_rounds, max_blocks=30)

    # then the cheap job never executed and no keeper sent (or paid for) a transaction for it
    assert await network.executions(cheap) == []
    assert (await net.job(cheap))["round"] == 0
    for node in network.nodes.values():
        purposes = {tx.purpose for tx in await node.store.pending_txs("mined")}
        purposes |= {tx.purpose for tx in await node.store.pending_txs("pending")}
        assert not any(p.startswith(f"execute:{cheap}:") for p in purposes), purposes
    # and the capped job was billed at most its own maximum per gas
    for execution in await network.executions(capped):
        receipt = await net.w3.eth.get_transaction_receipt(execution["transactionHash"])
        assert (
            execution["args"]["payment"]
            <= (receipt["gasUsed"] + 10_000) * 100 * 10**9 + net.params.premium
        )
