"""Decides whether a job's next round is due at a check block, and with what cursor and payload.

Leaders call it at their head to propose; members call it at the leader's check block to
re-derive the same result before signing. Both read the block's timestamp from the header and
the resolver at that block number, so honest keepers agree deterministically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_abi.abi import decode as abi_decode

from keeper.chain.reader import MAX_RPC_BATCH, ChainReader
from keeper.core.jobs import (
    NO_PAYLOAD,
    Job,
    JobStatus,
    compute_min_balance,
    compute_next_base_fee_bound,
)
from keeper.core.triggers import (
    MAX_EVENT_ITEMS,
    NextFireTime,
    TriggerKind,
    compute_cron_cursor,
    compute_cron_next_fire,
    compute_event_item_count,
    compute_time_cursor,
    is_condition_due,
    is_cron_fire_due,
    is_job_active_at,
    split_event_cursor,
)
from keeper.store.db import Store

log = logging.getLogger(__name__)

MAX_REMEMBERED_FIRES = 1 << 16  # (expression, start, cursor) -> next fire entries kept


@dataclass(frozen=True)
class Proposal:
    """What a round would execute: the job, its next round, the cursor and the payload (the
    resolver's result for a Condition job, NO_PAYLOAD for the others: their call is in their
    forwarder's code).

    An Event job's proposal also carries the cursors of its next confirmed logs after `cursor`
    (rounds round+1, round+2, ... in cursor order, same payload): one batch may work them off
    together."""

    job_id: int
    round: int
    cursor: int
    payload: bytes
    next_cursors: tuple[int, ...] = ()


@dataclass(frozen=True)
class Billing:
    """The TaskManager's billing constants, read once at start."""

    gas_price_cap: int
    premium: int
    max_priority_fee: int = 0


class CronFires:
    """Each Cron job's next fire after its last cursor, computed once and kept until the
    cursor moves: a pure function of (expression, start, last cursor), so keeping it changes
    no answer, and a head where nothing is due costs one comparison per Cron job instead of a
    walk over the schedule."""

    def __init__(self, cron: Callable[[str], NextFireTime], limit: int = MAX_REMEMBERED_FIRES):
        self._cron = cron
        self._limit = limit
        self._schedules: dict[str, NextFireTime] = {}
        self._fires: dict[tuple[str, int, int], int | None] = {}

    def schedule(self, expr: str) -> NextFireTime:
        found = self._schedules.get(expr)
        if found is None:
            found = self._schedules[expr] = self._cron(expr)
        return found

    def next_fire(self, expr: str, start: int, last_cursor: int) -> int | None:
        key = (expr, start, last_cursor)
        if key in self._fires:
            return self._fires[key]
        if len(self._fires) >= self._limit:
            # the oldest entries first: a job whose cursor moved never asks for them again
            for stale in list(self._fires)[: self._limit // 2]:
                del self._fires[stale]
        fire = self._fires[key] = compute_cron_next_fire(self.schedule(expr), start, last_cursor)
        return fire

    def cursor(
        self, expr: str, start: int, now_ts: int, last_cursor: int, end_time: int
    ) -> int | None:
        """compute_cron_cursor's answer, walking the schedule only when a fire is due."""
        if not is_cron_fire_due(self.next_fire(expr, start, last_cursor), now_ts, end_time):
            return None
        return compute_cron_cursor(self.schedule(expr), start, now_ts, last_cursor, end_time)


class Evaluator:
    """Evaluates jobs at a block: the Event jobs' next logs in one store query, the Condition
    jobs' resolvers in JSON-RPC batches of at most `max_batch` calls."""

    def __init__(
        self,
        reader: ChainReader,
        store: Store,
        billing: Billing,
        cron: Callable[[str], NextFireTime],
        max_batch: int = MAX_RPC_BATCH,
        on_resolvers: Callable[[Sequence[Job], list[bytes | None], int], None] | None = None,
    ) -> None:
        self._on_resolvers = on_resolvers  # what the resolvers said, for the job views
        self._reader = reader
        self._store = store
        self._billing = billing
        self._cron = CronFires(cron)
        self._max_batch = max_batch
        # the latest block's base fee (None: not seen yet, or a chain without one), for the
        # contract's minimum balance, which follows the price of the block that executes
        self.base_fee: int | None = None

    def note_base_fee(self, base_fee: int | None) -> None:
        self.base_fee = base_fee

    def min_balance(self, job: Job) -> int:
        """What the contract will ask a job to hold to execute in the next block or two: one
        worst-case execution at the highest price the next block can bill."""
        b = self._billing
        base_fee = None if self.base_fee is None else compute_next_base_fee_bound(self.base_fee)
        return compute_min_balance(
            job.gas_limit, b.gas_price_cap, b.premium, job.max_gas_price, base_fee,
            b.max_priority_fee,
        )  # fmt: skip

    def affordable_rounds(self, job: Job) -> int:
        """How many worst-case executions the job's balance pays for now."""
        need = self.min_balance(job)
        return job.balance // need if need > 0 else MAX_EVENT_ITEMS

    def is_eligible(self, job: Job, check_ts: int) -> bool:
        """Active, within its window and limits, and funded for a worst-case execution."""
        if job.status != JobStatus.Active or not is_job_active_at(job.rules, check_ts):
            return False
        return job.balance >= self.min_balance(job)

    async def due(self, job: Job, check_block: int, check_ts: int) -> Proposal | None:
        return (await self.due_many([job], check_block, check_ts)).get(job.job_id)

    async def due_many(
        self, jobs: Sequence[Job], check_block: int, check_ts: int
    ) -> dict[int, Proposal]:
        """Proposals for the due jobs among `jobs`, keyed by job id."""
        out: dict[int, Proposal] = {}
        conditions: list[Job] = []
        events: list[Job] = []
        for job in jobs:
            if not self.is_eligible(job, check_ts):
                continue
            if job.kind == TriggerKind.Condition:
                t = job.trigger
                if is_condition_due(check_block, job.last_cursor, t.min_interval):
                    conditions.append(job)
                continue
            if job.kind == TriggerKind.Event:
                events.append(job)
                continue
            cursor = self._scheduled_cursor(job, check_ts)
            if cursor is not None:
                out[job.job_id] = Proposal(job.job_id, job.round, cursor, NO_PAYLOAD)
        if events:
            # Event: the oldest matched logs above the cursor that have their confirmations,
            # one per round, as many as the job has rounds left (MAX_EVENT_ITEMS at most).
            runs = await self._store.next_job_log_runs(
                (
                    job.job_id,
                    job.last_cursor,
                    check_block - job.trigger.confirmations,
                    compute_event_item_count(job.max_executions, job.round, MAX_EVENT_ITEMS),
                )
                for job in events
            )
            for job in events:
                cursors = runs.get(job.job_id)
                if cursors:
                    out[job.job_id] = Proposal(
                        job.job_id, job.round, cursors[0], NO_PAYLOAD, tuple(cursors[1:])
                    )
        if conditions:
            results = await self._call_resolvers(conditions, check_block)
            for job, result in zip(conditions, results, strict=True):
                if result is not None:
                    out[job.job_id] = Proposal(job.job_id, job.round, check_block, result)
        return out

    async def opened_at_many(self, rounds: Sequence[tuple[Job, Proposal]]) -> dict[int, int]:
        """The block from which every node counts each round's leader turns, keyed by job id:
        where the proposed slot or log fell due, and not before the event that let the round
        open. Left out where a node cannot tell: a Condition resolver may say "now" at any block.
        One store read serves all the Time and Cron slots.

        Counting from when *this* node first saw the round due made turns differ between nodes
        that lag each other, so two backups could believe the same turn theirs.
        """
        slots = [p.cursor for job, p in rounds if job.kind in (TriggerKind.Time, TriggerKind.Cron)]
        first_blocks = await self._store.first_blocks_at(slots)
        out: dict[int, int] = {}
        for job, proposal in rounds:
            if job.kind in (TriggerKind.Time, TriggerKind.Cron):
                fired = first_blocks.get(proposal.cursor)
            elif job.kind == TriggerKind.Event:
                log_block, _ = split_event_cursor(proposal.cursor)
                fired = log_block + job.trigger.confirmations
            else:
                continue
            if fired is not None:
                out[job.job_id] = max(fired, job.opened_block + 1)
        return out

    def _scheduled_cursor(self, job: Job, check_ts: int) -> int | None:
        t = job.trigger
        if job.kind == TriggerKind.Time:
            return compute_time_cursor(
                job.start_time, t.interval, check_ts, job.last_cursor, job.end_time
            )
        return self._cron.cursor(t.cron, job.start_time, check_ts, job.last_cursor, job.end_time)

    async def _call_resolvers(self, jobs: Sequence[Job], block: int) -> list[bytes | None]:
        targets = [(job.trigger.resolver, job.trigger.resolver_calldata) for job in jobs]
        raws = await self._reader.call_resolvers(targets, block, self._max_batch)
        if self._on_resolvers is not None:
            self._on_resolvers(jobs, raws, block)
        return [self._decode_resolver(job, raw) for job, raw in zip(jobs, raws, strict=True)]

    @staticmethod
    def _decode_resolver(job: Job, raw: bytes | None) -> bytes | None:
        if raw is None:
            return None
        try:
            can_exec, data = abi_decode(["bool", "bytes"], raw)
        except Exception:  # a resolver returning garbage is never due
            log.warning("resolver.malformed job=%d", job.job_id)
            return None
        return bytes(data) if can_exec else None
