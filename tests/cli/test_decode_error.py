"""`keeper decode-error`: the bare selector cast prints (`custom error 0x...`) gets its name."""

from __future__ import annotations

from pathlib import Path

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from tests.cli.support import assert_one_line_error, run_keeper

TARGET = "0x" + "ab" * 20


def test_a_revert_of_the_contracts_is_named_with_its_arguments(tmp_path: Path) -> None:
    data = keccak(text="ForbiddenTarget(address)")[:4] + abi_encode(["address"], [TARGET])
    result = run_keeper("decode-error", "0x" + data.hex(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ForbiddenTarget" in result.stdout
    assert TARGET[2:].lower() in result.stdout.lower()
    locked = keccak(text="FundsLocked(uint256,uint64)")[:4] + abi_encode(
        ["uint256", "uint64"], [7, 1234]
    )
    out = run_keeper("decode-error", locked.hex(), cwd=tmp_path).stdout
    assert "FundsLocked(7, 1234)" in out


def test_data_that_is_no_error_of_the_contracts_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(
        run_keeper("decode-error", "0xdeadbeef", cwd=tmp_path),
        "0xdeadbeef is no error of the network's contracts",
    )
    assert_one_line_error(run_keeper("decode-error", "0xzz", cwd=tmp_path), "expected hex")
    assert_one_line_error(run_keeper("decode-error", "0x12", cwd=tmp_path), "4-byte selector")
