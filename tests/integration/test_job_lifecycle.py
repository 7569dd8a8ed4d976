"""A job's life as its owner and its keepers see it: create, fund, pause, resume, cancel, get paid.

Protocol: "Job owner: registers a job on-chain, funds it, pauses, cancels" and the executor is
paid from the job's balance, "credited to a withdrawable balance (pull payment)".
"""

from __future__ import annotations

from typing import Any

import pytest
from web3.types import TxReceipt

from keeper.chain.contracts import get_logs_paged
from keeper.errors import ContractRevert
from tests.harness import ETHER, NO_PAYLOAD, TIME, Net, selector, time_trigger

ACTIVE, PAUSED, CANCELLED = 1, 2, 3
MAX_CHECK_AGE = 128  # TaskManager.MAX_CHECK_AGE: blocks between cancel and withdrawFunds
ON_TIME = selector("onTime()")


def gas_cost(receipt: TxReceipt) -> int:
    """What the sender paid for a transaction, in wei."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


async def create_time_job(net: Net, deposit: int | None = None) -> int:
    return await net.create_job(net.spec(TIME, time_trigger(60), ON_TIME), value=deposit)


async def reverts(net: Net, fn: Any, sender: Any, error: str, value: int = 0) -> ContractRevert:
    with pytest.raises(ContractRevert) as e:
        await net.tx(fn, sender, value=value)
    assert e.value.error_name == error
    return e.value


async def run_first_slot(net: Net, job_id: int) -> Any:
    """The quorum executes the job's first slot; returns the JobExecuted event."""
    start = (await net.job(job_id))["startTime"]
    net.time_travel(start + 5)
    receipt = await net.execute_round(job_id, start, NO_PAYLOAD)
    (event,) = await net.events(net.tm, "JobExecuted", receipt)
    return event


# ----------------------------------------------------------------------- create and fund


async def test_create_records_the_deposit(net: Net) -> None:
    # given the TaskManager's holdings before
    held = await net.balance(net.tm.address)
    deposit = 3 * await net.required_deposit()
    # when the owner creates a job with a deposit
    job_id = await create_time_job(net, deposit)
    # then the job is active, owned by its creator and funded with exactly the deposit
    job = await net.job(job_id)
    assert (job["owner"], job["status"], job["balance"]) == (net.owner.address, ACTIVE, deposit)
    assert await net.balance(net.tm.address) == held + deposit


