"""Four keepers, each behind its own hosted provider's emulator (tests/provider.py: a budget plan
of 10 requests a second with bursts of 20 then 429 with Retry-After, eth_getLogs capped at 1,000
blocks and 10,000 results, batches at 100, no eth_subscribe or WebSocket, a second backend one or
two blocks behind answering every other request, the API key in the URL path).

Every due slot of a Time, a Cron, an Event and a Condition job executes exactly once; no keeper
takes the lagging backend for a reorg; requests per block stay bounded (the figure is printed);
and no key shows in any log line, status or health answer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import patch

import aiohttp
import pytest
from eth_utils.crypto import keccak

from tests.e2e.cluster import Cluster, start_cluster
from tests.e2e.support import (
    CRON,
    GAS_LIMIT,
    THRESHOLD_BPS,
    Traffic,
    assert_every_slot_once,
    assert_logs_and_requests_worked_off,
    assert_rounds_contiguous,
    chain_job,
    condition_spec,
    create_job,
    event_spec,
    every,
    time_spec,
    wait_for_keeper_set,
)
from tests.harness import cron_trigger
from tests.provider import ProviderEmulator

RUN_SECONDS = 75.0  # long enough for a Cron slot each minute
INTERVAL = 10  # Time job, seconds
EMIT_EVERY = 6.0
REQUEST_EVERY = 9.0
TAG = 7
CONFIRMATIONS = 1
PLAN = {"per_second": 10.0, "burst": 20.0}
# What each keeper is told of its plan: a little under it (its clock and the provider's differ).
KEEPER_LIMITS = ("--poll-interval", "0.5")
KEEPER_ENV = {"KEEPER_RPC_REQUESTS_PER_SECOND": "9", "KEEPER_RPC_BURST": "18"}
MAX_REQUESTS_PER_BLOCK = 15


def key_of(i: int) -> str:
    return f"k{i}" + keccak(text=f"plan key {i}").hex()[:30]


class Providers:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.emulators = {
            i: ProviderEmulator(cluster.anvil.url, key_of(i), **PLAN) for i in cluster.keepers
        }

    async def start(self) -> None:
        for i, emulator in self.emulators.items():
            await emulator.start()
            self.cluster.rpc_urls[i] = emulator.url

    async def stop(self) -> None:
        for emulator in self.emulators.values():
            await emulator.stop()


@pytest.fixture
async def behind_providers(tmp_path: Path) -> AsyncIterator[Providers]:
    cluster = start_cluster(tmp_path, stakes=(2, 2, 2, 2), start=False)
    providers = Providers(cluster)
    try:
        await providers.start()
        for i in cluster.keepers:
            start_with_env(cluster, i)
        yield providers
    finally:
        for i in cluster.keepers:  # the keepers first, then their providers, then the chain
            cluster.kill(i, signal.SIGTERM if cluster.keepers[i].running else signal.SIGKILL)
        await providers.stop()
        cluster.stop_all()


def start_with_env(cluster: Cluster, i: int) -> None:
    """`keeper run` for keeper `i`, told its plan's limits through the environment."""
    with patch.dict(os.environ, KEEPER_ENV):
        cluster.start(i, *KEEPER_LIMITS)


async def test_four_keepers_behind_hosted_providers(behind_providers: Providers) -> None:
    providers = behind_providers
    cluster = providers.cluster
    w3 = cluster.web3()
    await wait_for_keeper_set(cluster, w3, {kp.account.address for kp in cluster.keepers.values()})
    # given a Time, a Cron, an Event and a Condition job
    target = await cluster.deploy_target(w3)
    time_job, _ = await create_job(cluster, w3, time_spec(target.address, INTERVAL), 100)
    cron = (target.address, keccak(text="onCron()")[:4], CRON, cron_trigger("* * * * *"),
            GAS_LIMIT, THRESHOLD_BPS, 0, 0, 0, 0)  # fmt: skip
    cron_job, _ = await create_job(cluster, w3, cron, 100)
    event_job, event_created = await create_job(
        cluster, w3, event_spec(target.address, TAG, CONFIRMATIONS), 100
    )
    condition_job, _ = await create_job(cluster, w3, condition_spec(target.address, 1), 100)
    traffic = Traffic(cluster, w3, target, TAG)
    requested = traffic.requested

    first_block = int(await w3.eth.block_number)
    counted_from = {i: e.requests for i, e in providers.emulators.items()}
    # when the jobs run for a while, logs and work requests coming in
    until = time.monotonic() + RUN_SECONDS
    emitted, _ = await asyncio.gather(
        every(EMIT_EVERY, until, traffic.emit), every(REQUEST_EVERY, until, traffic.request)
    )
    blocks = int(await w3.eth.block_number) - first_block
    # (the figures, printed before any check can fail)
    per_block = {
        i: (e.requests - counted_from[i]) / max(1, blocks) for i, e in providers.emulators.items()
    }
    throttled = {i: e.throttled for i, e in providers.emulators.items()}
    lagging = sum(e.empty_lagging_logs for e in providers.emulators.values())
    print(
        f"\nrequests per block per keeper over {blocks} blocks: "
        + ", ".join(f"{v:.1f}" for v in per_block.values())
        + f"; 429s: {throttled}; short eth_getLogs answers from the lagging backend: {lagging}"
        + f"; keeper 0's calls: {dict(providers.emulators[0].calls.most_common(8))}"
    )

    # then every log and every request is worked off, once, in order
    await assert_logs_and_requests_worked_off(
        cluster, w3, target, (event_job, condition_job), event_created, emitted, requested, 90
    )
    # and every Time slot and every Cron minute between the first and the last ran once
    time_executions = await cluster.executions(w3, time_job)
    assert_rounds_contiguous(time_executions)
    start = int((await chain_job(cluster, w3, time_job))["startTime"])
    assert_every_slot_once(time_executions, start, INTERVAL)
    assert len(time_executions) >= RUN_SECONDS // INTERVAL - 1
    cron_executions = await cluster.executions(w3, cron_job)
    assert_rounds_contiguous(cron_executions)
    cron_cursors = [int(e["args"]["cursor"]) for e in cron_executions]
    assert cron_cursors and all(c % 60 == 0 for c in cron_cursors), cron_cursors
    assert_every_slot_once(cron_executions, 0, 60)

    # and the providers' limits held the keepers, not the other way round
    assert max(per_block.values()) <= MAX_REQUESTS_PER_BLOCK, per_block
    assert all(e.refused["batch"] == 0 for e in providers.emulators.values())

    # and no keeper logged a reorg (the chain had none), and no key shows anywhere
    async with aiohttp.ClientSession() as http:
        answers = []
        for kp in cluster.keepers.values():
            for path in ("/v1/status", "/healthz"):
                async with http.get(kp.admin_endpoint + path) as response:
                    answers.append(await response.text())
    logs = [kp.log.read_text() for kp in cluster.keepers.values()]
    for i, text in enumerate(logs):
        assert "sync.reorg" not in text, f"keeper {i} logged a reorg"
        assert "Traceback" not in text, f"keeper {i} logged a traceback"
    for i in cluster.keepers:
        key = key_of(i)
        assert all(key not in text for text in logs + answers), f"keeper {i}'s key shows"
