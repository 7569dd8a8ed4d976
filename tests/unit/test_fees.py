"""Fee policy: fresh offers, replacement bumps the pool accepts, and the stuck rule."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from keeper.core.fees import (
    GETH_MIN_BUMP_PERCENT,
    GWEI,
    FeePolicy,
    Fees,
    compute_bump,
    compute_fees,
    is_stuck,
)
from keeper.core.types import BlockNumber, Wei
from keeper.errors import ConfigError

wei = st.integers(min_value=0, max_value=10_000 * GWEI)


@st.composite
def policies(draw: st.DrawFn) -> FeePolicy:
    cap = draw(st.integers(min_value=1, max_value=10_000 * GWEI))
    return FeePolicy(
        priority_fee=Wei(draw(st.integers(min_value=0, max_value=cap))),
        max_fee_cap=Wei(cap),
        base_fee_multiplier=draw(st.integers(min_value=1, max_value=4)),
        bump_percent=draw(st.integers(min_value=GETH_MIN_BUMP_PERCENT, max_value=100)),
        stuck_blocks=draw(st.integers(min_value=1, max_value=20)),
    )


@st.composite
def valid_fees(draw: st.DrawFn, cap: int) -> Fees:
    max_fee = draw(st.integers(min_value=0, max_value=cap))
    return Fees(Wei(max_fee), Wei(draw(st.integers(min_value=0, max_value=max_fee))))


def geth_accepts_replacement(old: Fees, new: Fees) -> bool:
    """geth's txpool rule (legacypool list.go) with the default 10 % price bump."""
    bump = 100 + GETH_MIN_BUMP_PERCENT
    return (
        new.max_fee >= old.max_fee * bump // 100
        and new.priority_fee >= old.priority_fee * bump // 100
        and new.max_fee > old.max_fee
        and new.priority_fee > old.priority_fee
    )


# ---------------------------------------------------------------- examples


def test_fresh_fees_leave_room_for_base_fee_to_double() -> None:
    policy = FeePolicy()
    fees = compute_fees(policy, Wei(10 * GWEI))
    assert fees == Fees(max_fee=Wei(21 * GWEI), priority_fee=Wei(1 * GWEI))


def test_fresh_fees_are_capped() -> None:
    policy = FeePolicy(max_fee_cap=Wei(15 * GWEI))
    assert compute_fees(policy, Wei(10 * GWEI)).max_fee == 15 * GWEI


def test_bump_raises_both_fields_by_bump_percent() -> None:
    policy = FeePolicy()
    previous = Fees(max_fee=Wei(21 * GWEI), priority_fee=Wei(1 * GWEI))
    bumped = compute_bump(policy, previous, Wei(10 * GWEI))
    assert bumped == Fees(max_fee=Wei(23_730_000_000), priority_fee=Wei(1_130_000_000))


def test_bump_follows_a_base_fee_jump() -> None:
    policy = FeePolicy()
    previous = Fees(max_fee=Wei(21 * GWEI), priority_fee=Wei(1 * GWEI))
    bumped = compute_bump(policy, previous, Wei(40 * GWEI))
    assert bumped is not None
    assert bumped.max_fee == compute_fees(policy, Wei(40 * GWEI)).max_fee == 81 * GWEI


def test_bump_is_refused_when_the_cap_forbids_it() -> None:
    policy = FeePolicy(max_fee_cap=Wei(22 * GWEI))
    previous = Fees(max_fee=Wei(21 * GWEI), priority_fee=Wei(1 * GWEI))
    assert compute_bump(policy, previous, Wei(10 * GWEI)) is None


def test_a_zero_tip_still_moves() -> None:
    policy = FeePolicy(priority_fee=Wei(0))
    bumped = compute_bump(policy, Fees(Wei(100), Wei(0)), Wei(10))
    assert bumped is not None and bumped.priority_fee >= 1 and bumped.max_fee > 100


@pytest.mark.parametrize(
    ("sent", "head", "stuck"), [(10, 10, False), (10, 12, False), (10, 13, True), (10, 50, True)]
)
def test_stuck_after_stuck_blocks(sent: int, head: int, stuck: bool) -> None:
    assert is_stuck(BlockNumber(sent), BlockNumber(head), FeePolicy(stuck_blocks=3)) is stuck


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bump_percent": 9},
        {"priority_fee": Wei(2), "max_fee_cap": Wei(1)},
        {"base_fee_multiplier": 0},
        {"stuck_blocks": 0},
        {"max_fee_cap": Wei(0), "priority_fee": Wei(0)},
    ],
)
def test_policy_rejects_settings_that_cannot_work(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        FeePolicy(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties


@given(policies(), wei)
def test_fresh_fees_are_valid(policy: FeePolicy, base_fee: int) -> None:
    fees = compute_fees(policy, Wei(base_fee))
    assert 0 <= fees.priority_fee <= fees.max_fee <= policy.max_fee_cap


@given(st.data(), policies(), wei)
def test_bump_is_accepted_by_the_pool_or_refused(
    data: st.DataObject, policy: FeePolicy, base_fee: int
) -> None:
    previous = data.draw(valid_fees(policy.max_fee_cap))
    bumped = compute_bump(policy, previous, Wei(base_fee))
    if bumped is None:
        return
    assert geth_accepts_replacement(previous, bumped)
    assert bumped.max_fee * 100 >= previous.max_fee * (100 + policy.bump_percent)
    assert bumped.priority_fee * 100 >= previous.priority_fee * (100 + policy.bump_percent)
    assert bumped.priority_fee <= bumped.max_fee <= policy.max_fee_cap
    assert bumped.max_fee >= compute_fees(policy, Wei(base_fee)).max_fee


@given(st.data(), policies(), wei)
def test_bump_is_refused_only_when_the_cap_is_in_the_way(
    data: st.DataObject, policy: FeePolicy, base_fee: int
) -> None:
    previous = data.draw(valid_fees(policy.max_fee_cap))
    needed = previous.max_fee + max(1, -(-previous.max_fee * policy.bump_percent // 100))
    assume(needed <= policy.max_fee_cap)
    assert compute_bump(policy, previous, Wei(base_fee)) is not None


@given(policies(), wei, st.integers(min_value=1, max_value=30))
def test_repeated_bumps_climb_to_the_cap_and_stop(
    policy: FeePolicy, base_fee: int, rounds: int
) -> None:
    fees: Fees | None = compute_fees(policy, Wei(base_fee))
    for _ in range(rounds):
        assert fees is not None
        bumped = compute_bump(policy, fees, Wei(base_fee))
        if bumped is None:
            return
        assert bumped.max_fee > fees.max_fee and bumped.priority_fee > fees.priority_fee
        fees = bumped
    assert fees is not None and fees.max_fee <= policy.max_fee_cap


@given(policies(), st.integers(min_value=0, max_value=10**9), st.integers(0, 1000))
def test_stuck_is_monotonic_in_head(policy: FeePolicy, sent: int, waited: int) -> None:
    if is_stuck(BlockNumber(sent), BlockNumber(sent + waited), policy):
        assert is_stuck(BlockNumber(sent), BlockNumber(sent + waited + 1), policy)
    assert is_stuck(BlockNumber(sent), BlockNumber(sent + waited), policy) is (
        waited >= policy.stuck_blocks
    )
