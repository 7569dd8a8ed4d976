"""`keeper status`'s node half: what the admin listener says, read over real HTTP on
127.0.0.1 (the node's own admin application, with a node that reports fixed facts), then
written for a person."""

from __future__ import annotations

from typing import Any

from keeper.cli.status import compute_status, fetch_node, render_status
from keeper.peers.server import AdminServer

ME = "0x" + "11" * 20
OTHER = "0x" + "22" * 20
NOW = 1_800_000_000


class BehindNode:
    """A node three blocks behind, two of whose jobs are in its quorums."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def status(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "chain_id": 31337,
            "registry": OTHER,
            "task_manager": OTHER,
            "head": 97,
            "chain_head": 100,
            "jobs": [{"id": 1, "mine": True}, {"id": 2, "mine": True}, {"id": 3, "mine": False}],
            "pending_txs": 1,
            "last_error": None,
        }

    async def health(self) -> tuple[bool, dict[str, Any]]:
        return False, {"reason": "3 blocks behind the RPC's head 100 (catching up)"}

    def metrics(self) -> bytes:
        return b""


def chain_facts(**overrides: Any) -> dict[str, Any]:
    facts = {
        "block": 100,
        "time": NOW,
        "registration": 1,
        "stake": 2 * 10**18,
        "exit_epoch": 0,
        "unbond_at": 0,
        "endpoint": "http://127.0.0.1:8700",
        "earnings": 7 * 10**15,
        "balance": 10**18,
        "execution_gas": 350_000,
        "gas_price": 2 * 10**9,
        "epoch": 3,
        "epoch_start": NOW - 720,
        "rotation_due": NOW + 2880,
        "quorum_count": 4,
        "my_quorums": [1, 3],
    }
    return facts | overrides


async def serve(address: str) -> tuple[AdminServer, str]:
    server = AdminServer(BehindNode(address))  # type: ignore[arg-type]
    port = await server.start("127.0.0.1", 0)
    return server, f"http://127.0.0.1:{port}"


async def test_an_unhealthy_node_is_shown_with_its_reason() -> None:
    server, url = await serve(ME)
    try:
        node = await fetch_node(url)
    finally:
        await server.stop()
    lines = render_status(compute_status(ME, chain_facts(), node))
    text = "\n".join(lines)
    assert "  health        UNHEALTHY: 3 blocks behind the RPC's head 100 (catching up)" in lines
    assert "  synced to     block 97 of 100" in lines
    assert "  jobs          2 in its quorums; 1 transaction(s) pending" in lines
    assert "  earnings      0.007 ether (`keeper withdraw` pays them out)" in lines
    assert "(in 48m)" in text and "(12m ago)" in text  # times, not timestamps
    assert "this keeper serves in: 1, 3" in text
    assert "fronts the gas of 1428 execution(s) at 0.0007 ether each" in text
    assert "runs as" not in text


async def test_a_node_running_another_key_is_pointed_out() -> None:
    server, url = await serve(OTHER)
    try:
        node = await fetch_node(url)
    finally:
        await server.stop()
    text = "\n".join(render_status(compute_status(ME, chain_facts(), node)))
    assert f"the node runs as {OTHER}, not this keeper" in text


def test_an_exiting_keeper_sees_when_its_stake_unbonds() -> None:
    node = {"url": "http://127.0.0.1:1", "reachable": False, "error": "ClientConnectorError"}
    waiting = compute_status(
        ME, chain_facts(registration=2, exit_epoch=4, unbond_at=NOW + 3600), node
    )
    assert waiting["keeper"]["stake_withdrawable"] is False
    assert (
        "  registration  exiting: serves through epoch 4; stake unbonding until "
        "2027-01-15 09:00:00 UTC (in 1h)"
    ) in render_status(waiting)
    done = compute_status(ME, chain_facts(registration=2, exit_epoch=2, unbond_at=NOW - 1), node)
    assert done["keeper"]["stake_withdrawable"] is True
    assert "stake withdrawable now (`keeper exit --withdraw`)" in "\n".join(render_status(done))
