"""Why each job runs or waits, as this node sees it, for the admin listener and its dashboard.

`JobBook` records, in memory, what the node learns of a job in passing (its resolver's last
answer, the last round it led); it costs a dict write per observation and holds at most
`MAX_JOBS` jobs. `JobViews` assembles the rest when someone asks: the job as the store folds
it, the head, the quorum, the minimum balance, and two read-only simulations that explain a
failure (the target call of a job whose last execution failed, a resolver that reverts), each
kept until the job moves on so asking again costs nothing. The rules themselves are pure, in
keeper.core.job_state.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from eth_abi.abi import encode as abi_encode
from web3 import AsyncWeb3

from keeper.chain.probe import probe_call, probe_estimate, probe_resolver
from keeper.chain.sender import TxSender
from keeper.core.job_state import (
    JobEvaluation,
    JobFacts,
    QuorumFacts,
    ResolverSeen,
    RoundSeen,
    TargetProbe,
    classify_resolver_result,
    compute_job_evaluation,
    compute_runway,
    describe_trigger,
    is_quorum_reachable,
)
from keeper.core.jobs import Job, JobStatus
from keeper.core.triggers import NextFireTime, TriggerKind
from keeper.node.context import EpochQuorums, NodeContext

log = logging.getLogger(__name__)

MAX_JOBS = 100_000  # jobs whose observations are kept; the least recently seen go first
REASONS_KEPT = 20  # distinct reasons remembered per job, newest last
HISTORY_SHOWN = 200  # executions a job's page shows, newest last
PERFORM_UPKEEP = bytes.fromhex("4585e33b")  # performUpkeep(bytes)
LIVE_KEEPER_STATES = ("active", "exiting")


class _Bounded(OrderedDict[int, Any]):
    """A dict of at most `limit` jobs, dropping the least recently written."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def put(self, key: int, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self._limit:
            self.popitem(last=False)


class JobBook:
    """What the node saw of each job: its resolver's last answer and payload, the last round
    it led, the simulations that explain a failure, and the reasons shown so far."""

    def __init__(self, limit: int = MAX_JOBS) -> None:
        self.resolvers = _Bounded(limit)  # job -> ResolverSeen
        self.payloads = _Bounded(limit)  # job -> the resolver's last "now" payload
        self.rounds = _Bounded(limit)  # job -> RoundSeen
        self.targets = _Bounded(limit)  # job -> (round, TargetProbe)
        self.reasons = _Bounded(limit)  # job -> deque of (block, state, reason)

    def saw_resolvers(self, jobs: Sequence[Job], raws: Sequence[bytes | None], block: int) -> None:
        """The evaluator's resolver answers at `block` (called for every batch it makes)."""
        for job, raw in zip(jobs, raws, strict=True):
            seen, payload = classify_resolver_result(block, raw)
            before = self.resolvers.get(job.job_id)
            if seen.can_exec is None and not seen.reason and before is not None and before.reason:
                # a resolver that keeps reverting keeps the reason probed for its first revert
                seen = ResolverSeen(block, None, before.reason)
            self.resolvers.put(job.job_id, seen)
            if payload:
                self.payloads.put(job.job_id, payload)

    def saw_rounds(self, head: int, results: Sequence[Any]) -> None:
        """The leader's outcomes at `head` (leader.RoundResult: job_id, round, outcome)."""
        for r in results:
            self.rounds.put(r.job_id, RoundSeen(head, r.round, r.outcome))

    def note(self, evaluation: JobEvaluation) -> list[tuple[int, str, str]]:
        """Keeps the evaluation if its reason differs from the last kept; the kept reasons."""
        kept: deque[tuple[int, str, str]] | None = self.reasons.get(evaluation.job_id)
        if kept is None:
            kept = deque(maxlen=REASONS_KEPT)
            self.reasons.put(evaluation.job_id, kept)
        if not kept or kept[-1][1:] != (evaluation.state.value, evaluation.reason):
            kept.append((evaluation.block, evaluation.state.value, evaluation.reason))
        return list(kept)


