"""Regression tests of the contracts v2 findings, job side: each test is named for the attack it
stops, and each would fail on the contracts before v2 (the reason is given per test).

Before v2 the TaskManager called every target itself: a job could borrow its address (which the
registry trusts to slash, and which naive targets trust as "my keeper"), executors chose the gas
price and the calldata length they were billed for, a target's top-up of its own job was lost,
cancel refunded at once under a report already signed, and a quorum could fire a Cron job at any
second. Keeper-side findings (stake weights, rotation, registry cap) are in test_attacks_quorum.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.contract import AsyncContract
from web3.types import TxReceipt

from keeper.chain.artifacts import load_artifact
from keeper.chain.calls import KeeperCalls
from keeper.chain.contracts import call, deploy_contract, revert_of, transact
from keeper.core.jobs import MAX_EXECUTION_OVERHEAD_GAS
from keeper.core.quorum import pack_signatures
from keeper.core.report import Batch
from tests.harness import (
    CONDITION,
    CRON,
    ETHER,
    NO_PAYLOAD,
    TIME,
    Net,
    condition_trigger,
    cron_trigger,
    gas_cost,
    reverts,
    selector,
    time_trigger,
)
from tests.integration.execute_support import (
    CHECKER,
    INTERVAL,
    ON_TIME,
    Round,
    assert_rejected,
    condition_round,
    create_condition_job,
    create_time_job,
    observe,
    prepare_round,
    time_round,
)

ACTIVE, PAUSED, CANCELLED = 1, 2, 3
GWEI = 10**9
MAX_CHECK_AGE = 128  # TaskManager.MAX_CHECK_AGE: blocks a report lives, and the cancel delay
CRON_GRID = 60  # TaskManager.CRON_GRID
ZERO_ADDRESS = "0x" + "00" * 20
BENEFICIARY = "0x000000000000000000000000000000000000bEEF"
ON_CRON = selector("onCron()")
PAYOUT = selector("payout()")
POKE = selector("poke()")
WORK = selector("work()")


# ----------------------------------------------------------------------- helpers


def calldata(contract: AsyncContract, fn: str, *args: Any) -> bytes:
    return bytes.fromhex(contract.encode_abi(fn, args=list(args))[2:])


async def send_raw(net: Net, sender: LocalAccount | str, to: str, data: bytes) -> TxReceipt:
    """A transaction with exactly `data` as calldata; reverts raise ContractRevert."""
    address = sender if isinstance(sender, str) else sender.address
    try:
        tx_hash = await net.w3.eth.send_transaction(
            {"from": address, "to": to, "data": "0x" + data.hex()}  # type: ignore[typeddict-item]
        )
    except Exception as exc:
        revert = revert_of(exc)
        if revert is None:
            raise
        raise revert from exc
    receipt = await net.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    return receipt


async def send_ether(net: Net, to: str, amount: int) -> None:
    tx_hash = await net.w3.eth.send_transaction(
        {"from": net.deployer.address, "to": to, "value": amount}
    )
    await net.w3.eth.wait_for_transaction_receipt(tx_hash)


async def executed(net: Net, receipt: TxReceipt) -> Any:
    """The JobExecuted event of an execute receipt."""
    (event,) = await net.events(net.tm, "JobExecuted", receipt)
    return event


async def run_first_slot(net: Net, job_id: int) -> Any:
    """The quorum executes the Time job's first slot (its start); returns JobExecuted."""
    start = (await net.job(job_id))["startTime"]
    if await net.timestamp() < start + 5:
        net.time_travel(start + 5)
    return await executed(net, await net.execute_round(job_id, start, NO_PAYLOAD))


def execute_calldata(net: Net, rnd: Round) -> bytes:
    """The canonical ABI encoding of `execute` for a round, signed by the whole quorum."""
    bitmap, packed = pack_signatures(rnd.members, net.sign(rnd.report, rnd.signers))
    calls = KeeperCalls(net.w3, net.registry, net.tm)
    return calls.execute_data(Batch.of([rnd.report]), [rnd.payload], rnd.members, bitmap, packed)


async def all_earnings(net: Net) -> int:
    accounts = [net.deployer, net.owner, *net.keepers]
    return sum([int(await net.tm.functions.earnings(a.address).call()) for a in accounts])


async def all_job_balances(net: Net) -> int:
    last = int(await net.tm.functions.nextJobId().call())
    return sum([(await net.job(j))["balance"] for j in range(1, last)])


# ----------------------------------------------------------------------- 1. privileged targets
#
# Before v2, createJob took any contract as target and the TaskManager called it directly: a
# Time job targeting the registry with calldata slash(keeper, attacker) made the TaskManager, the
# only account the registry lets slash, slash any keeper and pay the attacker the reward.


