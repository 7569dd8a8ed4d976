"""Quorum membership, assignment, leader ranking and the stake threshold.

Mirrors KeeperRegistry.rotate / quorumOf and TaskManager's signature check exactly, so a node
can predict and check what the contracts will accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from eth_utils.crypto import keccak

from keeper.core.abi_words import address_word, bytes32_word, uint_word
from keeper.core.addresses import checksum_address

BPS = 10_000
STAKE_BITS = 96
STAKE_MASK = (1 << STAKE_BITS) - 1
MAX_MEMBERS = 256
# Leader rankings remembered: one per (epoch, quorum, due block) a node led or checked lately.
RANKINGS_CACHED = 4096


@dataclass(frozen=True)
class Member:
    """One quorum member as committed on-chain: operator address and stake snapshot."""

    address: str
    stake: int

    @property
    def word(self) -> bytes:
        """`address << 96 | stake` as the 32-byte word `execute` takes."""
        return pack_member(self.address, self.stake)


def pack_member(address: str, stake: int) -> bytes:
    if not 0 <= stake <= STAKE_MASK:
        raise ValueError(f"stake {stake} does not fit in uint96")
    return ((int(address, 16) << STAKE_BITS) | stake).to_bytes(32, "big")


def unpack_member(word: bytes) -> Member:
    value = int.from_bytes(word, "big")
    address = checksum_address((value >> STAKE_BITS).to_bytes(20, "big"))
    return Member(address=address, stake=value & STAKE_MASK)


def compute_quorum_hash(members: Sequence[Member]) -> bytes:
    """keccak256(abi.encodePacked(members)) as stored by the registry."""
    return keccak(b"".join(m.word for m in members))


@lru_cache(maxsize=65536)  # asked for every job at every head; fixed for an epoch
def compute_quorum_of(seed: bytes, job_id: int, count: int) -> int:
    """The quorum serving `job_id`: keccak256(abi.encode(seed, jobId)) % count."""
    if count <= 0:
        raise ValueError("an epoch has at least one quorum")
    return int.from_bytes(keccak(bytes32_word(seed) + uint_word(job_id, 256)), "big") % count


def compute_sort_key(seed: bytes, keeper: str) -> int:
    """Top 96 bits of keccak256(abi.encode(seed, keeper)), then the address as tie-break."""
    h = int.from_bytes(keccak(bytes32_word(seed) + address_word(keeper)), "big")
    return ((h >> 160) << 160) | int(keeper, 16)


def compute_quorums(
    seed: bytes, active: Mapping[str, int], target_size: int, weight_cap: int | None = None
) -> list[list[Member]]:
    """The quorums `rotate()` forms from the frozen set (address -> stake).

    Keepers are ordered by their sort key and dealt round-robin into max(1, K // target)
    quorums; each quorum is sorted by address. A member's weight is its stake, capped at
    `weight_cap` (the registry's MAX_WEIGHT_MULTIPLE * minStake) when given. An empty set forms
    no quorum (the registry's empty epoch).
    """
    if not active:
        return []
    order = sorted(active, key=lambda a: compute_sort_key(seed, a))
    count = max(1, len(order) // target_size)
    quorums: list[list[Member]] = []
    for j in range(count):
        chosen = order[j::count]
        members = [
            Member(checksum_address(a), compute_weight(active[a], weight_cap)) for a in chosen
        ]
        quorums.append(sorted(members, key=lambda m: int(m.address, 16)))
    return quorums


def compute_weight(stake: int, weight_cap: int | None) -> int:
    """KeeperRegistry.weightOf: the stake, capped (one large stake cannot outvote a quorum)."""
    return stake if weight_cap is None else min(stake, weight_cap)


def compute_total_stake(members: Iterable[Member]) -> int:
    return sum(m.stake for m in members)


def is_threshold_met(signed_stake: int, total_stake: int, threshold_bps: int) -> bool:
    """The contract's stake rule: signed * 10000 >= total * thresholdBps."""
    return signed_stake * BPS >= total_stake * threshold_bps


def is_majority(signers: int, members: int) -> bool:
    """The contract's count rule: more than half of the members signed (TooFewSigners)."""
    return signers * 2 > members


def is_quorum_signed(
    signed_stake: int, total_stake: int, signers: int, members: int, threshold_bps: int
) -> bool:
    """Both rules of TaskManager._checkSignatures: the stake threshold (member weights, capped
    at rotation) and a majority of members by count."""
    return is_majority(signers, members) and is_threshold_met(
        signed_stake, total_stake, threshold_bps
    )


class SignatureTally:
    """One round's signatures as its members answer, against the stake threshold.

    `reached` once the signed stake meets the threshold and a majority of members signed;
    `settled` once that is so or every
    member has answered (signed or refused) without it, when waiting longer cannot help. Each
    member counts once: a second answer, or one from outside the quorum, changes nothing.
    """

    def __init__(self, members: Sequence[Member], threshold_bps: int) -> None:
        self._stakes = {m.address.lower(): m.stake for m in members}
        self._total = sum(self._stakes.values())
        self._threshold_bps = threshold_bps
        self._signed = 0
        self._outstanding = set(self._stakes)
        self.signatures: dict[str, bytes] = {}

    def add(self, member: str, signature: bytes) -> None:
        """`member` signed (its signature already checked by the caller)."""
        key = member.lower()
        if key in self._outstanding:
            self._outstanding.discard(key)
            self.signatures[member] = signature
            self._signed += self._stakes[key]

    def refuse(self, member: str) -> None:
        """`member` refused, failed or cannot be asked; harmless after its answer."""
        self._outstanding.discard(member.lower())

    @property
    def signed_stake(self) -> int:
        return self._signed

    @property
    def total_stake(self) -> int:
        return self._total

    @property
    def reached(self) -> bool:
        return is_quorum_signed(
            self._signed,
            self._total,
            len(self.signatures),
            len(self._stakes),
            self._threshold_bps,
        )

    @property
    def settled(self) -> bool:
        return self.reached or not self._outstanding


def is_batch_signed(
    members: Sequence[Member], thresholds_bps: Iterable[int], signers: Iterable[str]
) -> bool:
    """Whether `signers` (members who signed one batch) meet the threshold of every item in it
    (`thresholds_bps`, one per item: each job has its own) and are a majority by count."""
    stakes = {m.address.lower(): m.stake for m in members}
    signed = {s.lower() for s in signers} & stakes.keys()
    stake = sum(stakes[s] for s in signed)
    total = sum(stakes.values())
    return all(
        is_quorum_signed(stake, total, len(signed), len(stakes), bps) for bps in thresholds_bps
    )


def compute_signable_items(
    members: Sequence[Member],
    thresholds_bps: Sequence[int],
    accepted: Mapping[str, frozenset[int]],
) -> frozenset[int]:
    """The largest set S of a batch's items (indices into `thresholds_bps`) such that the
    members whose accepted sets (`accepted`, member -> item indices) contain S meet the
    threshold of every item of S; empty when no item can be signed.

    Exact search is exponential; honest members refuse the same items (they compute the same
    results), so the candidates are the items each signable on its own, that set cut by each
    member's and each pair of members' accepted sets, and that set shed item by item (fewest
    supporters first). Ties go to the set with the most signed stake, then the lowest indices,
    so every run picks the same."""
    stakes = {m.address.lower(): m.stake for m in members}
    sets = {a.lower(): frozenset(s) for a, s in accepted.items() if a.lower() in stakes}

    def supporters(items: frozenset[int]) -> list[str]:
        return [a for a, s in sets.items() if items <= s]

    def is_signable(items: frozenset[int]) -> bool:
        return bool(items) and is_batch_signed(
            members, (thresholds_bps[i] for i in items), supporters(items)
        )

    alone = frozenset(i for i in range(len(thresholds_bps)) if is_signable(frozenset({i})))
    candidates = {alone}
    named = list(sets.values())
    for i, a in enumerate(named):
        candidates.add(alone & a)
        candidates.update(alone & a & b for b in named[i + 1 :])
    shed = set(alone)
    while shed:
        fewest = min(shed, key=lambda i: (len(supporters(frozenset({i}))), -i))
        shed.discard(fewest)
        candidates.add(frozenset(shed))
    signable = [c for c in candidates if is_signable(c)]
    if not signable:
        return frozenset()
    return max(
        signable,
        key=lambda c: (len(c), sum(stakes[a] for a in supporters(c)), [-i for i in sorted(c)]),
    )


def compute_signer_bitmap(members: Sequence[Member], signers: Iterable[str]) -> int:
    """Bit i set when members[i] signed; raises ValueError for a signer outside the quorum."""
    index = {m.address.lower(): i for i, m in enumerate(members)}
    bitmap = 0
    for signer in signers:
        i = index.get(signer.lower())
        if i is None:
            raise ValueError(f"{signer} is not a member of this quorum")
        bitmap |= 1 << i
    return bitmap


def pack_signatures(
    members: Sequence[Member], signatures: Mapping[str, bytes]
) -> tuple[int, bytes]:
    """(signerBitmap, concatenated signatures in member order) for `execute`."""
    by_address = {a.lower(): s for a, s in signatures.items()}
    bitmap = 0
    packed = b""
    for i, m in enumerate(members):
        sig = by_address.get(m.address.lower())
        if sig is not None:
            bitmap |= 1 << i
            packed += sig
    return bitmap, packed


@lru_cache(maxsize=65536)  # a round is ranked by its leader and each member, often twice
def compute_rank_key(job_id: int, round_: int, member: str) -> bytes:
    """keccak256(abi.encode(jobId, round, member)): the order of `rotate()` senders (job id
    0, the epoch as the round)."""
    return keccak(uint_word(job_id, 256) + uint_word(round_, 64) + address_word(member))


def rank_members(
    job_id: int, round_: int, members: Iterable[str], overloaded: Iterable[str] = ()
) -> list[str]:
    """Members in leader order for one round; overloaded members move to the back."""
    shed = {a.lower() for a in overloaded}
    return sorted(
        members,
        key=lambda a: (a.lower() in shed, compute_rank_key(job_id, round_, a)),
    )


@lru_cache(maxsize=65536)  # asked for every due round by its leader and each member
def compute_batch_rank_key(epoch: int, quorum: int, due_block: int, member: str) -> bytes:
    """keccak256(abi.encode(epoch, quorum, dueBlock, member)): the leader order of every
    round one quorum opened at one block. Rounds due together share their primary, so they go
    out as one batch; across heads (and quorums) the primary changes, which keeps leading
    balanced."""
    return keccak(
        uint_word(epoch, 64)
        + uint_word(quorum, 16)
        + uint_word(due_block, 64)
        + address_word(member)
    )


def rank_batch_members(
    epoch: int,
    quorum: int,
    due_block: int,
    members: Iterable[str],
    overloaded: Iterable[str] = (),
) -> list[str]:
    """Members in leader order for the rounds of `quorum` in `epoch` due at `due_block`;
    overloaded members move to the back."""
    ranked = _rank_by_key(epoch, quorum, due_block, tuple(members))
    shed = {a.lower() for a in overloaded}
    if not shed:
        return list(ranked)
    return sorted(ranked, key=lambda a: a.lower() in shed)  # stable: key order within each


@lru_cache(maxsize=RANKINGS_CACHED)
def _rank_by_key(
    epoch: int, quorum: int, due_block: int, members: tuple[str, ...]
) -> tuple[str, ...]:
    """The ranking itself, once per (epoch, quorum, due block, members): every round a quorum
    opened at one block shares it, and a leader and each member rank every such round."""
    return tuple(sorted(members, key=lambda a: compute_batch_rank_key(epoch, quorum, due_block, a)))


def compute_turn_start(due_block: int, rank: int, turn_blocks: int) -> int:
    """First block at which the member of `rank` leads: dueBlock + rank * turnBlocks."""
    if rank < 0 or turn_blocks <= 0:
        raise ValueError("rank must be >= 0 and turn_blocks > 0")
    return due_block + rank * turn_blocks


def is_turn_started(
    due_block: int, rank: int, turn_blocks: int, block: int, slack_blocks: int = 0
) -> bool:
    """Whether the member of `rank` may lead by `block`: its turn starts no later than
    `block + slack_blocks` (the slack absorbs a head that reached the leader first)."""
    return compute_turn_start(due_block, rank, turn_blocks) <= block + slack_blocks


def compute_current_leader_rank(due_block: int, block: int, turn_blocks: int, size: int) -> int:
    """Which rank leads at `block` (the last rank keeps leading after its turn)."""
    if block < due_block:
        return 0
    return min((block - due_block) // turn_blocks, size - 1)
