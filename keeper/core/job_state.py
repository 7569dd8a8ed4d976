"""Why a job runs or waits, as one node sees it: a state and a reason a person can read.

The rules are pure: the node gathers the facts (the job as its store folds it, the head, the
job's minimum balance, its quorum, what the node last saw of the job's resolver, target and
rounds) and `compute_job_evaluation` names the first thing that keeps the job from running,
or when it runs next. The first matching rule wins, in this order:

    cancelled, paused           the owner's decision
    expired, finished           end time passed, or max executions reached
    underfunded                 balance below one worst-case execution (TaskManager._minBalance)
    no_quorum                   no epoch yet, or the quorum's live stake cannot meet the threshold
    priced_out                  the gas price is above the job's own maximum
    not_mine                    the job is served by a quorum this node is not in
    gas_limit_low               the last execution failed; the target needs more gas than the limit
    target_reverts              the last execution failed; the target call reverts (decoded)
    resolver_reverts            the resolver reverted at the last check (decoded when known)
    then by kind                due / scheduled (Time, Cron), waiting_event /
                                waiting_confirmations (Event), condition_false / due (Condition)

`RUNNABLE` holds the states of a job that runs when its trigger comes; every other state is a
job that cannot run until something changes, and is never shown as plainly "Active".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from eth_abi.abi import decode as abi_decode

from keeper.core.jobs import Job, JobStatus, Trigger
from keeper.core.quorum import Member, is_quorum_signed
from keeper.core.triggers import (
    NextFireTime,
    TriggerKind,
    compute_cron_next_fire,
    compute_time_cursor,
    is_condition_due,
)
from keeper.core.units import format_ether


class JobState(StrEnum):
    DUE = "due"
    SCHEDULED = "scheduled"
    WAITING_EVENT = "waiting_event"
    WAITING_CONFIRMATIONS = "waiting_confirmations"
    CONDITION_FALSE = "condition_false"
    RESOLVER_REVERTS = "resolver_reverts"
    TARGET_REVERTS = "target_reverts"
    GAS_LIMIT_LOW = "gas_limit_low"
    PRICED_OUT = "priced_out"
    UNDERFUNDED = "underfunded"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FINISHED = "finished"
    NO_QUORUM = "no_quorum"
    NOT_MINE = "not_mine"


RUNNABLE = frozenset(
    {
        JobState.DUE,
        JobState.SCHEDULED,
        JobState.WAITING_EVENT,
        JobState.WAITING_CONFIRMATIONS,
        JobState.CONDITION_FALSE,
    }
)


@dataclass(frozen=True)
class ResolverSeen:
    """A resolver's answer at a check block: `can_exec` True/False, or None when it reverted
    or returned something that does not decode (`reason` then says which, once known)."""

    block: int
    can_exec: bool | None
    reason: str = ""


@dataclass(frozen=True)
class TargetProbe:
    """The job's target call simulated from its forwarder after a failed execution: the
    decoded revert at the job's gas limit (None: it succeeds), and the gas it needs without
    that limit (None: it reverts whatever the gas)."""

    block: int
    revert: str | None
    estimate: int | None


@dataclass(frozen=True)
class RoundSeen:
    """The outcome of a round this node led (leader.RoundResult.outcome) at a head."""

    block: int
    round: int
    outcome: str


@dataclass(frozen=True)
class QuorumFacts:
    """The job's quorum now: its index, whether this node is in it, and whether the stake of
    its members still registered can meet the job's threshold."""

    index: int
    mine: bool
    reachable: bool


@dataclass(frozen=True)
class JobFacts:
    """Everything the rules read about one job at one head."""

    job: Job
    head: int
    head_ts: int
    min_balance: int
    quorum: QuorumFacts | None  # None: no epoch (or its quorums) known yet
    gas_price: int | None = None  # None: not read (no job of this node has a price cap)
    pending_log_block: int | None = None  # Event: the oldest matched log not yet executed
    resolver: ResolverSeen | None = None
    target: TargetProbe | None = None  # only while the job's last execution failed
    last_round: RoundSeen | None = None


@dataclass(frozen=True)
class JobEvaluation:
    """A job's state and reason at a head, and when it runs next (a unix time for Time and
    Cron jobs, a block for Condition jobs; None when unknown or never)."""

    job_id: int
    block: int
    state: JobState
    reason: str
    next_run: int | None = None
    next_block: int | None = None

    @property
    def can_run(self) -> bool:
        return self.state in RUNNABLE

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "can_run": self.can_run,
            "evaluated_at_block": self.block,
            "next_run": self.next_run,
            "next_block": self.next_block,
        }


