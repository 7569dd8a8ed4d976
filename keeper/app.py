"""Composition root: builds a node from Settings, starts it, stops it on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from eth_account.signers.local import LocalAccount

from keeper.chain.contracts import Deployment
from keeper.chain.pool import EndpointLimits
from keeper.chain.rpc import connect, disconnect, rpc_guard
from keeper.config import Settings, load_account
from keeper.errors import ConfigError
from keeper.node.context import NodeOptions
from keeper.node.node import KeeperNode
from keeper.store.db import Store
from keeper.store.lock import StoreLock

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Seconds from the first signal to the process's end, stopped gracefully or not.
STOP_TIMEOUT = 10.0
# Seconds the peer requests in flight at the first signal get to finish (the listener is closed
# at once): a slow or stalled peer must not hold the stop.
PEER_DRAIN_TIMEOUT = 3.0
EXIT_STOP_TIMED_OUT = 1


def node_options(settings: Settings) -> NodeOptions:
    return NodeOptions(
        host=settings.listen_host,
        port=settings.listen_port,
        admin_host=settings.admin_host,
        admin_port=settings.admin_port,
        poll_interval=settings.poll_interval,
        reorg_depth=settings.reorg_depth,
        max_cpu_percent=settings.max_cpu_percent,
        max_memory_percent=settings.max_memory_percent,
        ws_url=settings.heads_url,
        max_in_flight=settings.max_in_flight,
        max_rpc_batch=settings.max_rpc_batch,
        max_batch_gas=settings.max_batch_gas,
    )


async def build_node(settings: Settings, account: LocalAccount | None = None) -> KeeperNode:
    """Checks the deployment against the chain, opens the store, builds the node (not started)."""
    account = account or load_account(settings)
    deployment = Deployment.load(Path(settings.deployment))
    limits = EndpointLimits(
        settings.rpc_requests_per_second, settings.rpc_burst, settings.rpc_concurrency
    )
    w3 = connect(settings.rpc_urls, lean=True, limits=limits)
    async with rpc_guard(f"connect to {settings.rpc_url}"):
        chain_id = int(await w3.eth.chain_id)
        code = await w3.eth.get_code(deployment.task_manager)  # type: ignore[arg-type]
    if chain_id != deployment.chain_id:
        raise ConfigError(
            f"deployment {settings.deployment} is for chain {deployment.chain_id}, "
            f"but {settings.rpc_url} is chain {chain_id}"
        )
    if len(code) == 0:
        raise ConfigError(f"no TaskManager at {deployment.task_manager} on chain {chain_id}")
    store = await Store.open(
        settings.db,
        chain_id=chain_id,
        registry=deployment.registry,
        task_manager=deployment.task_manager,
        operator=account.address,
    )
    policy = settings.fee_policy()
    return KeeperNode(
        w3=w3,
        account=account,
        deployment=deployment,
        store=store,
        options=node_options(settings),
        fee_policy=policy,
    )


async def run_node(settings: Settings) -> int:
    """Runs until SIGINT or SIGTERM; returns the process exit code.

    One process per store: the store's lock is taken before anything else and held until the
    process ends. The first signal closes the peer API, then stops the node; the process ends
    STOP_TIMEOUT later whatever the stop is doing, and at once on a second signal.
    """
    lock = StoreLock.acquire(settings.db)
    try:
        return await _run_locked(settings)
    finally:
        lock.release()


async def _run_locked(settings: Settings) -> int:
    node = await build_node(settings)
    try:
        await node.start()
    except OSError as exc:
        await _shut_down(node)
        raise ConfigError(
            f"cannot listen on {settings.listen} or {settings.admin_address}: {exc.strerror}"
        ) from exc
    stop = SignalStop(asyncio.get_running_loop())
    stop.install()
    print(
        f"keeper {node.address} running; peer API on {node.endpoint}, "
        f"status/health/metrics on {node.admin_endpoint}",
        flush=True,
    )
    try:
        await stop.requested.wait()
        log.info("node.stopping signal=%s", stop.signal_name)
    finally:
        try:
            await _shut_down(node)
        finally:
            stop.uninstall()
    return 0


async def _shut_down(node: KeeperNode, drain: float = PEER_DRAIN_TIMEOUT) -> None:
    """Closes the peer API first (no peer request reaches the node once stopping began), stops
    the node, then closes the RPC connections this module opened for it."""
    # PeerServer.stop closes the listening socket in its first step (aiohttp stops its sites
    # before its first await), then closes idle connections and waits for the requests in
    # flight, which a stalled peer can make long: it gets `drain` seconds.
    closing = asyncio.create_task(node.server.stop(), name="peer-api-close")
    await asyncio.sleep(0)  # that first step runs here
    log.info("peer_api.closed")
    done, _ = await asyncio.wait({closing}, timeout=drain)
    if not done:
        log.warning("peer_api.drain_timed_out seconds=%g", drain)
    await node.stop()
    await disconnect(node.w3)
    closing.cancel()


class SignalStop:
    """The process's answer to SIGINT and SIGTERM.

    The first signal sets `requested` (the graceful stop) and arms a watchdog thread that ends
    the process `timeout` seconds later, whatever the event loop is doing; a second signal ends
    it at once. Plain `signal.signal` handlers, not the loop's: they run in the main thread
    between any two bytecodes, also while the loop is stuck (a stop once hung for minutes in
    task cancellation). A forced end flushes the logs, then `os._exit`s with a non-zero code:
    128 + the signal for a second signal, EXIT_STOP_TIMED_OUT for the watchdog.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        timeout: float = STOP_TIMEOUT,
        exit_now: Callable[[int], object] = os._exit,
    ) -> None:
        self.requested = asyncio.Event()
        self.signum: int | None = None
        self._loop = loop
        self._timeout = timeout
        self._exit = exit_now
        self._previous: dict[int, Any] = {}
        self.watchdog: threading.Timer | None = None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self.on_signal)

    def uninstall(self) -> None:
        """Puts the previous handlers back (the watchdog, if armed, still bounds the exit)."""
        for sig, handler in self._previous.items():
            if handler is not None:  # None: not set from Python, nothing to put back
                signal.signal(sig, handler)
        self._previous.clear()

    def on_signal(self, signum: int, frame: FrameType | None = None) -> None:
        if self.signum is not None:
            self._force(128 + signum, f"node.forced_stop signal={signal.Signals(signum).name}")
            return
        self.signum = signum
        self._loop.call_soon_threadsafe(self.requested.set)
        self.watchdog = threading.Timer(
            self._timeout,
            self._force,
            (EXIT_STOP_TIMED_OUT, f"node.stop_timed_out seconds={self._timeout:g}"),
        )
        self.watchdog.daemon = True
        self.watchdog.start()

    def _force(self, code: int, event: str) -> None:
        log.error(event)
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        self._exit(code)
