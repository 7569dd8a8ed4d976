"""The sender on a chain without EIP-1559 (anvil at the berlin hardfork: blocks carry no
`baseFeePerGas`): legacy transactions, legacy replacements and legacy cancellations, each taken
by a real node's pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account._utils.legacy_transactions import Transaction as LegacyTransaction
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound

from keeper.chain.rpc import disconnect
from keeper.chain.sender import SELF_SEND_GAS, DoomCheck, TxSender
from keeper.core.fees import FeePolicy
from keeper.store.db import PendingTx, Store
from tests.anvil import AnvilChain, AnvilProcess

POLICY = FeePolicy(stuck_blocks=3)


@dataclass
class Berlin:
    anvil: AnvilProcess
    w3: AsyncWeb3[Any]
    account: LocalAccount
    chain_id: int
    store: Store
    to: str

    def sender(self, doom_check: DoomCheck | None = None) -> TxSender:
        return TxSender(
            self.w3, self.account, self.store, POLICY, self.chain_id, doom_check=doom_check
        )

    async def head(self) -> int:
        return int(await self.w3.eth.block_number)

    async def rows(self, status: str) -> list[PendingTx]:
        return await self.store.pending_txs(status)

    async def receipt(self, tx_hash: bytes) -> Any:
        try:
            return await self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None


@pytest.fixture
async def berlin(tmp_path: Path) -> AsyncIterator[Berlin]:
    anvil = AnvilProcess(accounts=2, hardfork="berlin")
    try:
        chain = AnvilChain(anvil, accounts=2)
        w3 = chain.web3()
        chain_id = int(await w3.eth.chain_id)
        account, other = chain.accounts
        store = await Store.open(
            tmp_path / "k.db",
            chain_id=chain_id,
            registry="0x" + "11" * 20,
            task_manager="0x" + "22" * 20,
            operator=account.address,
        )
        yield Berlin(anvil, w3, account, chain_id, store, other.address)
        await store.close()
        await disconnect(w3)
    finally:
        anvil.stop()


def legacy(raw: bytes) -> dict[str, Any]:
    assert raw[0] >= 0xC0, "not a legacy transaction"
    return dict(LegacyTransaction.from_bytes(HexBytes(raw)).as_dict())


async def test_a_chain_without_a_base_fee_gets_legacy_transactions(berlin: Berlin) -> None:
    # given a chain whose blocks carry no base fee
    assert "baseFeePerGas" not in await berlin.w3.eth.get_block("latest")
    sender = berlin.sender()
    await sender.start()
    # when a transaction is sent (anvil mines it at once)
    tx_hash = await sender.send(berlin.to, b"\x01", 30_000, "test.legacy", value=5)
    # then it is a legacy transaction whose gas price is the tip, within the node's bounds
    (row,) = await berlin.rows("pending")
    tx = legacy(row.raw)
    assert tx["gasPrice"] == row.max_fee == row.priority_fee
    assert POLICY.priority_fee_floor <= tx["gasPrice"] <= POLICY.tip_cap
    assert (tx["value"], bytes(tx["data"]), tx["gas"]) == (5, b"\x01", 30_000)
    # and it is mined and settled like any other
    (outcome,) = await sender.poll(await berlin.head())
    assert outcome.tx_hash == tx_hash and outcome.success
    assert int((await berlin.receipt(tx_hash))["type"]) == 0
    assert await sender.expected_gas_price() == tx["gasPrice"]


async def test_a_stuck_legacy_transaction_is_replaced_by_a_legacy_one(berlin: Berlin) -> None:
    # given a legacy transaction held in the pool
    sender = berlin.sender()
    await sender.start()
    berlin.anvil.rpc("evm_setAutomine", False)
    original = await sender.send(berlin.to, b"\xaa", 30_000, "test.stuck")
    head = await berlin.head()
    # when it has waited `stuck_blocks` (the pool keeps it: nothing is mined meanwhile)
    assert await sender.poll(head + POLICY.stuck_blocks) == []
    # then the pool took a legacy replacement paying at least 13 % more, same call
    old, new = sorted(await berlin.rows("pending"), key=lambda r: r.max_fee)
    assert old.tx_hash == original and await berlin.rows("failed") == []
    a, b = legacy(old.raw), legacy(new.raw)
    assert b["gasPrice"] * 100 >= a["gasPrice"] * (100 + POLICY.bump_percent)
    for field in ("nonce", "to", "value", "data", "gas"):
        assert a[field] == b[field], field
    assert (a["v"] - 35) // 2 == (b["v"] - 35) // 2 == berlin.chain_id  # EIP-155
    # and once a block is mined, the replacement is the one included
    berlin.anvil.rpc("evm_mine")
    (outcome,) = await sender.poll(await berlin.head())
    assert outcome.tx_hash == new.tx_hash and outcome.success
    assert await berlin.receipt(original) is None


async def test_a_doomed_legacy_transaction_is_cancelled_by_a_legacy_self_send(
    berlin: Berlin,
) -> None:
    doomed = False

    async def doom(purpose: str, to: str | None, data: bytes, head: int) -> str | None:
        return "deadline_passed" if doomed else None

    sender = berlin.sender(doom)
    await sender.start()
    berlin.anvil.rpc("evm_setAutomine", False)
    original = await sender.send(berlin.to, b"\x55" * 64, 60_000, "execute:3:1")
    doomed = True
    assert await sender.poll(await berlin.head()) == []
    (cancel,) = [r for r in await berlin.rows("pending") if r.tx_hash != original]
    tx = legacy(cancel.raw)
    assert (tx["to"], tx["value"], bytes(tx["data"]), tx["gas"]) == (
        HexBytes(berlin.account.address),
        0,
        b"",
        SELF_SEND_GAS,
    )
    berlin.anvil.rpc("evm_mine")
    (outcome,) = await sender.poll(await berlin.head())
    assert outcome.purpose == "cancel:execute:3:1" and outcome.gas_used == SELF_SEND_GAS
    assert await berlin.receipt(original) is None
