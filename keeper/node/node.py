"""One keeper node: follows the chain, leads and signs rounds, rotates epochs, serves peers.

Built by `keeper.app` from Settings (or directly by tests, several per process). The loop skips
nothing silently: an unreachable RPC marks the node unhealthy and it retries by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from keeper.chain.calls import KeeperCalls, compute_rotate_gas
from keeper.chain.contracts import Deployment, bind
from keeper.chain.follower import ChainFollower, Header
from keeper.chain.heads import HeadWatcher
from keeper.chain.reader import ChainReader
from keeper.chain.sender import TxSender
from keeper.core.doom import (
    compute_rotate_doom_reason,
    compute_rotate_purpose,
    compute_slash_doom_reason,
    compute_slash_purpose,
    get_rotate_epoch,
    get_slash_signer,
)
from keeper.core.equivocation import Equivocation
from keeper.core.fees import FeePolicy
from keeper.core.jobs import JobStatus
from keeper.core.messages import BatchRequest, BatchResponse
from keeper.core.quorum import compute_turn_start, rank_members
from keeper.core.ratelimit import RateLimit
from keeper.core.redact import redact_urls
from keeper.core.report import MAX_CHECK_AGE, Domain, compute_batch_doom_reason
from keeper.core.rotation import EpochTiming, is_rotation_possible
from keeper.core.types import Wei
from keeper.errors import KeeperError, PeerRejected, RpcUnavailable, TooManyInFlight
from keeper.monitor.health import HealthFacts, HealthLimits, assess_health
from keeper.monitor.load import LoadMonitor
from keeper.monitor.metrics import NodeMetrics
from keeper.node.context import NodeContext, NodeOptions
from keeper.node.cron_calendar import cron_next_fire
from keeper.node.evaluate import Billing, Evaluator
from keeper.node.heap import HeapFreezer
from keeper.node.job_states import JobBook, JobViews
from keeper.node.leader import LeaderService
from keeper.node.member import MemberService
from keeper.node.tasks import cancel_and_wait
from keeper.peers.client import PeerClient
from keeper.peers.server import AdminServer, PeerServer
from keeper.store.db import Store

log = logging.getLogger(__name__)

# Seconds between polls while new heads are pushed (a missed push costs at most this).
PUSHED_POLL_INTERVAL = 1.0
# Seconds after a head before the loop checks rotate() and counts executions.
HOUSEKEEPING_DELAY = 0.25
# The rotate() ranking uses job id 0 (jobs start at 1) and the current epoch as the round.
ROTATE_JOB_ID = 0
# Blocks between two reads of the account's balance and earnings for the metrics.
FUNDS_EVERY_BLOCKS = 10
# Gas of slashEquivocation: two signature recoveries and the registry's slash.
SLASH_GAS = 300_000


class KeeperNode:
    """A keeper node; `start()` it, `stop()` it. Implements the peer API handler."""

    def __init__(
        self,
        *,
        w3: AsyncWeb3[Any],
        account: LocalAccount,
        deployment: Deployment,
        store: Store,
        options: NodeOptions,
        fee_policy: FeePolicy | None = None,
        load: LoadMonitor | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.store = store
        self.options = options
        self._clock = clock
        self._wall_clock = wall_clock  # only to tell how old the newest block is, for health
        self.health_limits = HealthLimits(unhealthy_after=options.unhealthy_after)
        contracts = bind(w3, deployment)
        self.ctx = NodeContext(
            account=account,
            domain=Domain(deployment.chain_id, deployment.task_manager),
            store=store,
            options=options,
        )
        self.node_metrics = NodeMetrics()
        self.load = load or LoadMonitor(
            options.max_cpu_percent, options.max_memory_percent, interval=options.load_interval
        )
        self.calls = KeeperCalls(w3, contracts.registry, contracts.task_manager)
        self.follower = ChainFollower(
            w3,
            contracts.registry,
            contracts.task_manager,
            store,
            start_block=deployment.block,
            reorg_depth=options.reorg_depth,
            max_range=options.max_sync_range,
            member=account.address,
            # The latest block's fees, read at a poll: the leader's pass needs no read of them.
            on_fees=lambda number, fee, limit: self.sender.note_fees(number, fee, limit),
        )
        self.sender = TxSender(
            w3,
            account,
            store,
            fee_policy or FeePolicy(),
            deployment.chain_id,
            max_in_flight=options.max_in_flight,
            doom_check=self._doom_of,
        )
        self.client = PeerClient(bytes(account.key), account.address, timeout=options.peer_timeout)
        self.reader = ChainReader(w3)
        self.evaluator: Evaluator | None = None
        self.job_book = JobBook()  # what the node saw of each job, for the job views
        self.heap = HeapFreezer()  # long-lived objects out of the full GC's walk
        self.job_views: JobViews | None = None
        self.leader: LeaderService | None = None
        self.member: MemberService | None = None
        self.server = PeerServer(
            self,
            rate_limit=RateLimit(options.peer_rate_per_second, options.peer_rate_burst),
            ip_rate_limit=RateLimit(options.peer_ip_rate_per_second, options.peer_ip_rate_burst),
            clock=clock,
        )
        self.admin_server = AdminServer(self)
        self.port = 0
        self.admin_port = 0
        self._scheduler = AsyncIOScheduler()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # set by a pushed head (or stop): tick now, not at the poll
        self.heads = (
            HeadWatcher(options.ws_url, self._on_pushed_head, on_fees=self.sender.note_fees)
            if options.ws_url
            else None
        )
        self._heads_task: asyncio.Task[None] | None = None
        self._last_ok = clock()
        self._last_error = ""
        self._chain_head = 0
        self._rotate_due: dict[int, int] = {}
        self._epoch_timing: EpochTiming | None = None
        self._executions_seen = (0, 0)  # (executions, successes) already counted in metrics
        self._passed: tuple[int, bytes] | None = None  # the head the last full pass handled
        self._housekeeping_head: int | None = None  # a head whose rotate check is still to do
        self._funds_block: int | None = None  # the head of the last balance/earnings read
        self._proving: set[asyncio.Task[None]] = set()  # slashEquivocation sends under way
        self._proven: set[str] = set()  # signers this node has already proven equivocating

    @property
    def address(self) -> str:
        return self.ctx.address

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, loop: bool = True) -> None:
        """Resumes from the store, starts the peer API and (unless `loop` is False, for tests
        that drive `tick()` themselves) the loop."""
        await self.follower.resume()
        self.ctx.turn_blocks = await self.calls.turn_blocks()
        terms = await self.calls.billing()
        self.sender.bound_by_contract(Wei(terms.gas_price_cap), Wei(terms.max_priority_fee))
        await self.sender.start()
        billing = Billing(terms.gas_price_cap, terms.premium, terms.max_priority_fee)
        self.evaluator = Evaluator(
            self.reader,
            self.store,
            billing,
            cron_next_fire,
            self.options.max_rpc_batch,
            on_resolvers=self.job_book.saw_resolvers,
        )
        self.job_views = JobViews(
            self.ctx,
            self.w3,
            self.sender,
            self.evaluator.min_balance,
            cron_next_fire,
            self.job_book,
        )
        self.member = MemberService(
            self.ctx,
            self.evaluator,
            self.node_metrics,
            self.sync_now,
            lambda: self.load.latest.overloaded,
            None,
            self._on_equivocation,
            lambda: self._chain_head,
        )
        self.leader = LeaderService(
            self.ctx,
            self.evaluator,
            self.calls,
            self.sender,
            self.client,
            self.node_metrics,
            lambda: self.load.latest.overloaded,
        )
        self.port = await self.server.start(self.options.host, self.options.port)
        try:
            self.admin_port = await self.admin_server.start(
                self.options.admin_host, self.options.admin_port
            )
        except BaseException:
            await self.server.stop()
            raise
        self.load.start(self._scheduler)
        self._scheduler.start()
        self._stop.clear()
        if loop:
            self._task = asyncio.create_task(self._run(), name=f"keeper-{self.address[:8]}")
            if self.heads is not None:
                self._heads_task = asyncio.create_task(
                    self.heads.run(), name=f"heads-{self.address[:8]}"
                )
        log.info(
            "node.started address=%s port=%d admin_port=%d registry=%s task_manager=%s",
            self.address,
            self.port,
            self.admin_port,
            self.deployment.registry,
            self.deployment.task_manager,
        )

    async def stop(self) -> None:
        """Stops the loop, the peer API and the scheduler, then closes the store."""
        self._stop.set()
        self._wake.set()
        for task in (self._heads_task, self._task, *self._proving):
            await cancel_and_wait(task)
        self._task = self._heads_task = None
        await self.server.stop()
        await self.admin_server.stop()
        if self.leader is not None:
            await self.leader.close()
        await self.client.close()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self.load.stop()
        await self.store.close()
        log.info("node.stopped address=%s", self.address)

    @property
    def endpoint(self) -> str:
        """The peer API's URL (what peers are registered under, when no proxy is between)."""
        return f"http://{self.options.host}:{self.port}"

    @property
    def admin_endpoint(self) -> str:
        """The URL of status, health and metrics."""
        return f"http://{self.options.admin_host}:{self.admin_port}"

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a head pushed during the tick wakes the next one at once
            await self.tick(housekeeping=False)
            if self._housekeeping_head is not None:
                # Every member's agreement traffic for a block comes in its first few tens of
                # milliseconds; rotate checks and execution counts can wait that out.
                await self._wait_for_wake(HOUSEKEEPING_DELAY)
                await self._housekeeping()
            if not self._wake.is_set():
                await self._wait_for_wake(self._poll_interval())

    async def _wait_for_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _on_pushed_head(self, header: Header) -> None:
        self.follower.note_head(header)
        self._wake.set()

    def _poll_interval(self) -> float:
        """While heads are pushed, polling is only the safety net and need not be fast."""
        if self.heads is not None and self.heads.subscribed:
            return max(self.options.poll_interval, PUSHED_POLL_INTERVAL)
        return self.options.poll_interval

    async def tick(self, *, housekeeping: bool = True) -> None:
        """One pass: catch up, lead what is due, then settle transactions and rotate if due.
        Without `housekeeping` (the loop), settling, the rotate check and execution counts of a
        new head are left to `_housekeeping`, which the loop runs a moment later.

        Leading does not wait for settling: a round whose transaction is still pending in the
        store waits (`LeaderService._is_pending`) whether or not it was mined meanwhile, and a
        mined one has closed its round in the synced events. Settling later keeps its receipts
        and nonce reads out of the burst of agreement traffic each head brings."""
        try:
            await self.sync_now()
            stored = await self.store.head()
            if stored is None:
                return
            head, head_hash = stored
            head_ts = await self.store.block_timestamp(head) or 0
            if self._chain_head - head > MAX_CHECK_AGE:
                # Catching up: a round led at an old head would carry a check block the
                # contract and every member find stale; lead again once caught up.
                log.info("node.catching_up head=%d chain_head=%d", head, self._chain_head)
            elif self._passed != (head, head_hash):
                # Rounds are led once per head, and rotate() turns count in blocks: polling
                # faster than blocks arrive must not repeat the pass over every job.
                assert self.leader is not None
                results = await self.leader.on_head(head, head_hash, head_ts)
                self.job_book.saw_rounds(head, results)
                self._passed = (head, head_hash)
                latest = await self.store.latest_epoch()
                self.heap.after_head(latest.epoch if latest else None)
                self._housekeeping_head = head
                if housekeeping:
                    await self._housekeep(head)
            self._last_ok = self._clock()
            self._last_error = ""
        except Exception as exc:  # the loop must outlive any one bad pass
            self._note_failure(exc)

    def _note_failure(self, exc: Exception) -> None:
        """A failed pass: unhealthy until the next one succeeds; called in its except block."""
        # What /healthz and /v1/status show: never an RPC URL's key (redact_urls).
        if isinstance(exc, RpcUnavailable):
            self.node_metrics.rpc_errors.inc()
            self._last_error = redact_urls(str(exc))
            log.warning("node.rpc_unavailable error=%s", self._last_error)
        elif isinstance(exc, KeeperError):
            self._last_error = redact_urls(str(exc))
            log.warning("node.tick_failed error=%s", self._last_error)
        else:
            self._last_error = redact_urls(f"{type(exc).__name__}: {exc}")
            log.exception("node.tick_crashed")

    async def _housekeeping(self) -> None:
        """The deferred part of a pass (see `tick`); a failure is the pass's failure."""
        head = self._housekeeping_head
        if head is None:
            return
        try:
            await self._housekeep(head)
        except Exception as exc:  # the loop must outlive any one bad pass
            self._note_failure(exc)

    async def _housekeep(self, head: int) -> None:
        outcomes = await self.sender.poll(head)
        if any((o.block_number or 0) > head for o in outcomes):
            # Our transaction is in a block the store has not seen yet: sync it now, or the
            # round it closed would look open (its transaction no longer pending) and this
            # node would lead it again.
            head = await self.sync_now()
        await self._maybe_rotate(head)
        await self._close_rounds()
        await self._record_funds(head)
        self._housekeeping_head = None

    async def _record_funds(self, head: int) -> None:
        """Balance, earnings and pending transactions for the metrics; the two RPC reads once
        every FUNDS_EVERY_BLOCKS blocks (they change slowly and cost the provider's quota)."""
        self.node_metrics.pending_transactions.set(len(await self.store.pending_txs("pending")))
        if self._funds_block is not None and head - self._funds_block < FUNDS_EVERY_BLOCKS:
            return
        balance, earned = await self.calls.account_funds(self.address)
        self.node_metrics.balance_wei.set(balance)
        self.node_metrics.earnings_wei.set(earned)
        self._funds_block = head

    async def sync_now(self, until: int | None = None) -> int:
        """Catches up with the chain (bounded ranges) and returns the new local head; with
        `until`, stops asking the chain once the store holds that block."""
        for _ in range(50):
            result = await self.follower.sync(until)
            self._chain_head = result.chain_head
            self.node_metrics.head_block.set(result.head)
            self.node_metrics.blocks_behind.set(max(0, result.chain_head - result.head))
            if result.head >= result.chain_head or (until is not None and result.head >= until):
                break
        head = await self.store.head()
        return head[0] if head else 0

    async def _maybe_rotate(self, head: int) -> None:
        """Sends rotate() when it is due and this node's turn (ranked like a round)."""
        keepers = await self.store.keepers()
        me = keepers.get(self.address)
        if me is None or me.get("status") != "active":
            return
        latest = await self.store.latest_epoch()
        epoch = latest.epoch if latest else 0
        if not await self._can_rotate(head):
            self._rotate_due.pop(epoch, None)
            return
        due = self._rotate_due.setdefault(epoch, head)
        active = [a for a, k in keepers.items() if k.get("status") == "active"]
        ranked = rank_members(ROTATE_JOB_ID, epoch, active)
        rank = next(i for i, a in enumerate(ranked) if a.lower() == self.address.lower())
        if self.load.latest.overloaded:
            rank += len(ranked)
        if head < compute_turn_start(due, rank, self.ctx.turn_blocks):
            return
        # Two sends per epoch (arm, then finish after the seed block): each its own purpose.
        purpose = compute_rotate_purpose(epoch, due)
        if any(p.purpose == purpose for p in await self.store.pending_txs("pending")):
            return
        data = self.calls.rotate_data()
        gas = compute_rotate_gas(len(keepers))
        registry = str(self.calls.registry.address)
        revert = await self.calls.simulate(self.address, registry, data, gas)
        if revert is not None:
            log.info("rotate.skipped epoch=%d error=%s", epoch, revert)
            return
        try:
            tx = await self.sender.send(registry, data, gas, purpose)
        except TooManyInFlight as exc:
            log.warning("rotate.deferred epoch=%d error=%s", epoch, exc)
            return
        log.info("rotate.sent epoch=%d tx=0x%s rank=%d", epoch, tx.hex(), rank)

    async def _can_rotate(self, head: int) -> bool:
        """`canRotate()`, asked of the chain only when the registry's state as last read (at
        the store's registry generation) does not rule it out (keeper.core.rotation)."""
        generation = self.store.registry_generation
        timing = self._epoch_timing
        if timing is None or timing.generation != generation:
            stored = await self.store.head()
            if stored is not None:
                timing = await self.calls.epoch_timing(generation, stored[0])
                self._epoch_timing = timing
        head_ts = await self.store.block_timestamp(head)
        if head_ts is not None and not is_rotation_possible(timing, generation, head_ts):
            return False
        return await self.calls.can_rotate()

    async def _doom_of(self, purpose: str, to: str | None, data: bytes, head: int) -> str | None:
        """The sender's doom check, from the store: why a transaction still unmined at `head`
        can no longer succeed (`execute`: every item's round closed, or its deadline passed;
        `rotate`: a later epoch started; `slashEquivocation`: the signer is slashed or gone);
        None for any other transaction, or while it still can."""
        rotate_epoch = get_rotate_epoch(purpose)
        if rotate_epoch is not None:
            latest = await self.store.latest_epoch()
            return compute_rotate_doom_reason(rotate_epoch, latest.epoch if latest else None)
        signer = get_slash_signer(purpose)
        if signer is not None:
            keepers = await self.store.keepers()
            keeper = next((k for a, k in keepers.items() if a.lower() == signer), None)
            return compute_slash_doom_reason(None if keeper is None else keeper.get("status"))
        if to is None or to.lower() != self.deployment.task_manager.lower():
            return None
        carried = self.calls.execute_batch(data)
        if carried is None:
            return None
        batch, _ = carried
        rounds: dict[int, int | None] = {}
        for job_id in {item.jobId for item in batch.items}:
            job = await self.store.job(job_id)
            rounds[job_id] = job.round if job is not None else None
        return compute_batch_doom_reason(batch, rounds, head)

    def _on_equivocation(self, proof: Equivocation) -> None:
        """A peer signed two results for one round key: prove it on-chain, once per signer,
        without holding up the answer to the request that revealed it."""
        signer = proof.signer.lower()
        if signer in self._proven or self._stop.is_set() or not self.options.prove_equivocation:
            return
        self._proven.add(signer)
        task = asyncio.create_task(self._prove(proof), name=f"prove-{signer[:10]}")
        self._proving.add(task)
        task.add_done_callback(self._proving.discard)

    async def _prove(self, proof: Equivocation) -> None:
        """Sends `slashEquivocation` (the reporter's reward comes to this node)."""
        a, b = proof.first, proof.second
        data = self.calls.slash_data(a, b)
        tm = str(self.calls.task_manager.address)
        try:
            revert = await self.calls.simulate(self.address, tm, data, SLASH_GAS)
            if revert is not None:
                log.info("equivocation.not_sent signer=%s error=%s", proof.signer, revert)
                return
            tx = await self.sender.send(tm, data, SLASH_GAS, compute_slash_purpose(proof.signer))
        except KeeperError as exc:
            self._proven.discard(proof.signer.lower())  # another peer message may retry it
            log.warning("equivocation.send_failed signer=%s error=%s", proof.signer, exc)
            return
        log.warning(
            "equivocation.proven signer=%s job=%d round=%d tx=0x%s",
            proof.signer,
            a.report.jobId,
            a.report.round,
            tx.hex(),
        )

    async def _close_rounds(self) -> None:
        """Rounds the chain has executed are done; count executions for the metrics."""
        total, successes = await self.store.execution_counts()
        seen_total, seen_successes = self._executions_seen
        if total < seen_total:  # a reorg removed some: count what is new from here
            seen_total, seen_successes = total, successes
        self.node_metrics.record_execution(True, successes - seen_successes)
        failures, seen_failures = total - successes, seen_total - seen_successes
        self.node_metrics.record_execution(False, failures - seen_failures)
        self._executions_seen = (total, successes)

    # ------------------------------------------------------------------ peer API handler

    async def handle_batch(self, req: BatchRequest) -> BatchResponse:
        if self.member is None:
            raise PeerRejected(425, "node is starting", "TooEarly")
        return await self.member.handle_batch(req)

    async def status(self) -> dict[str, Any]:
        """The node's view: identity, sync, epoch and quorums, jobs and rounds, load."""
        head = await self.store.head()
        latest = await self.store.latest_epoch()
        jobs = []
        my_quorums: set[int] = set()
        if latest is not None:
            for index, members in enumerate(await self.store.quorums(latest.epoch)):
                if any(m.address.lower() == self.address.lower() for m in members):
                    my_quorums.add(index)
        quorums = await self.ctx.epoch_quorums() if latest else None
        for job in await self.store.jobs():
            quorum = quorums.for_job(job.job_id) if quorums else None
            mine = quorum is not None and quorum.has(self.address)
            jobs.append(
                {
                    "id": job.job_id,
                    "kind": job.kind.name,
                    "status": JobStatus(job.status).name,
                    "round": job.round,
                    "last_cursor": job.last_cursor,
                    "balance": str(job.balance),
                    "quorum": quorum.index if quorum else None,
                    "mine": mine,
                }
            )
        sample = self.load.latest
        return {
            "address": self.address,
            "chain_id": self.deployment.chain_id,
            "registry": self.deployment.registry,
            "task_manager": self.deployment.task_manager,
            "head": head[0] if head else None,
            "chain_head": self._chain_head,
            "epoch": latest.epoch if latest else 0,
            "quorum_count": latest.count if latest else 0,
            "my_quorums": sorted(my_quorums),
            "jobs": jobs,
            "rounds": await self.store.round_counts(),
            "signatures": await self.store.signature_count(),
            "pending_txs": len(await self.store.pending_txs("pending")),
            "load": {
                "cpu_percent": sample.cpu_percent,
                "memory_percent": sample.memory_percent,
                "rss_bytes": sample.rss_bytes,
                "overloaded": sample.overloaded,
            },
            "healthy": (await self.health())[0],
            "last_error": self._last_error,
            "heads": "pushed" if self.heads is not None and self.heads.subscribed else "polled",
        }

    async def jobs(self) -> list[dict[str, Any]]:
        """Every job with its state and the reason for it (docs/protocol.md, Node interfaces)."""
        if self.job_views is None:
            raise PeerRejected(425, "node is starting", "TooEarly")
        return await self.job_views.all_jobs()

    async def job(self, job_id: int) -> dict[str, Any] | None:
        """One job, with its execution history and the reasons seen; None if unknown."""
        if self.job_views is None:
            raise PeerRejected(425, "node is starting", "TooEarly")
        return await self.job_views.one_job(job_id)

    async def network(self) -> dict[str, Any]:
        """Epoch, quorums and keepers with stake and load, for the dashboard."""
        if self.job_views is None:
            raise PeerRejected(425, "node is starting", "TooEarly")
        sample = self.load.latest
        own = {
            "cpu_percent": sample.cpu_percent,
            "memory_percent": sample.memory_percent,
            "overloaded": sample.overloaded,
        }
        peers = self.leader.peer_load if self.leader is not None else {}
        return await self.job_views.network(own, dict(peers))

    def is_healthy(self) -> bool:
        """The last pass succeeded, recently enough (a stalled loop is unhealthy too)."""
        return (
            not self._last_error and self._clock() - self._last_ok <= self.options.unhealthy_after
        )

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy only when synced to the RPC's head, the chain moves, this key is a keeper
        and its registered endpoint is this node (keeper.monitor.health); else the reason."""
        stored = await self.store.head()
        head = stored[0] if stored else None
        head_ts = await self.store.block_timestamp(head) if head is not None else None
        me = (await self.store.keepers()).get(self.address)
        facts = HealthFacts(
            seconds_since_pass=self._clock() - self._last_ok,
            last_error=self._last_error,
            head=head,
            chain_head=self._chain_head,
            head_age=self._wall_clock() - head_ts if head_ts is not None else None,
            keeper_status=str(me["status"]) if me else None,
            registered_endpoint=await self.store.endpoint(self.address),
            listen_port=self.port,
            public_endpoint=self.options.public_endpoint,
        )
        reason = assess_health(facts, self.health_limits)
        detail: dict[str, Any] = {
            "seconds_since_sync": round(facts.seconds_since_pass, 1),
            "head": head,
            "chain_head": self._chain_head,
        }
        if reason is not None:
            detail["reason"] = reason
        return reason is None, detail

    def metrics(self) -> bytes:
        self.node_metrics.record_load(self.load.latest)
        return self.node_metrics.render()
