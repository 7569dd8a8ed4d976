"""Crash of the leader: `kill -9` the member ranked first for a due round; a backup executes
it within its turn, and the round executes exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from keeper.core.quorum import compute_quorum_of, rank_batch_members, unpack_member
from tests.e2e.cluster import Cluster, start_cluster

INTERVAL = 10


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
    # given a Time job every INTERVAL s (the minimum), created through the CLI-deployed
    # TaskManager
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
    deposit = 20 * int(await tm.functions.requiredDeposit(200_000, 0).call())
    receipt = await cluster.owner_tx(w3, tm.functions.createJob(spec), value=deposit)
    job_id = int(tm.events.JobCreated().process_receipt(receipt)[0]["args"]["jobId"])

    async def executed(n: int) -> bool:
        return len(await cluster.executions(w3, job_id)) >= n

    await cluster.wait_until(lambda: executed(1), 90, "the first execution")

    # when the member ranked first for an upcoming round is killed before that round is due:
    # rounds of a quorum are ranked per due block, the first block at their slot, so it is
    # killed on the eve of a slot (the head one block before it: anvil mines one a second)
    epoch = int(await registry.functions.currentEpoch().call())
    seed = bytes(await registry.functions.epochSeed(epoch).call())
    count = int(await registry.functions.quorumCount(epoch).call())
    index = compute_quorum_of(seed, job_id, count)
    logs = await registry.events.QuorumFormed().get_logs(
        from_block=cluster.deployment.block, argument_filters={"epoch": epoch}
    )
    quorum = next(log for log in logs if log["args"]["quorum"] == index)
    members = [unpack_member(bytes(w)).address for w in quorum["args"]["members"]]
    first_cursor = int((await cluster.executions(w3, job_id))[0]["args"]["cursor"])
    eve: dict[str, int] = {}

    async def on_the_eve_of_a_slot() -> bool:
        head = await w3.eth.get_block("latest")
        ts = int(head["timestamp"])
        slot = first_cursor + -(-(ts + 1 - first_cursor) // INTERVAL) * INTERVAL
        if slot - ts != 1:
            return False
        eve.update(slot=slot, due=int(head["number"]) + 1)
        return True

    await cluster.wait_until(on_the_eve_of_a_slot, 120, "the eve of a slot")
    ranked = rank_batch_members(epoch, index, eve["due"], members)
    by_address = {kp.account.address: i for i, kp in cluster.keepers.items()}
    cluster.kill(by_address[ranked[0]])

    # then the next ranked member executes that slot's round, once
    async def slot_executed() -> bool:
        done = await cluster.executions(w3, job_id)
        return any(int(e["args"]["cursor"]) == eve["slot"] for e in done)

    await cluster.wait_until(slot_executed, 90, "the slot's round after the leader was killed")
    executions = await cluster.executions(w3, job_id)
    (at_slot,) = [e for e in executions if int(e["args"]["cursor"]) == eve["slot"]]
    due_block = await w3.eth.get_block(eve["due"])
    assert int(due_block["timestamp"]) >= eve["slot"], "the chain skipped the predicted due block"
    assert at_slot["args"]["executor"] == ranked[1]
    # and the rounds stay contiguous and their cursors increasing
    rounds = [e["args"]["round"] for e in executions]
    assert rounds == list(range(len(rounds)))
    cursors = [e["args"]["cursor"] for e in executions]
    assert cursors == sorted(set(cursors))