@pytest.mark.parametrize("which", ["registry", "task_manager", "forwarder"])
async def test_stranger_cannot_slash_through_a_job(net4: Net, which: str) -> None:
    # given a stranger (not a keeper) and, for the forwarder case, someone else's job
    stranger = net4.keepers[7]
    victim = net4.registered[0]
    other_job = await create_time_job(net4)
    target = {
        "registry": net4.registry.address,
        "task_manager": net4.tm.address,
        "forwarder": await net4.tm.functions.forwarderOf(other_job[0]).call(),
    }[which]
    slash = calldata(net4.registry, "slash", victim.address, stranger.address)
    spec = net4.spec(TIME, time_trigger(INTERVAL), slash, target=target)
    next_job = await net4.tm.functions.nextJobId().call()
    held = await net4.balance(net4.tm.address)
    # when the stranger registers a job whose target is privileged
    err = await reverts(
        net4.tx(net4.tm.functions.createJob(spec), stranger, value=await net4.required_deposit()),
        "ForbiddenTarget",
    )
    # then createJob refuses it, naming the target, and nothing was created or kept
    assert err.args == (target.lower(),)
    assert await net4.tm.functions.nextJobId().call() == next_job
    assert await net4.tm.functions.forwarderNonce(stranger.address).call() == 0
    assert await net4.balance(net4.tm.address) == held
    info = await net4.registry.functions.keeperInfo(victim.address).call()
    assert (info[0], info[1]) == (ETHER, ACTIVE)


@pytest.mark.parametrize("which", ["registry", "task_manager", "forwarder"])
async def test_stranger_cannot_use_a_privileged_contract_as_resolver(net4: Net, which: str) -> None:
    # given a stranger and a Condition trigger whose resolver is a privileged contract
    # (old contracts accepted any contract as resolver)
    stranger = net4.keepers[7]
    other_job, _ = await create_time_job(net4)
    resolver = {
        "registry": net4.registry.address,
        "task_manager": net4.tm.address,
        "forwarder": await net4.tm.functions.forwarderOf(other_job).call(),
    }[which]
    spec = net4.spec(CONDITION, condition_trigger(resolver, CHECKER), b"")
    next_job = await net4.tm.functions.nextJobId().call()
    # when the stranger registers it, then createJob refuses it with ForbiddenResolver
    err = await reverts(
        net4.tx(net4.tm.functions.createJob(spec), stranger, value=await net4.required_deposit()),
        "ForbiddenResolver",
    )
    assert err.args == (resolver.lower(),)
    assert await net4.tm.functions.nextJobId().call() == next_job


async def test_a_relay_target_cannot_slash_for_its_job(net4: Net) -> None:
    # The indirect route: this failed before v2 too (the registry sees the relay as its caller,
    # never the TaskManager), and stays closed with forwarders. The control of the test above.
    # given a stranger's job whose target relays its call to registry.slash(keeper, stranger)
    stranger = net4.keepers[7]
    victim = net4.registered[0]
    relay = await deploy_contract(net4.w3, "SlashRelay", stranger.address, net4.registry.address)
    relay_call = calldata(relay, "relay", victim.address, stranger.address)
    spec = net4.spec(TIME, time_trigger(INTERVAL), relay_call, target=relay.address)
    job_id = await net4.create_job(spec, owner=stranger)
    held = await net4.balance(net4.registry.address)
    stranger_balance = await net4.balance(stranger.address)
    # when the quorum executes the job
    event = await run_first_slot(net4, job_id)
    # then the round is recorded and paid, but the target's call failed: nobody was slashed
    assert event["args"]["success"] is False
    assert event["args"]["payment"] > 0
    assert (await net4.job(job_id))["round"] == 1
    stake, status, *_ = await net4.registry.functions.keeperInfo(victim.address).call()
    assert (stake, status) == (ETHER, ACTIVE)
    assert await net4.registry.functions.slashedFunds().call() == 0
    assert await net4.balance(net4.registry.address) == held
    assert await net4.balance(stranger.address) == stranger_balance


# ----------------------------------------------------------------------- 2. who targets see


async def test_no_job_can_drain_a_vault_that_trusts_the_task_manager(net4: Net) -> None:
    # Before v2 the vault's check `msg.sender == taskManager` held for every job's call, so any
    # account's job (not only the vault owner's) made it pay out 1 ether per execution.
    # given a vault holding 3 ether that pays 1 ether to its beneficiary per TaskManager call
    vault = await deploy_contract(
        net4.w3, "TrustingVault", net4.deployer.address, net4.tm.address, BENEFICIARY
    )
    await send_ether(net4, vault.address, 3 * ETHER)
    # and two jobs calling payout(): the owner's and a stranger's
    spec = net4.spec(TIME, time_trigger(INTERVAL), PAYOUT, target=vault.address)
    jobs = [
        await net4.create_job(spec),
        await net4.create_job(spec, owner=net4.keepers[7]),
    ]
    # when the quorum executes both
    for job_id in jobs:
        event = await run_first_slot(net4, job_id)
        # then each round is recorded and paid, but the vault refused its caller
        assert event["args"]["success"] is False
        assert event["args"]["payment"] > 0
        assert (await net4.job(job_id))["round"] == 1
    # and no ether left the vault
    assert await net4.balance(vault.address) == 3 * ETHER
    assert await net4.balance(BENEFICIARY) == 0
    assert await vault.functions.payouts().call() == 0


