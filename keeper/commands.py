"""The operator and job-owner commands behind the CLI (everything but `run` and `devnet`)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address
from web3 import AsyncWeb3
from web3.contract.async_contract import AsyncContractFunction
from web3.exceptions import Web3Exception
from web3.middleware import SignAndSendRawMiddlewareBuilder
from web3.types import TxParams, TxReceipt, Wei

from keeper.chain.contracts import (
    Deployment,
    DeployParams,
    bind,
    deploy_contracts,
    revert_of,
    transact,
)
from keeper.chain.rpc import connect, rpc_guard
from keeper.config import Settings, load_account, warn_if_exposed
from keeper.core.units import format_ether, parse_amount
from keeper.errors import ChainError, ConfigError, ContractRevert, KeeperError, RpcUnavailable


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
    # Same chain id, no contract: typically a dev chain restarted since `keeper deploy`.
    async with rpc_guard("deployment code"):
        code = await w3.eth.get_code(to_checksum_address(deployment.task_manager))
    if not code:
        raise ConfigError(
            f"no TaskManager at {deployment.task_manager} on chain {chain_id}: "
            f"{settings.deployment} is stale (was the chain reset since `keeper deploy`?)"
        )
    return deployment


async def reading_web3(settings: Settings) -> AsyncWeb3[Any]:
    """An AsyncWeb3 for read-only commands: no key needed."""
    w3 = connect(settings.rpc_url)
    async with rpc_guard(f"connect to {settings.rpc_url}"):
        await w3.eth.chain_id
    return w3


def format_revert(revert: ContractRevert) -> str:
    """`TargetNotContract(0xAbC...)`: the custom error as a person reads it."""

    def show(value: Any) -> str:
        if isinstance(value, bytes | bytearray):
            return "0x" + bytes(value).hex()
        if isinstance(value, str) and is_hex_address(value):
            return str(to_checksum_address(value))
        return str(value)

    return f"{revert.error_name}({', '.join(show(a) for a in revert.args)})"


@asynccontextmanager
async def chain_step(operation: str) -> AsyncIterator[None]:
    """rpc_guard, plus: a revert becomes `<operation> reverted: Name(args)` and any other web3
    error one line naming the operation, so no chain failure reaches the user as a traceback."""
    try:
        async with rpc_guard(operation):
            yield
    except ContractRevert as exc:
        raise ChainError(f"{operation} reverted: {format_revert(exc)}") from exc
    except Web3Exception as exc:
        reason = " ".join(str(exc).split())
        raise ChainError(f"{operation} failed: {type(exc).__name__}: {reason}") from exc


async def send(
    w3: AsyncWeb3[Any],
    account: LocalAccount,
    fn: AsyncContractFunction,
    value: int = 0,
) -> TxReceipt:
    """Estimates the call (a revert comes back by name), checks that the sender can pay the
    value plus the worst-case gas (gas * maxFeePerGas), then sends it and waits for the receipt.
    The caller wraps this in `chain_step(operation)`."""
    balance = int(await w3.eth.get_balance(account.address))
    if balance < value:
        raise _insufficient(account.address, balance, value, None)
    params: TxParams = {"from": account.address, "value": Wei(value)}
    try:
        # A margin over the estimate: state can change before inclusion (a rotate() clearing
        # the registry's set-changed flag makes the next register cost ~17,000 more).
        gas = int(await fn.estimate_gas(params)) * 5 // 4 + 25_000
    except Exception as exc:
        revert = revert_of(exc)
        if revert is None:
            raise
        raise revert from exc
    block = await w3.eth.get_block("latest")
    if "baseFeePerGas" in block:
        tip = int(await w3.eth.max_priority_fee)
        price = tip + 2 * int(block["baseFeePerGas"])
        params |= {"maxFeePerGas": Wei(price), "maxPriorityFeePerGas": Wei(tip)}
    else:
        price = int(await w3.eth.gas_price)
        params["gasPrice"] = Wei(price)
    params["gas"] = gas
    if balance < value + gas * price:
        raise _insufficient(account.address, balance, value, gas * price)
    return await transact(w3, fn, params)


def _insufficient(address: str, balance: int, value: int, gas_cost: int | None) -> KeeperError:
    needs = f"at least {format_ether(value)}"
    if gas_cost is not None:
        needs = (
            f"{format_ether(value + gas_cost)} ({format_ether(value)} plus up to "
            f"{format_ether(gas_cost)} for gas)"
        )
    return KeeperError(
        f"insufficient funds: {address} holds {format_ether(balance)}, needs {needs}"
    )


async def deploy(settings: Settings, args: argparse.Namespace) -> int:
    # Checked before anything is sent: the file of an existing network is not lost to a typo.
    if Path(args.out).exists() and not args.force:
        raise ConfigError(f"{args.out} exists: pass --force to overwrite it")
    params = DeployParams(
        min_stake=parse_amount(args.min_stake),
        unbonding_period=args.unbonding_period,
        epoch_length=args.epoch_length,
        target_quorum_size=args.quorum_size,
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


async def account_new(settings: Settings) -> int:
    """Creates an encrypted keystore (never overwriting a file) and prints its address."""
    keystore, password = _keystore_paths(settings)
    path = Path(keystore)
    if path.exists():
        raise ConfigError(f"keystore {keystore} already exists; refusing to overwrite it")
    warn_if_exposed(password, "password file")
    try:
        secret = Path(password).read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    if not secret:
        raise ConfigError(f"password file {password} is empty")
    account: LocalAccount = Account.create()
    encrypted = json.dumps(Account.encrypt(account.key, secret))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"keystore {keystore} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise ConfigError(f"cannot write keystore {keystore}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as out:
        out.write(encrypted + "\n")
    print(account.address)
    return 0


async def account_show(settings: Settings) -> int:
    """Decrypts the keystore (or reads the key) and prints the address."""
    _keystore_paths(settings)
    print(load_account(settings).address)
    return 0


def _keystore_paths(settings: Settings) -> tuple[str, str]:
    if not settings.keystore or not settings.password_file:
        raise ConfigError("give --keystore FILE and --password-file FILE")
    return settings.keystore, settings.password_file