def classify_resolver_result(block: int, raw: bytes | None) -> tuple[ResolverSeen, bytes]:
    """What a resolver's raw answer at `block` says (and the payload when it says "now"):
    the evaluator's reading of the same bytes (None = reverted)."""
    if raw is None:
        return ResolverSeen(block, None), b""
    try:
        can_exec, data = abi_decode(["bool", "bytes"], raw)
    except Exception:  # any undecodable answer: eth_abi raises several types
        return ResolverSeen(block, None, "returned data that is not (bool, bytes)"), b""
    return ResolverSeen(block, bool(can_exec)), bytes(data) if can_exec else b""


def is_quorum_reachable(members: list[Member], live: set[str], threshold_bps: int) -> bool:
    """Whether the members still registered (`live`, lower-case addresses) could sign a round
    of a job with `threshold_bps` if all of them signed."""
    signers = [m for m in members if m.address.lower() in live]
    return is_quorum_signed(
        sum(m.stake for m in signers),
        sum(m.stake for m in members),
        len(signers),
        len(members),
        threshold_bps,
    )


def compute_runway(balance: int, min_balance: int, average_cost: int | None) -> int | None:
    """Executions the balance still pays for at the recent average cost, each needing the
    minimum balance before it runs; None before the first execution."""
    if not average_cost:
        return None
    if balance < min_balance:
        return 0
    return (balance - min_balance) // average_cost + 1


def format_time(ts: int) -> str:
    """A unix time as people read it: `2026-11-30 19:44:35 UTC`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_trigger(trigger: Trigger) -> str:
    """The job's trigger in a few words, for lists and pages."""
    if trigger.kind == TriggerKind.Time:
        return f"every {trigger.interval} s"
    if trigger.kind == TriggerKind.Cron:
        return f"cron {trigger.cron}"
    if trigger.kind == TriggerKind.Event:
        return f"on an event of {trigger.emitter}, {trigger.confirmations} confirmations"
    return f"when {trigger.resolver} says so"


