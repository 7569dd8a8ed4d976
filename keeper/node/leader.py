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
from keeper.core.messages import MAX_BATCH_ITEMS, BatchItem, Refusal, ReportBatch, split_batch
from keeper.core.quorum import (
    SignatureTally,
    compute_turn_start,
    pack_signatures,
    rank_members,
)
from keeper.core.report import (
    Report,
    compute_report_digest,
    recover_report_signer,
    sign_report,
)
from keeper.errors import KeeperError, PeerError, PeerRejected, TooManyInFlight
from keeper.monitor.metrics import NodeMetrics
from keeper.monitor.repeats import RoundLog
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


class _Led:
    """A round this node leads at this head: its report, own signature and tally, and an
    event set once the tally is settled (threshold met, or no member left to answer)."""

    def __init__(
        self,
        due: DueRound,
        rank: int,
        report: Report,
        digest: bytes,
        own: bytes,
        tally: SignatureTally,
    ) -> None:
        self.due, self.rank, self.report, self.digest, self.own = due, rank, report, digest, own
        self.tally = tally
        self.settled = asyncio.Event()

    def add(self, member: str, signature: bytes) -> None:
        self.tally.add(member, signature)
        self._check()

    def refuse(self, member: str) -> None:
        self.tally.refuse(member)
        self._check()

    def _check(self) -> None:
        if self.tally.settled:
            self.settled.set()


