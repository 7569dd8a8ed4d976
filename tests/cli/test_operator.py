"""An operator's life through the console script against anvil: status before and after
registering, adding stake, moving the endpoint, earning and withdrawing, exiting and taking the
stake back. Every refusal is one line and sends nothing."""

from __future__ import annotations

import json
import re
import socket

import pytest

from keeper.chain.artifacts import load_artifact
from keeper.core.jobs import NO_PAYLOAD
from keeper.core.units import format_ether
from tests.cli.support import (
    ETHER,
    CliChain,
    assert_ok,
    assert_one_line_error,
    created_job_id,
    harness_net,
    key_hex,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OPERATOR = 6  # dev account registered through the CLI (harness keepers are 2-5)
STRANGER = 1  # never registers
REGISTERED, EXITING, WITHDRAWN = 1, 2, 4


@pytest.fixture(scope="module")
def closed_url() -> str:
    """An admin URL nothing listens on: a port bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def as_(chain: CliChain, index: int, *args: str) -> str:
    return assert_ok(chain.keeper(*args, key=key_hex(chain.accounts[index])))


def field(output: str, name: str) -> str:
    match = re.search(rf"^  {name}\s+(.*)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def keeper_info(chain: CliChain, index: int) -> list[object]:
    registry = chain.w3.eth.contract(
        address=chain.deployment.registry, abi=load_artifact("KeeperRegistry").abi
    )
    return list(registry.functions.keeperInfo(chain.accounts[index].address).call())


def status_json(chain: CliChain, index: int, url: str) -> dict[str, object]:
    out = as_(chain, index, "status", "--url", url, "--json")
    view: dict[str, object] = json.loads(out)
    return view


def test_status_of_a_stranger_says_not_registered_and_node_unreachable(
    cli_chain: CliChain, closed_url: str
) -> None:
    out = as_(cli_chain, STRANGER, "status", "--url", closed_url)
    assert out.startswith(f"keeper {cli_chain.accounts[STRANGER].address}\n")
    assert field(out, "registration") == "not registered"
    assert field(out, "stake") == "0 ether"
    assert field(out, "epoch") == "none yet (no rotation since the deployment)"
    assert field(out, "health") == "not reachable (ClientConnectorError)"
    assert "wei" not in out


def test_status_shows_the_stake_in_ether_and_what_the_wallet_fronts(
    cli_chain: CliChain, closed_url: str
) -> None:
    as_(
        cli_chain,
        OPERATOR,
        "register",
        "--stake",
        "2ether",
        "--endpoint",
        "http://127.0.0.1:9601",
    )
    out = as_(cli_chain, OPERATOR, "status", "--url", closed_url)
    assert field(out, "registration") == "active"
    assert field(out, "stake") == "2 ether"
    assert field(out, "endpoint") == "http://127.0.0.1:9601"
    view = status_json(cli_chain, OPERATOR, closed_url)
    wallet = view["wallet"]
    assert isinstance(wallet, dict)
    balance = cli_chain.w3.eth.get_balance(cli_chain.accounts[OPERATOR].address)
    cost = int(wallet["execution_cost_wei"])
    assert int(wallet["balance_wei"]) == balance
    assert wallet["executions_paid"] == balance // cost > 0
    assert f"fronts the gas of {balance // cost} execution(s)" in field(out, "wallet")
    assert view["keeper"] == {
        "registration": "active",
        "stake_wei": str(2 * ETHER),
        "endpoint": "http://127.0.0.1:9601",
        "exit_epoch": None,
        "unbond_at": None,
        "stake_withdrawable": False,
    }


def test_stake_add_adds_exactly_the_amount(cli_chain: CliChain) -> None:
    out = as_(cli_chain, OPERATOR, "stake", "add", "0.5ether")
    assert "now 2.5 ether, counted from the next epoch" in out
    assert keeper_info(cli_chain, OPERATOR)[0] == 25 * ETHER // 10


def test_stake_add_is_refused_to_a_stranger_and_for_zero(cli_chain: CliChain) -> None:
    before = cli_chain.snapshot()
    stranger = key_hex(cli_chain.accounts[STRANGER])
    assert_one_line_error(
        cli_chain.keeper("stake", "add", "1ether", key=stranger),
        "is not registered, not an active keeper: cannot add stake",
    )
    assert_one_line_error(
        cli_chain.keeper("stake", "add", "0", key=key_hex(cli_chain.accounts[OPERATOR])),
        "must be more than zero",
    )
    assert cli_chain.snapshot() == before


def test_endpoint_set_moves_the_endpoint_and_refuses_a_bad_url(cli_chain: CliChain) -> None:
    operator = key_hex(cli_chain.accounts[OPERATOR])
    assert_one_line_error(
        cli_chain.keeper("endpoint", "set", "ftp://x", key=operator), "must be an http(s) URL"
    )
    assert_one_line_error(
        cli_chain.keeper(
            "endpoint", "set", "http://127.0.0.1:1", key=key_hex(cli_chain.accounts[STRANGER])
        ),
        "not registered: only a registered keeper has an endpoint",
    )
    out = as_(cli_chain, OPERATOR, "endpoint", "set", "http://127.0.0.1:9602")
    assert "now reach" in out
    assert keeper_info(cli_chain, OPERATOR)[4] == "http://127.0.0.1:9602"


async def test_earnings_are_shown_then_withdrawn(cli_chain: CliChain, closed_url: str) -> None:
    """Given a round executed by a quorum member, its status shows the payment as earnings and
    the quorum it serves in; `keeper withdraw` pays them out, and a second one is refused."""
    async with harness_net(cli_chain) as net:
        await net.register_keepers([ETHER] * 4)
        await net.age_epoch()
        await net.rotate()
        job_id = created_job_id(
            cli_chain.keeper(
                "job", "create", "--target", cli_chain.target, "--calldata", "onTime()", "--every",
                "60s",
            )
        )  # fmt: skip
        start = (await net.job(job_id))["startTime"]
        check_block = await net.block_number() - 1
        quorum, members = await net.quorum_for_job(job_id)
        receipt = await net.execute_round(job_id, start, NO_PAYLOAD, check_block=check_block)
        (event,) = await net.events(net.tm, "JobExecuted", receipt)
        payment = int(event["args"]["payment"])
        executor = net.account_of(members[0].address)
        index = [a.address for a in cli_chain.accounts].index(executor.address)
        out = as_(cli_chain, index, "status", "--url", closed_url)
        assert (
            field(out, "earnings") == f"{format_ether(payment)} (`keeper withdraw` pays them out)"
        )
        assert str(quorum) in field(out, "quorums").split("serves in: ")[1].split(", ")
        assert status_json(cli_chain, index, closed_url)["earnings_wei"] == str(payment)

        before = cli_chain.w3.eth.get_balance(executor.address)
        out = as_(cli_chain, index, "withdraw")
        assert "withdrew" in out
        assert int(await net.tm.functions.earnings(executor.address).call()) == 0
        gained = cli_chain.w3.eth.get_balance(executor.address) - before
        assert 0 < gained <= payment
        assert_one_line_error(
            cli_chain.keeper("withdraw", key=key_hex(executor)), "has no earnings to withdraw"
        )


async def test_exit_then_withdraw_after_unbonding(cli_chain: CliChain, closed_url: str) -> None:
    """Given an active keeper: `exit --withdraw` first is refused; `exit` starts unbonding, a
    second `exit` and an early `exit --withdraw` are refused with the time it unbonds; after its
    last epoch and the unbonding period `exit --withdraw` pays the stake back."""
    operator = key_hex(cli_chain.accounts[OPERATOR])
    assert_one_line_error(
        cli_chain.keeper("exit", "--withdraw", key=operator), "run `keeper exit` first"
    )
    out = as_(cli_chain, OPERATOR, "exit")
    assert "leaves the keeper set after epoch" in out
    assert keeper_info(cli_chain, OPERATOR)[1] == EXITING
    assert_one_line_error(cli_chain.keeper("exit", key=operator), "is already exiting")
    assert_one_line_error(
        cli_chain.keeper("exit", "--withdraw", key=operator), "still serves through epoch"
    )
    status = as_(cli_chain, OPERATOR, "status", "--url", closed_url)
    assert field(status, "registration").startswith("exiting: serves through epoch ")
    assert "stake unbonding until" in field(status, "registration")

    async with harness_net(cli_chain) as net:
        exit_epoch = int(keeper_info(cli_chain, OPERATOR)[2])
        unbond_at = int(keeper_info(cli_chain, OPERATOR)[3])
        while await net.epoch() <= exit_epoch:
            net.time_travel(max(unbond_at, await net.timestamp()) + 3600)
            await net.rotate()
        net.mine(25)  # past the epoch's grace blocks
        before = cli_chain.w3.eth.get_balance(cli_chain.accounts[OPERATOR].address)
        out = as_(cli_chain, OPERATOR, "exit", "--withdraw")
        assert "withdrew the stake" in out and "2.5 ether" in out
        assert keeper_info(cli_chain, OPERATOR)[1] == WITHDRAWN
        assert cli_chain.w3.eth.get_balance(cli_chain.accounts[OPERATOR].address) > before
