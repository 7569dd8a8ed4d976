"""A node asks `canRotate()` only when the registry's state it last read does not rule a
rotation out (keeper.core.rotation): not at every head of a long epoch, yet every rotation
still happens on time, whether the epoch's length runs out or a keeper-set change ends it early
(four nodes, stakes 1..4 ether, one quorum, on the in-process chain)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from keeper.node.node import KeeperNode
from tests.harness import ETHER
from tests.nodes import Network, start_network

EPOCH_SECONDS = 3600 * 24  # the networks' epochLength
MIN_EPOCH_BLOCKS = 30  # KeeperRegistry.MIN_EPOCH_BLOCKS


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


def count_can_rotate(network: Network, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every node's `canRotate()` eth_calls (each still goes to the chain)."""
    asked = [0]

    def counting(node: KeeperNode) -> None:
        ask = node.calls.can_rotate

        async def can_rotate() -> bool:
            asked[0] += 1
            return await ask()

        monkeypatch.setattr(node.calls, "can_rotate", can_rotate)

    for node in network.nodes.values():
        counting(node)
    return asked


async def current_epoch(network: Network) -> int:
    return int(await network.net.registry.functions.currentEpoch().call())


def next_epoch_started(network: Network, epoch: int) -> Callable[[], Awaitable[bool]]:
    async def started() -> bool:
        return await current_epoch(network) == epoch + 1

    return started


async def test_mid_epoch_heads_cost_no_can_rotate_call_and_the_epochs_end_still_rotates(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = network.net
    asked = count_can_rotate(network, monkeypatch)
    epoch = await current_epoch(network)
    # given an epoch running with no keeper-set change, far from its end
    await network.step(MIN_EPOCH_BLOCKS + 10)
    # then no node asked canRotate() at any of those heads
    assert asked[0] == 0
    # when the epoch's length runs out
    net.time_travel(await net.timestamp() + EPOCH_SECONDS)
    # then the nodes ask again and rotate within a few blocks, as they did at every head before
    await network.step_until(next_epoch_started(network, epoch), max_blocks=12)
    assert asked[0] > 0


async def test_a_keeper_joining_mid_epoch_is_taken_in_by_an_early_rotation(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = network.net
    asked = count_can_rotate(network, monkeypatch)
    epoch = await current_epoch(network)
    start = int((await net.registry.functions.epochState().call())[1])
    await network.step(5)
    assert asked[0] == 0
    # when a fifth keeper registers (a keeper-set change: the epoch may end once it is
    # MIN_EPOCH_BLOCKS old, long before its length runs out)
    newcomer = net.keepers[4]
    await net.register(newcomer, ETHER)
    # then the nodes learn it from the registration's event and rotate soon after that age
    taken = await network.step_until(
        next_epoch_started(network, epoch), max_blocks=MIN_EPOCH_BLOCKS + 12
    )
    assert await net.block_number() <= start + MIN_EPOCH_BLOCKS + 12
    assert taken > 0
    await network.step()
    quorums = await network.nodes[0].store.quorums(epoch + 1)
    assert newcomer.address in {m.address for quorum in quorums for m in quorum}


async def test_a_state_the_provider_cannot_give_at_the_stores_head_is_done_without(
    network: Network,
) -> None:
    node = network.nodes[0]
    head = await network.net.block_number()
    # a provider (a lagging backend) without the store's head block answers no state: the node
    # then asks canRotate() as it would without one
    assert await node.calls.epoch_timing(1, head + 100) is None
    timing = await node.calls.epoch_timing(1, head)
    assert timing is not None
    assert (timing.epoch, timing.arm_block) == (await current_epoch(network), 0)
