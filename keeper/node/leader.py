"""The leader side of agreement: propose a batch, collect threshold signatures, submit once.

Members are ranked per (epoch, quorum, dueBlock); rank k leads from dueBlock + k * turnBlocks,
so the primary goes first and the others are active backups that act only if the round is still
open when their turn comes. Every round one quorum opened at one block has the same primary, and
at a head a leader's rounds of one quorum go out as one batch: one request to each member, one
signature from each, one `execute`. The contract's round and cursor make a second execution
impossible; the turns keep backups from wasting gas while the primary is healthy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from eth_utils.crypto import keccak

from keeper.chain.calls import KeeperCalls, compute_execute_gas
from keeper.chain.sender import TxSender
from keeper.core.jobs import Job, JobStatus
from keeper.core.messages import BatchRequest, BatchResponse, Refusal, split_batch
from keeper.core.quorum import (
    Member,
    compute_signable_items,
    compute_turn_start,
    is_batch_signed,
    pack_signatures,
    rank_batch_members,
)
from keeper.core.report import (
    MAX_BATCH_ITEMS,
    Batch,
    Report,
    compute_batch_digest,
    recover_batch_signer,
    sign_digest,
)
from keeper.core.triggers import compute_event_item_count
from keeper.errors import KeeperError, PeerError, PeerRejected, TooManyInFlight
from keeper.monitor.metrics import NodeMetrics
from keeper.monitor.repeats import RoundLog
from keeper.node.context import NodeContext, QuorumView
from keeper.node.evaluate import Evaluator, Proposal
from keeper.peers.client import PeerClient, SignedRequest

log = logging.getLogger(__name__)

MAX_CONCURRENT_ROUNDS = 32
# Reverts that mean the batch is dead because its rounds are closed: someone else executed
# them (`NothingExecuted`: every item was skipped).
ROUND_CLOSED = {"NothingExecuted", "WrongRound", "CursorNotRaised", "MaxExecutionsReached"}


# A round as stored: status (due | submitted | reopened), due block, data.
RoundState = tuple[str, int, dict[str, Any]]

T = TypeVar("T")


def plan_batches(units: Sequence[Sequence[T]], fits: Callable[[list[T]], bool]) -> list[list[T]]:
    """Packs `units` (each a run of items that must stay together and in order: one job's
    consecutive rounds) into batches greedily in order, each batch one that `fits`. A unit goes
    into the current batch, or starts the next one where more of it fits there; the items of a
    unit that fit in neither are left out (they go at a later head). An item that fits nowhere
    goes alone: nothing smaller can carry it."""

    def prefix(batch: list[T], unit: Sequence[T]) -> int:
        taken = 0
        while taken < len(unit) and fits([*batch, *unit[: taken + 1]]):
            taken += 1
        return taken

    batches: list[list[T]] = []
    current: list[T] = []
    for unit in units:
        if not unit:
            continue
        here = prefix(current, unit) if current else 0
        fresh = max(1, prefix([], unit)) if here < len(unit) else 0
        if fresh > here:
            if current:
                batches.append(current)
            current = list(unit[:fresh])
        else:
            current.extend(unit[:here])
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True)
class DueRound:
    """A round due at this head on one of this node's quorums, with its stored state."""

    job: Job
    quorum: QuorumView
    proposal: Proposal
    state: RoundState


@dataclass(frozen=True)
class _Answer:
    """A member's signature over the batch of the items it accepted (indices into the led
    batch, in order)."""

    accepted: frozenset[int]
    signature: bytes


