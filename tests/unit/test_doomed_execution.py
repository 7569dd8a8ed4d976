"""The rule that decides an unmined `execute` can no longer succeed (so its nonce is freed by a
cheap self-send instead of paying for a revert)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from keeper.core.report import Batch, Report, compute_batch_doom_reason, compute_doom_reason


def report(round_: int = 4, deadline: int = 140) -> Report:
    return Report(
        jobId=7,
        round=round_,
        epoch=1,
        cursor=60,
        checkBlock=100,
        checkBlockHash=b"\x01" * 32,
        payloadHash=b"\x02" * 32,
        executor="0x" + "33" * 20,
        deadline=deadline,
    )


def test_an_open_round_before_its_deadline_can_still_succeed() -> None:
    assert compute_doom_reason(report(), job_round=4, head=139) is None


def test_a_round_another_keeper_executed_is_doomed() -> None:
    assert compute_doom_reason(report(), job_round=5, head=120) == "round_closed"


def test_a_report_whose_deadline_is_the_head_is_doomed() -> None:
    # the next block is past the deadline: the contract reverts ReportExpired
    assert compute_doom_reason(report(deadline=140), job_round=4, head=140) == "deadline_passed"


def test_an_unknown_job_is_judged_by_its_deadline_only() -> None:
    assert compute_doom_reason(report(), job_round=None, head=120) is None
    assert compute_doom_reason(report(), job_round=None, head=141) == "deadline_passed"


@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 500), st.integers(0, 500))
def test_doomed_stays_doomed_as_the_chain_moves_on(
    round_: int, job_round: int, deadline: int, head: int
) -> None:
    if job_round < round_:
        return  # the store cannot be behind the round this node signed for
    r = report(round_, deadline)
    if compute_doom_reason(r, job_round, head) is not None:
        assert compute_doom_reason(r, job_round + 1, head + 1) is not None
    assert (compute_doom_reason(r, job_round, head) is None) == (
        job_round == round_ and head < deadline
    )


def batch(*items: tuple[int, int], deadline: int = 140) -> Batch:
    return Batch.of([replace(report(r, deadline), jobId=job) for job, r in items])


def test_a_batch_is_doomed_only_once_every_items_round_closed() -> None:
    # given a batch of job 7 round 4 and job 8 round 2
    b = batch((7, 4), (8, 2))
    # when only job 7's round closed, job 8's item can still run: the batch is worth its gas
    assert compute_batch_doom_reason(b, {7: 5, 8: 2}, head=120) is None
    # then once job 8's round closed too, nothing in it can run
    assert compute_batch_doom_reason(b, {7: 5, 8: 3}, head=120) == "round_closed"
    # and an unknown job never counts as closed
    assert compute_batch_doom_reason(b, {7: 5}, head=120) is None


def test_two_rounds_of_one_job_in_a_batch_are_closed_only_past_the_later_one() -> None:
    b = batch((7, 4), (7, 5))
    assert compute_batch_doom_reason(b, {7: 5}, head=120) is None
    assert compute_batch_doom_reason(b, {7: 6}, head=120) == "round_closed"


def test_a_batch_whose_deadline_is_the_head_is_doomed() -> None:
    b = batch((7, 4), (8, 2), deadline=140)
    assert compute_batch_doom_reason(b, {7: 4, 8: 2}, head=139) is None
    assert compute_batch_doom_reason(b, {7: 4, 8: 2}, head=140) == "deadline_passed"
