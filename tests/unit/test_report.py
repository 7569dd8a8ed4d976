"""The EIP-712 Report: digest, signing, recovery, and what counts as equivocation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.core.report import (
    REPORT_TYPES,
    Domain,
    Report,
    compute_payload_hash,
    compute_report_digest,
    recover_report_signer,
    sign_report,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
KEYS = [bytes([i]) * 32 for i in range(1, 6)]
DOMAIN = Domain(chain_id=131277322940537, verifying_contract="0x" + "ab" * 20)

uint64 = st.integers(0, 2**64 - 1)
uint256 = st.integers(0, 2**256 - 1)
word = st.binary(min_size=32, max_size=32)
address = st.integers(0, 2**160 - 1).map(lambda n: to_checksum_address(n.to_bytes(20, "big")))
reports = st.builds(
    Report,
    jobId=uint256,
    round=uint64,
    epoch=uint64,
    cursor=uint256,
    checkBlock=uint64,
    checkBlockHash=word,
    payloadHash=word,
    executor=address,
    deadline=uint64,
)


def a_report(**kw: Any) -> Report:
    base = Report(
        jobId=7,
        round=3,
        epoch=2,
        cursor=1_700_000_060,
        checkBlock=120,
        checkBlockHash=keccak(b"block 120"),
        payloadHash=keccak(b"payload"),
        executor="0x" + "cd" * 20,
        deadline=140,
    )
    return replace(base, **kw)


def manual_digest(report: Report, domain: Domain) -> bytes:
    """EIP-712 from its definition, without eth_account's typed-data encoder."""
    domain_type = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    separator = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                domain_type,
                keccak(text="KeeperTaskManager"),
                keccak(text="1"),
                domain.chain_id,
                domain.verifying_contract,
            ],
        )
    )
    report_type = keccak(
        text="Report(uint256 jobId,uint64 round,uint64 epoch,uint256 cursor,uint64 checkBlock,"
        "bytes32 checkBlockHash,bytes32 payloadHash,address executor,uint64 deadline)"
    )
    struct = keccak(
        abi_encode(
            [
                "bytes32",
                "uint256",
                "uint64",
                "uint64",
                "uint256",
                "uint64",
                "bytes32",
                "bytes32",
                "address",
                "uint64",
            ],
            [report_type, *report.as_tuple()],
        )
    )
    return keccak(b"\x19\x01" + separator + struct)


@settings(max_examples=50, deadline=None)
@given(report=reports)
def test_digest_matches_the_eip712_definition(report: Report) -> None:
    assert compute_report_digest(report, DOMAIN) == manual_digest(report, DOMAIN)


@settings(max_examples=50, deadline=None)
@given(report=reports, key_index=st.integers(0, len(KEYS) - 1))
def test_digest_and_signature_match_eth_accounts_typed_data(report: Report, key_index: int) -> None:
    # The node hashes and signs reports with its own code for speed: eth_account's generic
    # EIP-712 encoder is the reference it must agree with, byte for byte.
    signable = encode_typed_data(DOMAIN.as_dict(), REPORT_TYPES, report.as_message())
    reference = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert compute_report_digest(report, DOMAIN) == reference
    signed = Account.sign_typed_data(
        KEYS[key_index], DOMAIN.as_dict(), REPORT_TYPES, report.as_message()
    )
    assert sign_report(KEYS[key_index], report, DOMAIN) == bytes(signed.signature)


@pytest.mark.parametrize(
    "field, value",
    [("round", 2**64), ("jobId", -1), ("checkBlockHash", b"\x01" * 31), ("executor", "0x1234")],
)
def test_digest_refuses_values_outside_their_solidity_types(field: str, value: Any) -> None:
    with pytest.raises(ValueError):
        compute_report_digest(a_report(**{field: value}), DOMAIN)


