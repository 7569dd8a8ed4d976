"""`execute` rejects a report whose context, cursor or job state breaks the protocol.

Each test starts from a round that executes (the controls below), changes one thing, re-signs
the report with the whole quorum when a report field changed (so only that field is wrong), and
checks the named custom error and that the job's round, cursor and balance, the target's counter
and every keeper's earnings are unchanged. Signature and quorum checks are in
test_execute_signatures.py.
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from keeper.core.report import Report
from tests.harness import CRON, ETHER, NO_PAYLOAD, ZERO32, Net, cron_trigger, selector
from tests.integration.execute_support import (
    INTERVAL,
    ON_TIME,
    Round,
    condition_round,
    create_condition_job,
    create_event_job,
    create_time_job,
    emit_demo_event,
    prepare_round,
    time_round,
)

MAX_CHECK_AGE = 128
EPOCH_GRACE_BLOCKS = 20
CRON_GRID = 60  # TaskManager.CRON_GRID
ON_CRON = selector("onCron()")


@pytest.fixture
async def round_(net4: Net) -> Round:
    """A Time job (every 60 s, onTime) at start + 90, and its round for the slot start + 60."""
    return await time_round(net4)


# ------------------------------------------------------------------ controls


async def test_baseline_time_round_executes(round_: Round) -> None:
    # given the untampered round of a Time job
    # when its executor submits it with the whole quorum's signatures
    # then the round is recorded with the slot as cursor and the target ran
    await round_.executes()


async def test_baseline_condition_round_executes(net4: Net) -> None:
    # given a Condition job whose resolver turned true
    job_id = await create_condition_job(net4)
    rnd = await condition_round(net4, job_id)
    # when the quorum's report at the check block is submitted, then it executes
    await rnd.executes()
    assert await net4.target.functions.conditionCount().call() == 1


# ------------------------------------------------------------------ round


async def test_round_ahead_of_the_job_is_rejected(round_: Round) -> None:
    # given a report for round 1 while the job's next round is 0
    report = round_.altered(round=1)
    # when it is submitted, then WrongRound(expected 0, got 1)
    await round_.rejected("WrongRound", report=report)


async def test_replayed_report_is_rejected(round_: Round) -> None:
    # given a round that has executed
    signatures = round_.net.sign(round_.report, round_.signers)
    await round_.executes(signatures=signatures)
    # when the very same report and signatures are submitted again
    # then round 0 is spent: WrongRound(expected 1, got 0)
    await round_.rejected("WrongRound", signatures=signatures)


# ------------------------------------------------------------------ cursor


@pytest.mark.parametrize("back", [0, INTERVAL], ids=["same-slot", "older-slot"])
async def test_cursor_must_be_raised(round_: Round, back: int) -> None:
    # given the slot start + 60 executed
    await round_.executes()
    # when round 1 is proposed for the same slot (or the older one)
    cursor = round_.report.cursor - back
    nxt = await prepare_round(round_.net, round_.job_id, cursor, NO_PAYLOAD)
    assert nxt.report.round == 1
    # then CursorNotRaised(cursor, lastCursor)
    await nxt.rejected("CursorNotRaised")


async def test_cursor_off_the_slot_grid_is_rejected(round_: Round) -> None:
    # given a cursor halfway between two slots of a 60 s job
    cursor = round_.report.cursor - INTERVAL // 2
    # when it is submitted, then CursorOffGrid
    await round_.rejected("CursorOffGrid", report=round_.altered(cursor=cursor))


async def test_cursor_of_a_future_slot_is_rejected_until_it_is_due(round_: Round) -> None:
    # given the slot start + 120 while the chain is at start + 91
    net = round_.net
    cursor = round_.report.cursor + INTERVAL
    report = round_.altered(cursor=cursor)
    # when it is submitted now, then CursorInFuture (the chain's time is before the slot)
    assert await net.timestamp() < cursor
    await round_.rejected("CursorInFuture", report=report)
    # and once the chain has reached that time the same slot executes
    net.time_travel(cursor)
    await round_.executes(report=report)


async def test_time_cursor_before_start_time_is_rejected(net4: Net) -> None:
    # given a Time job whose explicit startTime has just passed
    start = await net4.timestamp() + 100
    job_id, _ = await create_time_job(net4, start_time=start)
    net4.time_travel(start + 10)
    # when a slot one interval before startTime is proposed (it is on the grid's line and due)
    early = await prepare_round(net4, job_id, start - INTERVAL, NO_PAYLOAD)
    # then CursorBeforeStart, checked before the grid (which would underflow)
    await early.rejected("CursorBeforeStart")
    # and the first slot, startTime itself, executes
    await early.executes(report=early.altered(cursor=start))


async def create_cron_job(net: Net, start_time: int = 0) -> int:
    """A Cron job firing every minute, calling onCron()."""
    return await net.create_job(
        net.spec(CRON, cron_trigger("* * * * *"), ON_CRON, start_time=start_time)
    )


async def test_cron_cursor_before_start_time_is_rejected(net4: Net) -> None:
    # given a Cron job with a startTime on a whole minute that has just passed
    start = (await net4.timestamp() + 100) // CRON_GRID * CRON_GRID + CRON_GRID
    job_id = await create_cron_job(net4, start_time=start)
    net4.time_travel(start + 10)
    # when a fire time one minute before startTime is proposed (a whole minute, and due)
    early = await prepare_round(net4, job_id, start - CRON_GRID, NO_PAYLOAD)
    # then CursorBeforeStart
    await early.rejected("CursorBeforeStart")
    # and a fire time at startTime executes
    await early.executes(report=early.altered(cursor=start))


@pytest.mark.parametrize("second", [1, 30, 59])
async def test_cron_cursor_off_the_minute_grid_is_rejected(net4: Net, second: int) -> None:
    # given a Cron job every minute, and a due cursor that is not a whole minute
    job_id = await create_cron_job(net4)
    start = (await net4.job(job_id))["startTime"]
    minute = -(-start // CRON_GRID) * CRON_GRID  # its first whole minute
    net4.time_travel(minute + CRON_GRID)
    rnd = await prepare_round(net4, job_id, minute + second, NO_PAYLOAD)
    # when it is submitted, then CursorOffGrid: no quorum fires a Cron job twice a minute
    await rnd.rejected("CursorOffGrid")
    # and the whole minute itself executes
    await rnd.executes(report=rnd.altered(cursor=minute))


async def test_cursor_beyond_uint64_is_rejected(round_: Round) -> None:
    # given a cursor that does not fit the job's uint64 lastCursor
    report = round_.altered(cursor=2**64)
    # when it is submitted, then CursorOutOfRange (it would otherwise be truncated)
    await round_.rejected("CursorOutOfRange", report=report)


async def test_condition_cursor_must_be_the_check_block(net4: Net) -> None:
    # given a Condition round whose cursor is not its check block
    job_id = await create_condition_job(net4)
    rnd = await condition_round(net4, job_id)
    check_block = rnd.report.checkBlock
    report = rnd.altered(cursor=check_block - 1)
    # when it is submitted, then CursorMismatch(cursor, checkBlock)
    await rnd.rejected("CursorMismatch", report=report)


async def test_condition_rounds_are_spaced_by_min_interval(net4: Net) -> None:
    # given a Condition job with minInterval 5 blocks that executed at check block B
    job_id = await create_condition_job(net4, min_interval=5)
    first = await condition_round(net4, job_id)
    await first.executes()
    last = first.report.checkBlock
    # when the resolver turns true again and a round is proposed at B + 2
    soon = await condition_round(net4, job_id)
    assert soon.report.checkBlock == last + 2
    # then ConditionTooSoon(cursor, lastCursor, minInterval)
    await soon.rejected("ConditionTooSoon")
    # and at exactly B + 5 the next round executes
    net4.mine(last + 5 - await net4.block_number())
    on_time = await prepare_round(net4, job_id, last + 5, soon.payload, check_block=last + 5)
    await on_time.executes()


async def test_event_log_must_have_its_confirmations(net4: Net) -> None:
    # given an Event job that waits 3 confirmations and a matching log at block L
    job_id = await create_event_job(net4, confirmations=3)
    cursor, log_block = await emit_demo_event(net4)
    # when a round attests the log at check block L + 2
    net4.mine(2)
    early = await prepare_round(net4, job_id, cursor, NO_PAYLOAD)
    assert early.report.checkBlock == log_block + 2
    # then LogNotConfirmed(logBlock, checkBlock, confirmations)
    await early.rejected("LogNotConfirmed")
    # and at check block L + 3 it executes
    net4.mine(1)
    confirmed = await prepare_round(net4, job_id, cursor, NO_PAYLOAD)
    assert confirmed.report.checkBlock == log_block + 3
    await confirmed.executes()


# ------------------------------------------------------------------ check block and deadline


async def test_check_block_older_than_max_age_is_rejected(round_: Round) -> None:
    # given a report at check block C with a far deadline, and the chain moved on
    net = round_.net
    check_block = round_.report.checkBlock
    report = round_.altered(deadline=check_block + 1000)
    net.mine(check_block + MAX_CHECK_AGE - await net.block_number())
    # when it lands MAX_CHECK_AGE + 1 blocks after C, then StaleCheckBlock
    assert await round_.rejected("StaleCheckBlock", report=report) == (
        check_block,
        check_block + MAX_CHECK_AGE + 1,
    )
    # and a check block exactly MAX_CHECK_AGE blocks old in that same block still executes
    newer = check_block + 1
    block = await net.w3.eth.get_block(newer)
    await round_.executes(
        report=round_.altered(
            checkBlock=newer, checkBlockHash=bytes(block["hash"]), deadline=check_block + 1000
        )
    )


@pytest.mark.parametrize("ahead", [1, 5], ids=["execution-block", "later-block"])
async def test_check_block_not_yet_mined_is_rejected(round_: Round, ahead: int) -> None:
    # given a check block at (or after) the block the execution lands in
    latest = await round_.net.block_number()
    report = round_.altered(checkBlock=latest + ahead, checkBlockHash=ZERO32)
    # when it is submitted, then CheckBlockInFuture(checkBlock, block.number)
    args = await round_.rejected("CheckBlockInFuture", report=report)
    assert args == (latest + ahead, latest + 1)


@pytest.mark.parametrize("which", ["other-block", "garbage"])
async def test_check_block_hash_must_match_the_chain(round_: Round, which: str) -> None:
    # given a report whose check block hash is not that block's (a reorged or made-up hash)
    check_block = round_.report.checkBlock
    if which == "other-block":
        wrong = bytes((await round_.net.w3.eth.get_block(check_block - 1))["hash"])
    else:
        wrong = b"\x11" * 32
    report = round_.altered(checkBlockHash=wrong)
    # when it is submitted, then CheckBlockHashMismatch(checkBlock)
    assert await round_.rejected("CheckBlockHashMismatch", report=report) == (check_block,)


async def test_report_past_its_deadline_is_rejected(round_: Round) -> None:
    # given a report whose deadline is the latest block, so the execution block is past it
    latest = await round_.net.block_number()
    # when it is submitted, then ReportExpired(deadline, block.number)
    args = await round_.rejected("ReportExpired", report=round_.altered(deadline=latest))
    assert args == (latest, latest + 1)
    # and a deadline equal to the execution block is still in time
    await round_.executes(report=round_.altered(deadline=latest + 1))


# ------------------------------------------------------------------ epoch


@pytest.mark.parametrize("epoch", [2, 0])
async def test_report_of_an_epoch_that_is_not_active_is_rejected(round_: Round, epoch: int) -> None:
    # given epoch 1 is current, and a report naming a future epoch or epoch 0
    report = round_.altered(epoch=epoch)
    # when it is submitted, then EpochNotActive(epoch, currentEpoch)
    assert await round_.rejected("EpochNotActive", report=report) == (epoch, 1)


async def test_previous_epoch_is_accepted_only_within_the_grace_period(net4: Net) -> None:
    # given a due Time job, and a fifth keeper whose joining lets epoch 2 start as soon as
    # epoch 1 is MIN_EPOCH_BLOCKS old
    job_id, start = await create_time_job(net4)
    net4.time_travel(start + INTERVAL + 5)
    await net4.register(net4.keepers[4], ETHER)
    await net4.age_epoch()
    await net4.rotate()
    assert await net4.epoch() == 2
    _, rotation_block, *_ = await net4.registry.functions.epochState().call()
    _, old_members = await net4.quorum_for_job(job_id, 1)
    _, new_members = await net4.quorum_for_job(job_id, 2)
    assert old_members != new_members
    # when epoch 1's quorum signs a report naming epoch 1 that lands in the last grace block
    net4.mine(rotation_block + EPOCH_GRACE_BLOCKS - 1 - await net4.block_number())
    in_grace = await prepare_round(net4, job_id, start, NO_PAYLOAD, epoch=1)
    # then it executes
    await in_grace.executes()
    assert await net4.block_number() == rotation_block + EPOCH_GRACE_BLOCKS
    # and the next round of epoch 1, one block later, is rejected: EpochNotActive(1, 2)
    late = await prepare_round(net4, job_id, start + INTERVAL, NO_PAYLOAD, epoch=1)
    assert late.members == old_members
    assert await late.rejected("EpochNotActive") == (1, 2)


# ------------------------------------------------------------------ payload


async def test_payload_must_hash_to_the_signed_payload_hash(round_: Round) -> None:
    # given a report signed over another payload's hash than the one submitted
    report = round_.altered(payloadHash=b"\x22" * 32)
    # when it is submitted, then the signatures are not over the batch the chain hashes (from
    # the payload itself): each recovers to a stranger
    await round_.rejected("SignerNotMember", report=report)


@pytest.mark.parametrize("payload", [ON_TIME, selector("onCron()")], ids=["own", "other"])
async def test_a_time_items_payload_must_be_empty(round_: Round, payload: bytes) -> None:
    # Before the call moved into the forwarder's code, the job's own callData was the payload.
    # given a report consistent with a non-empty payload (the job's own callData, or another)
    report = round_.altered(payloadHash=keccak(payload))
    # when it is submitted, then PayloadMismatch (the quorum cannot change what a Time job calls)
    await round_.rejected("PayloadMismatch", report=report, payload=payload)


# ------------------------------------------------------------------ job state


async def checked_at(rnd: Round, block: int) -> Report:
    """The round's report moved to check block `block` (to be signed again by the quorum)."""
    block_hash = bytes((await rnd.net.w3.eth.get_block(block))["hash"])
    return rnd.altered(checkBlock=block, checkBlockHash=block_hash)


