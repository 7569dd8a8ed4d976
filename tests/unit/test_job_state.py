"""The reason rules: the first thing that keeps a job from running is what a person reads."""

from __future__ import annotations

from dataclasses import replace

from eth_abi import encode as abi_encode
from hypothesis import given
from hypothesis import strategies as st

from keeper.core.job_state import (
    RUNNABLE,
    JobFacts,
    JobState,
    QuorumFacts,
    ResolverSeen,
    RoundSeen,
    TargetProbe,
    classify_resolver_result,
    compute_job_evaluation,
    compute_next_time_slot,
    compute_runway,
    is_quorum_reachable,
)
from keeper.core.jobs import Job, JobStatus, Trigger
from keeper.core.quorum import Member
from keeper.core.triggers import TriggerKind

A, B, C = ("0x" + c * 40 for c in "abc")
MINE = QuorumFacts(index=0, mine=True, reachable=True)


def time_job(**kw: object) -> Job:
    job = Job(
        job_id=7,
        owner=A,
        target=B,
        call_data=b"\x01\x02\x03\x04",
        trigger=Trigger(kind=TriggerKind.Time, interval=60),
        gas_limit=100_000,
        threshold_bps=6667,
        start_time=1_000,
        end_time=0,
        max_executions=0,
        created_block=1,
        balance=10**18,
    )
    return replace(job, **kw)  # type: ignore[arg-type]


def facts(job: Job, **kw: object) -> JobFacts:
    base = JobFacts(job=job, head=50, head_ts=1_090, min_balance=10**16, quorum=MINE)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_due_time_job_says_since_when_and_a_later_one_when_next() -> None:
    due = compute_job_evaluation(facts(time_job()))
    assert (due.state, due.next_run) == (JobState.DUE, 1_060)
    later = compute_job_evaluation(facts(time_job(last_cursor=1_060)))
    assert (later.state, later.reason) == (
        JobState.SCHEDULED,
        "next run at 1970-01-01 00:18:40 UTC",
    )
    assert later.next_run == 1_120


def test_the_owner_decision_comes_before_money_and_money_before_the_quorum() -> None:
    poor = time_job(balance=5, status=JobStatus.Paused)
    assert compute_job_evaluation(facts(poor, quorum=None)).state == JobState.PAUSED
    poor = replace(poor, status=JobStatus.Active)
    underfunded = compute_job_evaluation(facts(poor, quorum=None))
    assert underfunded.state == JobState.UNDERFUNDED
    assert underfunded.reason.startswith("underfunded: has 0.000000000000000005 ether, needs 0.01")
    assert compute_job_evaluation(facts(time_job(), quorum=None)).state == JobState.NO_QUORUM


def test_a_priced_out_job_and_a_job_of_another_quorum() -> None:
    capped = time_job(max_gas_price=10)
    assert compute_job_evaluation(facts(capped, gas_price=11)).state == JobState.PRICED_OUT
    assert compute_job_evaluation(facts(capped, gas_price=10)).state == JobState.DUE
    other = QuorumFacts(index=2, mine=False, reachable=True)
    view = compute_job_evaluation(facts(time_job(), quorum=other))
    assert (view.state, view.reason) == (
        JobState.NOT_MINE,
        "not in this node's quorums: quorum 2 serves it",
    )


def test_a_failed_execution_is_explained_by_its_simulation() -> None:
    job = time_job()
    low = TargetProbe(block=40, revert="out of gas", estimate=150_000)
    assert compute_job_evaluation(facts(job, target=low)).state == JobState.GAS_LIMIT_LOW
    reverts = TargetProbe(block=40, revert="NoWork()", estimate=None)
    view = compute_job_evaluation(facts(job, target=reverts))
    assert view.state == JobState.TARGET_REVERTS
    assert "NoWork()" in view.reason
    passes = TargetProbe(block=40, revert=None, estimate=None)
    assert compute_job_evaluation(facts(job, target=passes)).state == JobState.DUE


def test_condition_jobs_name_their_resolver_answer() -> None:
    job = time_job(trigger=Trigger(kind=TriggerKind.Condition, resolver=C, min_interval=1))
    false = compute_job_evaluation(facts(job, resolver=ResolverSeen(50, False)))
    assert (false.state, false.reason) == (JobState.CONDITION_FALSE, "condition false at block 50")
    reverts = compute_job_evaluation(facts(job, resolver=ResolverSeen(50, None, "Oops()")))
    assert (reverts.state, reverts.reason) == (
        JobState.RESOLVER_REVERTS,
        "resolver reverts at block 50: Oops()",
    )


def test_an_event_job_waits_for_its_confirmations() -> None:
    job = time_job(trigger=Trigger(kind=TriggerKind.Event, emitter=C, confirmations=5))
    assert compute_job_evaluation(facts(job)).state == JobState.WAITING_EVENT
    waiting = compute_job_evaluation(facts(job, pending_log_block=48))
    assert waiting.state == JobState.WAITING_CONFIRMATIONS
    assert "runs from block 53 (3 to go)" in waiting.reason
    assert compute_job_evaluation(facts(job, pending_log_block=45)).state == JobState.DUE


def test_a_round_short_of_signatures_is_no_live_quorum() -> None:
    job = time_job()
    short = RoundSeen(block=49, round=0, outcome="no_quorum")
    assert compute_job_evaluation(facts(job, last_round=short)).state == JobState.NO_QUORUM
    old = replace(short, round=1)
    assert compute_job_evaluation(facts(job, last_round=old)).state == JobState.DUE


def test_finished_and_expired_jobs_cannot_run() -> None:
    done = compute_job_evaluation(facts(time_job(max_executions=2, round=2)))
    assert (done.state, done.can_run, done.next_run) == (JobState.FINISHED, False, None)
    ended = time_job(end_time=1_050, last_cursor=1_000)
    assert compute_job_evaluation(facts(ended, head_ts=1_200)).state == JobState.EXPIRED


def test_only_the_waiting_states_are_runnable() -> None:
    assert {JobState.DUE, JobState.SCHEDULED} <= RUNNABLE
    assert not {JobState.UNDERFUNDED, JobState.PAUSED, JobState.TARGET_REVERTS} & RUNNABLE


def test_resolver_answers_are_read_like_the_evaluator_reads_them() -> None:
    assert classify_resolver_result(3, None) == (ResolverSeen(3, None), b"")
    yes = abi_encode(["bool", "bytes"], [True, b"\x09"])
    assert classify_resolver_result(3, yes) == (ResolverSeen(3, True), b"\x09")
    seen, _ = classify_resolver_result(3, b"\x01")
    assert seen.can_exec is None and "not (bool, bytes)" in seen.reason


def test_reachable_quorum_and_runway() -> None:
    members = [Member(A, 1), Member(B, 1), Member(C, 2)]
    assert is_quorum_reachable(members, {A.lower(), C.lower()}, 6667)
    assert not is_quorum_reachable(members, {A.lower(), B.lower()}, 6667)
    assert compute_runway(10, 4, None) is None
    assert compute_runway(3, 4, 1) == 0
    assert compute_runway(10, 4, 2) == 4


@given(
    start=st.integers(0, 10**9),
    interval=st.integers(1, 10**6),
    last=st.integers(0, 10**9),
    now=st.integers(0, 10**9),
)
def test_the_next_slot_is_on_the_grid_and_after_both(
    start: int, interval: int, last: int, now: int
) -> None:
    slot = compute_next_time_slot(start, interval, last, now)
    assert slot >= start and (slot - start) % interval == 0
    assert slot > max(last, now) or slot == start > max(last, now)
    assert slot - interval <= max(last, now) or slot == start
