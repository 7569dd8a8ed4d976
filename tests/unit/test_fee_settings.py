"""Fee settings: defaults < .env < environment < flags, and only contradictory ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from keeper.cli import build_parser
from keeper.config import load_settings
from keeper.core.fees import GWEI
from keeper.errors import ConfigError


def test_defaults_tip_the_market_from_a_thousandth_of_a_gwei() -> None:
    settings = load_settings(dotenv_path=None)
    policy = settings.fee_policy()
    assert (policy.priority_fee_floor, policy.priority_fee_ceiling) == (GWEI // 1000, 100 * GWEI)
    assert (policy.priority_fee_percentile, policy.max_fee_cap) == (50.0, 100 * GWEI)
    assert settings.max_in_flight == 16


def test_run_flags_override_the_environment_which_overrides_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("KEEPER_PRIORITY_FEE_FLOOR_GWEI=20\nKEEPER_MAX_IN_FLIGHT=4\n")
    environ = {"KEEPER_PRIORITY_FEE_FLOOR_GWEI": "25", "KEEPER_PRIORITY_FEE_PERCENTILE": "60"}
    args = build_parser().parse_args(
        ["run", "--priority-fee-ceiling-gwei", "40", "--gas-price-cap-gwei", "0.5"]
    )
    settings = load_settings(vars(args), environ, dotenv)
    policy = settings.fee_policy()
    assert policy.priority_fee_floor == 25 * GWEI  # environment over .env
    assert policy.priority_fee_ceiling == 40 * GWEI  # flag
    assert policy.priority_fee_percentile == 60.0
    assert policy.max_fee_cap == GWEI // 2
    assert settings.max_in_flight == 4  # .env


def test_a_fee_cap_below_the_tip_floor_does_not_stop_the_node() -> None:
    flags = {"gas_price_cap_gwei": "0.0005", "priority_fee_floor_gwei": "1"}
    policy = load_settings(flags, dotenv_path=None).fee_policy()
    assert policy.max_fee_cap < policy.priority_fee_floor


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"priority_fee_floor_gwei": "5", "priority_fee_ceiling_gwei": "2"}, "above its ceiling"),
        ({"priority_fee_percentile": "120"}, "percentile"),
        ({"gas_price_cap_gwei": "0"}, "fee cap must be positive"),
        ({"max_in_flight": "0"}, "max in flight"),
    ],
)
def test_contradictory_fee_settings_are_one_clear_error(
    flags: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, dotenv_path=None)
