"""Several keeper nodes in one process on one in-process chain, talking over loopback HTTP.

Tests drive the network block by block: `step()` mines a block (chain time advancing like a
real chain) and lets every running node take one pass, so what happens is reproducible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from keeper.chain.contracts import DeployParams
from keeper.chain.rpc import disconnect
from keeper.core.fees import FeePolicy
from keeper.monitor.load import LoadMonitor
from keeper.node.context import NodeOptions
from keeper.node.node import KeeperNode
from keeper.store.db import Store
from tests.harness import ETHER, Net, make_net

BLOCK_SECONDS = 12


def quiet_load(node_index: int) -> LoadMonitor:
    """A load monitor reporting an idle machine (tests pin overload explicitly)."""
    return LoadMonitor(90.0, 90.0, sample_fn=lambda: (1.0, 10.0, 50_000_000))


@dataclass
class Network:
    """A deployed chain with keeper nodes; `nodes[i]` runs with `net.keepers[i]`'s key."""

    net: Net
    tmp: Path
    options: NodeOptions
    turn_blocks: int = 3  # KeeperRegistry.turnBlocks of this network
    nodes: dict[int, KeeperNode] = field(default_factory=dict)
    # Per-node RPC URL override (e.g. through a TcpProxy); None = the chain's own client.
    rpc_urls: dict[int, str] = field(default_factory=dict)
    # The peer port each node listened on: a restart listens there again, as a real operator's
    # node does, so the endpoint registered on-chain keeps reaching it.
    ports: dict[int, int] = field(default_factory=dict)

    def db_path(self, i: int) -> Path:
        return self.tmp / f"keeper{i}.db"

    async def start_node(self, i: int, *, loop: bool = False) -> KeeperNode:
        """Starts (or restarts, on its old store) the node of keeper `i`; its background loop
        (and head subscription) only with `loop`: tests drive the others with `step`."""
        account: LocalAccount = self.net.keepers[i]
        store = await Store.open(
            self.db_path(i),
            chain_id=self.net.deployment.chain_id,
            registry=self.net.deployment.registry,
            task_manager=self.net.deployment.task_manager,
            operator=account.address,
        )
        url = self.rpc_urls.get(i)
        node = KeeperNode(
            w3=self.net.chain.web3(url) if url else self.net.chain.web3(),
            account=account,
            deployment=self.net.deployment,
            store=store,
            options=replace(self.options, port=self.ports.get(i, self.options.port)),
            fee_policy=FeePolicy(),
            load=quiet_load(i),
        )
        await node.start(loop=loop)
        self.nodes[i] = node
        self.ports[i] = node.port
        return node

    async def stop_node(self, i: int) -> None:
        node = self.nodes.pop(i)
        await node.stop()
        await disconnect(node.w3)

    async def stop(self) -> None:
        for i in list(self.nodes):
            await self.stop_node(i)
        await disconnect(self.net.w3)

    async def step(self, blocks: int = 1) -> None:
        """Mines `blocks` blocks, BLOCK_SECONDS apart, each followed by one pass of every node."""
        for _ in range(blocks):
            self.net.time_travel(await self.net.timestamp() + BLOCK_SECONDS)
            await asyncio.gather(*(n.tick() for n in self.nodes.values()))

    async def step_until(
        self, predicate: Callable[[], Awaitable[bool]], max_blocks: int = 30
    ) -> int:
        """Steps until `predicate()` holds; returns the blocks it took. Fails after max_blocks."""
        for taken in range(max_blocks + 1):
            if await predicate():
                return taken
            await self.step()
        raise AssertionError(f"condition not reached within {max_blocks} blocks")

    async def executions(self, job_id: int) -> list[Any]:
        logs = await self.net.tm.events.JobExecuted().get_logs(
            from_block=self.net.deployment.block, argument_filters={"jobId": job_id}
        )
        return sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"]))


async def start_network(
    tmp: Path,
    stakes: Sequence[int] = (ETHER, 2 * ETHER, 3 * ETHER, 4 * ETHER),
    options: NodeOptions | None = None,
    target_quorum_size: int = 4,
    chain: Any = None,
    rpc_urls: dict[int, str] | None = None,
    turn_blocks: int = 3,
) -> Network:
    """Deploys, starts one node per stake, registers each with its node's endpoint and lets
    the nodes rotate the first epoch themselves."""
    params = DeployParams(
        min_stake=ETHER,
        unbonding_period=100,
        epoch_length=3600 * 24,
        target_quorum_size=target_quorum_size,
        gas_price_cap=100 * 10**9,
        premium=10**14,
        turn_blocks=turn_blocks,
    )
    net = await make_net(keepers=max(len(stakes), 8), params=params, chain=chain)
    network = Network(
        net=net,
        tmp=tmp,
        options=options or NodeOptions(),
        turn_blocks=turn_blocks,
        rpc_urls=rpc_urls or {},
    )
    for i, stake in enumerate(stakes):
        node = await network.start_node(i)
        await net.register(net.keepers[i], stake, node.endpoint)
    await network.step_until(lambda: _has_epoch(network), max_blocks=10)
    return network


async def _has_epoch(network: Network) -> bool:
    return int(await network.net.registry.functions.currentEpoch().call()) >= 1
