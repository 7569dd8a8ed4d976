"""The operator and job-owner commands behind the CLI (everything but `run` and `devnet`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import aiohttp
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3
from web3.middleware import SignAndSendRawMiddlewareBuilder
from web3.types import Wei

from keeper.chain.contracts import Deployment, DeployParams, bind, deploy_contracts, transact
from keeper.chain.rpc import connect, rpc_guard
from keeper.config import Settings, load_account
from keeper.core.units import format_ether, parse_amount
from keeper.errors import ConfigError, KeeperError, RpcUnavailable


async def signing_web3(settings: Settings) -> tuple[AsyncWeb3[Any], LocalAccount]:
    """An AsyncWeb3 that signs this operator's transactions locally."""
    account = load_account(settings)
    w3 = connect(settings.rpc_url)
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
    async with rpc_guard(f"connect to {settings.rpc_url}"):
        await w3.eth.chain_id
    return w3, account


async def load_deployment(settings: Settings, w3: AsyncWeb3[Any]) -> Deployment:
    deployment = Deployment.load(Path(settings.deployment))
    async with rpc_guard("chain id"):
        chain_id = int(await w3.eth.chain_id)
    if chain_id != deployment.chain_id:
        raise ConfigError(
            f"deployment {settings.deployment} is for chain {deployment.chain_id}, "
            f"but the RPC is chain {chain_id}"
        )
    return deployment


async def deploy(settings: Settings, args: argparse.Namespace) -> int:
    w3, account = await signing_web3(settings)
    params = DeployParams(
        min_stake=parse_amount(args.min_stake),
        unbonding_period=args.unbonding_period,
        epoch_length=args.epoch_length,
        target_quorum_size=args.quorum_size,
        gas_price_cap=parse_amount(args.gas_price_cap),
        premium=parse_amount(args.premium),
    )
    async with rpc_guard("deploy"):
        deployment = await deploy_contracts(w3, account.address, params)
    Path(args.out).write_text(deployment.to_json())
    print(f"KeeperRegistry {deployment.registry}")
    print(f"TaskManager    {deployment.task_manager}")
    print(f"chain {deployment.chain_id}, block {deployment.block}; wrote {args.out}")
    return 0


async def register(settings: Settings, args: argparse.Namespace) -> int:
    w3, account = await signing_web3(settings)
    deployment = await load_deployment(settings, w3)
    stake = parse_amount(args.stake)
    if not args.endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint must be an http(s) URL, got {args.endpoint!r}")
    async with rpc_guard("balance"):
        balance = int(await w3.eth.get_balance(account.address))
    if balance < stake:
        raise KeeperError(
            f"insufficient funds: {account.address} holds {format_ether(balance)}, "
            f"staking {format_ether(stake)}"
        )
    registry = bind(w3, deployment).registry
    async with rpc_guard("register"):
        receipt = await transact(
            w3,
            registry.functions.register(args.endpoint),
            {"from": account.address, "value": Wei(stake)},
        )
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
