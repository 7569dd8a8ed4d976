"""EIP-1559 fee policy: what to offer for a new transaction and for its replacement.

Pure functions of the policy and the latest base fee, so the sender only feeds them numbers
(the split web3's time-based gas strategy and pymaker's `gas.py` make). Replacement rules follow
geth's pool: a transaction with the same nonce replaces a pending one only if BOTH its max fee
and its priority fee are at least `price_bump` percent (default 10) higher.
"""

from __future__ import annotations

from dataclasses import dataclass

from keeper.core.types import BlockNumber, Wei
from keeper.errors import ConfigError

GWEI = 10**9
GETH_MIN_BUMP_PERCENT = 10
"""geth's default `txpool.pricebump`; a smaller bump is rejected as underpriced."""
DEFAULT_PRIORITY_FEE = Wei(1 * GWEI)
DEFAULT_MAX_FEE_CAP = Wei(500 * GWEI)


@dataclass(frozen=True)
class Fees:
    """The two EIP-1559 fee fields of a type-2 transaction, in wei per gas."""

    max_fee: Wei
    priority_fee: Wei


@dataclass(frozen=True)
class FeePolicy:
    """How much this node is willing to pay, and when a pending transaction counts as stuck.

    `max_fee_cap` bounds every offer, replacements included: a keeper must never be talked into
    unbounded spending by a base-fee spike. `bump_percent` defaults above geth's 10 % so that
    rounding can never leave a replacement just under the threshold.
    """

    priority_fee: Wei = DEFAULT_PRIORITY_FEE
    max_fee_cap: Wei = DEFAULT_MAX_FEE_CAP
    base_fee_multiplier: int = 2
    bump_percent: int = 13
    stuck_blocks: int = 3

    def __post_init__(self) -> None:
        if self.priority_fee < 0 or self.max_fee_cap <= 0:
            raise ConfigError("fees must be non-negative and the fee cap positive")
        if self.priority_fee > self.max_fee_cap:
            raise ConfigError(
                f"priority fee {self.priority_fee} exceeds the fee cap {self.max_fee_cap}"
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


def compute_fees(policy: FeePolicy, base_fee: Wei) -> Fees:
    """Fees for a fresh transaction: room for the base fee to grow `base_fee_multiplier`-fold
    (it can rise 12.5 % a block) before the transaction stops being includable, within the cap."""
    max_fee = min(policy.max_fee_cap, base_fee * policy.base_fee_multiplier + policy.priority_fee)
    return Fees(max_fee=Wei(max_fee), priority_fee=Wei(min(policy.priority_fee, max_fee)))


def compute_bump(policy: FeePolicy, previous: Fees, base_fee: Wei) -> Fees | None:
    """Fees for a replacement of a pending transaction paying `previous`, or None if the cap
    leaves no room for one the pool would accept.

    Both fields rise by at least `bump_percent` (and at least 1 wei, so a zero tip still moves),
    and never fall below what a fresh transaction would offer now: after a base-fee jump a
    13 % bump alone may still be too low to be included.
    """
    fresh = compute_fees(policy, base_fee)
    priority_fee = max(_raise(previous.priority_fee, policy.bump_percent), fresh.priority_fee)
    max_fee = max(_raise(previous.max_fee, policy.bump_percent), fresh.max_fee, priority_fee)
    if max_fee > policy.max_fee_cap:
        return None
    return Fees(max_fee=Wei(max_fee), priority_fee=Wei(priority_fee))


def is_stuck(sent_block: BlockNumber, head: BlockNumber, policy: FeePolicy) -> bool:
    """True once a transaction sent at `sent_block` has waited `stuck_blocks` blocks unmined."""
    return head - sent_block >= policy.stuck_blocks


def _raise(value: int, percent: int) -> int:
    """`value` raised by `percent` %, rounded up, and by at least 1."""
    return value + max(1, -(-value * percent // 100))
