"""Why a call failed, as a person reads it: revert data named by the errors targets commonly use.

A job's target is the owner's contract, not ours, so its custom errors are not in our
artifacts. Most targets build on OpenZeppelin 5 or follow Chainlink Automation's and Gelato's
conventions; their errors are listed here by signature, so `JobFailed` reasons, simulations and
`keeper decode-error` name them. Pure: signatures in, (name, argument types) out; the ABI
decoding of the arguments happens where the data is (keeper.chain.contracts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eth_utils.crypto import keccak

# Error(string) and Panic(uint256) are Solidity's own; the rest is OpenZeppelin Contracts 5
# (draft-IERC6093's token errors, access, security, utils) and the automation conventions.
COMMON_ERROR_SIGNATURES: tuple[str, ...] = (
    "Error(string)",
    "Panic(uint256)",
    # access
    "OwnableUnauthorizedAccount(address)",
    "OwnableInvalidOwner(address)",
    "AccessControlUnauthorizedAccount(address,bytes32)",
    "AccessControlBadConfirmation()",
    "AccessManagedUnauthorized(address)",
    # security / utils
    "EnforcedPause()",
    "ExpectedPause()",
    "ReentrancyGuardReentrantCall()",
    "AddressEmptyCode(address)",
    "FailedCall()",
    "FailedInnerCall()",
    "InsufficientBalance(uint256,uint256)",
    "SafeERC20FailedOperation(address)",
    "SafeERC20FailedDecreaseAllowance(address,uint256,uint256)",
    "ECDSAInvalidSignature()",
    "ECDSAInvalidSignatureLength(uint256)",
    "ECDSAInvalidSignatureS(bytes32)",
    "InvalidInitialization()",
    "NotInitializing()",
    "MathOverflowedMulDiv()",
    "SafeCastOverflowedUintDowncast(uint8,uint256)",
    # tokens (IERC6093)
    "ERC20InsufficientBalance(address,uint256,uint256)",
    "ERC20InvalidSender(address)",
    "ERC20InvalidReceiver(address)",
    "ERC20InsufficientAllowance(address,uint256,uint256)",
    "ERC20InvalidApprover(address)",
    "ERC20InvalidSpender(address)",
    "ERC721InvalidOwner(address)",
    "ERC721NonexistentToken(uint256)",
    "ERC721IncorrectOwner(address,uint256,address)",
    "ERC721InvalidSender(address)",
    "ERC721InvalidReceiver(address)",
    "ERC721InsufficientApproval(address,uint256)",
    "ERC1155InsufficientBalance(address,uint256,uint256,uint256)",
    "ERC1155MissingApprovalForAll(address,address)",
    # automation conventions: a target locked to its caller
    "OnlyForwarder()",
    "OnlyDedicatedMsgSender()",
    "UpkeepNotNeeded()",
)

# Solidity's panic codes (docs: "Panic via assert and Error via require").
PANIC_REASONS: dict[int, str] = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "corrupt storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}

# The 63/64 rule: a call that used all but a 64th of its gas limit ran out of gas.
OUT_OF_GAS_SHARE = 63 / 64


def parse_error_signature(signature: str) -> tuple[str, list[str]]:
    """`Name(t1,t2)` -> ("Name", ["t1", "t2"]). Flat types only (what errors use)."""
    name, _, rest = signature.partition("(")
    if not name or not rest.endswith(")"):
        raise ValueError(f"not an error signature: {signature!r}")
    inner = rest[:-1]
    return name, [t for t in inner.split(",") if t]


def compute_error_selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def compute_error_table(signatures: Iterable[str]) -> dict[bytes, tuple[str, list[str]]]:
    """selector -> (name, argument types) for each signature."""
    return {compute_error_selector(s): parse_error_signature(s) for s in signatures}


def describe_error(name: str, args: Sequence[Any]) -> str:
    """One line for a decoded revert: `Refused(7)`, `Error: not ready`, `Panic: ... (0x11)`."""
    if name == "Error" and len(args) == 1:
        return f"Error: {args[0]}"
    if name == "Panic" and len(args) == 1 and isinstance(args[0], int):
        code = args[0]
        return f"Panic: {PANIC_REASONS.get(code, 'unknown panic code')} (0x{code:02x})"
    shown = ", ".join(_show(a) for a in args)
    return f"{name}({shown})"


def describe_failure(
    reason: bytes, decoded: tuple[str, Sequence[Any]] | None, gas_used: int, gas_limit: int
) -> str:
    """Why an execution's target call failed, from `JobFailed.reason` (`decoded` is its
    decoding, None when no known error matches) and the gas it used."""
    if reason:
        if decoded is None:
            return f"reverted with unknown error 0x{reason[:4].hex()} ({len(reason)} bytes)"
        return describe_error(*decoded)
    if gas_limit and gas_used >= gas_limit * OUT_OF_GAS_SHARE:
        return f"out of gas (used {gas_used:,} of the job's gas limit {gas_limit:,})"
    return "reverted without data (no function with that selector, or a bare revert)"


def _show(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)
