"""Per-kind due and cursor rules, mirroring TaskManager._checkCursor and the job limits.

Every execution must raise the job's monotonic cursor; what the cursor means depends on the
trigger kind (protocol table "Trigger kinds and the cursor"):

    Time       the slot's timestamp, start + k * interval
    Cron       the scheduled fire time
    Event      (logBlock << 32) | logIndex
    Condition  the check block

A node uses these functions to decide whether a job's next round is due and which cursor to
propose, and `check_cursor` to predict the contract's verdict on a cursor before it spends gas
or a signature on it. Everything is a function of values: block numbers and timestamps come
from the chain (never the local clock), and the cron schedule is injected as a function so that
this package needs no scheduler library.

Members must derive the same cursor for the same check block, or an honest quorum could sign two
results under one (jobId, round, checkBlock, checkBlockHash) and be slashed for equivocation. So
the `now_ts` a Time or Cron cursor is computed at is the check block's timestamp, never the
latest block's: it is fixed by the check block hash, and it never exceeds the executing block's
timestamp, so the contract's `cursor <= block.timestamp` holds whenever the report lands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

UINT64_MAX = (1 << 64) - 1
# TaskManager.CRON_GRID: Cron fire times are whole minutes, so no quorum fires one more often.
CRON_GRID = 60
LOG_INDEX_BITS = 32
LOG_INDEX_MASK = (1 << LOG_INDEX_BITS) - 1
# The cursor is stored as uint64, so an Event cursor's block must fit in the top 32 bits.
MAX_LOG_BLOCK = (1 << (64 - LOG_INDEX_BITS)) - 1
# Upper bound on `next_fire_time` calls per cron evaluation; see compute_cron_cursor.
MAX_CRON_STEPS = 10_000
# Most rounds of one Event job in one batch, one matched log each (items (job, r, c1),
# (job, r+1, c2), ... in cursor order): a burst of logs is worked off at the batch's rate.
MAX_EVENT_ITEMS = 32

NextFireTime = Callable[[int], int | None]
"""A cron schedule: the first fire time strictly after a unix timestamp, None if none."""


class TriggerKind(IntEnum):
    """TaskManager.TriggerKind, same numbering."""

    Time = 0
    Cron = 1
    Event = 2
    Condition = 3


@dataclass(frozen=True)
class JobRules:
    """The part of a job the cursor rules read, as `TaskManager.getJob` returns it.

    `interval` is overloaded exactly as in the contract's JobSchedule: seconds between slots for
    Time jobs, confirmations for Event jobs, minimum block spacing for Condition jobs (unused for
    Cron). `end_time` and `max_executions` use 0 for "none"; `round` counts executions so far.
    """

    kind: TriggerKind
    start_time: int
    end_time: int
    interval: int
    max_executions: int
    round: int
    last_cursor: int


# ----------------------------------------------------------------------------- Time


def compute_time_cursor(
    start: int, interval: int, now_ts: int, last_cursor: int, end_time: int = 0
) -> int | None:
    """The newest slot `start + k*interval` that is due at `now_ts`, or None.

    A slot is due when it is `<= now_ts`, `> last_cursor`, `>= start` and, with an end time,
    `<= end_time`. Only the newest is proposed: slots missed while the network was down are
    skipped, not replayed, so a late keeper never fires a burst of stale executions.
    """
    if interval <= 0:
        raise ValueError("a Time job's interval is positive")
    limit = now_ts if end_time == 0 else min(now_ts, end_time)
    if limit < start:
        return None
    slot = start + (limit - start) // interval * interval
    return slot if slot > last_cursor else None


# ----------------------------------------------------------------------------- Cron


def compute_cron_cursor(
    next_fire_time: NextFireTime,
    start: int,
    now_ts: int,
    last_cursor: int,
    end_time: int = 0,
    max_steps: int = MAX_CRON_STEPS,
) -> int | None:
    """The newest fire time of a cron schedule that is due at `now_ts`, or None.

    Due means `> max(last_cursor, start - 1)` (so `>= start`), `<= now_ts` and, with an end time,
    `<= end_time`: the same window the contract accepts, with missed fires skipped as for Time.

    `next_fire_time(t)` must return the first fire time strictly after `t`. A schedule can only
    be walked forward, so the search first finds a fire inside a window that ends at the limit
    and doubles backwards (`(limit - w, limit]` for w = 1, 2, 4, ... s; about 40 calls reach back
    decades), then walks forward to the newest fire in it. The window is at most twice the gap
    to the newest fire, so the walk is short for any schedule; still, the total number of calls
    is capped at `max_steps` (10 000 by default) so that a pathological schedule cannot stall a
    node. When the cap is hit the newest fire found so far is returned: it is still a valid,
    deterministic cursor (every keeper computes the same one) and the next round catches up.
    """
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    floor = max(last_cursor, start - 1)
    limit = now_ts if end_time == 0 else min(now_ts, end_time)
    if limit <= floor:
        return None

    steps = 0
    width = 1
    while True:
        after = max(floor, limit - width)
        first = _next_after(next_fire_time, after)
        steps += 1
        if first is not None and first <= limit:
            break
        if after == floor or steps >= max_steps:
            return None
        width *= 2

    newest = first
    while steps < max_steps:
        following = _next_after(next_fire_time, newest)
        steps += 1
        if following is None or following > limit:
            break
        newest = following
    return newest


def compute_cron_next_fire(
    next_fire_time: NextFireTime, start: int, last_cursor: int
) -> int | None:
    """The first fire a Cron job could take after its last cursor (and at or after its start),
    or None if the schedule never fires again.

    It depends on the cursor and the schedule only, not on the check time, so a node can keep
    it until the cursor moves: `compute_cron_cursor` finds nothing due exactly while the check
    time (or the end time, if earlier) is before this fire, a comparison per job per head.
    """
    return _next_after(next_fire_time, max(last_cursor, start - 1))


def is_cron_fire_due(next_fire: int | None, now_ts: int, end_time: int = 0) -> bool:
    """Whether `next_fire` (from compute_cron_next_fire) has come by `now_ts`, within the end."""
    limit = now_ts if end_time == 0 else min(now_ts, end_time)
    return next_fire is not None and next_fire <= limit


def _next_after(next_fire_time: NextFireTime, after: int) -> int | None:
    fire = next_fire_time(after)
    if fire is not None and fire <= after:
        raise ValueError(f"next_fire_time({after}) returned {fire}, not strictly later")
    return fire


# ----------------------------------------------------------------------------- Event


def compute_event_cursor(log_block: int, log_index: int) -> int:
    """`(logBlock << 32) | logIndex`: orders logs by block, then by position in the block."""
    if not 0 <= log_block <= MAX_LOG_BLOCK:
        raise ValueError(f"log block {log_block} does not fit in 32 bits")
    if not 0 <= log_index <= LOG_INDEX_MASK:
        raise ValueError(f"log index {log_index} does not fit in 32 bits")
    return (log_block << LOG_INDEX_BITS) | log_index


def split_event_cursor(cursor: int) -> tuple[int, int]:
    """(logBlock, logIndex) of an Event cursor; the inverse of compute_event_cursor."""
    if not 0 <= cursor <= UINT64_MAX:
        raise ValueError(f"cursor {cursor} does not fit in uint64")
    return cursor >> LOG_INDEX_BITS, cursor & LOG_INDEX_MASK


def is_log_confirmed(log_block: int, confirmations: int, check_block: int) -> bool:
    """The contract's rule: a log is attested at `check_block >= logBlock + confirmations`."""
    return log_block + confirmations <= check_block


