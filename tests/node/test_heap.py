"""A node moves its long-lived objects out of the garbage collector's full passes once it has
led a head (the 10,000-jobs p90 was full collections walking the job table)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.nodes import Network, start_network


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path, stakes=[10**18])
    yield network
    await network.stop()
    gc.unfreeze()


async def test_a_node_that_led_a_head_has_frozen_its_heap(network: Network) -> None:
    # given a node just (re)started, and nothing frozen in this process
    await network.stop_node(0)
    await network.start_node(0)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    # when the node leads its first head
    await network.step()
    # then the objects alive then are out of the collector's walk
    assert gc.get_freeze_count() > 0
    # and the next heads of the same epoch do not collect again
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    await network.step(3)
    assert gc.get_freeze_count() == 0
    assert frozen > 0
