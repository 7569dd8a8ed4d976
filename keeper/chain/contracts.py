"""Contract bindings from the committed artifacts, deployment, and revert decoding."""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.contract.async_contract import AsyncContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxParams, TxReceipt

from keeper.chain.artifacts import error_selectors, load_artifact
from keeper.core.revert_reasons import COMMON_ERROR_SIGNATURES, compute_error_table
from keeper.errors import ConfigError, ContractRevert, TransactionFailed

# TaskManager.JobView, in order.
JOB_VIEW_FIELDS = (
    "owner",
    "status",
    "kind",
    "target",
    "gasLimit",
    "thresholdBps",
    "startTime",
    "endTime",
    "maxExecutions",
    "interval",
    "mode",
    "balance",
    "round",
    "lastCursor",
    "callDataHash",
    "forwarder",
    "maxGasPrice",
    "haltBlock",
    "pendingOwner",
    "failures",
    "maxFailures",
)

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
PANIC_SELECTOR = bytes.fromhex("4e487b71")


@dataclass(frozen=True)
class DeployParams:
    """Constructor arguments of both contracts."""

    min_stake: int = 10**18
    unbonding_period: int = 3600
    epoch_length: int = 3600
    target_quorum_size: int = 4
    turn_blocks: int = 5
    gas_price_cap: int = 100 * 10**9
    max_priority_fee: int = 2 * 10**9
    premium: int = 10**14


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live; written by `keeper deploy`, read by every other command."""

    chain_id: int
    registry: str
    task_manager: str
    block: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        try:
            data = json.loads(text)
            return cls(
                chain_id=int(data["chain_id"]),
                registry=to_checksum_address(data["registry"]),
                task_manager=to_checksum_address(data["task_manager"]),
                block=int(data["block"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"malformed deployment file: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls.from_json(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read deployment file {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Contracts:
    """Bound contract objects of one deployment."""

    registry: AsyncContract
    task_manager: AsyncContract


def contract_at(w3: AsyncWeb3[Any], name: str, address: str) -> AsyncContract:
    return w3.eth.contract(address=to_checksum_address(address), abi=load_artifact(name).abi)


def bind(w3: AsyncWeb3[Any], deployment: Deployment) -> Contracts:
    return Contracts(
        registry=contract_at(w3, "KeeperRegistry", deployment.registry),
        task_manager=contract_at(w3, "TaskManager", deployment.task_manager),
    )


_ALL_ERRORS: dict[bytes, tuple[str, list[str]]] = {}


def _known_errors() -> dict[bytes, tuple[str, list[str]]]:
    """The network's own errors (every artifact's) over the errors targets commonly use."""
    if not _ALL_ERRORS:
        _ALL_ERRORS.update(compute_error_table(COMMON_ERROR_SIGNATURES))
        for name in (
            "KeeperRegistry",
            "TaskManager",
            "JobForwarderRuntime",
            "DemoTarget",
            "MaliciousTarget",
        ):
            _ALL_ERRORS.update(error_selectors(load_artifact(name).abi))
    return _ALL_ERRORS


def decode_revert_data(data: bytes) -> ContractRevert:
    """Names a revert from its raw data using every artifact's custom errors and the common
    errors of keeper.core.revert_reasons."""
    selector, body = data[:4], data[4:]
    if selector == ERROR_STRING_SELECTOR:
        return ContractRevert("Error", tuple(abi_decode(["string"], body)))
    if selector == PANIC_SELECTOR:
        return ContractRevert("Panic", tuple(abi_decode(["uint256"], body)))
    known = _known_errors().get(selector)
    if known is None:
        return ContractRevert("Unknown", (data.hex(),))
    name, types = known
    try:
        return ContractRevert(name, tuple(abi_decode(types, body)))
    except Exception:  # malformed revert data still deserves a name
        return ContractRevert(name, ())


def translate_revert(exc: ContractLogicError) -> ContractRevert:
    """web3's revert exception -> our ContractRevert with the custom error decoded."""
    raw = exc.data
    if isinstance(raw, str) and raw.startswith("0x"):
        return decode_revert_data(bytes.fromhex(raw[2:]))
    if isinstance(raw, bytes | bytearray):
        return decode_revert_data(bytes(raw))
    if isinstance(exc, ContractCustomError):
        return ContractRevert("Unknown", (str(raw),))
    return ContractRevert("Error", (str(exc.message or exc),))