def is_event_due(cursor: int, last_cursor: int, confirmations: int, check_block: int) -> bool:
    """A log fires a round when it is newer than the last one fired and confirmed at check_block.

    A new job's last cursor is `(creationBlock << 32) | 0xffffffff`, so logs of the creation
    block or older never fire.
    """
    log_block, _ = split_event_cursor(cursor)
    return cursor > last_cursor and is_log_confirmed(log_block, confirmations, check_block)


def compute_event_item_count(
    max_executions: int, round_: int, affordable: int, limit: int = MAX_EVENT_ITEMS
) -> int:
    """How many rounds of an Event job one batch may carry from round `round_`: at most
    `limit`, within its remaining executions (0 = no maximum) and the worst-case executions its
    balance pays for (`affordable`), and at least the one round that is due anyway (the
    contract skips it if it cannot pay, as for any single round)."""
    count = limit
    if max_executions != 0:
        count = min(count, max_executions - round_)
    return max(1, min(count, affordable))


# ----------------------------------------------------------------------------- Condition


def is_condition_due(check_block: int, last_cursor: int, min_interval: int) -> bool:
    """Whether a Condition job may run at `check_block` (its cursor): raised and spaced.

    A last cursor of 0 means the job never ran, so the first execution needs no spacing.
    """
    if check_block <= last_cursor:
        return False
    return last_cursor == 0 or check_block >= last_cursor + min_interval


