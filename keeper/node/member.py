"""The member side of agreement: re-derive the leader's results at its check block, then sign.

A member signs only what it computed itself at the same block, the batch of the items it
accepts, once; stores one guard row per item before the signature leaves the node, and never
signs a different result for the same (jobId, round, checkBlock, checkBlockHash), restarts
included. A refusal of the whole batch is a PeerRejected with its own 4xx; a refused item is
answered with the status and code it got, and the others are signed without it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from keeper.core.equivocation import Equivocation, EvidenceBook
from keeper.core.jobs import Job
from keeper.core.messages import BatchRequest, BatchResponse, Refusal
from keeper.core.quorum import Member, is_turn_started, rank_batch_members
from keeper.core.report import (
    MAX_CHECK_AGE,
    BatchHeader,
    Report,
    compute_batch_digest_of,
    recover_digest_signer,
    sign_digest,
)
from keeper.errors import PeerRejected, RpcUnavailable
from keeper.monitor.metrics import NodeMetrics
from keeper.monitor.repeats import RoundLog
from keeper.node.context import EpochQuorums, NodeContext, QuorumView
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


def _missing_round(item: Report) -> PeerRejected:
    """An item whose job's earlier round in the batch was refused: it cannot run before it."""
    return _reject(
        409, "WrongRound", f"job {item.jobId} round {item.round}: an earlier round was refused"
    )


@dataclass(frozen=True)
class _Envelope:
    """What the whole batch passed: the quorum it names (this node and the sender in it), the
    head it was checked at, and the time spent syncing to its check block."""

    quorum: int
    members: tuple[Member, ...]
    head: int
    synced_ms: float
    quorums: EpochQuorums | None = None  # the epoch's quorums, read once for every item
    check_ts: int | None = None  # the check block's timestamp, read once for every item
    item_hashes: tuple[bytes, ...] = ()  # the items' EIP-712 struct hashes, computed once


@dataclass(frozen=True)
class _Known:
    """What the items' checks read from the store and the evaluator, read once per batch
    instead of once per item. `proposals` is None when the resolvers' RPC failed: then each
    item asks again on its own, and only its own check answers 503."""

    proposals: dict[int, Proposal] | None
    round_states: dict[tuple[int, int], tuple[str, int, dict[str, Any]]]
    opened_at: dict[int, int]


_NOTHING_KNOWN = _Known(None, {}, {})


