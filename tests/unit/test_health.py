"""/healthz tells the truth: each reason a node is unfit, in an operator's words."""

from __future__ import annotations

from dataclasses import replace

from keeper.monitor.health import HealthFacts, HealthLimits, assess_health

LIMITS = HealthLimits(unhealthy_after=15, max_lag_blocks=10, max_head_age=120)
HEALTHY = HealthFacts(
    seconds_since_pass=1.0,
    last_error="",
    head=1_000,
    chain_head=1_002,
    head_age=3.0,
    keeper_status="active",
    registered_endpoint="http://127.0.0.1:8701",
    listen_port=8701,
)


def reason(**changes: object) -> str | None:
    return assess_health(replace(HEALTHY, **changes), LIMITS)  # type: ignore[arg-type]


def test_a_synced_registered_reachable_node_is_healthy() -> None:
    assert reason() is None
    assert reason(keeper_status="exiting") is None  # it still serves its last epoch
    assert reason(registered_endpoint="https://keeper.example", listen_port=443) is None
    # behind a reverse proxy, the public endpoint is what must be registered
    proxied = {"registered_endpoint": "https://keeper.example", "listen_port": 8701}
    assert reason(**proxied, public_endpoint="https://keeper.example") is None
    assert "not this node's public endpoint" in str(
        reason(**proxied, public_endpoint="https://other.example")
    )


def test_each_failure_is_named() -> None:
    assert reason(last_error="rpc: RPC unreachable") == "rpc: RPC unreachable"
    assert reason(seconds_since_pass=60.0) == "no successful pass for 60 s"
    assert reason(head=None) == "not synced yet"
    # a day behind is a catch-up, not health
    assert "7200 blocks behind" in str(reason(head=1_000, chain_head=8_200))
    # a chain that stopped producing blocks (a plain anvil without --block-time) or a stuck RPC
    assert "is 600 s old" in str(reason(head_age=600.0))
    assert "not a keeper in the registry (not registered)" in str(reason(keeper_status=None))
    assert "(slashed)" in str(reason(keeper_status="slashed"))
    assert "not on the port this node listens on (9000)" in str(reason(listen_port=9000))


def test_the_first_failing_rule_is_the_reason() -> None:
    assert reason(last_error="boom", head=None, keeper_status=None) == "boom"
    assert "behind" in str(reason(head=1, chain_head=500, head_age=9_999.0))
