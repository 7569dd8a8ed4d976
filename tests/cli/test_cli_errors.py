"""Every user mistake and chain failure is one line `keeper: error: ...`, exit 2, no traceback,
and sends nothing: given a deployed network, when a command is misused, then the chain is as it
was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from tests.anvil import free_port
from tests.cli.support import (
    CliChain,
    Result,
    assert_one_line_error,
    created_job_id,
    key_hex,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EVERY = ("--every", "60s")


@pytest.fixture(scope="module")
def job_id(cli_chain: CliChain) -> int:
    """One real Time job, so that job commands have something to refuse."""
    return created_job_id(
        cli_chain.keeper("job", "create", "--target", cli_chain.target, "--calldata", "onTime()",
                         *EVERY)
    )  # fmt: skip


@pytest.fixture
def unchanged(cli_chain: CliChain) -> Iterator[None]:
    """The test's command must leave the job count, the owner's nonce and balance alone."""
    before = cli_chain.snapshot()
    yield
    assert cli_chain.snapshot() == before


def create(chain: CliChain, *flags: str, **kw: Any) -> Result:
    return chain.keeper("job", "create", *flags, **kw)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--target", "0x1234", "--calldata", "0x", *EVERY), "invalid --target '0x1234'"),
        (("--calldata", "0xzz", *EVERY), "invalid --calldata '0xzz'"),
        (("--calldata", "0x", "--cron", "61 * * * *"), "invalid cron expression '61 * * * *'"),
        (("--calldata", "0x", "--fund", "1.5foo", *EVERY), "unknown unit 'foo'"),
        (("--calldata", "0x", "--fund=-1ether", *EVERY), "invalid amount '-1ether'"),
        (("--calldata", "0x", "--every", "5x"), "invalid duration '5x'"),
        (("--calldata", "0x", "--threshold", "0.4", *EVERY), "threshold '0.4' out of range"),
        (("--calldata", "0x", *EVERY, "--cron", "*/5 * * * *"), "exactly one trigger"),
        (("--calldata", "0x"), "exactly one trigger"),
    ],
)
def test_bad_job_create_flags_are_refused_before_sending(
    cli_chain: CliChain, flags: tuple[str, ...], expected: str
) -> None:
    flags = tuple(f.format(t=cli_chain.target) for f in flags)
    if "--target" not in flags and "--when" not in flags:
        flags = ("--target", cli_chain.target, *flags)
    assert_one_line_error(create(cli_chain, *flags), expected)


@pytest.mark.usefixtures("unchanged")
def test_a_revert_is_reported_by_its_custom_error_name(cli_chain: CliChain) -> None:
    eoa = cli_chain.accounts[5].address
    result = create(cli_chain, "--target", eoa.lower(), "--calldata", "0x", *EVERY)
    assert_one_line_error(result, f"createJob reverted: TargetNotContract({eoa})")


@pytest.mark.usefixtures("unchanged")
def test_an_interval_below_the_contract_minimum_reverts_by_name(cli_chain: CliChain) -> None:
    result = create(
        cli_chain, "--target", cli_chain.target, "--calldata", "onTime()", "--every", "5s"
    )
    assert_one_line_error(result, "createJob reverted: IntervalTooShort(5, 10)")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "args",
    [("show", "9999"), ("fund", "9999", "1ether"), ("pause", "9999"), ("cancel", "9999")],
)
def test_an_unknown_job_is_one_line(cli_chain: CliChain, args: tuple[str, ...]) -> None:
    assert_one_line_error(cli_chain.keeper("job", *args), "job 9999 does not exist")


@pytest.mark.usefixtures("unchanged")
def test_funding_with_nothing_is_refused(cli_chain: CliChain, job_id: int) -> None:
    assert_one_line_error(cli_chain.keeper("job", "fund", str(job_id), "0"), "more than zero")


@pytest.mark.usefixtures("unchanged")
def test_only_the_owner_may_pause(cli_chain: CliChain, job_id: int) -> None:
    stranger = cli_chain.accounts[4]
    result = cli_chain.keeper("job", "pause", str(job_id), key=key_hex(stranger))
    owner = cli_chain.owner.address
    assert_one_line_error(result, f"pause reverted: NotJobOwner({stranger.address}, {owner})")
    assert cli_chain.job(job_id)["status"] == 1


def test_insufficient_funds_sends_nothing(cli_chain: CliChain) -> None:
    poor = Account.create()
    result = cli_chain.keeper(
        "register", "--stake", "1ether", "--endpoint", "http://127.0.0.1:9999", key=key_hex(poor)
    )
    assert_one_line_error(result, "insufficient funds", poor.address, "holds 0 ether")
    assert cli_chain.w3.eth.get_transaction_count(poor.address) == 0


def test_a_job_owner_without_gas_money_is_refused(cli_chain: CliChain) -> None:
    poor = Account.create()
    before = int(cli_chain.tm.functions.nextJobId().call())
    result = create(
        cli_chain, "--target", cli_chain.target, "--calldata", "onTime()", *EVERY, key=key_hex(poor)
    )
    assert_one_line_error(result, "insufficient funds")
    assert int(cli_chain.tm.functions.nextJobId().call()) == before


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "args",
    [
        ("job", "list"),
        ("job", "create", "--target", "{t}", "--calldata", "0x", *EVERY),
    ],
    ids=["job-list", "job-create"],
)
def test_an_unreachable_rpc_is_one_line(cli_chain: CliChain, args: tuple[str, ...]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    args = tuple(a.format(t=cli_chain.target) for a in args)
    result = cli_chain.keeper(*args, rpc_url=dead)
    assert_one_line_error(result, "RPC unreachable")


@pytest.mark.usefixtures("unchanged")
def test_a_deployment_of_another_chain_is_refused(cli_chain: CliChain, workdir: Path) -> None:
    data = json.loads(cli_chain.deployment_file.read_text())
    data["chain_id"] = 1
    other = workdir / "mainnet.json"
    other.write_text(json.dumps(data))
    result = create(
        cli_chain, "--target", cli_chain.target, "--calldata", "0x", *EVERY, deployment=other
    )
    assert_one_line_error(result, "is for chain 1, but the RPC is chain 31337")


@pytest.mark.usefixtures("unchanged")
def test_a_stale_deployment_of_this_chain_is_refused(cli_chain: CliChain, workdir: Path) -> None:
    data = json.loads(cli_chain.deployment_file.read_text())
    data["task_manager"] = cli_chain.accounts[6].address  # no code there
    stale = workdir / "stale.json"
    stale.write_text(json.dumps(data))
    result = cli_chain.keeper("job", "list", deployment=stale)
    assert_one_line_error(result, f"no TaskManager at {cli_chain.accounts[6].address}", "stale")


@pytest.mark.usefixtures("unchanged")
def test_a_missing_deployment_file_is_one_line(cli_chain: CliChain, workdir: Path) -> None:
    result = cli_chain.keeper("job", "pause", "1", deployment=workdir / "nope.json")
    assert_one_line_error(result, "cannot read deployment file", "nope.json")


@pytest.mark.usefixtures("unchanged")
def test_a_wrong_keystore_password_is_one_line(cli_chain: CliChain, workdir: Path) -> None:
    keystore, password = workdir / "key.json", workdir / "password"
    keystore.write_text(json.dumps(Account.encrypt(Account.create().key, "right")))
    password.write_text("wrong\n")
    keystore.chmod(0o600)  # (readable ones would add their warning lines)
    password.chmod(0o600)
    result = cli_chain.keeper("job", "pause", "1", keystore=(keystore, password))
    assert_one_line_error(result, f"cannot decrypt keystore {keystore}: wrong password")


@pytest.mark.usefixtures("unchanged")
def test_a_malformed_private_key_is_one_line_and_never_echoed(cli_chain: CliChain) -> None:
    key = "0x" + "12" * 31
    result = cli_chain.keeper("job", "pause", "1", key=key)
    line = assert_one_line_error(result, "private key is malformed")
    assert key not in line


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("digits", [63, 65])
def test_a_private_key_a_digit_short_or_long_is_refused_not_padded(
    cli_chain: CliChain, digits: int
) -> None:
    # eth-account pads a 63-digit key: it would silently be another account
    key = "0x" + ("a1" * 33)[:digits]
    result = cli_chain.keeper("job", "pause", "1", key=key)
    line = assert_one_line_error(result, f"expected 64 hex digits, got {digits} characters")
    assert key[2:] not in line


def test_a_mixed_case_address_with_a_wrong_checksum_is_refused(cli_chain: CliChain) -> None:
    good = cli_chain.target
    before = cli_chain.snapshot()
    # flip the case of one letter: still 40 hex digits, no longer its EIP-55 checksum
    i = next(i for i, c in enumerate(good[2:], start=2) if c.isalpha())
    typo = good[:i] + good[i].swapcase() + good[i + 1 :]
    result = create(cli_chain, "--target", typo, "--calldata", "0x", *EVERY)
    assert_one_line_error(result, "checksum is wrong (EIP-55)", f"did you mean {good}")
    assert cli_chain.snapshot() == before


def test_deploy_never_overwrites_a_deployment_file_unless_forced(
    cli_chain: CliChain, workdir: Path
) -> None:
    existing = workdir / "existing.json"
    existing.write_text("{}")
    before = cli_chain.snapshot()
    result = cli_chain.keeper(
        "deploy", "--out", str(existing), key=key_hex(cli_chain.owner), deployment=None
    )
    assert_one_line_error(result, f"{existing} exists: pass --force to overwrite it")
    assert existing.read_text() == "{}"
    assert cli_chain.snapshot() == before  # nothing was deployed
