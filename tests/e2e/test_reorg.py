"""Reorgs around Event jobs, made with anvil's `anvil_reorg` on a running cluster.

anvil keeps its 1-second interval mining (the keepers see ordinary block times), and the test
pauses it (`evm_setIntervalMining 0`) for the few steps that must not race a new block: mine
the log's block by hand, wait until every keeper has stored the log, reorg. So the reorg always
lands after the keepers saw the log and before its confirmations, whatever the machine's load.

`anvil_reorg(depth, [[rawTx, blockIndex], ...])` replaces the newest `depth` blocks with as
many new ones holding only the listed transactions; the transactions of the replaced blocks
are dropped (anvil does not put them back into its pool).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keeper.core.triggers import compute_event_cursor
from tests.e2e.cluster import Cluster
from tests.e2e.support import (
    chain_block_hash,
    chain_head,
    chain_job,
    create_job,
    event_spec,
    job_status,
    mining_paused,
    read_store,
    sign_call,
    start_network,
    store_head,
    try_status,
    wait_for_epoch,
)

CONFIRMATIONS = 3
# A backup of rank 3 leads 3 * turnBlocks(2) blocks after the due block: wait well past that.
SETTLE_BLOCKS = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_network(tmp_path_factory.mktemp("reorg"), stakes=(2, 2, 2, 2))
    try:
        yield c
    finally:
        c.stop_all()


async def _event_job(cluster: Cluster, w3: Any, tag: int) -> tuple[Any, int]:
    """Given an epoch and an Event job on DemoEvent(tag) with 3 confirmations, known to every
    keeper."""
    await wait_for_epoch(cluster, w3)
    target = await cluster.deploy_target(w3)
    job_id, _ = await create_job(cluster, w3, event_spec(target.address, tag, CONFIRMATIONS))

    async def known() -> bool:
        statuses = [try_status(cluster, i) for i in cluster.keepers]
        return all(s is not None and job_status(s, job_id) for s in statuses)

    await cluster.wait_until(known, 60, f"every keeper to know job {job_id}")
    return target, job_id


def _send_raw(cluster: Cluster, raw: str) -> str:
    return str(cluster.anvil.rpc("eth_sendRawTransaction", raw))


def _log_cursor(cluster: Cluster, tx_hash: str) -> tuple[int, int]:
    """(block, cursor) of the DemoEvent the transaction emitted, on the current chain."""
    receipt = cluster.anvil.rpc("eth_getTransactionReceipt", tx_hash)
    assert receipt is not None, f"{tx_hash} is not on the chain"
    block = int(receipt["blockNumber"], 16)
    (log,) = receipt["logs"]
    return block, compute_event_cursor(block, int(log["logIndex"], 16))


async def _wait_stored_log(cluster: Cluster, job_id: int, cursor: int, head: int) -> None:
    """Every keeper synced up to `head` and holds the log as a candidate for the job."""

    async def stored() -> bool:
        for kp in cluster.keepers.values():
            h = store_head(kp.db)
            rows = read_store(
                kp.db, "SELECT 1 FROM job_logs WHERE job_id = ? AND cursor = ?", (job_id, cursor)
            )
            if h is None or h[0] < head or not rows:
                return False
        return True

    await cluster.wait_until(stored, 60, f"every keeper to store the log {cursor:#x}")


async def _wait_synced_past(cluster: Cluster, block: int) -> None:
    async def synced() -> bool:
        heads = [store_head(kp.db) for kp in cluster.keepers.values()]
        return all(h is not None and h[0] >= block for h in heads)

    await cluster.wait_until(synced, 120, f"every keeper to sync past block {block}")


async def test_a_log_reorged_away_before_its_confirmations_never_executes(
    cluster: Cluster,
) -> None:
    w3 = cluster.web3()
    target, job_id = await _event_job(cluster, w3, tag=1)

    # when a matching log is mined and every keeper has stored it, one block confirmed of three
    with mining_paused(cluster):
        tx = _send_raw(
            cluster, await sign_call(w3, cluster.accounts[-1], target.functions.emitDemo(1, 7))
        )
        cluster.anvil.rpc("evm_mine")
        log_block, cursor = _log_cursor(cluster, tx)
        cluster.anvil.rpc("evm_mine")
        await _wait_stored_log(cluster, job_id, cursor, log_block + 1)
        # and a reorg replaces the log's block and the next with two empty ones
        cluster.anvil.rpc("anvil_reorg", 2, [])
    assert cluster.anvil.rpc("eth_getTransactionReceipt", tx) is None

    # then long after the log would have been confirmed, nothing executed it
    await _wait_synced_past(cluster, log_block + CONFIRMATIONS + SETTLE_BLOCKS)
    assert await cluster.executions(w3, job_id) == []
    assert (await chain_job(cluster, w3, job_id))["round"] == 0
    # and no keeper keeps the orphaned log as a candidate
    for kp in cluster.keepers.values():
        assert read_store(kp.db, "SELECT cursor FROM job_logs WHERE job_id = ?", (job_id,)) == []


async def test_a_log_moved_to_another_block_executes_once_with_its_new_cursor(
    cluster: Cluster,
) -> None:
    w3 = cluster.web3()
    target, job_id = await _event_job(cluster, w3, tag=2)

    # when a matching log is mined, stored by every keeper, and a reorg re-includes the same
    # transaction one block later
    with mining_paused(cluster):
        raw = await sign_call(w3, cluster.accounts[-1], target.functions.emitDemo(2, 8))
        tx = _send_raw(cluster, raw)
        cluster.anvil.rpc("evm_mine")
        old_block, old_cursor = _log_cursor(cluster, tx)
        cluster.anvil.rpc("evm_mine")
        await _wait_stored_log(cluster, job_id, old_cursor, old_block + 1)
        cluster.anvil.rpc("anvil_reorg", 2, [[raw, 1]])
        new_block, new_cursor = _log_cursor(cluster, tx)
    assert new_block == old_block + 1 and new_cursor != old_cursor

    # then the job executes once, with the log's new cursor
    async def executed() -> bool:
        return len(await cluster.executions(w3, job_id)) >= 1

    await cluster.wait_until(executed, 120, "the moved log's execution")
    (first,) = await cluster.executions(w3, job_id)
    await _wait_synced_past(cluster, first["blockNumber"] + SETTLE_BLOCKS)
    executions = await cluster.executions(w3, job_id)
    assert [(e["args"]["round"], e["args"]["cursor"]) for e in executions] == [(0, new_cursor)]
    assert executions[0]["args"]["success"]
    job = await chain_job(cluster, w3, job_id)
    assert (job["round"], job["lastCursor"]) == (1, new_cursor)


async def test_a_reorged_execution_is_executed_again_once_and_stores_follow_the_chain(
    cluster: Cluster,
) -> None:
    w3 = cluster.web3()
    target, job_id = await _event_job(cluster, w3, tag=3)
    emitter = cluster.accounts[-1]

    async def emit(value: int) -> int:
        tx = _send_raw(cluster, await sign_call(w3, emitter, target.functions.emitDemo(3, value)))
        await w3.eth.wait_for_transaction_receipt(tx, timeout=60)  # type: ignore[arg-type]
        return _log_cursor(cluster, tx)[1]

    async def executed(n: int) -> bool:
        return len(await cluster.executions(w3, job_id)) >= n

    async def settled(job_round: int) -> bool:
        """Every keeper folded the chain's round and has no transaction in flight."""
        for i in cluster.keepers:
            status = try_status(cluster, i)
            job = job_status(status, job_id) if status else None
            if status is None or job is None or job["round"] != job_round or status["pending_txs"]:
                return False
        return True

    # given round 0 executed, seen by every keeper, and its transaction settled by its sender
    cursor = await emit(1)
    await cluster.wait_until(lambda: executed(1), 120, "round 0")
    await cluster.wait_until(lambda: settled(1), 60, "every keeper to settle round 0")

    # when a reorg replaces the block holding the JobExecuted and every block after it
    with mining_paused(cluster):
        (execution,) = await cluster.executions(w3, job_id)
        reorged_block = int(execution["blockNumber"])
        depth = chain_head(cluster) - reorged_block + 1
        cluster.anvil.rpc("anvil_reorg", depth, [])
        assert await cluster.executions(w3, job_id) == []
        assert (await chain_job(cluster, w3, job_id))["round"] == 0

    # then the keepers execute round 0 again, once, on the new chain
    await cluster.wait_until(lambda: executed(1), 120, "round 0 again after the reorg")
    (again,) = await cluster.executions(w3, job_id)
    assert (again["args"]["round"], again["args"]["cursor"]) == (0, cursor)
    assert again["transactionHash"] != execution["transactionHash"]
    await _wait_synced_past(cluster, int(again["blockNumber"]) + SETTLE_BLOCKS)
    assert len(await cluster.executions(w3, job_id)) == 1

    # and the network keeps working: the next log executes as round 1, and no keeper is left
    # with a transaction it cannot get mined (a nonce freed by the reorg must be reused)
    next_cursor = await emit(2)
    await cluster.wait_until(lambda: executed(2), 120, "round 1 after the reorg")
    await cluster.wait_until(lambda: settled(2), 90, "every keeper to settle round 1")
    executions = await cluster.executions(w3, job_id)
    assert [(e["args"]["round"], e["args"]["cursor"]) for e in executions] == [
        (0, cursor),
        (1, next_cursor),
    ]
    assert all(e["args"]["success"] for e in executions)

    # and each keeper's store agrees with the chain: its head block's hash, the job's round and
    # cursor (through `keeper status`, as an operator reads them)
    with mining_paused(cluster):
        head = chain_head(cluster)
        await _wait_synced_past(cluster, head)
        job = await chain_job(cluster, w3, job_id)
        for i, kp in cluster.keepers.items():
            number, block_hash = store_head(kp.db) or (0, b"")
            assert (number, block_hash) == (head, chain_block_hash(cluster, head)), f"keeper {i}"
            status = await cluster.status(i)
            mine = job_status(status, job_id)
            assert mine is not None
            assert (mine["round"], mine["last_cursor"]) == (job["round"], job["lastCursor"])