async def test_a_vault_trusting_its_jobs_forwarder_pays_that_job_only(net4: Net) -> None:
    # The control of the test above: the same vault code, trusting the owner's job forwarder
    # (nextForwarder before createJob) instead of the TaskManager, pays that job and no other.
    # (Before v2 nextForwarder did not exist, and the TaskManager was the only caller.)
    trusted = await net4.tm.functions.nextForwarder(net4.owner.address).call()
    vault = await deploy_contract(
        net4.w3, "TrustingVault", net4.deployer.address, trusted, BENEFICIARY
    )
    await send_ether(net4, vault.address, 3 * ETHER)
    spec = net4.spec(TIME, time_trigger(INTERVAL), PAYOUT, target=vault.address)
    own = await net4.create_job(spec)
    copy = await net4.create_job(spec, owner=net4.keepers[7])
    # when the quorum executes both, then the owner's job is paid out, the copy is refused
    assert (await run_first_slot(net4, own))["args"]["success"] is True
    assert (await run_first_slot(net4, copy))["args"]["success"] is False
    assert await net4.balance(vault.address) == 2 * ETHER
    assert await net4.balance(BENEFICIARY) == ETHER
    assert await vault.functions.payouts().call() == 1


async def test_a_target_sees_its_jobs_forwarder_not_the_task_manager(net4: Net) -> None:
    # Before v2 the target saw the TaskManager (and forwarderOf did not exist).
    # given a probe that records msg.sender, and a job calling it
    probe = await deploy_contract(net4.w3, "CallerProbe", net4.deployer.address)
    job_id = await net4.create_job(
        net4.spec(TIME, time_trigger(INTERVAL), POKE, target=probe.address)
    )
    forwarder = await net4.tm.functions.forwarderOf(job_id).call()
    # when the quorum executes it
    event = await run_first_slot(net4, job_id)
    # then the target ran, called by the job's own forwarder and not by the TaskManager
    assert event["args"]["success"] is True
    assert await probe.functions.calls().call() == 1
    assert await probe.functions.lastCaller().call() == forwarder
    assert forwarder != net4.tm.address
    assert (await net4.job(job_id))["forwarder"] == forwarder
    assert await net4.tm.functions.jobOfForwarder(forwarder).call() == job_id
    # and the forwarder is bound to this TaskManager and this target for the job's life
    fwd = net4.w3.eth.contract(address=forwarder, abi=_forwarder_abi())
    assert await fwd.functions.taskManager().call() == net4.tm.address
    assert await fwd.functions.target().call() == probe.address


async def test_a_forwarder_takes_orders_from_the_task_manager_only(net4: Net) -> None:
    # given a job's forwarder and a stranger
    probe = await deploy_contract(net4.w3, "CallerProbe", net4.deployer.address)
    job_id = await net4.create_job(
        net4.spec(TIME, time_trigger(INTERVAL), POKE, target=probe.address)
    )
    forwarder = await net4.tm.functions.forwarderOf(job_id).call()
    stranger = net4.keepers[7]
    # when the stranger calls the forwarder directly (gas word, then the target's calldata)
    data = (100_000).to_bytes(32, "big") + POKE
    err = await reverts(send_raw(net4, stranger, forwarder, data), "NotTaskManager")
    # then it is refused and the target never ran
    assert err.args == (stranger.address.lower(),)
    assert await probe.functions.calls().call() == 0


async def test_next_forwarder_is_reserved_for_its_owner(net4: Net) -> None:
    # given the forwarder the owner's next job will use, read before the job exists
    predicted = await net4.tm.functions.nextForwarder(net4.owner.address).call()
    assert await net4.tm.functions.jobOfForwarder(predicted).call() == 0
    assert await net4.w3.eth.get_code(predicted) == b""
    # when another account creates a job first
    other = await net4.create_job(
        net4.spec(TIME, time_trigger(INTERVAL), ON_TIME), owner=net4.keepers[7]
    )
    # then the owner's next forwarder has not moved, and the other job got another one
    assert await net4.tm.functions.nextForwarder(net4.owner.address).call() == predicted
    assert await net4.tm.functions.forwarderOf(other).call() != predicted
    # when the owner creates its job
    spec = net4.spec(TIME, time_trigger(INTERVAL), ON_TIME)
    receipt = await net4.tx(
        net4.tm.functions.createJob(spec), net4.owner, value=await net4.required_deposit()
    )
    (created,) = await net4.events(net4.tm, "JobCreated", receipt)
    job_id = created["args"]["jobId"]
    # then the job's forwarder is the predicted address, announced in JobCreated
    assert created["args"]["forwarder"] == predicted
    assert await net4.tm.functions.forwarderOf(job_id).call() == predicted
    assert await net4.tm.functions.jobOfForwarder(predicted).call() == job_id
    assert await net4.w3.eth.get_code(predicted) != b""
    # and the owner's next job will use a fresh one
    assert await net4.tm.functions.forwarderNonce(net4.owner.address).call() == 1
    assert await net4.tm.functions.nextForwarder(net4.owner.address).call() != predicted


