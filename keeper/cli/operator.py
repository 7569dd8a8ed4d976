"""Operator commands: register, add stake, move the endpoint, withdraw earnings, exit.

Each checks what the registry would refuse before sending (a keeper that is not registered,
an exit not yet unbonded), so the refusal says what to do rather than naming a custom error.
"""

from __future__ import annotations

import argparse
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from keeper.chain.contracts import Contracts, bind, call
from keeper.cli.chain_io import chain_step, load_deployment, send, signing_web3
from keeper.cli.formatting import format_when
from keeper.cli.job import tx_line
from keeper.cli.status import ACTIVE, EXITING, REGISTRATION
from keeper.config import Settings
from keeper.core.units import format_ether, parse_amount
from keeper.errors import ConfigError, InvalidAmount, ValidationError


def parse_endpoint(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint must be an http(s) URL, got {text!r}")
    return text


async def _operator(settings: Settings) -> tuple[AsyncWeb3[Any], LocalAccount, Contracts]:
    w3, account = await signing_web3(settings)
    deployment = await load_deployment(settings, w3)
    return w3, account, bind(w3, deployment)


async def _registration(registry: AsyncContract, address: str) -> tuple[int, int, int, int]:
    """keeperInfo: stake, status, exit epoch, unbondAt."""
    stake, status, exit_epoch, unbond_at, _endpoint = await call(
        registry.functions.keeperInfo(address)
    )
    return int(stake), int(status), int(exit_epoch), int(unbond_at)


def _require_active(status: int, address: str, what: str) -> None:
    if status != ACTIVE:
        raise ValidationError(
            f"{address} is {REGISTRATION[status]}, not an active keeper: cannot {what}"
        )


async def register(settings: Settings, args: argparse.Namespace) -> int:
    stake = parse_amount(args.stake)
    endpoint = parse_endpoint(args.endpoint)
    w3, account, contracts = await _operator(settings)
    async with chain_step("register"):
        receipt = await send(w3, account, contracts.registry.functions.register(endpoint), stake)
    print(
        f"registered {account.address} with {format_ether(stake)} at {endpoint} "
        f"(block {receipt['blockNumber']})"
    )
    return 0


async def stake_add(settings: Settings, args: argparse.Namespace) -> int:
    amount = parse_amount(args.amount)
    if amount == 0:
        raise InvalidAmount(f"invalid amount {args.amount!r}: must be more than zero")
    w3, account, contracts = await _operator(settings)
    registry = contracts.registry
    async with chain_step("addStake"):
        _stake, status, _, _ = await _registration(registry, account.address)
        _require_active(status, account.address, "add stake")
        receipt = await send(w3, account, registry.functions.addStake(), amount)
        total, _, _, _ = await _registration(registry, account.address)
    print(
        f"added {format_ether(amount)} to the stake of {account.address}: now "
        f"{format_ether(total)}, counted from the next epoch"
    )
    print(tx_line(receipt))
    return 0


async def endpoint_set(settings: Settings, args: argparse.Namespace) -> int:
    endpoint = parse_endpoint(args.url)
    w3, account, contracts = await _operator(settings)
    registry = contracts.registry
    async with chain_step("setEndpoint"):
        _stake, status, _, _ = await _registration(registry, account.address)
        if status not in (ACTIVE, EXITING):
            raise ValidationError(
                f"{account.address} is {REGISTRATION[status]}: only a registered keeper has an "
                "endpoint (`keeper register`)"
            )
        receipt = await send(w3, account, registry.functions.setEndpoint(endpoint))
    print(f"peers now reach {account.address} at {endpoint}")
    print(tx_line(receipt))
    return 0


async def withdraw_earnings(settings: Settings, args: argparse.Namespace) -> int:
    w3, account, contracts = await _operator(settings)
    tm = contracts.task_manager
    async with chain_step("withdrawEarnings"):
        earned = int(await call(tm.functions.earnings(account.address)))
        if earned == 0:
            raise ValidationError(f"{account.address} has no earnings to withdraw")
        receipt = await send(w3, account, tm.functions.withdrawEarnings())
    print(f"withdrew {format_ether(earned)} of earnings to {account.address}")
    print(tx_line(receipt))
    return 0


async def exit_network(settings: Settings, args: argparse.Namespace) -> int:
    """`keeper exit`: leave the keeper set (unbonding starts); `--withdraw`: take the stake
    back once unbonded."""
    w3, account, contracts = await _operator(settings)
    registry = contracts.registry
    address = account.address
    async with chain_step("withdraw" if args.withdraw else "requestExit"):
        stake, status, exit_epoch, unbond_at = await _registration(registry, address)
        now = int((await w3.eth.get_block("latest"))["timestamp"])
        if args.withdraw:
            if status == ACTIVE:
                raise ValidationError(f"{address} has not asked to exit: run `keeper exit` first")
            if status != EXITING:
                raise ValidationError(f"{address} is {REGISTRATION[status]}: no stake to withdraw")
            epoch, start_block, *_ = await call(registry.functions.epochState())
            grace_end = int(start_block) + int(await call(registry.functions.EPOCH_GRACE_BLOCKS()))
            if epoch <= exit_epoch or int(await w3.eth.block_number) <= grace_end:
                raise ValidationError(
                    f"{address} still serves through epoch {exit_epoch} (now {epoch}), and "
                    f"{grace_end - int(start_block)} blocks into the next; its stake unbonds at "
                    f"{format_when(unbond_at, now)}"
                )
            if now < unbond_at:
                raise ValidationError(
                    f"{address}'s stake is unbonding until {format_when(unbond_at, now)}"
                )
            receipt = await send(w3, account, registry.functions.withdraw())
            print(f"withdrew the stake of {address}: {format_ether(stake)}")
        else:
            if status == EXITING:
                raise ValidationError(
                    f"{address} is already exiting (through epoch {exit_epoch}); its stake "
                    f"unbonds at {format_when(unbond_at, now)}: then `keeper exit --withdraw`"
                )
            _require_active(status, address, "exit")
            receipt = await send(w3, account, registry.functions.requestExit())
            _, _, exit_epoch, unbond_at = await _registration(registry, address)
            print(
                f"{address} leaves the keeper set after epoch {exit_epoch}; its stake of "
                f"{format_ether(stake)} unbonds at {format_when(unbond_at, now)}: then "
                "`keeper exit --withdraw`"
            )
    print(tx_line(receipt))
    return 0
