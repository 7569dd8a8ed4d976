"""The Cron trigger's schedule rule: classic cron's grammar and meaning, as pure values.

Every keeper of a quorum must compute the same fire times, so this is the one place an
expression is parsed: `parse_cron` turns a 5-field crontab expression (UTC, as the protocol
requires) into a `CronSchedule`, the set of values each field names plus cron's day rule. The
calendar search over that schedule (`next_fire_time(after) -> first fire strictly after`, which
keeper.core.triggers takes as a function) lives behind a seam in keeper.node.cron_calendar,
where APScheduler may be imported.

An expression means what it means to classic (Vixie) cron, as cronie reads it, not what
APScheduler's own crontab reading would make of it:

- Day of week: 0 and 7 are Sunday, 1 Monday ... 6 Saturday; names sun ... sat. A range may end
  on Sunday (`fri-sun`, `5-0`), as in cronie.
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

from dataclasses import dataclass

from keeper.errors import InvalidCron

# Same bound as TaskManager.MAX_CRON_LENGTH: a longer expression is rejected at createJob.
MAX_CRON_LENGTH = 128
CRON_FIELDS = 5

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# Cron's weekday numbers: index 0 (and 7) is Sunday.
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SUNDAY, CRON_LAST_SUNDAY = 0, 7
# The most days each month ever has (February 29 in leap years).
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


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


@dataclass(frozen=True)
class CronSchedule:
    """What an expression names: the values of each field (weekdays 0-6, Sunday 0), and whether
    a day matches by day of month OR day of week (both restricted) rather than by both."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_or_weekday: bool


def parse_cron(expr: str) -> CronSchedule:
    """The schedule `expr` names by cron's grammar; InvalidCron (one line) if cron refuses it."""
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
    return CronSchedule(
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(SUNDAY if d == CRON_LAST_SUNDAY else d for d in weekdays),
        # cron decides by the first character: "*/2" counts as unrestricted.
        day_or_weekday=not (day_text.startswith("*") or weekday_text.startswith("*")),
    )


def is_day_of_month_possible(schedule: CronSchedule) -> bool:
    """Whether some month of the schedule has one of its days of month ("31 2" never does).

    Over the 400-year Gregorian cycle every (month, day) that exists falls on every weekday, so
    this alone decides whether a day-of-month match ever happens.
    """
    return any(day <= MONTH_DAYS[month - 1] for month in schedule.months for day in schedule.days)


def is_ever_firing(schedule: CronSchedule) -> bool:
    """Whether the schedule fires at all. Under the OR rule the weekdays alone always fire;
    otherwise a day must match both fields, which (see above) needs only a possible date."""
    return schedule.day_or_weekday or is_day_of_month_possible(schedule)


def validate_cron(expr: str) -> None:
    """Raises InvalidCron, with a one-line reason, unless `expr` is a Cron trigger keepers can run.

    The contract accepts exactly five fields of printable ASCII separated by single spaces, at
    most 128 bytes; cron's grammar must accept it (see the module docstring); and it must fire
    at least once (an expression such as "0 0 30 2 *" parses but never fires).
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
    if not is_ever_firing(parse_cron(expr)):
        raise InvalidCron(f"cron expression {expr!r} never fires")
