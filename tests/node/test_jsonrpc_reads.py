"""The hot calls a node makes at every head (keeper.chain.jsonrpc) give over plain JSON-RPC what
web3's formatted calls give, on anvil and behind a hosted provider's emulator: the same logs,
base fee, gas limit, balances, call results, nonces and receipts, and the same errors (a
reverted call, a refused range, a block the provider lacks, a transaction sent twice)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from web3.exceptions import BlockNotFound, ContractLogicError, Web3RPCError

from keeper.chain import jsonrpc
from keeper.chain.follower import ChainFollower
from keeper.chain.logs import is_too_much
from keeper.chain.rpc import connect, disconnect
from tests.harness import Net
from tests.integration.test_follower import create_event_job, create_time_job, emit_demo
from tests.provider import ProviderEmulator


@pytest.fixture
async def w3(anvil_net: Net) -> AsyncIterator[Any]:
    node_w3 = connect(str(anvil_net.chain.anvil.url), lean=True)  # type: ignore[attr-defined]
    assert jsonrpc.json_provider(node_w3) is not None
    yield node_w3
    await disconnect(node_w3)


def as_read(raw: Any) -> dict[str, Any]:
    """web3's formatted log in the fields and types the node reads."""
    return {
        "address": str(raw["address"]).lower(),
        "topics": [bytes(t) for t in raw["topics"]],
        "data": bytes(raw["data"]),
        "blockNumber": int(raw["blockNumber"]),
        "logIndex": int(raw["logIndex"]),
        "blockHash": bytes(raw["blockHash"]),
        "transactionHash": bytes(raw["transactionHash"]),
    }


async def test_logs_are_the_ones_web3_gives_by_range_and_by_block_hash(
    anvil_net: Net, w3: Any
) -> None:
    net = anvil_net
    await create_time_job(net)
    await create_event_job(net)
    for tag in range(3):
        await emit_demo(net, tag)
    head = await net.block_number()
    query = {"address": [net.tm.address, net.target.address], "fromBlock": 0, "toBlock": head}

    lean = await jsonrpc.get_logs(w3, query)
    formatted = list(await w3.eth.get_logs(query))

    assert len(lean) >= 5  # JobCreated twice, three DemoEvents
    assert [{**x, "address": x["address"].lower()} for x in lean] == [as_read(x) for x in formatted]
    block_hash = lean[-1]["blockHash"]
    by_hash = {"address": [net.target.address], "blockHash": "0x" + block_hash.hex()}
    assert [as_read(x) for x in await w3.eth.get_logs(by_hash)] == [
        {**x, "address": x["address"].lower()} for x in await jsonrpc.get_logs(w3, by_hash)
    ]


async def test_a_blocks_fees_are_the_ones_web3_gives(anvil_net: Net, w3: Any) -> None:
    head = await anvil_net.block_number()
    block = await w3.eth.get_block(head)

    fee, limit = await jsonrpc.block_fees(w3, head)

    assert (fee, limit) == (int(block["baseFeePerGas"]), int(block["gasLimit"]))
    with pytest.raises(BlockNotFound):
        await jsonrpc.block_fees(w3, head + 1000)


async def test_a_call_answers_and_reverts_as_through_web3(anvil_net: Net, w3: Any) -> None:
    net = anvil_net
    data = net.registry.encode_abi("canRotate", args=[])
    expected = bytes(await w3.eth.call({"to": net.registry.address, "data": data}))

    assert await jsonrpc.call(w3, net.registry.address, data) == expected

    # recordEpoch from a stranger reverts with the registry-only custom error.
    bad = net.tm.encode_abi("recordEpoch", args=[1, 1, b"\x00" * 16, []])
    with pytest.raises(ContractLogicError) as through_web3:
        await w3.eth.call({"to": net.tm.address, "data": bad})
    with pytest.raises(ContractLogicError) as lean:
        await jsonrpc.call(w3, net.tm.address, bad)
    assert lean.value.data == through_web3.value.data


async def test_a_refused_range_raises_the_providers_message(anvil_net: Net) -> None:
    rpc = ProviderEmulator(
        str(anvil_net.chain.anvil.url),
        "k3y",
        max_log_range=2,
        per_second=1000,
        burst=1000,
        lagging_backend=False,
    )  # type: ignore[attr-defined]
    await rpc.start()
    w3 = connect(rpc.url, lean=True)
    try:
        for _ in range(4):
            await emit_demo(anvil_net, 1)
        query = {"address": [anvil_net.target.address], "fromBlock": 0, "toBlock": "latest"}
        with pytest.raises(Web3RPCError) as through_web3:
            await w3.eth.get_logs(query)
        with pytest.raises(Web3RPCError) as lean:
            await jsonrpc.get_logs(w3, query)
        assert is_too_much(str(lean.value))
        assert str(lean.value) == str(through_web3.value)
    finally:
        await disconnect(w3)
        await rpc.stop()


async def test_a_balance_is_the_one_web3_gives(anvil_net: Net, w3: Any) -> None:
    for account in (anvil_net.owner.address, anvil_net.keepers[0].address):
        assert await jsonrpc.balance(w3, account) == int(await w3.eth.get_balance(account))


async def test_a_polled_latest_block_brings_its_fees(
    anvil_net: Net, w3: Any, tmp_path: Path
) -> None:
    net = anvil_net
    store = await net.open_store(tmp_path / "keeper.db")
    fees: dict[int, tuple[int | None, int | None]] = {}
    follower = ChainFollower(
        w3,
        net.registry,
        net.tm,
        store,
        start_block=net.deployment.block,
        on_fees=lambda number, fee, limit: fees.update({number: (fee, limit)}),
    )
    try:
        result = await follower.sync()
        block = await w3.eth.get_block(result.chain_head)
        assert fees[result.chain_head] == (int(block["baseFeePerGas"]), int(block["gasLimit"]))
    finally:
        await store.close()


async def test_a_sent_transaction_its_receipt_and_the_nonce_are_the_ones_web3_gives(
    anvil_net: Net, w3: Any
) -> None:
    sender = anvil_net.keepers[-1]
    nonce = await jsonrpc.transaction_count(w3, sender.address, "latest")
    assert nonce == await w3.eth.get_transaction_count(sender.address, "latest")
    assert await jsonrpc.receipt(w3, b"\x12" * 32) is None  # unknown: not mined
    tx = {
        "to": anvil_net.owner.address,
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": 10**11,
        "maxPriorityFeePerGas": 1,
        "nonce": nonce,
        "chainId": await w3.eth.chain_id,
    }
    raw = bytes(sender.sign_transaction(tx).raw_transaction)

    await jsonrpc.send_raw_transaction(w3, raw)

    tx_hash = bytes(sender.sign_transaction(tx).hash)
    mined = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert await jsonrpc.receipt(w3, tx_hash) == {
        "status": 1,
        "blockNumber": int(mined["blockNumber"]),
        "gasUsed": int(mined["gasUsed"]),
    }
    assert await jsonrpc.transaction_count(w3, sender.address, "latest") == nonce + 1
    # the same transaction again is refused, with the node's words, as through web3
    with pytest.raises(Web3RPCError) as through_web3:
        await w3.eth.send_raw_transaction(raw)
    with pytest.raises(Web3RPCError) as lean:
        await jsonrpc.send_raw_transaction(w3, raw)
    assert str(lean.value) == str(through_web3.value)
