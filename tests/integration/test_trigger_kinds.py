"""Each trigger kind executed the way the protocol's table describes, and hostile targets.

Protocol: every execution must raise the job's cursor; Time cursors sit on the slot grid,
Cron cursors are fire times, Event cursors are `(logBlock << 32) | logIndex`, Condition
cursors are check blocks. A target that burns gas, returns huge data or reenters still
completes exactly one paid round.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3.contract import AsyncContract
from web3.types import TxReceipt

from keeper.chain.contracts import call, deploy_contract
from keeper.core.quorum import Member
from keeper.core.report import Report
from keeper.errors import ChainError, ContractRevert
from tests.harness import (
    CONDITION,
    CRON,
    EVENT,
    NO_PAYLOAD,
    TIME,
    Net,
    condition_trigger,
    cron_trigger,
    event_trigger,
    execute_error,
    selector,
    time_trigger,
)

ZERO_ADDRESS = "0x" + "00" * 20
DEMO_EVENT = keccak(text="DemoEvent(address,uint256,uint256)")
POST_CALL_GAS = 30_000  # TaskManager.POST_CALL_GAS
FORWARDER_GAS = 5_000  # TaskManager.FORWARDER_GAS


async def executed(net: Net, receipt: TxReceipt) -> Any:
    """The one JobExecuted event of an execute receipt."""
    (event,) = await net.events(net.tm, "JobExecuted", receipt)
    return event["args"]


async def counter(contract: AsyncContract, name: str) -> int:
    return int(await getattr(contract.functions, name)().call())


def execute_fn(net: Net, report: Report, payload: bytes, members: list[Member]) -> Any:
    """The `execute` call for `report`, signed by every member."""
    return net.execute_fn([report], [payload], members)


async def time_job(
    net: Net,
    call_data: bytes,
    target: str | None = None,
    gas_limit: int = 200_000,
    interval: int = 60,
) -> tuple[int, int]:
    """A Time job; returns its id and start time."""
    spec = net.spec(TIME, time_trigger(interval), call_data, target=target, gas_limit=gas_limit)
    job_id = await net.create_job(spec)
    return job_id, (await net.job(job_id))["startTime"]


# ----------------------------------------------------------------------- Time


async def test_time_job_executes_on_the_slot_grid(net4: Net) -> None:
    # given a Time job every 60 s on the demo target
    payload = selector("onTime()")
    job_id, start = await time_job(net4, payload)
    _, members = await net4.quorum_for_job(job_id)
    # when the first slot (the start) is due and executed
    net4.time_travel(start + 5)
    first = await executed(net4, await net4.execute_round(job_id, start, NO_PAYLOAD))
    # then the event tells the round, the slot, the executor, success and a paid, metered call
    assert (first["jobId"], first["round"], first["cursor"]) == (job_id, 0, start)
    assert (first["executor"], first["success"]) == (members[0].address, True)
    assert first["gasUsed"] > 0 and first["payment"] > 0
    assert await counter(net4.target, "timeCount") == 1
    # when the next slot, start + interval, comes due
    net4.time_travel(start + 65)
    second = await executed(net4, await net4.execute_round(job_id, start + 60, NO_PAYLOAD))
    # then it is round 1 with that slot as cursor
    assert (second["round"], second["cursor"], second["success"]) == (1, start + 60, True)
    assert await counter(net4.target, "timeCount") == 2
    # when three slots pass unexecuted, then the newest due one runs and the missed are skipped
    net4.time_travel(start + 245)
    third = await executed(net4, await net4.execute_round(job_id, start + 240, NO_PAYLOAD))
    assert (third["round"], third["cursor"]) == (2, start + 240)
    job = await net4.job(job_id)
    assert (job["round"], job["lastCursor"]) == (3, start + 240)
    assert await counter(net4.target, "timeCount") == 3


# ----------------------------------------------------------------------- Cron


def next_fire_time(expr: str, after: int) -> int:
    """The first fire time strictly after `after`, as keepers compute it (APScheduler, UTC)."""
    trigger = CronTrigger.from_crontab(expr, timezone=UTC)
    fire = trigger.get_next_fire_time(None, datetime.fromtimestamp(after + 1, UTC))
    assert fire is not None
    return int(fire.timestamp())


async def test_cron_job_executes_at_its_fire_times(net4: Net) -> None:
    # given a Cron job every five minutes
    payload = selector("onCron()")
    job_id = await net4.create_job(net4.spec(CRON, cron_trigger("*/5 * * * *"), payload))
    start = (await net4.job(job_id))["startTime"]
    # when the first fire time after the start has passed
    fire = next_fire_time("*/5 * * * *", start)
    assert start < fire <= start + 300 and fire % 300 == 0
    net4.time_travel(fire + 7)
    first = await executed(net4, await net4.execute_round(job_id, fire, NO_PAYLOAD))
    # then that fire time is the cursor of round 0
    assert (first["round"], first["cursor"], first["success"]) == (0, fire, True)
    assert fire <= await net4.timestamp()
    assert await counter(net4.target, "cronCount") == 1
    # when the next fire time has passed
    later = next_fire_time("*/5 * * * *", fire)
    assert later == fire + 300
    net4.time_travel(later + 3)
    second = await executed(net4, await net4.execute_round(job_id, later, NO_PAYLOAD))
    # then it is round 1 at the later fire time
    assert (second["round"], second["cursor"]) == (1, later)
    assert (await net4.job(job_id))["lastCursor"] == later
    assert await counter(net4.target, "cronCount") == 2


# ----------------------------------------------------------------------- Event


async def test_event_job_executes_after_the_confirmations(net4: Net) -> None:
    # given an Event job on DemoEvent of the demo target, two confirmations
    payload = selector("onEvent()")
    trigger = event_trigger(net4.target.address, [DEMO_EVENT], confirmations=2)
    job_id = await net4.create_job(net4.spec(EVENT, trigger, payload))
    # when the target emits the event in a later block
    receipt = await net4.tx(net4.target.functions.emitDemo(7, 42), net4.owner)
    (log,) = await net4.events(net4.target, "DemoEvent", receipt)
    log_block = int(log["blockNumber"])
    cursor = (log_block << 32) | int(log["logIndex"])
    assert (await net4.job(job_id))["lastCursor"] < cursor
    # and only one block has confirmed it, then the report is rejected
    net4.mine(1)
    with pytest.raises(ContractRevert) as e:
        await net4.execute_round(job_id, cursor, NO_PAYLOAD, check_block=log_block + 1)
    # (its only item skipped for LogNotConfirmed: nothing executed)
    assert e.value.error_name == execute_error("LogNotConfirmed")
    # when a second block confirms it and the quorum checks there
    net4.mine(1)
    assert await net4.block_number() == log_block + 2
    done = await executed(net4, await net4.execute_round(job_id, cursor, NO_PAYLOAD))
    # then the log's position is the cursor of round 0
    assert (done["round"], done["cursor"], done["success"]) == (0, cursor, True)
    assert (await net4.job(job_id))["lastCursor"] == cursor
    assert await counter(net4.target, "eventCount") == 1


# ----------------------------------------------------------------------- Condition


async def test_condition_job_mode_0_runs_the_resolvers_calldata(net4: Net) -> None:
    # given a Condition job on the demo resolver, at least 3 blocks apart
    trigger = condition_trigger(net4.target.address, selector("checker()"), mode=0, min_interval=3)
    job_id = await net4.create_job(net4.spec(CONDITION, trigger, b""))
    # when work is requested and the quorum evaluates the resolver at a check block
    await net4.tx(net4.target.functions.request(5), net4.owner)
    check = await net4.block_number()
    can_exec, data = await net4.target.functions.checker().call(block_identifier=check)
    assert can_exec is True
    assert data == selector("onCondition(uint256)") + abi_encode(["uint256"], [5])
    done = await executed(net4, await net4.execute_round(job_id, check, data, check_block=check))
    # then the check block is the cursor and the target got the resolver's payload
    assert (done["round"], done["cursor"], done["success"]) == (0, check, True)
    assert await counter(net4.target, "conditionTotal") == 5
    assert await counter(net4.target, "pending") == 0
    # when more work comes before minInterval blocks have passed
    await net4.tx(net4.target.functions.request(2), net4.owner)
    soon = await net4.block_number()
    assert soon < check + 3
    _, data = await net4.target.functions.checker().call(block_identifier=soon)
    with pytest.raises(ContractRevert) as e:
        await net4.execute_round(job_id, soon, data, check_block=soon)
    # then it must wait (its only item skipped for ConditionTooSoon: nothing executed)
    assert e.value.error_name == execute_error("ConditionTooSoon")
    # when the spacing is reached, then the second round runs
    net4.mine(check + 3 - soon)
    later = await net4.block_number()
    _, data = await net4.target.functions.checker().call(block_identifier=later)
    second = await executed(net4, await net4.execute_round(job_id, later, data, check_block=later))
    assert (second["round"], second["cursor"]) == (1, check + 3)
    assert await counter(net4.target, "conditionTotal") == 7


async def test_condition_job_mode_1_is_automation_compatible(net4: Net) -> None:
    # given a Condition job whose resolver is the target's checkUpkeep(checkData)
    check_data = b"shard-7"
    resolver_calldata = selector("checkUpkeep(bytes)") + abi_encode(["bytes"], [check_data])
    trigger = condition_trigger(net4.target.address, resolver_calldata, mode=1, min_interval=1)
    job_id = await net4.create_job(net4.spec(CONDITION, trigger, b""))
    # when the quorum evaluates checkUpkeep from the zero address at a check block
    check = await net4.block_number()
    # (explicit gas: eth-tester checks that the caller could pay for the default 30M gas)
    request = {"to": net4.target.address, "data": resolver_calldata, "from": ZERO_ADDRESS}
    raw = await net4.w3.eth.call({**request, "gas": 300_000}, check)
    needed, perform_data = abi_decode(["bool", "bytes"], bytes(raw))
    checked_at, echoed = abi_decode(["uint256", "bytes"], perform_data)
    assert needed is True and echoed == check_data
    assert checked_at == (await net4.w3.eth.get_block(check))["timestamp"]
    # and the executor passes performData as the payload
    receipt = await net4.execute_round(job_id, check, perform_data, check_block=check)
    done = await executed(net4, receipt)
    # then the TaskManager called performUpkeep(performData) on the target
    assert (done["round"], done["cursor"], done["success"]) == (0, check, True)
    assert await counter(net4.target, "upkeepCount") == 1
    assert await counter(net4.target, "lastCheckedAt") == checked_at


# ----------------------------------------------------------------------- hostile targets


async def malicious(net: Net) -> AsyncContract:
    return await deploy_contract(net.w3, "MaliciousTarget", net.deployer.address, net.tm.address)


async def test_target_burning_all_gas_is_a_paid_failed_round(net4: Net) -> None:
    # given a job whose target spins until its gas runs out
    target = await malicious(net4)
    payload = selector("burn()")
    job_id, start = await time_job(net4, payload, target=target.address, gas_limit=200_000)
    balance = (await net4.job(job_id))["balance"]
    # when the slot is executed
    net4.time_travel(start + 5)
    done = await executed(net4, await net4.execute_round(job_id, start, NO_PAYLOAD))
    # then the round is recorded as failed, having used all the gas it was given
    assert (done["round"], done["cursor"], done["success"]) == (0, start, False)
    assert done["gasUsed"] >= 200_000
    # and the round advanced and the executor was paid from the job
    job = await net4.job(job_id)
    assert (job["round"], job["lastCursor"]) == (1, start)
    assert done["payment"] > 0
    assert await net4.tm.functions.earnings(done["executor"]).call() == done["payment"]
    assert job["balance"] == balance - done["payment"]


async def test_huge_return_data_is_not_copied(net4: Net) -> None:
    # given jobs on a target that returns `size` bytes: 0 (twice: the first warms the executor's
    # earnings slot) and 100 000
    target = await malicious(net4)
    jobs = []
    for size in (0, 0, 100_000):
        payload = selector("bomb(uint256)") + abi_encode(["uint256"], [size])
        jobs.append((payload, *await time_job(net4, payload, target=target.address)))
    net4.time_travel(max(start for _, _, start in jobs) + 5)
    # when both execute
    overheads = []
    for _, job_id, start in jobs:
        receipt = await net4.execute_round(job_id, start, NO_PAYLOAD)
        done = await executed(net4, receipt)
        assert done["success"] is True
        # then the whole transaction stays well within the target's gas plus execute's own
        assert receipt["gasUsed"] < 200_000 + 150_000
        overheads.append(receipt["gasUsed"] - done["gasUsed"])
    # and execute's own gas does not grow with the returned size (copying 100 kB costs ~40k)
    assert abs(overheads[2] - overheads[1]) < 2_000


async def test_reentering_execute_gets_nothing(net4: Net) -> None:
    # given a job whose target replays the very execute call that runs it
    target = await malicious(net4)
    payload = selector("reenter()")
    job_id, start = await time_job(net4, payload, target=target.address, gas_limit=500_000)
    _, members = await net4.quorum_for_job(job_id)
    net4.time_travel(start + 5)
    report = await net4.make_report(job_id, start, NO_PAYLOAD, members[0].address)
    fn = execute_fn(net4, report, NO_PAYLOAD, members)
    await net4.tx(target.functions.arm(fn._encode_transaction_data()), net4.deployer)
    # when the executor submits it
    receipt = await net4.tx(fn, members[0].address)
    # then the round ran exactly once and the inner call failed
    (done,) = await net4.events(net4.tm, "JobExecuted", receipt)
    assert (done["args"]["round"], done["args"]["success"]) == (0, True)
    assert await target.functions.reentered().call() is True
    assert await target.functions.reentrySucceeded().call() is False
    assert (await net4.job(job_id))["round"] == 1


async def test_executor_must_forward_the_jobs_gas(net4: Net) -> None:
    # given a job that needs 1 000 000 gas for its target, and a signed report for its slot
    payload = selector("onTime()")
    job_id, start = await time_job(net4, payload, gas_limit=1_000_000)
    _, members = await net4.quorum_for_job(job_id)
    net4.time_travel(start + 5)
    report = await net4.make_report(job_id, start, NO_PAYLOAD, members[0].address)
    fn = execute_fn(net4, report, NO_PAYLOAD, members)
    before = await net4.job(job_id)
    # when the executor simulates it with only 700 000 gas, then it is told the target would starve
    with pytest.raises(ContractRevert) as e:
        await call(fn, {"from": members[0].address, "gas": 700_000}, block="pending")
    assert e.value.error_name == "InsufficientGasForTarget"
    # (the 63/64 rule applies twice: into the job's forwarder, then from it into the target)
    forwarder_gas = 1_000_000 * 64 // 63 + FORWARDER_GAS
    assert e.value.args[1] == forwarder_gas * 64 // 63 + POST_CALL_GAS
    # and sending it so anyway fails and spends nothing of the job
    with pytest.raises(ChainError):
        await net4.tx(fn, members[0].address, gas=700_000)
    assert await net4.job(job_id) == before
    assert await counter(net4.target, "timeCount") == 0
    # when the same report is sent with enough gas, then it runs as round 0
    done = await executed(net4, await net4.tx(fn, members[0].address, gas=1_400_000))
    assert (done["round"], done["success"]) == (0, True)
