"""A leader asks each member once per head for every round it leads there, and counts only
the signatures each member really made.

Protocol step 4: the rounds a leader leads at one head go to each other member of their quorum
in one `POST /v1/reports/batch`, and each round still goes on to its transaction on its own
threshold. Eight Time jobs due in the same block over a quorum of four: some member leads two
or more of them, and no member is asked twice by the same leader for the same head. A batch
answer is untrusted item by item: a signature that does not recover to the member is dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from keeper.core.messages import BatchResponse, ReportBatch, ReportRequest, ReportResponse
from keeper.core.report import sign_report
from keeper.node.context import NodeOptions
from tests.harness import TIME, selector, time_trigger
from tests.node.support import executions_after
from tests.nodes import Network, start_network

JOBS = 8


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    # Every node of the test shares one process: a busy CI machine must not make some of them
    # step back as overloaded, or the rounds of one head could be led at different heads.
    network = await start_network(tmp_path, options=NodeOptions(max_cpu_percent=1e6))
    yield network
    await network.stop()


async def test_rounds_led_at_one_head_reach_each_member_in_one_request(network: Network) -> None:
    # given every member records the batches it is asked (receiver, leader, head, jobs)
    asked: list[tuple[str, str, int, tuple[int, ...]]] = []
    singles: list[ReportRequest] = []
    for node in network.nodes.values():
        assert node.member is not None
        answer_batch, answer_one = node.member.handle_batch, node.member.handle_report

        async def recorded(
            batch: ReportBatch, node_address: str = node.address, answer=answer_batch
        ) -> BatchResponse:
            jobs = tuple(item.report.jobId for item in batch.items)
            asked.append((node_address, batch.sender, batch.sent_block, jobs))
            return await answer(batch)

        async def single(req: ReportRequest, answer=answer_one) -> ReportResponse:
            singles.append(req)
            return await answer(req)

        node.member.handle_batch = recorded  # type: ignore[method-assign]
        node.member.handle_report = single  # type: ignore[method-assign]
    # and eight Time jobs whose first slot is the same second
    net = network.net
    start = await net.timestamp() + 60
    jobs = [
        await net.create_job(
            net.spec(TIME, time_trigger(3600), selector("onTime()"), start_time=start)
        )
        for _ in range(JOBS)
    ]

    # when the slot comes and the network runs until each job has executed once
    async def all_executed() -> bool:
        return all([len(await network.executions(j)) >= 1 for j in jobs])

    await network.step_until(all_executed, max_blocks=30)

    # then every job executed exactly once
    assert [len(await network.executions(j)) for j in jobs] == [1] * JOBS
    # and each leader asked each member at most once per head, for all its rounds at once
    requests = Counter((receiver, leader, head) for receiver, leader, head, _ in asked)
    assert requests and max(requests.values()) == 1
    assert max(len(job_ids) for *_, job_ids in asked) >= 2
    assert {j for *_, job_ids in asked for j in job_ids} == set(jobs)
    assert not singles


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

    async def lying(batch: ReportBatch) -> BatchResponse:
        honest = await answer(batch)
        forged = tuple(
            sign_report(stranger.key, item.report, network.net.domain)
            if isinstance(result, bytes)
            else result
            for item, result in zip(batch.items, honest.results, strict=True)
        )
        return replace(honest, results=forged)

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
