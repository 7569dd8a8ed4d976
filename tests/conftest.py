"""Shared fixtures: a fresh in-process network per test."""

from __future__ import annotations

import pytest

from tests.harness import Net, make_net


@pytest.fixture
async def net() -> Net:
    """A deployed network with 8 keeper accounts, none registered yet."""
    return await make_net(keepers=8)


@pytest.fixture
async def net4() -> Net:
    """A network with 4 registered keepers (stakes 1-4 ether) and epoch 1 formed: one quorum."""
    n = await make_net(keepers=8)
    await n.register_keepers([10**18, 2 * 10**18, 3 * 10**18, 4 * 10**18])
    await n.rotate()
    return n