async def test_a_forwarder_locked_target_refuses_another_owners_identical_job(net4: Net) -> None:
    # Before v2 there was no per-job caller to lock to: a target could only trust the TaskManager,
    # which every job shares (see the vault test), and nextForwarder did not exist.
    # given a target locked to the owner's next forwarder, deployed before the job exists
    predicted = await net4.tm.functions.nextForwarder(net4.owner.address).call()
    locked = await deploy_contract(
        net4.w3, "ForwarderLockedTarget", net4.deployer.address, predicted
    )
    # and the owner's job and a stranger's job with the same target and calldata
    spec = net4.spec(TIME, time_trigger(INTERVAL), WORK, target=locked.address)
    own = await net4.create_job(spec)
    copy = await net4.create_job(spec, owner=net4.keepers[7])
    assert await net4.tm.functions.forwarderOf(own).call() == predicted
    # when the quorum executes both
    own_event = await run_first_slot(net4, own)
    copy_event = await run_first_slot(net4, copy)
    # then the owner's job does the work and the stranger's identical job is refused by the target
    assert own_event["args"]["success"] is True
    assert copy_event["args"]["success"] is False
    assert await locked.functions.count().call() == 1


def _forwarder_abi() -> list[dict[str, Any]]:
    """The forwarder's runtime (its error and fallback) and its two views (IJobForwarder, which
    the fallback answers: the runtime has no Solidity functions)."""
    views = [
        {
            "type": "function",
            "name": name,
            "inputs": [],
            "outputs": [{"name": "", "type": "address"}],
            "stateMutability": "view",
        }
        for name in ("taskManager", "target")
    ]
    return list(load_artifact("JobForwarderRuntime").abi) + views


# ----------------------------------------------------------------------- 3. padded calldata
#
# The executor is billed 16 gas per byte of execute's calldata. Before v2 trailing bytes were
# ignored by the ABI decoder, so an executor could append 270,000 zero bytes (costing it 4 gas
# each) and bill the job 16 each: 4.32 M gas at the job's expense.

PADDING = 270_000


async def test_an_executor_cannot_pad_executes_calldata_to_raise_its_bill(net4: Net) -> None:
    # given a valid round and its canonical execute calldata
    rnd = await time_round(net4)
    data = execute_calldata(net4, rnd)
    # when the executor sends it with 270,000 zero bytes appended
    padded = data + b"\x00" * PADDING
    args = await assert_rejected(
        net4,
        rnd.job_id,
        lambda: send_raw(net4, rnd.executor, net4.tm.address, padded),
        "NonCanonicalCalldata",
    )
    # then execute refuses it, naming both lengths, and nothing changed
    assert args == (len(padded), len(data))
    # and the honest calldata still executes, billed for what the transaction really cost
    before = await observe(net4, rnd.job_id)
    receipt = await send_raw(net4, rnd.executor, net4.tm.address, data)
    event = await executed(net4, receipt)
    assert event["args"]["success"] is True
    payment = event["args"]["payment"]
    premium = int(await net4.tm.functions.premium().call())
    billed_gas, remainder = divmod(payment - premium, int(receipt["effectiveGasPrice"]))
    assert remainder == 0
    assert int(receipt["gasUsed"]) <= billed_gas <= int(receipt["gasUsed"]) + 10_000
    assert (await observe(net4, rnd.job_id)).balance == before.balance - payment


def _with_gap(data: bytes, gap: bytes) -> bytes:
    """execute's calldata with `gap` inserted between the head and the tails, offsets moved:
    a valid but non-canonical ABI encoding of the same arguments."""
    head_end = 4 + 10 * 32
    words = [data[4 + 32 * i : 4 + 32 * (i + 1)] for i in range(10)]
    for i in (6, 7, 9):  # offsets of items, members, signatures
        words[i] = (int.from_bytes(words[i], "big") + len(gap)).to_bytes(32, "big")
    return data[:4] + b"".join(words) + gap + data[head_end:]


async def test_an_executor_cannot_bill_a_gap_hidden_behind_moved_offsets(net4: Net) -> None:
    # Before v2 any offsets the ABI decoder accepted were fine, and every byte was billed.
    # given a valid round, and its calldata with a 32-byte gap and the three offsets moved past it
    rnd = await time_round(net4)
    data = execute_calldata(net4, rnd)
    moved = _with_gap(data, b"\x00" * 32)
    # (the same arguments decode from it: web3 reads the same payload back)
    _, decoded = net4.tm.decode_function_input("0x" + moved.hex())
    assert decoded["items"][0]["payload"] == rnd.payload
    # when the executor sends it, then NonCanonicalCalldata, and nothing changed
    args = await assert_rejected(
        net4,
        rnd.job_id,
        lambda: send_raw(net4, rnd.executor, net4.tm.address, moved),
        "NonCanonicalCalldata",
    )
    assert args == (len(moved), len(data))