class MemberService:
    """Answers `POST /v1/reports/batch` for one node."""

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

    async def handle_batch(self, req: BatchRequest) -> BatchResponse:
        """Checks the batch as a whole (a failure refuses all of it), then each item on its own;
        signs the accepted items once, as the batch of them in order, after storing one guard
        row per accepted item (none leaves the node unstored). A refused item does not touch
        the others."""
        began = time.monotonic()
        try:
            envelope = await self._check_envelope(req, began)
        except RpcUnavailable as exc:
            # Without its RPC a member can check nothing: it answers 503, as its /healthz does,
            # rather than a 500 with a traceback for an outage it already reports.
            rejected = _reject(503, "RpcUnavailable", str(exc))
            self._note_rejection(req.sender, req.items, rejected)
            raise rejected from exc
        except PeerRejected as exc:
            self._note_rejection(req.sender, req.items, exc)
            raise
        results: list[bool | Refusal] = [_UNANSWERED] * len(req.items)
        approved: list[int] = []

        async def approve(indices: list[int]) -> None:
            # One job's items in batch order: its round r first, then r+1, ... (an Event
            # job's next logs), each accepted only after every one before it was.
            # A round already done is refused on its own (the contract skips it, whatever
            # follows); any other refusal refuses the job's later rounds too.
            proposal: Proposal | None = None
            accepted = 0
            for n, index in enumerate(indices):
                item = req.items[index]
                try:
                    try:
                        if proposal is None:
                            proposal = await self._check_item(req, index, envelope, known)
                        else:
                            self._check_next_item(item, req.payloads[index], proposal, accepted)
                    except RpcUnavailable as exc:
                        raise _reject(503, "RpcUnavailable", str(exc)) from exc
                    approved.append(index)
                    accepted += 1
                except PeerRejected as exc:
                    self._note_rejection(req.sender, [item], exc)
                    results[index] = Refusal(exc.status, exc.code, exc.reason)
                    if exc.code == "RoundDone":
                        continue
                    for later in indices[n + 1 :]:
                        refusal = _missing_round(req.items[later])
                        self._note_rejection(req.sender, [req.items[later]], refusal)
                        results[later] = Refusal(refusal.status, refusal.code, refusal.reason)
                    return

        duplicates = self._refuse_duplicates(req, results)
        by_job: dict[int, list[int]] = {}
        for i, item in enumerate(req.items):
            if i not in duplicates:
                by_job.setdefault(item.jobId, []).append(i)
        known = await self._read_known(req, [indices[0] for indices in by_job.values()], envelope)
        # The jobs are checked concurrently: each Condition item's resolver is an eth_call at
        # its check block, and one at a time a full batch waited for a hundred round trips.
        await asyncio.gather(*(approve(indices) for indices in by_job.values()))
        accepted, signature = await self._sign_accepted(
            req, sorted(approved), results, envelope.item_hashes
        )
        for index in accepted:
            results[index] = True
        if accepted:
            signed = [req.items[i] for i in accepted]
            self._note_signed(req.sender, signed, began, envelope.synced_ms)
        return BatchResponse(self._ctx.address, self._is_overloaded(), tuple(results), signature)

    def _refuse_duplicates(self, req: BatchRequest, results: list[bool | Refusal]) -> set[int]:
        """A round may appear once in a batch: later copies are refused."""
        seen: set[tuple[int, int]] = set()
        duplicates: set[int] = set()
        for index, item in enumerate(req.items):
            key = (item.jobId, item.round)
            if key in seen:
                duplicates.add(index)
                exc = _reject(422, "DuplicateItem", f"job {item.jobId} round {item.round} twice")
                self._note_rejection(req.sender, [item], exc)
                results[index] = Refusal(exc.status, exc.code, exc.reason)
            seen.add(key)
        return duplicates

    async def _sign_accepted(
        self,
        req: BatchRequest,
        approved: list[int],
        results: list[bool | Refusal],
        item_hashes: Sequence[bytes] = (),
    ) -> tuple[list[int], bytes | None]:
        """This node's signature over the batch of the `approved` items, stored first as one
        guard row per item (the signed batch's digest). An item whose row the guard refuses
        (this node signed another result for its key) is refused, and the rest signed again
        without it; the rows of a signature that never left the node are the same results, so
        they guard as well as any."""
        ctx = self._ctx
        hashes = item_hashes or req.batch.item_hashes()
        accepted = approved
        while accepted:
            subset = req.batch.subset(accepted)
            digest = compute_batch_digest_of(
                subset.header, [hashes[i] for i in accepted], ctx.domain
            )
            signature = sign_digest(ctx.account.key, digest)
            stored = await ctx.store.record_signatures(
                [(item, digest, signature) for item in subset.items]
            )
            refused = [i for i, fresh in zip(accepted, stored, strict=True) if not fresh]
            if not refused:
                return accepted, signature
            for index in refused:
                conflict = _conflict()
                self._note_rejection(req.sender, [req.items[index]], conflict)
                results[index] = Refusal(conflict.status, conflict.code, conflict.reason)
            accepted = [i for i in accepted if i not in refused]
        return [], None

    def _note_rejection(self, sender: str, items: Sequence[Report], exc: PeerRejected) -> None:
        self._metrics.record_rejection(exc.code)
        for item in items:
            self._round_log.log(
                [(item.jobId, item.round)],
                f"peer.rejected:{sender.lower()}:{exc.code}",
                logging.INFO,
                "peer.rejected code=%s job=%d round=%d from=%s reason=%s",
                exc.code,
                item.jobId,
                item.round,
                sender,
                exc.reason,
            )

    def _note_signed(
        self, sender: str, items: Sequence[Report], began: float, synced_ms: float
    ) -> None:
        """One line per signed batch, naming its rounds (`job:round`): a line per item was a
        log line per job per member per block, and a fifth of a member's answer."""
        self._metrics.reports_signed.inc(len(items))
        rounds = [(item.jobId, item.round) for item in items]
        self._round_log.log(
            rounds,
            f"report.signed:{sender.lower()}",
            logging.INFO,
            "batch.signed leader=%s items=%d check_block=%d ms=%.1f sync_ms=%.1f rounds=%s",
            sender,
            len(items),
            items[0].checkBlock,
            (time.monotonic() - began) * 1000,
            synced_ms,
            ",".join(f"{job}:{round_}" for job, round_ in rounds),
        )

    async def _check_envelope(self, req: BatchRequest, began: float) -> _Envelope:
        """Every check of what the items share (sender, header, the leader's signature); a
        failure refuses the whole batch."""
        ctx, header = self._ctx, req.header
        store = ctx.store
        head = await self._head()
        if req.sent_block + ctx.options.stale_blocks < head:
            raise _reject(422, "Stale", f"message from block {req.sent_block}, head is {head}")
        if header.executor.lower() != req.sender.lower():
            raise _reject(422, "ExecutorMismatch", "the batch's executor is not the sender")
        # Who is asking is settled from the store before any RPC work: a stranger's request
        # never makes this node sync (spend its RPC quota) towards a check block it names.
        if not await ctx.is_epoch_usable(header.epoch, head):
            raise _reject(409, "WrongEpoch", f"epoch {header.epoch} is not current")
        quorums = await ctx.epoch_quorums(header.epoch)
        if quorums is None:
            raise _reject(409, "WrongEpoch", f"epoch {header.epoch} has no quorums here")
        if header.quorum >= len(quorums.quorums):
            raise _reject(
                409, "UnknownQuorum", f"epoch {header.epoch} has no quorum {header.quorum}"
            )
        members = tuple(quorums.quorums[header.quorum])
        addresses = {m.address.lower() for m in members}
        if req.sender.lower() not in addresses:
            raise _reject(403, "NotMember", f"{req.sender} is not in quorum {header.quorum}")
        if ctx.address.lower() not in addresses:
            raise _reject(403, "NotMyQuorum", f"this node is not in quorum {header.quorum}")

        synced_ms = 0.0
        if header.checkBlock > head:
            head = await self._sync_now(header.checkBlock)
            synced_ms = (time.monotonic() - began) * 1000
            if header.checkBlock > head:
                raise _reject(425, "TooEarly", f"not synced to block {header.checkBlock} yet")
        self._check_age(header, head)
        if not await ctx.is_epoch_usable(header.epoch, head):
            raise _reject(409, "WrongEpoch", f"epoch {header.epoch} is no longer current")
        if self._observe_peer is not None:
            self._observe_peer(req.sender, head)

        item_hashes = tuple(req.batch.item_hashes())
        try:
            leader = recover_digest_signer(
                compute_batch_digest_of(header, item_hashes, ctx.domain), req.leader_signature
            )
        except ValueError as exc:
            raise _reject(401, "BadLeaderSignature", str(exc)) from exc
        if leader.lower() != req.sender.lower():
            raise _reject(401, "BadLeaderSignature", "the batch is not signed by the sender")
        # Whatever the checks below decide, a leader's signed batch is evidence: two different
        # results for one round key are proof of equivocation, which this node then submits.
        observed = self._evidence.observe_batch(
            req.batch, leader, req.leader_signature, item_hashes
        )
        for proof in observed:
            report = proof.second.report
            log.warning(
                "equivocation.seen signer=%s job=%d round=%d check_block=%d",
                leader,
                report.jobId,
                report.round,
                report.checkBlock,
            )
            if self._on_equivocation is not None:
                self._on_equivocation(proof)

        block_hash = await store.block_hash(header.checkBlock)
        if block_hash != header.checkBlockHash:
            raise _reject(409, "BlockHashMismatch", f"block {header.checkBlock} differs here")
        check_ts = await store.block_timestamp(header.checkBlock)
        if check_ts is None:
            raise _reject(425, "TooEarly", f"block {header.checkBlock} is not stored")
        return _Envelope(header.quorum, members, head, synced_ms, quorums, check_ts, item_hashes)

    def _check_age(self, header: BatchHeader, head: int) -> None:
        if not head - MAX_CHECK_AGE <= header.checkBlock:
            raise _reject(422, "StaleCheckBlock", f"check block {header.checkBlock} is too old")
        chain_head = self._chain_head() if self._chain_head is not None else head
        if header.checkBlock + MAX_CHECK_AGE < chain_head:
            # This node (or the leader) is catching up: a batch at a head that old is stale
            # on the chain as it is now, whatever this node's store has reached.
            raise _reject(422, "StaleCheckBlock", f"check block {header.checkBlock} is too old")
        if not head <= header.deadline <= header.checkBlock + MAX_CHECK_AGE:
            raise _reject(422, "BadDeadline", f"deadline {header.deadline} out of range")

    @staticmethod
    def _check_next_item(report: Report, payload: bytes, proposal: Proposal, k: int) -> None:
        """Item k of a job in the batch, after its items for rounds r..r+k-1 were accepted
        (`proposal` is this node's result for round r at the check block): round r+k of an
        Event job, whose cursor is the k-th next confirmed log above the job's cursor, and the
        same payload. Its turn is round r's, already checked."""
        if report.round < proposal.round:
            raise _reject(409, "RoundDone", f"job {report.jobId} is at round {proposal.round}")
        if report.round != proposal.round + k:
            raise _missing_round(report)
        if k > len(proposal.next_cursors):
            raise _reject(422, "NotDue", f"job {report.jobId} round {report.round} has no log here")
        if proposal.next_cursors[k - 1] != report.cursor:
            raise _reject(422, "CursorMismatch", f"expected cursor {proposal.next_cursors[k - 1]}")
        if keccak(proposal.payload) != report.payloadHash or proposal.payload != payload:
            raise _reject(422, "PayloadMismatch", "the payload differs from this node's result")

    async def _read_known(
        self, req: BatchRequest, firsts: Sequence[int], envelope: _Envelope
    ) -> _Known:
        """Reads once for the whole batch what `_check_item` asks of each item's job: the
        proposals at the check block (one `due_many`, so the Condition jobs' resolvers go out
        as one RPC batch), the rounds' stored states and where the others opened. Only items
        that pass the store checks before it are evaluated, as one by one."""
        store = self._ctx.store
        if envelope.quorums is None or envelope.check_ts is None:
            return _NOTHING_KNOWN
        jobs: list[Job] = []
        for index in firsts:
            report = req.items[index]
            job = await store.job(report.jobId)
            if job is None or report.round != job.round:
                continue
            if envelope.quorums.for_job(report.jobId).index != envelope.quorum:
                continue
            jobs.append(job)
        check_block = req.header.checkBlock
        try:
            proposals = await self._evaluator.due_many(jobs, check_block, envelope.check_ts)
        except RpcUnavailable:
            return _NOTHING_KNOWN
        rounds = [(job, proposals[job.job_id]) for job in jobs if job.job_id in proposals]
        states = await store.round_states((job.job_id, p.round) for job, p in rounds)
        unopened = [(job, p) for job, p in rounds if (job.job_id, p.round) not in states]
        opened_at = await self._evaluator.opened_at_many(unopened) if unopened else {}
        return _Known(proposals, states, opened_at)

    async def _check_item(
        self, req: BatchRequest, index: int, envelope: _Envelope, known: _Known = _NOTHING_KNOWN
    ) -> Proposal:
        """Every check of one item: its job, quorum and round, this node's own result at the
        check block, and the leader's turn for it. Returns that result. What `known` holds
        (read once for the batch) is taken from it; the rest is read here."""
        ctx, report, payload = self._ctx, req.items[index], req.payloads[index]
        store = ctx.store
        job = await store.job(report.jobId)
        if job is None:
            raise _reject(404, "UnknownJob", f"job {report.jobId} is unknown")
        quorum: QuorumView | None
        if envelope.quorums is not None:
            quorum = envelope.quorums.for_job(report.jobId)
        else:
            quorum = await ctx.quorum_for(report.jobId, report.epoch)
        if quorum is None or quorum.index != envelope.quorum:
            raise _reject(
                409, "WrongQuorum", f"job {report.jobId} is not in quorum {envelope.quorum}"
            )
        if report.round != job.round:
            code = "RoundDone" if report.round < job.round else "WrongRound"
            raise _reject(409, code, f"job {job.job_id} is at round {job.round}")
        check_ts = envelope.check_ts
        if check_ts is None:
            check_ts = await store.block_timestamp(report.checkBlock)
        if check_ts is None:
            raise _reject(425, "TooEarly", f"block {report.checkBlock} is not stored")
        if known.proposals is not None:
            proposal = known.proposals.get(job.job_id)
        else:
            proposal = await self._evaluator.due(job, report.checkBlock, check_ts)
        if proposal is None:
            raise _reject(422, "NotDue", f"job {job.job_id} is not due at {report.checkBlock}")
        if proposal.cursor != report.cursor:
            raise _reject(422, "CursorMismatch", f"expected cursor {proposal.cursor}")
        if keccak(proposal.payload) != report.payloadHash or proposal.payload != payload:
            raise _reject(422, "PayloadMismatch", "the payload differs from this node's result")
        await self._check_turn(req.sender, report, job, envelope, proposal, known)
        return proposal

    async def _check_turn(
        self,
        sender: str,
        report: Report,
        job: Job,
        envelope: _Envelope,
        proposal: Proposal,
        known: _Known = _NOTHING_KNOWN,
    ) -> None:
        """Refuses a leader whose turn for this item has not come (protocol: leader turns).

        The due block is the one this node's leader service stored for the round, else the
        block every node derives the same way (`Evaluator.opened_at_many`, store reads only);
        a round neither tells (a Condition job this node has not yet seen due) is accepted, as
        this node has no clock to judge that turn by. The ranking is the plain one, per
        (epoch, quorum, due block): an overloaded leader steps back, so it only ever leads
        later than its plain turn.
        """
        key = (report.jobId, report.round)
        if known.proposals is not None:
            found = known.round_states.get(key)
            due_block: int | None = (
                found[1] if found is not None else known.opened_at.get(job.job_id)
            )
        else:
            state = await self._ctx.store.round_state(report.jobId, report.round)
            if state is not None:
                due_block = state[1]
            else:
                due_block = (await self._evaluator.opened_at_many([(job, proposal)])).get(
                    job.job_id
                )
        if due_block is None:
            return
        ranked = [
            a.lower()
            for a in rank_batch_members(
                report.epoch, envelope.quorum, due_block, [m.address for m in envelope.members]
            )
        ]
        rank = ranked.index(sender.lower())
        turn_blocks = self._ctx.turn_blocks
        if not is_turn_started(due_block, rank, turn_blocks, envelope.head, TURN_SLACK_BLOCKS):
            raise _reject(
                409,
                "NotYourTurn",
                f"rank {rank} leads from block {due_block + rank * turn_blocks}, "
                f"head is {envelope.head}",
            )

    async def _head(self) -> int:
        head = await self._ctx.store.head()
        return head[0] if head else 0
