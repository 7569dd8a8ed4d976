"""Fixtures shared by the node tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from keeper.chain.anvil import AnvilChain, AnvilProcess
from keeper.chain.rpc import disconnect
from tests.harness import Net, make_net


@pytest.fixture
async def anvil() -> AsyncIterator[AnvilProcess]:
    """A fresh anvil with two funded dev accounts, killed by pid after the test."""
    process = AnvilProcess(accounts=2)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def anvil_net() -> AsyncIterator[Net]:
    """A network deployed on a fresh anvil (4 keepers' accounts), anvil killed by pid after."""
    anvil = AnvilProcess(accounts=6)
    net: Net | None = None
    try:
        net = await make_net(keepers=4, chain=AnvilChain(anvil, accounts=6))
        yield net
    finally:
        if net is not None:
            await disconnect(net.w3)
        anvil.stop()
