"""What the node's services share: identity, options, store and the quorum view."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from eth_account.signers.local import LocalAccount

from keeper.chain.reader import MAX_RPC_BATCH
from keeper.chain.sender import DEFAULT_MAX_IN_FLIGHT
from keeper.core.quorum import Member, compute_quorum_of
from keeper.core.report import Domain
from keeper.core.serving import EPOCH_GRACE_BLOCKS
from keeper.store.db import Epoch, Store


@dataclass(frozen=True)
class NodeOptions:
    """Tunables of one node (from Settings in production, set directly by tests)."""

    host: str = "127.0.0.1"
    port: int = 0
    # status, health and metrics: a second listener, loopback unless the operator says else
    admin_host: str = "127.0.0.1"
    admin_port: int = 0
    poll_interval: float = 1.0
    reorg_depth: int = 12
    deadline_blocks: int = 40
    stale_blocks: int = 64
    peer_timeout: float = 2.0
    max_cpu_percent: float = 90.0
    max_memory_percent: float = 90.0
    load_interval: float = 2.0
    unhealthy_after: float = 15.0
    max_sync_range: int = 200
    ws_url: str | None = None  # newHeads subscription that wakes the loop (None: poll only)
    # the URL peers use when it is not the listen address (reverse proxy, NAT): health
    # compares it with the registered endpoint; None compares the listen port
    public_endpoint: str | None = None
    # submit slashEquivocation when a peer signs two results for one round key; off only in
    # tests that post conflicting signed reports on purpose to check each refusal
    prove_equivocation: bool = True
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # pending nonces before sends are refused
    # POSTs one signer may make to the peer API: a leader sends one batch per head to each
    # member (and a retry or two), so 20/s with a burst of 40 leaves room for fast chains and
    # catching up, while a flooding peer is answered 429 before any handler work
    peer_rate_per_second: float = 20.0
    peer_rate_burst: int = 40
    # per client address (IPv6 per /64), every POST before any work: above what several
    # keepers behind one address send, far below what signature recovery could keep up with
    peer_ip_rate_per_second: float = 200.0
    peer_ip_rate_burst: int = 400
    max_rpc_batch: int = MAX_RPC_BATCH  # resolver calls per JSON-RPC batch (providers cap it)
    # gas limit of one execute: the rounds a leader leads at a head are split into batches
    # within it (and within half the latest block's gas limit)
    max_batch_gas: int = 15_000_000


@dataclass(frozen=True)
class QuorumView:
    """The quorum serving a job in one epoch."""

    epoch: Epoch
    index: int
    members: list[Member]

    def has(self, address: str) -> bool:
        return address.lower() in self._addresses

    @cached_property
    def _addresses(self) -> frozenset[str]:
        return frozenset(m.address.lower() for m in self.members)


@dataclass(frozen=True)
class EpochQuorums:
    """All quorums of one epoch; which one serves a job is pure arithmetic on the seed.

    The answer is fixed for the epoch, so each job's view is computed once and kept here:
    a node asks for every active job at every head, and NodeContext keeps this object for as
    long as the epoch (and its quorums) stay what the store says.
    """

    epoch: Epoch
    quorums: list[list[Member]]
    _views: dict[int, QuorumView] = field(default_factory=dict, compare=False, repr=False)
    _all: list[QuorumView] = field(default_factory=list, compare=False, repr=False)

    def for_job(self, job_id: int) -> QuorumView:
        view = self._views.get(job_id)
        if view is None:
            if not self._all:
                self._all.extend(QuorumView(self.epoch, i, q) for i, q in enumerate(self.quorums))
            index = compute_quorum_of(self.epoch.seed, job_id, self.epoch.count)
            view = self._views[job_id] = self._all[index]
        return view


@dataclass
class NodeContext:
    account: LocalAccount
    domain: Domain
    store: Store
    options: NodeOptions
    # KeeperRegistry.turnBlocks, read at start: how long each ranked leader's turn lasts
    turn_blocks: int = 5
    # The EpochQuorums last built, per epoch number: rebuilt when the store's epoch or quorums
    # differ (a new epoch, a reorg), so job -> quorum is hashed once per epoch per job.
    _quorum_cache: dict[int, EpochQuorums] = field(default_factory=dict, repr=False)

    @property
    def address(self) -> str:
        return str(self.account.address)

    async def quorum_for(self, job_id: int, epoch_number: int | None = None) -> QuorumView | None:
        """The job's quorum in `epoch_number` (default: the newest epoch the store knows)."""
        quorums = await self.epoch_quorums(epoch_number)
        return quorums.for_job(job_id) if quorums is not None else None

    async def epoch_quorums(self, epoch_number: int | None = None) -> EpochQuorums | None:
        """Every quorum of `epoch_number` (default: the newest), read once for many jobs;
        None while the epoch or any of its quorums is not in the store."""
        epoch = (
            await self.store.latest_epoch()
            if epoch_number is None
            else await self.store.epoch(epoch_number)
        )
        if epoch is None or epoch.count == 0:
            return None  # before the first epoch, or an empty one (every keeper left)
        quorums = await self.store.quorums(epoch.epoch)
        if len(quorums) != epoch.count:
            return None
        cached = self._quorum_cache.get(epoch.epoch)
        if cached is not None and cached.epoch == epoch and cached.quorums == quorums:
            return cached
        if len(self._quorum_cache) >= 2 and epoch.epoch not in self._quorum_cache:
            # the current and the previous epoch (its grace period) are all a node asks about
            del self._quorum_cache[min(self._quorum_cache)]
        fresh = self._quorum_cache[epoch.epoch] = EpochQuorums(epoch, quorums)
        return fresh

    async def is_epoch_usable(self, epoch_number: int, head: int) -> bool:
        """Current, or previous within the registry's grace period."""
        latest = await self.store.latest_epoch()
        if latest is None:
            return False
        if epoch_number == latest.epoch:
            return True
        return epoch_number + 1 == latest.epoch and head <= latest.start_block + EPOCH_GRACE_BLOCKS
