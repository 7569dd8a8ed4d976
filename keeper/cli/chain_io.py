"""What every chain-touching command shares: a signing or reading web3, the deployment, sending a
transaction with its revert named, and one-line chain errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address
from web3 import AsyncWeb3
from web3.contract.async_contract import AsyncContractFunction
from web3.exceptions import Web3Exception
from web3.middleware import SignAndSendRawMiddlewareBuilder
from web3.types import TxParams, TxReceipt, Wei

from keeper.chain.contracts import (
    Deployment,
    revert_of,
    transact,
)
from keeper.chain.rpc import connect, rpc_guard
from keeper.config import Settings, load_account
from keeper.core.units import format_ether
from keeper.errors import ChainError, ConfigError, ContractRevert, KeeperError


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
