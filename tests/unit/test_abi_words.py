"""Words read by hand are what eth-abi reads: the same values for every word eth-abi accepts,
and a hand-over (None) for every word it refuses, so the follower's events decode alike."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from keeper.core.abi_words import decode_static_words, is_static_word_type

KINDS = (
    ["bool", "address"]
    + [f"uint{n}" for n in range(8, 257, 8)]
    + [f"int{n}" for n in range(8, 257, 8)]
    + [f"bytes{n}" for n in range(1, 33)]
)

# Words near the edges of every type: zero, small, all ones, sign and padding bits.
edge_words = st.sampled_from(
    [
        b"\x00" * 32,
        b"\x00" * 31 + b"\x01",
        b"\x00" * 31 + b"\x02",
        b"\xff" * 32,
        b"\x80" + b"\x00" * 31,
        b"\x00" * 12 + b"\xff" * 20,
        b"\x00" * 12 + b"\xab" * 20,
        b"\x00" * 11 + b"\x01" + b"\x00" * 20,
        b"\x7f" + b"\xff" * 31,
        b"\xab" + b"\x00" * 31,
    ]
)
words = st.one_of(edge_words, st.binary(min_size=32, max_size=32))


def eth_abi_reads(kind: str, word: bytes) -> tuple[bool, Any]:
    try:
        return True, abi_decode([kind], word)[0]
    except DecodingError:
        return False, None


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(KINDS), word=words)
@example(kind="address", word=b"\x00" * 12 + b"\xab" * 20)
def test_a_word_reads_as_eth_abi_reads_it_or_is_handed_over(kind: str, word: bytes) -> None:
    accepted, expected = eth_abi_reads(kind, word)
    ours = decode_static_words([kind], word)
    if accepted:
        assert ours == [expected]
    else:
        assert ours is None


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=6))
def test_several_words_in_a_row_and_only_whole_words(values: list[int]) -> None:
    kinds = ["uint64"] * len(values)
    data = abi_encode(kinds, values)
    assert decode_static_words(kinds, data) == values
    assert decode_static_words(kinds, data + b"\x00") is None
    assert decode_static_words(kinds, data[:-1]) is None


@pytest.mark.parametrize(
    "kind",
    ["string", "bytes", "uint256[]", "(uint256,bool)", "uint7", "int264", "bytes33", "fixed128x18"],
)
def test_other_types_are_left_to_eth_abi(kind: str) -> None:
    assert not is_static_word_type(kind)
    assert decode_static_words([kind], b"\x00" * 32) is None


def test_every_listed_type_is_read_by_hand() -> None:
    assert all(is_static_word_type(kind) for kind in KINDS)