async def test_paused_job_rejects_reports_checked_from_the_pause_until_resumed(
    round_: Round,
) -> None:
    # given the owner paused the job, and the quorum's round checked at the pause block
    net = round_.net
    receipt = await net.tx(net.tm.functions.pause(round_.job_id), net.owner)
    pause_block = receipt["blockNumber"]
    assert (await net.job(round_.job_id))["haltBlock"] == pause_block
    report = await checked_at(round_, pause_block)
    # when the round is submitted, then JobIsPaused(jobId): the quorum could see the pause
    await round_.rejected("JobIsPaused", report=report)
    # and once resumed the very same round executes
    await net.tx(net.tm.functions.resume(round_.job_id), net.owner)
    await round_.executes(report=report)


async def test_cancelled_job_rejects_reports_checked_from_the_cancel(round_: Round) -> None:
    # given the owner cancelled the job (its balance stays until withdrawn), and the quorum's
    # round checked at the cancel block
    net = round_.net
    receipt = await net.tx(net.tm.functions.cancel(round_.job_id), net.owner)
    cancel_block = receipt["blockNumber"]
    assert (await net.job(round_.job_id))["haltBlock"] == cancel_block
    # when the round is submitted, then JobIsCancelled(jobId)
    report = await checked_at(round_, cancel_block)
    await round_.rejected("JobIsCancelled", report=report)
    # and so is a round checked any later
    net.mine(3)
    later = await checked_at(round_, await net.block_number())
    await round_.rejected("JobIsCancelled", report=later)


