"""The gas limit of one execute is an operator's setting: --max-batch-gas, KEEPER_MAX_BATCH_GAS,
or .env, down to the node's options; nonsense is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from keeper.app import node_options
from keeper.cli import build_parser
from keeper.config import load_settings
from keeper.errors import ConfigError


def test_the_default_is_half_a_30m_block() -> None:
    assert node_options(load_settings(dotenv_path=None)).max_batch_gas == 15_000_000


def test_the_flag_overrides_the_environment_which_overrides_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("KEEPER_MAX_BATCH_GAS=1000000\n")
    assert load_settings({}, {}, dotenv).max_batch_gas == 1_000_000
    environ = {"KEEPER_MAX_BATCH_GAS": "2000000"}
    assert load_settings({}, environ, dotenv).max_batch_gas == 2_000_000
    args = build_parser().parse_args(["run", "--max-batch-gas", "3000000"])
    settings = load_settings(vars(args), environ, dotenv)
    assert node_options(settings).max_batch_gas == 3_000_000


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_limit_below_one_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="max batch gas must be positive"):
        load_settings({"max_batch_gas": value}, dotenv_path=None)


def test_a_limit_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ConfigError, match="KEEPER_MAX_BATCH_GAS must be a number"):
        load_settings({}, {"KEEPER_MAX_BATCH_GAS": "lots"}, dotenv_path=None)
