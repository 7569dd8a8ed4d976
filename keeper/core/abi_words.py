"""abi.encode's 32-byte words for static types, packed by hand, and read back.

Keys hashed on every round and every head (EIP-712 report structs, quorum assignment, leader
ranking) need only these three types, and eth-abi's general encoder costs ~30 us a call.
Out-of-range values raise ValueError, as abi.encode would refuse them; tests compare both
encodings.

The follower decodes every event of every block, most of them words of elementary static
types, where eth-abi's general decoder costs ~100 us an event: `decode_static_words` reads
those words itself and gives up (None) on anything else, or on a word eth-abi would refuse
(non-zero padding, a bool that is neither 0 nor 1), which the caller then hands to eth-abi
for its answer or its error. tests/unit/test_abi_words.py compares both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_SIZED = re.compile(r"^(uint|int|bytes)([0-9]+)$")


def uint_word(value: int, bits: int) -> bytes:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{value} does not fit uint{bits}")
    return value.to_bytes(32, "big")


def bytes32_word(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError(f"bytes32 value has {len(value)} bytes")
    return bytes(value)


def address_word(address: str) -> bytes:
    raw = bytes.fromhex(address[2:]) if address[:2] in ("0x", "0X") else b""
    if len(raw) != 20:
        raise ValueError(f"{address!r} is not an address")
    return raw.rjust(32, b"\x00")


def is_static_word_type(kind: str) -> bool:
    """Whether `decode_static_words` reads values of ABI type `kind` (one word each)."""
    return _word_kind(kind) is not None


@lru_cache(maxsize=256)
def _word_kind(kind: str) -> tuple[str, int] | None:
    """(base, size in bits or bytes) of an elementary static type; None for any other."""
    if kind in ("bool", "address"):
        return kind, 0
    match = _SIZED.match(kind)
    if match is None:
        return None
    base, size = match.group(1), int(match.group(2))
    if base == "bytes":
        return (base, size) if 1 <= size <= 32 else None
    return (base, size) if size % 8 == 0 and 8 <= size <= 256 else None


def decode_static_words(kinds: Sequence[str], data: bytes) -> list[Any] | None:
    """The values of `kinds` (each `is_static_word_type`) from `data`, one 32-byte word
    each, as eth-abi decodes them (addresses in lower case); None when a kind is not one of
    those, `data` is not exactly those words, or a word is not one eth-abi accepts."""
    if len(data) != 32 * len(kinds):
        return None
    values: list[Any] = []
    for i, kind in enumerate(kinds):
        parsed = _word_kind(kind)
        if parsed is None:
            return None
        value = _decode_word(parsed[0], parsed[1], data[32 * i : 32 * i + 32])
        if value is None:
            return None
        values.append(value)
    return values


def _decode_word(base: str, size: int, word: bytes) -> Any | None:
    number = int.from_bytes(word, "big")
    if base == "bool":
        return None if number > 1 else number == 1
    if base == "address":
        return None if number >> 160 else "0x" + word[12:].hex()
    if base == "uint":
        return None if number >> size else number
    if base == "int":
        value = number - (1 << 256) if number >> 255 else number
        return value if -(1 << (size - 1)) <= value < 1 << (size - 1) else None
    # bytesN: left-aligned, the rest zero
    return None if any(word[size:]) else word[:size]
