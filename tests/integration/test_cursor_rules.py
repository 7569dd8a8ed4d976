"""keeper.core.triggers predicts TaskManager's cursor verdicts exactly.

Given a job of each kind, when a quorum-signed report with some cursor is simulated against
`execute`, then the contract reverts with precisely the error `check_cursor` names (or succeeds
when it names none), and every cursor the due rules propose is accepted.
"""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode as abi_encode

from keeper.core.triggers import (
    UINT64_MAX,
    JobRules,
    TriggerKind,
    check_cursor,
    compute_event_cursor,
    compute_time_cursor,
    is_condition_due,
)
from tests.harness import (
    CONDITION,
    EVENT,
    NO_PAYLOAD,
    TIME,
    Net,
    condition_trigger,
    event_trigger,
    selector,
)
from tests.harness import time_trigger as time_trigger_bytes
from tests.integration.execute_support import create_companion, fate


def rules_of(job: dict[str, Any]) -> JobRules:
    return JobRules(
        kind=TriggerKind(job["kind"]),
        start_time=job["startTime"],
        end_time=job["endTime"],
        interval=job["interval"],
        max_executions=job["maxExecutions"],
        round=job["round"],
        last_cursor=job["lastCursor"],
    )


async def verdicts(
    net: Net, job_id: int, cursor: int, payload: bytes, check_block: int | None = None
) -> tuple[str | None, str | None]:
    """(what check_cursor predicts, what `execute` does) for one fully signed report.

    The report is simulated in the pending block, whose timestamp `time_travel` sets, so the
    prediction uses exactly the block.timestamp the contract sees.
    """
    rules = rules_of(await net.job(job_id))
    _, members = await net.quorum_for_job(job_id)
    report = await net.make_report(
        job_id, cursor, payload, members[0].address, check_block=check_block
    )
    pending_ts = int((await net.w3.eth.get_block("pending"))["timestamp"])
    predicted = check_cursor(rules, cursor, report.checkBlock, pending_ts)
    known = COMPANIONS.get(id(net))
    if known is None or known[0] is not net:
        # made once per network; its blocks move the check block, so the report is made again
        COMPANIONS[id(net)] = (net, await create_companion(net, report.quorum))
        return await verdicts(net, job_id, cursor, payload, check_block)
    return predicted, await fate(net, report, payload, members, known[1])


# The companion job of each network (tests.integration.execute_support.fate).
COMPANIONS: dict[int, tuple[Net, int]] = {}


async def assert_all_agree(
    net: Net,
    job_id: int,
    cursors: list[int],
    payload: bytes,
    seen: set[str | None],
    check_block: int | None = None,
) -> None:
    for cursor in cursors:
        predicted, actual = await verdicts(net, job_id, cursor, payload, check_block)
        assert predicted == actual, f"cursor {cursor}: predicted {predicted}, contract {actual}"
        seen.add(actual)


async def test_time_cursor_verdicts_match_the_contract(net4: Net) -> None:
    # given a Time job every 60 s that starts in 100 s and ends 300 s later, and a one-shot job
    payload = selector("onTime()")
    now = await net4.timestamp()
    start, end = now + 100, now + 400
    job_id = await net4.create_job(
        net4.spec(TIME, time_trigger_bytes(60), payload, start_time=start, end_time=end)
    )
    once_id = await net4.create_job(
        net4.spec(TIME, time_trigger_bytes(60), payload, start_time=start, max_executions=1)
    )
    seen: set[str | None] = set()

    def candidates() -> list[int]:
        return [
            0,
            start - 60,
            start - 1,
            start,
            start + 1,
            start + 60,
            start + 61,
            start + 120,
            start + 300,
            start + 360,
            UINT64_MAX,
            UINT64_MAX + 1,
        ]

    # when cursors are tried before the start, between slots, after a round and after the end
    for at in (start - 30, start + 130):
        net4.time_travel(at)
        await assert_all_agree(net4, job_id, candidates(), NO_PAYLOAD, seen)
        proposed = compute_time_cursor(start, 60, at, (await net4.job(job_id))["lastCursor"], end)
        if proposed is not None:
            # then the proposed cursor is accepted, and executing it raises the cursor
            assert await verdicts(net4, job_id, proposed, NO_PAYLOAD) == (None, None)
            await net4.execute_round(job_id, proposed, NO_PAYLOAD)
            assert (await net4.job(job_id))["lastCursor"] == proposed
            await net4.execute_round(once_id, proposed, NO_PAYLOAD)
    await assert_all_agree(net4, job_id, candidates(), NO_PAYLOAD, seen)
    await assert_all_agree(net4, once_id, candidates(), NO_PAYLOAD, seen)
    net4.time_travel(end + 500)
    await assert_all_agree(net4, job_id, candidates(), NO_PAYLOAD, seen)
    # and the comparison covered every Time rule
    assert seen >= {
        None,
        "CursorOutOfRange",
        "CursorNotRaised",
        "CursorInFuture",
        "JobExpired",
        "CursorBeforeStart",
        "CursorOffGrid",
        "MaxExecutionsReached",
    }


