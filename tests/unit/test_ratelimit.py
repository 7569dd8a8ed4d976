"""Token buckets: a burst, then the refill rate, per key, with the time passed in."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.core.ratelimit import RateLimit, TokenBuckets


def test_a_burst_then_one_token_per_refill_interval() -> None:
    # given a bucket of 3 refilling 2 tokens a second
    buckets = TokenBuckets(RateLimit(per_second=2, burst=3))
    # when one key asks 4 times at once, then the 4th waits half a second
    assert [buckets.acquire("a", 10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.acquire("a", 10.0) == pytest.approx(0.5)
    # then after a quarter second it still waits the rest, after half it is served
    assert buckets.acquire("a", 10.25) == pytest.approx(0.25)
    assert buckets.acquire("a", 10.5) == 0.0


def test_keys_do_not_share_a_bucket() -> None:
    buckets = TokenBuckets(RateLimit(per_second=1, burst=1))
    assert buckets.acquire("a", 0.0) == 0.0
    assert buckets.acquire("a", 0.0) > 0
    assert buckets.acquire("b", 0.0) == 0.0


def test_the_table_keeps_at_most_max_keys() -> None:
    buckets = TokenBuckets(RateLimit(per_second=1, burst=1), max_keys=2)
    for key in "abcd":
        buckets.acquire(key, 0.0)
    assert len(buckets) == 2


@pytest.mark.parametrize("per_second, burst", [(0, 1), (1, 0.5), (-1, 5)])
def test_a_limit_that_serves_nothing_is_refused(per_second: float, burst: float) -> None:
    with pytest.raises(ValueError):
        RateLimit(per_second, burst)


@given(
    per_second=st.floats(0.5, 100),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), max_size=200),
)
def test_served_never_exceeds_burst_plus_refill(
    per_second: float, burst: int, gaps: list[float]
) -> None:
    # given requests at arbitrary times from one key
    buckets = TokenBuckets(RateLimit(per_second, burst))
    now, served = 0.0, 0
    for gap in gaps:
        now += gap
        wait = buckets.acquire("k", now)
        # then a refusal always names a positive wait no longer than one refill interval
        if wait == 0.0:
            served += 1
        else:
            assert 0 < wait <= 1 / per_second + 1e-9
    # and what was served is bounded by the burst plus what refilled meanwhile
    assert served <= math.floor(burst + now * per_second + 1e-9)
