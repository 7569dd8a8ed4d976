"""A failed call is named as a person reads it, by the errors targets commonly use."""

from __future__ import annotations

from eth_abi.abi import encode as abi_encode

from keeper.chain.contracts import decode_revert_data
from keeper.core.revert_reasons import (
    COMMON_ERROR_SIGNATURES,
    compute_error_selector,
    describe_error,
    describe_failure,
    parse_error_signature,
)

OWNER = "0x" + "ab" * 20


def test_selectors_are_the_ones_solidity_emits() -> None:
    # well-known selectors, as wallets and block explorers print them
    assert compute_error_selector("Error(string)").hex() == "08c379a0"
    assert compute_error_selector("Panic(uint256)").hex() == "4e487b71"
    assert compute_error_selector("OwnableUnauthorizedAccount(address)").hex() == "118cdaa7"
    assert compute_error_selector("EnforcedPause()").hex() == "d93c0665"


def test_every_common_signature_parses_and_no_two_collide() -> None:
    selectors = {compute_error_selector(s) for s in COMMON_ERROR_SIGNATURES}
    assert len(selectors) == len(COMMON_ERROR_SIGNATURES)
    assert parse_error_signature("ERC20InsufficientBalance(address,uint256,uint256)") == (
        "ERC20InsufficientBalance",
        ["address", "uint256", "uint256"],
    )
    assert parse_error_signature("EnforcedPause()") == ("EnforcedPause", [])


def test_a_targets_openzeppelin_error_is_named_with_its_arguments() -> None:
    # given the revert data of an OpenZeppelin 5 token that lacks the balance
    data = compute_error_selector("ERC20InsufficientBalance(address,uint256,uint256)")
    data += abi_encode(["address", "uint256", "uint256"], [OWNER, 5, 10])
    revert = decode_revert_data(data)
    # then it is named with its arguments, not shown as a bare selector
    assert revert.error_name == "ERC20InsufficientBalance"
    assert describe_error(revert.error_name, revert.args) == (
        f"ERC20InsufficientBalance({OWNER}, 5, 10)"
    )


def test_require_messages_and_panics_read_as_sentences() -> None:
    assert describe_error("Error", ("not ready",)) == "Error: not ready"
    assert describe_error("Panic", (0x11,)) == "Panic: arithmetic overflow or underflow (0x11)"
    assert describe_error("Panic", (0x99,)) == "Panic: unknown panic code (0x99)"


def test_an_empty_reason_is_told_apart_by_the_gas_it_used() -> None:
    # a call that used (almost) its whole gas limit ran out of gas
    assert describe_failure(b"", None, 199_000, 200_000).startswith("out of gas (used 199,000")
    # one that stopped early reverted without data (a missing function, a bare revert)
    assert describe_failure(b"", None, 3_000, 200_000).startswith("reverted without data")
    # revert data no table knows is shown by its selector
    assert describe_failure(b"\x12\x34\x56\x78", None, 3_000, 200_000) == (
        "reverted with unknown error 0x12345678 (4 bytes)"
    )
    assert describe_failure(b"\x01" * 36, ("Refused", (7,)), 3_000, 200_000) == "Refused(7)"