async def test_event_cursor_verdicts_match_the_contract(net4: Net) -> None:
    # given an Event job with 3 confirmations, and one that only starts later
    payload = selector("onEvent()")
    trigger = event_trigger(net4.target.address, confirmations=3)
    job_id = await net4.create_job(net4.spec(EVENT, trigger, payload))
    created = (await net4.job(job_id))["lastCursor"] >> 32
    late_id = await net4.create_job(
        net4.spec(EVENT, trigger, payload, start_time=await net4.timestamp() + 1_000)
    )
    net4.mine(10)
    check_block = await net4.block_number()
    seen: set[str | None] = set()
    candidates = [
        compute_event_cursor(b, i)
        for b in (created, created + 1, check_block - 3, check_block - 2, check_block)
        for i in (0, 7)
    ]
    # when logs of various ages are reported at one check block
    await assert_all_agree(net4, job_id, candidates, NO_PAYLOAD, seen, check_block)
    await assert_all_agree(net4, late_id, candidates, NO_PAYLOAD, seen, check_block)
    # then every verdict matched, covering the Event rules
    assert seen >= {None, "CursorNotRaised", "LogNotConfirmed", "JobNotStarted"}


async def test_condition_cursor_verdicts_match_the_contract(net4: Net) -> None:
    # given a Condition job spaced by 3 blocks, and one that has ended
    resolver_call = selector("checker()")
    trigger = condition_trigger(net4.target.address, resolver_call, mode=0, min_interval=3)
    payload = selector("onCondition(uint256)") + abi_encode(["uint256"], [5])
    job_id = await net4.create_job(net4.spec(CONDITION, trigger, payload))
    now = await net4.timestamp()
    ended_id = await net4.create_job(net4.spec(CONDITION, trigger, payload, end_time=now + 50))
    net4.mine(3)
    seen: set[str | None] = set()
    # when the first run is reported (no spacing yet) with matching and mismatching cursors
    cb = await net4.block_number()
    await assert_all_agree(net4, job_id, [cb, cb - 1, cb + 1], payload, seen, cb)
    await net4.target.functions.request(5).transact({"from": net4.owner.address})
    cb = await net4.block_number()
    assert is_condition_due(cb, 0, 3)
    await net4.execute_round(job_id, cb, payload, check_block=cb)
    assert (await net4.job(job_id))["lastCursor"] == cb
    last = cb
    # and later check blocks come too soon or far enough
    net4.mine(4)
    pending_ts = int((await net4.w3.eth.get_block("pending"))["timestamp"])
    rules = rules_of(await net4.job(job_id))
    for check in (last + 1, last + 2, last + 3, last + 4):
        await assert_all_agree(net4, job_id, [check, last], payload, seen, check)
        assert is_condition_due(check, last, 3) == (
            check_cursor(rules, check, check, pending_ts) is None
        )
    net4.time_travel(now + 100)
    cb = await net4.block_number()
    await assert_all_agree(net4, ended_id, [cb], payload, seen, cb)
    # then every verdict matched, covering the Condition rules
    assert seen >= {None, "CursorNotRaised", "CursorMismatch", "ConditionTooSoon", "JobExpired"}
