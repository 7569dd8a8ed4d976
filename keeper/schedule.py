"""Cron schedules for Cron jobs, backed by APScheduler's cron trigger.

A shell module: the pure rules in keeper.core.triggers take the schedule as a function
(`next_fire_time(after) -> first fire strictly after`), and this module builds that function
from a 5-field crontab expression, evaluated in UTC as the protocol requires. Every keeper of a
quorum must compute the same fire times, so this is the one place the expression is parsed.

APScheduler 3.x numbers weekdays from Monday (0 = mon ... 6 = sun), unlike classic cron where 0
is Sunday; weekday names (mon-fri) mean the same in both and are the unambiguous spelling.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.triggers.cron import CronTrigger

from keeper.errors import InvalidCron

# Same bound as TaskManager.MAX_CRON_LENGTH: a longer expression is rejected at createJob.
MAX_CRON_LENGTH = 128
CRON_FIELDS = 5


def _parse(expr: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expr, timezone=UTC)
    except (ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())
        raise InvalidCron(f"invalid cron expression {expr!r}: {reason}") from exc


def cron_next_fire(expr: str) -> Callable[[int], int | None]:
    """`next_fire_time(after_ts)` for `expr`: the first fire time strictly after `after_ts`.

    Cron fire times fall on whole minutes, so asking APScheduler for the first fire at or after
    `after_ts + 1` is the first one strictly after `after_ts`. Raises InvalidCron for an
    expression APScheduler cannot parse.
    """
    trigger = _parse(expr)

    def next_fire_time(after_ts: int) -> int | None:
        # previous_fire_time=None: the search starts at `now` (inclusive, rounded up to a second).
        try:
            now = datetime.fromtimestamp(after_ts + 1, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None  # beyond the calendar datetime can represent: no fire there
        fire = trigger.get_next_fire_time(None, now)
        if fire is None:
            return None
        return int(fire.timestamp())

    return next_fire_time


def validate_cron(expr: str) -> None:
    """Raises InvalidCron, with a one-line reason, unless `expr` is a Cron trigger keepers can run.

    The contract accepts exactly five fields of printable ASCII separated by single spaces, at
    most 128 bytes; APScheduler must parse it; and it must fire at least once after 1970
    (an expression such as "0 0 30 2 *" parses but never fires).
    """
    if not expr:
        raise InvalidCron("cron expression is empty")
    if len(expr.encode()) > MAX_CRON_LENGTH:
        raise InvalidCron(f"cron expression is longer than {MAX_CRON_LENGTH} bytes")
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in expr if ch != " "):
        raise InvalidCron(f"cron expression {expr!r} has a character other than printable ASCII")
    fields = expr.split(" ")
    if len(fields) != CRON_FIELDS or any(f == "" for f in fields):
        raise InvalidCron(
            f"cron expression {expr!r} must be {CRON_FIELDS} fields separated by single spaces"
        )
    if cron_next_fire(expr)(0) is None:
        raise InvalidCron(f"cron expression {expr!r} never fires")
