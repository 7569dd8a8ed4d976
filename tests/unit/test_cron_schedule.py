"""Cron schedules mean what classic cron means: fire times checked against the calendar.

Every expected time below was read off a printed calendar (November 2026 to April 2027, and
February 2028), not computed by the code under test: 2026-11-30 is a Monday, 2026-12-06 a
Sunday, 2026-11-13 a Friday, 2026-12-13 a Sunday, 2027-01-01 a Friday, 2027-04-01 a Thursday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given
from hypothesis import strategies as st

from keeper.core.cron import validate_cron
from keeper.errors import InvalidCron
from keeper.node.cron_calendar import cron_next_fire


def ts(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def iso(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# (expression, after, the first fire strictly after it), all UTC
STANDARD_CRON_FIRES = [
    # 0 and 7 are Sunday, as is the name
    ("0 0 * * 0", "2026-12-01T12:00:00Z", "2026-12-06T00:00:00Z"),
    ("0 0 * * 7", "2026-12-01T12:00:00Z", "2026-12-06T00:00:00Z"),
    ("0 0 * * sun", "2026-12-01T12:00:00Z", "2026-12-06T00:00:00Z"),
    ("0 0 * * 0", "2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"),
    ("0 0 * * 1", "2026-12-06T00:00:00Z", "2026-12-07T00:00:00Z"),
    ("0 0 * * 6", "2026-11-30T00:00:00Z", "2026-12-05T00:00:00Z"),
    # 1-5 is Monday to Friday: across a weekend
    ("30 12 * * 1-5", "2026-12-04T12:29:59Z", "2026-12-04T12:30:00Z"),
    ("30 12 * * 1-5", "2026-12-04T12:30:00Z", "2026-12-07T12:30:00Z"),
    ("30 12 * * 1-5", "2026-12-05T08:00:00Z", "2026-12-07T12:30:00Z"),
    # 5-7 is Friday, Saturday, Sunday
    ("0 0 * * 5-7", "2026-11-30T00:00:00Z", "2026-12-04T00:00:00Z"),
    ("0 0 * * 5-7", "2026-12-04T00:00:00Z", "2026-12-05T00:00:00Z"),
    ("0 0 * * 5-7", "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z"),
    ("0 0 * * 5-7", "2026-12-06T00:00:00Z", "2026-12-11T00:00:00Z"),
    # */2 steps over 0-7: Sunday, Tuesday, Thursday, Saturday
    ("0 0 * * */2", "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"),
    ("0 0 * * */2", "2026-12-01T00:00:00Z", "2026-12-03T00:00:00Z"),
    ("0 0 * * */2", "2026-12-03T00:00:00Z", "2026-12-05T00:00:00Z"),
    ("0 0 * * */2", "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z"),
    # */7 is 0 and 7: Sunday only
    ("0 0 * * */7", "2026-11-30T00:00:00Z", "2026-12-06T00:00:00Z"),
    # 1-5/2 is Monday, Wednesday, Friday
    ("0 0 * * 1-5/2", "2026-11-29T00:00:00Z", "2026-11-30T00:00:00Z"),
    ("0 0 * * 1-5/2", "2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z"),
    ("0 0 * * 1-5/2", "2026-12-02T00:00:00Z", "2026-12-04T00:00:00Z"),
    ("0 0 * * 1-5/2", "2026-12-04T00:00:00Z", "2026-12-07T00:00:00Z"),
    # a list: Sunday and Wednesday
    ("0 0 * * 0,3", "2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z"),
    ("0 0 * * 0,3", "2026-12-02T00:00:00Z", "2026-12-06T00:00:00Z"),
    # a range from Wednesday to Sunday as 3-7 and through 0
    ("0 0 * * 3-7", "2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z"),
    ("0 0 * * 0-2", "2026-12-02T00:00:00Z", "2026-12-06T00:00:00Z"),
    # day names, any case; a range may end on Sunday
    ("0 9 * * mon-fri", "2026-12-05T09:00:00Z", "2026-12-07T09:00:00Z"),
    ("0 9 * * MON-FRI", "2026-12-04T09:00:00Z", "2026-12-07T09:00:00Z"),
    ("0 0 * * sat-sun", "2026-11-30T00:00:00Z", "2026-12-05T00:00:00Z"),
    ("0 0 * * sat-sun", "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z"),
    ("0 0 * * sat-sun", "2026-12-06T00:00:00Z", "2026-12-12T00:00:00Z"),
    ("0 0 * * fri-sun/2", "2026-12-04T00:00:00Z", "2026-12-06T00:00:00Z"),
    ("0 0 * * tue,thu", "2026-12-03T00:00:00Z", "2026-12-08T00:00:00Z"),
    # both days restricted: the 1st of a month OR any Sunday
    ("0 0 1 * 0", "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"),
    ("0 0 1 * 0", "2026-12-01T00:00:00Z", "2026-12-06T00:00:00Z"),
    ("0 0 1 * 0", "2026-12-27T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("0 0 1 * 0", "2027-01-01T00:00:00Z", "2027-01-03T00:00:00Z"),
    # Friday OR the 13th
    ("0 0 13 * 5", "2026-11-12T00:00:00Z", "2026-11-13T00:00:00Z"),
    ("0 0 13 * 5", "2026-11-13T00:00:00Z", "2026-11-20T00:00:00Z"),
    ("0 0 13 * 5", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z"),
    ("0 0 13 * 5", "2026-12-13T00:00:00Z", "2026-12-18T00:00:00Z"),
    # no 31st of February, yet Mondays in February
    ("0 0 31 2 1", "2026-11-30T00:00:00Z", "2027-02-01T00:00:00Z"),
    # a day field starting with "*" is unrestricted to cron, so the plain AND holds:
    # the 1st of a month that is a Sunday, Tuesday, Thursday or Saturday
    ("0 0 1 * */2", "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"),
    ("0 0 1 * */2", "2026-12-01T00:00:00Z", "2027-04-01T00:00:00Z"),
    ("0 0 1 * *", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    # minutes and hours
    ("*/15 * * * *", "2026-11-30T10:07:30Z", "2026-11-30T10:15:00Z"),
    ("*/15 * * * *", "2026-12-31T23:45:00Z", "2027-01-01T00:00:00Z"),
    ("*/60 * * * *", "2026-11-30T10:07:00Z", "2026-11-30T11:00:00Z"),
    ("0 */6 * * *", "2026-11-30T06:00:00Z", "2026-11-30T12:00:00Z"),
    ("15,45 8-9 * * *", "2026-11-30T09:45:00Z", "2026-12-01T08:15:00Z"),
    # month names, any case, in ranges with a step too
    ("0 6 1 jan,jul *", "2026-11-30T00:00:00Z", "2027-01-01T06:00:00Z"),
    ("0 6 1 jan,jul *", "2027-01-01T06:00:00Z", "2027-07-01T06:00:00Z"),
    ("0 0 1 JAN-mar/2 *", "2027-01-01T00:00:00Z", "2027-03-01T00:00:00Z"),
    ("0 0 1 2-mar *", "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"),
    # the 29th of February waits for a leap year
    ("0 12 29 2 *", "2026-11-30T00:00:00Z", "2028-02-29T12:00:00Z"),
]


@pytest.mark.parametrize(("expr", "after", "expected"), STANDARD_CRON_FIRES)
def test_fire_times_match_standard_cron(expr: str, after: str, expected: str) -> None:
    # given a crontab expression, when asked for the first fire strictly after `after`
    fire = cron_next_fire(expr)(ts(after))
    # then it is the one classic cron would run
    assert iso(fire) == expected


def test_every_table_row_is_a_valid_cron_expression() -> None:
    for expr, _, _ in STANDARD_CRON_FIRES:
        validate_cron(expr)


def test_apschedulers_own_reading_of_weekday_0_is_monday_and_is_not_used() -> None:
    # given "0 0 * * 0" on the Tuesday 2026-12-01: cron means Sunday, APScheduler Monday
    after = ts("2026-12-01T12:00:00Z")
    own = CronTrigger.from_crontab("0 0 * * 0", timezone=UTC)
    apscheduler_fire = own.get_next_fire_time(None, datetime.fromtimestamp(after + 1, UTC))
    assert apscheduler_fire is not None
    assert iso(int(apscheduler_fire.timestamp())) == "2026-12-07T00:00:00Z"
    # then keepers fire on the Sunday
    assert iso(cron_next_fire("0 0 * * 0")(after)) == "2026-12-06T00:00:00Z"


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("0 0 * * 8", "day-of-week value 8 is out of range 0-7"),
        ("0 0 * * 1-8", "day-of-week value 8 is out of range 0-7"),
        ("0 0 * * -1", "day-of-week item '-1'"),
        ("0 0 * * 5-3", "day-of-week range '5-3' runs backwards"),
        ("0 0 * * */0", "the step must be a whole number > 0"),
        ("0 0 * * 1/2", "a step needs a range or *"),
        ("0 0 * * monday", "day-of-week item 'monday'"),
        ("0 0 * * 1,", "day-of-week item ''"),
        ("0 0 * * ~", "day-of-week item '~'"),
        ("0 0 * * 5L", "day-of-week item '5L'"),
        ("0 0 * * 2#1", "day-of-week item '2#1'"),
        ("0 0 last * *", "day-of-month item 'last'"),
        ("0 0 0 * *", "day-of-month value 0 is out of range 1-31"),
        ("0 0 * jan1 *", "month item 'jan1'"),
        ("0 0 * 13 *", "month value 13 is out of range 1-12"),
        ("0 24 * * *", "hour value 24 is out of range 0-23"),
        ("5/15 * * * *", "a step needs a range or *"),
        ("mon * * * *", "minute item 'mon'"),
    ],
)
def test_cron_refuses_what_cron_refuses_with_a_reason(expr: str, reason: str) -> None:
    with pytest.raises(InvalidCron) as info:
        validate_cron(expr)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 * * 7",  # Sunday, refused by APScheduler's reading
        "0 0 * * 0-7",
        "0 0 * * */7",
        "*/60 */24 */31 */12 */8",  # steps beyond the range: the first value only
        "0 0 30 2 1",  # no 30th of February, but Mondays in February
        "0 0 * * Sun,sat",
        "00 09 01 01 00",
    ],
)
def test_cron_accepts_what_cron_accepts(expr: str) -> None:
    validate_cron(expr)


# ----------------------------------------------------------------- against a brute-force oracle

# (first, last, step) of one day-of-week item, or a single number when first == last, step 1
weekday_items = st.one_of(
    st.integers(0, 7).map(lambda n: (n, n, 1)),
    st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(1, 8)).map(
        lambda t: (min(t[0], t[1]), max(t[0], t[1]), t[2])
    ),
)


def spell_item(first: int, last: int, step: int) -> str:
    if first == last and step == 1:
        return str(first)
    return f"{first}-{last}" + (f"/{step}" if step > 1 else "")


def cron_weekdays(items: list[tuple[int, int, int]]) -> set[int]:
    """The weekdays cron names, 0 = Sunday (7 counted as 0): Python's isoweekday() % 7."""
    return {n % 7 for first, last, step in items for n in range(first, last + 1, step)}