@dataclass(frozen=True)
class RoundResult:
    job_id: int
    round: int
    outcome: str  # waiting | deferred | submitted | closed | no_quorum | failed


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
        self._acquiring = asyncio.Lock()  # one batch at a time takes its slots
        self._pending: set[str] = set()  # hashes of this node's pending transactions
        # Requests still in flight after their round reached threshold: they run to their end
        # (a cancelled HTTP exchange closes its keep-alive connection, and the next round to
        # that member would pay a new one); `close` cancels them.
        self._stragglers: set[asyncio.Future[None]] = set()
        # What members said of their load in their last answer: address -> (overloaded, block),
        # for status and metrics; rankings never use it (views of it differ between members).
        self.peer_load: dict[str, tuple[bool, int]] = {}
        # A round that waits or retries for many heads logs each kind of line once, then counts.
        self._round_log = RoundLog(log)

    async def on_head(self, head: int, head_hash: bytes, head_ts: int) -> list[RoundResult]:
        """Evaluates this node's jobs at the new head and leads those whose turn it is."""
        store = self._ctx.store
        quorums = await self._ctx.epoch_quorums()
        if quorums is None:
            return []
        me = self._ctx.address
        mine: list[tuple[Job, QuorumView]] = []
        for job in await store.jobs(JobStatus.Active):
            quorum = quorums.for_job(job.job_id)
            if quorum.has(me):
                mine.append((job, quorum))
        self._round_log.retire((job.job_id, job.round) for job, _ in mine)
        if mine:
            self._evaluator.note_base_fee(await self._sender.base_fee_at(head))
        mine = await self._affordable(mine)
        proposals = await self._evaluator.due_many([j for j, _ in mine], head, head_ts)
        due = [(job, quorum) for job, quorum in mine if job.job_id in proposals]
        pending = await store.pending_txs("pending") if due else []
        self._pending = {"0x" + p.tx_hash.hex() for p in pending}
        states = await self._open_rounds([(job, proposals[job.job_id]) for job, _ in due], head)
        if due and not self._sender.has_room(pending):
            # Every send would be refused: asking members to sign would only cost them. The
            # turn passes to the backups, who execute if this node stays stuck.
            self._round_log.log(
                [(job.job_id, job.round) for job, _ in due],
                "round.deferred",
                logging.WARNING,
                "round.deferred reason=too_many_in_flight head=%d rounds=%d limit=%d",
                head,
                len(due),
                self._sender.max_in_flight,
            )
            return [RoundResult(job.job_id, job.round, "deferred") for job, _ in due]
        results: list[RoundResult] = []
        leading: list[tuple[DueRound, int]] = []
        for job, quorum in due:
            round_ = DueRound(job, quorum, proposals[job.job_id], states[(job.job_id, job.round)])
            rank = self._my_turn(round_, head)
            if rank is None:
                results.append(RoundResult(job.job_id, job.round, "waiting"))
            else:
                leading.append((round_, rank))
        # One batch request per member carries every round this node leads here (up to
        # MAX_BATCH_ITEMS): at one head a leader often leads several, and each exchange costs
        # both sides CPU that every other round of the block is waiting for.
        batches = [
            leading[i : i + MAX_BATCH_ITEMS] for i in range(0, len(leading), MAX_BATCH_ITEMS)
        ]
        for led in await asyncio.gather(*(self._guarded(b, head, head_hash) for b in batches)):
            results.extend(led)
        self._forget_old(head)
        return results

    async def _affordable(self, mine: list[tuple[Job, QuorumView]]) -> list[tuple[Job, QuorumView]]:
        """Drops jobs whose own maximum gas price is below what a transaction costs now: the
        TaskManager would bill them at most that, so they wait until the price falls."""
        if not any(job.max_gas_price for job, _ in mine):
            return mine
        price = await self._sender.expected_gas_price()
        kept = [(job, q) for job, q in mine if not job.is_priced_out(price)]
        for job, _ in mine:
            if job.is_priced_out(price):
                self._round_log.log(
                    [(job.job_id, job.round)],
                    "round.priced_out",
                    logging.INFO,
                    "round.priced_out job=%d max_gas_price=%d gas_price=%d",
                    job.job_id,
                    job.max_gas_price,
                    price,
                )
        return kept

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

    def _my_turn(self, due: DueRound, head: int) -> int | None:
        """This node's rank if it is to lead `due` at `head` (noting the attempt), else None."""
        me = self._ctx.address
        job, quorum = due.job, due.quorum
        status, due_block, data = due.state
        if status == "submitted" and str(data.get("tx", "")) in self._pending:
            return None
        ranked = rank_members(job.job_id, job.round, [m.address for m in quorum.members])
        my_rank = next(i for i, a in enumerate(ranked) if a.lower() == me.lower())
        if self._is_overloaded():
            # Step back behind every member. Only the node itself moves: the others keep the
            # plain ranking, so no two members ever believe the same turn is theirs.
            my_rank += len(ranked)
        turn = compute_turn_start(due_block, my_rank, self._ctx.turn_blocks)
        key = (job.job_id, job.round)
        if head < turn or self._attempted.get(key) == head:
            return None
        self._attempted[key] = head
        return my_rank

    async def _guarded(
        self, batch: list[tuple[DueRound, int]], head: int, head_hash: bytes
    ) -> list[RoundResult]:
        # Slots are taken for the whole batch at once, one acquirer at a time: two batches each
        # holding part of what they need and waiting for the rest would wait forever.
        async with self._acquiring:
            for _ in batch:
                await self._slots.acquire()
        try:
            return await self._lead(batch, head, head_hash)
        finally:
            for _ in batch:
                self._slots.release()

    async def _lead(
        self, batch: list[tuple[DueRound, int]], head: int, head_hash: bytes
    ) -> list[RoundResult]:
        """Proposes every round of `batch`, asks each member once for all of them, and takes
        each round on to its transaction as soon as its own threshold is met."""
        ctx = self._ctx
        led_at = self._clock()
        led = [self._propose(due, rank, head, head_hash) for due, rank in batch]
        stored = await ctx.store.record_signatures([(r.report, r.digest, r.own) for r in led])
        results: list[RoundResult] = []
        live: list[_Led] = []
        for r, fresh in zip(led, stored, strict=True):
            job = r.due.job
            if not fresh:
                self._round_log.log(
                    [(job.job_id, job.round)],
                    "round.conflict",
                    logging.WARNING,
                    "round.conflict job=%d round=%d",
                    job.job_id,
                    job.round,
                )
                results.append(RoundResult(job.job_id, job.round, "failed"))
                continue
            self._round_log.log(
                [(job.job_id, job.round)],
                "round.lead",
                logging.INFO,
                "round.lead job=%d round=%d rank=%d cursor=%d check_block=%d",
                job.job_id,
                job.round,
                r.rank,
                r.due.proposal.cursor,
                head,
            )
            live.append(r)
        asks = await self._ask_members(live, head)
        try:
            results.extend(await asyncio.gather(*(self._finish(r, head, led_at) for r in live)))
        finally:
            self._let_finish(asks)
        return results

    def _propose(self, due: DueRound, rank: int, head: int, head_hash: bytes) -> _Led:
        ctx = self._ctx
        job = due.job
        report = Report(
            jobId=job.job_id,
            round=job.round,
            epoch=due.quorum.epoch.epoch,
            cursor=due.proposal.cursor,
            checkBlock=head,
            checkBlockHash=head_hash,
            payloadHash=keccak(due.proposal.payload),
            executor=ctx.address,
            deadline=head + ctx.options.deadline_blocks,
        )
        own = sign_report(ctx.account.key, report, ctx.domain)
        digest = compute_report_digest(report, ctx.domain)
        tally = SignatureTally(due.quorum.members, job.threshold_bps)
        led = _Led(due, rank, report, digest, own, tally)
        led.add(ctx.address, own)
        return led

    async def _ask_members(self, led: list[_Led], head: int) -> list[asyncio.Future[None]]:
        """Sends each other member one batch (split only past MAX_BATCH_ITEMS or the body
        limit) of the rounds it is asked to sign; the answers land in the rounds' tallies."""
        me = self._ctx.address.lower()
        wanted: dict[str, list[_Led]] = {}
        for r in led:
            if r.settled.is_set():  # this node's stake alone meets the threshold
                continue
            for m in r.due.quorum.members:
                if m.address.lower() != me:
                    wanted.setdefault(m.address, []).append(r)
        signed: dict[tuple[int, ...], SignedRequest] = {}  # one body per set of rounds
        asks: list[asyncio.Future[None]] = []
        for member, rounds in wanted.items():
            endpoint = await self._ctx.store.endpoint(member)
            if not endpoint:
                for r in rounds:
                    r.refuse(member)
                continue
            for part in split_batch([len(r.due.proposal.payload) for r in rounds]):
                chunk = [rounds[i] for i in part]
                key = tuple(id(r) for r in chunk)
                if key not in signed:
                    items = tuple(BatchItem(r.report, r.due.proposal.payload, r.own) for r in chunk)
                    signed[key] = self._client.sign_batch(
                        ReportBatch(self._ctx.address, head, items)
                    )
                asks.append(
                    asyncio.ensure_future(self._ask(endpoint, member, chunk, signed[key], head))
                )
        return asks

    async def _ask(
        self, endpoint: str, member: str, chunk: list[_Led], body: SignedRequest, head: int
    ) -> None:
        """One member's answers to one batch, each checked and counted in its round's tally;
        whatever goes wrong (or if cancelled), the member counts as refusing what it did not
        sign, so no round waits for it."""
        rounds = [(r.report.jobId, r.report.round) for r in chunk]
        say = self._round_log.log
        try:
            try:
                response = await self._client.request_signatures(endpoint, body, len(chunk))
            except PeerRejected as exc:
                say(
                    rounds,
                    f"peer.refused:{member}:{exc.code}",
                    logging.INFO,
                    "peer.refused member=%s code=%s reason=%s",
                    member,
                    exc.code,
                    exc.reason,
                )
                return
            except PeerError as exc:
                say(
                    rounds,
                    f"peer.unreachable:{member}",
                    logging.INFO,
                    "peer.unreachable member=%s error=%s",
                    member,
                    exc,
                )
                return
            if response.signer.lower() != member.lower():
                say(
                    rounds,
                    f"peer.bad_signature:{member}",
                    logging.WARNING,
                    "peer.bad_signature member=%s signer=%s",
                    member,
                    response.signer,
                )
                return
            self._observe(member, response.overloaded, head)
            for r, result in zip(chunk, response.results, strict=True):
                key = [(r.report.jobId, r.report.round)]
                if isinstance(result, Refusal):
                    say(
                        key,
                        f"peer.refused:{member}:{result.code}",
                        logging.INFO,
                        "peer.refused member=%s code=%s job=%d round=%d reason=%s",
                        member,
                        result.code,
                        r.report.jobId,
                        r.report.round,
                        result.reason,
                    )
                    continue
                try:
                    signer = recover_report_signer(r.report, self._ctx.domain, result)
                except ValueError:
                    signer = ""
                if signer.lower() != member.lower():
                    say(
                        key,
                        f"peer.bad_signature:{member}",
                        logging.WARNING,
                        "peer.bad_signature member=%s job=%d",
                        member,
                        r.report.jobId,
                    )
                    continue
                r.add(member, result)
        finally:
            for r in chunk:
                r.refuse(member)

    async def _finish(self, r: _Led, head: int, led_at: float) -> RoundResult:
        """Waits for the round's threshold, then simulates and sends its execution."""
        job = r.due.job
        key = [(job.job_id, job.round)]
        try:
            return await self._submit(r, head, led_at)
        except TooManyInFlight as exc:
            # Reached by rounds of this very head (the check in `on_head` saw room): the turn
            # passes on, as when the whole head is deferred.
            self._round_log.log(
                key,
                "round.deferred",
                logging.WARNING,
                "round.deferred job=%d round=%d error=%s",
                job.job_id,
                job.round,
                exc,
            )
            return RoundResult(job.job_id, job.round, "deferred")
        except KeeperError as exc:
            self._metrics.rounds_failed.inc()
            self._round_log.log(
                key,
                "round.failed",
                logging.WARNING,
                "round.failed job=%d round=%d error=%s",
                job.job_id,
                job.round,
                exc,
            )
            return RoundResult(job.job_id, job.round, "failed")

    async def _submit(self, r: _Led, head: int, led_at: float) -> RoundResult:
        ctx = self._ctx
        job, quorum, proposal, report = r.due.job, r.due.quorum, r.due.proposal, r.report
        await r.settled.wait()
        # Agreement latency (benchmarks/latency.py reads it): from leading to threshold stake,
        # taken when this round's own work goes on, where it was taken before batches.
        agreed_at = self._clock()
        tally = r.tally
        key = [(job.job_id, job.round)]
        if not tally.reached:
            self._round_log.log(
                key,
                "round.no_quorum",
                logging.INFO,
                "round.no_quorum job=%d round=%d signed=%d total=%d",
                job.job_id,
                job.round,
                tally.signed_stake,
                tally.total_stake,
            )
            return RoundResult(job.job_id, job.round, "no_quorum")
        signatures = dict(tally.signatures)
        self._round_log.log(
            key,
            "round.threshold",
            logging.INFO,
            "round.threshold job=%d round=%d rank=%d signers=%d ms=%.1f",
            job.job_id,
            job.round,
            r.rank,
            len(signatures),
            (agreed_at - led_at) * 1000,
        )
        bitmap, packed = pack_signatures(quorum.members, signatures)
        data = self._calls.execute_data(report, proposal.payload, quorum.members, bitmap, packed)
        gas = compute_execute_gas(job.gas_limit, len(quorum.members))
        tm = str(self._calls.task_manager.address)
        revert = await self._calls.simulate(ctx.address, tm, data, gas)
        if revert is not None:
            if revert.error_name in ROUND_CLOSED:
                return RoundResult(job.job_id, job.round, "closed")
            self._round_log.log(
                key,
                "round.simulation_failed",
                logging.WARNING,
                "round.simulation_failed job=%d round=%d error=%s",
                job.job_id,
                job.round,
                revert,
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
        self._round_log.log(
            key,
            "round.submitted",
            logging.INFO,
            "round.submitted job=%d round=%d tx=0x%s signers=%d",
            job.job_id,
            job.round,
            tx_hash.hex(),
            len(signatures),
        )
        return RoundResult(job.job_id, job.round, "submitted")

    def _let_finish(self, peers: Sequence[asyncio.Future[None]]) -> None:
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

    def _forget_old(self, head: int) -> None:
        for key in [k for k, block in self._attempted.items() if block < head - 256]:
            del self._attempted[key]