def _with_tails_swapped(data: bytes) -> bytes:
    """execute's calldata with the members' and the signatures' tails swapped and their offsets
    moved: the same arguments at the same length, in a non-standard layout."""
    head_end = 4 + 10 * 32
    words = [int.from_bytes(data[4 + 32 * i : 4 + 32 * (i + 1)], "big") for i in range(10)]
    members_at, signatures_at = 4 + words[7], 4 + words[9]
    items_tail = data[head_end:members_at]
    members_tail = data[members_at:signatures_at]
    signatures_tail = data[signatures_at:]
    words[9] = words[7]
    words[7] = words[9] + len(signatures_tail)
    head = b"".join(w.to_bytes(32, "big") for w in words)
    return data[:4] + head + items_tail + signatures_tail + members_tail


async def test_an_executor_cannot_send_the_arguments_in_another_layout(net4: Net) -> None:
    # execute reads the items at their standard offsets without the decoder's bounds checks,
    # so every offset must be the standard one, not only the length.
    # given a valid round, and its calldata with the members and signatures laid out swapped
    rnd = await time_round(net4)
    data = execute_calldata(net4, rnd)
    swapped = _with_tails_swapped(data)
    # (the same arguments decode from it, at the same length)
    _, decoded = net4.tm.decode_function_input("0x" + swapped.hex())
    assert len(swapped) == len(data)
    _, canonical = net4.tm.decode_function_input("0x" + data.hex())
    assert decoded == canonical
    # when the executor sends it, then NonCanonicalCalldata, and nothing changed
    args = await assert_rejected(
        net4,
        rnd.job_id,
        lambda: send_raw(net4, rnd.executor, net4.tm.address, swapped),
        "NonCanonicalCalldata",
    )
    assert args == (len(swapped), len(data))


async def test_a_condition_payload_cannot_exceed_the_calldata_limit(net4: Net) -> None:
    # Before v2 a Condition payload had no length limit at execute (only createJob's calldata had).
    # given a Condition round whose payload is 4097 bytes, signed as such by the quorum
    job_id = await create_condition_job(net4)
    rnd = await condition_round(net4, job_id)
    payload = rnd.payload + b"\x00" * (4097 - len(rnd.payload))
    report = rnd.altered(payloadHash=keccak(payload))
    # when it is submitted, then PayloadTooLong, and nothing changed
    await rnd.rejected("PayloadTooLong", report=report, payload=payload)


# ----------------------------------------------------------------------- 4. gas price
#
# Before v2 the billed price was min(tx.gasprice, gasPriceCap): an executor paying a tip far
# above the block's need (the tip goes to the block producer, maybe itself) billed the job at it.


async def _execute_with_tip(net: Net, rnd: Round, tip: int) -> TxReceipt:
    fn = net.execute_fn([rnd.report], [rnd.payload], rnd.members)
    params = {"from": rnd.executor.address, "maxPriorityFeePerGas": tip, "maxFeePerGas": 3 * tip}
    return await transact(net.w3, fn, params)  # type: ignore[arg-type]


async def _billed_price(net: Net, receipt: TxReceipt, job_max: int) -> int:
    """min(effectiveGasPrice, basefee + maxPriorityFee, gasPriceCap, the job's maximum)."""
    block = await net.w3.eth.get_block(receipt["blockNumber"])
    bounds = [
        int(receipt["effectiveGasPrice"]),
        int(block["baseFeePerGas"]) + net.params.max_priority_fee,
        net.params.gas_price_cap,
    ]
    return min(bounds + ([job_max] if job_max else []))


@pytest.mark.parametrize("job_max", [0, GWEI])
async def test_an_executor_cannot_bill_its_own_huge_tip(net4: Net, job_max: int) -> None:
    # given a valid round of a job (with or without its own maximum gas price)
    rnd = await time_round(net4, max_gas_price=job_max)
    before = await observe(net4, rnd.job_id)
    # when the executor sends it with a 50 gwei tip, far above basefee + maxPriorityFee (2 gwei)
    receipt = await _execute_with_tip(net4, rnd, 50 * GWEI)
    event = await executed(net4, receipt)
    assert event["args"]["success"] is True
    # then the job is billed at basefee + maxPriorityFee (or the job's maximum, if lower)
    price = await _billed_price(net4, receipt, job_max)
    assert price < int(receipt["effectiveGasPrice"])  # the tip was really cut
    if job_max:
        assert price == job_max
    premium = int(await net4.tm.functions.premium().call())
    billed_gas, remainder = divmod(event["args"]["payment"] - premium, price)
    assert remainder == 0
    assert int(receipt["gasUsed"]) <= billed_gas <= int(receipt["gasUsed"]) + 10_000
    assert (await observe(net4, rnd.job_id)).balance == before.balance - event["args"]["payment"]


