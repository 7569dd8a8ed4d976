"""The leader side of agreement: propose, collect threshold signatures, submit once.

Members are ranked per (jobId, round); rank k leads from dueBlock + k * turnBlocks, so the
primary goes first and the others are active backups that act only if the round is still open
when their turn comes. The contract's round and cursor make a second execution impossible; the
turns keep backups from wasting gas while the primary is healthy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from keeper.chain.calls import KeeperCalls, compute_execute_gas
from keeper.chain.sender import TxSender
from keeper.core.jobs import Job, JobStatus
from keeper.core.messages import ReportRequest, ReportResponse
from keeper.core.quorum import (
    compute_turn_start,
    is_threshold_met,
    pack_signatures,
    rank_members,
)
from keeper.core.report import (
    Report,
    compute_report_digest,
    recover_report_signer,
    sign_report,
)
from keeper.errors import KeeperError, PeerError, PeerRejected
from keeper.monitor.metrics import NodeMetrics
from keeper.node.context import NodeContext, QuorumView
from keeper.node.evaluate import Evaluator, Proposal
from keeper.peers.client import PeerClient, SignedRequest

log = logging.getLogger(__name__)

MAX_CONCURRENT_ROUNDS = 32
# Reverts that mean the round is already closed: someone else executed it.
ROUND_CLOSED = {"WrongRound", "CursorNotRaised", "MaxExecutionsReached"}


# A round as stored: status (due | submitted | reopened), due block, data.
RoundState = tuple[str, int, dict[str, Any]]


@dataclass(frozen=True)
class DueRound:
    """A round due at this head on one of this node's quorums, with its stored state."""

    job: Job
    quorum: QuorumView
    proposal: Proposal
    state: RoundState


@dataclass(frozen=True)
class RoundResult:
    job_id: int
    round: int
    outcome: str  # waiting | submitted | closed | no_quorum | failed


