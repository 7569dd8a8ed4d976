"""The EIP-712 `Report` a quorum signs, its digest, and signature packing for `execute`.

Mirrors TaskManager.sol: domain `name="KeeperTaskManager", version="1"`, chainId and the
TaskManager address. Signing is pure computation over a key; no chain is touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

DOMAIN_NAME = "KeeperTaskManager"
DOMAIN_VERSION = "1"
SIGNATURE_LENGTH = 65
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0

REPORT_TYPES: dict[str, list[dict[str, str]]] = {
    "Report": [
        {"name": "jobId", "type": "uint256"},
        {"name": "round", "type": "uint64"},
        {"name": "epoch", "type": "uint64"},
        {"name": "cursor", "type": "uint256"},
        {"name": "checkBlock", "type": "uint64"},
        {"name": "checkBlockHash", "type": "bytes32"},
        {"name": "payloadHash", "type": "bytes32"},
        {"name": "executor", "type": "address"},
        {"name": "deadline", "type": "uint64"},
    ]
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
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }


@dataclass(frozen=True)
class Report:
    """One proposed execution: what the quorum agrees on and who may submit it until when."""

    jobId: int
    round: int
    epoch: int
    cursor: int
    checkBlock: int
    checkBlockHash: bytes
    payloadHash: bytes
    executor: str
    deadline: int

    def as_message(self) -> dict[str, Any]:
        """The EIP-712 message dict (also the tuple order of the ABI struct)."""
        message = asdict(self)
        message["executor"] = to_checksum_address(self.executor)
        return message

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple `execute` and `slashEquivocation` take."""
        m = self.as_message()
        return tuple(m[f["name"]] for f in REPORT_TYPES["Report"])

    @property
    def equivocation_key(self) -> tuple[int, int, int, bytes]:
        """Two reports with this key but another result are equivocation."""
        return (self.jobId, self.round, self.checkBlock, self.checkBlockHash)

    def same_result(self, other: Report) -> bool:
        return self.cursor == other.cursor and self.payloadHash == other.payloadHash


def compute_payload_hash(payload: bytes) -> bytes:
    return keccak(payload)


def compute_report_digest(report: Report, domain: Domain) -> bytes:
    """The 32-byte EIP-712 digest that `TaskManager.hashReport` returns."""
    signable = encode_typed_data(domain.as_dict(), REPORT_TYPES, report.as_message())
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_report(private_key: bytes | str, report: Report, domain: Domain) -> bytes:
    """A 65-byte (r, s, v) signature with low s, as OpenZeppelin's ECDSA requires."""
    signed = Account.sign_typed_data(
        private_key, domain.as_dict(), REPORT_TYPES, report.as_message()
    )
    return bytes(signed.signature)


def recover_report_signer(report: Report, domain: Domain, signature: bytes) -> str:
    """The address that made `signature` over `report`; raises ValueError when malformed."""
    if len(signature) != SIGNATURE_LENGTH:
        raise ValueError(f"signature must be {SIGNATURE_LENGTH} bytes, got {len(signature)}")
    # The contract accepts only canonical signatures (v 27/28, low s, as OpenZeppelin's ECDSA):
    # a member answering with a malleable one would otherwise make every execute revert.
    if signature[64] not in (27, 28):
        raise ValueError("signature v must be 27 or 28")
    if int.from_bytes(signature[32:64], "big") > SECP256K1_HALF_N:
        raise ValueError("signature s is in the upper half of the curve order (malleable)")
    signable = encode_typed_data(domain.as_dict(), REPORT_TYPES, report.as_message())
    try:
        return str(Account.recover_message(signable, signature=signature))
    except BadSignature as exc:
        # eth_keys' BadSignature (r or s zero or out of range) is no ValueError; callers
        # handle signatures from peers and must see one error type, not crash on another.
        raise ValueError(f"signature is not a valid secp256k1 signature: {exc}") from exc
