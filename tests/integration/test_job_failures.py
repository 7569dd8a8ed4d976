"""Failures stop costing, and the chain says why: a failed call is recorded with its revert
reason, a job that fails N times in a row pauses itself, and an execution that leaves a job
below its minimum balance says so. The minimum balance is one worst-case execution at this
block's price, not at the network's cap."""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode as abi_encode
from web3.contract import AsyncContract

from keeper.chain.contracts import DeployParams, deploy_contracts
from tests.harness import NO_PAYLOAD, TIME, Net, deploy_contract, reverts, selector, time_trigger
from tests.integration.execute_support import (
    INTERVAL,
    Round,
    create_time_job,
    prepare_round,
    time_round,
)

GWEI = 10**9
FLAKY = selector("flaky()")
REFUSED_7 = selector("Refused(uint256)") + abi_encode(["uint256"], [7])
PAUSED = 2
ACTIVE = 1


async def flaky_target(net: Net, failing: bool = True) -> AsyncContract:
    target = await deploy_contract(net.w3, "MaliciousTarget", net.deployer.address, net.tm.address)
    await net.tx(target.functions.setFailing(failing), net.deployer)
    return target


async def create_job_calling(net: Net, target: str, call_data: bytes) -> tuple[int, int]:
    """A Time job every INTERVAL seconds calling `call_data` on `target`: (jobId, startTime)."""
    spec = net.spec(TIME, time_trigger(INTERVAL), call_data, target=target)
    job_id = await net.create_job(spec)
    return job_id, (await net.job(job_id))["startTime"]


async def next_round(net: Net, job_id: int, previous: Round, payload: bytes) -> Round:
    """The job's next Time slot, due: a round for it."""
    cursor = previous.report.cursor + INTERVAL
    net.time_travel(cursor + 5)
    return await prepare_round(net, job_id, cursor, payload)


async def events(net: Net, name: str, receipt: Any) -> list[Any]:
    return list(await net.events(net.tm, name, receipt))