@settings(max_examples=50, deadline=None)
@given(report=reports, key_index=st.integers(0, len(KEYS) - 1))
def test_signer_is_recovered_and_signature_has_low_s(report: Report, key_index: int) -> None:
    # given a keeper's signature over a report
    key = KEYS[key_index]
    signature = sign_report(key, report, DOMAIN)
    # then it is 65 bytes, r || s || v with low s (OpenZeppelin rejects high s)
    assert len(signature) == 65
    s = int.from_bytes(signature[32:64], "big")
    assert 0 < s <= SECP256K1_N // 2
    assert signature[64] in (27, 28)
    # and the report's signer is recovered from it
    assert recover_report_signer(report, DOMAIN, signature) == Account.from_key(key).address


def test_signature_is_bound_to_the_report_and_the_domain() -> None:
    # given a signature over one report in one domain
    key = KEYS[0]
    signer = Account.from_key(key).address
    report = a_report()
    signature = sign_report(key, report, DOMAIN)
    # when any field or the domain changes, then another address is recovered
    for changed in (
        a_report(cursor=report.cursor + 60),
        a_report(round=4),
        a_report(epoch=3),
        a_report(executor="0x" + "ce" * 20),
        a_report(deadline=141),
    ):
        assert recover_report_signer(changed, DOMAIN, signature) != signer
    other_chain = Domain(chain_id=1, verifying_contract=DOMAIN.verifying_contract)
    other_tm = Domain(chain_id=DOMAIN.chain_id, verifying_contract="0x" + "ac" * 20)
    assert recover_report_signer(report, other_chain, signature) != signer
    assert recover_report_signer(report, other_tm, signature) != signer


@pytest.mark.parametrize("length", [0, 64, 66])
def test_recover_rejects_a_signature_of_the_wrong_length(length: int) -> None:
    with pytest.raises(ValueError):
        recover_report_signer(a_report(), DOMAIN, b"\x01" * length)


def test_as_tuple_is_the_solidity_field_order() -> None:
    report = a_report()
    assert report.as_tuple() == (
        7,
        3,
        2,
        1_700_000_060,
        120,
        keccak(b"block 120"),
        keccak(b"payload"),
        to_checksum_address("0x" + "cd" * 20),
        140,
    )
    assert compute_payload_hash(b"payload") == keccak(b"payload")


def test_equivocation_key_is_job_round_and_check_block() -> None:
    report = a_report()
    assert report.equivocation_key == (7, 3, 120, keccak(b"block 120"))
    # an honest view change (another executor, deadline or epoch) keeps key and result
    view_change = a_report(executor="0x" + "ee" * 20, deadline=200, epoch=3)
    assert view_change.equivocation_key == report.equivocation_key
    assert view_change.same_result(report)
    # a different cursor or payload under the same key is equivocation
    for conflicting in (a_report(cursor=1_700_000_120), a_report(payloadHash=keccak(b"other"))):
        assert conflicting.equivocation_key == report.equivocation_key
        assert not conflicting.same_result(report)
    # a reorg (another block hash at the same height) is a different key
    assert a_report(checkBlockHash=keccak(b"reorg")).equivocation_key != report.equivocation_key


def test_recover_rejects_signatures_the_contract_would_reject() -> None:
    # given a valid signature and its malleable twin (s -> n - s, v flipped)
    from eth_account import Account

    from keeper.core.report import Domain, Report, recover_report_signer, sign_report

    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    account = Account.create()
    domain = Domain(1, "0x" + "11" * 20)
    report = Report(1, 0, 1, 60, 10, b"\x01" * 32, b"\x02" * 32, account.address, 50)
    sig = sign_report(account.key, report, domain)
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    # then the canonical one recovers, the malleable one and v=0/1 are refused
    assert recover_report_signer(report, domain, sig) == account.address
    for bad in (twin, sig[:64] + bytes([sig[64] - 27])):
        try:
            recover_report_signer(report, domain, bad)
        except ValueError:
            continue
        raise AssertionError("a non-canonical signature was accepted")
