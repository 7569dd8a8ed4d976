"""Fee policy: the market tip, fresh offers within the node's and the contract's bounds,
replacement bumps the pool accepts, the self-send that frees a doomed nonce, and the stuck rule."""

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
    compute_cancel,
    compute_fees,
    compute_priority_fee,
    compute_priority_fee_from_gas_price,
    is_stuck,
)
from keeper.core.types import BlockNumber, Wei
from keeper.errors import ConfigError

wei = st.integers(min_value=0, max_value=10_000 * GWEI)
base_fees = st.one_of(st.none(), wei)  # None: a chain without EIP-1559


@st.composite
def policies(draw: st.DrawFn) -> FeePolicy:
    floor = draw(wei)
    contract = draw(st.booleans())
    return FeePolicy(
        max_fee_cap=Wei(draw(st.integers(min_value=1, max_value=10_000 * GWEI))),
        priority_fee_floor=Wei(floor),
        priority_fee_ceiling=Wei(draw(st.integers(min_value=floor, max_value=20_000 * GWEI))),
        priority_fee_percentile=draw(st.floats(min_value=0, max_value=100)),
        base_fee_multiplier=draw(st.integers(min_value=1, max_value=4)),
        bump_percent=draw(st.integers(min_value=GETH_MIN_BUMP_PERCENT, max_value=100)),
        stuck_blocks=draw(st.integers(min_value=1, max_value=20)),
        contract_max_priority_fee=Wei(draw(wei)) if contract else None,
        contract_gas_price_cap=Wei(draw(st.integers(1, 10_000 * GWEI))) if contract else None,
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    """`eth_feeHistory`'s rewards at one percentile and gas used ratios (0: an empty block)."""
    size = draw(st.integers(min_value=0, max_value=12))
    rewards = draw(st.lists(wei, min_size=size, max_size=size))
    ratios = draw(st.lists(st.sampled_from([0.0, 0.01, 0.5, 1.0]), min_size=size, max_size=size))
    return rewards, ratios


@st.composite
def valid_fees(draw: st.DrawFn, cap: int) -> Fees:
    max_fee = draw(st.integers(min_value=0, max_value=cap))
    return Fees(Wei(max_fee), Wei(draw(st.integers(min_value=0, max_value=max_fee))))


def geth_accepts_replacement(old: Fees, new: Fees) -> bool:
    """geth's txpool rule (legacypool list.go) with the default 10 % price bump; for a legacy
    transaction both fields are its gas price, and the same rule applies to it."""
    bump = 100 + GETH_MIN_BUMP_PERCENT
    return (
        new.max_fee >= old.max_fee * bump // 100
        and new.priority_fee >= old.priority_fee * bump // 100
        and new.max_fee > old.max_fee
        and new.priority_fee > old.priority_fee
    )


def bounded(max_fee_cap: int = 500 * GWEI, tip: int = 2 * GWEI, cap: int = 100 * GWEI) -> FeePolicy:
    """A policy bound by a TaskManager deployed with `maxPriorityFee = tip`, `gasPriceCap = cap`."""
    return FeePolicy(max_fee_cap=Wei(max_fee_cap)).bounded_by_contract(Wei(cap), Wei(tip))


# ---------------------------------------------------------------- the market tip


def test_on_an_op_stack_chain_the_tip_follows_the_market_not_a_fixed_gwei() -> None:
    # given blocks whose median tip is 0.001 gwei (base fee 0.002 gwei)
    rewards = [GWEI // 1000, GWEI // 1000, 2 * GWEI // 1000, GWEI // 2000]
    tip = compute_priority_fee(bounded(), rewards, [0.3, 0.2, 0.5, 0.1])
    # then the node tips the market, 1,000 times less than a hard-coded 1 gwei
    assert tip == GWEI // 1000
    fees = compute_fees(bounded(), Wei(2 * GWEI // 1000), tip)
    assert fees == Fees(max_fee=Wei(5 * GWEI // 1000), priority_fee=Wei(GWEI // 1000))


def test_on_polygon_the_tip_reaches_the_going_30_gwei() -> None:
    policy = bounded(tip=50 * GWEI, cap=1000 * GWEI)
    tip = compute_priority_fee(policy, [30 * GWEI, 31 * GWEI, 29 * GWEI], [0.9, 0.8, 0.7])
    assert tip == 30 * GWEI


def test_empty_blocks_say_nothing_and_an_idle_chain_gets_the_floor() -> None:
    policy = FeePolicy(priority_fee_floor=Wei(7))
    assert compute_priority_fee(policy, [0, 0, 50], [0.0, 0.0, 0.4]) == 50
    assert compute_priority_fee(policy, [0, 0], [0.0, 0.0]) == 7
    assert compute_priority_fee(policy, [], []) == 7  # a node that returns no rewards


def test_the_tip_is_raised_to_the_floor_and_held_to_the_ceiling() -> None:
    policy = FeePolicy(priority_fee_floor=Wei(GWEI), priority_fee_ceiling=Wei(3 * GWEI))
    assert compute_priority_fee(policy, [10], [1.0]) == GWEI
    assert compute_priority_fee(policy, [90 * GWEI], [1.0]) == 3 * GWEI


def test_the_tip_never_exceeds_the_contracts_max_priority_fee() -> None:
    # a higher tip is not billed: the keeper would pay the difference itself
    policy = bounded(tip=2 * GWEI)
    assert compute_priority_fee(policy, [40 * GWEI], [1.0]) == 2 * GWEI
    assert compute_fees(policy, Wei(10 * GWEI), Wei(40 * GWEI)).priority_fee == 2 * GWEI


def test_the_max_fee_never_exceeds_the_contracts_gas_price_cap() -> None:
    policy = bounded(max_fee_cap=500 * GWEI, cap=30 * GWEI)
    assert policy.fee_cap == 30 * GWEI
    assert compute_fees(policy, Wei(20 * GWEI), Wei(GWEI)).max_fee == 30 * GWEI


def test_a_node_cap_below_the_tip_floor_is_allowed_and_wins() -> None:
    # given a cap (0.5 gwei) below the floor (1 gwei): the node still starts
    policy = FeePolicy(max_fee_cap=Wei(GWEI // 2), priority_fee_floor=Wei(GWEI))
    tip = compute_priority_fee(policy, [], [])
    fees = compute_fees(policy, Wei(GWEI // 10), tip)
    assert fees.priority_fee <= fees.max_fee == GWEI // 2


def test_without_fee_history_the_tip_is_the_gas_price_above_the_base_fee() -> None:
    policy = FeePolicy(priority_fee_floor=Wei(GWEI // 1000))
    # a 1559 chain: eth_gasPrice is the base fee plus the node's suggested tip
    assert compute_priority_fee_from_gas_price(policy, 12 * GWEI, Wei(10 * GWEI)) == 2 * GWEI
    # a legacy chain: the whole price is the tip
    assert compute_priority_fee_from_gas_price(policy, 25 * GWEI, None) == 25 * GWEI
    # a price at or below the base fee says the market tips nothing: the floor
    assert compute_priority_fee_from_gas_price(policy, 9 * GWEI, Wei(10 * GWEI)) == GWEI // 1000


def test_a_gas_price_tip_is_held_to_the_ceiling_and_the_contracts_maximum() -> None:
    policy = FeePolicy(priority_fee_ceiling=Wei(30 * GWEI))
    assert compute_priority_fee_from_gas_price(policy, 90 * GWEI, None) == 30 * GWEI
    assert compute_priority_fee_from_gas_price(bounded(tip=2 * GWEI), 90 * GWEI, None) == 2 * GWEI


# ---------------------------------------------------------------- fresh offers and bumps


def test_fresh_fees_leave_room_for_base_fee_to_double() -> None:
    fees = compute_fees(FeePolicy(), Wei(10 * GWEI), Wei(GWEI))
    assert fees == Fees(max_fee=Wei(21 * GWEI), priority_fee=Wei(1 * GWEI))


def test_fresh_fees_are_capped() -> None:
    policy = FeePolicy(max_fee_cap=Wei(15 * GWEI))
    assert compute_fees(policy, Wei(10 * GWEI), Wei(GWEI)).max_fee == 15 * GWEI


def test_without_a_base_fee_the_tip_is_the_whole_gas_price() -> None:
    assert compute_fees(FeePolicy(), None, Wei(3 * GWEI)) == Fees(Wei(3 * GWEI), Wei(3 * GWEI))
    legacy = compute_bump(FeePolicy(), Fees(Wei(3 * GWEI), Wei(3 * GWEI)), None, Wei(3 * GWEI))
    assert legacy == Fees(Wei(3_390_000_000), Wei(3_390_000_000))


def test_bump_raises_both_fields_by_bump_percent() -> None:
    previous = Fees(max_fee=Wei(21 * GWEI), priority_fee=Wei(1 * GWEI))
    bumped = compute_bump(FeePolicy(), previous, Wei(10 * GWEI), Wei(GWEI))
    assert bumped == Fees(max_fee=Wei(23_730_000_000), priority_fee=Wei(1_130_000_000))


def test_bump_follows_a_base_fee_jump() -> None:
    previous = Fees(max_fee=Wei(21 * GWEI), priority_fee=Wei(1 * GWEI))
    bumped = compute_bump(FeePolicy(), previous, Wei(40 * GWEI), Wei(GWEI))
    assert bumped is not None
    assert bumped.max_fee == compute_fees(FeePolicy(), Wei(40 * GWEI), Wei(GWEI)).max_fee
    assert bumped.max_fee == 81 * GWEI


def test_bump_is_refused_when_the_cap_forbids_it() -> None:
    policy = FeePolicy(max_fee_cap=Wei(22 * GWEI))
    previous = Fees(max_fee=Wei(21 * GWEI), priority_fee=Wei(1 * GWEI))
    assert compute_bump(policy, previous, Wei(10 * GWEI), Wei(GWEI)) is None


def test_bump_is_refused_when_the_tip_is_at_the_contracts_maximum() -> None:
    previous = Fees(max_fee=Wei(22 * GWEI), priority_fee=Wei(2 * GWEI))
    assert compute_bump(bounded(tip=2 * GWEI), previous, Wei(10 * GWEI), Wei(2 * GWEI)) is None


def test_a_zero_tip_still_moves() -> None:
    policy = FeePolicy(priority_fee_floor=Wei(0))
    bumped = compute_bump(policy, Fees(Wei(100), Wei(0)), Wei(10), Wei(0))
    assert bumped is not None and bumped.priority_fee >= 1 and bumped.max_fee > 100


def test_a_cancel_may_tip_past_the_contracts_maximum_but_not_the_nodes_cap() -> None:
    # given a doomed transaction tipping the contract's maximum: no bump is possible, but the
    # self-send is billed to nobody and only has to beat it by the pool's bump
    policy = bounded(max_fee_cap=30 * GWEI, tip=2 * GWEI)
    previous = Fees(max_fee=Wei(22 * GWEI), priority_fee=Wei(2 * GWEI))
    cancel = compute_cancel(policy, previous, Wei(10 * GWEI), Wei(2 * GWEI))
    assert cancel == Fees(max_fee=Wei(24_860_000_000), priority_fee=Wei(2_260_000_000))
    at_cap = Fees(max_fee=Wei(28 * GWEI), priority_fee=Wei(2 * GWEI))
    assert compute_cancel(policy, at_cap, Wei(10 * GWEI), Wei(2 * GWEI)) is None


@pytest.mark.parametrize(
    ("sent", "head", "stuck"), [(10, 10, False), (10, 12, False), (10, 13, True), (10, 50, True)]
)
def test_stuck_after_stuck_blocks(sent: int, head: int, stuck: bool) -> None:
    assert is_stuck(BlockNumber(sent), BlockNumber(head), FeePolicy(stuck_blocks=3)) is stuck


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bump_percent": 9},
        {"priority_fee_floor": Wei(3), "priority_fee_ceiling": Wei(2)},
        {"priority_fee_floor": Wei(-1)},
        {"priority_fee_percentile": 101},
        {"priority_fee_percentile": -1},
        {"base_fee_multiplier": 0},
        {"stuck_blocks": 0},
        {"max_fee_cap": Wei(0)},
    ],
)
def test_policy_rejects_settings_that_contradict_each_other(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        FeePolicy(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties


@given(policies(), histories())
def test_the_tip_lies_between_the_floor_and_every_ceiling(
    policy: FeePolicy, history: tuple[list[int], list[float]]
) -> None:
    tip = compute_priority_fee(policy, *history)
    limit = policy.priority_fee_ceiling
    if policy.contract_max_priority_fee is not None:
        limit = min(limit, policy.contract_max_priority_fee)
    assert min(policy.priority_fee_floor, limit) <= tip <= limit


@given(policies(), wei, base_fees)
def test_a_gas_price_tip_lies_between_the_floor_and_every_ceiling(
    policy: FeePolicy, gas_price: int, base_fee: int | None
) -> None:
    tip = compute_priority_fee_from_gas_price(
        policy, gas_price, None if base_fee is None else Wei(base_fee)
    )
    assert min(policy.priority_fee_floor, policy.tip_cap) <= tip <= policy.tip_cap


@given(policies(), base_fees, wei)
def test_fresh_fees_are_within_every_cap(policy: FeePolicy, base_fee: int | None, tip: int) -> None:
    fees = compute_fees(policy, None if base_fee is None else Wei(base_fee), Wei(tip))
    assert 0 <= fees.priority_fee <= fees.max_fee <= policy.max_fee_cap
    assert fees.priority_fee <= policy.tip_cap
    if policy.contract_gas_price_cap is not None:
        assert fees.max_fee <= policy.contract_gas_price_cap
    if base_fee is None:
        assert fees.max_fee == fees.priority_fee


@given(st.data(), policies(), base_fees, wei)
def test_bump_is_accepted_by_the_pool_or_refused(
    data: st.DataObject, policy: FeePolicy, base_fee: int | None, tip: int
) -> None:
    previous = data.draw(valid_fees(policy.fee_cap))
    if base_fee is None:
        previous = Fees(previous.max_fee, previous.max_fee)
    base = None if base_fee is None else Wei(base_fee)
    bumped = compute_bump(policy, previous, base, Wei(tip))
    if bumped is None:
        return
    assert geth_accepts_replacement(previous, bumped)
    assert bumped.max_fee * 100 >= previous.max_fee * (100 + policy.bump_percent)
    assert bumped.priority_fee * 100 >= previous.priority_fee * (100 + policy.bump_percent)
    assert bumped.priority_fee <= policy.tip_cap
    assert bumped.priority_fee <= bumped.max_fee <= policy.fee_cap
    assert bumped.max_fee >= compute_fees(policy, base, Wei(tip)).max_fee
    if base_fee is None:
        assert bumped.max_fee == bumped.priority_fee


@given(st.data(), policies(), base_fees, wei)
def test_bump_is_refused_only_when_a_cap_is_in_the_way(
    data: st.DataObject, policy: FeePolicy, base_fee: int | None, tip: int
) -> None:
    previous = data.draw(valid_fees(policy.fee_cap))
    base = None if base_fee is None else Wei(base_fee)
    fresh = compute_fees(policy, base, Wei(tip))
    step = policy.bump_percent
    needed_fee = max(previous.max_fee + max(1, -(-previous.max_fee * step // 100)), fresh.max_fee)
    needed_tip = previous.priority_fee + max(1, -(-previous.priority_fee * step // 100))
    assume(needed_fee <= policy.fee_cap and needed_tip <= min(policy.tip_cap, needed_fee))
    assert compute_bump(policy, previous, base, Wei(tip)) is not None


@given(st.data(), policies(), base_fees, wei)
def test_a_cancel_is_accepted_by_the_pool_within_the_nodes_cap_or_refused(
    data: st.DataObject, policy: FeePolicy, base_fee: int | None, tip: int
) -> None:
    previous = data.draw(valid_fees(policy.max_fee_cap))
    base = None if base_fee is None else Wei(base_fee)
    cancel = compute_cancel(policy, previous, base, Wei(tip))
    needed = previous.max_fee + max(1, -(-previous.max_fee * policy.bump_percent // 100))
    if cancel is None:
        assert needed > policy.max_fee_cap
        return
    assert geth_accepts_replacement(previous, cancel)
    assert cancel.priority_fee <= cancel.max_fee <= policy.max_fee_cap


@given(policies(), wei, wei, st.integers(min_value=1, max_value=30))
def test_repeated_bumps_climb_to_a_cap_and_stop(
    policy: FeePolicy, base_fee: int, tip: int, rounds: int
) -> None:
    fees: Fees | None = compute_fees(policy, Wei(base_fee), Wei(tip))
    for _ in range(rounds):
        assert fees is not None
        bumped = compute_bump(policy, fees, Wei(base_fee), Wei(tip))
        if bumped is None:
            return
        assert bumped.max_fee > fees.max_fee and bumped.priority_fee > fees.priority_fee
        fees = bumped
    assert fees is not None and fees.max_fee <= policy.fee_cap


@given(policies(), st.integers(min_value=0, max_value=10**9), st.integers(0, 1000))
def test_stuck_is_monotonic_in_head(policy: FeePolicy, sent: int, waited: int) -> None:
    if is_stuck(BlockNumber(sent), BlockNumber(sent + waited), policy):
        assert is_stuck(BlockNumber(sent), BlockNumber(sent + waited + 1), policy)
    assert is_stuck(BlockNumber(sent), BlockNumber(sent + waited), policy) is (
        waited >= policy.stuck_blocks
    )
