"""Cron schedules for Cron jobs: classic cron semantics, searched with APScheduler.

A shell module: the pure rules in keeper.core.triggers take the schedule as a function
(`next_fire_time(after) -> first fire strictly after`), and this module builds that function
from a 5-field crontab expression, evaluated in UTC as the protocol requires. Every keeper of a
quorum must compute the same fire times, so this is the one place the expression is parsed.

An expression means what it means to classic (Vixie) cron, as cronie reads it, not what
APScheduler's own crontab reading would make of it. Each field is parsed here into the set of
values it names, and APScheduler's CronTrigger only searches the calendar for those sets:

- Day of week: 0 and 7 are Sunday, 1 Monday ... 6 Saturday; names sun ... sat. A range may end
  on Sunday (`fri-sun`, `5-0`), as in cronie. APScheduler numbers weekdays from Monday = 0, so
  the set is handed to it as weekday names.
- Day of month and day of week: when both are restricted (neither field starts with `*`), a day
  matches if either matches; otherwise it must match both. So `0 0 1 * 0` fires on the 1st and
  on every Sunday, while `0 0 1 * */2` fires on a 1st that falls on Sun, Tue, Thu or Sat (cron
  decides by the first character, and `*/2` starts with `*`). The month always must match.
- Grammar: a field is a comma list of `*`, `N` or `N-M`, where `*` and `N-M` may take a `/STEP`
  (a step beyond the range is allowed: `*/90` is minute 0); names (jan ... dec, sun ... sat, any
  case) in the month and weekday fields only. Nothing else: no `L`, `W`, `#`, `?` or `@daily`,
  no cronie `~` (a random pick that keepers would not agree on), and none of APScheduler's own
  extensions (`last`, `5/15`, which cron refuses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.triggers.cron import CronTrigger

from keeper.errors import InvalidCron

# Same bound as TaskManager.MAX_CRON_LENGTH: a longer expression is rejected at createJob.
MAX_CRON_LENGTH = 128
CRON_FIELDS = 5

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# Cron's weekday numbers: index 0 (and 7) is Sunday.
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# APScheduler's weekday numbers: index 0 is Monday.
APSCHEDULER_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SUNDAY, CRON_LAST_SUNDAY = 0, 7
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i


MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
DAY_OF_MONTH = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = _Field("day-of-week", 0, 7, WEEKDAY_NAMES)


def _value(token: str, field: _Field, item: str) -> int:
    if token.isascii() and token.isdigit():
        value = int(token)
    elif token.lower() in field.names:
        value = field.low + field.names.index(token.lower())
    else:
        spelled = f"a number {field.low}-{field.high}"
        if field.names:
            spelled += f", a name {field.names[0]}-{field.names[-1]}"
        raise InvalidCron(f"{field.label} item {item!r}: expected {spelled}, a range or *")
    if not field.low <= value <= field.high:
        raise InvalidCron(f"{field.label} value {value} is out of range {field.low}-{field.high}")
    return value


def _parse_item(item: str, field: _Field) -> range:
    body, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
            raise InvalidCron(f"{field.label} item {item!r}: the step must be a whole number > 0")
        step = int(step_text)
    if body == "*":
        return range(field.low, field.high + 1, step)
    first_text, dash, last_text = body.partition("-")
    first = _value(first_text, field, item)
    if not dash:
        if slash:
            raise InvalidCron(f"{field.label} item {item!r}: a step needs a range or *")
        return range(first, first + 1)
    last = _value(last_text, field, item)
    if field is DAY_OF_WEEK and last == SUNDAY and first > last:
        last = CRON_LAST_SUNDAY  # cronie: a range may end on Sunday, "fri-sun" is 5-7
    if first > last:
        raise InvalidCron(f"{field.label} range {body!r} runs backwards")
    return range(first, last + 1, step)


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    """The set of values a crontab field names, by cron's grammar."""
    return frozenset(v for item in text.split(",") for v in _parse_item(item, field))


def _render(values: frozenset[int], field: _Field) -> str:
    """`values` as runs APScheduler reads literally ("0-4,6"), or "*" for the whole field."""
    if values == frozenset(range(field.low, field.high + 1)):
        return "*"
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and runs[-1][1] == v - 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


def _render_weekdays(days: frozenset[int]) -> str:
    """Cron weekdays (0 = Sunday, 7 folded into 0) as APScheduler weekday names."""
    if len(days) == len(WEEKDAY_NAMES):
        return "*"
    return ",".join(APSCHEDULER_WEEKDAYS[(d - 1) % 7] for d in sorted(days))


def _parse(expr: str) -> tuple[CronTrigger, ...]:
    """The triggers whose earliest next fire is the expression's: one, or two for the OR rule."""
    fields = expr.split()
    if len(fields) != CRON_FIELDS:
        raise InvalidCron(
            f"invalid cron expression {expr!r}: {len(fields)} fields, expected {CRON_FIELDS}"
        )
    minute_text, hour_text, day_text, month_text, weekday_text = fields
    try:
        minutes = _parse_field(minute_text, MINUTE)
        hours = _parse_field(hour_text, HOUR)
        days = _parse_field(day_text, DAY_OF_MONTH)
        months = _parse_field(month_text, MONTH)
        weekdays = _parse_field(weekday_text, DAY_OF_WEEK)
    except InvalidCron as exc:
        raise InvalidCron(f"invalid cron expression {expr!r}: {exc}") from exc
    weekdays = frozenset(SUNDAY if d == CRON_LAST_SUNDAY else d for d in weekdays)

    def trigger(day: str, day_of_week: str) -> CronTrigger:
        return CronTrigger(
            minute=_render(minutes, MINUTE),
            hour=_render(hours, HOUR),
            day=day,
            month=_render(months, MONTH),
            day_of_week=day_of_week,
            timezone=UTC,
        )

    day = _render(days, DAY_OF_MONTH)
    day_of_week = _render_weekdays(weekdays)
    if day_text.startswith("*") or weekday_text.startswith("*"):
        return (trigger(day, day_of_week),)
    by_weekday = trigger("*", day_of_week)
    by_day = trigger(day, "*")
    if by_day.get_next_fire_time(None, EPOCH) is None:
        # "0 0 31 2 1": no February 31st ever, Mondays only. Dropped once here, because every
        # search of a trigger that never fires runs on to the year 9999.
        return (by_weekday,)
    return by_day, by_weekday


def cron_next_fire(expr: str) -> Callable[[int], int | None]:
    """`next_fire_time(after_ts)` for `expr`: the first fire time strictly after `after_ts`.

    Cron fire times fall on whole minutes, so asking APScheduler for the first fire at or after
    `after_ts + 1` is the first one strictly after `after_ts`; under cron's day-of-month OR
    day-of-week rule it is the earlier of the two triggers' fires. Raises InvalidCron for an
    expression cron would refuse.
    """
    triggers = _parse(expr)

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


def validate_cron(expr: str) -> None:
    """Raises InvalidCron, with a one-line reason, unless `expr` is a Cron trigger keepers can run.

    The contract accepts exactly five fields of printable ASCII separated by single spaces, at
    most 128 bytes; cron's grammar must accept it (see the module docstring); and it must fire
    at least once after 1970 (an expression such as "0 0 30 2 *" parses but never fires).
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