class LeaderService:
    """Leads the rounds whose turn has come for this node."""

    def __init__(
        self,
        ctx: NodeContext,
        evaluator: Evaluator,
        calls: KeeperCalls,
        sender: TxSender,
        client: PeerClient,
        metrics: NodeMetrics,
        is_overloaded: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._clock = clock
        self._evaluator = evaluator
        self._calls = calls
        self._sender = sender
        self._client = client
        self._metrics = metrics
        self._is_overloaded = is_overloaded
        self._attempted: dict[tuple[int, int], int] = {}  # (job, round) -> block of last try
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_ROUNDS)
        self._pending: set[str] = set()  # hashes of this node's pending transactions
        # Requests still in flight after their round reached threshold: they run to their end
        # (a cancelled HTTP exchange closes its keep-alive connection, and the next round to
        # that member would pay a new one); `close` cancels them.
        self._stragglers: set[asyncio.Future[tuple[str, bytes] | None]] = set()
        # What members said of their load in their last answer: address -> (overloaded, block),
        # for status and metrics; rankings never use it (views of it differ between members).
        self.peer_load: dict[str, tuple[bool, int]] = {}

    async def on_head(self, head: int, head_hash: bytes, head_ts: int) -> list[RoundResult]:
        """Evaluates this node's jobs at the new head and leads those whose turn it is."""
        store = self._ctx.store
        quorums = await self._ctx.epoch_quorums()
        if quorums is None:
            return []
        mine: list[tuple[Job, QuorumView]] = []
        for job in await store.jobs(JobStatus.Active):
            quorum = quorums.for_job(job.job_id)
            if quorum.has(self._ctx.address):
                mine.append((job, quorum))
        proposals = await self._evaluator.due_many([j for j, _ in mine], head, head_ts)
        due = [(job, quorum) for job, quorum in mine if job.job_id in proposals]
        self._pending = (
            {"0x" + p.tx_hash.hex() for p in await store.pending_txs("pending")} if due else set()
        )
        states = await self._open_rounds([(job, proposals[job.job_id]) for job, _ in due], head)
        tasks = [
            self._guarded(
                DueRound(job, quorum, proposals[job.job_id], states[(job.job_id, job.round)]),
                head,
                head_hash,
            )
            for job, quorum in due
        ]
        self._forget_old(head)
        return list(await asyncio.gather(*tasks))

    async def _open_rounds(
        self, due: list[tuple[Job, Proposal]], head: int
    ) -> dict[tuple[int, int], RoundState]:
        """The stored state of each due round, recording the rounds seen due for the first time
        (or reopened by a reorg), all in one read and one transaction: a member's answers wait
        for this node's database writes, and every due round is one on every member."""
        store = self._ctx.store
        states = await store.round_states((job.job_id, job.round) for job, _ in due)
        fresh = [(job, p) for job, p in due if (job.job_id, job.round) not in states]
        opened = await self._evaluator.opened_at_many(fresh)
        new: list[tuple[int, int, int]] = []
        for job, _ in due:
            key = (job.job_id, job.round)
            state = states.get(key)
            if state is not None and state[0] != "reopened":
                continue
            # Turns count from the block the round opened, the same on every node; a round a
            # reorg reopened counts from now, or every backup whose turn passed would lead.
            first = opened.get(job.job_id) if state is None else None
            due_block = head if first is None else min(head, first)
            new.append((job.job_id, job.round, due_block))
            states[key] = ("due", due_block, {})
            if state is None:
                self._metrics.rounds_started.inc()
        await store.open_rounds(new)
        return states

    async def _guarded(self, due: DueRound, head: int, head_hash: bytes) -> RoundResult:
        async with self._slots:
            try:
                return await self._maybe_lead(due, head, head_hash)
            except KeeperError as exc:
                job = due.job
                self._metrics.rounds_failed.inc()
                log.warning("round.failed job=%d round=%d error=%s", job.job_id, job.round, exc)
                return RoundResult(job.job_id, job.round, "failed")

    async def _maybe_lead(self, due: DueRound, head: int, head_hash: bytes) -> RoundResult:
        me = self._ctx.address
        job, quorum, proposal = due.job, due.quorum, due.proposal
        status, due_block, data = due.state
        if status == "submitted" and await self._is_pending(str(data.get("tx", ""))):
            return RoundResult(job.job_id, job.round, "waiting")
        ranked = rank_members(job.job_id, job.round, [m.address for m in quorum.members])
        my_rank = next(i for i, a in enumerate(ranked) if a.lower() == me.lower())
        if self._is_overloaded():
            # Step back behind every member. Only the node itself moves: the others keep the
            # plain ranking, so no two members ever believe the same turn is theirs.
            my_rank += len(ranked)
        turn = compute_turn_start(due_block, my_rank, self._ctx.options.turn_blocks)
        key = (job.job_id, job.round)
        if head < turn or self._attempted.get(key) == head:
            return RoundResult(job.job_id, job.round, "waiting")
        self._attempted[key] = head
        return await self._lead(job, quorum, proposal, head, head_hash, my_rank)

    async def _lead(
        self,
        job: Job,
        quorum: QuorumView,
        proposal: Proposal,
        head: int,
        head_hash: bytes,
        rank: int,
    ) -> RoundResult:
        ctx = self._ctx
        led_at = self._clock()
        report = Report(
            jobId=job.job_id,
            round=job.round,
            epoch=quorum.epoch.epoch,
            cursor=proposal.cursor,
            checkBlock=head,
            checkBlockHash=head_hash,
            payloadHash=keccak(proposal.payload),
            executor=ctx.address,
            deadline=head + ctx.options.deadline_blocks,
        )
        own = sign_report(ctx.account.key, report, ctx.domain)
        if not await ctx.store.record_signature(
            report, compute_report_digest(report, ctx.domain), own
        ):
            log.warning("round.conflict job=%d round=%d", job.job_id, job.round)
            return RoundResult(job.job_id, job.round, "failed")
        log.info(
            "round.lead job=%d round=%d rank=%d cursor=%d check_block=%d",
            job.job_id,
            job.round,
            rank,
            proposal.cursor,
            head,
        )
        signatures = await self._collect(job, quorum, report, proposal.payload, own, head)
        if signatures is None:
            return RoundResult(job.job_id, job.round, "no_quorum")
        # Agreement latency (benchmarks/latency.py reads it): from leading to threshold stake.
        log.info(
            "round.threshold job=%d round=%d rank=%d signers=%d ms=%.1f",
            job.job_id,
            job.round,
            rank,
            len(signatures),
            (self._clock() - led_at) * 1000,
        )
        bitmap, packed = pack_signatures(quorum.members, signatures)
        data = self._calls.execute_data(report, proposal.payload, quorum.members, bitmap, packed)
        gas = compute_execute_gas(job.gas_limit, len(quorum.members))
        tm = str(self._calls.task_manager.address)
        revert = await self._calls.simulate(ctx.address, tm, data, gas)
        if revert is not None:
            if revert.error_name in ROUND_CLOSED:
                return RoundResult(job.job_id, job.round, "closed")
            log.warning(
                "round.simulation_failed job=%d round=%d error=%s", job.job_id, job.round, revert
            )
            self._metrics.rounds_failed.inc()
            return RoundResult(job.job_id, job.round, "failed")
        tx_hash = await self._sender.send(tm, data, gas, f"execute:{job.job_id}:{job.round}")
        await ctx.store.save_round(
            job.job_id,
            job.round,
            "submitted",
            head,
            {"tx": "0x" + tx_hash.hex(), "cursor": proposal.cursor, "signers": len(signatures)},
        )
        self._metrics.executions_submitted.inc()
        log.info(
            "round.submitted job=%d round=%d tx=0x%s signers=%d",
            job.job_id,
            job.round,
            tx_hash.hex(),
            len(signatures),
        )
        return RoundResult(job.job_id, job.round, "submitted")

    async def _collect(
        self,
        job: Job,
        quorum: QuorumView,
        report: Report,
        payload: bytes,
        own: bytes,
        head: int,
    ) -> dict[str, bytes] | None:
        """Asks every other member to sign; returns the signatures once the stake threshold is
        met (stopping early, the other requests left to finish), or None if the members who
        answered are not enough."""
        ctx = self._ctx
        stakes = {m.address.lower(): m.stake for m in quorum.members}
        total = sum(stakes.values())
        signatures = {ctx.address: own}
        signed = stakes[ctx.address.lower()]
        if is_threshold_met(signed, total, job.threshold_bps):
            return signatures
        request = ReportRequest(
            sender=ctx.address,
            sent_block=head,
            report=report,
            payload=payload,
            leader_signature=own,
        )
        body = self._client.sign_request(request)
        others = [m.address for m in quorum.members if m.address.lower() != ctx.address.lower()]
        endpoints = [await ctx.store.endpoint(address) for address in others]
        peers = [
            asyncio.ensure_future(self._ask(endpoint, address, request, body))
            for address, endpoint in zip(others, endpoints, strict=True)
            if endpoint
        ]
        try:
            for next_done in asyncio.as_completed(peers):
                response = await next_done
                if response is None:
                    continue
                signer, signature = response
                if signer.lower() in stakes and signer not in signatures:
                    signatures[signer] = signature
                    signed += stakes[signer.lower()]
                if is_threshold_met(signed, total, job.threshold_bps):
                    return signatures
        finally:
            self._let_finish(peers)
        log.info(
            "round.no_quorum job=%d round=%d signed=%d total=%d",
            job.job_id,
            job.round,
            signed,
            total,
        )
        return None

    async def _ask(
        self, endpoint: str, member: str, request: ReportRequest, signed: SignedRequest
    ) -> tuple[str, bytes] | None:
        try:
            response: ReportResponse = await self._client.request_signature(endpoint, signed)
        except PeerRejected as exc:
            log.info("peer.refused member=%s code=%s reason=%s", member, exc.code, exc.reason)
            return None
        except PeerError as exc:
            log.info("peer.unreachable member=%s error=%s", member, exc)
            return None
        try:
            signer = recover_report_signer(request.report, self._ctx.domain, response.signature)
        except ValueError:
            return None
        if signer.lower() != member.lower() or response.signer.lower() != member.lower():
            log.warning("peer.bad_signature member=%s", member)
            return None
        self._observe(member, response.overloaded, request.sent_block)
        return signer, response.signature

    def _let_finish(self, peers: Sequence[asyncio.Future[tuple[str, bytes] | None]]) -> None:
        for task in peers:
            if not task.done():
                self._stragglers.add(task)
                task.add_done_callback(self._stragglers.discard)

    async def close(self) -> None:
        """Cancels the requests still in flight from rounds already decided."""
        stragglers, self._stragglers = list(self._stragglers), set()
        for task in stragglers:
            task.cancel()
        await asyncio.gather(*stragglers, return_exceptions=True)

    def _observe(self, member: str, overloaded: bool, block: int) -> None:
        self.peer_load[member.lower()] = (overloaded, block)

    async def _is_pending(self, tx_hex: str) -> bool:
        """Whether the round's transaction is still pending (as of this head's pass)."""
        return bool(tx_hex) and tx_hex in self._pending

    def _forget_old(self, head: int) -> None:
        for key in [k for k, block in self._attempted.items() if block < head - 256]:
            del self._attempted[key]
