"""The pure rules a follower and an RPC pool use against hosted providers: the header's logs bloom
(no false negatives) and how long to wait after a 429."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.utils import format_datetime

from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from keeper.core.backoff import (
    BACKOFF_MAX,
    RETRY_AFTER_MAX,
    compute_backoff,
    compute_retry_delay,
    parse_retry_after,
)
from keeper.core.bloom import compute_bloom_bits, is_any_log_possible, is_in_bloom


def bloom_of(*items: bytes) -> bytes:
    value = 0
    for item in items:
        for bit in compute_bloom_bits(item):
            value |= 1 << bit
    return value.to_bytes(256, "big")


def test_a_known_header_bloom_holds_its_logs_address_and_topic() -> None:
    # given the bloom of one log: address A, topic0 = keccak("Transfer(address,address,uint256)")
    address = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3".lower())
    topic = keccak(text="Transfer(address,address,uint256)")
    bloom = bloom_of(address, topic)
    # then both are in it, and an item never added is (almost surely) not
    assert is_in_bloom(bloom, address) and is_in_bloom(bloom, topic)
    assert not is_in_bloom(bloom, b"\x11" * 20)
    assert not is_any_log_possible(bloom, [b"\x11" * 20])
    assert is_any_log_possible(bloom, [address], [topic])
    assert not is_any_log_possible(bloom, [address], [keccak(text="Other()")])


@given(st.lists(st.binary(min_size=20, max_size=32), min_size=1, max_size=30))
def test_a_bloom_has_no_false_negatives(items: list[bytes]) -> None:
    bloom = bloom_of(*items)
    assert all(is_in_bloom(bloom, item) for item in items)


def test_an_empty_or_missing_bloom_says_maybe_only_when_unusable() -> None:
    assert not is_in_bloom(bytes(256), b"\x01" * 20)
    assert is_in_bloom(b"", b"\x01" * 20)  # a header without a bloom: cannot rule out


def test_backoff_doubles_up_to_its_cap() -> None:
    waits = [compute_backoff(i) for i in range(12)]
    assert waits[:3] == [0.25, 0.5, 1.0]
    assert all(b >= a for a, b in itertools.pairwise(waits))
    assert max(waits) == BACKOFF_MAX


def test_retry_after_in_seconds_or_as_a_date_is_honoured() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("3", now) == 3.0
    when = format_datetime(datetime.fromtimestamp(now + 7, UTC), usegmt=True)
    assert parse_retry_after(when, now) == 7.0
    assert parse_retry_after("86400", now) == RETRY_AFTER_MAX
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    # and the provider's ask wins over the backoff; without one the backoff applies
    assert compute_retry_delay(5, 2.0) == 2.0
    assert compute_retry_delay(1, None) == 0.5


def test_provider_log_errors_are_told_apart() -> None:
    from keeper.chain.logs import is_block_unknown, is_too_much

    # ranges to split: what geth, Alchemy, Infura and others say
    for message in (
        "query returned more than 10000 results",
        "exceed maximum block range: 1000",
        "eth_getLogs block range is too large, max is 2000",
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
        "Query timeout exceeded. Consider reducing your block range.",
    ):
        assert is_too_much(message), message
    # not a reason to split: a rate limit, a missing method
    assert not is_too_much("daily request count exceeded, request rate limited")
    assert not is_too_much("the method eth_getLogs does not exist/is not available")
    # a backend without the block, and not a missing method
    assert is_block_unknown("unknown block") and is_block_unknown("header not found")
    assert not is_block_unknown("Method not found")