async def test_anyone_may_fund_a_job(net: Net) -> None:
    # given a job and an account that does not own it
    deposit = await net.required_deposit()
    job_id = await create_time_job(net, deposit)
    stranger = net.keepers[0]
    held = await net.balance(net.tm.address)
    # when the stranger funds it
    receipt = await net.tx(net.tm.functions.fund(job_id), stranger, value=ETHER // 10)
    # then JobFunded tells who added what and the new balance, and the balances add up
    (event,) = await net.events(net.tm, "JobFunded", receipt)
    assert dict(event["args"]) == {
        "jobId": job_id,
        "from": stranger.address,
        "amount": ETHER // 10,
        "balance": deposit + ETHER // 10,
    }
    assert (await net.job(job_id))["balance"] == deposit + ETHER // 10
    assert await net.balance(net.tm.address) == held + ETHER // 10


async def test_funding_twice_adds_up(net: Net) -> None:
    deposit = await net.required_deposit()
    job_id = await create_time_job(net, deposit)
    await net.tx(net.tm.functions.fund(job_id), net.owner, value=7)
    await net.tx(net.tm.functions.fund(job_id), net.keepers[1], value=11)
    assert (await net.job(job_id))["balance"] == deposit + 18


async def test_funding_with_nothing_is_rejected(net: Net) -> None:
    job_id = await create_time_job(net)
    balance = (await net.job(job_id))["balance"]
    await reverts(net, net.tm.functions.fund(job_id), net.owner, "ZeroValue")
    assert (await net.job(job_id))["balance"] == balance


async def test_funding_an_unknown_job_is_rejected(net: Net) -> None:
    held = await net.balance(net.tm.address)
    err = await reverts(net, net.tm.functions.fund(99), net.owner, "UnknownJob", value=1)
    assert err.args == (99,)
    assert await net.balance(net.tm.address) == held


async def test_funding_a_cancelled_job_is_rejected(net: Net) -> None:
    # given a cancelled job, its balance kept until the owner withdraws it
    job_id = await create_time_job(net)
    await net.tx(net.tm.functions.cancel(job_id), net.owner)
    held = await net.balance(net.tm.address)
    balance = (await net.job(job_id))["balance"]
    # when / then funding it fails and no ether stays behind
    err = await reverts(net, net.tm.functions.fund(job_id), net.owner, "JobIsCancelled", value=1)
    assert err.args == (job_id,)
    assert await net.balance(net.tm.address) == held
    assert (await net.job(job_id))["balance"] == balance


# ----------------------------------------------------------------------- pause and resume


async def test_only_the_owner_may_pause(net: Net) -> None:
    # given a job and a keeper that does not own it
    job_id = await create_time_job(net)
    stranger = net.keepers[0]
    # when / then the stranger is turned away, naming both parties
    err = await reverts(net, net.tm.functions.pause(job_id), stranger, "NotJobOwner")
    assert err.args == (stranger.address.lower(), net.owner.address.lower())
    assert (await net.job(job_id))["status"] == ACTIVE


async def test_pause_then_pause_again(net: Net) -> None:
    # given an active job
    job_id = await create_time_job(net)
    # when the owner pauses it
    receipt = await net.tx(net.tm.functions.pause(job_id), net.owner)
    # then it is paused and says so
    (event,) = await net.events(net.tm, "JobPaused", receipt)
    assert event["args"]["jobId"] == job_id
    assert (await net.job(job_id))["status"] == PAUSED
    # and pausing twice is an error
    await reverts(net, net.tm.functions.pause(job_id), net.owner, "JobIsPaused")
    assert (await net.job(job_id))["status"] == PAUSED


async def test_resume_needs_a_paused_job(net: Net) -> None:
    # given an active job
    job_id = await create_time_job(net)
    # when / then resuming it is an error
    err = await reverts(net, net.tm.functions.resume(job_id), net.owner, "JobNotPaused")
    assert err.args == (job_id,)
    # and once paused, only the owner may resume it
    await net.tx(net.tm.functions.pause(job_id), net.owner)
    await reverts(net, net.tm.functions.resume(job_id), net.keepers[0], "NotJobOwner")
    receipt = await net.tx(net.tm.functions.resume(job_id), net.owner)
    (event,) = await net.events(net.tm, "JobResumed", receipt)
    assert event["args"]["jobId"] == job_id
    assert (await net.job(job_id))["status"] == ACTIVE


# ----------------------------------------------------------------------- cancel


async def test_cancelled_jobs_balance_is_withdrawn_after_the_delay(net: Net) -> None:
    # given a job funded by its owner and by a stranger
    job_id = await create_time_job(net, 2 * await net.required_deposit())
    await net.tx(net.tm.functions.fund(job_id), net.keepers[0], value=ETHER // 100)
    balance = (await net.job(job_id))["balance"]
    owner_before = await net.balance(net.owner.address)
    held = await net.balance(net.tm.address)
    # when the owner cancels it
    receipt = await net.tx(net.tm.functions.cancel(job_id), net.owner)
    # then nothing is paid out yet: the owner only paid the gas of the cancel, the job keeps
    # its balance, and JobCancelled names the first block the balance can be withdrawn in
    unlock = receipt["blockNumber"] + MAX_CHECK_AGE
    assert await net.tm.functions.MAX_CHECK_AGE().call() == MAX_CHECK_AGE
    (event,) = await net.events(net.tm, "JobCancelled", receipt)
    assert (event["args"]["jobId"], event["args"]["unlockBlock"]) == (job_id, unlock)
    assert await net.balance(net.owner.address) == owner_before - gas_cost(receipt)
    assert await net.balance(net.tm.address) == held
    job = await net.job(job_id)
    assert (job["status"], job["balance"], job["haltBlock"]) == (
        CANCELLED,
        balance,
        receipt["blockNumber"],
    )
    # when the owner withdraws before the unlock block, then FundsLocked(jobId, unlockBlock)
    withdraw = net.tm.functions.withdrawFunds(job_id)
    net.mine(unlock - 2 - await net.block_number())
    err = await reverts(net, withdraw, net.owner, "FundsLocked")
    assert err.args == (job_id, unlock)
    assert (await net.job(job_id))["balance"] == balance
    # when the owner withdraws in the unlock block, then it receives the whole balance
    net.mine(1)
    owner_before = await net.balance(net.owner.address)
    receipt = await net.tx(withdraw, net.owner)
    assert receipt["blockNumber"] == unlock
    assert await net.balance(net.owner.address) == owner_before + balance - gas_cost(receipt)
    assert await net.balance(net.tm.address) == held - balance
    (event,) = await net.events(net.tm, "JobFundsWithdrawn", receipt)
    assert dict(event["args"]) == {"jobId": job_id, "to": net.owner.address, "amount": balance}
    job = await net.job(job_id)
    assert (job["status"], job["balance"]) == (CANCELLED, 0)
    # and only once
    await reverts(net, withdraw, net.owner, "NothingToWithdraw")


async def test_withdraw_funds_needs_the_owner_and_a_cancelled_job(net: Net) -> None:
    # given an active job
    job_id = await create_time_job(net)
    withdraw = net.tm.functions.withdrawFunds(job_id)
    # when the owner withdraws its balance, then JobNotCancelled(jobId)
    err = await reverts(net, withdraw, net.owner, "JobNotCancelled")
    assert err.args == (job_id,)
    # and once cancelled and unlocked, a stranger cannot take it: NotJobOwner
    await net.tx(net.tm.functions.cancel(job_id), net.owner)
    net.mine(MAX_CHECK_AGE)
    err = await reverts(net, withdraw, net.keepers[0], "NotJobOwner")
    assert err.args == (net.keepers[0].address.lower(), net.owner.address.lower())
    assert (await net.job(job_id))["balance"] > 0
    await net.tx(withdraw, net.owner)
    assert (await net.job(job_id))["balance"] == 0


async def test_cancel_is_owner_only_and_final(net: Net) -> None:
    # given a job
    job_id = await create_time_job(net)
    # when a stranger tries to cancel it, then it is refused
    await reverts(net, net.tm.functions.cancel(job_id), net.keepers[0], "NotJobOwner")
    # when the owner cancels it, then it cannot be cancelled, paused or resumed any more
    await net.tx(net.tm.functions.cancel(job_id), net.owner)
    await reverts(net, net.tm.functions.cancel(job_id), net.owner, "JobIsCancelled")
    await reverts(net, net.tm.functions.pause(job_id), net.owner, "JobIsCancelled")
    await reverts(net, net.tm.functions.resume(job_id), net.owner, "JobNotPaused")
    assert (await net.job(job_id))["status"] == CANCELLED


# ----------------------------------------------------------------------- earnings


async def test_an_executed_round_pays_the_executor(net4: Net) -> None:
    # given a funded time job
    job_id = await create_time_job(net4)
    balance = (await net4.job(job_id))["balance"]
    # when its quorum executes the first slot
    event = await run_first_slot(net4, job_id)
    # then the executor is credited the payment, taken from the job's balance
    executor, payment = event["args"]["executor"], event["args"]["payment"]
    premium = int(await net4.tm.functions.premium().call())
    assert payment > premium
    assert await net4.tm.functions.earnings(executor).call() == payment
    assert (await net4.job(job_id))["balance"] == balance - payment


async def execute_slots(net: Net, job_id: int, slots: int) -> list[tuple[TxReceipt, Any]]:
    """Executes the job's first `slots` slots (60 s apart); returns each receipt and JobExecuted."""
    start = (await net.job(job_id))["startTime"]
    done = []
    for k in range(slots):
        net.time_travel(start + 60 * k + 5)
        receipt = await net.execute_round(job_id, start + 60 * k, NO_PAYLOAD)
        (event,) = await net.events(net.tm, "JobExecuted", receipt)
        done.append((receipt, event))
    return done


async def test_payment_is_gas_at_the_capped_price_plus_premium(net4: Net) -> None:
    # given a funded time job
    job_id = await create_time_job(net4)
    # when its first slot is executed at a gas price below the cap
    ((receipt, event),) = await execute_slots(net4, job_id, 1)
    price = int(receipt["effectiveGasPrice"])
    assert price < net4.params.gas_price_cap
    # then the payment is whole gas units at the transaction's price plus the premium
    premium = int(await net4.tm.functions.premium().call())
    billed_gas, remainder = divmod(event["args"]["payment"] - premium, price)
    assert remainder == 0
    assert billed_gas > 21_000 + 50_000  # the base, plus execute's own work at least
    # and at this price the executor does not work for free: the payment covers its gas
    assert event["args"]["payment"] > gas_cost(receipt)


async def test_billed_gas_covers_the_executors_gas(net4: Net) -> None:
    # given a funded time job
    job_id = await create_time_job(net4)
    premium = int(await net4.tm.functions.premium().call())
    # when the same executor runs two rounds
    for receipt, event in await execute_slots(net4, job_id, 2):
        # then each time the gas billed is at least the gas the executor's transaction used
        billed_gas = (event["args"]["payment"] - premium) // int(receipt["effectiveGasPrice"])
        assert billed_gas >= int(receipt["gasUsed"])
        # and not much more: calldata is billed at 16 gas a byte, zero bytes included
        assert billed_gas <= int(receipt["gasUsed"]) + 10_000


async def test_withdraw_earnings_pays_out_exactly_once(net4: Net) -> None:
    # given an executor with earnings from one round
    job_id = await create_time_job(net4)
    event = await run_first_slot(net4, job_id)
    executor = net4.account_of(event["args"]["executor"])
    earned = int(await net4.tm.functions.earnings(executor.address).call())
    assert earned == event["args"]["payment"]
    before = await net4.balance(executor.address)
    held = await net4.balance(net4.tm.address)
    # when it withdraws
    receipt = await net4.tx(net4.tm.functions.withdrawEarnings(), executor)
    # then it receives exactly its earnings, less the withdrawal's gas
    assert await net4.balance(executor.address) == before + earned - gas_cost(receipt)
    assert await net4.balance(net4.tm.address) == held - earned
    (withdrawn,) = await net4.events(net4.tm, "EarningsWithdrawn", receipt)
    assert (withdrawn["args"]["keeper"], withdrawn["args"]["amount"]) == (executor.address, earned)
    assert await net4.tm.functions.earnings(executor.address).call() == 0
    # and a second withdrawal has nothing to pay
    await reverts(net4, net4.tm.functions.withdrawEarnings(), executor, "NothingToWithdraw")


async def test_a_keeper_without_earnings_cannot_withdraw(net4: Net) -> None:
    await reverts(net4, net4.tm.functions.withdrawEarnings(), net4.keepers[0], "NothingToWithdraw")


async def test_job_logs_are_read_in_pages_and_none_is_lost(net: Net) -> None:
    # Public RPCs cap eth_getLogs ranges, so `keeper job list/show` read logs page by page.
    first = await net.w3.eth.block_number
    job_ids = [await create_time_job(net) for _ in range(3)]
    for page in (1, 2, 10_000):
        logs = await get_logs_paged(net.tm.events.JobCreated(), first, page=page)
        assert [int(lg["args"]["jobId"]) for lg in logs] == job_ids
    (only,) = await get_logs_paged(net.tm.events.JobCreated(), first, {"jobId": job_ids[1]}, page=1)
    assert int(only["args"]["jobId"]) == job_ids[1]
