"""Whether a node is fit to serve, and why not: the rules behind `/healthz`.

A node that answers 200 while a day behind, while its provider serves an old head, or while its
key is not a keeper misleads its operator and every monitor. The rules are a pure function of
facts the node gathers (tests feed them directly); the first that fails is the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class HealthLimits:
    """How far a healthy node may drift. Defaults suit blocks of 1 to 12 seconds."""

    unhealthy_after: float = 15.0  # seconds since the last successful pass
    max_lag_blocks: int = 10  # blocks behind the RPC's head (a catch-up is unhealthy)
    max_head_age: float = 120.0  # seconds since the newest block's timestamp


@dataclass(frozen=True)
class HealthFacts:
    """What the node knows of itself at one moment."""

    seconds_since_pass: float
    last_error: str
    head: int | None  # the newest block applied to the store
    chain_head: int  # the RPC's latest block at the last pass
    head_age: float | None  # wall-clock seconds since `head`'s timestamp
    keeper_status: str | None  # this key's status in the registry, as folded ("active", ...)
    registered_endpoint: str | None  # the endpoint registered for this key
    listen_port: int  # the port the peer API listens on
    # the URL peers should use when it is not the listen address (a reverse proxy, NAT)
    public_endpoint: str | None = None


def assess_health(facts: HealthFacts, limits: HealthLimits) -> str | None:
    """None when healthy, else the first reason it is not, in words an operator can act on."""
    if facts.last_error:
        return facts.last_error
    if facts.seconds_since_pass > limits.unhealthy_after:
        return f"no successful pass for {facts.seconds_since_pass:.0f} s"
    if facts.head is None:
        return "not synced yet"
    behind = facts.chain_head - facts.head
    if behind > limits.max_lag_blocks:
        return f"{behind} blocks behind the RPC's head {facts.chain_head} (catching up)"
    if facts.head_age is not None and facts.head_age > limits.max_head_age:
        return (
            f"the newest block {facts.head} is {facts.head_age:.0f} s old: the chain stopped "
            "producing blocks, or the RPC serves a stale head"
        )
    if facts.keeper_status not in ("active", "exiting"):
        status = facts.keeper_status or "not registered"
        return f"this key is not a keeper in the registry ({status})"
    if facts.public_endpoint:
        if facts.registered_endpoint != facts.public_endpoint:
            return (
                f"the registered endpoint {facts.registered_endpoint} is not this node's "
                f"public endpoint {facts.public_endpoint}: peers cannot reach it"
            )
        return None
    port = _port_of(facts.registered_endpoint)
    if port is not None and facts.listen_port and port != facts.listen_port:
        return (
            f"the registered endpoint {facts.registered_endpoint} is not on the port this node "
            f"listens on ({facts.listen_port}): peers cannot reach it"
        )
    return None


def _port_of(endpoint: str | None) -> int | None:
    """The endpoint's port (80/443 by scheme when not written); None if it has none."""
    if not endpoint:
        return None
    try:
        parts = urlsplit(endpoint)
        if parts.port is not None:
            return parts.port
    except ValueError:
        return None
    return {"http": 80, "https": 443}.get(parts.scheme)
