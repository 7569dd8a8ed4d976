"""Composition root: builds a node from Settings, starts it, stops it on a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from eth_account.signers.local import LocalAccount

from keeper.chain.contracts import Deployment
from keeper.chain.rpc import connect, disconnect, rpc_guard
from keeper.config import Settings, load_account
from keeper.core.fees import GWEI, FeePolicy
from keeper.core.types import Wei
from keeper.errors import ConfigError
from keeper.node.context import NodeOptions
from keeper.node.node import KeeperNode
from keeper.store.db import Store
from keeper.store.lock import StoreLock

log = logging.getLogger(__name__)


def node_options(settings: Settings) -> NodeOptions:
    return NodeOptions(
        host=settings.listen_host,
        port=settings.listen_port,
        poll_interval=settings.poll_interval,
        reorg_depth=settings.reorg_depth,
        turn_blocks=settings.turn_blocks,
        max_cpu_percent=settings.max_cpu_percent,
        max_memory_percent=settings.max_memory_percent,
        ws_url=settings.heads_url,
    )


async def build_node(settings: Settings, account: LocalAccount | None = None) -> KeeperNode:
    """Checks the deployment against the chain, opens the store, builds the node (not started)."""
    account = account or load_account(settings)
    deployment = Deployment.load(Path(settings.deployment))
    w3 = connect(settings.rpc_url, lean=True)
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
    policy = FeePolicy(max_fee_cap=Wei(int(settings.gas_price_cap_gwei * GWEI)))
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
    process ends.
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
        raise ConfigError(f"cannot listen on {settings.listen}: {exc.strerror}") from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"keeper {node.address} running; peer API on {node.endpoint}", flush=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await _shut_down(node)
    return 0


async def _shut_down(node: KeeperNode) -> None:
    """Stops the node, then closes the RPC connections this module opened for it."""
    await node.stop()
    await disconnect(node.w3)
