"""Evidence of equivocation: one keeper signing two results for the same round key.

A member sees every batch a leader sends it, with the leader's own signature over the whole
batch. Two items signed by the same signer for the same (jobId, round, checkBlock,
checkBlockHash) with a different cursor or payload hash are what
`TaskManager.slashEquivocation` accepts as proof: each half is the batch's header, its item
hashes, the item's index and the signature (the contract recomputes the digest). The book keeps
the items it has seen (a bounded number, oldest forgotten first) and hands back such a pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keeper.core.report import Batch, Report, compute_item_hash

# Reports remembered; one per (round key, signer). Honest leaders send one per round.
MAX_EVIDENCE = 20_000


@dataclass(frozen=True)
class SignedBy:
    """One item (`report`) of a batch one signer signed: with the batch's item hashes and the
    item's index in it, it is one half of the contract's `EquivocationProof`. A report signed
    alone is the batch of one (the defaults)."""

    report: Report
    signature: bytes
    item_hashes: tuple[bytes, ...] = ()
    index: int = 0

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The batch's item hashes (the report's own for a batch of one)."""
        return self.item_hashes or (compute_item_hash(self.report),)


@dataclass(frozen=True)
class Equivocation:
    """Two conflicting reports signed by `signer`: proof for `slashEquivocation`."""

    signer: str
    first: SignedBy
    second: SignedBy


def is_conflicting(a: Report, b: Report) -> bool:
    """TaskManager.slashEquivocation's rule: the same round key, a different result."""
    same_key = (a.jobId, a.round, a.checkBlock, a.checkBlockHash) == (
        b.jobId,
        b.round,
        b.checkBlock,
        b.checkBlockHash,
    )
    return same_key and (a.cursor, a.payloadHash) != (b.cursor, b.payloadHash)


class EvidenceBook:
    """Signed reports seen from peers, by round key and signer (no I/O, bounded)."""

    def __init__(self, capacity: int = MAX_EVIDENCE) -> None:
        self._capacity = capacity
        self._seen: dict[tuple[int, int, int, bytes, str], SignedBy] = {}

    def observe(
        self,
        report: Report,
        signer: str,
        signature: bytes,
        item_hashes: tuple[bytes, ...] = (),
        index: int = 0,
    ) -> Equivocation | None:
        """Records `signer`'s signed `report` (item `index` of a batch with `item_hashes`; a
        batch of one by default); returns the proof when it conflicts with one seen before for
        the same key (the first one stays, so each later conflict is proof too)."""
        key = (report.jobId, report.round, report.checkBlock, report.checkBlockHash, signer.lower())
        signed = SignedBy(report, signature, item_hashes, index)
        earlier = self._seen.get(key)
        if earlier is None:
            if len(self._seen) >= self._capacity:
                del self._seen[next(iter(self._seen))]
            self._seen[key] = signed
            return None
        if not is_conflicting(earlier.report, report):
            return None
        return Equivocation(signer, earlier, signed)

    def observe_batch(
        self,
        batch: Batch,
        signer: str,
        signature: bytes,
        item_hashes: Sequence[bytes] | None = None,
    ) -> list[Equivocation]:
        """Records every item of `signer`'s signed `batch`; the proofs it completes.
        `item_hashes`: the items' struct hashes when the caller has them already."""
        hashes = tuple(batch.item_hashes() if item_hashes is None else item_hashes)
        proofs = (
            self.observe(item, signer, signature, hashes, i) for i, item in enumerate(batch.items)
        )
        return [p for p in proofs if p is not None]

    def __len__(self) -> int:
        return len(self._seen)