def compute_next_time_slot(start: int, interval: int, last_cursor: int, now_ts: int) -> int:
    """The first slot `start + k*interval` after both the last cursor and `now_ts`."""
    after = max(last_cursor, now_ts)
    if after < start:
        return start
    return start + ((after - start) // interval + 1) * interval


def compute_job_evaluation(facts: JobFacts, cron: NextFireTime | None = None) -> JobEvaluation:
    """The first rule (module docstring) that holds for `facts`; `cron` is the job's schedule
    when it is a Cron job (an injected function, so this module needs no scheduler)."""
    job, head = facts.job, facts.head
    nxt, nxt_block = _next_run(job, facts, cron)

    def out(state: JobState, reason: str) -> JobEvaluation:
        if state not in RUNNABLE:  # a job that cannot run has no next run to show
            return JobEvaluation(job.job_id, head, state, reason)
        return JobEvaluation(job.job_id, head, state, reason, nxt, nxt_block)

    if job.status == JobStatus.Cancelled:
        return out(JobState.CANCELLED, "cancelled by its owner")
    if job.status == JobStatus.Paused:
        failed = _target_failure(job, facts.target)
        why = f" after its last execution failed: {failed[1]}" if failed else ""
        return out(JobState.PAUSED, f"paused{why}; its owner resumes it with `keeper job resume`")
    if job.is_exhausted:
        return out(JobState.FINISHED, f"finished: {job.round} of {job.max_executions} executions")
    if _is_expired(job, facts.head_ts):
        return out(
            JobState.EXPIRED, f"expired: its end time {format_time(job.end_time)} has passed"
        )
    if job.balance < facts.min_balance:
        return out(
            JobState.UNDERFUNDED,
            f"underfunded: has {format_ether(job.balance)}, "
            f"needs {format_ether(facts.min_balance)} for one worst-case execution",
        )
    quorum = facts.quorum
    if quorum is None:
        return out(JobState.NO_QUORUM, "no live quorum: no epoch has formed quorums yet")
    if not quorum.reachable:
        return out(
            JobState.NO_QUORUM,
            f"no live quorum: the registered stake of quorum {quorum.index} cannot reach "
            f"the job's threshold of {job.threshold_bps / 100:g}%",
        )
    if facts.gas_price is not None and job.is_priced_out(facts.gas_price):
        return out(
            JobState.PRICED_OUT,
            f"gas price above the job's cap: {facts.gas_price} wei/gas now, "
            f"the job pays at most {job.max_gas_price}",
        )
    if not quorum.mine:
        return out(
            JobState.NOT_MINE,
            f"not in this node's quorums: quorum {quorum.index} serves it",
        )
    failed = _target_failure(job, facts.target)
    if failed is not None:
        return out(*failed)
    last = facts.last_round
    if last is not None and last.round == job.round and last.outcome == "no_quorum":
        return out(
            JobState.NO_QUORUM,
            f"no live quorum: members' signatures fell short of the threshold at block "
            f"{last.block}",
        )
    return out(*_by_kind(job, facts, nxt, nxt_block))


def _is_expired(job: Job, now_ts: int) -> bool:
    if job.end_time == 0:
        return False
    if job.kind in (TriggerKind.Time, TriggerKind.Cron):
        return job.last_cursor >= job.end_time or (
            now_ts > job.end_time and _no_slot_left(job, now_ts)
        )
    return now_ts > job.end_time


def _no_slot_left(job: Job, now_ts: int) -> bool:
    """A Time job past its end keeps a slot at or before the end until it executes."""
    if job.kind != TriggerKind.Time:
        return False
    t = job.trigger
    return (
        compute_time_cursor(job.start_time, t.interval, now_ts, job.last_cursor, job.end_time)
        is None
    )


def _target_failure(job: Job, probe: TargetProbe | None) -> tuple[JobState, str] | None:
    if probe is None:
        return None
    if probe.revert is None:
        return None
    if probe.estimate is not None and probe.estimate > job.gas_limit:
        return (
            JobState.GAS_LIMIT_LOW,
            f"gas limit below the estimate: the target call needs {probe.estimate} gas, "
            f"the job gives it {job.gas_limit} (simulated at block {probe.block})",
        )
    return (
        JobState.TARGET_REVERTS,
        f"target simulation reverts: {probe.revert} (at block {probe.block}; the last "
        f"execution failed and was charged)",
    )


def _next_run(
    job: Job, facts: JobFacts, cron: NextFireTime | None
) -> tuple[int | None, int | None]:
    t: Trigger = job.trigger
    if job.kind == TriggerKind.Time:
        due = compute_time_cursor(
            job.start_time, t.interval, facts.head_ts, job.last_cursor, job.end_time
        )
        if due is not None:
            return due, None
        slot = compute_next_time_slot(job.start_time, t.interval, job.last_cursor, facts.head_ts)
        return (None if job.end_time and slot > job.end_time else slot), None
    if job.kind == TriggerKind.Cron:
        if cron is None:
            return None, None
        fire = compute_cron_next_fire(cron, job.start_time, job.last_cursor)
        if fire is not None and job.end_time and fire > job.end_time:
            return None, None
        return fire, None
    if job.kind == TriggerKind.Condition:
        return None, max(facts.head, job.last_cursor + max(1, t.min_interval))
    return None, None


def _by_kind(
    job: Job, facts: JobFacts, nxt: int | None, nxt_block: int | None
) -> tuple[JobState, str]:
    head = facts.head
    if job.kind in (TriggerKind.Time, TriggerKind.Cron):
        if nxt is None:
            return JobState.EXPIRED, "expired: its schedule has no run left before its end time"
        if nxt <= facts.head_ts:
            return JobState.DUE, f"due at {format_time(nxt)}: {_round_note(job, facts.last_round)}"
        return JobState.SCHEDULED, f"next run at {format_time(nxt)}"
    if job.kind == TriggerKind.Event:
        log_block = facts.pending_log_block
        if log_block is None:
            return JobState.WAITING_EVENT, "waiting for a matching event"
        ready = log_block + job.trigger.confirmations
        if ready > head:
            return (
                JobState.WAITING_CONFIRMATIONS,
                f"waiting for confirmations: event at block {log_block}, "
                f"runs from block {ready} ({ready - head} to go)",
            )
        return (
            JobState.DUE,
            f"due: event at block {log_block}; {_round_note(job, facts.last_round)}",
        )
    seen = facts.resolver
    if not is_condition_due(head, job.last_cursor, job.trigger.min_interval) and (
        seen is None or seen.block <= job.last_cursor
    ):
        return (
            JobState.CONDITION_FALSE,
            f"executed at block {job.last_cursor}; next check at block {nxt_block}",
        )
    if seen is None:
        return JobState.CONDITION_FALSE, "resolver not checked yet"
    if seen.can_exec is None:
        why = seen.reason or "reason not known yet"
        return JobState.RESOLVER_REVERTS, f"resolver reverts at block {seen.block}: {why}"
    if not seen.can_exec:
        return JobState.CONDITION_FALSE, f"condition false at block {seen.block}"
    return (
        JobState.DUE,
        f"condition true at block {seen.block}; {_round_note(job, facts.last_round)}",
    )


def _round_note(job: Job, last: RoundSeen | None) -> str:
    if last is None or last.round != job.round:
        return "waiting for its leader"
    notes = {
        "waiting": "waiting for this node's turn to lead",
        "deferred": "this node deferred its turn (too many transactions in flight)",
        "submitted": f"execution sent at block {last.block}",
        "closed": "executed by another member",
        "failed": f"this node's attempt failed at block {last.block}",
    }
    return notes.get(last.outcome, last.outcome)
