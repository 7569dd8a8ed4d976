"""Several RPC URLs as settings: `--rpc-url` more than once or KEEPER_RPC_URL comma-separated,
in order of preference; a URL that is not HTTP is refused without echoing its key."""

from __future__ import annotations

import pytest

from keeper.cli.main import build_parser
from keeper.config import load_settings
from keeper.errors import ConfigError

A = "https://mainnet.example-a.io/v3/0123456789abcdef"
B = "https://rpc.example-b.com/fedcba9876543210"


def test_rpc_url_given_twice_keeps_both_in_order() -> None:
    args = build_parser().parse_args(["run", "--rpc-url", A, "--rpc-url", B])
    settings = load_settings(vars(args), {}, dotenv_path=None)
    assert settings.rpc_urls == [A, B]
    # and the WebSocket heads follow the preferred one
    assert settings.heads_url == "wss://mainnet.example-a.io/v3/0123456789abcdef"


def test_rpc_url_from_the_environment_is_a_comma_separated_list() -> None:
    settings = load_settings({}, {"KEEPER_RPC_URL": f"{A}, {B}"}, dotenv_path=None)
    assert settings.rpc_urls == [A, B]


def test_rpc_limits_are_settings() -> None:
    env = {"KEEPER_RPC_REQUESTS_PER_SECOND": "9", "KEEPER_RPC_BURST": "18"}
    settings = load_settings({}, env, dotenv_path=None)
    assert (settings.rpc_requests_per_second, settings.rpc_burst) == (9.0, 18)
    with pytest.raises(ConfigError):
        load_settings({}, {"KEEPER_RPC_CONCURRENCY": "0"}, dotenv_path=None)


def test_a_url_that_is_not_http_is_refused_without_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {"KEEPER_RPC_URL": f"{A},ftp://host/secretkey99"}, dotenv_path=None)
    assert "secretkey99" not in str(caught.value)
