"""Amounts as people write them: `1ether`, `0.5gwei`, `1000wei`, or a bare number of wei."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from keeper.errors import InvalidAmount

UNITS = {"wei": 0, "kwei": 3, "mwei": 6, "gwei": 9, "szabo": 12, "finney": 15, "ether": 18}
_AMOUNT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_amount(text: str) -> int:
    """Wei in `text`; raises InvalidAmount for a malformed, negative, fractional-wei or unknown
    unit amount."""
    match = _AMOUNT.match(text)
    if match is None:
        raise InvalidAmount(f"invalid amount {text!r}: expected e.g. 1ether, 0.5gwei or 1000")
    number, unit = match.group(1), (match.group(2) or "wei").lower()
    if unit not in UNITS:
        raise InvalidAmount(f"invalid amount {text!r}: unknown unit {unit!r}")
    try:
        value = Decimal(number) * (Decimal(10) ** UNITS[unit])
    except InvalidOperation as exc:
        raise InvalidAmount(f"invalid amount {text!r}") from exc
    if value != value.to_integral_value():
        raise InvalidAmount(f"invalid amount {text!r}: below one wei")
    return int(value)


def format_ether(wei: int) -> str:
    """`1.5 ether` style, exact (no float rounding)."""
    value = Decimal(wei) / Decimal(10**18)
    text = format(value.normalize(), "f")
    return f"{text} ether"
