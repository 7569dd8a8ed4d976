"""The follower behind a hosted provider's emulator (tests/provider.py) in front of anvil: a
lagging backend's empty eth_getLogs answer loses no event, refused ranges are split, headers come
in batches the provider accepts, and the API key shows nowhere."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keeper.chain.follower import ChainFollower
from keeper.chain.rpc import connect, disconnect
from keeper.store.db import Store
from tests.harness import Net
from tests.integration.store_support import read_table
from tests.integration.test_follower import (
    Follower,
    create_event_job,
    create_time_job,
    emit_demo,
)
from tests.provider import ProviderEmulator

KEY = "c0ffee0123456789abcdef42"


@dataclass
class Behind:
    net: Net
    rpc: ProviderEmulator
    store: Store
    follower: ChainFollower
    w3: Any

    async def sync_until_caught_up(self, passes: int = 200) -> None:
        for _ in range(passes):
            result = await self.follower.sync()
            if result.head >= await self.net.block_number():
                return
        raise AssertionError(f"not caught up in {passes} passes")


async def behind(tmp_path: Path, net: Net, rpc: ProviderEmulator, max_range: int) -> Behind:
    await rpc.start()
    store = await net.open_store(tmp_path / "keeper.db")
    w3 = connect(rpc.url, lean=True)
    follower = ChainFollower(
        w3, net.registry, net.tm, store, start_block=net.deployment.block, max_range=max_range
    )
    return Behind(net, rpc, store, follower, w3)


@pytest.fixture
async def provider(anvil_net: Net, tmp_path: Path) -> AsyncIterator[Behind]:
    rpc = ProviderEmulator(str(anvil_net.chain.anvil.url), KEY, per_second=1000, burst=1000)  # type: ignore[attr-defined]
    b = await behind(tmp_path, anvil_net, rpc, max_range=200)
    yield b
    await disconnect(b.w3)
    await b.store.close()
    await rpc.stop()


async def test_a_lagging_backends_empty_logs_lose_no_event(
    provider: Behind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    net, follower, store = provider.net, provider.follower, provider.store
    await provider.sync_until_caught_up()
    job_id = await create_event_job(net)
    # when events come one block at a time and the follower takes each block as it comes,
    # while every other answer is from a backend one or two blocks behind
    wanted: list[int] = []
    for tag in range(6):
        wanted.append(await emit_demo(net, tag))
        await create_time_job(net)
        for _ in range(4):
            await follower.sync()
    await provider.sync_until_caught_up()
    # then the lagging backend did answer empty, and still every job and every log is stored
    assert provider.rpc.empty_lagging_logs > 0
    count = int(await net.tm.functions.nextJobId().call()) - 1
    assert len(await store.jobs()) == count == 7
    cursors = await job_logs(store, job_id)
    assert cursors == wanted
    # and no reorg was taken for lag, and the key is in no log line
    assert not [r for r in caplog.records if "sync.reorg" in r.getMessage()]
    assert all(KEY not in r.getMessage() for r in caplog.records)


async def test_refused_log_ranges_are_split_until_the_provider_answers(
    anvil_net: Net, tmp_path: Path
) -> None:
    # given a provider that answers at most 8 blocks or 2 logs per eth_getLogs
    net = anvil_net
    job_id = await create_event_job(net)
    wanted = [await emit_demo(net, tag) for tag in range(5)]
    net.mine(40)
    rpc = ProviderEmulator(
        str(net.chain.anvil.url),  # type: ignore[attr-defined]
        KEY,
        per_second=1000,
        burst=1000,
        max_log_range=8,
        max_log_results=2,
    )
    b = await behind(tmp_path, net, rpc, max_range=100)
    try:
        # when a follower catches up in ranges of 100 blocks
        await b.sync_until_caught_up()
        # then ranges were refused for both reasons, split, and nothing was lost
        assert rpc.refused["range"] > 0 and rpc.refused["results"] > 0
        assert b.follower._logs.span <= 8
        assert await job_logs(b.store, job_id) == wanted
        assert len(await b.store.jobs()) == 1
        # and the headers came in batches the provider accepts, not one request per block
        assert rpc.refused["batch"] == 0
        assert rpc.calls["eth_getBlockByNumber"] > rpc.requests / 2
    finally:
        await disconnect(b.w3)
        await b.store.close()
        await rpc.stop()


async def job_logs(store: Store, job_id: int) -> list[int]:
    """Cursors of the stored logs of an Event job, oldest first."""
    path = Path(store.path)
    return sorted(int(row[1]) for row in read_table(path, "job_logs") if row[0] == job_id)


async def test_a_restart_keeps_the_blocks_the_chain_calls_finalized(provider: Behind) -> None:
    net, store = provider.net, provider.store
    # given a store synced to its head, then a chain that went on for 100 blocks (anvil calls
    # `latest - 64` finalized), so that the stored head is final
    await create_time_job(net)
    await provider.sync_until_caught_up()
    head = await store.head()
    assert head is not None
    net.mine(100)
    # when the node restarts
    await provider.follower.resume()
    # then nothing is rolled back: a reorg cannot have replaced a finalized block
    assert await store.head() == head


async def test_a_chain_that_calls_its_head_final_is_not_trusted(net4: Net, tmp_path: Path) -> None:
    # given eth-tester, whose `finalized` is its `latest` (and whose snapshots revert it)
    f = await Follower.open(net4, tmp_path / "keeper.db", reorg_depth=4)
    try:
        await create_time_job(net4)
        net4.mine(10)
        await f.sync_all()
        head = await f.store.head()
        assert head is not None
        # when the node restarts, then it rolls back its reorg depth as without a finalized tag
        assert await f.follower.finalized_block() is None
        await f.follower.resume()
        assert (await f.store.head() or (0, b""))[0] == head[0] - 4
    finally:
        await f.store.close()


async def test_a_provider_capping_batches_lower_gets_smaller_header_batches(
    anvil_net: Net, tmp_path: Path
) -> None:
    # given a provider that refuses JSON-RPC batches of more than 30 calls
    net = anvil_net
    await create_time_job(net)
    net.mine(150)
    rpc = ProviderEmulator(
        str(net.chain.anvil.url),  # type: ignore[attr-defined]
        KEY,
        per_second=1000,
        burst=1000,
        max_batch=30,
    )
    b = await behind(tmp_path, net, rpc, max_range=200)
    try:
        # when the follower catches up 150 blocks
        await b.sync_until_caught_up()
        # then it halved its batches until they passed, and learned every block and job
        assert rpc.refused["batch"] >= 1
        assert b.follower._header_batch <= 30
        assert len(await b.store.jobs()) == 1
        assert (await b.store.head() or (0, b""))[0] == await net.block_number()
    finally:
        await disconnect(b.w3)
        await b.store.close()
        await rpc.stop()


async def test_a_provider_without_block_hash_queries_still_gives_a_pushed_heads_logs(
    anvil_net: Net, tmp_path: Path
) -> None:
    # given a provider that refuses eth_getLogs by block hash (no EIP-234), one backend
    net = anvil_net
    rpc = ProviderEmulator(
        str(net.chain.anvil.url),  # type: ignore[attr-defined]
        KEY,
        per_second=1000,
        burst=1000,
        lagging_backend=False,
        block_hash_filter=False,
    )
    b = await behind(tmp_path, net, rpc, max_range=200)
    try:
        await b.sync_until_caught_up()
        # when a head with a new job arrives pushed (its logs are asked by the block's hash)
        await create_time_job(net)
        block = await net.w3.eth.get_block("latest")
        b.follower.note_head(
            (
                int(block["number"]),
                bytes(block["hash"]),
                bytes(block["parentHash"]),
                int(block["timestamp"]),
            )
        )
        await b.follower.sync()
        # then the refusal is answered by asking for the block by number, and the job is known
        assert rpc.refused["block_hash"] >= 1
        assert len(await b.store.jobs()) == 1
    finally:
        await disconnect(b.w3)
        await b.store.close()
        await rpc.stop()
