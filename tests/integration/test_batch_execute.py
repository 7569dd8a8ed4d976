"""`execute` of a batch: one header signed once by the quorum, items run in order.

Given a quorum and several of its jobs' due rounds, when the quorum signs them as one batch and
the executor submits it, then every valid item executes and pays its own gas and calldata plus
an even share of the batch's shared gas; an item that is no longer valid is skipped with
`JobSkipped` (its error's selector) and changes nothing, and the batch reverts only when
something shared is wrong or nothing at all would execute.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3.types import TxReceipt

from keeper.chain.artifacts import error_selectors, load_artifact
from keeper.chain.calls import KeeperCalls, compute_equivocation_proof, compute_execute_gas
from keeper.chain.contracts import call, deploy_contract
from keeper.core.equivocation import SignedBy
from keeper.core.quorum import Member, pack_signatures
from keeper.core.report import MAX_BATCH_ITEMS, Batch, Report, compute_item_hash, sign_batch
from keeper.errors import ContractRevert
from tests.harness import ETHER, NO_PAYLOAD, TIME, Net, reverts, selector, time_trigger
from tests.integration.execute_support import (
    INTERVAL,
    ON_TIME,
    create_event_job,
    emit_demo_event,
    observe,
)

SELECTORS = {
    name: sel for sel, (name, _) in error_selectors(load_artifact("TaskManager").abi).items()
}


def reason(name: str) -> bytes:
    """The selector `JobSkipped.reason` carries for the TaskManager error `name`."""
    return SELECTORS[name]


async def time_jobs(net: Net, count: int, **spec: Any) -> list[int]:
    """`count` Time jobs every INTERVAL s calling onTime(), started together: their first slot
    is the same second."""
    start = await net.timestamp() + 5
    return [
        await net.create_job(
            net.spec(TIME, time_trigger(INTERVAL), ON_TIME, start_time=start, **spec)
        )
        for _ in range(count)
    ]


async def first_slots(net: Net, job_ids: list[int], executor: str | None = None) -> list[Report]:
    """Each job's report for its first slot (all due now), under one header."""
    start = (await net.job(job_ids[0]))["startTime"]
    if await net.timestamp() < start:
        net.time_travel(start + 1)
    _, members = await net.quorum_for_job(job_ids[0])
    who = executor or members[0].address
    head = await net.make_report(job_ids[0], start, NO_PAYLOAD, who)
    reports = [head]
    for job_id in job_ids[1:]:
        job = await net.job(job_id)
        reports.append(replace(head, jobId=job_id, round=job["round"], cursor=job["startTime"]))
    return reports


async def members_of(net: Net, report: Report) -> list[Member]:
    return (await net.quorum_for_job(report.jobId))[1]


async def submit(
    net: Net, reports: list[Report], payloads: list[bytes] | None = None, **kw: Any
) -> TxReceipt:
    members = kw.pop("members", None) or await members_of(net, reports[0])
    return await net.execute_batch(reports, payloads or [NO_PAYLOAD] * len(reports), members, **kw)


async def simulate(net: Net, reports: list[Report], payloads: list[bytes] | None = None) -> int:
    """The executed bitmap `execute` returns for the batch: an eth_call in the pending block,
    as a leader asks (eth-tester runs a call at `latest` in the latest block's own context)."""
    members = await members_of(net, reports[0])
    fn = net.execute_fn(reports, payloads or [NO_PAYLOAD] * len(reports), members)
    params = {"from": reports[0].executor, "gas": 10_000_000}
    return int(await call(fn, params, block="pending"))  # type: ignore[arg-type]


async def outcome(net: Net, receipt: TxReceipt) -> tuple[dict[int, Any], dict[int, bytes]]:
    """(JobExecuted args by job, JobSkipped reason by job) of an execute receipt."""
    executed = await net.events(net.tm, "JobExecuted", receipt)
    skipped = await net.events(net.tm, "JobSkipped", receipt)
    return (
        {e["args"]["jobId"]: e["args"] for e in executed},
        {e["args"]["jobId"]: bytes(e["args"]["reason"]) for e in skipped},
    )


async def earnings(net: Net, address: str) -> int:
    return int(await net.tm.functions.earnings(address).call())


# ------------------------------------------------------------------ sizes


