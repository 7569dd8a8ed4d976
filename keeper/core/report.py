"""The EIP-712 `Batch` a quorum signs, its digest, and the per-item `Report` view of it.

A quorum signs one `Batch` per execution: a header (epoch, quorum, check block and its hash,
executor, deadline) and the items (jobId, round, cursor, payloadHash) it carries. The node
reasons per item: a `Report` is one item together with its batch's header, and a report alone
is a batch of one. Mirrors TaskManager.sol: domain `name="KeeperTaskManager", version="1"`,
chainId and the TaskManager address. Signing is pure computation over a key; no chain is
touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_keys.datatypes import PrivateKey, Signature
from eth_keys.exceptions import BadSignature
from eth_utils.crypto import keccak

from keeper.core.abi_words import address_word, bytes32_word, uint_word
from keeper.core.addresses import checksum_address

DOMAIN_NAME = "KeeperTaskManager"
DOMAIN_VERSION = "1"
SIGNATURE_LENGTH = 65
# TaskManager.MAX_CHECK_AGE: a report whose check block is older than this many blocks is
# refused on chain (StaleCheckBlock), and by every member before it signs.
MAX_CHECK_AGE = 128
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0

# TaskManager.MAX_BATCH_ITEMS: the most items one `execute` carries.
MAX_BATCH_ITEMS = 64

# The EIP-712 types a quorum signs (eth_account's typed-data form, for tests and wallets).
BATCH_TYPES: dict[str, list[dict[str, str]]] = {
    "Batch": [
        {"name": "epoch", "type": "uint64"},
        {"name": "quorum", "type": "uint16"},
        {"name": "checkBlock", "type": "uint64"},
        {"name": "checkBlockHash", "type": "bytes32"},
        {"name": "executor", "type": "address"},
        {"name": "deadline", "type": "uint64"},
        {"name": "items", "type": "Item[]"},
    ],
    "Item": [
        {"name": "jobId", "type": "uint256"},
        {"name": "round", "type": "uint64"},
        {"name": "cursor", "type": "uint256"},
        {"name": "payloadHash", "type": "bytes32"},
    ],
}


@dataclass(frozen=True)
class Domain:
    """Where a report is valid: one chain, one TaskManager."""

    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": checksum_address(self.verifying_contract),
        }


@dataclass(frozen=True)
class BatchHeader:
    """What every item of one batch shares: where it was checked, who submits it until when."""

    epoch: int
    quorum: int
    checkBlock: int
    checkBlockHash: bytes
    executor: str
    deadline: int

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple of TaskManager's `BatchHeader`."""
        return (
            self.epoch,
            self.quorum,
            self.checkBlock,
            self.checkBlockHash,
            checksum_address(self.executor),
            self.deadline,
        )


@dataclass(frozen=True)
class Report:
    """One item of a batch with its batch's header: one proposed execution of one round, what
    the quorum agrees on and who may submit it until when. Alone, it is a batch of one."""

    jobId: int
    round: int
    epoch: int
    cursor: int
    checkBlock: int
    checkBlockHash: bytes
    payloadHash: bytes
    executor: str
    deadline: int
    quorum: int = 0

    def as_message(self) -> dict[str, Any]:
        """The fields as a dict, executor checksummed (the wire and store form). Written out:
        `dataclasses.asdict` deep-copies, and a member stores every item it signs."""
        return {
            "jobId": self.jobId,
            "round": self.round,
            "epoch": self.epoch,
            "cursor": self.cursor,
            "checkBlock": self.checkBlock,
            "checkBlockHash": self.checkBlockHash,
            "payloadHash": self.payloadHash,
            "executor": checksum_address(self.executor),
            "deadline": self.deadline,
            "quorum": self.quorum,
        }

    @property
    def header(self) -> BatchHeader:
        return BatchHeader(
            self.epoch,
            self.quorum,
            self.checkBlock,
            self.checkBlockHash,
            self.executor,
            self.deadline,
        )

    def item_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple of TaskManager's `SignedItem` (what is signed of the item)."""
        return (self.jobId, self.round, self.cursor, self.payloadHash)

    @property
    def equivocation_key(self) -> tuple[int, int, int, bytes]:
        """Two reports with this key but another result are equivocation."""
        return (self.jobId, self.round, self.checkBlock, self.checkBlockHash)

    def same_result(self, other: Report) -> bool:
        return self.cursor == other.cursor and self.payloadHash == other.payloadHash


