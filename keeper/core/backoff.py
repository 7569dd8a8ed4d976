"""How long to wait before asking an RPC endpoint again: exponential backoff, and the provider's
own `Retry-After` when it sent one (HTTP 429 or 503). Pure: the caller passes the time."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

BACKOFF_FIRST = 0.25  # seconds before the first retry
BACKOFF_MAX = 30.0  # no single wait is longer
RETRY_AFTER_MAX = 120.0  # a provider asking for more is capped (and the pass fails meanwhile)


def compute_backoff(attempt: int, first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> float:
    """Seconds before retry number `attempt` (0 for the first retry): first, 2x, 4x, ... cap."""
    return float(min(cap, first * 2.0 ** max(0, attempt)))


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date, RFC 9110
    10.2.3), capped at RETRY_AFTER_MAX; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now_epoch
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(RETRY_AFTER_MAX, max(0.0, seconds))


def compute_retry_delay(attempt: int, retry_after: float | None) -> float:
    """The provider's Retry-After when given (it knows its own window), else the backoff."""
    return retry_after if retry_after is not None else compute_backoff(attempt)
