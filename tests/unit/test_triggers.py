"""Due and cursor rules per trigger kind, checked against brute force and the contract's order."""

from __future__ import annotations

import bisect
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.core.cron import validate_cron
from keeper.core.triggers import (
    MAX_LOG_BLOCK,
    UINT64_MAX,
    JobRules,
    TriggerKind,
    check_cursor,
    compute_cron_cursor,
    compute_event_cursor,
    compute_time_cursor,
    is_condition_due,
    is_event_due,
    is_job_active_at,
    is_log_confirmed,
    split_event_cursor,
)
from keeper.errors import InvalidCron
from keeper.node.cron_calendar import cron_next_fire

T0 = 1_700_000_000  # a realistic block timestamp
timestamps = st.integers(min_value=0, max_value=4_000_000_000)
intervals = st.integers(min_value=1, max_value=100_000)


def rules(kind: TriggerKind, **kw: int) -> JobRules:
    values = {
        "start_time": T0,
        "end_time": 0,
        "interval": 60,
        "max_executions": 0,
        "round": 0,
        "last_cursor": 0,
    }
    values.update(kw)
    return JobRules(kind=kind, **values)


def brute_time_cursor(start: int, interval: int, now: int, last: int, end: int) -> int | None:
    limit = now if end == 0 else min(now, end)
    slots = [s for s in range(start, limit + 1, interval) if s > last]
    return slots[-1] if slots else None


def fake_schedule(fires: list[int]) -> Callable[[int], int | None]:
    """next_fire_time over an explicit, sorted list of fire times."""

    def next_fire_time(after: int) -> int | None:
        i = bisect.bisect_right(fires, after)
        return fires[i] if i < len(fires) else None

    return next_fire_time


# ----------------------------------------------------------------------------- Time


@given(
    start=st.integers(0, 5_000),
    interval=st.integers(1, 700),
    now=st.integers(0, 12_000),
    last=st.integers(0, 12_000),
    end=st.one_of(st.just(0), st.integers(1, 12_000)),
)
def test_time_cursor_equals_brute_force(
    start: int, interval: int, now: int, last: int, end: int
) -> None:
    # given a Time job, when the newest due slot is computed, then it is what enumeration finds
    assert compute_time_cursor(start, interval, now, last, end) == brute_time_cursor(
        start, interval, now, last, end
    )


@given(start=timestamps, interval=intervals, now=timestamps, last=timestamps)
def test_time_cursor_is_on_grid_due_raised_and_newest(
    start: int, interval: int, now: int, last: int
) -> None:
    # given any job state, when a cursor is proposed
    cursor = compute_time_cursor(start, interval, now, last)
    if cursor is None:
        # then None means no grid slot lies in (last, now]
        limit_slot = start + (now - start) // interval * interval if now >= start else None
        assert limit_slot is None or limit_slot <= last
        return
    # then it is a slot, due, raised, and no later slot is due
    assert (cursor - start) % interval == 0
    assert start <= cursor <= now
    assert cursor > last
    assert cursor + interval > now


@given(start=timestamps, interval=intervals, now1=timestamps, now2=timestamps, last=timestamps)
def test_time_cursor_is_monotonic_in_now(
    start: int, interval: int, now1: int, now2: int, last: int
) -> None:
    # given two observation times, when the later one is used
    early, late = sorted((now1, now2))
    c1 = compute_time_cursor(start, interval, early, last)
    c2 = compute_time_cursor(start, interval, late, last)
    # then the cursor never goes back and a due slot stays due
    if c1 is not None:
        assert c2 is not None and c2 >= c1


def test_time_cursor_skips_missed_slots_instead_of_replaying() -> None:
    # given a job every 60 s that last ran at its first slot
    # when the network comes back 10 slots later (plus 5 s)
    cursor = compute_time_cursor(T0, 60, T0 + 605, last_cursor=T0)
    # then only the newest slot is proposed
    assert cursor == T0 + 600


def test_time_cursor_is_none_before_start_and_after_last_slot_executed() -> None:
    assert compute_time_cursor(T0, 60, T0 - 1, 0) is None
    assert compute_time_cursor(T0, 60, T0, 0) == T0
    assert compute_time_cursor(T0, 60, T0 + 59, T0) is None
    assert compute_time_cursor(T0, 60, T0 + 60, T0) == T0 + 60


