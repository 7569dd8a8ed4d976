"""A hosted RPC's API key (in its URL path) never shows: not in /healthz, /v1/status or logs;
and a stranger cannot make a member spend its RPC quota.

Node 0 reaches anvil through a provider look-alike at `http://127.0.0.1:PORT/v3/KEY` that,
when told to, answers every request with HTTP 429 and `Retry-After`, as a budget plan does;
aiohttp's error for that response quotes the whole URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from keeper.core.messages import (
    SIGNATURE_HEADER,
    BatchRequest,
    encode_batch,
    format_signature_header,
    sign_body,
)
from keeper.core.report import Batch, Report, sign_batch
from keeper.node.context import NodeOptions
from tests.anvil import AnvilChain, AnvilProcess, ProviderLookalike
from tests.harness import TIME, selector, time_trigger
from tests.nodes import Network, start_network

KEY = "9f8e7d6c5b4a39281706f5e4"


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[tuple[Network, ProviderLookalike]]:
    anvil = AnvilProcess(accounts=12)
    rpc = ProviderLookalike(anvil.url, KEY)
    await rpc.start()
    network: Network | None = None
    try:
        network = await start_network(
            tmp_path,
            chain=AnvilChain(anvil, accounts=12),
            rpc_urls={0: rpc.url},
            options=NodeOptions(peer_timeout=1.0),
            turn_blocks=2,
        )
        yield network, rpc
    finally:
        if network is not None:
            await network.stop()
        await rpc.stop()
        anvil.stop()


async def run_a_time_job_once(network: Network) -> int:
    """A Time job every 60 s, run until its first execution: the network is live."""
    net = network.net
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))

    async def executed() -> bool:
        return len(await network.executions(job_id)) >= 1

    await network.step_until(executed, max_blocks=20)
    return job_id


async def test_a_rate_limited_providers_key_never_shows(
    limited: tuple[Network, ProviderLookalike], caplog: pytest.LogCaptureFixture
) -> None:
    network, rpc = limited
    node = network.nodes[0]
    await run_a_time_job_once(network)
    caplog.set_level(logging.INFO)
    # when the provider rate-limits node 0 for a few blocks
    rpc.limited = True
    await network.step(3)
    # then the node is unhealthy and says why, without the key
    healthy, detail = await node.health()
    assert healthy is False
    assert "429" in detail["reason"], detail
    assert "/***" in detail["reason"]
    assert KEY not in json.dumps(detail)
    # and neither its status nor any log line of the node names it
    assert KEY not in json.dumps(await node.status(), default=str)
    keeper_lines = [r.getMessage() for r in caplog.records if r.name.startswith("keeper")]
    assert any("429" in line for line in keeper_lines), keeper_lines
    assert not [line for line in keeper_lines if KEY in line]
    # and once the provider answers again the node recovers
    rpc.limited = False
    await network.step(1)
    assert (await node.health())[0] is True


async def test_a_strangers_request_costs_the_member_no_rpc_call(
    limited: tuple[Network, ProviderLookalike],
) -> None:
    network, rpc = limited
    net, node = network.net, network.nodes[0]
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))
    await network.step(1)
    stranger = Account.create()  # no stake, no registration: in nobody's quorum
    head = await net.block_number()
    # a report for a check block far ahead: answering it honestly would mean syncing there
    report = Report(
        jobId=job_id,
        round=0,
        epoch=await net.epoch(),
        cursor=0,
        checkBlock=head + 1_000,
        checkBlockHash=b"\x01" * 32,
        payloadHash=keccak(b""),
        executor=stranger.address,
        deadline=head + 1_010,
    )
    batch = Batch.of([report])
    request = BatchRequest.of(
        stranger.address, head, batch, [b""], sign_batch(stranger.key, batch, net.domain)
    )
    body = encode_batch(request)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: format_signature_header(sign_body(stranger.key, body)),
    }
    before = rpc.requests
    # when the stranger posts it to node 0
    url = node.endpoint + "/v1/reports/batch"
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
        status, answer = resp.status, await resp.json()
    # then it is refused as a non-member, and node 0 made no RPC call for it
    assert (status, answer["error"]) == (403, "NotMember")
    assert rpc.requests == before


async def test_a_lagging_backend_is_not_a_reorg(
    limited: tuple[Network, ProviderLookalike], caplog: pytest.LogCaptureFixture
) -> None:
    network, rpc = limited
    node = network.nodes[0]
    await run_a_time_job_once(network)
    caplog.set_level(logging.INFO)
    head = (await node.store.head() or (0, b""))[0]
    events = len(await node.store.executions())
    # when the provider's `latest` comes from a backend one or two blocks behind
    for lag in (1, 2, 1):
        rpc.lag = lag
        await node.tick()
        # then node 0 keeps its head and what it learned: no reorg, nothing rolled back
        assert (await node.store.head() or (0, b""))[0] == head
        assert len(await node.store.executions()) == events
    assert not [r for r in caplog.records if "sync.reorg" in r.getMessage()]
    assert any("sync.lagging_rpc" in r.getMessage() for r in caplog.records)
    # and once the backends agree again it follows the chain as before
    rpc.lag = 0
    await network.step(2)
    assert (await node.store.head() or (0, b""))[0] > head
    assert (await node.health())[0] is True