# ----------------------------------------------------------------------------- any kind


def is_job_active_at(rules: JobRules, now_ts: int) -> bool:
    """Whether the contract could still accept a new round of this job at `now_ts`.

    Necessary, not sufficient: the kind's due rule decides whether a round is due. Rounds must
    remain under `max_executions`. Event and Condition jobs run inside [start_time, end_time] of
    the executing block's time. Time and Cron jobs bound the cursor instead: it must lie in
    [start_time, min(now, end_time)] and above the last cursor, so a slot at or before the end
    time stays executable after the end time has passed, and nothing runs before the start.
    """
    if rules.max_executions != 0 and rules.round >= rules.max_executions:
        return False
    if now_ts < rules.start_time:
        return False
    if rules.kind in (TriggerKind.Time, TriggerKind.Cron):
        return rules.end_time == 0 or rules.last_cursor < rules.end_time
    return rules.end_time == 0 or now_ts <= rules.end_time


def check_cursor(
    rules: JobRules, cursor: int, check_block: int, block_timestamp: int
) -> str | None:
    """The custom error `TaskManager.execute` would raise over the job's trigger rules, or None.

    Two groups of checks run, in exactly the contract's order, so the name matches the revert
    even when a cursor breaks several rules:

    1. the job limits of `_checkReportContext`: `MaxExecutionsReached`, then `JobExpired` (Event
       and Condition jobs stop when the executing block is past `end_time`; a Time or Cron slot
       at or before `end_time` may still be executed late, a later one never);
    2. `_checkCursor`: range and monotonicity, then the kind's rule.

    The contract checks funding, the check block and the payload between the two groups; those
    are assumed to pass here, as are status, executor, deadline and round (the report is for the
    job's next round). `block_timestamp` is the timestamp of the block that executes the report
    (a node predicts it with the pending block's).
    """
    if rules.max_executions != 0 and rules.round >= rules.max_executions:
        return "MaxExecutionsReached"
    is_scheduled = rules.kind in (TriggerKind.Time, TriggerKind.Cron)
    is_past_end = rules.end_time != 0 and block_timestamp > rules.end_time
    if is_past_end and (not is_scheduled or cursor > rules.end_time):
        return "JobExpired"

    if cursor > UINT64_MAX:
        return "CursorOutOfRange"
    if cursor <= rules.last_cursor:
        return "CursorNotRaised"
    if is_scheduled:
        # A slot after end_time is in the future unless the block is past end_time (above).
        if cursor > block_timestamp:
            return "CursorInFuture"
        if cursor < rules.start_time:
            return "CursorBeforeStart"
        if rules.kind == TriggerKind.Time and (cursor - rules.start_time) % rules.interval != 0:
            return "CursorOffGrid"
        if rules.kind == TriggerKind.Cron and cursor % CRON_GRID != 0:
            return "CursorOffGrid"
        return None
    if block_timestamp < rules.start_time:
        return "JobNotStarted"
    if rules.kind == TriggerKind.Event:
        log_block = cursor >> LOG_INDEX_BITS
        if not is_log_confirmed(log_block, rules.interval, check_block):
            return "LogNotConfirmed"
        return None
    if cursor != check_block:
        return "CursorMismatch"
    if rules.last_cursor != 0 and cursor < rules.last_cursor + rules.interval:
        return "ConditionTooSoon"
    return None
