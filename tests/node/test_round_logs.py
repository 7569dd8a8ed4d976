"""Log lines are bounded per round (issue 13, item 8): a round that keeps failing for many heads
says each kind of thing once, then counts it, and one `round.repeats` line gives the counts when
the round is done."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import TIME, selector, time_trigger
from tests.nodes import Network, start_network


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("keeper.")]


async def test_a_round_whose_members_are_unreachable_logs_a_bounded_number_of_lines(
    network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    net = network.net
    job_id = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))
    # given the job's other members are down (their peer ports refuse connections)
    for i in (1, 2, 3):
        await network.stop_node(i)
    node = network.nodes[0]
    caplog.set_level(logging.INFO)
    # when node 0 leads the round at every head for a long while, never reaching threshold
    await network.step(20)
    assert any(f"round.no_quorum job={job_id} round=0" in m for m in lines(caplog))
    after_twenty = len(lines(caplog))
    await network.step(40)
    # then the round said what it had to say once: 40 more failed heads added no line
    said = lines(caplog)
    assert len(said) == after_twenty, said[after_twenty:]
    assert sum(m.startswith("round.lead ") for m in said) == 1
    assert sum(m.startswith("peer.unreachable ") for m in said) == 3  # once per member
    assert node.is_healthy()
    # and once the members are back and the round executes, one line counts what was held back
    for i in (1, 2, 3):
        await network.start_node(i)

    async def executed() -> bool:
        return len(await network.executions(job_id)) >= 1

    await network.step_until(executed, max_blocks=20)
    await network.step(2)
    (summary,) = [m for m in lines(caplog) if m.startswith(f"round.repeats job={job_id} round=0")]
    assert "round.no_quorum=" in summary and "round.lead=" in summary
