"""Fee policy: what to offer for a new transaction, for its replacement, and for the cheap
self-send that frees the nonce of a transaction that can no longer succeed.

Pure functions of the policy and numbers the sender reads from the chain (the latest base fee
and the recent blocks' tips from `eth_feeHistory`, or `eth_gasPrice` on a node without it),
the split web3's time-based gas strategy and pymaker's `gas.py` make. Replacement rules
follow geth's pool: a transaction with the same nonce replaces a pending one only if BOTH its
max fee and its priority fee are at least `price_bump` percent (default 10) higher; a legacy
one only if its gas price is.

On a chain without a base fee (no `baseFeePerGas` in blocks) transactions are legacy (type 0):
the whole gas price is the tip, and `Fees` carries it in both fields.

The TaskManager bills `min(tx.gasprice, basefee + maxPriorityFee, gasPriceCap, job max)`: a
tip above its `maxPriorityFee` or a price above its `gasPriceCap` would be paid by the keeper
itself, so billed offers stay within both (`FeePolicy.bounded_by_contract`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import median_low

from keeper.core.types import BlockNumber, Wei
from keeper.errors import ConfigError

GWEI = 10**9
GETH_MIN_BUMP_PERCENT = 10
"""geth's default `txpool.pricebump`; a smaller bump is rejected as underpriced."""
FEE_HISTORY_BLOCKS = 10
"""Recent blocks whose tips set the market price (`eth_feeHistory` block count)."""
DEFAULT_PRIORITY_FEE_FLOOR = Wei(GWEI // 1000)
"""0.001 gwei: geth's default `miner.gasprice`, the least a block builder takes; the going tip
on an idle OP-stack chain."""
DEFAULT_PRIORITY_FEE_CEILING = Wei(100 * GWEI)
DEFAULT_PRIORITY_FEE_PERCENTILE = 50.0
DEFAULT_MAX_FEE_CAP = Wei(500 * GWEI)


@dataclass(frozen=True)
class Fees:
    """The two EIP-1559 fee fields of a type-2 transaction, in wei per gas (for a legacy
    transaction, both are its gas price)."""

    max_fee: Wei
    priority_fee: Wei


@dataclass(frozen=True)
class FeePolicy:
    """How much this node is willing to pay, and when a pending transaction counts as stuck.

    The tip follows the market: the `priority_fee_percentile` of recent blocks' tips, within
    [`priority_fee_floor`, `priority_fee_ceiling`]. `max_fee_cap` bounds every offer,
    replacements included: a keeper must never be talked into unbounded spending by a base-fee
    spike. A cap below the floor is allowed (the cap wins: the tip never exceeds the max fee).
    `bump_percent` defaults above geth's 10 % so that rounding can never leave a replacement
    just under the threshold.

    `contract_max_priority_fee` and `contract_gas_price_cap` are the TaskManager's billing
    bounds, None until read from the chain.
    """

    max_fee_cap: Wei = DEFAULT_MAX_FEE_CAP
    priority_fee_floor: Wei = DEFAULT_PRIORITY_FEE_FLOOR
    priority_fee_ceiling: Wei = DEFAULT_PRIORITY_FEE_CEILING
    priority_fee_percentile: float = DEFAULT_PRIORITY_FEE_PERCENTILE
    base_fee_multiplier: int = 2
    bump_percent: int = 13
    stuck_blocks: int = 3
    contract_max_priority_fee: Wei | None = None
    contract_gas_price_cap: Wei | None = None

    def __post_init__(self) -> None:
        if self.max_fee_cap <= 0:
            raise ConfigError(f"the fee cap must be positive, got {self.max_fee_cap} wei")
        if self.priority_fee_floor < 0:
            raise ConfigError("the priority fee floor must not be negative")
        if self.priority_fee_floor > self.priority_fee_ceiling:
            raise ConfigError(
                f"priority fee floor {self.priority_fee_floor} wei is above its ceiling "
                f"{self.priority_fee_ceiling} wei"
            )
        if not 0 <= self.priority_fee_percentile <= 100:
            raise ConfigError(
                f"priority fee percentile must be within 0..100, got {self.priority_fee_percentile}"
            )
        if self.base_fee_multiplier < 1:
            raise ConfigError("base_fee_multiplier must be at least 1")
        if self.bump_percent < GETH_MIN_BUMP_PERCENT:
            raise ConfigError(
                f"bump_percent {self.bump_percent} is below geth's {GETH_MIN_BUMP_PERCENT} %: "
                "replacements would be rejected as underpriced"
            )
        if self.stuck_blocks < 1:
            raise ConfigError("stuck_blocks must be at least 1")
        for name in ("contract_max_priority_fee", "contract_gas_price_cap"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must not be negative")

    def bounded_by_contract(self, gas_price_cap: Wei, max_priority_fee: Wei) -> FeePolicy:
        """This policy within the TaskManager's billing bounds (`gasPriceCap()`,
        `maxPriorityFee()`)."""
        return replace(
            self, contract_gas_price_cap=gas_price_cap, contract_max_priority_fee=max_priority_fee
        )

    @property
    def fee_cap(self) -> Wei:
        """The highest max fee of a billed transaction: the node's cap and the contract's."""
        if self.contract_gas_price_cap is None:
            return self.max_fee_cap
        return Wei(min(self.max_fee_cap, self.contract_gas_price_cap))

    @property
    def tip_cap(self) -> Wei:
        """The highest tip of a billed transaction: the node's ceiling and the contract's."""
        if self.contract_max_priority_fee is None:
            return self.priority_fee_ceiling
        return Wei(min(self.priority_fee_ceiling, self.contract_max_priority_fee))


def compute_priority_fee(
    policy: FeePolicy, rewards: Sequence[int], gas_used_ratios: Sequence[float]
) -> Wei:
    """The tip to offer now: the median, over recent blocks that carried transactions, of each
    block's `priority_fee_percentile` tip (`eth_feeHistory`'s `reward` and `gasUsedRatio`),
    raised to the floor, then held to the ceiling and the contract's maximum.

    Empty blocks report a tip of 0, which says nothing about the market, so they are left out;
    with no sample at all (an idle chain, or a node without rewards) the floor is offered.
    """
    samples = [r for r, used in zip(rewards, gas_used_ratios, strict=False) if used > 0]
    market = median_low(samples) if samples else 0
    return Wei(min(max(market, policy.priority_fee_floor), policy.tip_cap))


def compute_priority_fee_from_gas_price(
    policy: FeePolicy, gas_price: int, base_fee: Wei | None
) -> Wei:
    """The tip to offer on a node without `eth_feeHistory`: what its `eth_gasPrice` asks above
    the base fee (the whole price on a chain without one), within the same floor, ceiling and
    contract maximum as a tip taken from the fee history."""
    market = gas_price - (base_fee or 0)
    return Wei(min(max(market, policy.priority_fee_floor), policy.tip_cap))


def compute_fees(policy: FeePolicy, base_fee: Wei | None, priority_fee: Wei) -> Fees:
    """Fees for a fresh transaction tipping `priority_fee` (held to the policy's tip cap).

    With a base fee: room for it to grow `base_fee_multiplier`-fold (it can rise 12.5 % a
    block) before the transaction stops being includable, within the fee cap. Without one
    (`None`, a legacy chain): the tip is the whole gas price.
    """
    tip = min(priority_fee, policy.tip_cap)
    if base_fee is None:
        price = Wei(min(tip, policy.fee_cap))
        return Fees(max_fee=price, priority_fee=price)
    max_fee = min(policy.fee_cap, base_fee * policy.base_fee_multiplier + tip)
    return Fees(max_fee=Wei(max_fee), priority_fee=Wei(min(tip, max_fee)))


def compute_bump(
    policy: FeePolicy, previous: Fees, base_fee: Wei | None, priority_fee: Wei
) -> Fees | None:
    """Fees for a replacement of a pending billed transaction paying `previous`, or None if the
    caps leave no room for one the pool would accept.

    Both fields rise by at least `bump_percent` (and at least 1 wei, so a zero tip still moves),
    and never fall below what a fresh transaction would offer now: after a base-fee jump a
    13 % bump alone may still be too low to be included. The tip stays within the tip cap and
    the max fee within the fee cap, as for a fresh transaction: what lies beyond would not be
    billed.
    """
    fresh = compute_fees(policy, base_fee, priority_fee)
    fees = _replacement(policy, previous, fresh)
    if fees.priority_fee > policy.tip_cap or fees.max_fee > policy.fee_cap:
        return None
    return fees


def compute_cancel(
    policy: FeePolicy, previous: Fees, base_fee: Wei | None, priority_fee: Wei
) -> Fees | None:
    """Fees for a 0-value self-send that takes the nonce of a pending transaction paying
    `previous` which can no longer succeed, or None if the node's own cap forbids it.

    The least the pool accepts as a replacement (or a fresh offer, if that is higher): the
    self-send is not billed to any job, so the contract's bounds do not apply, only the node's
    `max_fee_cap`; at 21,000 gas it costs far less than mining a revert.
    """
    fresh = compute_fees(replace(policy, contract_max_priority_fee=None), base_fee, priority_fee)
    fees = _replacement(policy, previous, fresh)
    if fees.max_fee > policy.max_fee_cap:
        return None
    return fees


def is_stuck(sent_block: BlockNumber, head: BlockNumber, policy: FeePolicy) -> bool:
    """True once a transaction sent at `sent_block` has waited `stuck_blocks` blocks unmined."""
    return head - sent_block >= policy.stuck_blocks


def _replacement(policy: FeePolicy, previous: Fees, fresh: Fees) -> Fees:
    """Both fields raised by `bump_percent` over `previous`, and at least `fresh`; for a legacy
    transaction (equal fields) both stay equal."""
    priority_fee = max(_raise(previous.priority_fee, policy.bump_percent), fresh.priority_fee)
    max_fee = max(_raise(previous.max_fee, policy.bump_percent), fresh.max_fee, priority_fee)
    return Fees(max_fee=Wei(max_fee), priority_fee=Wei(priority_fee))


def _raise(value: int, percent: int) -> int:
    """`value` raised by `percent` %, rounded up, and by at least 1."""
    return value + max(1, -(-value * percent // 100))