class JobViews:
    """Assembles each job's facts and evaluation, its money and its history, as JSON."""

    def __init__(
        self,
        ctx: NodeContext,
        w3: AsyncWeb3[Any],
        sender: TxSender,
        min_balance: Callable[[Job], int],
        cron: Callable[[str], NextFireTime],
        book: JobBook,
    ) -> None:
        self._ctx = ctx
        self._w3 = w3
        self._sender = sender
        self._min_balance = min_balance  # the evaluator's rule: what a job needs to run
        self._cron = cron
        self._book = book

    async def all_jobs(self) -> list[dict[str, Any]]:
        """Every job the store knows, with its state and reason."""
        jobs = await self._ctx.store.jobs()
        executions = await self._ctx.store.executions()
        by_job: dict[int, list[dict[str, Any]]] = {}
        for e in executions:
            by_job.setdefault(int(e["jobId"]), []).append(e)
        return await self._views(jobs, by_job)

    async def one_job(self, job_id: int) -> dict[str, Any] | None:
        """One job with its execution history and the reasons seen; None if unknown."""
        job = await self._ctx.store.job(job_id)
        if job is None:
            return None
        executions = await self._ctx.store.executions(job_id)
        (view,) = await self._views([job], {job_id: executions})
        view["history"] = [await self._execution(e) for e in executions[-HISTORY_SHOWN:]]
        view["reasons"] = [
            {"block": b, "state": s, "reason": r} for b, s, r in self._book.reasons.get(job_id, ())
        ]
        return view

    async def network(self, load: dict[str, Any], peer_load: dict[str, Any]) -> dict[str, Any]:
        """Epoch, quorums (members, stake, jobs served) and keepers (stake, status, load)."""
        store = self._ctx.store
        head = await store.head()
        quorums = await self._ctx.epoch_quorums()
        keepers = await store.keepers()
        served: dict[int, int] = {}
        if quorums is not None:
            for job in await store.jobs(JobStatus.Active):
                index = quorums.for_job(job.job_id).index
                served[index] = served.get(index, 0) + 1
        quorum_list = []
        jobs_of: dict[str, int] = {}
        for index, members in enumerate(quorums.quorums if quorums else []):
            for m in members:
                jobs_of[m.address.lower()] = jobs_of.get(m.address.lower(), 0) + served.get(
                    index, 0
                )
            quorum_list.append(
                {
                    "index": index,
                    "members": [{"address": m.address, "stake": str(m.stake)} for m in members],
                    "active_jobs": served.get(index, 0),
                }
            )
        me = self._ctx.address.lower()
        keeper_list = []
        for address, k in sorted(keepers.items()):
            row: dict[str, Any] = {
                "address": address,
                "status": k.get("status", "none"),
                "stake": str(k.get("stake", 0)),
                "endpoint": k.get("endpoint", ""),
                "active_jobs": jobs_of.get(address.lower(), 0),
                "me": address.lower() == me,
            }
            if address.lower() == me:
                row["load"] = load
            elif address.lower() in peer_load:
                overloaded, block = peer_load[address.lower()]
                row["load"] = {"overloaded": overloaded, "seen_at_block": block}
            else:
                row["load"] = None
            keeper_list.append(row)
        return {
            "address": self._ctx.address,
            "head": head[0] if head else None,
            "epoch": quorums.epoch.epoch if quorums else 0,
            "epoch_start_block": quorums.epoch.start_block if quorums else None,
            "quorums": quorum_list,
            "keepers": keeper_list,
        }

    # ------------------------------------------------------------------ assembly

    async def _views(
        self, jobs: list[Job], executions: dict[int, list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        store = self._ctx.store
        stored = await store.head()
        head = stored[0] if stored else 0
        head_ts = (await store.block_timestamp(head) or 0) if stored else 0
        quorums = await self._ctx.epoch_quorums()
        live = {
            a.lower()
            for a, k in (await store.keepers()).items()
            if k.get("status") in LIVE_KEEPER_STATES
        }
        gas_price = None
        if any(j.max_gas_price for j in jobs if j.status == JobStatus.Active):
            gas_price = int(await self._sender.expected_gas_price())
        events = [j for j in jobs if j.kind == TriggerKind.Event and j.status == JobStatus.Active]
        pending_logs = await store.next_job_logs((j.job_id, j.last_cursor, head) for j in events)
        out = []
        for job in jobs:
            runs = executions.get(job.job_id, [])
            facts = JobFacts(
                job=job,
                head=head,
                head_ts=head_ts,
                min_balance=self._min_balance(job),
                quorum=self._quorum(job, quorums, live),
                gas_price=gas_price,
                pending_log_block=(
                    pending_logs[job.job_id] >> 32 if job.job_id in pending_logs else None
                ),
                resolver=await self._resolver(job, head),
                target=await self._target(job, runs, head),
                last_round=self._book.rounds.get(job.job_id),
            )
            cron = self._cron(job.trigger.cron) if job.kind == TriggerKind.Cron else None
            evaluation = compute_job_evaluation(facts, cron)
            self._book.note(evaluation)
            out.append(self._json(job, facts, evaluation, runs))
        return out

    def _quorum(self, job: Job, quorums: EpochQuorums | None, live: set[str]) -> QuorumFacts | None:
        if quorums is None:
            return None
        view = quorums.for_job(job.job_id)
        return QuorumFacts(
            index=view.index,
            mine=view.has(self._ctx.address),
            reachable=is_quorum_reachable(view.members, live, job.threshold_bps),
        )

    async def _resolver(self, job: Job, head: int) -> ResolverSeen | None:
        """The resolver's last answer; a revert without a known reason is asked once why."""
        seen: ResolverSeen | None = self._book.resolvers.get(job.job_id)
        if seen is None or seen.can_exec is not None or seen.reason:
            return seen
        t = job.trigger
        why = await probe_resolver(self._w3, t.resolver, t.resolver_calldata)
        if why is None:  # it answers now: say so, and ask again next time
            return ResolverSeen(seen.block, None, f"it answers at block {head}")
        seen = ResolverSeen(seen.block, None, why)
        self._book.resolvers.put(job.job_id, seen)
        return seen

    async def _target(self, job: Job, runs: list[dict[str, Any]], head: int) -> TargetProbe | None:
        """While the last execution failed: the target call simulated from the job's forwarder
        with the job's gas limit, once per round."""
        if not runs or runs[-1].get("success") or job.status == JobStatus.Cancelled:
            return None
        kept = self._book.targets.get(job.job_id)
        if kept is not None and kept[0] == job.round:
            probe: TargetProbe = kept[1]
            return probe
        data = self._target_data(job)
        if data is None or not job.forwarder:
            return None
        intrinsic = 21_000 + sum(16 if b else 4 for b in data)
        revert = await probe_call(
            self._w3, job.forwarder, job.target, data, job.gas_limit + intrinsic
        )
        estimate = None
        if revert is not None:
            total = await probe_estimate(self._w3, job.forwarder, job.target, data)
            estimate = None if total is None else total - intrinsic
        probe = TargetProbe(head, revert, estimate)
        self._book.targets.put(job.job_id, (job.round, probe))
        log.info(
            "job.probed job=%d round=%d revert=%s estimate=%s",
            job.job_id,
            job.round,
            revert,
            estimate,
        )
        return probe

    def _target_data(self, job: Job) -> bytes | None:
        if job.kind != TriggerKind.Condition:
            return job.call_data
        payload: bytes | None = self._book.payloads.get(job.job_id)
        if payload is None:
            return None
        if job.trigger.mode == 1:
            return PERFORM_UPKEEP + abi_encode(["bytes"], [payload])
        return payload

    def _json(
        self, job: Job, facts: JobFacts, evaluation: JobEvaluation, runs: list[dict[str, Any]]
    ) -> dict[str, Any]:
        payments = [int(e.get("payment", 0)) for e in runs]
        recent = payments[-20:]
        average = sum(recent) // len(recent) if recent else None
        runway = compute_runway(job.balance, facts.min_balance, average)
        runway_seconds = None
        if runway is not None and job.kind == TriggerKind.Time:
            runway_seconds = runway * job.trigger.interval
        last = runs[-1] if runs else None
        return {
            "id": job.job_id,
            "kind": job.kind.name,
            "trigger": describe_trigger(job.trigger),
            "status": JobStatus(job.status).name,
            "owner": job.owner,
            "target": job.target,
            **evaluation.as_json(),
            "round": job.round,
            "balance": str(job.balance),
            "min_balance": str(facts.min_balance),
            "gas_limit": job.gas_limit,
            "quorum": facts.quorum.index if facts.quorum else None,
            "mine": bool(facts.quorum and facts.quorum.mine),
            "executions": len(runs),
            "failures": sum(1 for e in runs if not e.get("success")),
            "spent": str(sum(payments)),
            "average_cost": None if average is None else str(average),
            "runway_executions": runway,
            "runway_seconds": runway_seconds,
            "last_execution": None if last is None else _execution_row(last, None),
        }

    async def _execution(self, e: dict[str, Any]) -> dict[str, Any]:
        return _execution_row(e, await self._ctx.store.block_timestamp(int(e["block"])))


def _execution_row(e: dict[str, Any], timestamp: int | None) -> dict[str, Any]:
    return {
        "round": int(e["round"]),
        "block": int(e["block"]),
        "time": timestamp,
        "success": bool(e.get("success")),
        "gas_used": int(e.get("gasUsed", 0)),
        "payment": str(int(e.get("payment", 0))),
        "tx": e.get("tx"),
    }
