"""The hot reads of every head straight from a JSON-RPC provider's answer, without web3's
method machinery.

web3's request and result formatters (parameter normalisers, checksummed addresses, attribute
dicts) cost more CPU than the calls themselves: at ten executions a second the logs of each
head, its base fee and `canRotate()` were a fifth of a keeper's CPU, most of it formatting;
idle, the account's balance and earnings read for the metrics cost as much as a block's sync.
Over HTTP (`AsyncHTTPProvider`, `keeper.chain.pool.RpcPool` included) these calls (and the
leader's sends, nonces and receipts) go to the provider as plain JSON-RPC and only the fields
the node uses are read from the answer; an error answer raises what web3 raises for it. Any
other provider (eth-tester in process) goes through web3 as before, and
tests/node/test_jsonrpc_reads.py checks both give the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3._utils.error_formatters_utils import raise_contract_logic_error_on_revert
from web3._utils.validation import validate_rpc_response_and_raise_if_error
from web3.exceptions import BlockNotFound, TransactionNotFound
from web3.types import RPCEndpoint


def json_provider(w3: AsyncWeb3[Any]) -> AsyncHTTPProvider | None:
    """The provider when it speaks JSON-RPC over HTTP; None for one web3 must format for."""
    provider = w3.provider
    return provider if isinstance(provider, AsyncHTTPProvider) else None


async def request(provider: AsyncHTTPProvider, method: str, params: list[Any]) -> Any:
    """The result of one call; an error answer raises web3's exception for it (Web3RPCError
    and its kinds with the provider's message; ContractLogicError for a reverted eth_call), as
    the same call through web3 would."""
    response = await provider.make_request(RPCEndpoint(method), params)
    formatters = raise_contract_logic_error_on_revert if method == "eth_call" else None
    validate_rpc_response_and_raise_if_error(response, formatters, params=params)
    return response.get("result")


def hex_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """An eth_getLogs filter with block numbers as the hex quantities JSON-RPC takes."""
    out = dict(params)
    for key in ("fromBlock", "toBlock"):
        if isinstance(out.get(key), int):
            out[key] = hex(out[key])
    return out


def parse_log(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A log as the node reads it: numbers as ints, hashes, topics and data as bytes, the
    address as the provider wrote it (every reader compares it case-insensitively)."""
    return {
        "address": raw["address"],
        "topics": [bytes(HexBytes(t)) for t in raw["topics"]],
        "data": bytes(HexBytes(raw["data"])),
        "blockNumber": int(raw["blockNumber"], 16),
        "logIndex": int(raw["logIndex"], 16),
        "blockHash": bytes(HexBytes(raw["blockHash"])),
        "transactionHash": bytes(HexBytes(raw["transactionHash"])),
    }


async def get_logs(w3: AsyncWeb3[Any], params: Mapping[str, Any]) -> list[Any]:
    """eth_getLogs: parsed by `parse_log` over HTTP, web3's answer otherwise."""
    provider = json_provider(w3)
    if provider is None:
        return list(await w3.eth.get_logs(params))  # type: ignore[arg-type]
    result = await request(provider, "eth_getLogs", [hex_params(params)])
    return [parse_log(raw) for raw in result or []]


async def block_fees(w3: AsyncWeb3[Any], number: int) -> tuple[int | None, int | None]:
    """(baseFeePerGas, gasLimit) of a block (None for a field the chain lacks); BlockNotFound
    when the provider does not have the block, as web3's get_block."""
    provider = json_provider(w3)
    if provider is None:
        block = await w3.eth.get_block(number)
        fee, limit = block.get("baseFeePerGas"), block.get("gasLimit")
        return (None if fee is None else int(fee), None if limit is None else int(limit))
    result = await request(provider, "eth_getBlockByNumber", [hex(number), False])
    if not isinstance(result, Mapping):
        raise BlockNotFound(f"Block with id: '{number}' not found.")
    fee, limit = result.get("baseFeePerGas"), result.get("gasLimit")
    return (None if fee is None else int(fee, 16), None if limit is None else int(limit, 16))


async def call(w3: AsyncWeb3[Any], to: str, data: str) -> bytes:
    """eth_call at the latest block of fixed calldata; a revert raises as through web3."""
    provider = json_provider(w3)
    if provider is None:
        return bytes(await w3.eth.call({"to": to, "data": data}))  # type: ignore[typeddict-item]
    result = await request(provider, "eth_call", [{"to": to, "data": data}, "latest"])
    return bytes(HexBytes(result or "0x"))


async def balance(w3: AsyncWeb3[Any], address: str) -> int:
    """eth_getBalance at the latest block, in wei."""
    provider = json_provider(w3)
    if provider is None:
        return int(await w3.eth.get_balance(address))  # type: ignore[arg-type]
    return int(await request(provider, "eth_getBalance", [address, "latest"]), 16)


async def receipt(w3: AsyncWeb3[Any], tx_hash: bytes) -> dict[str, int] | None:
    """A mined transaction's status, block number and gas used; None while it is not mined
    (or not known)."""
    provider = json_provider(w3)
    if provider is None:
        try:
            found: Any = await w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None
    else:
        found = await request(provider, "eth_getTransactionReceipt", ["0x" + tx_hash.hex()])
        if not isinstance(found, Mapping):
            return None
    return {key: _int(found[key]) for key in ("status", "blockNumber", "gasUsed")}


async def transaction_count(w3: AsyncWeb3[Any], address: str, block: str) -> int:
    """eth_getTransactionCount of `address` at `block` ("latest", "pending")."""
    provider = json_provider(w3)
    if provider is None:
        return int(await w3.eth.get_transaction_count(address, block))  # type: ignore[arg-type]
    return int(await request(provider, "eth_getTransactionCount", [address, block]), 16)


async def send_raw_transaction(w3: AsyncWeb3[Any], raw: bytes) -> None:
    """eth_sendRawTransaction; the node's refusal raises as through web3."""
    provider = json_provider(w3)
    if provider is None:
        await w3.eth.send_raw_transaction(raw)
        return
    await request(provider, "eth_sendRawTransaction", ["0x" + raw.hex()])


def _int(value: Any) -> int:
    """A quantity as web3 gives it (int) or as JSON-RPC writes it (hex text)."""
    return int(value, 16) if isinstance(value, str) else int(value)


def parse_fees(result: object) -> tuple[int | None, int | None]:
    """(baseFeePerGas, gasLimit) of a newHeads message or a raw block; None for a field it
    lacks (a chain without EIP-1559) or that is not a number."""
    if not isinstance(result, Mapping):
        return None, None
    return _quantity(result.get("baseFeePerGas")), _quantity(result.get("gasLimit"))


def _quantity(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None