def test_time_cursor_never_proposes_a_slot_after_end_time() -> None:
    # given an end time between two slots, when long after it
    cursor = compute_time_cursor(T0, 60, T0 + 10_000, 0, end_time=T0 + 150)
    # then the last slot before the end is proposed, once
    assert cursor == T0 + 120
    assert compute_time_cursor(T0, 60, T0 + 10_000, T0 + 120, end_time=T0 + 150) is None
    # and a slot exactly at the end is still due
    assert compute_time_cursor(T0, 60, T0 + 10_000, 0, end_time=T0 + 180) == T0 + 180


def test_time_cursor_rejects_a_zero_interval() -> None:
    with pytest.raises(ValueError):
        compute_time_cursor(T0, 0, T0, 0)


@given(
    start=st.integers(1, 10**9),
    interval=intervals,
    slots=st.integers(0, 10**4),
    into_slot=st.integers(0, 10**6),
    behind=st.integers(1, 10**4),
    end_after=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_time_cursor_is_always_accepted_by_check_cursor(
    start: int, interval: int, slots: int, into_slot: int, behind: int, end_after: int | None
) -> None:
    # given a job whose newest slot at `now` is above its last cursor (built, not filtered:
    # filtering random inputs starved hypothesis on a slow machine)
    slot = start + slots * interval
    now = slot + into_slot % interval
    last = max(0, slot - behind)
    end = 0 if end_after is None else slot + end_after
    cursor = compute_time_cursor(start, interval, now, last, end)
    assert cursor is not None
    job = rules(
        TriggerKind.Time, start_time=start, interval=interval, last_cursor=last, end_time=end
    )
    # then the contract's checks pass in the block it was computed for
    assert check_cursor(job, cursor, check_block=100, block_timestamp=now) is None


# ----------------------------------------------------------------------------- Cron


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 4 * 10**9), now=st.integers(0, 4 * 10**9), last=st.integers(0, 4 * 10**9)
)
def test_cron_every_five_minutes_gives_the_newest_multiple_of_300(
    start: int, now: int, last: int
) -> None:
    # given "*/5 * * * *" evaluated by APScheduler in UTC
    cursor = compute_cron_cursor(cron_next_fire("*/5 * * * *"), start, now, last)
    # then the cursor is the newest multiple of 300 s in (max(last, start - 1), now]
    floor = max(last, start - 1)
    newest = now // 300 * 300
    assert cursor == (newest if newest > floor else None)


def test_cron_real_schedule_examples() -> None:
    daily = cron_next_fire("30 2 * * *")  # 02:30 UTC every day
    day = 86_400
    base = 1_704_067_200  # 2024-01-01T00:00:00Z
    assert daily(base) == base + 2 * 3600 + 1800
    assert daily(base + 2 * 3600 + 1800) == base + day + 2 * 3600 + 1800
    # a week later, only the newest daily fire is proposed
    cursor = compute_cron_cursor(daily, base, base + 7 * day + 3 * 3600, last_cursor=base + 9000)
    assert cursor == base + 7 * day + 9000


def test_cron_named_weekdays_and_start_time() -> None:
    weekdays = cron_next_fire("0 9 * * mon-fri")
    sat = 1_704_499_200  # 2024-01-06T00:00:00Z, a Saturday
    mon_9 = sat + 2 * 86_400 + 9 * 3600
    assert weekdays(sat) == mon_9
    # a start time after a fire excludes it, a start time exactly on it includes it
    assert compute_cron_cursor(weekdays, mon_9 + 1, mon_9 + 3600, 0) is None
    assert compute_cron_cursor(weekdays, mon_9, mon_9 + 3600, 0) == mon_9


@given(
    fires=st.lists(st.integers(0, 100_000), unique=True).map(sorted),
    start=st.integers(0, 100_000),
    now=st.integers(0, 110_000),
    last=st.integers(0, 100_000),
    end=st.one_of(st.just(0), st.integers(1, 110_000)),
)
def test_cron_cursor_with_any_schedule_is_the_newest_due_fire(
    fires: list[int], start: int, now: int, last: int, end: int
) -> None:
    # given an arbitrary schedule
    cursor = compute_cron_cursor(fake_schedule(fires), start, now, last, end)
    # then the cursor is the newest fire in (max(last, start - 1), min(now, end)]
    limit = now if end == 0 else min(now, end)
    due = [f for f in fires if max(last, start - 1) < f <= limit]
    assert cursor == (due[-1] if due else None)
    if cursor is not None:
        job = rules(TriggerKind.Cron, start_time=start, last_cursor=last, end_time=end)
        # (real cron fires on whole minutes; this schedule may not, and the contract's grid
        # refuses those)
        expected = None if cursor % 60 == 0 else "CursorOffGrid"
        assert check_cursor(job, cursor, 1, now) == expected


