"""How the CLI writes amounts and times for a person: ether, not wei; dates, not timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from keeper.core.units import format_ether

MINUTE, HOUR, DAY = 60, 3600, 86400


def ether(wei: int) -> str:
    """`1.5` (the unit left to a column header)."""
    return format_ether(wei).removesuffix(" ether")


def format_date(ts: int) -> str:
    """`2026-11-30 19:40:00 UTC`."""
    return f"{datetime.fromtimestamp(ts, tz=UTC):%Y-%m-%d %H:%M:%S} UTC"


def format_duration(seconds: int) -> str:
    """`45s`, `12m`, `3h 5m`, `2d 4h`: two units at most, rounded down."""
    seconds = max(0, int(seconds))
    if seconds < MINUTE:
        return f"{seconds}s"
    if seconds < HOUR:
        return f"{seconds // MINUTE}m"
    if seconds < DAY:
        hours, minutes = divmod(seconds // MINUTE, 60)
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(seconds // HOUR, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def format_when(ts: int, now: int) -> str:
    """`2026-11-30 19:40:00 UTC (in 12m)` or `(... 3h ago)`, relative to `now` (chain time)."""
    if ts >= now:
        return f"{format_date(ts)} (in {format_duration(ts - now)})"
    return f"{format_date(ts)} ({format_duration(now - ts)} ago)"


def format_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns two spaces apart; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
