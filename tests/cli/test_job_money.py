"""A job owner sees state and money: `job list`'s STATE is never Active for a job that cannot
run (no quorum, underfunded, paused); `job show` counts every top-up in the deposit, totals
what was spent, averages the cost, gives the runway in executions and time, names the next
run, pages the executions (--limit, --csv) and decodes why a failed one failed."""

from __future__ import annotations

import csv
import io
import re

import pytest

from keeper.core.job_state import compute_runway
from keeper.core.units import format_ether
from tests.cli.support import (
    ETHER,
    NO_WORK,
    ON_TIME,
    CliChain,
    assert_ok,
    create,
    create_unchecked,
    harness_net,
    run_round,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def field(output: str, name: str) -> str:
    match = re.search(rf"^  {name}\s+(.*)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def states(chain: CliChain) -> dict[int, str]:
    """job id -> the STATE column of `job list`."""
    header, *rows = assert_ok(chain.keeper("job", "list")).splitlines()
    start = header.index("STATE")
    end = header.index("ROUND")
    return {int(row.split()[0]): row[start:end].strip() for row in rows}


@pytest.fixture(scope="module")
def jobs(cli_chain: CliChain) -> dict[str, int]:
    """Jobs made before any keeper registers: one paying its way, one whose call reverts,
    one funded with exactly one execution at a 1-wei price cap."""
    required = cli_chain.tm.functions.requiredDeposit(200_000, 1).call()
    return {
        "paying": create(cli_chain, ON_TIME, "--fund", "0.05ether"),
        "failing": create_unchecked(cli_chain, NO_WORK),
        "thin": create(cli_chain, ON_TIME, "--max-gas-price", "1wei", "--fund", str(required)),
    }


def test_before_any_epoch_no_job_is_shown_active(cli_chain: CliChain, jobs: dict[str, int]) -> None:
    listed = states(cli_chain)
    assert {listed[job_id] for job_id in jobs.values()} == {"No quorum"}
    out = assert_ok(cli_chain.keeper("job", "show", str(jobs["paying"])))
    assert field(out, "state") == "No quorum: no live quorum: no epoch has formed quorums yet"
    assert field(out, "next run") == "none while no quorum"


async def test_money_counts_every_top_up_and_every_execution(
    cli_chain: CliChain, jobs: dict[str, int]
) -> None:
    async with harness_net(cli_chain) as net:
        await net.register_keepers([ETHER] * 4)
        await net.rotate()
        job_id = jobs["paying"]
        assert states(cli_chain)[job_id] == "Active"
        # given a 0.05 ether job topped up twice, and three executions
        assert_ok(cli_chain.keeper("job", "fund", str(job_id), "0.5ether"))
        assert_ok(cli_chain.keeper("job", "fund", str(job_id), "0.25ether"))
        payments = []
        for _ in range(3):
            receipt = await run_round(net, job_id)
            (event,) = await net.events(net.tm, "JobExecuted", receipt)
            payments.append(int(event["args"]["payment"]))
        out = assert_ok(cli_chain.keeper("job", "show", str(job_id)))
        # then the deposit counts both top-ups and the spending all three executions
        assert field(out, "deposited") == "0.8 ether (0.05 ether at creation + 2 top-up(s))"
        assert field(out, "spent") == f"{format_ether(sum(payments))} on 3 execution(s)"
        average = sum(payments) // 3
        assert field(out, "average cost") == f"{format_ether(average)} per execution (the last 3)"
        view = cli_chain.job(job_id)
        assert view["balance"] == 8 * ETHER // 10 - sum(payments)
        min_balance = cli_chain.tm.functions.minBalance(job_id).call()
        runway = compute_runway(view["balance"], min_balance, average)
        assert runway is not None and runway > 3
        assert field(out, "runway").startswith(f"{runway} execution(s) at the recent price, about ")
        # and the next run is a date, not a cursor
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((in \w+|\w+ ago)\)", field(out, "next run")
        ), out
        assert "executions (3)" in out

        # --limit pages the newest; --csv is a table of every execution
        two = assert_ok(cli_chain.keeper("job", "show", str(job_id), "--limit", "2"))
        assert "executions (3; the newest 2 shown: --limit N for more, --csv for a table)" in two
        rounds = [ln for ln in two.splitlines() if ln.startswith("  round ") and "  cursor " in ln]
        shown = [ln.split()[1] for ln in rounds]
        assert shown == ["1", "2"]
        table = assert_ok(cli_chain.keeper("job", "show", str(job_id), "--csv"))
        rows = list(csv.DictReader(io.StringIO(table)))
        assert [int(r["payment_wei"]) for r in rows] == payments
        assert [r["round"] for r in rows] == ["0", "1", "2"]
        assert all(r["success"] == "success" and r["time"].endswith(" UTC") for r in rows)


async def test_a_failed_execution_shows_its_decoded_reason_and_the_auto_pause(
    cli_chain: CliChain, jobs: dict[str, int]
) -> None:
    async with harness_net(cli_chain) as net:
        job_id = jobs["failing"]
        await run_round(net, job_id)
        out = assert_ok(cli_chain.keeper("job", "show", str(job_id)))
        (line,) = [ln for ln in out.splitlines() if ln.startswith("  round 0  cursor ")]
        assert "  FAILED  " in line and line.endswith("  reason NoWork()")
        assert field(out, "failures") == "1 in a row (pauses itself at 3)"
        # when it fails twice more, the contract pauses it and the CLI says so everywhere
        for _ in range(2):
            await run_round(net, job_id)
        out = assert_ok(cli_chain.keeper("job", "show", str(job_id)))
        assert field(out, "auto-paused").startswith("1 time(s), last at block ")
        assert field(out, "auto-paused").endswith("after 3 failed execution(s) in a row")
        assert field(out, "state").startswith("Paused: paused")
        assert field(out, "spent").endswith("on 3 execution(s), 3 failed")
        assert states(cli_chain)[job_id] == "Paused"


async def test_a_job_below_its_minimum_balance_is_underfunded(
    cli_chain: CliChain, jobs: dict[str, int]
) -> None:
    async with harness_net(cli_chain) as net:
        job_id = jobs["thin"]
        await run_round(net, job_id)
        view = cli_chain.job(job_id)
        min_balance = cli_chain.tm.functions.minBalance(job_id).call()
        assert view["balance"] < min_balance
        assert states(cli_chain)[job_id] == "Underfunded"
        out = assert_ok(cli_chain.keeper("job", "show", str(job_id)))
        assert field(out, "state") == (
            f"Underfunded: underfunded: has {format_ether(view['balance'])}, needs "
            f"{format_ether(min_balance)} for one worst-case execution"
        )
        assert field(out, "runway").startswith("0 execution(s) at the recent price, about 0s")