_TESTER_PREFIX = "execution reverted: "


def revert_of(exc: BaseException) -> ContractRevert | None:
    """The decoded revert inside any provider's exception, or None when it is not a revert.

    web3 raises ContractLogicError for JSON-RPC nodes; the in-process eth-tester provider raises
    its own TransactionFailed whose message holds the raw revert bytes.
    """
    if isinstance(exc, ContractRevert):
        return exc
    if isinstance(exc, ContractLogicError):
        return translate_revert(exc)
    message = str(exc.args[0]) if exc.args else ""
    if type(exc).__name__ == "TransactionFailed" and message.startswith(_TESTER_PREFIX):
        raw = message[len(_TESTER_PREFIX) :]
        try:
            data = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return ContractRevert("Error", (raw,))
        if isinstance(data, bytes):
            return decode_revert_data(data) if data else ContractRevert("Empty", ())
        return ContractRevert("Error", (str(data),))
    return None


async def transact(w3: AsyncWeb3[Any], fn: AsyncContractFunction, params: TxParams) -> TxReceipt:
    """Sends a contract call from an account the provider (or a signing middleware) controls.

    A revert during estimation or in the receipt becomes a ContractRevert / TransactionFailed.
    """
    try:
        tx_hash = await fn.transact(params)
    except Exception as exc:
        revert = revert_of(exc)
        if revert is None:
            raise
        raise revert from exc
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        raise TransactionFailed(f"transaction {tx_hash.hex()} reverted")
    return receipt


async def call(
    fn: AsyncContractFunction, params: TxParams | None = None, block: Any = "latest"
) -> Any:
    """eth_call with the revert decoded."""
    try:
        return await fn.call(params or {}, block_identifier=block)
    except Exception as exc:
        revert = revert_of(exc)
        if revert is None:
            raise
        raise revert from exc


LOG_PAGE_BLOCKS = 10_000  # many public RPCs refuse eth_getLogs over wider ranges


async def get_logs_paged(
    event: Any,
    from_block: int,
    argument_filters: dict[str, Any] | None = None,
    *,
    to_block: int | None = None,
    page: int = LOG_PAGE_BLOCKS,
) -> list[Any]:
    """`event.get_logs` from `from_block` to `to_block` (default: the head) in ranges of at
    most `page` blocks, in chain order."""
    if to_block is None:
        to_block = int(await event.w3.eth.block_number)
    logs: list[Any] = []
    for lo in range(from_block, to_block + 1, page):
        hi = min(to_block, lo + page - 1)
        logs += await event.get_logs(
            from_block=lo, to_block=hi, argument_filters=argument_filters or {}
        )
    return logs


async def _deploy(w3: AsyncWeb3[Any], name: str, sender: str, *args: Any) -> str:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    try:
        tx_hash = await factory.constructor(*args).transact({"from": sender})
    except Exception as exc:
        revert = revert_of(exc)
        if revert is None:
            raise
        raise revert from exc
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise TransactionFailed(f"deployment of {name} failed")
    return str(receipt["contractAddress"])


async def deploy_contract(w3: AsyncWeb3[Any], name: str, sender: str, *args: Any) -> AsyncContract:
    """Deploys any artifact (demo targets included) and returns it bound."""
    return contract_at(w3, name, await _deploy(w3, name, sender, *args))


async def deploy_contracts(w3: AsyncWeb3[Any], sender: str, params: DeployParams) -> Deployment:
    """Deploys KeeperRegistry and TaskManager and binds them to each other."""
    registry_address = await _deploy(
        w3,
        "KeeperRegistry",
        sender,
        params.min_stake,
        params.unbonding_period,
        params.epoch_length,
        params.target_quorum_size,
        params.turn_blocks,
    )
    tm_address = await _deploy(
        w3,
        "TaskManager",
        sender,
        registry_address,
        params.gas_price_cap,
        params.max_priority_fee,
        params.premium,
    )
    registry = contract_at(w3, "KeeperRegistry", registry_address)
    receipt = await transact(w3, registry.functions.setTaskManager(tm_address), {"from": sender})
    return Deployment(
        chain_id=await w3.eth.chain_id,
        registry=registry_address,
        task_manager=tm_address,
        block=int(receipt["blockNumber"]),
    )