@pytest.mark.parametrize("size", [1, 2, 10, MAX_BATCH_ITEMS])
async def test_a_batch_executes_every_item_and_pays_what_the_executor_earned(
    net4: Net, size: int
) -> None:
    # given `size` Time jobs of the one quorum whose first slot is due
    job_ids = await time_jobs(net4, size)
    reports = await first_slots(net4, job_ids)
    executor = reports[0].executor
    before = await earnings(net4, executor)
    # when the quorum signs them as one batch, then a leader's eth_call sees every item run
    assert await simulate(net4, reports) == (1 << size) - 1
    # and when the executor submits it, every job's round is spent and its target ran once
    count_before = await net4.target.functions.count().call()
    receipt = await submit(net4, reports)
    executed, skipped = await outcome(net4, receipt)
    assert sorted(executed) == job_ids and skipped == {}
    for job_id, report in zip(job_ids, reports, strict=True):
        job = await net4.job(job_id)
        assert (job["round"], job["lastCursor"]) == (1, report.cursor)
        assert executed[job_id]["success"] is True
    assert await net4.target.functions.count().call() == count_before + size
    # and the executor's earnings grew by exactly the sum of the payments
    assert await earnings(net4, executor) - before == sum(e["payment"] for e in executed.values())


async def test_the_batch_bill_covers_the_transaction_and_calldata_only(net4: Net) -> None:
    # given a batch of 10 (the executor has earned before, so its credit slot is warm)
    first = await time_jobs(net4, 1)
    await submit(net4, await first_slots(net4, first))
    job_ids = await time_jobs(net4, 10)
    reports = await first_slots(net4, job_ids)
    receipt = await submit(net4, reports)
    executed, _ = await outcome(net4, receipt)
    price = int(receipt["effectiveGasPrice"])
    premium = int(await net4.tm.functions.premium().call())
    # then each payment is whole gas at the price plus the premium
    billed = 0
    for args in executed.values():
        gas, remainder = divmod(args["payment"] - premium, price)
        assert remainder == 0
        billed += gas
    # and the gas billed is the transaction's, its calldata at 16 a byte (zero bytes too),
    # within a few hundred gas of constants
    tx = await net4.w3.eth.get_transaction(receipt["transactionHash"])
    data = bytes(tx["input"])
    calldata_over = sum(12 for b in data if b == 0)
    assert int(receipt["gasUsed"]) <= billed <= int(receipt["gasUsed"]) + calldata_over + 1_000


async def test_the_shared_part_is_split_evenly_not_by_gas(net4: Net) -> None:
    # given a cheap job (onTime) and one whose target spends ~50,000 gas and succeeds
    heavy_target = await deploy_contract(
        net4.w3, "MaliciousTarget", net4.deployer.address, net4.tm.address
    )
    heavy_call = selector("bomb(uint256)") + (200_000).to_bytes(32, "big")
    start = await net4.timestamp() + 5
    cheap = await net4.create_job(
        net4.spec(TIME, time_trigger(INTERVAL), ON_TIME, start_time=start)
    )
    heavy = await net4.create_job(
        net4.spec(
            TIME, time_trigger(INTERVAL), heavy_call, target=heavy_target.address, start_time=start
        )
    )
    reports = await first_slots(net4, [cheap, heavy])
    # when both run in one batch (each item's payload empty: the call is in its forwarder)
    receipt = await submit(net4, reports)
    executed, _ = await outcome(net4, receipt)
    assert executed[heavy]["success"] is True
    price = int(receipt["effectiveGasPrice"])
    # then their payments differ by their own gas (the target calls; their items' calldata is
    # the same), not by a share of the shared gas proportional to it
    paid_gap = (executed[heavy]["payment"] - executed[cheap]["payment"]) // price
    own_gap = executed[heavy]["gasUsed"] - executed[cheap]["gasUsed"]
    assert own_gap > 40_000
    assert abs(paid_gap - own_gap) < 3_000


# ------------------------------------------------------------------ skipped items


