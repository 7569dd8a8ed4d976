"""New heads pushed over anvil's WebSocket: the header each push carries is the block's, a lost
connection is retried by itself, and a node that is pushed a head syncs without waiting for its
poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from keeper.chain.follower import Header
from keeper.chain.heads import HeadWatcher, parse_head
from keeper.chain.jsonrpc import parse_fees
from keeper.chain.rpc import disconnect
from keeper.config import Settings, load_settings
from keeper.core.redact import redact_url
from keeper.errors import ConfigError
from keeper.node.context import NodeOptions
from tests.anvil import AnvilChain, AnvilProcess, TcpProxy
from tests.nodes import start_network


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_pushs_fees_are_read_from_numbers_or_hex_quantities() -> None:
    assert parse_fees({"baseFeePerGas": 7, "gasLimit": "0x1c9c380"}) == (7, 30_000_000)
    assert parse_fees({"gasLimit": 30_000_000}) == (None, 30_000_000)  # before EIP-1559
    assert parse_fees({"baseFeePerGas": "7", "gasLimit": True}) == (None, None)
    assert parse_fees(None) == (None, None)


def test_a_push_without_a_whole_header_is_ignored() -> None:
    good = {"number": 5, "timestamp": 7, "hash": "0x" + "11" * 32, "parentHash": b"\x22" * 32}
    assert parse_head(good) == (5, b"\x11" * 32, b"\x22" * 32, 7)
    assert parse_head(None) is None
    assert parse_head({**good, "number": "5"}) is None
    assert parse_head({**good, "hash": "0x1234"}) is None
    assert parse_head({k: v for k, v in good.items() if k != "parentHash"}) is None


def test_the_websocket_url_defaults_to_the_rpc_host_and_port() -> None:
    assert Settings(rpc_url="http://127.0.0.1:8545").heads_url == "ws://127.0.0.1:8545"
    assert Settings(rpc_url="https://rpc.example/v3/k").heads_url == "wss://rpc.example/v3/k"
    assert Settings(rpc_url="http://x:1", ws_url="off").heads_url is None
    assert Settings(rpc_url="http://x:1", ws_url="ws://y:2").heads_url == "ws://y:2"
    # anything else is refused by name before a node starts
    with pytest.raises(ConfigError, match="ws url must be auto, off or a ws:// or wss:// URL"):
        load_settings(flags={"ws_url": "http://127.0.0.1:8545"}, dotenv_path=None)
    # a hosted RPC's path holds its API key: logs name only scheme, host and port
    assert redact_url("wss://user:secret@rpc.example:443/v3/key") == "wss://rpc.example:443/***"


async def test_pushed_headers_are_the_chains_and_a_cut_is_retried() -> None:
    anvil = AnvilProcess(accounts=2)
    proxy = TcpProxy(anvil.port)
    await proxy.start()
    heads: list[Header] = []
    fees: dict[int, tuple[int | None, int | None]] = {}
    watcher = HeadWatcher(
        proxy.url.replace("http://", "ws://"),
        heads.append,
        on_fees=lambda number, fee, limit: fees.update({number: (fee, limit)}),
        retry_first=0.1,
        retry_max=0.2,
    )
    task = asyncio.create_task(watcher.run())
    w3 = AnvilChain(anvil).web3()
    try:
        # given a subscription
        await wait_until(lambda: watcher.subscribed)
        # when blocks are mined, then each push carries the block's own header and fees
        anvil.rpc("evm_mine")
        anvil.rpc("evm_mine")
        await wait_until(lambda: len(heads) >= 2)
        for number, block_hash, parent, timestamp in heads:
            block = await w3.eth.get_block(number)
            assert (block_hash, parent, timestamp) == (
                bytes(block["hash"]),
                bytes(block["parentHash"]),
                int(block["timestamp"]),
            )
            # and its fees, so the leader's pass reads no block for them
            assert fees[number] == (int(block["baseFeePerGas"]), int(block["gasLimit"]))
        # when the connection is cut, the watcher says so and keeps trying (it never raises)
        proxy.cut()
        await wait_until(lambda: not watcher.subscribed)
        await asyncio.sleep(0.5)
        assert not task.done()
        # and when it is back, pushes resume by themselves
        proxy.restore()
        await wait_until(lambda: watcher.subscribed)
        seen = len(heads)
        anvil.rpc("evm_mine")
        await wait_until(lambda: len(heads) > seen)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await disconnect(w3)
        await proxy.stop()
        anvil.stop()


async def test_a_pushed_head_wakes_the_node_before_its_poll(tmp_path: Path) -> None:
    anvil = AnvilProcess(accounts=12)
    network = None
    try:
        # given a node that would poll only once a minute, subscribed to new heads
        network = await start_network(
            tmp_path,
            chain=AnvilChain(anvil, accounts=12),
            options=NodeOptions(poll_interval=60.0, ws_url=anvil.url.replace("http", "ws")),
        )
        await network.stop_node(0)
        node = await network.start_node(0, loop=True)
        heads = node.heads
        assert heads is not None
        await wait_until(lambda: heads.subscribed)
        await asyncio.sleep(0.5)  # the first pass after start has run
        before = (await node.store.head() or (0, b""))[0]
        # when a block is mined
        anvil.rpc("evm_mine")

        # then the node has it within seconds, long before its next poll
        async def synced() -> bool:
            return (await node.store.head() or (0, b""))[0] > before

        deadline = time.monotonic() + 10
        while not await synced():
            assert time.monotonic() < deadline, "the pushed head did not wake the node"
            await asyncio.sleep(0.05)
        assert heads.heads_seen >= 1
        assert (await node.status())["heads"] == "pushed"
        # and the push brought the head's base fee and gas limit: asking for them reads nothing
        head = (await node.store.head() or (0, b""))[0]
        block = await node.w3.eth.get_block(head)
        assert await node.sender.base_fee_at(head) == int(block["baseFeePerGas"])
        assert node.sender.block_gas_limit == int(block["gasLimit"])
        # a noted block is not read (block head + 1000 does not exist: a read would raise)
        node.sender.note_fees(head + 1000, 7, 8)
        assert await node.sender.base_fee_at(head + 1000) == 7
        assert node.sender.block_gas_limit == 8
    finally:
        if network is not None:
            await network.stop()
        anvil.stop()
