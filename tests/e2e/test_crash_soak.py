"""Crash soak: five keepers run one job of three kinds while one keeper at a time is killed
with SIGKILL and restarted on its own store.

Five equal stakes and a 2/3 threshold need four signers, so with never more than one keeper
down (the next kill waits until the restarted one has caught up) the threshold always holds,
and every slot, log and request must execute exactly once.

`KEEPER_SOAK_SECONDS` (default 120) sets the chaos phase's length, `KEEPER_SOAK_SEED` (default
1) the kill schedule; e.g. `KEEPER_SOAK_SECONDS=1800` for a half-hour soak by hand.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.support import (
    Traffic,
    assert_every_slot_once,
    assert_logs_and_requests_worked_off,
    assert_rounds_contiguous,
    chain_head,
    chain_job,
    condition_spec,
    create_job,
    event_spec,
    every,
    start_network,
    time_spec,
    try_status,
    wait_for_keeper_set,
)

SOAK_SECONDS = float(os.environ.get("KEEPER_SOAK_SECONDS", "120"))
SEED = int(os.environ.get("KEEPER_SOAK_SEED", "1"))
INTERVAL = 10  # Time job, seconds
EMIT_EVERY = 5.0  # DemoEvent, seconds
REQUEST_EVERY = 7.0  # DemoTarget.request, seconds
KILL_EVERY = 15.0  # at least this long between two kills
TAG = 5
CONFIRMATIONS = 2


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = start_network(tmp_path, stakes=(2, 2, 2, 2, 2))
    try:
        yield c
    finally:
        c.stop_all()


async def _chaos(cluster: Cluster, until: float, rng: random.Random) -> list[tuple[int, float]]:
    """Kills a random keeper with SIGKILL, restarts it on the same store after a short outage,
    waits until it has caught up, and repeats (at most one keeper down at any time)."""
    kills: list[tuple[int, float]] = []
    while time.monotonic() + KILL_EVERY / 2 < until:
        began = time.monotonic()
        victim = rng.randrange(len(cluster.keepers))
        cluster.kill(victim, signal.SIGKILL)
        down = rng.uniform(1.0, 5.0)
        kills.append((victim, down))
        await asyncio.sleep(down)
        cluster.start(victim)

        async def caught_up(i: int = victim) -> bool:
            status = await asyncio.to_thread(try_status, cluster, i)
            return (
                status is not None
                and status["head"] is not None
                and (status["head"] >= chain_head(cluster) - 1)
            )

        await cluster.wait_until(caught_up, 120, f"keeper {victim} to catch up after a restart")
        await asyncio.sleep(max(0.0, KILL_EVERY - (time.monotonic() - began)))
    return kills


async def test_jobs_execute_exactly_once_while_keepers_crash_and_restart(
    cluster: Cluster,
) -> None:
    w3 = cluster.web3()
    await wait_for_keeper_set(cluster, w3, {kp.account.address for kp in cluster.keepers.values()})
    # given a Time job every 10 s, an Event job on DemoEvent and a Condition job (mode 0)
    target = await cluster.deploy_target(w3)
    time_job, _ = await create_job(cluster, w3, time_spec(target.address, INTERVAL), 200)
    event_job, event_created = await create_job(
        cluster, w3, event_spec(target.address, TAG, CONFIRMATIONS), 200
    )
    condition_job, _ = await create_job(cluster, w3, condition_spec(target.address, 1), 200)
    traffic = Traffic(cluster, w3, target, TAG)
    requested = traffic.requested

    # when the test emits logs, requests work and crashes keepers for the soak's duration
    until = time.monotonic() + SOAK_SECONDS
    emitted, _, kills = await asyncio.gather(
        every(EMIT_EVERY, until, traffic.emit),
        every(REQUEST_EVERY, until, traffic.request),
        _chaos(cluster, until, random.Random(SEED)),
    )
    assert kills and emitted >= SOAK_SECONDS // EMIT_EVERY - 1
    for i, kp in cluster.keepers.items():
        assert kp.running, f"keeper {i} is down at the end"

    # then, once the last logs and requests have drained: every DemoEvent log since the job's
    # creation executed, exactly once, in order, and every requested unit of work was done by
    # the Condition job, in contiguous rounds
    condition_executions = await assert_logs_and_requests_worked_off(
        cluster, w3, target, (event_job, condition_job), event_created, emitted, requested, 120
    )
    assert len(condition_executions) <= len(requested)

    # and the Time job executed every slot of its grid between its first and last execution,
    # once (one keeper down never takes the quorum below its threshold)
    time_executions = await cluster.executions(w3, time_job)
    assert_rounds_contiguous(time_executions)
    start = int((await chain_job(cluster, w3, time_job))["startTime"])
    assert_every_slot_once(time_executions, start, INTERVAL)
    assert len(time_executions) >= SOAK_SECONDS // INTERVAL - 1, kills