async def run_failing_rounds(net: Net, count: int) -> tuple[int, AsyncContract, list[Any]]:
    """A Time job on a target that refuses, executed `count` times; their receipts."""
    target = await flaky_target(net)
    job_id, start = await create_job_calling(net, target.address, FLAKY)
    net.time_travel(start + INTERVAL + INTERVAL // 2)
    current = await prepare_round(net, job_id, start + INTERVAL, NO_PAYLOAD)
    receipts = [await current.submit()]
    for _ in range(count - 1):
        current = await next_round(net, job_id, current, NO_PAYLOAD)
        receipts.append(await current.submit())
    return job_id, target, receipts


async def test_a_failed_call_is_recorded_with_its_revert_reason(net4: Net) -> None:
    # given a job whose target reverts with Refused(7)
    job_id, _, (receipt,) = await run_failing_rounds(net4, 1)
    # then the execution is a paid failure and JobFailed carries the target's revert data
    (executed,) = await events(net4, "JobExecuted", receipt)
    assert executed["args"]["success"] is False and executed["args"]["payment"] > 0
    (failed,) = await events(net4, "JobFailed", receipt)
    assert (failed["args"]["jobId"], failed["args"]["round"]) == (job_id, 0)
    assert bytes(failed["args"]["reason"]) == REFUSED_7
    # and the job counts one failure in a row
    assert (await net4.job(job_id))["failures"] == 1


async def test_a_revert_bomb_is_cut_to_256_bytes(net4: Net) -> None:
    # given a target that reverts with 100 kB of data (the executor must not pay to copy it)
    target = await flaky_target(net4, failing=False)
    payload = selector("revertBomb(uint256)") + abi_encode(["uint256"], [100_000])
    job_id, start = await create_job_calling(net4, target.address, payload)
    net4.time_travel(start + INTERVAL + INTERVAL // 2)
    receipt = await (await prepare_round(net4, job_id, start + INTERVAL, NO_PAYLOAD)).submit()
    # then the reason kept is its first MAX_REASON_BYTES bytes
    (failed,) = await events(net4, "JobFailed", receipt)
    assert len(bytes(failed["args"]["reason"])) == 256


async def test_a_job_pauses_itself_after_three_failures_in_a_row(net4: Net) -> None:
    # given a new job (DEFAULT_MAX_FAILURES = 3) whose target always refuses
    assert await net4.tm.functions.DEFAULT_MAX_FAILURES().call() == 3
    job_id, _, receipts = await run_failing_rounds(net4, 3)
    # then the first two failures leave it active
    for receipt in receipts[:2]:
        assert await events(net4, "JobAutoPaused", receipt) == []
    # and the third pauses it, with JobPaused for every monitor and JobAutoPaused saying why
    (auto,) = await events(net4, "JobAutoPaused", receipts[2])
    assert (auto["args"]["jobId"], auto["args"]["failures"]) == (job_id, 3)
    assert len(await events(net4, "JobPaused", receipts[2])) == 1
    job = await net4.job(job_id)
    assert (job["status"], job["failures"], job["maxFailures"]) == (PAUSED, 3, 3)
    # and a round checked after the pause is refused: no fourth failure is paid for
    cursor = (await net4.job(job_id))["lastCursor"] + INTERVAL
    net4.time_travel(cursor + 5)
    fourth = await prepare_round(net4, job_id, cursor, NO_PAYLOAD)
    await fourth.rejected("JobIsPaused")
    # and the owner's resume starts the count again
    await net4.tx(net4.tm.functions.resume(job_id), net4.owner)
    job = await net4.job(job_id)
    assert (job["status"], job["failures"]) == (ACTIVE, 0)


async def test_a_success_ends_a_run_of_failures(net4: Net) -> None:
    # given a job that failed twice in a row
    target = await flaky_target(net4)
    job_id, start = await create_job_calling(net4, target.address, FLAKY)
    net4.time_travel(start + INTERVAL + INTERVAL // 2)
    current = await prepare_round(net4, job_id, start + INTERVAL, NO_PAYLOAD)
    await current.submit()
    current = await next_round(net4, job_id, current, NO_PAYLOAD)
    await current.submit()
    assert (await net4.job(job_id))["failures"] == 2
    # when its target works again and it executes
    await net4.tx(target.functions.setFailing(False), net4.deployer)
    current = await next_round(net4, job_id, current, NO_PAYLOAD)
    receipt = await current.submit()
    # then the count is back at zero, so two more failures do not pause it
    assert (await events(net4, "JobExecuted", receipt))[0]["args"]["success"] is True
    assert (await net4.job(job_id))["failures"] == 0
    await net4.tx(target.functions.setFailing(True), net4.deployer)
    for _ in range(2):
        current = await next_round(net4, job_id, current, NO_PAYLOAD)
        await current.submit()
    assert (await net4.job(job_id))["status"] == ACTIVE


async def test_the_owner_sets_how_many_failures_pause_the_job(net4: Net) -> None:
    target = await flaky_target(net4)
    job_id, start = await create_job_calling(net4, target.address, FLAKY)
    set_max = net4.tm.functions.setMaxFailures
    # a stranger cannot, and 255 is out of range
    assert await reverts(net4.tx(set_max(job_id, 1), net4.deployer), "NotJobOwner")
    assert await reverts(net4.tx(set_max(job_id, 255), net4.owner), "MaxFailuresOutOfRange")
    # 0 means never: four failures leave the job active
    receipt = await net4.tx(set_max(job_id, 0), net4.owner)
    (event,) = await events(net4, "MaxFailuresSet", receipt)
    assert event["args"]["maxFailures"] == 0
    assert (await net4.job(job_id))["maxFailures"] == 0
    net4.time_travel(start + INTERVAL + INTERVAL // 2)
    current = await prepare_round(net4, job_id, start + INTERVAL, NO_PAYLOAD)
    await current.submit()
    for _ in range(3):
        current = await next_round(net4, job_id, current, NO_PAYLOAD)
        await current.submit()
    job = await net4.job(job_id)
    assert (job["status"], job["failures"]) == (ACTIVE, 4)
    # and 1 pauses it at the next failure
    await net4.tx(set_max(job_id, 1), net4.owner)
    current = await next_round(net4, job_id, current, NO_PAYLOAD)
    receipt = await current.submit()
    assert len(await events(net4, "JobAutoPaused", receipt)) == 1


async def test_an_execution_that_leaves_too_little_says_so(net4: Net) -> None:
    # given a job funded with exactly one worst-case execution
    required = await net4.required_deposit()
    first = await time_round(net4, deposit=required)
    # when it executes
    receipt = await first.submit()
    # then JobUnderfunded says what it has and what it needs
    balance = (await net4.job(first.job_id))["balance"]
    (event,) = await events(net4, "JobUnderfunded", receipt)
    assert event["args"]["jobId"] == first.job_id
    assert event["args"]["balance"] == balance < event["args"]["required"]
    # and a well-funded job's execution emits nothing of the kind
    second = await time_round(net4)
    assert await events(net4, "JobUnderfunded", await second.submit()) == []


async def test_the_deposit_is_one_worst_case_execution_at_this_blocks_price(net4: Net) -> None:
    # given the rule: (gas limit + MAX_EXECUTION_OVERHEAD_GAS) at min(base fee + the largest
    # tip, the network's cap, the job's maximum), plus the premium
    tm = net4.tm.functions
    cap, tip, premium = net4.params.gas_price_cap, net4.params.max_priority_fee, net4.params.premium
    overhead = await tm.MAX_EXECUTION_OVERHEAD_GAS().call()
    assert overhead == 150_000
    base_fee = (await net4.w3.eth.get_block("latest"))["baseFeePerGas"]
    price = min(base_fee + tip, cap)
    assert price < cap // 10  # the case the old cap-priced rule got 10x+ wrong
    # then the deposit follows this block's price, not the cap
    assert await tm.requiredDeposit(200_000, 0).call() == (200_000 + overhead) * price + premium
    # and a job's own maximum below that price lowers it, one above changes nothing
    low = price // 2
    assert await tm.requiredDeposit(200_000, low).call() == (200_000 + overhead) * low + premium
    assert await tm.requiredDeposit(200_000, cap).call() == (200_000 + overhead) * price + premium
    # and a job's minBalance and runway agree with it
    job_id, _ = await create_time_job(net4, max_gas_price=low)
    minimum = await tm.minBalance(job_id).call()
    assert minimum == await tm.requiredDeposit(200_000, low).call()
    executions, cost = await tm.runway(job_id).call()
    assert cost == minimum and executions == (await net4.job(job_id))["balance"] // cost


async def test_the_turn_length_is_the_networks_not_each_nodes(net4: Net) -> None:
    # every keeper reads the turn length from the registry
    assert await net4.registry.functions.turnBlocks().call() == net4.params.turn_blocks
    # and a registry without turns cannot be deployed
    params = DeployParams(turn_blocks=0)
    await reverts(deploy_contracts(net4.w3, net4.deployer.address, params), "InvalidConfig")