def test_cron_cursor_search_is_bounded() -> None:
    # given a schedule that fired every second for a day, then stopped for years
    fires = list(range(1, 86_401))
    calls = 0
    schedule = fake_schedule(fires)

    def counted(after: int) -> int | None:
        nonlocal calls
        calls += 1
        return schedule(after)

    # when the newest fire is searched from far later
    cursor = compute_cron_cursor(counted, 0, 10**9, 0, max_steps=1_000)
    # then the search stops at the bound with a valid (if not newest) fire
    assert calls <= 1_000
    assert cursor is not None and cursor in fires and cursor < fires[-1]
    # and the unbounded-enough search finds the newest
    assert compute_cron_cursor(schedule, 0, 10**9, 0, max_steps=200_000) == fires[-1]


def test_cron_cursor_rejects_a_schedule_that_does_not_move_forward() -> None:
    with pytest.raises(ValueError):
        compute_cron_cursor(lambda after: after, 0, 1_000, 0)


def test_a_cron_cursor_off_the_minute_grid_is_refused_as_the_contract_does() -> None:
    # a byzantine quorum cannot fire a Cron job twice in one minute: fire times are whole
    # minutes on-chain (TaskManager.CRON_GRID), and check_cursor names the same revert
    job = rules(TriggerKind.Cron, last_cursor=1_800_000_000)
    assert check_cursor(job, 1_800_000_060, 1, 1_800_000_100) is None
    assert check_cursor(job, 1_800_000_030, 1, 1_800_000_100) == "CursorOffGrid"
    assert check_cursor(job, 1_800_000_061, 1, 1_800_000_100) == "CursorOffGrid"


def test_cron_cursor_respects_end_time() -> None:
    every_minute = cron_next_fire("* * * * *")
    assert compute_cron_cursor(every_minute, 0, 10_000, 0, end_time=1_000) == 960
    assert compute_cron_cursor(every_minute, 0, 10_000, 960, end_time=1_000) is None


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "* * * *",
        "* * * * * *",
        "*  * * * *",
        " * * * * *",
        "* * * * * ",
        "61 * * * *",
        "* * * 13 *",
        "0 0 30 2 *",
        "a b c d e",
        "* * * * *\n",
        "x" * 129,
    ],
)
def test_validate_cron_rejects(expr: str) -> None:
    with pytest.raises(InvalidCron) as info:
        validate_cron(expr)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "expr", ["* * * * *", "*/5 * * * *", "0 9 * * mon-fri", "0 0 29 2 *", "15,45 */2 1-7 jan,jul *"]
)
def test_validate_cron_accepts(expr: str) -> None:
    validate_cron(expr)


def test_cron_next_fire_rejects_an_unparsable_expression() -> None:
    with pytest.raises(InvalidCron):
        cron_next_fire("not a cron at all")


# ----------------------------------------------------------------------------- Event


@given(block=st.integers(0, MAX_LOG_BLOCK), index=st.integers(0, 2**32 - 1))
def test_event_cursor_roundtrip(block: int, index: int) -> None:
    cursor = compute_event_cursor(block, index)
    assert 0 <= cursor <= UINT64_MAX
    assert split_event_cursor(cursor) == (block, index)


