"""Evidence of equivocation: two results signed by one keeper for one round key are proof."""

from __future__ import annotations

from dataclasses import replace

from keeper.core.equivocation import EvidenceBook, SignedBy, is_conflicting
from keeper.core.report import Batch, Report, compute_item_hash

LEADER = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20


def report(**kw: object) -> Report:
    base = Report(
        jobId=7,
        round=3,
        epoch=2,
        cursor=1_800_000_060,
        checkBlock=100,
        checkBlockHash=b"\x11" * 32,
        payloadHash=b"\x22" * 32,
        executor=LEADER,
        deadline=140,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_different_cursor_or_payload_under_one_key_is_proof() -> None:
    book = EvidenceBook()
    assert book.observe(report(), LEADER, b"first") is None
    proof = book.observe(report(cursor=1_800_000_120), LEADER, b"second")
    assert proof is not None
    assert (proof.signer, proof.first.signature, proof.second.signature) == (
        LEADER,
        b"first",
        b"second",
    )
    assert proof.first.report.cursor != proof.second.report.cursor
    assert book.observe(report(payloadHash=b"\x33" * 32), LEADER, b"third") is not None


def test_the_same_result_again_or_another_key_or_signer_is_no_proof() -> None:
    book = EvidenceBook()
    book.observe(report(), LEADER, b"a")
    # a retry of the same result (a new deadline or executor changes nothing the contract keys on)
    assert book.observe(report(deadline=150), LEADER, b"b") is None
    # another round, check block or block hash is another key: a reorg may change the result
    assert book.observe(report(round=4, cursor=1), LEADER, b"c") is None
    assert book.observe(report(checkBlock=101, cursor=1), LEADER, b"d") is None
    assert book.observe(report(checkBlockHash=b"\x12" * 32, cursor=1), LEADER, b"e") is None
    # another signer's different result proves nothing against the first
    assert book.observe(report(cursor=1), OTHER, b"f") is None
    assert is_conflicting(report(), report(cursor=1))
    assert not is_conflicting(report(), report(round=4, cursor=1))


def test_the_book_forgets_its_oldest_entries_beyond_its_capacity() -> None:
    book = EvidenceBook(capacity=2)
    book.observe(report(jobId=1), LEADER, b"1")
    book.observe(report(jobId=2), LEADER, b"2")
    book.observe(report(jobId=3), LEADER, b"3")
    assert len(book) == 2
    # job 1's entry is gone: a conflicting report for it is remembered, not proof
    assert book.observe(report(jobId=1, cursor=1), LEADER, b"x") is None
    assert book.observe(report(jobId=3, cursor=1), LEADER, b"y") is not None


def test_items_of_two_batches_signed_by_one_leader_prove_with_their_batches_hashes() -> None:
    # given two batches one leader signed at one check block, sharing job 7's round 3
    first = Batch.of([report(jobId=5), report()])
    second = Batch.of([report(cursor=1), report(jobId=9), report(jobId=11)])
    book = EvidenceBook()
    assert book.observe_batch(first, LEADER, b"first") == []

    # when the second gives job 7 another cursor
    (proof,) = book.observe_batch(second, LEADER, b"second")

    # then each half is its batch's item hashes, the item's index there and that signature
    assert proof.first == SignedBy(report(), b"first", tuple(first.item_hashes()), 1)
    assert proof.second == SignedBy(report(cursor=1), b"second", tuple(second.item_hashes()), 0)
    assert proof.second.hashes[proof.second.index] == compute_item_hash(report(cursor=1))
    # and a subset of the first batch (same results) is no conflict
    assert book.observe_batch(first.subset([1]), LEADER, b"subset") == []


def test_a_batchs_hashes_given_by_the_caller_prove_as_the_ones_computed_here() -> None:
    first = Batch.of([report(jobId=5), report()])
    second = Batch.of([report(cursor=1), report(jobId=9)])
    computed, given = EvidenceBook(), EvidenceBook()
    computed.observe_batch(first, LEADER, b"first")
    given.observe_batch(first, LEADER, b"first", first.item_hashes())
    assert given.observe_batch(second, LEADER, b"second", second.item_hashes()) == (
        computed.observe_batch(second, LEADER, b"second")
    )
