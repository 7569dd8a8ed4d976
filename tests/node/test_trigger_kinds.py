"""Four nodes (stakes 1..4 ether, one quorum) run one job of each trigger kind.

Protocol, trigger table: every execution raises the job's cursor. Cron cursors are fire times,
Event cursors are `(logBlock << 32) | logIndex` of a log confirmed at the check block, Condition
cursors are check blocks spaced by minInterval. Exactly once: JobExecuted rounds are 0..n-1.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from web3.contract import AsyncContract

from keeper.chain.contracts import deploy_contract
from keeper.core.triggers import compute_event_cursor
from tests.harness import (
    CONDITION,
    CRON,
    EVENT,
    condition_trigger,
    cron_trigger,
    event_trigger,
    selector,
)
from tests.node.support import (
    DEMO_EVENT,
    assert_exactly_once,
    block_timestamp,
    counter,
    executions_after,
)
from tests.nodes import Network, start_network


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


# ----------------------------------------------------------------------- Cron


async def test_cron_job_fires_once_per_minute(network: Network) -> None:
    net = network.net
    # given a Cron job firing every minute
    job_id = await net.create_job(net.spec(CRON, cron_trigger("* * * * *"), selector("onCron()")))

    # when the network runs for three fire times (a minute is five 12 s blocks)
    executions = await executions_after(network, job_id, 3, max_blocks=25)

    # then each execution took one fire time: whole minutes, strictly increasing, none skipped
    cursors = [e["args"]["cursor"] for e in executions]
    assert all(c % 60 == 0 for c in cursors)
    assert all(b - a == 60 for a, b in itertools.pairwise(cursors))
    # and no fire time ran before its minute had come on-chain
    for execution in executions:
        assert execution["args"]["cursor"] <= await block_timestamp(
            network, execution["blockNumber"]
        )
        assert execution["args"]["success"] is True
    # and the target ran once per execution, each round once
    await assert_exactly_once(network, job_id)
    assert await counter(net.target, "cronCount") == len(executions)


# ----------------------------------------------------------------------- Event


async def emit(network: Network, emitter: AsyncContract, tag: int) -> Any:
    """DemoEvent(tag, tag * 10) from the owner, in its own block; returns the log."""
    net = network.net
    receipt = await net.tx(emitter.functions.emitDemo(tag, tag * 10), net.owner)
    (log,) = await net.events(emitter, "DemoEvent", receipt)
    return log


async def test_event_job_fires_once_per_log_after_its_confirmations(network: Network) -> None:
    net = network.net
    # given a DemoEvent emitted before any job listens for it
    old = await emit(network, net.target, 1)
    # and an Event job on the target's DemoEvent with two confirmations
    trigger = event_trigger(net.target.address, [DEMO_EVENT], confirmations=2)
    job_id = await net.create_job(net.spec(EVENT, trigger, selector("onEvent()")))
    # and a second DemoTarget emitting the same event (same topic0, other emitter)
    other = await deploy_contract(net.w3, "DemoTarget", net.deployer.address, 60)

    # when the other emitter logs, then the target logs three times, each in its own block
    # (eth-tester numbers logIndex per transaction, not per block, so two transactions' logs
    # in one block would share a cursor there; anvil and real nodes number them per block)
    await emit(network, other, 2)
    logs = [await emit(network, net.target, tag) for tag in (3, 4, 5)]
    # and the network runs until those logs have fired, then a while longer
    await executions_after(network, job_id, 3, max_blocks=20)
    await network.step(8)

    # then each log after the job's creation fired exactly once, in log order
    executions = await assert_exactly_once(network, job_id)
    fired = [e["args"]["cursor"] for e in executions]
    assert fired == [compute_event_cursor(lg["blockNumber"], lg["logIndex"]) for lg in logs]
    assert compute_event_cursor(old["blockNumber"], old["logIndex"]) not in fired
    assert await counter(net.target, "eventCount") == 3
    assert await counter(other, "eventCount") == 0
    # and none before two blocks had confirmed it (the check block is before the executing one)
    for log, execution in zip(logs, executions, strict=True):
        assert execution["blockNumber"] > log["blockNumber"] + 2
        assert execution["args"]["success"] is True


# ----------------------------------------------------------------------- Condition, mode 0


async def test_condition_job_runs_when_the_resolver_has_work(network: Network) -> None:
    net = network.net
    # given a Condition job on the target's resolver checker(), at least 3 blocks apart
    trigger = condition_trigger(net.target.address, selector("checker()"), mode=0, min_interval=3)
    job_id = await net.create_job(net.spec(CONDITION, trigger, b""))

    # when the network runs while no work is pending
    await network.step(8)
    # then nothing executes
    assert await network.executions(job_id) == []

    # when work of 5 is requested
    await net.tx(net.target.functions.request(5), net.owner)
    await executions_after(network, job_id, 1, max_blocks=10)
    # then it executes once with the resolver's payload, and not again without new work
    await network.step(8)
    assert len(await network.executions(job_id)) == 1
    assert await counter(net.target, "conditionTotal") == 5
    assert await counter(net.target, "pending") == 0

    # when work of 7 is requested
    await net.tx(net.target.functions.request(7), net.owner)
    await executions_after(network, job_id, 2, max_blocks=10)
    await network.step(8)

    # then it ran once more, carrying the new amount
    executions = await assert_exactly_once(network, job_id)
    assert len(executions) == 2
    assert await counter(net.target, "conditionTotal") == 5 + 7
    assert await counter(net.target, "conditionCount") == 2
    # and its cursors are check blocks, before the executing block, at least 3 blocks apart
    first, second = (e["args"]["cursor"] for e in executions)
    assert all(e["args"]["cursor"] < e["blockNumber"] for e in executions)
    assert second >= first + 3


# ----------------------------------------------------------------------- Condition, mode 1


async def test_automation_compatible_upkeep_runs_once_per_interval(network: Network) -> None:
    net = network.net
    # given an Automation-compatible job: checkUpkeep(checkData) resolves, performUpkeep runs
    check_data = b"shard-7"
    resolver_calldata = selector("checkUpkeep(bytes)") + abi_encode(["bytes"], [check_data])
    trigger = condition_trigger(net.target.address, resolver_calldata, mode=1, min_interval=1)
    job_id = await net.create_job(net.spec(CONDITION, trigger, b""))

    # when the network runs for three upkeeps (the target asks for one every 60 s)
    await executions_after(network, job_id, 3, max_blocks=30)
    await network.step(2)

    # then every upkeep succeeded, once per round, and the target counted each
    executions = await assert_exactly_once(network, job_id)
    assert all(e["args"]["success"] is True for e in executions)
    assert await counter(net.target, "upkeepCount") == len(executions)
    # and no two ran less than the upkeep interval apart in chain time
    stamps = [await block_timestamp(network, e["blockNumber"]) for e in executions]
    assert all(b >= a + 60 for a, b in itertools.pairwise(stamps))
    # and the performData the quorum attested is checkUpkeep's answer at the check block
    last = executions[-1]["args"]["cursor"]
    checked_at = await counter(net.target, "lastCheckedAt")
    assert checked_at == await block_timestamp(network, last)
