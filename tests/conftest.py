"""Shared fixtures: a fresh in-process network per test."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.harness import Net, make_net

# The suite runs on a busy 2-core machine: wall-time limits per example and "too slow" or
# "filters too much" health checks would fail tests for the machine's load, not the code.
settings.register_profile(
    "keeper",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile("keeper")


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
