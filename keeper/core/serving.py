"""Which jobs a keeper serves at a block: the jobs of the quorums it sits in, in the epoch the
block falls in and, for the registry's grace period after a rotation, in the epoch before.

The follower asks for the logs of these Event jobs only. An epoch counts for a block from the
block after its `EpochStarted` (the follower learns an epoch with the block that starts it, after
that block's logs were fetched), so "what was fetched for block b" is a rule of the epochs alone,
the same on every pass and after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from keeper.core.quorum import Member, compute_quorum_of

EPOCH_GRACE_BLOCKS = 20  # KeeperRegistry.EPOCH_GRACE_BLOCKS


@dataclass(frozen=True)
class Seat:
    """The quorums of one epoch that a keeper sits in (none: it serves no job in it)."""

    epoch: int
    start_block: int
    seed: bytes
    count: int
    quorums: frozenset[int]

    def is_serving(self, job_id: int) -> bool:
        if not self.quorums:
            return False
        return compute_quorum_of(self.seed, job_id, self.count) in self.quorums


def compute_seat(
    epoch: int,
    start_block: int,
    seed: bytes,
    quorums: Sequence[Sequence[Member]],
    member: str,
) -> Seat:
    """`member`'s seat in an epoch whose quorums are `quorums` (in quorum order)."""
    me = member.lower()
    mine = frozenset(i for i, q in enumerate(quorums) if any(m.address.lower() == me for m in q))
    return Seat(epoch, start_block, seed, len(quorums), mine)


def compute_serving_seats(seats: Iterable[Seat], block: int) -> tuple[Seat, ...]:
    """The seats that serve logs of `block`: the newest epoch started before `block`, and the
    one before it while `block` is within that newest epoch's grace period (its quorums may
    still sign reports then)."""
    started = sorted((s for s in seats if s.start_block < block), key=lambda s: s.epoch)
    if not started:
        return ()
    current = started[-1]
    if (
        len(started) > 1
        and started[-2].epoch + 1 == current.epoch
        and block <= current.start_block + EPOCH_GRACE_BLOCKS
    ):
        return (started[-2], current)
    return (current,)


def is_job_served(seats: Iterable[Seat], job_id: int) -> bool:
    """Whether any of `seats` serves `job_id`."""
    return any(seat.is_serving(job_id) for seat in seats)
