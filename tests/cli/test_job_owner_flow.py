"""A job owner's whole flow through the console script against anvil: create one job of each
kind, list and show them, fund, pause, resume, cancel; one round executed by a quorum (harness
helpers standing in for keeper nodes) shows up in `job show`."""

from __future__ import annotations

import re

import pytest
from eth_utils.crypto import keccak

from keeper.core.jobs import NO_PAYLOAD
from keeper.core.units import parse_amount
from tests.cli.support import (
    ETHER,
    CliChain,
    assert_ok,
    assert_one_line_error,
    created_job_id,
    harness_net,
    key_hex,
    tx_hash,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DEMO_EVENT = "DemoEvent(address,uint256,uint256)"


@pytest.fixture(scope="module")
def jobs(cli_chain: CliChain) -> dict[str, int]:
    """One job of each kind, created with `keeper job create` by dev account 0."""
    t = cli_chain.target
    flags = {
        "time": ("--target", t, "--calldata", "onTime()", "--every", "60s"),
        "cron": ("--target", t, "--calldata", "onCron()", "--cron", "*/5 * * * *",
                 "--fund", "0.1ether", "--threshold", "6667bps"),
        "event": ("--target", t, "--calldata", "onEvent()", "--on-event", f"{t}:{DEMO_EVENT}:2"),
        "condition": ("--target", t, "--when", f"{t}:checker()", "--min-interval", "2"),
        "automation": ("--when", f"{t}::1",),
    }  # fmt: skip
    return {
        name: created_job_id(cli_chain.keeper("job", "create", *f)) for name, f in flags.items()
    }


def show(chain: CliChain, job_id: int) -> str:
    return assert_ok(chain.keeper("job", "show", str(job_id)))


def field(output: str, name: str) -> str:
    match = re.search(rf"^  {name}\s+(.*)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_each_kind_is_created_with_its_spec(cli_chain: CliChain, jobs: dict[str, int]) -> None:
    kinds = {name: cli_chain.job(job_id)["kind"] for name, job_id in jobs.items()}
    assert kinds == {"time": 0, "cron": 1, "event": 2, "condition": 3, "automation": 3}
    assert cli_chain.job(jobs["cron"])["thresholdBps"] == 6667
    assert cli_chain.job(jobs["time"])["thresholdBps"] == 6700
    assert cli_chain.job(jobs["automation"])["target"] == cli_chain.target


def test_the_default_deposit_is_ten_required_deposits(
    cli_chain: CliChain, jobs: dict[str, int]
) -> None:
    # requiredDeposit follows the base fee: the CLI read it at the block before its createJob
    (created,) = cli_chain.tm.events.JobCreated().get_logs(
        from_block=0, argument_filters={"jobId": jobs["event"]}
    )
    at = created["blockNumber"] - 1
    required = cli_chain.tm.functions.requiredDeposit(200_000, 0).call(block_identifier=at)
    assert cli_chain.job(jobs["event"])["balance"] == 10 * required
    assert cli_chain.job(jobs["cron"])["balance"] == ETHER // 10


def test_list_shows_all_five(cli_chain: CliChain, jobs: dict[str, int]) -> None:
    out = assert_ok(cli_chain.keeper("job", "list"))
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ID", "KIND", "STATUS"]
    listed = {int(row.split()[0]): row.split() for row in rows}
    kinds = {"time": "Time", "cron": "Cron", "event": "Event", "condition": "Condition",
             "automation": "Condition"}  # fmt: skip
    for name, job_id in jobs.items():
        assert listed[job_id][1] == kinds[name]
        assert listed[job_id][-1] == cli_chain.target
    mine = assert_ok(cli_chain.keeper("job", "list", "--owner", cli_chain.owner.address.lower()))
    assert len(mine.splitlines()) == len(out.splitlines())
    stranger = cli_chain.accounts[7].address
    assert "no jobs owned by" in assert_ok(cli_chain.keeper("job", "list", "--owner", stranger))


def test_show_decodes_each_trigger(cli_chain: CliChain, jobs: dict[str, int]) -> None:
    t = cli_chain.target
    assert field(show(cli_chain, jobs["time"]), "trigger") == "every 60s"
    assert field(show(cli_chain, jobs["cron"]), "trigger") == "cron '*/5 * * * *' (UTC)"
    event = field(show(cli_chain, jobs["event"]), "trigger")
    assert f"topic0 0x{keccak(text=DEMO_EVENT).hex()}" in event
    assert "2 confirmation(s)" in event
    condition = field(show(cli_chain, jobs["condition"]), "trigger")
    assert f"mode 0: resolver {t} called with 0x{keccak(text='checker()')[:4].hex()}" in condition
    assert "at least 2 block(s) apart" in condition
    automation = show(cli_chain, jobs["automation"])
    assert f"{t}.checkUpkeep(0x), then performUpkeep" in field(automation, "trigger")
    assert field(automation, "calldata") == "0x (0 bytes)"
    assert "executions (0)" in automation


def test_fund_adds_exactly_the_amount(cli_chain: CliChain, jobs: dict[str, int]) -> None:
    before = cli_chain.job(jobs["time"])["balance"]
    out = assert_ok(cli_chain.keeper("job", "fund", str(jobs["time"]), "0.25ether"))
    assert cli_chain.job(jobs["time"])["balance"] == before + ETHER // 4
    assert f"funded job {jobs['time']} with 0.25 ether" in out


def test_pause_then_resume(cli_chain: CliChain, jobs: dict[str, int]) -> None:
    job_id = str(jobs["condition"])
    assert f"paused job {job_id}" in assert_ok(cli_chain.keeper("job", "pause", job_id))
    assert cli_chain.job(jobs["condition"])["status"] == 2
    assert field(show(cli_chain, jobs["condition"]), "status") == "Paused"
    assert f"resumed job {job_id}" in assert_ok(cli_chain.keeper("job", "resume", job_id))
    assert cli_chain.job(jobs["condition"])["status"] == 1
    assert field(show(cli_chain, jobs["condition"]), "status") == "Active"


def test_cancelled_jobs_balance_is_withdrawn_after_the_delay(
    cli_chain: CliChain, jobs: dict[str, int]
) -> None:
    owner = cli_chain.owner.address
    job_id = str(jobs["cron"])
    balance = cli_chain.job(jobs["cron"])["balance"]
    # when the owner cancels, the job stops at once but keeps its balance for 128 blocks
    out = assert_ok(cli_chain.keeper("job", "cancel", job_id))
    assert f"then: keeper job withdraw {job_id}" in out
    assert cli_chain.job(jobs["cron"])["status"] == 3
    assert cli_chain.job(jobs["cron"])["balance"] == balance
    # then a withdrawal before the delay is a one-line refusal that changes nothing
    early = cli_chain.keeper("job", "withdraw", job_id)
    assert_one_line_error(early, "FundsLocked")
    # and once the delay is over the whole balance comes back
    cli_chain.anvil.rpc("anvil_mine", hex(128))
    before = cli_chain.w3.eth.get_balance(owner)
    result = cli_chain.keeper("job", "withdraw", job_id)
    out = assert_ok(result)
    match = re.search(r"^refund (\S+) ether \((\d+) wei\) to (0x\w+)$", out, re.MULTILINE)
    assert match, out
    refund = int(match.group(2))
    assert refund == balance == parse_amount(match.group(1) + "ether")
    receipt = cli_chain.w3.eth.get_transaction_receipt(tx_hash(result))
    gas_cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert cli_chain.w3.eth.get_balance(owner) - before == refund - gas_cost
    assert field(show(cli_chain, jobs["cron"]), "balance") == "0 ether"


def test_ownership_moves_in_two_steps(cli_chain: CliChain, jobs: dict[str, int]) -> None:
    job_id = str(jobs["event"])
    new_owner = cli_chain.accounts[9]
    # when the owner offers the job, it is still the owner's until the offer is accepted
    out = assert_ok(cli_chain.keeper("job", "transfer", job_id, new_owner.address))
    assert f"offered job {job_id} to {new_owner.address}" in out
    assert cli_chain.job(jobs["event"])["owner"] == cli_chain.owner.address
    assert field(show(cli_chain, jobs["event"]), "offered to") == new_owner.address
    # then someone else cannot take it
    stranger = key_hex(cli_chain.accounts[8])
    assert_one_line_error(
        cli_chain.keeper("job", "accept", job_id, key=stranger), "NotPendingOwner"
    )
    # and the proposed owner can, after which the old owner cannot pause it any more
    assert_ok(cli_chain.keeper("job", "accept", job_id, key=key_hex(new_owner)))
    assert cli_chain.job(jobs["event"])["owner"] == new_owner.address
    assert_one_line_error(cli_chain.keeper("job", "pause", job_id), "NotJobOwner")


async def test_show_lists_an_executed_round(cli_chain: CliChain, jobs: dict[str, int]) -> None:
    """Given a quorum of four (harness keepers, no nodes), when it executes round 0 of the Time
    job, then `job show` lists the execution as JobExecuted recorded it."""
    async with harness_net(cli_chain) as net:
        await net.register_keepers([ETHER] * 4)
        await net.rotate()
        job_id = jobs["time"]
        start = (await net.job(job_id))["startTime"]
        # anvil estimates in the latest block's context, where the latest block is not yet past.
        check_block = await net.block_number() - 1
        receipt = await net.execute_round(job_id, start, NO_PAYLOAD, check_block=check_block)
        (event,) = await net.events(net.tm, "JobExecuted", receipt)
        out = show(cli_chain, job_id)
        assert "executions (1)" in out
        line = next(x for x in out.splitlines() if x.startswith("  round 0 "))
        assert f"cursor {start}  block {receipt['blockNumber']}" in line
        assert (
            f"executor {event['args']['executor']}  success  gas {event['args']['gasUsed']}" in line
        )
        assert field(out, "round") == "1"
