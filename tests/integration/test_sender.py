"""The transaction sender on eth-tester: persist before broadcast, nonces, restart, replacement.

eth-tester holds transactions pending while auto-mining is off (`disable_auto_mine_transactions`)
and a same-nonce raw transaction replaces the pending one, like a real pool. `tester.mine_blocks`
would include them, so "blocks pass and the transaction is not included" is played by mining
through the backend (`backend.mine_blocks`), which leaves the tester's pending list alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound

from keeper.chain.embedded import EmbeddedChain
from keeper.chain.sender import SELF_SEND_GAS, TxSender
from keeper.core.fees import GWEI, FeePolicy
from keeper.core.types import Wei
from keeper.errors import TooManyInFlight, TransactionFailed
from keeper.store.db import PendingTx, Store

REGISTRY = "0x" + "11" * 20
TASK_MANAGER = "0x" + "22" * 20
# Init code returning the runtime `PUSH1 0 PUSH1 0 REVERT`: every call to it reverts.
ALWAYS_REVERTS = bytes.fromhex("6005600c60003960056000f3" + "60006000fd")
POLICY = FeePolicy(stuck_blocks=3)


@dataclass
class Env:
    chain: EmbeddedChain
    w3: AsyncWeb3[Any]
    account: LocalAccount
    chain_id: int
    path: Path
    store: Store
    sender: TxSender
    to: str

    async def reopen(self) -> TxSender:
        """A restart: close the store, open it again, build a new sender and start it."""
        await self.store.close()
        self.store = await open_store(self.path, self.chain_id, self.account)
        self.sender = TxSender(self.w3, self.account, self.store, POLICY, self.chain_id)
        return self.sender

    async def rows(self, status: str) -> list[PendingTx]:
        return await self.store.pending_txs(status)

    async def head(self) -> int:
        return int(await self.w3.eth.block_number)

    async def receipt(self, tx_hash: bytes) -> Any:
        try:
            return await self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None

    async def nonce(self) -> int:
        return int(await self.w3.eth.get_transaction_count(self.account.address))


async def open_store(path: Path, chain_id: int, account: LocalAccount) -> Store:
    return await Store.open(
        path,
        chain_id=chain_id,
        registry=REGISTRY,
        task_manager=TASK_MANAGER,
        operator=account.address,
    )


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    chain = EmbeddedChain(accounts=3)
    w3 = chain.web3()
    account = chain.accounts[0]
    chain_id = int(await w3.eth.chain_id)
    path = tmp_path / "k.db"
    store = await open_store(path, chain_id, account)
    sender = TxSender(w3, account, store, POLICY, chain_id)
    await sender.start()
    e = Env(chain, w3, account, chain_id, path, store, sender, chain.accounts[1].address)
    yield e
    await e.store.close()


def spy_broadcasts(
    env: Env, monkeypatch: pytest.MonkeyPatch, before: Callable[[bytes], Awaitable[None]]
) -> None:
    """Runs `before(raw)` at every eth_sendRawTransaction, then broadcasts for real."""
    original = env.w3.eth.send_raw_transaction

    async def spy(raw: bytes) -> HexBytes:
        await before(raw)
        return await original(raw)

    monkeypatch.setattr(env.w3.eth, "send_raw_transaction", spy)


def decoded(raw: bytes) -> dict[str, Any]:
    return TypedTransaction.from_bytes(HexBytes(raw)).as_dict()


async def test_send_is_persisted_before_broadcast_and_mined(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a spy that reads the store whenever the node is asked to broadcast
    stored_at_broadcast: list[list[bytes]] = []

    async def read_store(raw: bytes) -> None:
        stored_at_broadcast.append([row.raw for row in await env.rows("pending")])

    spy_broadcasts(env, monkeypatch, read_store)
    # when a transaction is sent (eth-tester mines it at once)
    tx_hash = await env.sender.send(env.to, b"\x01\x02", 50_000, "test.transfer", value=7)
    # then its exact bytes were already stored as pending when it was broadcast
    (row,) = await env.rows("pending")
    assert stored_at_broadcast == [[row.raw]]
    assert row.tx_hash == tx_hash and row.nonce == 0 and row.purpose == "test.transfer"
    tx = decoded(row.raw)
    assert (tx["type"], tx["value"], bytes(tx["data"]), tx["gas"]) == (2, 7, b"\x01\x02", 50_000)
    assert (tx["maxFeePerGas"], tx["maxPriorityFeePerGas"]) == (row.max_fee, row.priority_fee)
    # and the next poll reports it mined and settles the row
    (outcome,) = await env.sender.poll(await env.head())
    receipt = await env.receipt(tx_hash)
    assert outcome.success and outcome.tx_hash == tx_hash and outcome.nonce == 0
    assert (outcome.block_number, outcome.gas_used) == (
        receipt["blockNumber"],
        receipt["gasUsed"],
    )
    assert [r.tx_hash for r in await env.rows("mined")] == [tx_hash]
    assert await env.rows("pending") == []
    assert await env.sender.poll(await env.head()) == []


async def test_nonces_increase_across_sends(env: Env) -> None:
    hashes = [await env.sender.send(env.to, b"", 21_000, f"test.{i}") for i in range(3)]
    outcomes = await env.sender.poll(await env.head())
    assert [o.nonce for o in outcomes] == [0, 1, 2]
    assert [o.tx_hash for o in outcomes] == hashes
    assert all(o.success for o in outcomes)
    assert await env.nonce() == 3


async def test_restart_rebroadcasts_the_same_transaction(env: Env) -> None:
    # given a transaction still pending when the keeper stops
    env.chain.tester.disable_auto_mine_transactions()
    tx_hash = await env.sender.send(env.to, b"", 21_000, "test.restart")
    assert await env.receipt(tx_hash) is None
    # and the node lost its pool meanwhile (a node restart, or a load balancer switch)
    env.chain.tester._pending_transactions.clear()
    # when the keeper restarts on the same database
    sender = await env.reopen()
    assert await sender.start() == []
    # then the node has the very same transaction again
    assert (await env.w3.eth.get_transaction(HexBytes(tx_hash)))["nonce"] == 0
    # and once mined, the account used exactly one nonce for it
    env.chain.mine(1)
    (outcome,) = await sender.poll(await env.head())
    assert outcome.tx_hash == tx_hash and outcome.success
    assert await env.nonce() == 1
    assert len(await env.rows("mined")) == 1 and await env.rows("pending") == []
    # and the next send continues with the next nonce
    env.chain.tester.enable_auto_mine_transactions()
    next_hash = await sender.send(env.to, b"", 21_000, "test.next")
    (outcome,) = await sender.poll(await env.head())
    assert (outcome.tx_hash, outcome.nonce) == (next_hash, 1)


async def test_restart_while_node_still_has_it_does_not_repeat_it(env: Env) -> None:
    env.chain.tester.disable_auto_mine_transactions()
    tx_hash = await env.sender.send(env.to, b"", 21_000, "test.restart")
    sender = await env.reopen()
    await sender.start()
    env.chain.mine(2)
    (outcome,) = await sender.poll(await env.head())
    assert outcome.tx_hash == tx_hash
    assert await env.nonce() == 1


async def test_restart_settles_a_transaction_mined_while_down(env: Env) -> None:
    env.chain.tester.disable_auto_mine_transactions()
    tx_hash = await env.sender.send(env.to, b"", 21_000, "test.down")
    env.chain.mine(1)  # mined while the keeper is stopped
    sender = await env.reopen()
    (outcome,) = await sender.start()
    assert (outcome.tx_hash, outcome.nonce, outcome.success) == (tx_hash, 0, True)
    assert [r.tx_hash for r in await env.rows("mined")] == [tx_hash]
    env.chain.tester.enable_auto_mine_transactions()
    await sender.send(env.to, b"", 21_000, "test.next")
    assert await env.nonce() == 2


async def test_stuck_transaction_is_replaced_with_higher_fees(env: Env) -> None:
    # given a pending transaction that blocks keep passing by
    env.chain.tester.disable_auto_mine_transactions()
    original = await env.sender.send(env.to, b"\xaa", 60_000, "test.stuck", value=3)
    env.chain.backend.mine_blocks(POLICY.stuck_blocks - 1)
    # then it is not stuck yet
    assert await env.sender.poll(await env.head()) == []
    assert len(await env.rows("pending")) == 1
    # when it has waited `stuck_blocks`
    env.chain.backend.mine_blocks(1)
    assert await env.sender.poll(await env.head()) == []
    # then a replacement with the same nonce, call and gas, and bumped fees, was sent
    old, new = sorted(await env.rows("pending"), key=lambda r: r.max_fee)
    assert old.tx_hash == original and new.nonce == old.nonce == 0
    assert new.max_fee * 100 >= old.max_fee * (100 + POLICY.bump_percent)
    assert new.priority_fee * 100 >= old.priority_fee * (100 + POLICY.bump_percent)
    a, b = decoded(old.raw), decoded(new.raw)
    for field in ("to", "data", "value", "gas", "nonce", "chainId"):
        assert a[field] == b[field], field
    # and after a restart, the replacement is the one re-broadcast
    sender = await env.reopen()
    await sender.start()
    env.chain.mine(1)
    (outcome,) = await sender.poll(await env.head())
    # then exactly one of them was mined and the other is marked replaced
    assert outcome.tx_hash == new.tx_hash and outcome.success
    assert await env.receipt(new.tx_hash) is not None
    assert await env.receipt(old.tx_hash) is None
    assert [r.tx_hash for r in await env.rows("replaced")] == [old.tx_hash]
    assert [r.tx_hash for r in await env.rows("mined")] == [new.tx_hash]
    assert await env.nonce() == 1


async def test_stuck_transaction_at_the_cap_is_left_alone(env: Env, tmp_path: Path) -> None:
    # a cap just above the first offer (eth-tester reports no tips: the floor) leaves no room
    # for a 13 % bump
    block = await env.w3.eth.get_block("latest")
    first = 2 * int(block["baseFeePerGas"]) + POLICY.priority_fee_floor
    capped = FeePolicy(max_fee_cap=first)  # type: ignore[arg-type]
    sender = TxSender(env.w3, env.account, env.store, capped, env.chain_id)
    await sender.start()
    env.chain.tester.disable_auto_mine_transactions()
    tx_hash = await sender.send(env.to, b"", 21_000, "test.capped")
    env.chain.backend.mine_blocks(10)
    assert await sender.poll(await env.head()) == []
    assert [r.tx_hash for r in await env.rows("pending")] == [tx_hash]


async def test_reverting_call_is_reported_failed_with_its_receipt(env: Env) -> None:
    deployer = env.chain.accounts[2]
    deploy = deployer.sign_transaction(
        {
            "type": 2,
            "chainId": env.chain_id,
            "nonce": 0,
            "value": 0,
            "data": ALWAYS_REVERTS,
            "gas": 100_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    deployed = await env.w3.eth.get_transaction_receipt(
        await env.w3.eth.send_raw_transaction(deploy.raw_transaction)
    )
    target = str(deployed["contractAddress"])
    tx_hash = await env.sender.send(target, b"\x12\x34", 100_000, "test.revert")
    (outcome,) = await env.sender.poll(await env.head())
    receipt = await env.receipt(tx_hash)
    assert receipt["status"] == 0
    assert not outcome.success and outcome.tx_hash == tx_hash
    assert (outcome.block_number, outcome.gas_used) == (
        receipt["blockNumber"],
        receipt["gasUsed"],
    )
    assert [r.tx_hash for r in await env.rows("failed")] == [tx_hash]
    assert await env.nonce() == 1


async def test_rpc_down_during_send_keeps_it_pending_and_poll_rebroadcasts(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the RPC is down when the transaction is broadcast
    async def down(raw: bytes) -> None:
        raise aiohttp.ClientConnectionError("connection refused")

    spy_broadcasts(env, monkeypatch, down)
    tx_hash = await env.sender.send(env.to, b"", 21_000, "test.outage")
    assert [r.tx_hash for r in await env.rows("pending")] == [tx_hash]
    assert await env.receipt(tx_hash) is None
    # when it is back
    monkeypatch.undo()
    assert await env.sender.poll(await env.head()) == []  # re-broadcast (eth-tester mines it)
    # then the same transaction gets mined
    (outcome,) = await env.sender.poll(await env.head())
    assert outcome.tx_hash == tx_hash and outcome.success
    assert await env.nonce() == 1


async def test_rejected_send_fails_and_gives_its_nonce_back(env: Env) -> None:
    balance = await env.w3.eth.get_balance(env.account.address)
    with pytest.raises(TransactionFailed):
        await env.sender.send(env.to, b"", 21_000, "test.too_much", value=balance + 1)
    (failed,) = await env.rows("failed")
    assert failed.nonce == 0 and await env.rows("pending") == []
    tx_hash = await env.sender.send(env.to, b"", 21_000, "test.after")
    (outcome,) = await env.sender.poll(await env.head())
    assert (outcome.tx_hash, outcome.nonce) == (tx_hash, 0)
    # a restart does not count the rejected row's nonce either
    sender = await env.reopen()
    await sender.start()
    await sender.send(env.to, b"", 21_000, "test.after_restart")
    assert await env.nonce() == 2


async def test_nonce_used_by_another_signer_is_reported_dropped(env: Env) -> None:
    # given our transaction pending while the same key is used elsewhere for that nonce
    env.chain.tester.disable_auto_mine_transactions()
    ours = await env.sender.send(env.to, b"", 21_000, "test.ours")
    block = await env.w3.eth.get_block("latest")
    foreign_tx: dict[str, Any] = {
        "type": 2,
        "chainId": env.chain_id,
        "nonce": 0,
        "to": env.to,
        "value": 1,
        "data": b"",
        "gas": 21_000,
        "maxFeePerGas": 4 * int(block["baseFeePerGas"]) + 10**10,
        "maxPriorityFeePerGas": 10**10,
    }
    foreign = env.account.sign_transaction(foreign_tx)
    await env.w3.eth.send_raw_transaction(foreign.raw_transaction)
    env.chain.mine(1)
    # when it is stuck long enough to be sure
    env.chain.backend.mine_blocks(POLICY.stuck_blocks)
    (outcome,) = await env.sender.poll(await env.head())
    # then it is reported dropped, and the next send uses the next free nonce
    assert (outcome.tx_hash, outcome.success, outcome.block_number) == (ours, False, None)
    assert [r.tx_hash for r in await env.rows("failed")] == [ours]
    env.chain.tester.enable_auto_mine_transactions()
    await env.sender.send(env.to, b"", 21_000, "test.next")
    assert await env.nonce() == 2


# ---------------------------------------------------------------- fees per chain


def fake_fee_history(
    env: Env, monkeypatch: pytest.MonkeyPatch, rewards: list[int], calls: list[int]
) -> None:
    """eth-tester reports no tips; this plays a chain whose recent blocks tipped `rewards`."""

    async def fee_history(count: int, newest: str, percentiles: list[float]) -> dict[str, Any]:
        calls.append(count)
        return {"reward": [[r] for r in rewards], "gasUsedRatio": [0.5] * len(rewards)}

    monkeypatch.setattr(env.w3.eth, "fee_history", fee_history)


async def test_the_tip_follows_fee_history_within_the_contracts_bounds(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given recent blocks tipping 3, 4 and 5 gwei, and a TaskManager that bills at most a
    # 2 gwei tip and 30 gwei per gas
    calls: list[int] = []
    fake_fee_history(env, monkeypatch, [3 * GWEI, 4 * GWEI, 5 * GWEI], calls)
    (await env.reopen()).bound_by_contract(Wei(30 * GWEI), Wei(2 * GWEI))
    sender = env.sender
    await sender.start()
    env.chain.tester.disable_auto_mine_transactions()
    # when a transaction is sent
    await sender.send(env.to, b"", 21_000, "test.a")
    # then it tips the contract's maximum, not the 4 gwei market, within its cap
    (row,) = await env.rows("pending")
    tx = decoded(row.raw)
    assert tx["maxPriorityFeePerGas"] == 2 * GWEI
    assert tx["maxFeePerGas"] <= 30 * GWEI
    # and the price the leader compares with jobs' maximum is base fee plus that tip
    base_fee = int((await env.w3.eth.get_block("latest"))["baseFeePerGas"])
    assert await sender.expected_gas_price() == base_fee + 2 * GWEI
    # and fee history was read once for the block, not once per use
    assert len(calls) == 1


async def test_a_market_tip_below_the_bounds_is_what_is_offered(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_fee_history(env, monkeypatch, [GWEI // 1000, GWEI // 500, GWEI // 1000], [])
    env.sender.bound_by_contract(Wei(100 * GWEI), Wei(2 * GWEI))
    await env.sender.send(env.to, b"", 21_000, "test.op")
    (row,) = await env.rows("pending")
    assert row.priority_fee == GWEI // 1000  # not the 1 gwei it used to be, 1,000 times more


async def test_a_doomed_pending_transaction_is_replaced_by_a_self_send_not_resent(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a sender whose doom check says when the round of a pending call has closed
    closed: set[bytes] = set()

    async def doom(purpose: str, to: str | None, data: bytes, head: int) -> str | None:
        return "round_closed" if data in closed else None

    sender = TxSender(env.w3, env.account, env.store, POLICY, env.chain_id, doom_check=doom)
    await sender.start()
    env.chain.tester.disable_auto_mine_transactions()
    call = b"\x12" * 100
    original = await sender.send(env.to, call, 90_000, "execute:1:0")
    assert await sender.poll(await env.head()) == []  # still open: left alone
    assert len(await env.rows("pending")) == 1
    broadcast: list[bytes] = []

    async def record(raw: bytes) -> None:
        broadcast.append(raw)

    spy_broadcasts(env, monkeypatch, record)
    # when its round closes (another keeper executed it) while it is still pending
    closed.add(call)
    assert await sender.poll(await env.head()) == []
    # then a 0-value self-send takes its nonce at the least replacement price
    rows = {r.tx_hash: r for r in await env.rows("pending")}
    (cancel,) = [r for h, r in rows.items() if h != original]
    tx = decoded(cancel.raw)
    assert (tx["to"], tx["value"], bytes(tx["data"]), tx["gas"], tx["nonce"]) == (
        HexBytes(env.account.address),
        0,
        b"",
        SELF_SEND_GAS,
        rows[original].nonce,
    )
    assert cancel.purpose == "cancel:execute:1:0"
    assert cancel.max_fee * 100 >= rows[original].max_fee * (100 + POLICY.bump_percent)
    assert cancel.priority_fee * 100 >= rows[original].priority_fee * (100 + POLICY.bump_percent)
    # and however long it waits, the doomed call is never broadcast again (nor bumped)
    env.chain.backend.mine_blocks(2 * POLICY.stuck_blocks)
    env.chain.tester._pending_transactions.clear()  # even if the node lost both
    assert await sender.poll(await env.head()) == []
    assert all(bytes(decoded(raw)["data"]) == b"" for raw in broadcast)
    # and once mined, the nonce went to the self-send and the call never ran
    env.chain.mine(1)
    (outcome,) = await sender.poll(await env.head())
    assert outcome.purpose == "cancel:execute:1:0" and outcome.success
    assert outcome.gas_used == SELF_SEND_GAS
    assert await env.receipt(original) is None
    assert original in {r.tx_hash for r in await env.rows("replaced")}
    assert await env.nonce() == 1


async def test_sends_beyond_the_in_flight_limit_are_refused(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a sender allowed two transactions in flight, and two pending (the RPC was down
    # when they were sent)
    async def down(raw: bytes) -> None:
        raise aiohttp.ClientConnectionError("connection refused")

    spy_broadcasts(env, monkeypatch, down)
    sender = TxSender(env.w3, env.account, env.store, POLICY, env.chain_id, max_in_flight=2)
    await sender.start()
    await sender.send(env.to, b"", 21_000, "test.1")
    await sender.send(env.to, b"", 21_000, "test.2")
    assert not sender.has_room(await env.rows("pending"))
    # when a third is sent, it is refused by name, and nothing is signed or stored
    with pytest.raises(TooManyInFlight, match="2 transactions in flight, the limit is 2"):
        await sender.send(env.to, b"", 21_000, "test.3")
    assert len(await env.rows("pending")) == 2 and await env.rows("failed") == []
    # and once they are mined, sends are taken again, at the next nonce
    monkeypatch.undo()
    assert await sender.poll(await env.head()) == []  # re-broadcast (eth-tester mines them)
    assert len(await sender.poll(await env.head())) == 2
    await sender.send(env.to, b"", 21_000, "test.3")
    (outcome,) = await sender.poll(await env.head())
    assert outcome.nonce == 2
