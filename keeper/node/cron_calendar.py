"""The calendar search behind the Cron rule: APScheduler finds the next fire of a CronSchedule.

keeper.core.cron parses an expression into the values each field names (cron's meaning, not
APScheduler's); APScheduler's CronTrigger only searches the calendar for those sets, which it
reads literally. `cron_next_fire` is the seam: keeper.core.triggers takes its result as a
plain `next_fire_time(after_ts)` function.
"""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.triggers.cron import CronTrigger

from keeper.core.cron import (
    DAY_OF_MONTH,
    HOUR,
    MINUTE,
    MONTH,
    WEEKDAY_NAMES,
    CronSchedule,
    is_day_of_month_possible,
    parse_cron,
)
from keeper.core.triggers import NextFireTime

# APScheduler's weekday numbers: index 0 is Monday.
APSCHEDULER_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _render(values: frozenset[int], low: int, high: int) -> str:
    """`values` as runs APScheduler reads literally ("0-4,6"), or "*" for the whole field."""
    if values == frozenset(range(low, high + 1)):
        return "*"
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and runs[-1][1] == v - 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


def _render_weekdays(days: frozenset[int]) -> str:
    """Cron weekdays (0 = Sunday) as APScheduler weekday names."""
    if len(days) == len(WEEKDAY_NAMES):
        return "*"
    return ",".join(APSCHEDULER_WEEKDAYS[(d - 1) % 7] for d in sorted(days))


def compute_cron_triggers(schedule: CronSchedule) -> tuple[CronTrigger, ...]:
    """The triggers whose earliest next fire is the schedule's: one, or two for the OR rule."""

    def trigger(day: str, day_of_week: str) -> CronTrigger:
        return CronTrigger(
            minute=_render(schedule.minutes, MINUTE.low, MINUTE.high),
            hour=_render(schedule.hours, HOUR.low, HOUR.high),
            day=day,
            month=_render(schedule.months, MONTH.low, MONTH.high),
            day_of_week=day_of_week,
            timezone=UTC,
        )

    day = _render(schedule.days, DAY_OF_MONTH.low, DAY_OF_MONTH.high)
    day_of_week = _render_weekdays(schedule.weekdays)
    if not schedule.day_or_weekday:
        return (trigger(day, day_of_week),)
    by_weekday = trigger("*", day_of_week)
    if not is_day_of_month_possible(schedule):
        # "0 0 31 2 1": no February 31st ever, Mondays only. Dropped here, because every
        # search of a trigger that never fires runs on to the year 9999.
        return (by_weekday,)
    return trigger(day, "*"), by_weekday


def cron_next_fire(expr: str) -> NextFireTime:
    """`next_fire_time(after_ts)` for `expr`: the first fire time strictly after `after_ts`.

    Cron fire times fall on whole minutes, so asking APScheduler for the first fire at or after
    `after_ts + 1` is the first one strictly after `after_ts`; under cron's day-of-month OR
    day-of-week rule it is the earlier of the two triggers' fires. Raises InvalidCron for an
    expression cron would refuse.
    """
    triggers = compute_cron_triggers(parse_cron(expr))

    def next_fire_time(after_ts: int) -> int | None:
        # previous_fire_time=None: the search starts at `now` (inclusive, rounded up to a second).
        try:
            now = datetime.fromtimestamp(after_ts + 1, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None  # beyond the calendar datetime can represent: no fire there
        fires = [t.get_next_fire_time(None, now) for t in triggers]
        found = [int(f.timestamp()) for f in fires if f is not None]
        return min(found) if found else None

    return next_fire_time