async def test_invalid_items_are_skipped_and_the_others_execute(net4: Net) -> None:
    # given five Time jobs: one whose first round is executed already, one paused, one whose
    # deposit paid for a single execution and is spent, and two due
    required = await net4.required_deposit()
    done, paused, good_a, good_b = await time_jobs(net4, 4)
    start = (await net4.job(done))["startTime"]
    broke = await net4.create_job(
        net4.spec(TIME, time_trigger(INTERVAL), ON_TIME, start_time=start), required
    )
    await submit(net4, await first_slots(net4, [done, broke]))
    await net4.tx(net4.tm.functions.pause(paused), net4.owner)
    net4.time_travel(start + INTERVAL + 1)
    head = (await first_slots(net4, [good_a]))[0]
    items = [
        replace(head, jobId=done, round=0, cursor=start),
        replace(head, jobId=paused, round=0, cursor=start),
        head,
        replace(head, jobId=broke, round=1, cursor=start + INTERVAL),
        replace(head, jobId=good_b, round=0, cursor=start),
    ]
    traces = {j: await observe(net4, j) for j in (done, paused, broke)}
    # when the quorum's batch of all five is submitted, then a leader's eth_call sees which run
    assert await simulate(net4, items) == 0b10100
    receipt = await submit(net4, items)
    executed, skipped = await outcome(net4, receipt)
    # then the closed round, the paused job and the spent one are skipped, named by selector
    assert skipped == {
        done: reason("WrongRound"),
        paused: reason("JobIsPaused"),
        broke: reason("InsufficientBalance"),
    }
    assert sorted(executed) == sorted([good_a, good_b])
    # and a skipped job pays nothing and keeps its round and cursor
    for job_id, trace in traces.items():
        assert await observe(net4, job_id) == replace(
            trace,
            target_count=trace.target_count + 2,
            earnings=(await observe(net4, job_id)).earnings,
        )


async def test_a_batch_with_nothing_left_to_execute_reverts(net4: Net) -> None:
    # given a batch of two that executed
    job_ids = await time_jobs(net4, 2)
    reports = await first_slots(net4, job_ids)
    await submit(net4, reports)
    # when the same batch is replayed with the same signatures, then both items are skipped
    # (WrongRound) and the batch reverts: NothingExecuted, so a leader's eth_call sees it dead
    await reverts(submit(net4, reports), "NothingExecuted")
    await reverts(simulate(net4, reports), "NothingExecuted")


async def test_two_rounds_of_one_job_run_in_order_in_one_batch(net4: Net) -> None:
    # given a Time job two of whose slots are due
    (job_id,) = await time_jobs(net4, 1)
    start = (await net4.job(job_id))["startTime"]
    net4.time_travel(start + INTERVAL + 1)
    first = (await first_slots(net4, [job_id]))[0]
    second = replace(first, round=1, cursor=start + INTERVAL)
    # when both rounds go in one batch, then the second sees the state the first left
    receipt = await submit(net4, [first, second])
    executed = [e["args"] for e in await net4.events(net4.tm, "JobExecuted", receipt)]
    assert [(e["round"], e["cursor"]) for e in executed] == [(0, start), (1, start + INTERVAL)]
    job = await net4.job(job_id)
    assert (job["round"], job["lastCursor"]) == (2, start + INTERVAL)


async def test_a_later_round_of_a_job_in_the_batch_is_funded_only_by_what_is_left(
    net4: Net,
) -> None:
    # given a Time job two of whose slots are due, funded for one and a half worst cases
    deposit = await net4.required_deposit() * 3 // 2
    start = await net4.timestamp() + 5
    spec = net4.spec(TIME, time_trigger(INTERVAL), ON_TIME, start_time=start)
    job_id = await net4.create_job(spec, value=deposit)
    net4.time_travel(start + INTERVAL + 1)
    first = (await first_slots(net4, [job_id]))[0]
    second = replace(first, round=1, cursor=start + INTERVAL)
    # when both rounds go in one batch
    receipt = await submit(net4, [first, second])
    executed, skipped = await outcome(net4, receipt)
    # then the first runs and the second is skipped: the first held back its worst case
    assert [e["args"]["round"] for e in await net4.events(net4.tm, "JobExecuted", receipt)] == [0]
    assert skipped == {job_id: reason("InsufficientBalance")}
    # and the hold came back: the job paid only the first round's bill
    job = await net4.job(job_id)
    assert (job["round"], job["lastCursor"]) == (1, start)
    assert job["balance"] == deposit - executed[job_id]["payment"]


