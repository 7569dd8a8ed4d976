"""Rounds of one quorum due at one head go out as one batch: one request to each member, one
signature from each, one execute transaction; a refused item does not hold up the rest.

Protocol step 4: members are ranked per (epoch, quorum, due block), so every round one quorum
opens at one block has the same primary, which asks each other member once for all of them and
submits the largest item set the answers sign, in the same turn. A batch answer is untrusted:
a signature that does not recover to the member over the items it accepted is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from keeper.chain.calls import compute_execute_gas
from keeper.core.messages import BatchRequest, BatchResponse, Refusal
from keeper.core.report import sign_batch
from keeper.node.context import NodeOptions
from keeper.node.leader import MAX_CONCURRENT_ROUNDS
from tests.harness import TIME, selector, time_trigger
from tests.node.support import (
    assert_exactly_once,
    executions_after,
    first_block_at,
    node_index,
    ranking,
)
from tests.nodes import Network, start_network

JOBS = 8


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    # Every node of the test shares one process: a busy CI machine must not make some of them
    # step back as overloaded, or the rounds of one head could be led at different heads.
    network = await start_network(tmp_path, options=NodeOptions(max_cpu_percent=1e6))
    yield network
    await network.stop()


async def same_slot_jobs(network: Network, count: int) -> list[int]:
    """`count` Time jobs whose first slot is the same second, a minute from now."""
    net = network.net
    start = await net.timestamp() + 60
    return [
        await net.create_job(
            net.spec(TIME, time_trigger(3600), selector("onTime()"), start_time=start)
        )
        for _ in range(count)
    ]


def record_asks(network: Network) -> list[tuple[str, str, int, tuple[int, ...]]]:
    """Every member records the batches it is asked: (receiver, leader, head, jobs)."""
    asked: list[tuple[str, str, int, tuple[int, ...]]] = []
    for node in network.nodes.values():
        assert node.member is not None
        answer_batch = node.member.handle_batch

        async def recorded(
            req: BatchRequest, node_address: str = node.address, answer: Any = answer_batch
        ) -> BatchResponse:
            jobs = tuple(item.jobId for item in req.items)
            asked.append((node_address, req.sender, req.sent_block, jobs))
            return cast(BatchResponse, await answer(req))

        node.member.handle_batch = recorded  # type: ignore[method-assign]
    return asked


async def execute_transactions(network: Network, jobs: list[int]) -> set[str]:
    """The transactions that executed the jobs' rounds."""
    return {e["transactionHash"].hex() for job in jobs for e in await network.executions(job)}


async def test_rounds_due_at_one_head_go_out_as_one_batch_and_one_transaction(
    network: Network,
) -> None:
    # given every member records the batches it is asked, and eight Time jobs due together
    asked = record_asks(network)
    jobs = await same_slot_jobs(network, JOBS)
    quorums = {(await network.net.quorum_for_job(j))[0] for j in jobs}
    assert quorums == {0}, "one quorum serves every job of this network"

    # when the slot comes and the network runs until each job has executed once
    async def all_executed() -> bool:
        return all([len(await network.executions(j)) >= 1 for j in jobs])

    await network.step_until(all_executed, max_blocks=30)

    # then every job executed exactly once, all of them in ONE execute transaction
    assert [len(await network.executions(j)) for j in jobs] == [1] * JOBS
    assert len(await execute_transactions(network, jobs)) == 1
    # and its one leader asked each other member once, for all the rounds in one request
    requests = Counter((receiver, leader, head) for receiver, leader, head, _ in asked)
    assert requests and max(requests.values()) == 1
    assert {leader for _, leader, _, _ in asked} == {next(iter(asked))[1]}
    assert {job_ids for *_, job_ids in asked} == {tuple(jobs)}


# The store reads a member's answer makes for every item alike (one per batch since they are
# read once for all items, not once per item).
BATCH_READS = (
    "round_state",
    "round_states",
    "block_timestamp",
    "epoch",
    "quorums",
    "first_blocks_at",
)


def count_member_reads(network: Network) -> list[Counter[str]]:
    """Every member counts the store reads each batch answer makes (those of its own leader
    and follower, running beside it, are not counted): one Counter per answered batch."""
    answering: contextvars.ContextVar[Counter[str] | None] = contextvars.ContextVar(
        "answering", default=None
    )
    answers: list[Counter[str]] = []
    for node in network.nodes.values():
        assert node.member is not None
        store = node.store
        for name in BATCH_READS:
            read = getattr(store, name)

            async def counted(*args: Any, _name: str = name, _read: Any = read) -> Any:
                reads = answering.get()
                if reads is not None:
                    reads[_name] += 1
                return await _read(*args)

            setattr(store, name, counted)
        answer_batch = node.member.handle_batch

        async def answer(req: BatchRequest, _answer: Any = answer_batch) -> BatchResponse:
            reads: Counter[str] = Counter()
            answers.append(reads)
            answering.set(reads)
            return cast(BatchResponse, await _answer(req))

        node.member.handle_batch = answer  # type: ignore[method-assign]
    return answers


