"""Keystores: `keeper account new` makes one, every command accepts it with its password file,
and a wrong password or an existing file is a one-line refusal."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from tests.cli.support import (
    ETHER,
    CliChain,
    Result,
    assert_ok,
    assert_one_line_error,
    created_job_id,
    run_keeper,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def account(action: str, keystore: Path, password: Path, cwd: Path) -> Result:
    return run_keeper(
        "account", action, "--keystore", str(keystore), "--password-file", str(password), cwd=cwd
    )


@pytest.fixture(scope="module")
def keystore(cli_chain: CliChain) -> tuple[Path, Path, str]:
    """A keystore made by `keeper account new`, funded with 2 ether from dev account 1."""
    keystore, password = cli_chain.workdir / "owner.json", cli_chain.workdir / "owner.password"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)
    out = assert_ok(account("new", keystore, password, cli_chain.workdir))
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}\n", out), out
    address = out.strip()
    tx = cli_chain.w3.eth.send_transaction(
        {"from": cli_chain.accounts[1].address, "to": address, "value": 2 * ETHER}
    )
    cli_chain.w3.eth.wait_for_transaction_receipt(tx)
    return keystore, password, address


def test_account_new_writes_a_private_keystore_that_show_reads(
    cli_chain: CliChain, keystore: tuple[Path, Path, str]
) -> None:
    path, password, address = keystore
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["address"].lower() == address[2:].lower()
    shown = assert_ok(account("show", path, password, cli_chain.workdir))
    assert shown.strip() == address


def test_a_job_created_with_the_keystore_belongs_to_it(
    cli_chain: CliChain, keystore: tuple[Path, Path, str]
) -> None:
    path, password, address = keystore
    result = cli_chain.keeper(
        "job", "create", "--target", cli_chain.target, "--calldata", "onTime()", "--every", "1m",
        "--fund", "0.5ether", keystore=(path, password),
    )  # fmt: skip
    job = cli_chain.job(created_job_id(result))
    assert (job["owner"], job["balance"], job["interval"]) == (address, ETHER // 2, 60)


def test_a_wrong_password_is_one_line(
    cli_chain: CliChain, keystore: tuple[Path, Path, str], tmp_path: Path
) -> None:
    path, _, address = keystore
    wrong = tmp_path / "wrong.password"
    wrong.write_text("Tr0ub4dor&3\n")
    wrong.chmod(0o600)  # (a readable one would add its warning line)
    nonce = cli_chain.w3.eth.get_transaction_count(address)
    result = cli_chain.keeper("job", "pause", "1", keystore=(path, wrong))
    assert_one_line_error(result, f"cannot decrypt keystore {path}: wrong password")
    assert_one_line_error(account("show", path, wrong, tmp_path), "wrong password")
    assert cli_chain.w3.eth.get_transaction_count(address) == nonce


def test_account_new_never_overwrites(
    cli_chain: CliChain, keystore: tuple[Path, Path, str]
) -> None:
    path, password, _ = keystore
    before = path.read_bytes()
    result = account("new", path, password, cli_chain.workdir)
    assert_one_line_error(result, f"keystore {path} already exists")
    assert path.read_bytes() == before


def test_account_new_needs_a_readable_non_empty_password(tmp_path: Path) -> None:
    empty = tmp_path / "empty.password"
    empty.write_text("\n")
    empty.chmod(0o600)
    result = account("new", tmp_path / "k.json", empty, tmp_path)
    assert_one_line_error(result, "is empty")
    result = account("new", tmp_path / "k.json", tmp_path / "missing", tmp_path)
    assert_one_line_error(result, "cannot read", "missing")
    assert not (tmp_path / "k.json").exists()
