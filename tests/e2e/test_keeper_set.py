"""The keeper set changes under a running Time job: a fifth keeper joins, later one leaves.

Each change lets `rotate()` run early (from the block after the change); the running keepers
send it themselves. The job must not notice: across both epoch changes its rounds stay
contiguous and it executes every slot of its 10-second grid, once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keeper.chain.contracts import transact
from tests.e2e.cluster import Cluster
from tests.e2e.support import (
    assert_every_slot_once,
    assert_rounds_contiguous,
    chain_job,
    create_job,
    quorum_members,
    start_network,
    time_spec,
    wait_for_keeper_set,
)

INTERVAL = 10
JOINER, LEAVER = 4, 0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = start_network(tmp_path, stakes=(2, 2, 2, 2))
    try:
        yield c
    finally:
        c.stop_all()


async def _epoch_start_block(cluster: Cluster, w3: Any, epoch: int) -> int:
    registry = (await cluster.contracts(w3)).registry
    (log,) = await registry.events.EpochStarted().get_logs(
        from_block=cluster.deployment.block, argument_filters={"epoch": epoch}
    )
    return int(log["blockNumber"])


async def test_jobs_keep_their_grid_while_a_keeper_joins_and_another_leaves(
    cluster: Cluster,
) -> None:
    w3 = cluster.web3()
    registry = (await cluster.contracts(w3)).registry
    first = {kp.account.address for kp in cluster.keepers.values()}
    epoch1 = await wait_for_keeper_set(cluster, w3, first)
    # given four keepers of equal stake running a Time job every 10 s, executed twice
    target = await cluster.deploy_target(w3)
    job_id, _ = await create_job(cluster, w3, time_spec(target.address, INTERVAL))

    async def executed_after(block: int, n: int) -> bool:
        executions = await cluster.executions(w3, job_id)
        return sum(1 for e in executions if e["blockNumber"] > block) >= n

    await cluster.wait_until(lambda: executed_after(0, 2), 120, "two executions")

    # when a fifth keeper registers and starts
    joiner = cluster.register(JOINER, 2)
    cluster.start(JOINER)
    # then the running keepers rotate early, once, and the new epoch's quorum has all five
    epoch2 = await wait_for_keeper_set(cluster, w3, first | {joiner.account.address})
    assert epoch2 == epoch1 + 1
    (members2,) = await quorum_members(cluster, w3, epoch2)
    assert joiner.account.address in members2 and len(members2) == 5
    epoch2_block = await _epoch_start_block(cluster, w3, epoch2)
    await cluster.wait_until(
        lambda: executed_after(epoch2_block, 3), 120, "three executions in the second epoch"
    )

    # when one keeper requests its exit, and stops once the next epoch has started without it
    leaver = cluster.keepers[LEAVER]
    await transact(w3, registry.functions.requestExit(), {"from": leaver.account.address})
    remaining = (first | {joiner.account.address}) - {leaver.account.address}
    epoch3 = await wait_for_keeper_set(cluster, w3, remaining)
    assert epoch3 == epoch2 + 1
    cluster.kill(LEAVER, signal.SIGTERM)
    # then it is absent from the new epoch's quorum, and the joiner is still in it
    (members3,) = await quorum_members(cluster, w3, epoch3)
    assert leaver.account.address not in members3
    assert joiner.account.address in members3 and len(members3) == 4
    epoch3_block = await _epoch_start_block(cluster, w3, epoch3)
    await cluster.wait_until(
        lambda: executed_after(epoch3_block, 3), 120, "three executions in the third epoch"
    )

    # and the job ran through both changes: rounds contiguous, one execution per slot of its
    # grid from the first to the last, none missed and none twice
    executions = await cluster.executions(w3, job_id)
    assert_rounds_contiguous(executions)
    start = int((await chain_job(cluster, w3, job_id))["startTime"])
    assert_every_slot_once(executions, start, INTERVAL)
    blocks = [int(e["blockNumber"]) for e in executions]
    assert blocks[0] < epoch2_block < epoch3_block < blocks[-1]
    # and after the exit, only members of the newest quorum executed
    executors = {e["args"]["executor"] for e in executions if e["blockNumber"] > epoch3_block}
    assert executors <= set(members3)
