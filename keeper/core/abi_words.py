"""abi.encode's 32-byte words for static types, packed by hand.

Keys hashed on every round and every head (EIP-712 report structs, quorum assignment, leader
ranking) need only these three types, and eth-abi's general encoder costs ~30 us a call.
Out-of-range values raise ValueError, as abi.encode would refuse them; tests compare both
encodings.
"""

from __future__ import annotations


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