@pytest.mark.parametrize(
    ("halt", "error"), [("pause", "JobIsPaused"), ("cancel", "JobIsCancelled")]
)
async def test_a_round_checked_before_the_pause_or_cancel_still_executes(
    round_: Round, halt: str, error: str
) -> None:
    # given the quorum signed a round at check block C, then the owner paused or cancelled the
    # job in a later block (the signers could not have seen it)
    net = round_.net
    receipt = await net.tx(getattr(net.tm.functions, halt)(round_.job_id), net.owner)
    assert round_.report.checkBlock < receipt["blockNumber"]
    # when the round is submitted, then it executes, paid from the job's balance
    await round_.executes()
    # and the job's next round, checked after the halt, is refused
    cursor = round_.report.cursor + INTERVAL
    net.time_travel(cursor + 5)
    nxt = await prepare_round(net, round_.job_id, cursor, NO_PAYLOAD)
    assert nxt.report.round == 1
    await nxt.rejected(error)


async def test_report_for_an_unknown_job_is_rejected(round_: Round) -> None:
    # given a report, signed by the quorum, for a job id never created
    unknown = round_.job_id + 1
    # when it is submitted, then UnknownJob(jobId)
    await round_.rejected("UnknownJob", report=round_.altered(jobId=unknown))


async def test_job_stops_after_max_executions(net4: Net) -> None:
    # given a Time job limited to one execution that has executed once
    first = await time_round(net4, max_executions=1)
    await first.executes()
    # when the next slot is due and its round is proposed
    cursor = first.report.cursor + INTERVAL
    net4.time_travel(cursor + 5)
    second = await prepare_round(net4, first.job_id, cursor, NO_PAYLOAD)
    # then MaxExecutionsReached(maxExecutions)
    await second.rejected("MaxExecutionsReached")


