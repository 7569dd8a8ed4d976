"""Fixtures shared by the node tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from keeper.chain.anvil import AnvilProcess


@pytest.fixture
async def anvil() -> AsyncIterator[AnvilProcess]:
    """A fresh anvil with two funded dev accounts, killed by pid after the test."""
    process = AnvilProcess(accounts=2)
    try:
        yield process
    finally:
        process.stop()
