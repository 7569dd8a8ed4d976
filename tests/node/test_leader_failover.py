"""Leader turns, overload and stake thresholds with four nodes (stakes 1..4 ether, one quorum).

Protocol, step 3: members are ranked per (jobId, round); rank k leads from
dueBlock + k * turnBlocks, so backups act only when the round is still open at their turn,
and an overloaded member moves itself to the back. Step 5: a round executes only with
threshold stake signed.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import TIME, selector, time_trigger
from tests.node.support import (
    assert_exactly_once,
    due_block_of_round,
    executions_after,
    node_index,
    nonces,
    ranking,
    step_to_eve,
)
from tests.nodes import Network, start_network


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


async def time_job(network: Network, threshold_bps: int = 6667) -> int:
    """A Time job every 60 s (five 12 s blocks) on the demo target."""
    net = network.net
    spec = net.spec(TIME, time_trigger(60), selector("onTime()"), threshold_bps=threshold_bps)
    return await net.create_job(spec)


def slot_gaps(executions: list[Any]) -> set[int]:
    """The spacing of consecutive Time cursors: {60} when every slot ran once."""
    cursors = [e["args"]["cursor"] for e in executions]
    return {b - a for a, b in itertools.pairwise(cursors)}


# ----------------------------------------------------------------------- leader failure


async def test_backup_executes_when_the_primary_is_down(network: Network) -> None:
    turn_blocks = network.turn_blocks
    # given a Time job whose threshold (60%) the quorum meets without any one member
    job_id = await time_job(network, threshold_bps=6000)
    (first,) = await executions_after(network, job_id, 1, max_blocks=10)
    # and the primary of the next round stopped before that round is due
    assert await network.net.timestamp() < first["args"]["cursor"] + 60
    due = await step_to_eve(network, first["args"]["cursor"] + 60)
    primary, backup, *_ = await ranking(network, job_id, due)
    await network.stop_node(node_index(network, primary))

    # when the chain moves past the next slot
    executions = await executions_after(network, job_id, 2, max_blocks=15)
    await network.step(2)

    # then round 1 executed exactly once, by the second-ranked member
    await assert_exactly_once(network, job_id)
    (round_1,) = [e for e in await network.executions(job_id) if e["args"]["round"] == 1]
    assert round_1["args"]["executor"] == backup
    # and not before the backup's turn: one turn after the block the round became due
    executor_node = network.nodes[node_index(network, backup)]
    state = await executor_node.store.round_state(job_id, 1)
    assert state is not None
    _, due_block, _ = state
    assert round_1["blockNumber"] >= due_block + turn_blocks
    assert executions[1]["args"]["cursor"] - executions[0]["args"]["cursor"] == 60


# ----------------------------------------------------------------------- overload


async def test_overloaded_member_steps_back_and_rounds_go_on(network: Network) -> None:
    net, turn_blocks = network.net, network.turn_blocks
    # given a Time job that has run once with every node idle
    job_id = await time_job(network)
    await executions_after(network, job_id, 1, max_blocks=10)
    # and the 4-ether member, whose signature every leader needs (the other three hold 6 of
    # 10 ether), so every leader hears its answer
    busy = net.keepers[3].address

    # when it reports overload
    network.nodes[3].load.force(True)
    # then its status says so
    assert (await network.nodes[3].status())["load"]["overloaded"] is True

    # when the network runs past the second round it would have led when idle (each round's
    # ranking read off the chain once executed: from the block its slot and its opening fell)
    rankings: dict[int, list[str]] = {}

    async def led_two_when_idle() -> bool:
        done = await network.executions(job_id)
        for r in range(1, len(done)):
            if r not in rankings:
                slot = int(done[r]["args"]["cursor"])
                due = await due_block_of_round(network, slot, int(done[r - 1]["blockNumber"]))
                rankings[r] = await ranking(network, job_id, due)
        return len([r for r, ranked in rankings.items() if ranked[0] == busy]) >= 2

    await network.step_until(led_two_when_idle, max_blocks=200)
    its_rounds = [r for r, ranked in rankings.items() if ranked[0] == busy][:2]
    executions = await network.executions(job_id)

    # then it led no round while overloaded: its own turn comes last
    later = executions[1:]
    assert all(e["args"]["executor"] != busy for e in later)
    # and each round it would have led went to the second-ranked member
    for r in its_rounds:
        assert executions[r]["args"]["executor"] == rankings[r][1]
    # and the second-ranked member took each such round one turn later, as a backup does
    for r in its_rounds:
        leader_node = network.nodes[node_index(network, executions[r]["args"]["executor"])]
        state = await leader_node.store.round_state(job_id, r)
        assert state is not None
        assert executions[r]["blockNumber"] >= state[1] + turn_blocks
    # and the leaders saw its overload in its answers (for status), without re-ranking on it
    for executor in {e["args"]["executor"] for e in later}:
        leader = network.nodes[node_index(network, executor)].leader
        assert leader is not None
        assert leader.peer_load[busy.lower()][0] is True
    # and the job kept executing once per slot, no slot skipped, no round twice
    await assert_exactly_once(network, job_id)
    assert slot_gaps(executions) == {60}
    assert await net.target.functions.timeCount().call() == len(executions)


# ----------------------------------------------------------------------- stake threshold


async def test_rounds_execute_without_the_smallest_stake(network: Network) -> None:
    # given a Time job at the default 66.67% threshold that has run once
    job_id = await time_job(network)
    await executions_after(network, job_id, 1, max_blocks=10)
    # when the 1-ether node stops (9 of 10 ether still run)
    small = network.net.keepers[0].address
    await network.stop_node(0)

    # then the next rounds still execute, exactly once each, without it
    executions = await executions_after(network, job_id, 4, max_blocks=25)
    await assert_exactly_once(network, job_id)
    assert all(e["args"]["executor"] != small for e in executions[1:])
    assert slot_gaps(executions) == {60}


async def test_rounds_wait_for_threshold_stake_without_spending_gas(network: Network) -> None:
    # given a Time job at a 60% threshold that has run once (weights are stakes capped at
    # 3 x minStake: 1, 2, 3 and 3 of 9)
    job_id = await time_job(network, threshold_bps=6000)
    await executions_after(network, job_id, 1, max_blocks=10)
    # when the 4- and 3-ether nodes stop (weight 3 of 9 still runs)
    await network.stop_node(3)
    await network.stop_node(2)
    sent_before = await nonces(network, [0, 1])

    # and the chain moves on for three slots
    await network.step(15)

    # then no round executed
    assert len(await network.executions(job_id)) == 1
    # and the running nodes sent no transaction at all: no failed executions, nothing queued
    assert await nonces(network, [0, 1]) == sent_before
    for i in (0, 1):
        assert await network.nodes[i].store.pending_txs("pending") == []

    # when the 4-ether node comes back (weight 6 of 9, three of four members)
    await network.start_node(3)
    # then rounds resume, the newest slot first, and still each round once
    executions = await executions_after(network, job_id, 3, max_blocks=20)
    await assert_exactly_once(network, job_id)
    assert executions[1]["args"]["cursor"] - executions[0]["args"]["cursor"] >= 3 * 60