async def test_a_member_reads_the_store_once_per_batch_not_once_per_item(
    network: Network,
) -> None:
    # given members counting the store reads of each batch they answer, and Time jobs due together
    answers = count_member_reads(network)
    jobs = await same_slot_jobs(network, JOBS)

    # when the slot comes and the network runs until each job has executed once
    async def all_executed() -> bool:
        return all([len(await network.executions(j)) >= 1 for j in jobs])

    await network.step_until(all_executed, max_blocks=30)

    # then the batch of eight rounds went out once, and each member's answer read the rounds'
    # states, the check block and the quorums a fixed number of times, not once per item
    assert len(await execute_transactions(network, jobs)) == 1
    assert answers
    for reads in answers:
        assert reads["round_state"] == 0, reads
        assert max(reads.values()) <= 2, reads


async def test_rounds_due_at_one_head_are_cut_into_batches_that_fit_the_gas_limit(
    tmp_path: Path,
) -> None:
    # given nodes whose execute may take the gas of three 200,000-gas rounds, no more
    members = 4
    max_gas = compute_execute_gas([200_000] * 3, members)
    network = await start_network(
        tmp_path, options=NodeOptions(max_cpu_percent=1e6, max_batch_gas=max_gas)
    )
    try:
        # and eight Time jobs due together on the network's one quorum of four
        jobs = await same_slot_jobs(network, JOBS)
        assert {len((await network.net.quorum_for_job(j))[1]) for j in jobs} == {members}

        # when the slot comes and the network runs until each job has executed once
        async def all_executed() -> bool:
            return all([len(await network.executions(j)) >= 1 for j in jobs])

        await network.step_until(all_executed, max_blocks=30)
        await network.step(2)

        # then every job executed exactly once, in more than one execute transaction
        for job in jobs:
            await assert_exactly_once(network, job)
        txs = await execute_transactions(network, jobs)
        assert len(txs) == 3  # 3 + 3 + 2, cut greedily in order
        # and each transaction asked for no more gas than the limit
        w3 = network.net.w3
        for tx in txs:
            assert int((await w3.eth.get_transaction(tx))["gas"]) <= max_gas
    finally:
        await network.stop()


async def test_a_batch_never_takes_more_than_half_a_block_whatever_the_setting(
    tmp_path: Path,
) -> None:
    # given nodes whose own setting would let one execute take any gas
    network = await start_network(
        tmp_path, options=NodeOptions(max_cpu_percent=1e6, max_batch_gas=10**9)
    )
    try:
        # and four Time jobs of 5,000,000 gas each due together
        net = network.net
        start = await net.timestamp() + 60
        spec = net.spec(
            TIME, time_trigger(3600), selector("onTime()"), gas_limit=5_000_000, start_time=start
        )
        jobs = [
            await net.create_job(spec, value=3 * await net.required_deposit(5_000_000))
            for _ in range(4)
        ]

        # when the slot comes and the network runs until each job has executed once
        async def all_executed() -> bool:
            return all([len(await network.executions(j)) >= 1 for j in jobs])

        await network.step_until(all_executed, max_blocks=30)

        # then every job executed once, and no transaction asked for more than half a block
        for job in jobs:
            await assert_exactly_once(network, job)
        w3 = network.net.w3
        txs = await execute_transactions(network, jobs)
        assert len(txs) > 1
        for tx in txs:
            sent = await w3.eth.get_transaction(tx)
            block = await w3.eth.get_block(sent["blockNumber"])
            assert int(sent["gas"]) <= int(block["gasLimit"]) // 2
    finally:
        await network.stop()


async def test_a_batch_larger_than_the_leaders_round_pool_still_goes_out(
    network: Network,
) -> None:
    # given more Time jobs due together than a leader works on rounds at once
    jobs = await same_slot_jobs(network, MAX_CONCURRENT_ROUNDS + 8)

    # when the slot comes and the network runs until each job has executed once (a leader
    # waiting for more of its pool than there is would never return from its head)
    async def all_executed() -> bool:
        return all([len(await network.executions(j)) >= 1 for j in jobs])

    await asyncio.wait_for(network.step_until(all_executed, max_blocks=30), timeout=300)

    # then every job executed exactly once, in one execute transaction
    for job in jobs:
        await assert_exactly_once(network, job)
    assert len(await execute_transactions(network, jobs)) == 1