async def test_two_logs_of_one_event_job_run_as_two_rounds_in_one_batch(net4: Net) -> None:
    # given an Event job (1 confirmation) and two matching logs, confirmed
    job_id = await create_event_job(net4, confirmations=1)
    first_cursor, _ = await emit_demo_event(net4)
    second_cursor, _ = await emit_demo_event(net4)
    net4.mine(1)
    _, members = await net4.quorum_for_job(job_id)
    first = await net4.make_report(job_id, first_cursor, NO_PAYLOAD, members[0].address)
    second = replace(first, round=1, cursor=second_cursor)
    # when both logs go in one batch as rounds 0 and 1, ordered by cursor
    receipt = await submit(net4, [first, second])
    # then both execute in order, and the job's cursor is the second log's
    executed = [e["args"] for e in await net4.events(net4.tm, "JobExecuted", receipt)]
    assert [(e["round"], e["cursor"]) for e in executed] == [(0, first_cursor), (1, second_cursor)]
    assert (await net4.job(job_id))["lastCursor"] == second_cursor
    assert await net4.target.functions.eventCount().call() == 2


PER_ITEM_GUARDS = {
    "WrongRound": {"round": 1},
    "CursorOffGrid": {"cursor_shift": -INTERVAL // 2},
    "CursorInFuture": {"cursor_shift": 10 * INTERVAL},
    "CursorNotRaised": {"cursor": 0},
    "CursorOutOfRange": {"cursor": 2**64},
    # any payload at all, even the job's own callData: the call lives in its forwarder
    "PayloadMismatch": {"payload": ON_TIME},
    "PayloadTooLong": {"payload": ON_TIME + bytes(4093)},
    "UnknownJob": {"jobId": 10_000},
    "InsufficientStake": {},
}


@pytest.mark.parametrize("guard", sorted(PER_ITEM_GUARDS))
async def test_every_item_guard_skips_only_its_item(net4: Net, guard: str) -> None:
    # given two due Time jobs (for InsufficientStake the tampered one needs all the weight)
    bps = 10_000 if guard == "InsufficientStake" else 6667
    start = await net4.timestamp() + 5
    tampered_id = await net4.create_job(
        net4.spec(TIME, time_trigger(INTERVAL), ON_TIME, start_time=start, threshold_bps=bps)
    )
    (good_id,) = await time_jobs(net4, 1)
    net4.time_travel(start + INTERVAL + 1)  # two slots due: start and start + 60
    tampered, good = await first_slots(net4, [tampered_id, good_id])
    change = dict(PER_ITEM_GUARDS[guard])
    payload = change.pop("payload", NO_PAYLOAD)
    change.setdefault("cursor", start + INTERVAL + change.pop("cursor_shift", 0))
    tampered = replace(tampered, **change)
    tampered = replace(tampered, payloadHash=keccak(payload))
    members = await members_of(net4, good)
    signers = [net4.account_of(m.address) for m in members]
    if guard == "InsufficientStake":
        signers = signers[1:]  # 3 of 4 members: a majority, not all the weight
    sigs = net4.sign_batch(Batch.of([tampered, good]), signers)
    before = await observe(net4, tampered_id)
    # when the quorum's batch of the tampered item and a good one is submitted
    receipt = await submit(net4, [tampered, good], [payload, NO_PAYLOAD], signatures=sigs)
    executed, skipped = await outcome(net4, receipt)
    # then only the tampered item is skipped, named, and its job is as it was
    assert skipped == {tampered.jobId: reason(guard)}
    assert list(executed) == [good_id]
    after = await observe(net4, tampered_id)
    assert (after.round, after.last_cursor, after.balance) == (
        before.round,
        before.last_cursor,
        before.balance,
    )


# ------------------------------------------------------------------ whole-batch refusals


async def test_an_empty_batch_is_refused(net4: Net) -> None:
    (job_id,) = await time_jobs(net4, 1)
    (report,) = await first_slots(net4, [job_id])
    members = await members_of(net4, report)
    fn = net4.tm.functions.execute(report.header.as_tuple(), [], [m.word for m in members], 0, b"")
    await reverts(net4.tx(fn, report.executor), "EmptyBatch")


async def test_more_than_max_batch_items_are_refused(net4: Net) -> None:
    (job_id,) = await time_jobs(net4, 1)
    (report,) = await first_slots(net4, [job_id])
    members = await members_of(net4, report)
    items = [(report.jobId, report.round, report.cursor, NO_PAYLOAD)] * (MAX_BATCH_ITEMS + 1)
    fn = net4.tm.functions.execute(
        report.header.as_tuple(), items, [m.word for m in members], 0, b""
    )
    error = await reverts(net4.tx(fn, report.executor), "TooManyItems")
    assert error.args == (MAX_BATCH_ITEMS + 1, MAX_BATCH_ITEMS)


async def test_items_of_two_quorums_are_refused(net: Net) -> None:
    # given two quorums and a job of each
    await net.register_keepers([ETHER] * 8)
    await net.rotate()
    by_quorum: dict[int, int] = {}
    while len(by_quorum) < 2:
        (job_id,) = await time_jobs(net, 1)
        by_quorum.setdefault((await net.quorum_for_job(job_id))[0], job_id)
    ours, theirs = by_quorum[0], by_quorum[1]
    start = (await net.job(theirs))["startTime"]
    reports = await first_slots(net, [ours])
    foreign = replace(reports[0], jobId=theirs, cursor=start)
    # when quorum 0 signs a batch holding quorum 1's job, then JobNotInQuorum(that job, 0)
    error = await reverts(submit(net, [reports[0], foreign]), "JobNotInQuorum")
    assert error.args == (theirs, 0)


async def test_a_signature_over_another_item_set_is_refused(net4: Net) -> None:
    # given the quorum signed the batch {A, B}
    job_ids = await time_jobs(net4, 2)
    a, b = await first_slots(net4, job_ids)
    members = await members_of(net4, a)
    signers = [net4.account_of(m.address) for m in members]
    over_both = net4.sign_batch(Batch.of([a, b]), signers)
    # when the executor submits {A} alone with those signatures, then they recover to strangers
    before = await observe(net4, a.jobId)
    await reverts(submit(net4, [a], signatures=over_both), "SignerNotMember")
    # and one member's signature over {A, B} among the others' over {A} is refused too
    over_a = net4.sign_batch(Batch.of([a]), signers)
    mixed = {**over_a, signers[0].address: over_both[signers[0].address]}
    await reverts(submit(net4, [a], signatures=mixed), "SignerNotMember")
    assert await observe(net4, a.jobId) == before
    # and the signatures over {A} execute {A}
    executed, _ = await outcome(net4, await submit(net4, [a], signatures=over_a))
    assert list(executed) == [a.jobId]


# ------------------------------------------------------------------ node-facing calls


async def test_the_nodes_calls_encode_simulate_and_size_a_batch(net4: Net) -> None:
    # given three due jobs and the node's encoder
    job_ids = await time_jobs(net4, 3)
    reports = await first_slots(net4, job_ids)
    members = await members_of(net4, reports[0])
    batch = Batch.of(reports)
    sigs = net4.sign_batch(batch, [net4.account_of(m.address) for m in members])
    bitmap, packed = pack_signatures(members, sigs)
    calls = KeeperCalls(net4.w3, net4.registry, net4.tm)
    data = calls.execute_data(batch, [NO_PAYLOAD] * 3, members, bitmap, packed)
    gas = compute_execute_gas([200_000] * 3, len(members))
    executor = reports[0].executor
    # when it simulates, then it reads the executed bitmap
    assert await calls.simulate_execute(executor, net4.tm.address, data, gas) == (0b111, None)
    # and once sent with that gas, every item executes
    tx = {"from": executor, "to": net4.tm.address, "data": data, "gas": gas}
    receipt = await net4.w3.eth.wait_for_transaction_receipt(await net4.w3.eth.send_transaction(tx))
    assert len(await net4.events(net4.tm, "JobExecuted", receipt)) == 3
    # and a second simulation names the revert: every round is closed now
    executed, revert = await calls.simulate_execute(executor, net4.tm.address, data, gas)
    assert executed == 0 and revert is not None and revert.error_name == "NothingExecuted"


async def test_compute_execute_gas_covers_items_that_burn_their_whole_limit(net4: Net) -> None:
    # given four jobs of 1,000,000 gas each whose target burns all the gas it gets
    burner = await deploy_contract(
        net4.w3, "MaliciousTarget", net4.deployer.address, net4.tm.address
    )
    burn = selector("burn()")
    start = await net4.timestamp() + 5
    job_ids = [
        await net4.create_job(
            net4.spec(
                TIME,
                time_trigger(INTERVAL),
                burn,
                target=burner.address,
                gas_limit=1_000_000,
                start_time=start,
            )
        )
        for _ in range(4)
    ]
    reports = await first_slots(net4, job_ids)
    members = await members_of(net4, reports[0])
    batch = Batch.of(reports)
    sigs = net4.sign_batch(batch, [net4.account_of(m.address) for m in members])
    bitmap, packed = pack_signatures(members, sigs)
    calls = KeeperCalls(net4.w3, net4.registry, net4.tm)
    data = calls.execute_data(batch, [NO_PAYLOAD] * 4, members, bitmap, packed)
    # when the batch is sent with the gas compute_execute_gas gives for those limits
    gas = compute_execute_gas([1_000_000] * 4, len(members))
    tx = {"from": reports[0].executor, "to": net4.tm.address, "data": data, "gas": gas}
    receipt = await net4.w3.eth.wait_for_transaction_receipt(await net4.w3.eth.send_transaction(tx))
    # then no item's 63/64 guard refused it: all four ran (and failed), each with its full limit
    assert receipt["status"] == 1
    executed = await net4.events(net4.tm, "JobExecuted", receipt)
    assert [e["args"]["success"] for e in executed] == [False] * 4
    assert all(e["args"]["gasUsed"] > 1_000_000 for e in executed)


# ------------------------------------------------------------------ equivocation proofs


def proof(net: Net, batch: Batch, index: int, key: bytes) -> tuple[Any, ...]:
    signed = SignedBy(
        batch.items[index], sign_batch(key, batch, net.domain), tuple(batch.item_hashes()), index
    )
    return compute_equivocation_proof(signed)


async def conflicting_batches(net4: Net) -> tuple[Batch, Batch]:
    """Two batches under one check block whose items for job A disagree on the cursor; job A
    sits at index 1 of the first and index 0 of the second."""
    job_ids = await time_jobs(net4, 2)
    a, other = await first_slots(net4, job_ids)
    forked = replace(a, cursor=a.cursor + INTERVAL)
    return Batch.of([other, a]), Batch.of([forked])


async def test_conflicting_items_in_two_batches_slash_the_signer(net4: Net) -> None:
    first, second = await conflicting_batches(net4)
    cheater = net4.registered[1]
    # when anyone proves the member signed both
    fn = net4.tm.functions.slashEquivocation(
        proof(net4, first, 1, cheater.key), proof(net4, second, 0, cheater.key)
    )
    receipt = await net4.tx(fn, net4.owner)
    # then it is slashed for that job's round
    (event,) = await net4.events(net4.tm, "EquivocationProven", receipt)
    assert (event["args"]["keeper"], event["args"]["jobId"]) == (
        cheater.address,
        second.items[0].jobId,
    )
    stake, status, *_ = await net4.registry.functions.keeperInfo(cheater.address).call()
    assert (stake, status) == (0, 3)


async def test_a_proof_whose_item_is_not_at_its_index_is_refused(net4: Net) -> None:
    first, second = await conflicting_batches(net4)
    key = net4.registered[1].key
    wrong_index = proof(net4, first, 1, key)
    wrong_index = (*wrong_index[:2], 0, *wrong_index[3:])
    fn = net4.tm.functions.slashEquivocation(wrong_index, proof(net4, second, 0, key))
    error = await reverts(net4.tx(fn, net4.owner), "ItemHashMismatch")
    assert error.args == (0,)
    out_of_range = (*wrong_index[:2], 7, *wrong_index[3:])
    fn = net4.tm.functions.slashEquivocation(proof(net4, second, 0, key), out_of_range)
    assert (await reverts(net4.tx(fn, net4.owner), "ItemHashMismatch")).args == (7,)


async def test_the_same_item_in_two_batches_is_not_equivocation(net4: Net) -> None:
    # given one member signed job A's same item in a batch of two and alone (a subset re-signed)
    first, _ = await conflicting_batches(net4)
    alone = Batch.of([first.items[1]])
    key = net4.registered[1].key
    fn = net4.tm.functions.slashEquivocation(proof(net4, first, 1, key), proof(net4, alone, 0, key))
    # then it proves nothing
    await reverts(net4.tx(fn, net4.owner), "NotEquivocation")
    assert compute_item_hash(first.items[1]) == alone.item_hashes()[0]


async def test_execute_reverts_are_named_for_a_leader(net4: Net) -> None:
    # a whole-batch error still reaches a leader's eth_call by name (here: an expired batch)
    job_ids = await time_jobs(net4, 2)
    reports = [replace(r, deadline=1) for r in await first_slots(net4, job_ids)]
    with pytest.raises(ContractRevert) as info:
        await simulate(net4, reports)
    assert info.value.error_name == "ReportExpired"
