"""The memoised checksum is eth-utils' EIP-55, and bad input still fails every time."""

from __future__ import annotations

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from keeper.core.addresses import checksum_address


@given(st.binary(min_size=20, max_size=20))
def test_checksum_is_eip55_for_bytes_and_for_hex_in_any_case(raw: bytes) -> None:
    expected = to_checksum_address(raw)
    assert checksum_address(raw) == expected
    assert checksum_address("0x" + raw.hex()) == expected
    assert checksum_address("0x" + raw.hex().upper()) == expected
    assert checksum_address(expected) == expected


@pytest.mark.parametrize("bad", ["0x1234", "not an address", b"\x01" * 19])
def test_bad_input_raises_each_time_it_is_asked(bad: str | bytes) -> None:
    for _ in range(2):  # a failure is never cached as an answer
        with pytest.raises(ValueError):
            checksum_address(bad)
