"""`keeper deploy`: the network's two contracts, and the deployment file the other commands read."""

from __future__ import annotations

import argparse
from pathlib import Path

from keeper.chain.contracts import DeployParams, deploy_contracts
from keeper.cli.chain_io import chain_step, signing_web3
from keeper.config import Settings
from keeper.core.units import parse_amount
from keeper.errors import ConfigError


async def deploy(settings: Settings, args: argparse.Namespace) -> int:
    # Checked before anything is sent: the file of an existing network is not lost to a typo.
    if Path(args.out).exists() and not args.force:
        raise ConfigError(f"{args.out} exists: pass --force to overwrite it")
    if args.turn_blocks < 1:
        raise ConfigError(f"--turn-blocks must be at least 1, got {args.turn_blocks}")
    params = DeployParams(
        min_stake=parse_amount(args.min_stake),
        unbonding_period=args.unbonding_period,
        epoch_length=args.epoch_length,
        target_quorum_size=args.quorum_size,
        turn_blocks=args.turn_blocks,
        gas_price_cap=parse_amount(args.gas_price_cap),
        max_priority_fee=parse_amount(args.max_priority_fee),
        premium=parse_amount(args.premium),
    )
    w3, account = await signing_web3(settings)
    async with chain_step("deploy"):
        deployment = await deploy_contracts(w3, account.address, params)
    try:
        Path(args.out).write_text(deployment.to_json())
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"KeeperRegistry {deployment.registry}")
    print(f"TaskManager    {deployment.task_manager}")
    print(f"chain {deployment.chain_id}, block {deployment.block}; wrote {args.out}")
    return 0
