"""The admin listener (status, health, metrics): loopback on the peer port + 1 unless set, from
.env, the environment or `--admin-listen`, and never the peer port itself."""

from __future__ import annotations

import pytest

from keeper.app import node_options
from keeper.cli import build_parser
from keeper.config import load_settings
from keeper.errors import ConfigError


def test_by_default_it_is_loopback_on_the_peer_port_plus_one() -> None:
    settings = load_settings({"listen": "0.0.0.0:9000"}, dotenv_path=None)
    options = node_options(settings)
    assert (options.host, options.port) == ("0.0.0.0", 9000)
    assert (options.admin_host, options.admin_port) == ("127.0.0.1", 9001)


def test_a_free_peer_port_gives_a_free_admin_port() -> None:
    settings = load_settings({"listen": "127.0.0.1:0"}, dotenv_path=None)
    assert settings.admin_address == "127.0.0.1:0"


def test_the_flag_overrides_the_environment() -> None:
    environ = {"KEEPER_ADMIN_LISTEN": "127.0.0.1:7000"}
    assert load_settings({}, environ, None).admin_address == "127.0.0.1:7000"
    args = build_parser().parse_args(["run", "--admin-listen", "10.0.0.5:7100"])
    settings = load_settings(vars(args), environ, None)
    assert (settings.admin_host, settings.admin_port) == ("10.0.0.5", 7100)


@pytest.mark.parametrize(
    "flags",
    [
        {"listen": "127.0.0.1:9000", "admin_listen": "127.0.0.1:9000"},
        {"admin_listen": "no-port"},
        {"admin_listen": "127.0.0.1:70000"},
        {"listen": "127.0.0.1:65535"},
    ],
)
def test_an_admin_address_that_cannot_work_is_refused(flags: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(flags, dotenv_path=None)
