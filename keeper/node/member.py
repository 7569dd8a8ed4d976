"""The member side of agreement: re-derive the leader's result at its check block, then sign.

A member signs only what it computed itself at the same block, stores the signature before it
leaves the node, and never signs a different result for the same (jobId, round, checkBlock,
checkBlockHash), restarts included. Every refusal is a PeerRejected with its own 4xx.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from eth_utils.crypto import keccak

from keeper.core.equivocation import Equivocation, EvidenceBook
from keeper.core.jobs import Job
from keeper.core.messages import (
    BatchResponse,
    Refusal,
    ReportBatch,
    ReportRequest,
    ReportResponse,
)
from keeper.core.quorum import is_turn_started, rank_members
from keeper.core.report import (
    MAX_CHECK_AGE,
    Report,
    compute_report_digest,
    recover_report_signer,
    sign_report,
)
from keeper.errors import PeerRejected, RpcUnavailable
from keeper.monitor.metrics import NodeMetrics
from keeper.monitor.repeats import RoundLog
from keeper.node.context import NodeContext, QuorumView
from keeper.node.evaluate import Evaluator, Proposal

log = logging.getLogger(__name__)

# Blocks a leader's turn may start after this member's head: the leader may see a head first.
TURN_SLACK_BLOCKS = 1


def _reject(status: int, code: str, reason: str) -> PeerRejected:
    return PeerRejected(status, reason, code)


def _conflict() -> PeerRejected:
    return _reject(409, "Conflict", "already signed a different result for this key")


# Every item is approved or refused below; this placeholder never leaves the node.
_UNANSWERED = Refusal(500, "InternalError", "item not answered")


@dataclass(frozen=True)
class _Approved:
    """A report that passed every check, with this node's signature not yet stored."""

    report: Report
    digest: bytes
    signature: bytes
    synced_ms: float


