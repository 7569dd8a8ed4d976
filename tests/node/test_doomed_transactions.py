"""A node's `rotate` and `slashEquivocation` that can no longer succeed cost it a self-send, not
a bumped re-send that would revert at its cost (four nodes, stakes 1..4 ether, one quorum).

Each test drops one node's transaction on its way to the chain (a lost broadcast, as after an
RPC hiccup), lets the chain move on without it (the others rotate the epoch; another reporter
proves the equivocation), and checks the node freed the nonce with a 0-value self-send and
never broadcast the doomed call once it had seen the chain move on. (Before it has synced the
block that dooms it, a bump is a race no node can win: the other nodes tick concurrently.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes

from keeper.chain.calls import compute_equivocation_proof, compute_rotate_gas
from keeper.core.doom import (
    compute_rotate_doom_reason,
    compute_rotate_purpose,
    compute_slash_doom_reason,
    compute_slash_purpose,
)
from keeper.core.equivocation import SignedBy
from keeper.core.report import sign_report
from keeper.node.node import SLASH_GAS, KeeperNode
from keeper.store.db import PendingTx
from tests.harness import NO_PAYLOAD, TIME, selector, time_trigger
from tests.nodes import Network, start_network

EPOCH_SECONDS = 3600 * 24  # the networks' epochLength


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


def drop_while(
    node: KeeperNode,
    monkeypatch: pytest.MonkeyPatch,
    to: str,
    selector_: bytes,
    node_unaware: Callable[[], Awaitable[bool]],
) -> list[bytes]:
    """The node's RPC loses its calls of `selector_` on `to` while `node_unaware()` (the node's
    store has not yet seen what dooms them, so they would land or revert); returns the list of
    such calls broadcast after that (none should be)."""
    send_raw = node.w3.eth.send_raw_transaction
    resent: list[bytes] = []

    async def flaky(raw: bytes) -> HexBytes:
        tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        if (
            bytes(tx.get("to") or b"").hex() == to[2:].lower()
            and bytes(tx["data"])[:4] == selector_
        ):
            if await node_unaware():
                raise aiohttp.ClientConnectionError("dropped on the way")
            resent.append(raw)
        return await send_raw(raw)

    monkeypatch.setattr(node.w3.eth, "send_raw_transaction", flaky)
    return resent


async def freed_by_self_sends(network: Network, node: KeeperNode, purpose: str) -> bool:
    """Every nonce the node used for `purpose` went to a mined self-send."""
    rows: list[PendingTx] = []
    for status in ("pending", "mined", "failed", "replaced"):
        rows += await node.store.pending_txs(status)
    ours = [r for r in rows if r.purpose.startswith(purpose)]
    cancels = [r for r in rows if r.purpose.startswith("cancel:" + purpose)]
    mined = {r.nonce for r in cancels if r.status == "mined"}
    return bool(ours) and {r.nonce for r in ours} <= mined


async def test_a_rotate_whose_epoch_others_rotated_is_cancelled_not_resent(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = network.net
    node = network.nodes[3]
    epoch = int(await net.registry.functions.currentEpoch().call())
    rotate_data = node.calls.rotate_data()

    async def same_epoch() -> bool:
        return int(await net.registry.functions.currentEpoch().call()) == epoch

    async def node_in_epoch() -> bool:
        latest = await node.store.latest_epoch()
        return compute_rotate_doom_reason(epoch, latest.epoch if latest else None) is None

    # given node 3 sent rotate() for the epoch, and its RPC lost it (and loses every rotate()
    # of that epoch until node 3 has seen the next one start; the other nodes' go through)
    resent = drop_while(node, monkeypatch, net.registry.address, rotate_data[:4], node_in_epoch)
    net.time_travel(await net.timestamp() + EPOCH_SECONDS)
    head = await net.block_number()
    purpose = compute_rotate_purpose(epoch, head)
    gas = compute_rotate_gas(len(network.nodes))
    await node.sender.send(net.registry.address, rotate_data, gas, purpose)
    # when the other nodes arm and finish the rotation, and node 3 follows a few more blocks
    await network.step_until(lambda: _not(same_epoch), max_blocks=40)
    await network.step_until(
        lambda: freed_by_self_sends(network, node, f"rotate:{epoch}:"), max_blocks=8
    )
    # then node 3 never broadcast a rotate() of the finished epoch: self-sends took its nonces
    assert resent == []


async def test_a_slash_of_a_keeper_already_slashed_is_cancelled_not_resent(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = network.net
    node = network.nodes[3]
    cheater = net.keepers[0]
    # given two conflicting reports signed by keeper 0
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))
    start = (await net.job(job_id))["startTime"]
    _, members = await net.quorum_for_job(job_id)
    a = await net.make_report(job_id, start, NO_PAYLOAD, members[0].address)
    b = replace(a, cursor=a.cursor + 60)
    proof_a, proof_b = (SignedBy(r, sign_report(cheater.key, r, net.domain)) for r in (a, b))
    data = node.calls.slash_data(proof_a, proof_b)

    async def not_slashed() -> bool:
        info: Any = await net.registry.functions.keeperInfo(cheater.address).call()
        return int(info[0]) > 0

    async def node_sees_stake() -> bool:
        keepers = await node.store.keepers()
        status = next(k for a, k in keepers.items() if a.lower() == cheater.address.lower())
        return compute_slash_doom_reason(status.get("status")) is None

    # and node 3 sent slashEquivocation with them, which its RPC lost (until node 3 has seen
    # the keeper slashed)
    resent = drop_while(node, monkeypatch, net.tm.address, data[:4], node_sees_stake)
    purpose = compute_slash_purpose(cheater.address)
    await node.sender.send(net.tm.address, data, SLASH_GAS, purpose)
    # when another reporter proves the same equivocation first
    fn = net.tm.functions.slashEquivocation(
        compute_equivocation_proof(proof_a), compute_equivocation_proof(proof_b)
    )
    await net.tx(fn, net.keepers[6])
    assert not await not_slashed()
    # then node 3 frees its nonce with a self-send and never broadcasts its proof again
    await network.step_until(lambda: freed_by_self_sends(network, node, purpose), max_blocks=8)
    assert resent == []


async def _not(predicate: Callable[[], Awaitable[bool]]) -> bool:
    return not await predicate()
