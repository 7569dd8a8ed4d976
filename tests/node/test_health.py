"""/healthz tells the truth on a live network: a stopped chain and an unregistered key are
unhealthy, with the reason (keeper.monitor.health has every rule); /metrics shows what an
operator watches over a month."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keeper.node.node import FUNDS_EVERY_BLOCKS
from tests.harness import TIME, selector, time_trigger
from tests.nodes import Network, start_network

UNREGISTERED = 6  # a harness account that never staked


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


async def test_a_chain_that_stopped_producing_blocks_is_unhealthy(network: Network) -> None:
    node = network.nodes[0]
    await network.step(2)
    assert (await node.health())[0] is True
    # when no block has come for ten minutes (a plain anvil after its last transaction, or a
    # provider stuck on an old head), though every pass over that head succeeds
    last = await node.store.block_timestamp((await node.store.head() or (0, b""))[0]) or 0
    node._wall_clock = lambda: last + 600.0
    await node.tick()
    # then the node says so, and so does its status
    healthy, detail = await node.health()
    assert healthy is False
    assert "is 600 s old" in detail["reason"], detail
    assert (await node.status())["healthy"] is False
    # and a fresh block makes it healthy again
    node._wall_clock = time.time
    await network.step(1)
    assert (await node.health())[0] is True


async def test_a_node_whose_key_is_not_a_keeper_is_unhealthy(network: Network) -> None:
    # given a node run with a key that never registered
    node = await network.start_node(UNREGISTERED)
    await network.step(1)
    # then it syncs fine but reports why it is of no use
    healthy, detail = await node.health()
    assert healthy is False
    assert "this key is not a keeper in the registry (not registered)" in detail["reason"]


def gauge(metrics: bytes, name: str) -> float:
    line = next(x for x in metrics.decode().splitlines() if x.startswith(name + " "))
    return float(line.split()[1])


async def test_metrics_show_the_keepers_balance_earnings_and_pending_transactions(
    network: Network,
) -> None:
    net = network.net
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))

    async def executed() -> bool:
        return len(await network.executions(job_id)) >= 2

    await network.step_until(executed, max_blocks=30)
    await network.step(FUNDS_EVERY_BLOCKS)
    shown_earnings = []
    for node in network.nodes.values():
        metrics = node.metrics()
        # then each node's gauges are the chain's figures for its own account, as of its last
        # read (since then it can only have spent gas and earned more)
        balance = gauge(metrics, "keeper_balance_wei")
        earned = gauge(metrics, "keeper_earnings_wei")
        assert balance >= float(await net.balance(node.address)) * (1 - 1e-9)
        assert 0 <= earned <= float(await net.tm.functions.earnings(node.address).call())
        shown_earnings.append(earned)
        assert gauge(metrics, "keeper_pending_transactions") == len(
            await node.store.pending_txs("pending")
        )
    # and the executors' earnings show
    assert max(shown_earnings) > 0