# ----------------------------------------------------------------------- 5. self-funding target


async def test_a_top_up_made_by_the_target_during_its_execution_is_kept(net4: Net) -> None:
    # Before v2 execute wrote back (balance read before the call) - payment: the top-up's ether
    # stayed in the TaskManager but vanished from the job (and from every account).
    # given a target holding 1 ether that funds its own job with 0.5 ether when called
    target = await deploy_contract(
        net4.w3, "SelfFundingTarget", net4.deployer.address, net4.tm.address
    )
    await send_ether(net4, target.address, ETHER)
    job_id = int(await net4.tm.functions.nextJobId().call())
    top_up = ETHER // 2
    call_data = calldata(target, "topUp", job_id, top_up)
    spec = net4.spec(TIME, time_trigger(INTERVAL), call_data, target=target.address)
    assert await net4.create_job(spec) == job_id
    start = (await net4.job(job_id))["startTime"]
    net4.time_travel(start + 5)
    before = (await net4.job(job_id))["balance"]
    # when the quorum executes the job
    receipt = await net4.execute_round(job_id, start, NO_PAYLOAD)
    # then the target funded its job during the call
    event = await executed(net4, receipt)
    assert event["args"]["success"] is True
    (funded,) = await net4.events(net4.tm, "JobFunded", receipt)
    assert (funded["args"]["from"], funded["args"]["amount"]) == (target.address, top_up)
    # and the job keeps the top-up: balance after = before + top-up - payment
    payment = event["args"]["payment"]
    assert (await net4.job(job_id))["balance"] == before + top_up - payment
    # and the TaskManager's ether is exactly the job balances plus the earnings
    held = await net4.balance(net4.tm.address)
    assert held == await all_job_balances(net4) + await all_earnings(net4)


# ----------------------------------------------------------------------- 10. cancel / pause races


async def test_cancel_cannot_front_run_an_execute_already_signed(net4: Net) -> None:
    # Before v2 cancel refunded the balance at once and execute refused a cancelled job: an owner
    # watching the mempool cancelled in front of the executor, who paid for a reverted execute.
    # given a round the quorum signed with the latest block as check block
    rnd = await time_round(net4)
    start = (await net4.job(rnd.job_id))["startTime"]
    # when the owner cancels the job in a later block
    receipt = await net4.tx(net4.tm.functions.cancel(rnd.job_id), net4.owner)
    halt = int(receipt["blockNumber"])
    assert rnd.report.checkBlock < halt
    (cancelled,) = await net4.events(net4.tm, "JobCancelled", receipt)
    assert dict(cancelled["args"]) == {"jobId": rnd.job_id, "unlockBlock": halt + MAX_CHECK_AGE}
    job = await net4.job(rnd.job_id)
    assert (job["status"], job["haltBlock"]) == (CANCELLED, halt)
    assert job["balance"] > 0  # nothing was refunded yet
    # then the executor's execute still goes through and pays it
    await rnd.executes()
    # but a report checked at or after the cancel block is refused
    net4.time_travel(start + 2 * INTERVAL + 5)
    for check_block in (halt, await net4.block_number()):
        late = await prepare_round(
            net4, rnd.job_id, start + 2 * INTERVAL, NO_PAYLOAD, check_block=check_block
        )
        await late.rejected("JobIsCancelled")
    # and the balance stays locked until every report signed before the cancel has expired
    withdraw = net4.tm.functions.withdrawFunds(rnd.job_id)
    unlock = halt + MAX_CHECK_AGE
    err = await reverts(net4.tx(withdraw, net4.owner), "FundsLocked")
    assert err.args == (rnd.job_id, unlock)
    net4.mine(unlock - 2 - await net4.block_number())
    await reverts(net4.tx(withdraw, net4.owner), "FundsLocked")  # would be mined at unlock - 1
    # (only the owner may withdraw)
    await reverts(net4.tx(withdraw, net4.keepers[7]), "NotJobOwner")
    # when the delay is over, then the owner gets the remaining balance, once
    net4.mine(1)
    remaining = (await net4.job(rnd.job_id))["balance"]
    owner_before = await net4.balance(net4.owner.address)
    held = await net4.balance(net4.tm.address)
    receipt = await net4.tx(withdraw, net4.owner)
    assert receipt["blockNumber"] == unlock
    (withdrawn,) = await net4.events(net4.tm, "JobFundsWithdrawn", receipt)
    assert dict(withdrawn["args"]) == {
        "jobId": rnd.job_id,
        "to": net4.owner.address,
        "amount": remaining,
    }
    assert await net4.balance(net4.owner.address) == owner_before + remaining - gas_cost(receipt)
    assert await net4.balance(net4.tm.address) == held - remaining
    assert (await net4.job(rnd.job_id))["balance"] == 0
    await reverts(net4.tx(withdraw, net4.owner), "NothingToWithdraw")


