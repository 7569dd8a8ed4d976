"""Token buckets per key: how many requests one peer may make, and how long it must wait. The
peer API keeps two tables: one per client address (every request, before any work), one per
signer (signed requests, once the signature is checked).

Pure: the caller passes the time (seconds on any monotonic clock), so tests drive it.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

# Keys remembered at most; a signer is any key anyone generates, so the table must be bounded.
DEFAULT_MAX_KEYS = 4096
IPV6_CLIENT_PREFIX = 64
"""An IPv6 client is charged by its /64: one subscriber is usually given a whole /64, and
keying by the full address would let it rotate 2**64 addresses past the cap."""


@dataclass(frozen=True)
class RateLimit:
    """`per_second` tokens refill each second, up to `burst`; a request costs one token."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")


class TokenBuckets:
    """One bucket per key, full when first seen.

    At most `max_keys` buckets are kept, least recently used dropped first. Dropping a bucket
    gives its key a full one again, so the table bounds memory, not an attacker who rotates
    more keys than it holds; that is what the per-key limit cannot stop and is not meant to.
    """

    def __init__(self, limit: RateLimit, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.limit = limit
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.limit.burst, now))
        return min(self.limit.burst, tokens + max(0.0, now - at) * self.limit.per_second)

    def acquire(self, key: str, now: float) -> float:
        """Takes one token for `key`: 0.0 if it had one, else the seconds until it will."""
        tokens = self._tokens(key, now)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
            return 0.0
        return (1 - tokens) / self.limit.per_second

    def __len__(self) -> int:
        return len(self._buckets)


def compute_client_key(remote: str | None) -> str:
    """The key a request is charged to by the address it came from: the IPv4 address, or the
    /64 network of an IPv6 one (an IPv4-mapped IPv6 address counts as its IPv4 address).
    Something that is not an IP address (a Unix socket, no address) is charged as itself."""
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return str(address)
