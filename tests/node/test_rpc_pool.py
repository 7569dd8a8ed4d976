"""The RPC pool (keeper.chain.pool) against the provider emulator in front of anvil: a 429 is
retried after its Retry-After (web3's own retry does not wait for it), the pool's own limit
keeps it under the provider's, a dead URL fails over to the next, and no URL's key shows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from web3 import AsyncWeb3

from keeper.chain.anvil import free_port
from keeper.chain.pool import EndpointLimits, RpcPool
from keeper.chain.rpc import connect, disconnect, split_rpc_urls
from tests.anvil import AnvilProcess
from tests.provider import ProviderEmulator

KEY = "5ecre7a91b2c3d4e5f60718293"


@pytest.fixture(scope="module")
def anvil() -> AsyncIterator[AnvilProcess]:
    chain = AnvilProcess(accounts=2)
    yield chain  # type: ignore[misc]
    chain.stop()


@pytest.fixture
async def provider(anvil: AnvilProcess) -> AsyncIterator[ProviderEmulator]:
    rpc = ProviderEmulator(anvil.url, KEY, per_second=4, burst=4, lagging_backend=False)
    await rpc.start()
    yield rpc
    await rpc.stop()


class RecordedSleep:
    """asyncio.sleep that remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds)


async def test_a_429_is_retried_after_its_retry_after(
    provider: ProviderEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # given a pool whose own limit is above the provider's (it learns from the 429s)
    sleep = RecordedSleep()
    pool = RpcPool([provider.url], EndpointLimits(per_second=100, burst=100), sleep=sleep)
    w3 = AsyncWeb3(pool)
    try:
        # when it sends twice the provider's burst at once
        numbers = await asyncio.gather(*(w3.eth.block_number for _ in range(8)))
        # then every call got its answer, the provider throttled some, and the pool waited
        # the Retry-After (1 s) the provider asked for before asking again (not 0.125 s)
        assert len(numbers) == 8
        assert provider.throttled > 0 and pool.totals()["throttled"] == provider.throttled
        assert max(sleep.waits) > 0.9  # 1 s from the 429, less the time it took to ask again
        assert all(KEY not in r.getMessage() for r in caplog.records)
    finally:
        await disconnect(w3)


async def test_the_pools_own_limit_keeps_it_under_the_providers(
    provider: ProviderEmulator,
) -> None:
    # given a pool limited a little below the provider's rate (clocks on both sides differ)
    pool = RpcPool([provider.url], EndpointLimits(per_second=3.5, burst=4, concurrency=2))
    w3 = AsyncWeb3(pool)
    try:
        # when it sends three bursts' worth at once
        await asyncio.gather(*(w3.eth.block_number for _ in range(12)))
        # then the provider never had to refuse one
        assert provider.throttled == 0
        assert pool.endpoints[0].waited > 0
    finally:
        await disconnect(w3)


async def test_a_dead_url_fails_over_to_the_next(
    provider: ProviderEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = f"http://127.0.0.1:{free_port()}/v2/{KEY}"
    # given --rpc-url twice, the first one refusing connections
    w3 = connect(split_rpc_urls(f"{dead},{provider.url}"), lean=True)
    pool = w3.provider
    assert isinstance(pool, RpcPool)
    try:
        # then calls are answered by the second, which later calls go to first
        assert await w3.eth.chain_id == 31337
        assert pool.current.url == provider.url
        assert pool.endpoints[0].failed == 1
        await w3.eth.block_number
        assert pool.endpoints[0].failed == 1
        # and no log line carries either URL's key
        assert any("rpc.failover" in r.getMessage() for r in caplog.records)
        assert all(KEY not in r.getMessage() for r in caplog.records)
    finally:
        await disconnect(w3)


async def test_a_block_one_backend_lacks_is_asked_again(anvil: AnvilProcess) -> None:
    # given a provider whose every other answer comes from a backend a block or two behind
    rpc = ProviderEmulator(anvil.url, KEY, per_second=1000, burst=1000)
    await rpc.start()
    w3 = connect(rpc.url, lean=True)
    pool = w3.provider
    assert isinstance(pool, RpcPool)
    try:
        for _ in range(6):
            anvil.rpc("evm_mine")
            head = int(anvil.rpc("eth_blockNumber"), 16)
            # when the node asks for the newest block and calls a contract at it
            block = await w3.eth.get_block(head)
            await w3.eth.get_balance(str(block["miner"]), head)  # type: ignore[arg-type]
            # then it gets them, whichever backend answered first
            assert int(block["number"]) == head
        assert pool.not_there > 0
    finally:
        await disconnect(w3)
        await rpc.stop()


def test_rpc_urls_given_once_or_more_keep_their_order() -> None:
    assert split_rpc_urls("http://a:1, http://b:2/k") == ["http://a:1", "http://b:2/k"]
    assert split_rpc_urls(["http://a:1", "http://b:2,http://c:3"]) == [
        "http://a:1",
        "http://b:2",
        "http://c:3",
    ]
