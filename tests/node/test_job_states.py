"""A person asking a node about a job sees why it runs or waits: `GET /v1/jobs` and
`/v1/jobs/{id}` on the admin listener give each job a state and a reason in words, for the
cases a new user met in silence (issue 15): an underfunded job, a target call that reverts, a
gas limit too low, a resolver that does not exist, a paused job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_abi import encode as abi_encode

from keeper.core.job_state import format_time
from keeper.core.units import format_ether
from tests.harness import CONDITION, TIME, condition_trigger, selector, time_trigger
from tests.nodes import Network, start_network


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


async def get(network: Network, path: str) -> tuple[int, Any]:
    """A GET on node 0's admin listener (every node is in the one quorum of four)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(network.nodes[0].admin_endpoint + path) as resp,
    ):
        return resp.status, await resp.json()


async def job_view(network: Network, job_id: int) -> dict[str, Any]:
    status, body = await get(network, f"/v1/jobs/{job_id}")
    assert status == 200, body
    return dict(body)


async def state_of(
    network: Network, job_id: int, states: str | set[str], text: str = "", max_blocks: int = 30
) -> dict[str, Any]:
    """Steps until the node gives the job one of `states` with `text` in its reason; returns
    the job's view."""
    wanted = {states} if isinstance(states, str) else states
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal seen
        status, seen = await get(network, f"/v1/jobs/{job_id}")
        # 404 until the node has synced the job's creation
        return status == 200 and seen["state"] in wanted and text in seen["reason"]

    try:
        await network.step_until(reached, max_blocks=max_blocks)
    except AssertionError as exc:
        raise AssertionError(
            f"job {job_id} stayed {seen.get('state')}: {seen.get('reason')}"
        ) from exc
    return seen


async def test_a_failing_target_call_shows_its_decoded_revert_or_its_missing_gas(
    network: Network,
) -> None:
    net = network.net
    # given three Time jobs whose target call fails: a custom error, a function the target
    # does not have, and a call that needs far more gas than the job's limit
    no_work = await net.create_job(
        net.spec(
            TIME, time_trigger(60), selector("onCondition(uint256)") + abi_encode(["uint256"], [0])
        )
    )
    missing = await net.create_job(net.spec(TIME, time_trigger(60), selector("foo()")))
    starved = await net.create_job(
        net.spec(TIME, time_trigger(60), selector("onTime()"), gas_limit=10_000)
    )

    # when each has executed and failed (a job that keeps failing pauses itself on-chain)
    # then a person reads why, and sees the job cannot run as it is
    failing = {"target_reverts", "paused"}
    view = await state_of(network, no_work, failing, "target simulation reverts: NoWork()")
    assert view["can_run"] is False
    assert view["failures"] >= 1
    view = await state_of(network, missing, failing, "reverted without data")
    assert view["can_run"] is False
    view = await state_of(
        network, starved, {"gas_limit_low", "paused"}, "gas limit below the estimate"
    )
    assert "the job gives it 10000" in view["reason"]
    assert view["can_run"] is False
    # and the list shows the same states and reasons
    status, jobs = await get(network, "/v1/jobs")
    assert status == 200
    reasons = {j["id"]: j["reason"] for j in jobs}
    assert "NoWork()" in reasons[no_work]
    assert "gas limit below the estimate" in reasons[starved]


async def test_underfunded_paused_and_missing_resolver_jobs_say_so(network: Network) -> None:
    net = network.net
    # given a job funded with only the contract's minimum deposit, a job its owner paused, a
    # Condition job whose resolver function does not exist, and a healthy Time job
    poor = await net.create_job(
        net.spec(TIME, time_trigger(60), selector("onTime()")), value=await net.required_deposit()
    )
    paused = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))
    await net.tx(net.tm.functions.pause(paused), net.owner)
    nothere = await net.create_job(
        net.spec(
            CONDITION,
            condition_trigger(net.target.address, selector("nothere()")),
            selector("onTime()"),
        )
    )
    healthy = await net.create_job(net.spec(TIME, time_trigger(3600), selector("onTime()")))

    # when the network runs: the poor job reaches the balance below which no keeper runs it
    view = await state_of(network, poor, "underfunded")
    balance = int(view["balance"])
    assert balance < int(view["min_balance"])
    assert view["reason"] == (
        f"underfunded: has {format_ether(balance)}, needs "
        f"{format_ether(int(view['min_balance']))} for one worst-case execution"
    )
    assert view["can_run"] is False

    # then the paused job says it is paused, the resolver's revert is named
    assert (await job_view(network, paused))["state"] == "paused"
    resolver = await state_of(network, nothere, "resolver_reverts", "reverted without data")
    # and the healthy job runs, with its next run time
    await state_of(network, healthy, "scheduled", max_blocks=40)
    fine = await job_view(network, healthy)
    assert fine["can_run"] is True
    assert fine["reason"] == f"next run at {format_time(fine['next_run'])}"
    # and the reasons seen are kept, newest last
    assert resolver["reasons"][-1]["state"] == "resolver_reverts"


async def test_an_unknown_or_malformed_job_id_is_a_4xx(network: Network) -> None:
    status, body = await get(network, "/v1/jobs/999")
    assert (status, body["error"]) == (404, "UnknownJob")
    status, body = await get(network, "/v1/jobs/abc")
    assert (status, body["error"]) == (400, "InvalidJobId")