async def test_pause_cannot_front_run_an_execute_already_signed(net4: Net) -> None:
    # Before v2 execute refused a paused job outright, whatever the report's check block.
    # given a round the quorum signed with the latest block as check block
    rnd = await time_round(net4)
    start = (await net4.job(rnd.job_id))["startTime"]
    # when the owner pauses the job in a later block
    receipt = await net4.tx(net4.tm.functions.pause(rnd.job_id), net4.owner)
    halt = int(receipt["blockNumber"])
    job = await net4.job(rnd.job_id)
    assert (job["status"], job["haltBlock"]) == (PAUSED, halt)
    # then the signed round still executes
    await rnd.executes()
    # but a report checked at or after the pause block is refused
    net4.time_travel(start + 2 * INTERVAL + 5)
    late = await prepare_round(net4, rnd.job_id, start + 2 * INTERVAL, NO_PAYLOAD, check_block=halt)
    await late.rejected("JobIsPaused")
    # and a paused job's balance cannot be withdrawn
    err = await reverts(
        net4.tx(net4.tm.functions.withdrawFunds(rnd.job_id), net4.owner), "JobNotCancelled"
    )
    assert err.args == (rnd.job_id,)
    # when the owner resumes it, then the next report executes
    await net4.tx(net4.tm.functions.resume(rnd.job_id), net4.owner)
    again = await prepare_round(net4, rnd.job_id, start + 2 * INTERVAL, NO_PAYLOAD)
    await again.executes()


# ----------------------------------------------------------------------- 11. cron grid
#
# Before v2 a Cron cursor was only checked to rise and not lie in the future: a byzantine quorum
# could fire a Cron job every second (each execution billed to the owner).