@dataclass(frozen=True)
class Batch:
    """What a quorum signs for one `execute`: one header and its items, in execution order."""

    header: BatchHeader
    items: tuple[Report, ...]

    @classmethod
    def of(cls, reports: Sequence[Report]) -> Batch:
        """The batch of `reports`, which must share one header; ValueError otherwise."""
        if not reports:
            raise ValueError("a batch has at least one item")
        if len(reports) > MAX_BATCH_ITEMS:
            raise ValueError(f"a batch has at most {MAX_BATCH_ITEMS} items, got {len(reports)}")
        header = reports[0].header
        if any(r.header != header for r in reports[1:]):
            raise ValueError(
                "the items of a batch share epoch, quorum, check block, executor and deadline"
            )
        return cls(header, tuple(reports))

    def subset(self, indices: Sequence[int]) -> Batch:
        """The batch of the items at `indices` (kept in this batch's order)."""
        return Batch.of([self.items[i] for i in sorted(set(indices))])

    def item_hashes(self) -> list[bytes]:
        return [compute_item_hash(r) for r in self.items]


def compute_payload_hash(payload: bytes) -> bytes:
    return keccak(payload)


# EIP-712 hashing written out for these two fixed structs: eth_account's generic typed-data
# encoder costs about 1 ms per message, and a round hashes a batch 2N - 1 times across an
# N-member quorum. tests/unit/test_report.py checks it against that encoder and the contract.
_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_ITEM_TYPE = "Item(uint256 jobId,uint64 round,uint256 cursor,bytes32 payloadHash)"
ITEM_TYPEHASH = keccak(text=_ITEM_TYPE)
BATCH_TYPEHASH = keccak(
    text="Batch(uint64 epoch,uint16 quorum,uint64 checkBlock,bytes32 checkBlockHash,"
    "address executor,uint64 deadline,Item[] items)" + _ITEM_TYPE
)


@lru_cache(maxsize=16)
def compute_domain_separator(domain: Domain) -> bytes:
    return keccak(
        _DOMAIN_TYPEHASH
        + keccak(text=DOMAIN_NAME)
        + keccak(text=DOMAIN_VERSION)
        + uint_word(domain.chain_id, 256)
        + address_word(domain.verifying_contract)
    )


def compute_item_hash(report: Report) -> bytes:
    """The EIP-712 struct hash of one item (`TaskManager.hashItem`)."""
    return keccak(
        ITEM_TYPEHASH
        + uint_word(report.jobId, 256)
        + uint_word(report.round, 64)
        + uint_word(report.cursor, 256)
        + bytes32_word(report.payloadHash)
    )


def compute_batch_digest_of(
    header: BatchHeader, item_hashes: Sequence[bytes], domain: Domain
) -> bytes:
    """The 32-byte EIP-712 digest of a batch given its items' struct hashes
    (`TaskManager.hashBatch`); what an equivocation proof recomputes on chain."""
    struct = keccak(
        BATCH_TYPEHASH
        + uint_word(header.epoch, 64)
        + uint_word(header.quorum, 16)
        + uint_word(header.checkBlock, 64)
        + bytes32_word(header.checkBlockHash)
        + address_word(header.executor)
        + uint_word(header.deadline, 64)
        + keccak(b"".join(bytes32_word(h) for h in item_hashes))
    )
    return keccak(b"\x19\x01" + compute_domain_separator(domain) + struct)


def compute_batch_digest(batch: Batch, domain: Domain) -> bytes:
    """The 32-byte EIP-712 digest a quorum signs for `batch`."""
    return compute_batch_digest_of(batch.header, batch.item_hashes(), domain)


def compute_report_digest(report: Report, domain: Domain) -> bytes:
    """The digest of `report` alone: the batch of one."""
    return compute_batch_digest_of(report.header, [compute_item_hash(report)], domain)


@lru_cache(maxsize=16)
def _private_key(key: bytes) -> PrivateKey:
    # Deriving the public key is an EC multiplication: do it once per key, not per signature.
    return PrivateKey(key)


