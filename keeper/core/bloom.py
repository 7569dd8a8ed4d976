"""The logs bloom of a block header (yellow paper, section 4.3.1): whether a block may hold a log
of an address or topic, so a follower can tell an empty eth_getLogs answer that is true from one
a provider's lagging backend gave for a block it does not have yet.

A bloom has false positives (it may say "maybe" for a block without such a log) and no false
negatives (it never says "no" for a block with one).
"""

from __future__ import annotations

from collections.abc import Iterable

from eth_utils.crypto import keccak

BLOOM_BYTES = 256


def compute_bloom_bits(item: bytes) -> tuple[int, int, int]:
    """The three bit positions (0..2047, from the low end) an address or topic sets."""
    digest = keccak(item)
    return (
        ((digest[0] << 8) | digest[1]) & 2047,
        ((digest[2] << 8) | digest[3]) & 2047,
        ((digest[4] << 8) | digest[5]) & 2047,
    )


def is_in_bloom(bloom: bytes, item: bytes) -> bool:
    """Whether `bloom` (256 bytes, as in the header) may contain `item`."""
    if len(bloom) != BLOOM_BYTES:
        return True  # no usable bloom: assume it may
    value = int.from_bytes(bloom, "big")
    return all(value >> bit & 1 for bit in compute_bloom_bits(item))


def is_any_log_possible(
    bloom: bytes, addresses: Iterable[bytes], topic0s: Iterable[bytes] | None = None
) -> bool:
    """Whether a block with `bloom` may hold a log of one of `addresses` (whose first topic is
    one of `topic0s`, when given)."""
    if not any(is_in_bloom(bloom, a) for a in addresses):
        return False
    if topic0s is None:
        return True
    return any(is_in_bloom(bloom, t) for t in topic0s)
