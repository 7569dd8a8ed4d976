"""One keeper loses its RPC for 20 seconds: it reports itself unhealthy, naming the RPC, while
the other three (a quorum with equal stakes) keep the job on schedule; once the RPC is back it
turns healthy by itself and catches up with the chain, and no round was lost."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from tests.anvil import TcpProxy
from tests.e2e.cluster import Cluster, start_cluster

INTERVAL = 10
OUTAGE = 20.0
HEALTHY_AGAIN_WITHIN = 15.0  # `/healthz` turns 200 once a pass succeeds (unhealthy_after 15 s)
CUT = 0  # the keeper whose RPC goes through the proxy


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # equal stakes: the three keepers left hold 75% >= the 2/3 threshold
    c = start_cluster(tmp_path, stakes=(2, 2, 2, 2), start=False)
    try:
        yield c
    finally:
        c.stop_all()


async def get_json(
    http: aiohttp.ClientSession, url: str
) -> tuple[int, dict[str, Any]] | tuple[None, None]:
    """(status, body), or (None, None) when the node does not answer in time."""
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status, await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return None, None


async def test_keeper_rides_out_an_rpc_outage(cluster: Cluster) -> None:
    # given keeper 0 reaching anvil only through a proxy, the others directly
    proxy = TcpProxy(cluster.anvil.port)
    await proxy.start()
    http = aiohttp.ClientSession()
    try:
        await _scenario(cluster, proxy, http)
    finally:
        await http.close()
        await proxy.stop()


async def _scenario(cluster: Cluster, proxy: TcpProxy, http: aiohttp.ClientSession) -> None:
    cluster.rpc_urls[CUT] = proxy.url
    for i in cluster.keepers:
        cluster.start(i)
    w3 = cluster.web3()
    contracts = await cluster.contracts(w3)
    registry, tm = contracts.registry, contracts.task_manager
    health_url = cluster.keepers[CUT].admin_endpoint + "/healthz"
    status_url = cluster.keepers[CUT].admin_endpoint + "/v1/status"

    async def epoch_formed() -> bool:
        return int(await registry.functions.currentEpoch().call()) >= 1

    await cluster.wait_until(epoch_formed, 120, "the keepers to rotate the first epoch")
    # and a Time job every 10 s
    target = await cluster.deploy_target(w3)
    spec = (
        target.address,
        keccak(text="onTime()")[:4],
        0,
        abi_encode(["uint64"], [INTERVAL]),
        200_000,
        6667,
        0,
        0,
        0,
        0,
    )
    deposit = 30 * int(await tm.functions.requiredDeposit(200_000, 0).call())
    receipt = await cluster.owner_tx(w3, tm.functions.createJob(spec), value=deposit)
    job_id = int(tm.events.JobCreated().process_receipt(receipt)[0]["args"]["jobId"])
    start_time = int((await tm.functions.getJob(job_id).call())[6])

    async def executed(n: int) -> bool:
        return len(await cluster.executions(w3, job_id)) >= n

    async def healthy() -> bool:
        return (await get_json(http, health_url))[0] == 200

    await cluster.wait_until(lambda: executed(2), 120, "two executions before the outage")
    await cluster.wait_until(healthy, 60, "keeper 0 healthy before the outage")
    _, before = await get_json(http, status_url)
    assert before is not None

    # when keeper 0's RPC is cut for 20 s
    executions_before_outage = len(await cluster.executions(w3, job_id))
    proxy.cut()
    cut_at = time.monotonic()
    samples: list[tuple[float, int | None, dict[str, Any] | None]] = []
    while time.monotonic() - cut_at < OUTAGE:
        status, body = await get_json(http, health_url)
        samples.append((time.monotonic() - cut_at, status, body))
        await asyncio.sleep(0.5)
    executions_during_outage = len(await cluster.executions(w3, job_id))
    proxy.restore()
    restored_at = time.monotonic()

    # then while cut, /healthz said 503 with a reason naming the RPC, from within a few seconds
    # and without flapping back to 200
    first_503 = next((i for i, s in enumerate(samples) if s[1] == 503), None)
    assert first_503 is not None, f"never unhealthy while cut: {samples}"
    assert samples[first_503][0] < 10.0, samples
    after = samples[first_503:]
    assert all(status in (503, None) for _, status, _ in after), after
    reasons = [body["reason"] for _, status, body in after if status == 503 and body]
    assert reasons, after
    assert all("RPC" in reason for reason in reasons), reasons
    assert all(body["ok"] is False for _, status, body in after if status == 503 and body)

    # and after the restore it turns healthy by itself within ~15 s
    await cluster.wait_until(healthy, 60, "keeper 0 healthy again")
    recovered_in = time.monotonic() - restored_at
    assert recovered_in <= HEALTHY_AGAIN_WITHIN + 5.0, f"healthy only after {recovered_in:.1f} s"

    # and its view catches up with the chain head
    chain_head = int(await w3.eth.block_number)

    async def caught_up() -> bool:
        _, status = await get_json(http, status_url)
        return status is not None and status["head"] is not None and status["head"] >= chain_head

    await cluster.wait_until(caught_up, 60, f"keeper 0's head to reach block {chain_head}")

    # and it takes part again: it signs the next rounds' reports
    async def signs_again() -> bool:
        _, status = await get_json(http, status_url)
        return status is not None and int(status["signatures"]) > int(before["signatures"])

    await cluster.wait_until(lambda: executed(executions_during_outage + 2), 90, "two more rounds")
    await cluster.wait_until(signs_again, 60, "keeper 0 to sign reports again")

    # and no round was lost: the other three executed every slot through the outage
    executions = await cluster.executions(w3, job_id)
    assert executions_during_outage > executions_before_outage, "nothing ran during the outage"
    rounds = [int(e["args"]["round"]) for e in executions]
    assert rounds == list(range(len(rounds))), rounds
    cursors = [int(e["args"]["cursor"]) for e in executions]
    assert all((c - start_time) % INTERVAL == 0 for c in cursors), (start_time, cursors)
    gaps = [b - a for a, b in itertools.pairwise(cursors)]
    assert all(gap == INTERVAL for gap in gaps), f"slots skipped: {cursors}"
    assert all(e["args"]["success"] for e in executions)
    # and the outage never crashed a request on keeper 0 (peers asking it to sign got a 503)
    assert "Traceback" not in cluster.keepers[CUT].log.read_text()