def sign_digest(private_key: bytes | str, digest: bytes) -> bytes:
    """A 65-byte (r, s, v) signature of a 32-byte digest, v 27/28 and low s (libsecp256k1
    produces only low-s signatures), as OpenZeppelin's ECDSA requires."""
    if isinstance(private_key, str):
        key = bytes.fromhex(private_key.removeprefix("0x"))
    else:
        key = bytes(private_key)
    sig = _private_key(key).sign_msg_hash(digest)
    r, s, v = int(sig.r), int(sig.s), int(sig.v)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v + 27])


def recover_digest_signer(digest: bytes, signature: bytes) -> str:
    """The checksum address that signed `digest`; ValueError unless the signature is canonical
    (65 bytes, v 27/28, 0 < r < n, 0 < s <= n/2): the contract accepts nothing else, so a member
    answering with a malleable signature would otherwise make every execute revert."""
    if len(signature) != SIGNATURE_LENGTH:
        raise ValueError(f"signature must be {SIGNATURE_LENGTH} bytes, got {len(signature)}")
    if signature[64] not in (27, 28):
        raise ValueError("signature v must be 27 or 28")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N:
        raise ValueError("signature r is out of range")
    if not 0 < s <= SECP256K1_HALF_N:
        raise ValueError("signature s is zero or in the upper half of the curve order (malleable)")
    try:
        vrs = Signature(vrs=(signature[64] - 27, r, s))
        public_key = vrs.recover_public_key_from_msg_hash(digest).to_bytes()
    except BadSignature as exc:
        # eth_keys' BadSignature is no ValueError; callers handle signatures from peers and
        # must see one error type, not crash on another.
        raise ValueError(f"signature is not a valid secp256k1 signature: {exc}") from exc
    return _address_of(public_key)


@lru_cache(maxsize=4096)
def _address_of(public_key: bytes) -> str:
    # A quorum's few members sign over and over: hash each public key once.
    return checksum_address(keccak(public_key)[-20:])


def sign_report(private_key: bytes | str, report: Report, domain: Domain) -> bytes:
    """The signer's EIP-712 signature of `report` as a batch of one (canonical, low s)."""
    return sign_digest(private_key, compute_report_digest(report, domain))


def sign_batch(private_key: bytes | str, batch: Batch, domain: Domain) -> bytes:
    """The signer's EIP-712 signature of `batch` in `domain` (canonical, low s)."""
    return sign_digest(private_key, compute_batch_digest(batch, domain))


def recover_batch_signer(batch: Batch, domain: Domain, signature: bytes) -> str:
    """The address that made `signature` over `batch`; ValueError when malformed or not
    canonical."""
    return recover_digest_signer(compute_batch_digest(batch, domain), signature)


def recover_report_signer(report: Report, domain: Domain, signature: bytes) -> str:
    """The address that made `signature` over `report` as a batch of one; raises ValueError
    when malformed or not canonical."""
    return recover_digest_signer(compute_report_digest(report, domain), signature)


def compute_doom_reason(report: Report, job_round: int | None, head: int) -> str | None:
    """Why an `execute` of `report` that is still unmined at `head` can no longer succeed, or
    None while it still can (or the job is unknown): the job's round moved past the report's
    (another keeper executed it), or the next block is past the report's deadline (the
    contract reverts `ReportExpired` once `block.number > deadline`)."""
    if job_round is not None and job_round > report.round:
        return "round_closed"
    if head >= report.deadline:
        return "deadline_passed"
    return None


def compute_batch_doom_reason(
    batch: Batch, job_rounds: Mapping[int, int | None], head: int
) -> str | None:
    """Why an `execute` of `batch` still unmined at `head` can no longer do anything, or None
    while it still can: every item's round closed (`job_rounds`: each job's round now, None
    for a job the store does not know, which never counts as closed), or the next block is
    past the batch's deadline. While one item can still run, the batch is worth its gas."""
    if all(
        (round_ := job_rounds.get(item.jobId)) is not None and round_ > item.round
        for item in batch.items
    ):
        return "round_closed"
    if head >= batch.header.deadline:
        return "deadline_passed"
    return None