async def test_time_slot_after_end_time_is_rejected(net4: Net) -> None:
    # given a Time job from S to S + 100, at S + 130: slots S + 60 and S + 120 are past
    start = await net4.timestamp() + 10
    end = start + 100
    job_id, _ = await create_time_job(net4, start_time=start, end_time=end)
    net4.time_travel(start + 2 * INTERVAL + 10)
    # when the newest slot S + 120 (after endTime) is proposed
    late = await prepare_round(net4, job_id, start + 2 * INTERVAL, NO_PAYLOAD)
    # then JobExpired(endTime)
    await late.rejected("JobExpired")
    # and the last slot within the window, S + 60, executes
    await late.executes(report=late.altered(cursor=start + INTERVAL))


async def test_condition_job_after_end_time_is_rejected(net4: Net) -> None:
    # given a Condition job whose endTime has passed
    end = await net4.timestamp() + 50
    job_id = await create_condition_job(net4, end_time=end)
    net4.time_travel(end + 1)
    # when its resolver is true and a round is proposed
    rnd = await condition_round(net4, job_id)
    # then JobExpired(endTime)
    await rnd.rejected("JobExpired")


async def test_condition_job_before_start_time_is_rejected(net4: Net) -> None:
    # given a Condition job that starts in the future
    start = await net4.timestamp() + 1000
    job_id = await create_condition_job(net4, start_time=start)
    # when its resolver is true and a round is proposed before startTime
    early = await condition_round(net4, job_id)
    # then JobNotStarted(startTime)
    await early.rejected("JobNotStarted")
    # and after startTime a fresh round executes
    net4.time_travel(start)
    started = await condition_round(net4, job_id)
    await started.executes()


async def test_job_below_min_balance_is_rejected_until_funded(net4: Net) -> None:
    # given a job funded with exactly the required deposit, which one execution has drawn on
    required = await net4.required_deposit()
    first = await time_round(net4, deposit=required)
    await first.executes()
    balance = (await net4.job(first.job_id))["balance"]
    assert 0 < balance < required
    # when the next slot's round is proposed
    cursor = first.report.cursor + INTERVAL
    net4.time_travel(cursor + 5)
    second = await prepare_round(net4, first.job_id, cursor, NO_PAYLOAD)
    # then InsufficientBalance: below one worst-case execution at that block's price
    await second.rejected("InsufficientBalance")
    # and once topped up the same round executes
    await net4.tx(net4.tm.functions.fund(first.job_id), net4.owner, value=required)
    await second.executes()
