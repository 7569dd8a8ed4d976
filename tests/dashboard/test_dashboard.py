"""The admin listener's dashboard, in a real headless Chromium against running nodes: what a
person sees is the network, each job with its state and reason, and a job's executions drawn
as a chart with its failures marked.

Set KEEPER_DASHBOARD_SCREENSHOT=DIR to keep screenshots of both pages (docs/dashboard.png is
one)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode

from tests.dashboard.browser import CHROMIUM, Browser
from tests.harness import TIME, selector, time_trigger
from tests.nodes import Network, start_network

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="chromium missing: run scripts/setup.sh as root"
)


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    yield network
    await network.stop()


async def test_a_person_sees_jobs_their_states_and_a_drawn_history(network: Network) -> None:
    net = network.net
    # given a healthy Time job, one whose target reverts and one barely funded
    good = await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))
    no_work = selector("onCondition(uint256)") + abi_encode(["uint256"], [0])
    failing = await net.create_job(net.spec(TIME, time_trigger(60), no_work))
    poor = await net.create_job(
        net.spec(TIME, time_trigger(60), selector("onTime()")), value=await net.required_deposit()
    )

    # when the network has run the healthy job a few times and the failing one at least once
    async def enough() -> bool:
        return len(await network.executions(good)) >= 4 and bool(await network.executions(failing))

    await network.step_until(enough, max_blocks=60)
    node = network.nodes[0]
    shots = os.environ.get("KEEPER_DASHBOARD_SCREENSHOT")

    async with Browser() as page:
        # then the network page names every job with its state and reason
        await page.open(
            node.admin_endpoint + "/dashboard/",
            "document.body.dataset.loaded === 'yes' && "
            "document.querySelectorAll('#jobs tbody tr').length === 3",
        )
        rows = await page.evaluate(
            "[...document.querySelectorAll('#jobs tbody tr')].map((tr) => ({"
            " id: Number(tr.dataset.job), name: tr.cells[0].innerText,"
            " state: tr.cells[1].innerText, reason: tr.cells[2].innerText }))"
        )
        by_id = {row["id"]: row for row in rows}
        assert by_id[good]["name"] == f"Job #{good} · Time · every 60 s"
        assert by_id[good]["state"] in ("scheduled", "due")
        assert by_id[poor]["state"] == "underfunded"
        assert by_id[poor]["reason"].startswith("underfunded: has ")
        assert by_id[failing]["state"] in ("target reverts", "paused")
        assert "NoWork()" in by_id[failing]["reason"]
        # and the keepers with their stake
        stakes = await page.evaluate(
            "[...document.querySelectorAll('#keepers tbody tr')].map((tr) => tr.cells[2].innerText)"
        )
        assert sorted(stakes) == [f"{n} ETH" for n in (1, 2, 3, 4)]
        epoch = await page.evaluate("document.querySelector('#epoch').innerText")
        assert epoch.startswith("Epoch 1")
        if shots:
            await page.screenshot(Path(shots) / "dashboard.png")

        # and a job's page draws its executions: one point per success, a cross per failure
        # (as many as the node has followed: an execution sent at its last pass lands in a
        # block it reads at its next)
        synced = await node.ctx.store.head()
        assert synced is not None
        executed = len([e for e in await network.executions(good) if e["blockNumber"] <= synced[0]])
        assert executed >= 3
        await page.open(
            node.admin_endpoint + f"/dashboard/job.html?id={good}",
            "document.body.dataset.loaded === 'yes' && document.querySelector('#chart svg')",
        )
        assert (
            await page.evaluate("document.querySelectorAll('#chart svg circle.ok').length")
            >= executed
        )
        points = await page.evaluate(
            "document.querySelector('#chart polyline').getAttribute('points')"
        )
        assert len(points.split()) >= executed
        assert await page.evaluate("document.querySelector('#state').innerText") in (
            "scheduled",
            "due",
        )

        await page.open(
            node.admin_endpoint + f"/dashboard/job.html?id={failing}",
            "document.body.dataset.loaded === 'yes' && document.querySelector('#chart svg')",
        )
        assert await page.evaluate("document.querySelectorAll('#chart svg g.failure').length") >= 1
        assert "NoWork()" in await page.evaluate("document.querySelector('#reason').innerText")
        reasons = await page.evaluate(
            "[...document.querySelectorAll('#reasons tbody tr')].map((tr) => tr.cells[2].innerText)"
        )
        assert any("NoWork()" in r for r in reasons)
        if shots:
            await page.screenshot(Path(shots) / "dashboard-job.png")
