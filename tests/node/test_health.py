"""/healthz tells the truth on a live network: a stopped chain and an unregistered key are
unhealthy, with the reason (keeper.monitor.health has every rule)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
