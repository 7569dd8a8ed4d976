"""A node whose RPC is briefly unreachable reports unhealthy, recovers by itself, and the job
loses no round. The chain is anvil (a real JSON-RPC server); one node reaches it through a TCP
proxy that the test cuts."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keeper.node.context import NodeOptions
from tests.anvil import AnvilChain, AnvilProcess, TcpProxy
from tests.harness import TIME, selector, time_trigger
from tests.nodes import Network, start_network


@pytest.fixture
async def outage(tmp_path: Path) -> AsyncIterator[tuple[Network, TcpProxy]]:
    anvil = AnvilProcess(accounts=12)
    proxy = TcpProxy(anvil.port)
    await proxy.start()
    network: Network | None = None
    try:
        network = await start_network(
            tmp_path,
            chain=AnvilChain(anvil, accounts=12),
            rpc_urls={0: proxy.url},
            options=NodeOptions(peer_timeout=1.0),
            turn_blocks=2,
        )
        yield network, proxy
    finally:
        if network is not None:
            await network.stop()
        await proxy.stop()
        anvil.stop()


async def test_node_recovers_from_rpc_outage_without_losing_a_round(
    outage: tuple[Network, TcpProxy],
) -> None:
    network, proxy = outage
    net, node = network.net, network.nodes[0]
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))

    async def executed(n: int) -> bool:
        return len(await network.executions(job_id)) >= n

    await network.step_until(lambda: executed(1), max_blocks=20)
    assert (await node.health())[0] is True

    # when node 0's RPC is cut while the chain goes on for several slots
    proxy.cut()
    await network.step(12)
    # then it reports unhealthy and counts the RPC errors
    healthy, detail = await node.health()
    assert healthy is False
    assert "RPC unreachable" in detail["reason"]
    assert b"keeper_rpc_errors_total 0.0" not in node.metrics()

    # when the RPC comes back, it recovers by itself and catches up with the chain
    proxy.restore()
    await network.step(1)
    assert (await node.health())[0] is True
    status = await node.status()
    assert status["head"] == status["chain_head"]

    # and no slot was lost or doubled: the quorum kept executing while node 0 was away
    await network.step_until(lambda: executed(5), max_blocks=30)
    executions = await network.executions(job_id)
    cursors = [e["args"]["cursor"] for e in executions]
    assert [e["args"]["round"] for e in executions] == list(range(len(executions)))
    assert cursors == sorted(set(cursors))
    gaps = {b - a for a, b in itertools.pairwise(cursors)}
    assert gaps == {60}, gaps  # every slot, once: the other members covered for node 0