def brute_force_next(
    minute: int, hour: int, day: int | None, weekdays: set[int], after: int
) -> int:
    """The first fire after `after`, by trying each calendar day in turn with cron's day rule:
    `day` None means a day-of-month field of "*" (weekday alone decides), else either matches."""
    current: date = datetime.fromtimestamp(after, UTC).date()
    while True:
        fire = int(datetime.combine(current, time(hour, minute), tzinfo=UTC).timestamp())
        on_weekday = current.isoweekday() % 7 in weekdays
        matches = on_weekday if day is None else on_weekday or current.day == day
        if fire > after and matches:
            return fire
        current += timedelta(days=1)


@given(
    items=st.lists(weekday_items, min_size=1, max_size=4),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    day=st.one_of(st.none(), st.integers(1, 31)),
    after=st.integers(0, 4_000_000_000),
)
def test_numeric_weekdays_fire_on_the_days_cron_names(
    items: list[tuple[int, int, int]], minute: int, hour: int, day: int | None, after: int
) -> None:
    # given an expression whose day-of-week field is numbers, ranges and steps (0 or 7 = Sunday)
    weekday_field = ",".join(spell_item(*item) for item in items)
    expr = f"{minute} {hour} {'*' if day is None else day} * {weekday_field}"
    # when the next fire is computed
    fire = cron_next_fire(expr)(after)
    # then it is the first day cron would pick: on a named weekday, or (OR rule) on the day
    assert fire == brute_force_next(minute, hour, day, cron_weekdays(items), after)
