"""The EIP-712 Batch (a report is its batch of one): digest, signing, recovery, and what
counts as equivocation."""

from __future__ import annotations

from dataclasses import fields, replace
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
    BATCH_TYPES,
    MAX_BATCH_ITEMS,
    Batch,
    BatchHeader,
    Domain,
    Report,
    compute_batch_digest,
    compute_batch_digest_of,
    compute_item_hash,
    compute_payload_hash,
    compute_report_digest,
    recover_batch_signer,
    recover_report_signer,
    sign_batch,
    sign_report,
)
from keeper.store.records import report_from_dict

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
    quorum=st.integers(0, 2**16 - 1),
)


def batch_message(batch: Batch) -> dict[str, Any]:
    """The batch in eth_account's typed-data message form."""
    header = batch.header
    return {
        "epoch": header.epoch,
        "quorum": header.quorum,
        "checkBlock": header.checkBlock,
        "checkBlockHash": header.checkBlockHash,
        "executor": header.executor,
        "deadline": header.deadline,
        "items": [
            {"jobId": r.jobId, "round": r.round, "cursor": r.cursor, "payloadHash": r.payloadHash}
            for r in batch.items
        ],
    }


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


def manual_digest(batch: Batch, domain: Domain) -> bytes:
    """EIP-712 from its definition (array of structs: keccak of the items' struct hashes),
    without eth_account's typed-data encoder."""
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
    item_type = "Item(uint256 jobId,uint64 round,uint256 cursor,bytes32 payloadHash)"
    batch_type = keccak(
        text="Batch(uint64 epoch,uint16 quorum,uint64 checkBlock,bytes32 checkBlockHash,"
        "address executor,uint64 deadline,Item[] items)" + item_type
    )
    items = b"".join(
        keccak(
            abi_encode(
                ["bytes32", "uint256", "uint64", "uint256", "bytes32"],
                [keccak(text=item_type), *r.item_tuple()],
            )
        )
        for r in batch.items
    )
    struct = keccak(
        abi_encode(
            ["bytes32", "uint64", "uint16", "uint64", "bytes32", "address", "uint64", "bytes32"],
            [batch_type, *batch.header.as_tuple(), keccak(items)],
        )
    )
    return keccak(b"\x19\x01" + separator + struct)


def same_header(report: Report, header: BatchHeader) -> Report:
    return replace(
        report,
        epoch=header.epoch,
        quorum=header.quorum,
        checkBlock=header.checkBlock,
        checkBlockHash=header.checkBlockHash,
        executor=header.executor,
        deadline=header.deadline,
    )


batches = st.lists(reports, min_size=1, max_size=5).map(
    lambda rs: Batch.of([same_header(r, rs[0].header) for r in rs])
)


@settings(max_examples=50, deadline=None)
@given(batch=batches)
def test_digest_matches_the_eip712_definition(batch: Batch) -> None:
    assert compute_batch_digest(batch, DOMAIN) == manual_digest(batch, DOMAIN)
    hashes = [compute_item_hash(r) for r in batch.items]
    assert compute_batch_digest_of(batch.header, hashes, DOMAIN) == manual_digest(batch, DOMAIN)


@settings(max_examples=50, deadline=None)
@given(report=reports)
def test_a_report_alone_is_its_batch_of_one(report: Report) -> None:
    assert compute_report_digest(report, DOMAIN) == manual_digest(Batch.of([report]), DOMAIN)


@settings(max_examples=50, deadline=None)
@given(report=reports)
def test_the_message_form_carries_every_field_and_reads_back_the_same(report: Report) -> None:
    message = report.as_message()
    assert set(message) == {f.name for f in fields(Report)}
    assert message["executor"] == to_checksum_address(report.executor)
    assert report_from_dict(message) == replace(report, executor=message["executor"])


@settings(max_examples=30, deadline=None)
@given(batch=batches, key_index=st.integers(0, len(KEYS) - 1))
def test_digest_and_signature_match_eth_accounts_typed_data(batch: Batch, key_index: int) -> None:
    # The node hashes and signs batches with its own code for speed: eth_account's generic
    # EIP-712 encoder is the reference it must agree with, byte for byte.
    message = batch_message(batch)
    signable = encode_typed_data(DOMAIN.as_dict(), BATCH_TYPES, message)
    reference = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert compute_batch_digest(batch, DOMAIN) == reference
    signed = Account.sign_typed_data(KEYS[key_index], DOMAIN.as_dict(), BATCH_TYPES, message)
    assert sign_batch(KEYS[key_index], batch, DOMAIN) == bytes(signed.signature)
    assert recover_batch_signer(batch, DOMAIN, bytes(signed.signature)) == (
        Account.from_key(KEYS[key_index]).address
    )


def test_a_batch_shares_one_header_and_holds_one_to_the_limit_of_items() -> None:
    one = a_report()
    with pytest.raises(ValueError):
        Batch.of([])
    with pytest.raises(ValueError):
        Batch.of([one] * (MAX_BATCH_ITEMS + 1))
    with pytest.raises(ValueError):
        Batch.of([one, a_report(jobId=8, deadline=141)])
    batch = Batch.of([one, a_report(jobId=8), a_report(jobId=9)])
    # a subset keeps the batch's order, whatever order its indices come in
    assert batch.subset([2, 0]).items == (one, a_report(jobId=9))
    # and a signature over one item set is not one over another
    signature = sign_batch(KEYS[0], batch, DOMAIN)
    signer = Account.from_key(KEYS[0]).address
    assert recover_batch_signer(batch, DOMAIN, signature) == signer
    assert recover_batch_signer(batch.subset([0, 1]), DOMAIN, signature) != signer


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


def test_header_and_item_tuples_are_the_solidity_field_order() -> None:
    report = a_report(quorum=3)
    assert report.header.as_tuple() == (
        2,
        3,
        120,
        keccak(b"block 120"),
        to_checksum_address("0x" + "cd" * 20),
        140,
    )
    assert report.item_tuple() == (7, 3, 1_700_000_060, keccak(b"payload"))
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
