"""The sender on a node without `eth_feeHistory`: a loopback JSON-RPC proxy in front of anvil
refuses that method (as some L2 and legacy nodes do) and answers `eth_gasPrice` with a price it
is given. The tip follows that price, on a chain with a base fee and on one without (anvil at
the berlin hardfork), within the node's floor and ceiling and the contract's maximum."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from eth_account._utils.legacy_transactions import Transaction as LegacyTransaction
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes

from keeper.chain.rpc import disconnect
from keeper.chain.sender import TxSender
from keeper.core.fees import GWEI, FeePolicy
from keeper.core.types import Wei
from keeper.store.db import Store
from tests.anvil import AnvilChain, AnvilProcess, LoopbackRpcProxy


class NoFeeHistory(LoopbackRpcProxy):
    """Forwards JSON-RPC to `upstream`, refuses `eth_feeHistory` with -32601, and answers
    `eth_gasPrice` with `gas_price` when set. Counts the methods it was asked."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.gas_price: int | None = None
        self.asked: list[str] = []

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if isinstance(body, list):
            return web.json_response([await self._answer(call) for call in body])
        return web.json_response(await self._answer(body))

    async def _answer(self, call: dict[str, Any]) -> Any:
        method = call.get("method")
        self.asked.append(str(method))
        if method == "eth_feeHistory":
            error = {"code": -32601, "message": "the method eth_feeHistory does not exist"}
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": error}
        if method == "eth_gasPrice" and self.gas_price is not None:
            return {"jsonrpc": "2.0", "id": call.get("id"), "result": hex(self.gas_price)}
        return await self._forward(call)


class Env:
    def __init__(self, anvil: AnvilProcess, proxy: NoFeeHistory, store: Store) -> None:
        self.anvil = anvil
        self.proxy = proxy
        self.store = store
        chain = AnvilChain(anvil, accounts=2)
        self.w3 = chain.web3(proxy.url)
        self.account, other = chain.accounts
        self.to = other.address

    async def sender(self, policy: FeePolicy) -> TxSender:
        sender = TxSender(
            self.w3, self.account, self.store, policy, int(await self.w3.eth.chain_id)
        )
        await sender.start()
        return sender

    async def base_fee_at(self, block: int) -> int | None:
        raw = (await self.w3.eth.get_block(block)).get("baseFeePerGas")
        return None if raw is None else int(raw)


@pytest.fixture(params=[None, "berlin"], ids=["eip1559", "legacy"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    anvil = AnvilProcess(accounts=2, hardfork=request.param)
    proxy = NoFeeHistory(anvil.url)
    try:
        await proxy.start()
        store = await Store.open(
            tmp_path / "k.db",
            chain_id=int(anvil.rpc("eth_chainId"), 16),
            registry="0x" + "11" * 20,
            task_manager="0x" + "22" * 20,
            operator=AnvilChain(anvil, accounts=2).accounts[0].address,
        )
        env = Env(anvil, proxy, store)
        yield env
        await store.close()
        await disconnect(env.w3)
    finally:
        await proxy.stop()
        anvil.stop()


def offered_tip(raw: bytes, base_fee: int | None) -> int:
    """The tip a signed transaction offers: its gas price above the base fee for a legacy
    transaction on a chain that has none, else its priority fee."""
    if raw[0] >= 0xC0:
        assert base_fee is None, "a legacy transaction on a chain with a base fee"
        return int(LegacyTransaction.from_bytes(HexBytes(raw)).as_dict()["gasPrice"])
    return int(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["maxPriorityFeePerGas"])


async def test_without_fee_history_the_tip_follows_the_nodes_gas_price(env: Env) -> None:
    # given a node that refuses eth_feeHistory and asks 3 gwei above the base fee
    head = int(await env.w3.eth.block_number)
    base_fee = await env.base_fee_at(head)
    env.proxy.gas_price = (base_fee or 0) + 3 * GWEI
    sender = await env.sender(FeePolicy())
    env.anvil.rpc("evm_setAutomine", False)
    # when a transaction is sent
    await sender.send(env.to, b"", 21_000, "test.gas_price")
    # then it tips what the node asks above the base fee, not the 0.001 gwei floor
    (row,) = await env.store.pending_txs("pending")
    assert row.sent_block == head
    assert offered_tip(row.raw, base_fee) == 3 * GWEI
    assert "eth_feeHistory" in env.proxy.asked and "eth_gasPrice" in env.proxy.asked
    # and the node takes it
    env.anvil.rpc("evm_mine")
    (outcome,) = await sender.poll(int(await env.w3.eth.block_number))
    assert outcome.success


async def test_a_gas_price_beyond_the_bounds_is_held_to_them(env: Env) -> None:
    # given a node asking 40 gwei above the base fee, a node ceiling of 10 gwei and a
    # contract that bills at most a 5 gwei tip
    head = int(await env.w3.eth.block_number)
    base_fee = await env.base_fee_at(head)
    env.proxy.gas_price = (base_fee or 0) + 40 * GWEI
    sender = await env.sender(FeePolicy(priority_fee_ceiling=Wei(10 * GWEI)))
    sender.bound_by_contract(Wei(100 * GWEI), Wei(5 * GWEI))
    env.anvil.rpc("evm_setAutomine", False)
    # when a transaction is sent, then it tips the contract's maximum
    await sender.send(env.to, b"", 21_000, "test.ceiling")
    (row,) = await env.store.pending_txs("pending")
    assert offered_tip(row.raw, await env.base_fee_at(row.sent_block)) == 5 * GWEI
    # and feeHistory, refused once, is not asked again at the next block
    env.anvil.rpc("evm_mine")
    asked = env.proxy.asked.count("eth_feeHistory")
    await sender.send(env.to, b"", 21_000, "test.next")
    assert env.proxy.asked.count("eth_feeHistory") == asked
