"""When `canRotate()` is worth asking: not at every head of a long epoch.

`canRotate()` is true when a rotation is armed and its seed block has passed, before the first
epoch once anyone is active, or once the current epoch is due: its length has run out
(`block.timestamp >= startTime + epochLength`) or, after a keeper-set change, it is
`MIN_EPOCH_BLOCKS` old. Everything but the clock in that rule is registry state, and every
change of that state comes with a registry event (`KeeperRegistered`, `StakeAdded`,
`ExitRequested`, `Slashed`, `KeeperEvicted`, `RotationArmed`, `EpochStarted`). So a node reads
`epochState()` and `armedRotation()` once, at a block its store holds, and until its store
applies another registry event (or rolls blocks back) it knows `canRotate()` is false while
the head's clock is short of the epoch's end: no eth_call per head for most of an epoch.

Whatever this module cannot rule out (no epoch yet, a rotation armed, a set change, the end of
the epoch within `ROTATION_LOOKAHEAD_SECONDS` of the head) is asked of the chain as before.
"""

from __future__ import annotations

from dataclasses import dataclass

# The head a node decides at can trail the block `canRotate()` runs in (the chain's latest, a
# block or a few behind while the store applies them): ask from this long before the end.
ROTATION_LOOKAHEAD_SECONDS = 60


@dataclass(frozen=True)
class EpochTiming:
    """The registry's `epochState()` and `armedRotation()` at `block`, and the store's registry
    generation (`Store.registry_generation`) that block's state belongs to."""

    generation: int
    block: int
    epoch: int
    set_changed: bool
    due_at: int  # startTime + epochLength, seconds
    arm_block: int  # 0: no rotation armed


def is_rotation_possible(timing: EpochTiming | None, generation: int, head_timestamp: int) -> bool:
    """Whether `canRotate()` may be true at a head stamped `head_timestamp` while the store is
    at registry generation `generation`: False only when `timing` was read at that generation
    and rules it out (an epoch running, nothing armed, no set change, its end more than
    `ROTATION_LOOKAHEAD_SECONDS` away)."""
    if timing is None or timing.generation != generation:
        return True
    if timing.epoch == 0 or timing.arm_block != 0 or timing.set_changed:
        return True
    return head_timestamp + ROTATION_LOOKAHEAD_SECONDS >= timing.due_at
