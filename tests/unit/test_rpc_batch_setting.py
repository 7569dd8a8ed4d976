"""The JSON-RPC batch size of Condition resolver checks is an operator's setting: --max-rpc-batch,
KEEPER_MAX_RPC_BATCH, or .env, down to the node's options; nonsense is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from keeper.app import node_options
from keeper.cli import build_parser
from keeper.config import load_settings
from keeper.errors import ConfigError


def test_the_default_is_a_hosted_providers_common_cap() -> None:
    assert node_options(load_settings(dotenv_path=None)).max_rpc_batch == 100


def test_the_flag_overrides_the_environment_which_overrides_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("KEEPER_MAX_RPC_BATCH=10\n")
    assert load_settings({}, {}, dotenv).max_rpc_batch == 10
    environ = {"KEEPER_MAX_RPC_BATCH": "20"}
    assert load_settings({}, environ, dotenv).max_rpc_batch == 20
    args = build_parser().parse_args(["run", "--max-rpc-batch", "25"])
    settings = load_settings(vars(args), environ, dotenv)
    assert node_options(settings).max_rpc_batch == 25


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_batch_below_one_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="max rpc batch must be at least 1"):
        load_settings({"max_rpc_batch": value}, dotenv_path=None)