@given(
    a=st.tuples(st.integers(0, MAX_LOG_BLOCK), st.integers(0, 2**32 - 1)),
    b=st.tuples(st.integers(0, MAX_LOG_BLOCK), st.integers(0, 2**32 - 1)),
)
def test_event_cursor_orders_logs_by_block_then_index(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    ca, cb = compute_event_cursor(*a), compute_event_cursor(*b)
    assert (ca < cb) == (a < b)
    assert (ca == cb) == (a == b)


@pytest.mark.parametrize("block,index", [(-1, 0), (0, -1), (2**32, 0), (0, 2**32)])
def test_event_cursor_rejects_out_of_range_parts(block: int, index: int) -> None:
    with pytest.raises(ValueError):
        compute_event_cursor(block, index)


def test_split_event_cursor_rejects_values_beyond_uint64() -> None:
    with pytest.raises(ValueError):
        split_event_cursor(UINT64_MAX + 1)


def test_log_confirmation_boundary() -> None:
    # a log in block 100 with 3 confirmations is attested from check block 103 on
    assert not is_log_confirmed(100, 3, 102)
    assert is_log_confirmed(100, 3, 103)
    assert is_log_confirmed(100, 0, 100)
    assert not is_log_confirmed(101, 0, 100)


def test_event_due_needs_a_newer_log_and_confirmations() -> None:
    created = compute_event_cursor(50, 0xFFFFFFFF)  # a new job's last cursor
    assert not is_event_due(compute_event_cursor(50, 3), created, 0, 60)  # creation block
    assert is_event_due(compute_event_cursor(51, 0), created, 0, 60)
    assert not is_event_due(compute_event_cursor(58, 0), created, 3, 60)
    assert is_event_due(compute_event_cursor(57, 0), created, 3, 60)
    last = compute_event_cursor(57, 4)
    assert not is_event_due(compute_event_cursor(57, 4), last, 0, 60)
    assert is_event_due(compute_event_cursor(57, 5), last, 0, 60)


@given(
    block=st.integers(1, 10_000),
    index=st.integers(0, 10),
    last_block=st.integers(0, 10_000),
    last_index=st.integers(0, 10),
    confirmations=st.integers(0, 64),
    check_block=st.integers(0, 10_100),
)
def test_event_due_agrees_with_check_cursor(
    block: int, index: int, last_block: int, last_index: int, confirmations: int, check_block: int
) -> None:
    cursor = compute_event_cursor(block, index)
    last = compute_event_cursor(last_block, last_index)
    job = rules(TriggerKind.Event, interval=confirmations, last_cursor=last)
    verdict = check_cursor(job, cursor, check_block, block_timestamp=T0)
    assert is_event_due(cursor, last, confirmations, check_block) == (verdict is None)


# ----------------------------------------------------------------------------- Condition


def test_condition_first_run_needs_no_spacing_then_spacing_is_inclusive() -> None:
    assert is_condition_due(check_block=5, last_cursor=0, min_interval=1_000)
    assert not is_condition_due(check_block=109, last_cursor=100, min_interval=10)
    assert is_condition_due(check_block=110, last_cursor=100, min_interval=10)
    assert not is_condition_due(check_block=100, last_cursor=100, min_interval=0)


@given(
    check_block=st.integers(1, 10_000),
    last=st.integers(0, 10_000),
    min_interval=st.integers(1, 500),
)
def test_condition_due_agrees_with_check_cursor(
    check_block: int, last: int, min_interval: int
) -> None:
    job = rules(TriggerKind.Condition, interval=min_interval, last_cursor=last)
    verdict = check_cursor(job, check_block, check_block, block_timestamp=T0)
    assert is_condition_due(check_block, last, min_interval) == (verdict is None)
    if verdict is not None:
        assert verdict in ("CursorNotRaised", "ConditionTooSoon")


# ----------------------------------------------------------------------------- any kind


def test_job_active_window_for_event_and_condition_jobs() -> None:
    job = rules(TriggerKind.Event, start_time=T0, end_time=T0 + 100)
    assert not is_job_active_at(job, T0 - 1)
    assert is_job_active_at(job, T0)
    assert is_job_active_at(job, T0 + 100)
    assert not is_job_active_at(job, T0 + 101)
    assert is_job_active_at(rules(TriggerKind.Condition, end_time=0), T0 + 10**9)


def test_time_job_stays_active_after_end_until_a_slot_at_the_end_ran() -> None:
    job = rules(TriggerKind.Time, start_time=T0, end_time=T0 + 100, last_cursor=T0 + 60)
    assert is_job_active_at(job, T0 + 1_000)
    assert not is_job_active_at(
        rules(TriggerKind.Cron, end_time=T0 + 100, last_cursor=T0 + 100), T0 + 50
    )


@pytest.mark.parametrize("kind", list(TriggerKind))
def test_job_with_all_executions_done_is_inactive(kind: TriggerKind) -> None:
    assert is_job_active_at(rules(kind, max_executions=3, round=2), T0 + 10)
    assert not is_job_active_at(rules(kind, max_executions=3, round=3), T0 + 10)
    assert is_job_active_at(rules(kind, max_executions=0, round=10**6), T0 + 10)


@pytest.mark.parametrize(
    "job,cursor,check_block,now,expected",
    [
        # the job limits come first: executions cap, then the end time
        (
            rules(TriggerKind.Time, max_executions=2, round=2, last_cursor=T0),
            T0,
            10,
            T0,
            "MaxExecutionsReached",
        ),
        (
            rules(TriggerKind.Event, max_executions=2, round=2, end_time=T0),
            5,
            10,
            T0 + 1,
            "MaxExecutionsReached",
        ),
        (
            rules(TriggerKind.Event, end_time=T0 + 10, last_cursor=9 << 32),
            5,
            10,
            T0 + 11,
            "JobExpired",
        ),
        (
            rules(TriggerKind.Time, end_time=T0 + 100, last_cursor=T0 + 120),
            T0 + 120,
            10,
            T0 + 200,
            "JobExpired",
        ),
        (rules(TriggerKind.Cron, end_time=T0 + 100), UINT64_MAX + 1, 10, T0 + 200, "JobExpired"),
        # then the two cursor checks every kind shares, in this order
        (rules(TriggerKind.Time), UINT64_MAX + 1, 10, T0, "CursorOutOfRange"),
        (rules(TriggerKind.Event, last_cursor=5), 5, 10, T0, "CursorNotRaised"),
        (rules(TriggerKind.Time, last_cursor=T0 + 60), T0 + 60, 10, T0 + 99, "CursorNotRaised"),
        # Time / Cron: future, then start, then grid
        (rules(TriggerKind.Time), T0 + 61, 10, T0 + 60, "CursorInFuture"),
        (rules(TriggerKind.Time, end_time=T0 + 100), T0 + 121, 10, T0 + 200, "JobExpired"),
        (rules(TriggerKind.Time, end_time=T0 + 100), T0 + 60, 10, T0 + 200, None),
        (rules(TriggerKind.Time, end_time=T0 + 100), T0 + 120, 10, T0 + 90, "CursorInFuture"),
        (rules(TriggerKind.Time, end_time=T0 + 100), T0 + 60, 10, T0 + 100, None),
        (rules(TriggerKind.Time, end_time=T0 + 100), T0 - 60, 10, T0 + 200, "CursorBeforeStart"),
        (rules(TriggerKind.Time), T0 - 60, 10, T0 + 60, "CursorBeforeStart"),
        (rules(TriggerKind.Time), T0 + 61, 10, T0 + 100, "CursorOffGrid"),
        (rules(TriggerKind.Time), T0 + 120, 10, T0 + 120, None),
        (rules(TriggerKind.Cron), T0 + 40, 10, T0 + 100, None),  # a whole minute
        (rules(TriggerKind.Cron), T0 + 61, 10, T0 + 100, "CursorOffGrid"),
        (rules(TriggerKind.Cron), T0 - 1, 10, T0 + 100, "CursorBeforeStart"),
        (rules(TriggerKind.Cron), T0 + 101, 10, T0 + 100, "CursorInFuture"),
        # Event / Condition: the executing block's time against the window first
        (rules(TriggerKind.Event, end_time=T0 + 10), 50 << 32, 10, T0 + 11, "JobExpired"),
        (rules(TriggerKind.Condition, end_time=T0 + 10), 10, 10, T0 + 11, "JobExpired"),
        (rules(TriggerKind.Event, start_time=T0 + 5), 5 << 32, 10, T0 + 4, "JobNotStarted"),
        (rules(TriggerKind.Event, interval=3), 8 << 32, 10, T0, "LogNotConfirmed"),
        (rules(TriggerKind.Event, interval=3), 7 << 32, 10, T0, None),
        (rules(TriggerKind.Condition), 9, 10, T0, "CursorMismatch"),
        (rules(TriggerKind.Condition, interval=5, last_cursor=8), 12, 12, T0, "ConditionTooSoon"),
        (rules(TriggerKind.Condition, interval=5, last_cursor=8), 13, 13, T0, None),
        (rules(TriggerKind.Condition, interval=1000), 13, 13, T0, None),
        (rules(TriggerKind.Condition, end_time=T0 + 10), 13, 13, T0 + 10, None),
    ],
)
def test_check_cursor_names_the_contracts_error(
    job: JobRules, cursor: int, check_block: int, now: int, expected: str | None
) -> None:
    assert check_cursor(job, cursor, check_block, now) == expected


def test_cron_weekday_numbers_follow_classic_cron_where_0_is_sunday() -> None:
    # given the quorum's agreed evaluator (cron semantics), weekday 0 is Sunday, as is 7;
    # pinned here so that a library upgrade that changes fire times cannot slip in unnoticed
    sat = 1_704_499_200  # 2024-01-06T00:00:00Z, a Saturday
    assert cron_next_fire("0 0 * * 0")(sat) == sat + 86_400  # Sunday 00:00
    assert cron_next_fire("0 0 * * 7")(sat) == sat + 86_400
    assert cron_next_fire("0 0 * * sun")(sat) == sat + 86_400
