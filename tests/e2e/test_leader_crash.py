"""Crash of the leader: `kill -9` the member ranked first for a due round; a backup executes
it within its turn, and the round executes exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from keeper.core.quorum import compute_quorum_of, rank_members, unpack_member
from tests.e2e.cluster import Cluster, start_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # equal stakes: any three of four members still hold the 2/3 threshold
    c = start_cluster(tmp_path, stakes=(2, 2, 2, 2))
    try:
        yield c
    finally:
        c.stop_all()


async def test_backup_executes_when_the_leader_is_killed(cluster: Cluster) -> None:
    w3 = cluster.web3()
    contracts = await cluster.contracts(w3)
    registry, tm = contracts.registry, contracts.task_manager

    async def epoch_formed() -> bool:
        return int(await registry.functions.currentEpoch().call()) >= 1

    await cluster.wait_until(epoch_formed, 60, "the keepers to rotate the first epoch")
    # given a Time job every 10 s (the minimum), created through the CLI-deployed TaskManager
    target = await cluster.deploy_target(w3)
    spec = (
        target.address,
        keccak(text="onTime()")[:4],
        0,
        abi_encode(["uint64"], [10]),
        200_000,
        6667,
        0,
        0,
        0,
        0,
    )
    deposit = 20 * int(await tm.functions.requiredDeposit(200_000, 0).call())
    receipt = await cluster.owner_tx(w3, tm.functions.createJob(spec), value=deposit)
    job_id = int(tm.events.JobCreated().process_receipt(receipt)[0]["args"]["jobId"])

    async def executed(n: int) -> bool:
        return len(await cluster.executions(w3, job_id)) >= n

    await cluster.wait_until(lambda: executed(1), 90, "the first execution")

    # when the member ranked first for the next round is killed before that round is due
    epoch = int(await registry.functions.currentEpoch().call())
    seed = bytes(await registry.functions.epochSeed(epoch).call())
    count = int(await registry.functions.quorumCount(epoch).call())
    logs = await registry.events.QuorumFormed().get_logs(
        from_block=cluster.deployment.block, argument_filters={"epoch": epoch}
    )
    quorum = next(
        log for log in logs if log["args"]["quorum"] == compute_quorum_of(seed, job_id, count)
    )
    members = [unpack_member(bytes(w)).address for w in quorum["args"]["members"]]
    ranked = rank_members(job_id, 1, members)
    by_address = {kp.account.address: i for i, kp in cluster.keepers.items()}
    cluster.kill(by_address[ranked[0]])

    # then the next ranked member executes round 1, once
    await cluster.wait_until(lambda: executed(2), 90, "round 1 after the leader was killed")
    executions = await cluster.executions(w3, job_id)
    round_one = [e for e in executions if e["args"]["round"] == 1]
    assert len(round_one) == 1
    assert round_one[0]["args"]["executor"] == ranked[1]
    # and the rounds stay contiguous and their cursors increasing
    rounds = [e["args"]["round"] for e in executions]
    assert rounds == list(range(len(rounds)))
    cursors = [e["args"]["cursor"] for e in executions]
    assert cursors == sorted(set(cursors))
