"""A keystore, its password file or a .env that group or others can read gets one warning line
naming the file, its mode and the fix; it is not an error, and a private file gets nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from tests.cli.support import Result, assert_ok, run_keeper

pytestmark = [pytest.mark.slow]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def keystore(tmp_path: Path) -> tuple[Path, Path, str]:
    """A private keystore (0600) and its password file (0600), cheap to decrypt."""
    account = Account.create()
    keystore, password = tmp_path / "key.json", tmp_path / "key.password"
    keystore.write_text(json.dumps(Account.encrypt(account.key, PASSWORD, "pbkdf2", 2)))
    password.write_text(PASSWORD + "\n")
    keystore.chmod(0o600)
    password.chmod(0o600)
    return keystore, password, account.address


def account_show(keystore: Path, password: Path, cwd: Path) -> Result:
    return run_keeper(
        "account", "show", "--keystore", str(keystore), "--password-file", str(password), cwd=cwd
    )


def test_a_password_file_others_can_read_is_warned_about(
    keystore: tuple[Path, Path, str], tmp_path: Path
) -> None:
    path, password, address = keystore
    # given a password file left at the usual 0644
    password.chmod(0o644)
    # when the keystore is used
    result = account_show(path, password, tmp_path)
    # then the command still works, with one line naming the file, its mode and the fix
    assert assert_ok(result).strip() == address
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"password file {password}" in lines[0]
    assert "0644" in lines[0]
    assert f"chmod 600 {password}" in lines[0]


def test_private_files_get_no_warning(keystore: tuple[Path, Path, str], tmp_path: Path) -> None:
    path, password, address = keystore
    # given a keystore and password file readable by their owner only
    # when the keystore is used
    result = account_show(path, password, tmp_path)
    # then nothing is said but the address
    assert assert_ok(result).strip() == address
    assert result.stderr == ""


def test_a_keystore_and_a_dotenv_others_can_read_are_warned_about(
    keystore: tuple[Path, Path, str], tmp_path: Path
) -> None:
    path, password, address = keystore
    # given a group-readable keystore and a world-readable .env where the command runs
    path.chmod(0o640)
    dotenv = tmp_path / ".env"
    dotenv.write_text("KEEPER_LOG_LEVEL=INFO\n")
    dotenv.chmod(0o604)
    # when the keystore is used
    result = account_show(path, password, tmp_path)
    # then each gets its line, and the password file (still private) none
    assert assert_ok(result).strip() == address
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert any(".env" in line and "0604" in line and "chmod 600" in line for line in lines)
    assert any(f"keystore {path}" in line and "0640" in line for line in lines)
    assert not any("password file" in line for line in lines)
