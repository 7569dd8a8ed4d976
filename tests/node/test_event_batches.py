"""An Event job works off a burst of logs at the batch's rate: round r with its log, and the
rounds after it with the next confirmed logs, in cursor order, in one batch (protocol: Event
items). A member accepts round r+k only after rounds r..r+k-1 and with the k-th next log it has
itself; a member that has not seen a log refuses that round and the later ones, and signs the
earlier ones.

On anvil: eth-tester numbers logIndex per transaction, so logs of one block would share cursors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from keeper.chain.anvil import AnvilChain, AnvilProcess
from keeper.core.messages import BatchRequest, BatchResponse
from keeper.core.triggers import compute_event_cursor
from keeper.node.context import NodeOptions
from tests.harness import EVENT, event_trigger, selector
from tests.node.support import DEMO_EVENT, assert_exactly_once, node_index, ranking
from tests.nodes import Network, start_network

LOGS = 20
CONFIRMATIONS = 2


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    anvil = AnvilProcess(accounts=12)
    network = None
    try:
        # one process runs every node: none may step back as overloaded
        network = await start_network(
            tmp_path,
            chain=AnvilChain(anvil, accounts=12),
            options=NodeOptions(max_cpu_percent=1e6),
        )
        yield network
    finally:
        if network is not None:
            await network.stop()
        anvil.stop()


async def an_event_job(network: Network) -> int:
    net = network.net
    trigger = event_trigger(net.target.address, [DEMO_EVENT], confirmations=CONFIRMATIONS)
    spec = net.spec(EVENT, trigger, selector("onEvent()"))
    # funded for every log's worst-case execution: a leader takes no more rounds than that
    deposit = 2 * LOGS * await net.required_deposit(spec[4], spec[9])
    return await net.create_job(spec, value=deposit)


async def emit_in_one_block(network: Network, count: int) -> list[int]:
    """`count` DemoEvents from the owner, all in one block; returns their cursors in order."""
    net = network.net
    anvil = cast(AnvilChain, net.chain).anvil
    w3 = net.w3
    nonce = int(await w3.eth.get_transaction_count(net.owner.address))
    anvil.rpc("evm_setAutomine", False)
    try:
        hashes = [
            await net.target.functions.emitDemo(tag, tag * 10).transact(
                {"from": net.owner.address, "nonce": nonce + tag, "gas": 100_000}
            )
            for tag in range(count)
        ]
        anvil.rpc("evm_mine", await net.timestamp() + 12)
    finally:
        anvil.rpc("evm_setAutomine", True)
    receipts = [await w3.eth.get_transaction_receipt(h) for h in hashes]
    assert len({int(r["blockNumber"]) for r in receipts}) == 1, "one block"
    logs = [log for r in receipts for log in net.target.events.DemoEvent().process_receipt(r)]
    return [compute_event_cursor(lg["blockNumber"], lg["logIndex"]) for lg in logs]


def record_answers(network: Network, index: int) -> list[tuple[BatchRequest, BatchResponse]]:
    """What node `index` answers to each batch it is asked."""
    answers: list[tuple[BatchRequest, BatchResponse]] = []
    member = network.nodes[index].member
    assert member is not None
    answer = member.handle_batch

    async def recorded(req: BatchRequest) -> BatchResponse:
        response = await answer(req)
        answers.append((req, response))
        return response

    member.handle_batch = recorded  # type: ignore[method-assign]
    return answers


async def execute_transactions(network: Network, job_id: int) -> list[Any]:
    return [e["transactionHash"] for e in await network.executions(job_id)]


async def test_a_burst_of_logs_in_one_block_executes_in_one_transaction_in_order(
    network: Network,
) -> None:
    # given an Event job, and twenty of its logs emitted in one block
    job_id = await an_event_job(network)
    cursors = await emit_in_one_block(network, LOGS)

    # when the network runs until they have all executed, then a while longer
    async def all_executed() -> bool:
        return len(await network.executions(job_id)) >= LOGS

    await network.step_until(all_executed, max_blocks=CONFIRMATIONS + 6)
    await network.step(3)

    # then each log executed exactly once, in cursor order, all in one execute transaction
    executions = await assert_exactly_once(network, job_id)
    assert [e["args"]["cursor"] for e in executions] == cursors
    assert all(e["args"]["success"] for e in executions)
    assert len(set(await execute_transactions(network, job_id))) == 1


async def test_a_member_that_has_not_seen_a_log_signs_the_rounds_before_it(
    network: Network,
) -> None:
    # given an Event job and twenty of its logs in one block
    job_id = await an_event_job(network)
    cursors = await emit_in_one_block(network, LOGS)
    log_block = cursors[0] >> 32
    due = log_block + CONFIRMATIONS
    # and the member of least stake that does not lead the rounds due then has lost every log
    # from the eighth on (as a node whose follower never stored them): once it has synced them
    primary = (await ranking(network, job_id, due))[0]
    picky = min(i for i in network.nodes if i != node_index(network, primary))
    answers = record_answers(network, picky)
    await network.step()  # every node syncs the log block; the logs are not yet confirmed
    lost = 7
    with sqlite3.connect(network.db_path(picky)) as db:
        db.execute("DELETE FROM job_logs WHERE job_id = ? AND cursor >= ?", (job_id, cursors[lost]))

    # when the network runs until every log has executed
    async def all_executed() -> bool:
        return len(await network.executions(job_id)) >= LOGS

    await network.step_until(all_executed, max_blocks=CONFIRMATIONS + 6)

    # then the member signed rounds 0..6 of the batch and refused round 7 and every later one
    (req, response), *_ = [(q, r) for q, r in answers if any(i.jobId == job_id for i in q.items)]
    assert [item.round for item in req.items] == list(range(LOGS))
    assert response.results[:lost] == (True,) * lost
    refused = response.results[lost:]
    assert [getattr(r, "code", None) for r in refused] == ["NotDue"] + ["WrongRound"] * (
        LOGS - lost - 1
    )
    assert response.accepted == tuple(range(lost))
    # and the others' signatures carried every round: each log executed once, in order
    executions = await assert_exactly_once(network, job_id)
    assert [e["args"]["cursor"] for e in executions] == cursors
