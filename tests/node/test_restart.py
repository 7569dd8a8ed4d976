"""Nodes stopped and restarted on their own SQLite files while a Time job runs every 60 s.

A restarted member never signs a conflicting result, a restarted leader neither loses nor
repeats its execute transaction, every slot that fell while threshold stake was running
executes exactly once, and a node that was down for long catches up and leads again.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hexbytes import HexBytes

from keeper.core.quorum import is_quorum_signed
from keeper.core.report import compute_report_digest
from keeper.node.context import NodeOptions
from keeper.store.db import report_from_dict
from tests.harness import ETHER
from tests.node.restart_support import (
    INTERVAL,
    assert_no_conflicting_signatures,
    assert_slots_once,
    chain_nonce,
    create_time_job,
    pending_tx_rows,
    primary_of,
    signature_rows,
)
from tests.nodes import Network, start_network

STAKES = (ETHER, 2 * ETHER, 3 * ETHER, 4 * ETHER)
THRESHOLD_BPS = 6667


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path, STAKES)
    yield network
    network.net.chain.tester.enable_auto_mine_transactions()
    await network.stop()


async def step_until_executions(network: Network, job_id: int, count: int, blocks: int) -> None:
    async def enough() -> bool:
        return len(await network.executions(job_id)) >= count

    await network.step_until(enough, max_blocks=blocks)


async def test_member_restarted_after_signing_never_signs_a_conflicting_result(
    network: Network,
) -> None:
    job_id = await create_time_job(network)
    # given a member that has just signed a round it did not lead
    counts = {i: await n.store.signature_count() for i, n in network.nodes.items()}
    member = None
    for _ in range(30):
        await network.step()
        for i, node in network.nodes.items():
            if await node.store.signature_count() > counts[i]:
                last = signature_rows(network.db_path(i))[-1]
                if last.executor.lower() != node.address.lower():
                    member = i
        if member is not None:
            break
    assert member is not None, "no member signed within 30 blocks"
    # when it is stopped right away and restarted on the same store two blocks later
    await network.stop_node(member)
    before_stop = assert_no_conflicting_signatures(network.db_path(member))
    last = before_stop[-1]
    executed = len(await network.executions(job_id))
    await network.step(2)
    node = await network.start_node(member)
    # then its store still refuses a different result for the key it signed before the stop
    (signed,) = [
        s for s in await node.store.signed_for(*last.key) if s.report.executor == last.executor
    ]
    conflict = report_from_dict({**signed.report.as_message(), "cursor": last.cursor + INTERVAL})
    conflict_digest = compute_report_digest(conflict, node.ctx.domain)
    assert not await node.store.record_signature(conflict, conflict_digest, b"\x02" * 65)
    # and the job keeps executing, with the restarted member signing other leaders' reports
    await step_until_executions(network, job_id, executed + 3, blocks=40)
    await assert_slots_once(network, job_id)
    await network.stop_node(member)
    after = assert_no_conflicting_signatures(network.db_path(member))
    address = network.net.keepers[member].address.lower()
    assert [r for r in after if r not in before_stop and r.executor.lower() != address]
    # and no key it ever signed carries two results, and none of its signatures was lost
    assert set(before_stop) <= set(after)


@pytest.mark.parametrize("while_down", ["pool_lost", "mined"])
async def test_leader_restarted_after_submitting_sends_its_execution_once(
    network: Network, while_down: str
) -> None:
    tester = network.net.chain.tester
    job_id = await create_time_job(network)
    await step_until_executions(network, job_id, 1, blocks=20)
    # given a leader whose execute transaction is sent but not mined (the chain holds it)
    tester.disable_auto_mine_transactions()
    leader = purpose = None
    for _ in range(30):
        await network.step()
        for i, node in network.nodes.items():
            rows = await node.store.pending_txs("pending")
            executes = [r.purpose for r in rows if r.purpose.startswith(f"execute:{job_id}:")]
            if executes:
                leader, purpose = i, executes[0]
        if leader is not None:
            break
    assert leader is not None and purpose is not None, "no execution submitted in 30 blocks"
    round_ = int(purpose.split(":")[2])
    # when the leader stops before the transaction is mined
    await network.stop_node(leader)
    (sent,) = [r for r in pending_tx_rows(network.db_path(leader)) if r.purpose == purpose]
    nonce_before = await chain_nonce(network, leader)
    assert sent.status == "pending" and sent.nonce == nonce_before
    if while_down == "pool_lost":
        tester._pending_transactions.clear()  # the RPC node lost its pool meanwhile
    else:
        tester.enable_auto_mine_transactions()  # mined while the keeper is down
    # and restarts on the same store
    await network.start_node(leader)
    # then the very same signed transaction is what the chain has or gets
    found = await network.net.w3.eth.get_transaction(HexBytes(sent.tx_hash))
    assert bytes(found["hash"]) == sent.tx_hash
    tester.enable_auto_mine_transactions()
    await step_until_executions(network, job_id, round_ + 2, blocks=30)
    # and the round executed exactly once, by that transaction
    executions = await network.executions(job_id)
    (once,) = [e for e in executions if e["args"]["round"] == round_]
    assert bytes(once["transactionHash"]) == sent.tx_hash
    await assert_slots_once(network, job_id)
    # and the leader never sent a second execute for it: one row, one nonce used per tx sent
    await network.stop_node(leader)
    rows = pending_tx_rows(network.db_path(leader))
    assert [r.tx_hash for r in rows if r.purpose == purpose] == [sent.tx_hash]
    assert {r.status for r in rows} <= {"mined", "replaced"}
    sent_since = {r.nonce for r in rows if r.nonce >= nonce_before}
    assert await chain_nonce(network, leader) == nonce_before + len(sent_since)


async def test_random_restarts_keep_every_covered_slot_exactly_once(network: Network) -> None:
    rng = random.Random(20240611)
    net = network.net
    job_id = await create_time_job(network)
    start = (await net.job(job_id))["startTime"]
    weights = [min(stake, 3 * ETHER) for stake in STAKES]  # capped at 3 x minStake
    total = sum(weights)
    # given nodes stopped at random steps and restarted 1-6 blocks later, one at a time
    quorum_up: dict[int, bool] = {}  # step block timestamp -> threshold stake running
    down: tuple[int, int] | None = None  # (node, steps left)
    restarts = 0
    for _ in range(90):
        if down is None and rng.random() < 0.3:
            victim = rng.randrange(len(STAKES))
            await network.stop_node(victim)
            down = (victim, rng.randint(1, 6))
        elif down is not None and down[1] == 0:
            await network.start_node(down[0])
            down, restarts = None, restarts + 1
        elif down is not None:
            down = (down[0], down[1] - 1)
        await network.step()
        running = sum(weights[i] for i in network.nodes)
        quorum_up[await net.timestamp()] = is_quorum_signed(
            running, total, len(network.nodes), len(STAKES), THRESHOLD_BPS
        )
    if down is not None:
        await network.start_node(down[0])
    assert restarts >= 5
    # then executions are contiguous rounds on strictly increasing grid cursors
    cursors = await assert_slots_once(network, job_id)
    # and every slot whose whole window had threshold stake running executed
    last = max(quorum_up)
    covered = []
    slot = start
    while slot + INTERVAL <= last:
        window = [up for ts, up in quorum_up.items() if slot <= ts < slot + INTERVAL]
        if window and all(window):
            covered.append(slot)
        slot += INTERVAL
    assert len(covered) >= 5
    assert set(covered) <= set(cursors), sorted(set(covered) - set(cursors))
    # and no node ever signed two results for one key
    for i in range(len(STAKES)):
        assert_no_conflicting_signatures(network.db_path(i))


async def test_node_down_for_long_catches_up_and_leads_again(tmp_path: Path) -> None:
    options = NodeOptions(max_sync_range=16)
    network = await start_network(tmp_path, STAKES, options=options)
    try:
        job_id = await create_time_job(network)
        await step_until_executions(network, job_id, 1, blocks=20)
        # given the smallest keeper down for 60 blocks while the rest keep the job running
        await network.stop_node(0)
        down_at = len(await network.executions(job_id))
        await network.step(60)
        assert len(await network.executions(job_id)) >= down_at + 10
        # when it restarts, one pass catches it up over several bounded ranges
        node = await network.start_node(0)
        await network.step()
        chain_head = await network.net.block_number()
        head_hash = bytes((await network.net.w3.eth.get_block(chain_head))["hash"])
        assert await node.store.head() == (chain_head, head_hash)
        # and it leads the rounds it ranks first in (each round's ranking read off the chain
        # once executed: from the block its slot and its opening fell due at)
        back = len(await network.executions(job_id))

        async def first_of_its_own() -> int | None:
            for r in range(back, len(await network.executions(job_id))):
                if await primary_of(network, job_id, r) == 0:
                    return r
            return None

        async def led_one() -> bool:
            return await first_of_its_own() is not None

        await network.step_until(led_one, max_blocks=150)
        mine = await first_of_its_own()
        assert mine is not None
        executions = await network.executions(job_id)
        assert executions[mine]["args"]["executor"] == node.address
        await assert_slots_once(network, job_id)
    finally:
        await network.stop()
