"""Operator commands: register, and the node's status."""

from __future__ import annotations

import argparse
import json

import aiohttp

from keeper.chain.contracts import bind
from keeper.cli.chain_io import chain_step, load_deployment, send, signing_web3
from keeper.config import Settings
from keeper.core.units import format_ether, parse_amount
from keeper.errors import ConfigError, RpcUnavailable


async def register(settings: Settings, args: argparse.Namespace) -> int:
    w3, account = await signing_web3(settings)
    deployment = await load_deployment(settings, w3)
    stake = parse_amount(args.stake)
    if not args.endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint must be an http(s) URL, got {args.endpoint!r}")
    registry = bind(w3, deployment).registry
    async with chain_step("register"):
        receipt = await send(w3, account, registry.functions.register(args.endpoint), stake)
    print(
        f"registered {account.address} with {format_ether(stake)} at {args.endpoint} "
        f"(block {receipt['blockNumber']})"
    )
    return 0


async def status(url: str) -> int:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(url.rstrip("/") + "/v1/status") as response,
        ):
            body = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise RpcUnavailable(f"cannot reach the node at {url}: {type(exc).__name__}") from exc
    print(json.dumps(body, indent=2, sort_keys=True))
    return 0
