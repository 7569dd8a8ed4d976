"""Fees per chain with four nodes (stakes 1..4 ether, one quorum): an execute that can no longer
succeed costs its sender a self-send, not a revert; a leader at its in-flight limit lets the
backups lead, without a traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from keeper.errors import TooManyInFlight
from tests.harness import TIME, selector, time_trigger
from tests.node.support import (
    assert_exactly_once,
    executions_after,
    node_index,
    ranking,
    round_zero_due,
)
from tests.nodes import Network, start_network


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


async def time_job(network: Network) -> int:
    """A Time job every 60 s whose threshold (60 %) the quorum meets without any one member."""
    net = network.net
    return await net.create_job(
        net.spec(TIME, time_trigger(60), selector("onTime()"), threshold_bps=6000)
    )


async def test_an_execute_whose_round_another_keeper_closed_is_cancelled_not_resent(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = network.net
    job_id = await time_job(network)
    primary, *_ = await ranking(network, job_id, await round_zero_due(network, job_id))
    node = network.nodes[node_index(network, primary)]
    # given the primary's RPC drops its execute of round 0 while that round is open on chain,
    # and takes everything once it is closed (so an execute re-sent then would be mined)
    send_raw = node.w3.eth.send_raw_transaction
    resent: list[bytes] = []

    async def flaky(raw: bytes) -> HexBytes:
        data = bytes(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["data"])
        report = node.calls.execute_report(data)
        if report is not None and report.round == 0:
            if (await net.job(job_id))["round"] == 0:
                raise aiohttp.ClientConnectionError("dropped on the way")
            resent.append(raw)
        return await send_raw(raw)

    monkeypatch.setattr(node.w3.eth, "send_raw_transaction", flaky)
    # when a backup executes round 0 at its turn, and the primary follows two more blocks
    (execution,) = await executions_after(network, job_id, 1, max_blocks=15)
    assert execution["args"]["executor"].lower() != primary.lower()
    await network.step(2)
    # then the primary freed its nonce with a self-send and never sent the doomed execute
    assert resent == []
    mined = {r.purpose: r for r in await node.store.pending_txs("mined")}
    assert f"cancel:execute:{job_id}:0" in mined
    # (the original and its bumps, sent while the round was open, all gave way to it)
    executes = [r for r in await node.store.pending_txs("replaced") if r.purpose.startswith("ex")]
    assert executes and {r.purpose for r in executes} == {f"execute:{job_id}:0"}
    for execute in executes:
        with pytest.raises(TransactionNotFound):
            await net.w3.eth.get_transaction_receipt(HexBytes(execute.tx_hash))
    receipt: Any = await net.w3.eth.get_transaction_receipt(
        HexBytes(mined[f"cancel:execute:{job_id}:0"].tx_hash)
    )
    assert receipt["gasUsed"] == 21_000 and str(receipt["to"]).lower() == primary.lower()
    # and the round executed exactly once
    await assert_exactly_once(network, job_id)


@pytest.mark.parametrize("refused_at", ["head", "send"])
async def test_a_leader_at_its_in_flight_limit_lets_the_backups_lead(
    network: Network,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    refused_at: str,
) -> None:
    job_id = await time_job(network)
    primary, *_ = await ranking(network, job_id, await round_zero_due(network, job_id))
    node = network.nodes[node_index(network, primary)]
    # given the primary's sender has as many transactions in flight as it may: seen before
    # leading the head, or (rounds of one head racing for the last slot) only at the send
    if refused_at == "head":
        monkeypatch.setattr(node.sender, "has_room", lambda pending: False)
    else:

        async def refuse(*args: Any, **kwargs: Any) -> bytes:
            raise TooManyInFlight("execute: 16 transactions in flight, the limit is 16")

        monkeypatch.setattr(node.sender, "send", refuse)
    caplog.set_level(logging.INFO)
    # when round 0 comes due
    (execution,) = await executions_after(network, job_id, 1, max_blocks=15)
    # then a backup executed it, the primary said why it did not, and nothing crashed
    assert execution["args"]["executor"].lower() != primary.lower()
    deferred = [r for r in caplog.records if r.getMessage().startswith("round.deferred")]
    assert deferred and all(r.levelno == logging.WARNING for r in deferred)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert node.is_healthy()
    await assert_exactly_once(network, job_id)