async def _cron_job(net: Net) -> tuple[int, int]:
    """A Cron job every minute; returns (jobId, its first whole minute)."""
    job_id = await net.create_job(net.spec(CRON, cron_trigger("* * * * *"), ON_CRON))
    start = (await net.job(job_id))["startTime"]
    return job_id, -(-start // CRON_GRID) * CRON_GRID


async def test_a_byzantine_quorum_cannot_fire_a_cron_job_twice_a_minute(net4: Net) -> None:
    # given a Cron job, 45 s past its first whole minute T
    job_id, minute = await _cron_job(net4)
    net4.time_travel(minute + 45)
    # when the quorum fires it at T, then at T + 30
    first = await prepare_round(net4, job_id, minute, NO_PAYLOAD)
    assert (await executed(net4, await first.submit()))["args"]["success"] is True
    second = await prepare_round(net4, job_id, minute + 30, NO_PAYLOAD)
    # then the second is refused: cron cursors are whole minutes
    await second.rejected("CursorOffGrid")
    # and the next firing is possible at T + 60 at the earliest
    net4.time_travel(minute + CRON_GRID)
    third = await prepare_round(net4, job_id, minute + CRON_GRID, NO_PAYLOAD)
    assert (await executed(net4, await third.submit()))["args"]["success"] is True
    assert (await net4.job(job_id))["round"] == 2


@pytest.mark.parametrize("offset", [1, 30, 59])
async def test_a_cron_cursor_off_the_minute_is_refused(net4: Net, offset: int) -> None:
    # given a fresh Cron job, 2 minutes past its first whole minute T
    job_id, minute = await _cron_job(net4)
    net4.time_travel(minute + 2 * CRON_GRID)
    # when the quorum fires it at a second that is not a whole minute, then CursorOffGrid
    rnd = await prepare_round(net4, job_id, minute + offset, NO_PAYLOAD)
    await rnd.rejected("CursorOffGrid")


# ----------------------------------------------------------------------- 12. job ownership


async def test_a_job_cannot_be_handed_to_an_account_that_does_not_accept_it(net: Net) -> None:
    # Before v2 there was no ownership transfer at all; it is two-step so that a mistyped
    # address cannot take (or lose) a job.
    job_id, _ = await create_time_job(net)
    old, new, stranger = net.owner, net.keepers[0], net.keepers[1]
    transfer = net.tm.functions.transferJobOwnership
    accept = net.tm.functions.acceptJobOwnership(job_id)
    # given no offer, nobody can take the job
    err = await reverts(net.tx(accept, stranger), "NotPendingOwner")
    assert err.args == (stranger.address.lower(), ZERO_ADDRESS)
    # and only the owner can offer it
    await reverts(net.tx(transfer(job_id, stranger.address), stranger), "NotJobOwner")
    # when the owner offers it to `new`
    receipt = await net.tx(transfer(job_id, new.address), old)
    (requested,) = await net.events(net.tm, "JobOwnershipTransferRequested", receipt)
    assert dict(requested["args"]) == {"jobId": job_id, "from": old.address, "to": new.address}
    job = await net.job(job_id)
    assert (job["owner"], job["pendingOwner"]) == (old.address, new.address)
    # then nobody else can accept it, and the owner keeps every right meanwhile
    err = await reverts(net.tx(accept, stranger), "NotPendingOwner")
    assert err.args == (stranger.address.lower(), new.address.lower())
    await net.tx(net.tm.functions.pause(job_id), old)
    await net.tx(net.tm.functions.resume(job_id), old)
    # when `new` accepts
    receipt = await net.tx(accept, new)
    (transferred,) = await net.events(net.tm, "JobOwnershipTransferred", receipt)
    assert dict(transferred["args"]) == {"jobId": job_id, "from": old.address, "to": new.address}
    job = await net.job(job_id)
    assert (job["owner"], job["pendingOwner"]) == (new.address, ZERO_ADDRESS)
    # then the old owner has lost pause, cancel, transfer and withdraw rights
    for fn in (
        net.tm.functions.pause(job_id),
        net.tm.functions.cancel(job_id),
        net.tm.functions.withdrawFunds(job_id),
        transfer(job_id, old.address),
    ):
        err = await reverts(net.tx(fn, old), "NotJobOwner")
        assert err.args == (old.address.lower(), new.address.lower())
    # and the new owner has them
    await net.tx(net.tm.functions.pause(job_id), new)
    assert (await net.job(job_id))["status"] == PAUSED
    # and the accepted offer cannot be accepted again
    await reverts(net.tx(accept, new), "NotPendingOwner")


async def test_an_ownership_offer_can_be_withdrawn(net: Net) -> None:
    # given an offer to a wrong address
    job_id, _ = await create_time_job(net)
    wrong = net.keepers[0]
    transfer = net.tm.functions.transferJobOwnership
    await net.tx(transfer(job_id, wrong.address), net.owner)
    # when the owner withdraws it by offering the job to the zero address
    receipt = await net.tx(transfer(job_id, ZERO_ADDRESS), net.owner)
    (requested,) = await net.events(net.tm, "JobOwnershipTransferRequested", receipt)
    assert requested["args"]["to"] == ZERO_ADDRESS
    # then the wrong address can no longer accept, and the owner is unchanged
    err = await reverts(
        net.tx(net.tm.functions.acceptJobOwnership(job_id), wrong), "NotPendingOwner"
    )
    assert err.args == (wrong.address.lower(), ZERO_ADDRESS)
    job = await net.job(job_id)
    assert (job["owner"], job["pendingOwner"]) == (net.owner.address, ZERO_ADDRESS)


# ----------------------------------------------------------------------- 13. runway


async def _expected_runway(net: Net, job_id: int) -> tuple[int, int]:
    """runway's formula: executions the balance pays at this block's price, worst-case gas
    each."""
    job = await net.job(job_id)
    basefee = int((await net.w3.eth.get_block("latest"))["baseFeePerGas"])
    premium = int(await net.tm.functions.premium().call())
    price = min(basefee + net.params.max_priority_fee, net.params.gas_price_cap)
    if job["maxGasPrice"]:
        price = min(price, job["maxGasPrice"])
    cost = (job["gasLimit"] + MAX_EXECUTION_OVERHEAD_GAS) * price + premium
    # one execution's worst case is also the minimum balance: what is below it runs nothing
    assert cost == int(await net.tm.functions.minBalance(job_id).call())
    return job["balance"] // cost, cost


@pytest.mark.parametrize("job_max", [0, GWEI])
async def test_runway_counts_the_executions_the_balance_pays(net4: Net, job_max: int) -> None:
    # (runway did not exist before v2)
    # given a job funded with its minimum balance plus two and a half executions at a known price
    premium = int(await net4.tm.functions.premium().call())
    floor = await net4.required_deposit(200_000, job_max)
    cost = (200_000 + MAX_EXECUTION_OVERHEAD_GAS) * GWEI + premium
    deposit = floor + 2 * cost + cost // 2
    job_id, _ = await create_time_job(net4, deposit, max_gas_price=job_max)
    # then runway follows its formula at today's base fee
    runway = tuple(await net4.tm.functions.runway(job_id).call())
    assert runway == await _expected_runway(net4, job_id)
    if job_max:  # the job's maximum sets the price: exactly 3 executions
        assert runway == (3, cost)
    # when the quorum executes one round
    await run_first_slot(net4, job_id)
    # then the runway still follows the formula
    assert tuple(await net4.tm.functions.runway(job_id).call()) == await _expected_runway(
        net4, job_id
    )


async def test_runway_is_zero_below_the_minimum_balance(net4: Net) -> None:
    # given a job funded with exactly its minimum balance, that executed once
    job_id, _ = await create_time_job(
        net4, await net4.required_deposit(200_000, GWEI), max_gas_price=GWEI
    )
    assert (await net4.tm.functions.runway(job_id).call())[0] == 1
    await run_first_slot(net4, job_id)
    # then runway reports no execution left, and the cost of the next one
    executions, cost = await net4.tm.functions.runway(job_id).call()
    assert (executions, cost) == await _expected_runway(net4, job_id) == (0, cost)
    await reverts(call(net4.tm.functions.runway(999)), "UnknownJob")