class _Led:
    """A batch this node leads at this head: its rounds (one quorum), the batch, this node's
    own signature, and the members' answers as they come."""

    def __init__(
        self, rounds: list[tuple[DueRound, int]], batch: Batch, own: bytes, me: str
    ) -> None:
        self.rounds = rounds
        self.batch = batch
        self.own = own
        self.quorum = rounds[0][0].quorum
        self.members: list[Member] = self.quorum.members
        self.thresholds = [due.job.threshold_bps for due, _ in rounds]
        self.payloads = [due.proposal.payload for due, _ in rounds]
        self.answers: dict[str, _Answer] = {me.lower(): _Answer(frozenset(self.everything), own)}

    @property
    def everything(self) -> range:
        return range(len(self.rounds))

    def signatures_over(self, items: frozenset[int]) -> dict[str, bytes]:
        """The signatures whose batch is exactly `items`, by member."""
        return {m: a.signature for m, a in self.answers.items() if a.accepted == items}

    def is_signed(self, items: frozenset[int]) -> bool:
        """Whether the signatures over exactly `items` meet every item's threshold."""
        signers = self.signatures_over(items)
        return bool(items) and is_batch_signed(
            self.members, (self.thresholds[i] for i in items), signers
        )


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
        self._stragglers: set[asyncio.Future[Any]] = set()
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
        # The rounds this node leads here go out as one batch per quorum (whatever their due
        # blocks), split only past MAX_BATCH_ITEMS, the body limit or the gas limit: one
        # request to each member, one signature from each, one execute. An Event job's round
        # brings its next rounds along, one item per confirmed log, right after it.
        by_quorum: dict[int, list[tuple[DueRound, int]]] = {}
        for round_rank in leading:
            by_quorum.setdefault(round_rank[0].quorum.index, []).append(round_rank)
        max_gas = self._max_batch_gas()
        batches = [
            batch
            for rounds in by_quorum.values()
            for batch in plan_batches(
                [self._items_of(due, rank) for due, rank in rounds],
                self._fits(len(rounds[0][0].quorum.members), max_gas),
            )
        ]
        for led in await asyncio.gather(*(self._guarded(b, head, head_hash) for b in batches)):
            results.extend(led)
        self._forget_old(head)
        return results

    def _max_batch_gas(self) -> int:
        """The gas one execute may take: the node's setting, and never above half the latest
        block's gas limit (read with its base fee, when there is one)."""
        limit = self._ctx.options.max_batch_gas
        block_limit = self._sender.block_gas_limit
        return limit if block_limit is None else min(limit, block_limit // 2)

    @staticmethod
    def _fits(members: int, max_gas: int) -> Callable[[list[tuple[DueRound, int]]], bool]:
        """Whether a batch of these items stays within the item, body and gas limits."""

        def fits(items: list[tuple[DueRound, int]]) -> bool:
            return (
                len(items) <= MAX_BATCH_ITEMS
                and len(split_batch([len(due.proposal.payload) for due, _ in items])) == 1
                and compute_execute_gas([due.job.gas_limit for due, _ in items], members) <= max_gas
            )

        return fits

    def _items_of(self, due: DueRound, rank: int) -> list[tuple[DueRound, int]]:
        """The items a led round brings: itself, and for an Event job its next rounds, one
        per next confirmed log (as many as its balance pays for), in cursor order."""
        job, proposal = due.job, due.proposal
        count = compute_event_item_count(
            job.max_executions,
            job.round,
            self._evaluator.affordable_rounds(job),
            1 + len(proposal.next_cursors),
        )
        items = [(replace(due, proposal=replace(proposal, next_cursors=())), rank)]
        for k, cursor in enumerate(proposal.next_cursors[: count - 1], start=1):
            later = replace(
                due,
                job=replace(job, round=job.round + k),
                proposal=replace(proposal, round=job.round + k, cursor=cursor, next_cursors=()),
            )
            items.append((later, rank))
        return items

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
        ranked = rank_batch_members(
            quorum.epoch.epoch, quorum.index, due_block, [m.address for m in quorum.members]
        )
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
        self, rounds: list[tuple[DueRound, int]], head: int, head_hash: bytes
    ) -> list[RoundResult]:
        # Slots are taken for the whole batch at once, one acquirer at a time: two batches each
        # holding part of what they need and waiting for the rest would wait forever.
        # A batch larger than the pool takes all of it: asking for more would wait forever.
        slots = min(len(rounds), MAX_CONCURRENT_ROUNDS)
        async with self._acquiring:
            for _ in range(slots):
                await self._slots.acquire()
        try:
            return await self._lead(rounds, head, head_hash)
        finally:
            for _ in range(slots):
                self._slots.release()

    async def _lead(
        self, rounds: list[tuple[DueRound, int]], head: int, head_hash: bytes
    ) -> list[RoundResult]:
        """Proposes the batch of `rounds` (one quorum), asks each member once, then submits
        the largest item set the answers sign (asking again, in the same turn, those whose
        signature covers another set); a refused item never holds up the rest."""
        led_at = self._clock()
        results: list[RoundResult] = []
        kept = await self._sign_own(rounds, head, head_hash, results)
        if not kept:
            return results
        led = kept
        for due, rank in led.rounds:
            self._round_log.log(
                [(due.job.job_id, due.job.round)],
                "round.lead",
                logging.INFO,
                "round.lead job=%d round=%d rank=%d cursor=%d check_block=%d items=%d",
                due.job.job_id,
                due.job.round,
                rank,
                due.proposal.cursor,
                head,
                len(led.rounds),
            )
        everything = frozenset(led.everything)
        await self._collect(led, led.batch, led.own, head, lambda: led.is_signed(everything))
        chosen = compute_signable_items(
            led.members, led.thresholds, {m: a.accepted for m, a in led.answers.items()}
        )
        if chosen and not led.is_signed(chosen):
            await self._ask_again(led, chosen, head)
        agreed_at = self._clock()
        if not chosen or not led.is_signed(chosen):
            self._note_no_quorum(led, everything)
            results.extend(self._outcomes(led, everything, "no_quorum"))
            return results
        if chosen != everything:
            self._note_no_quorum(led, everything - chosen)
            results.extend(self._outcomes(led, everything - chosen, "no_quorum"))
        results.extend(await self._finish(led, chosen, head, (agreed_at - led_at) * 1000))
        return results

    async def _sign_own(
        self,
        rounds: list[tuple[DueRound, int]],
        head: int,
        head_hash: bytes,
        results: list[RoundResult],
    ) -> _Led | None:
        """The batch of `rounds` with this node's own signature, stored first as one guard row
        per item; a round whose row the guard refuses (this node signed another result for its
        key, before a restart) is dropped as failed, and the rest signed again without it."""
        ctx = self._ctx
        while rounds:
            quorum = rounds[0][0].quorum
            reports = [
                Report(
                    jobId=due.job.job_id,
                    round=due.job.round,
                    epoch=quorum.epoch.epoch,
                    cursor=due.proposal.cursor,
                    checkBlock=head,
                    checkBlockHash=head_hash,
                    payloadHash=keccak(due.proposal.payload),
                    executor=ctx.address,
                    deadline=head + ctx.options.deadline_blocks,
                    quorum=quorum.index,
                )
                for due, _ in rounds
            ]
            batch = Batch.of(reports)
            digest = compute_batch_digest(batch, ctx.domain)
            own = sign_digest(ctx.account.key, digest)
            stored = await ctx.store.record_signatures([(r, digest, own) for r in reports])
            if all(stored):
                return _Led(rounds, batch, own, ctx.address)
            for (due, _), fresh in zip(rounds, stored, strict=True):
                if not fresh:
                    job = due.job
                    self._round_log.log(
                        [(job.job_id, job.round)],
                        "round.conflict",
                        logging.WARNING,
                        "round.conflict job=%d round=%d",
                        job.job_id,
                        job.round,
                    )
                    results.append(RoundResult(job.job_id, job.round, "failed"))
            rounds = [r for r, fresh in zip(rounds, stored, strict=True) if fresh]
        return None

    async def _collect(
        self,
        led: _Led,
        batch: Batch,
        own: bytes,
        head: int,
        done: Callable[[], bool],
        members: Sequence[str] | None = None,
    ) -> None:
        """Asks each other member (or `members`) to sign `batch` (a subset of the led batch:
        answers are mapped back to the led batch's indices) and records the answers in `led`
        until every member answered or `done()`; requests still in flight then run on."""
        me = self._ctx.address.lower()
        wanted = (
            [m.address for m in led.members if m.address.lower() != me]
            if members is None
            else list(members)
        )
        if done() or not wanted:
            return
        positions = [led.batch.items.index(item) for item in batch.items]
        req = BatchRequest.of(
            self._ctx.address, head, batch, [led.payloads[i] for i in positions], own
        )
        body = self._client.sign_batch(req)
        asks: list[asyncio.Future[tuple[str, _Answer] | None]] = []
        for member in wanted:
            endpoint = await self._ctx.store.endpoint(member)
            if endpoint:
                asks.append(
                    asyncio.ensure_future(self._ask(endpoint, member, batch, positions, body, head))
                )
        try:
            for next_answer in asyncio.as_completed(asks):
                answer = await next_answer
                if answer is not None:
                    led.answers[answer[0].lower()] = answer[1]
                    if done():
                        break
        finally:
            self._let_finish(asks)

    async def _ask_again(self, led: _Led, chosen: frozenset[int], head: int) -> None:
        """Asks the members whose accepted set holds `chosen` but whose signature covers
        another set to sign the batch of `chosen`, in this same turn (this node signs it too,
        its guard rows stored first)."""
        ctx = self._ctx
        subset = led.batch.subset(sorted(chosen))
        digest = compute_batch_digest(subset, ctx.domain)
        own = sign_digest(ctx.account.key, digest)
        stored = await ctx.store.record_signatures([(r, digest, own) for r in subset.items])
        if not all(stored):
            return  # cannot happen: the same results as the batch already stored
        me = ctx.address.lower()
        led.answers[me] = _Answer(chosen, own)
        again = [
            m.address
            for m in led.members
            if m.address.lower() != me
            and (a := led.answers.get(m.address.lower())) is not None
            and chosen < a.accepted
        ]
        await self._collect(led, subset, own, head, lambda: led.is_signed(chosen), again)

    async def _ask(
        self,
        endpoint: str,
        member: str,
        batch: Batch,
        positions: list[int],
        body: SignedRequest,
        head: int,
    ) -> tuple[str, _Answer] | None:
        """One member's answer to `batch`, its signature checked over the items it accepted
        (their `positions` in the led batch); None whatever goes wrong, so nothing waits for
        it."""
        rounds = [(r.jobId, r.round) for r in batch.items]
        say = self._round_log.log
        try:
            response = await self._client.request_signatures(endpoint, body, len(batch.items))
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
            return None
        except PeerError as exc:
            say(
                rounds,
                f"peer.unreachable:{member}",
                logging.INFO,
                "peer.unreachable member=%s error=%s",
                member,
                exc,
            )
            return None
        if response.signer.lower() != member.lower():
            say(
                rounds,
                f"peer.bad_signature:{member}",
                logging.WARNING,
                "peer.bad_signature member=%s signer=%s",
                member,
                response.signer,
            )
            return None
        self._observe(member, response.overloaded, head)
        self._note_refusals(member, batch, response)
        if response.signature is None:
            return None  # it accepted no item
        accepted = response.accepted
        try:
            signer = recover_batch_signer(
                batch.subset(accepted), self._ctx.domain, response.signature
            )
        except ValueError:
            signer = ""
        if signer.lower() != member.lower():
            say(
                rounds,
                f"peer.bad_signature:{member}",
                logging.WARNING,
                "peer.bad_signature member=%s items=%d",
                member,
                len(accepted),
            )
            return None
        return member, _Answer(frozenset(positions[i] for i in accepted), response.signature)

    def _note_refusals(self, member: str, batch: Batch, response: BatchResponse) -> None:
        for item, result in zip(batch.items, response.results, strict=True):
            if isinstance(result, Refusal):
                self._round_log.log(
                    [(item.jobId, item.round)],
                    f"peer.refused:{member}:{result.code}",
                    logging.INFO,
                    "peer.refused member=%s code=%s job=%d round=%d reason=%s",
                    member,
                    result.code,
                    item.jobId,
                    item.round,
                    result.reason,
                )

    def _note_no_quorum(self, led: _Led, items: frozenset[int]) -> None:
        for i in sorted(items):
            job = led.rounds[i][0].job
            supporters = [m for m, a in led.answers.items() if i in a.accepted]
            self._round_log.log(
                [(job.job_id, job.round)],
                "round.no_quorum",
                logging.INFO,
                "round.no_quorum job=%d round=%d accepted_by=%d members=%d",
                job.job_id,
                job.round,
                len(supporters),
                len(led.members),
            )

    @staticmethod
    def _outcomes(led: _Led, items: Iterable[int], outcome: str) -> list[RoundResult]:
        rounds = [led.rounds[i][0].job for i in sorted(items)]
        return [RoundResult(job.job_id, job.round, outcome) for job in rounds]

    async def _finish(
        self, led: _Led, chosen: frozenset[int], head: int, agreed_ms: float
    ) -> list[RoundResult]:
        """Simulates and sends the execute of the signed `chosen` items."""
        try:
            return await self._submit(led, chosen, head, agreed_ms)
        except TooManyInFlight as exc:
            # Reached by batches of this very head (the check in `on_head` saw room): the turn
            # passes on, as when the whole head is deferred.
            self._round_log.log(
                self._keys(led, chosen),
                "round.deferred",
                logging.WARNING,
                "round.deferred items=%d error=%s",
                len(chosen),
                exc,
            )
            return self._outcomes(led, chosen, "deferred")
        except KeeperError as exc:
            self._metrics.rounds_failed.inc(len(chosen))
            self._round_log.log(
                self._keys(led, chosen),
                "round.failed",
                logging.WARNING,
                "round.failed items=%d error=%s",
                len(chosen),
                exc,
            )
            return self._outcomes(led, chosen, "failed")

    @staticmethod
    def _keys(led: _Led, items: Iterable[int]) -> list[tuple[int, int]]:
        return [(led.rounds[i][0].job.job_id, led.rounds[i][0].job.round) for i in sorted(items)]

    async def _submit(
        self, led: _Led, chosen: frozenset[int], head: int, agreed_ms: float
    ) -> list[RoundResult]:
        ctx = self._ctx
        order = sorted(chosen)
        batch = led.batch.subset(order)
        keys = self._keys(led, order)
        signatures = led.signatures_over(chosen)
        # Agreement latency (benchmarks/latency.py reads it, one line per round): from leading
        # to threshold stake.
        for i in order:
            due, rank = led.rounds[i]
            self._round_log.log(
                [(due.job.job_id, due.job.round)],
                "round.threshold",
                logging.INFO,
                "round.threshold job=%d round=%d rank=%d signers=%d ms=%.1f items=%d",
                due.job.job_id,
                due.job.round,
                rank,
                len(signatures),
                agreed_ms,
                len(order),
            )
        bitmap, packed = pack_signatures(led.members, signatures)
        payloads = [led.payloads[i] for i in order]
        data = self._calls.execute_data(batch, payloads, led.members, bitmap, packed)
        gas = compute_execute_gas([led.rounds[i][0].job.gas_limit for i in order], len(led.members))
        tm = str(self._calls.task_manager.address)
        executed, revert = await self._calls.simulate_execute(ctx.address, tm, data, gas)
        if revert is not None and revert.error_name not in ROUND_CLOSED:
            self._round_log.log(
                keys,
                "round.simulation_failed",
                logging.WARNING,
                "round.simulation_failed items=%d error=%s",
                len(order),
                revert,
            )
            self._metrics.rounds_failed.inc(len(order))
            return self._outcomes(led, order, "failed")
        ran = [i for bit, i in enumerate(order) if revert is None and executed >> bit & 1]
        skipped = [i for i in order if i not in ran]
        results = self._outcomes(led, skipped, "closed")
        if not ran:
            return results
        purpose = "execute:" + ",".join(f"{job}:{round_}" for job, round_ in keys)
        tx_hash = await self._sender.send(tm, data, gas, purpose)
        tx = "0x" + tx_hash.hex()
        for i in ran:
            due = led.rounds[i][0]
            await ctx.store.save_round(
                due.job.job_id,
                due.job.round,
                "submitted",
                head,
                {"tx": tx, "cursor": due.proposal.cursor, "signers": len(signatures)},
            )
        self._metrics.executions_submitted.inc()
        self._round_log.log(
            self._keys(led, ran),
            "round.submitted",
            logging.INFO,
            "round.submitted items=%d tx=%s signers=%d skipped=%d",
            len(ran),
            tx,
            len(signatures),
            len(skipped),
        )
        return results + self._outcomes(led, ran, "submitted")

    def _let_finish(self, peers: Sequence[asyncio.Future[Any]]) -> None:
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