async def test_a_member_refusing_one_item_does_not_delay_the_rest(network: Network) -> None:
    # given the 4-ether member refuses one job's item in every batch (its stake is needed for
    # that job's 90% threshold, not for the others' 60%), and five Time jobs due together
    picky = network.nodes[3]
    assert picky.member is not None
    answer = picky.member.handle_batch
    net = network.net
    start = await net.timestamp() + 60

    def spec(threshold_bps: int) -> tuple[Any, ...]:
        return net.spec(
            TIME,
            time_trigger(3600),
            selector("onTime()"),
            threshold_bps=threshold_bps,
            start_time=start,
        )

    jobs = [await net.create_job(spec(6000)) for _ in range(4)]
    refused = await net.create_job(spec(9000))
    jobs.insert(2, refused)

    async def refusing(req: BatchRequest) -> BatchResponse:
        honest = await answer(req)
        keep = [
            i
            for i, item in enumerate(req.items)
            if item.jobId != refused and honest.results[i] is True
        ]
        results = tuple(
            Refusal(422, "NotDue", "refused by this test") if item.jobId == refused else r
            for item, r in zip(req.items, honest.results, strict=True)
        )
        signature = (
            sign_batch(picky.ctx.account.key, req.batch.subset(keep), net.domain) if keep else None
        )
        return BatchResponse(honest.signer, honest.overloaded, results, signature)

    picky.member.handle_batch = refusing  # type: ignore[method-assign]
    others = [j for j in jobs if j != refused]
    due = await first_block_at(network, start)

    # when the slot comes
    async def others_executed() -> bool:
        return all([len(await network.executions(j)) >= 1 for j in others])

    await network.step_until(others_executed, max_blocks=30)

    # then the four others executed in one transaction sent at their due head by its primary:
    # the refused item cost them no turn, and it alone is left (no quorum without 4 ether)
    executions = [e for j in others for e in await network.executions(j)]
    assert len({e["transactionHash"] for e in executions}) == 1
    assert int(executions[0]["blockNumber"]) < due + network.turn_blocks
    assert await network.executions(refused) == []


async def test_a_leader_killed_mid_batch_is_replaced_by_its_backup_each_job_once(
    network: Network,
) -> None:
    # given four Time jobs due together at a 60% threshold (met without any one member)
    net = network.net
    start = await net.timestamp() + 60
    spec = net.spec(
        TIME, time_trigger(3600), selector("onTime()"), threshold_bps=6000, start_time=start
    )
    jobs = [await net.create_job(spec) for _ in range(4)]
    due = await first_block_at(network, start)
    primary, backup, *_ = await ranking(network, jobs[0], due)
    leader = network.nodes[node_index(network, primary)]
    # and the primary dies at the moment it would send the batch its members signed
    killed = asyncio.Event()

    async def die(*args: Any, **kwargs: Any) -> bytes:
        killed.set()
        raise RuntimeError("killed mid-batch")

    leader.sender.send = die  # type: ignore[method-assign]

    async def is_killed() -> bool:
        return killed.is_set()

    await network.step_until(is_killed, max_blocks=10)
    await network.stop_node(node_index(network, primary))

    # when the network runs on
    async def all_executed() -> bool:
        return all([len(await network.executions(j)) >= 1 for j in jobs])

    await network.step_until(all_executed, max_blocks=15)
    await network.step(2)

    # then the backup executed every job once, in one transaction, from its own turn on
    executions = [e for j in jobs for e in await assert_exactly_once(network, j)]
    assert len(executions) == len(jobs)
    assert {e["args"]["executor"] for e in executions} == {backup}
    assert len({e["transactionHash"] for e in executions}) == 1
    assert int(executions[0]["blockNumber"]) > due + network.turn_blocks


async def test_a_member_answering_with_signatures_not_its_own_is_not_counted(
    network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    # given the member with the largest stake (4 of 10 ether) answers every batch with report
    # signatures made by another key: counted, they would bring any leader to 6667 bps with
    # one honest member, and the execution would revert on-chain
    liar = network.nodes[3]
    assert liar.member is not None
    answer = liar.member.handle_batch
    stranger = Account.from_key(keccak(b"not the liar"))

    async def lying(req: BatchRequest) -> BatchResponse:
        honest = await answer(req)
        if honest.signature is None:
            return honest
        forged = sign_batch(stranger.key, req.batch.subset(honest.accepted), network.net.domain)
        return replace(honest, signature=forged)

    liar.member.handle_batch = lying  # type: ignore[method-assign]
    net = network.net
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))

    # when the job executes twice
    caplog.set_level(logging.INFO, logger="keeper.node.leader")
    await executions_after(network, job_id, 2, max_blocks=40)

    # then leaders refused the liar's signatures, and none of them reached threshold with one
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"peer.bad_signature member={liar.address}") for m in messages)
    assert not [m for m in messages if m.startswith("round.simulation_failed")]