class MemberService:
    """Answers `POST /v1/reports` and `POST /v1/reports/batch` for one node."""

    def __init__(
        self,
        ctx: NodeContext,
        evaluator: Evaluator,
        metrics: NodeMetrics,
        sync_now: Callable[[int], Awaitable[int]],
        is_overloaded: Callable[[], bool],
        observe_peer: Callable[[str, int], None] | None = None,
        on_equivocation: Callable[[Equivocation], None] | None = None,
        chain_head: Callable[[], int] | None = None,
    ) -> None:
        self._ctx = ctx
        self._evaluator = evaluator
        self._metrics = metrics
        self._sync_now = sync_now
        self._is_overloaded = is_overloaded
        self._observe_peer = observe_peer
        self._on_equivocation = on_equivocation
        self._chain_head = chain_head  # the RPC's head at the node's last pass
        self._evidence = EvidenceBook()
        # A leader retrying a round at every head is answered every time, logged once per kind.
        self._round_log = RoundLog(log)

    async def handle_report(self, req: ReportRequest) -> ReportResponse:
        began = time.monotonic()
        try:
            ok = await self._approve_reachable(req, began)
            if not await self._ctx.store.record_signature(ok.report, ok.digest, ok.signature):
                raise _conflict()
        except PeerRejected as exc:
            self._note_rejection(req, exc)
            raise
        self._note_signed(req, ok, began)
        return ReportResponse(
            signer=self._ctx.address, signature=ok.signature, overloaded=self._is_overloaded()
        )

    async def handle_batch(self, batch: ReportBatch) -> BatchResponse:
        """Answers every item of `batch` as `handle_report` would, storing the signatures of
        all of them in at most two trips to the database (none leaves the node unstored); a
        refusal of one item does not touch the others."""
        began = time.monotonic()
        results: list[bytes | Refusal] = [_UNANSWERED] * len(batch.items)
        approved: list[tuple[int, _Approved]] = []

        async def approve(index: int) -> None:
            req = batch.request(index)
            try:
                approved.append((index, await self._approve_reachable(req, began)))
            except PeerRejected as exc:
                self._note_rejection(req, exc)
                results[index] = Refusal(exc.status, exc.code, exc.reason)

        # The items are checked concurrently: each Condition item's resolver is an eth_call at
        # its check block, and one at a time a full batch waited for a hundred round trips.
        await asyncio.gather(*(approve(index) for index in range(len(batch.items))))
        approved.sort(key=lambda pair: pair[0])
        stored = await self._ctx.store.record_signatures(
            [(ok.report, ok.digest, ok.signature) for _, ok in approved]
        )
        for (index, ok), fresh in zip(approved, stored, strict=True):
            req = batch.request(index)
            if fresh:
                self._note_signed(req, ok, began)
                results[index] = ok.signature
            else:
                conflict = _conflict()
                self._note_rejection(req, conflict)
                results[index] = Refusal(conflict.status, conflict.code, conflict.reason)
        return BatchResponse(self._ctx.address, self._is_overloaded(), tuple(results))

    def _note_rejection(self, req: ReportRequest, exc: PeerRejected) -> None:
        self._metrics.record_rejection(exc.code)
        self._round_log.log(
            [(req.report.jobId, req.report.round)],
            f"peer.rejected:{req.sender.lower()}:{exc.code}",
            logging.INFO,
            "peer.rejected code=%s job=%d round=%d from=%s reason=%s",
            exc.code,
            req.report.jobId,
            req.report.round,
            req.sender,
            exc.reason,
        )

    def _note_signed(self, req: ReportRequest, ok: _Approved, began: float) -> None:
        self._metrics.reports_signed.inc()
        report = req.report
        self._round_log.log(
            [(report.jobId, report.round)],
            f"report.signed:{req.sender.lower()}",
            logging.INFO,
            "report.signed job=%d round=%d cursor=%d check_block=%d leader=%s ms=%.1f sync_ms=%.1f",
            report.jobId,
            report.round,
            report.cursor,
            report.checkBlock,
            req.sender,
            (time.monotonic() - began) * 1000,
            ok.synced_ms,
        )

    async def _approve_reachable(self, req: ReportRequest, began: float) -> _Approved:
        # Without its RPC a member can check nothing: it answers 503, as its /healthz does,
        # rather than a 500 with a traceback for an outage it already reports.
        try:
            return await self._approve(req, began)
        except RpcUnavailable as exc:
            raise _reject(503, "RpcUnavailable", str(exc)) from exc

    async def _approve(self, req: ReportRequest, began: float) -> _Approved:
        """Every check of `req` and this node's signature of its report, not yet stored."""
        ctx, report = self._ctx, req.report
        store = ctx.store
        head = await self._head()
        if req.sent_block + ctx.options.stale_blocks < head:
            raise _reject(422, "Stale", f"message from block {req.sent_block}, head is {head}")
        if report.executor.lower() != req.sender.lower():
            raise _reject(422, "ExecutorMismatch", "the report's executor is not the sender")
        # Who is asking is settled from the store before any RPC work: a stranger's request
        # never makes this node sync (spend its RPC quota) towards a check block it names.
        job = await store.job(report.jobId)
        if job is None:
            raise _reject(404, "UnknownJob", f"job {report.jobId} is unknown")
        if not await ctx.is_epoch_usable(report.epoch, head):
            raise _reject(409, "WrongEpoch", f"epoch {report.epoch} is not current")
        quorum = await ctx.quorum_for(report.jobId, report.epoch)
        if quorum is None:
            raise _reject(409, "WrongEpoch", f"epoch {report.epoch} has no quorums here")
        if not quorum.has(req.sender):
            raise _reject(403, "NotMember", f"{req.sender} is not in job {report.jobId}'s quorum")
        if not quorum.has(ctx.address):
            raise _reject(403, "NotMyQuorum", f"this node does not serve job {report.jobId}")

        synced_ms = 0.0
        if report.checkBlock > head:
            head = await self._sync_now(report.checkBlock)
            synced_ms = (time.monotonic() - began) * 1000
            if report.checkBlock > head:
                raise _reject(425, "TooEarly", f"not synced to block {report.checkBlock} yet")
        if not head - MAX_CHECK_AGE <= report.checkBlock:
            raise _reject(422, "StaleCheckBlock", f"check block {report.checkBlock} is too old")
        chain_head = self._chain_head() if self._chain_head is not None else head
        if report.checkBlock + MAX_CHECK_AGE < chain_head:
            # This node (or the leader) is catching up: a report at a head that old is stale
            # on the chain as it is now, whatever this node's store has reached.
            raise _reject(422, "StaleCheckBlock", f"check block {report.checkBlock} is too old")
        if not head <= report.deadline <= report.checkBlock + MAX_CHECK_AGE:
            raise _reject(422, "BadDeadline", f"deadline {report.deadline} out of range")
        if not await ctx.is_epoch_usable(report.epoch, head):
            raise _reject(409, "WrongEpoch", f"epoch {report.epoch} is no longer current")
        if self._observe_peer is not None:
            self._observe_peer(req.sender, head)

        try:
            leader = recover_report_signer(report, ctx.domain, req.leader_signature)
        except ValueError as exc:
            raise _reject(401, "BadLeaderSignature", str(exc)) from exc
        if leader.lower() != req.sender.lower():
            raise _reject(401, "BadLeaderSignature", "the report is not signed by the sender")
        # Whatever the checks below decide, a leader's signed report is evidence: two different
        # results for one round key are proof of equivocation, which this node then submits.
        proof = self._evidence.observe(report, leader, req.leader_signature)
        if proof is not None:
            log.warning(
                "equivocation.seen signer=%s job=%d round=%d check_block=%d",
                leader,
                report.jobId,
                report.round,
                report.checkBlock,
            )
            if self._on_equivocation is not None:
                self._on_equivocation(proof)

        if report.round != job.round:
            code = "RoundDone" if report.round < job.round else "WrongRound"
            raise _reject(409, code, f"job {job.job_id} is at round {job.round}")
        block_hash = await store.block_hash(report.checkBlock)
        if block_hash != report.checkBlockHash:
            raise _reject(409, "BlockHashMismatch", f"block {report.checkBlock} differs here")
        check_ts = await store.block_timestamp(report.checkBlock)
        if check_ts is None:
            raise _reject(425, "TooEarly", f"block {report.checkBlock} is not stored")

        proposal = await self._evaluator.due(job, report.checkBlock, check_ts)
        if proposal is None:
            raise _reject(422, "NotDue", f"job {job.job_id} is not due at {report.checkBlock}")
        if proposal.cursor != report.cursor:
            raise _reject(422, "CursorMismatch", f"expected cursor {proposal.cursor}")
        if keccak(proposal.payload) != report.payloadHash or proposal.payload != req.payload:
            raise _reject(422, "PayloadMismatch", "the payload differs from this node's result")
        await self._check_turn(req, job, quorum, proposal, head)

        signature = sign_report(ctx.account.key, report, ctx.domain)
        return _Approved(report, compute_report_digest(report, ctx.domain), signature, synced_ms)

    async def _check_turn(
        self, req: ReportRequest, job: Job, quorum: QuorumView, proposal: Proposal, head: int
    ) -> None:
        """Refuses a leader whose turn has not come (protocol: leader turns).

        The due block is the one this node's leader service stored for the round, else the
        block every node derives the same way (`Evaluator.opened_at_many`, store reads only);
        a round neither tells (a Condition job this node has not yet seen due) is accepted, as
        this node has no clock to judge that turn by. The ranking is the plain one: an
        overloaded leader steps back, so it only ever leads later than its plain turn.
        """
        report = req.report
        state = await self._ctx.store.round_state(report.jobId, report.round)
        if state is not None:
            due_block: int | None = state[1]
        else:
            due_block = (await self._evaluator.opened_at_many([(job, proposal)])).get(job.job_id)
        if due_block is None:
            return
        ranked = [
            a.lower()
            for a in rank_members(report.jobId, report.round, [m.address for m in quorum.members])
        ]
        rank = ranked.index(req.sender.lower())
        turn_blocks = self._ctx.turn_blocks
        if not is_turn_started(due_block, rank, turn_blocks, head, TURN_SLACK_BLOCKS):
            raise _reject(
                409,
                "NotYourTurn",
                f"rank {rank} leads from block {due_block + rank * turn_blocks}, head is {head}",
            )

    async def _head(self) -> int:
        head = await self._ctx.store.head()
        return head[0] if head else 0
