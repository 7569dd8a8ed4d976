"""Read-only chain calls the node needs beyond following: resolvers and block lookups."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import RPCEndpoint

from keeper.chain.rpc import TRANSPORT_ERRORS, rpc_guard

log = logging.getLogger(__name__)

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
RESOLVER_GAS = 5_000_000
MAX_RPC_BATCH = 100  # calls per JSON-RPC batch unless the node's options say otherwise
BATCHES_IN_FLIGHT = 4  # batches of one call_resolvers sent at once


class ChainReader:
    """eth_call in batches, and block headers, with transport errors translated."""

    def __init__(self, w3: AsyncWeb3[Any]) -> None:
        self._w3 = w3

    async def call_resolvers(
        self, targets: Sequence[tuple[str, bytes]], block: int, max_batch: int = MAX_RPC_BATCH
    ) -> list[bytes | None]:
        """Raw return data of each (address, calldata) at `block`, called from the zero address
        (as Automation does), in JSON-RPC batches of at most `max_batch` calls where the
        provider supports batches (hosted providers refuse larger ones), a few batches in
        flight at once. A reverting call gives None."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        chunks = [targets[i : i + max_batch] for i in range(0, len(targets), max_batch)]
        if len(chunks) <= 1:
            return await self._call_batch(targets, block)
        gate = asyncio.Semaphore(BATCHES_IN_FLIGHT)

        async def one(chunk: Sequence[tuple[str, bytes]]) -> list[bytes | None]:
            async with gate:
                return await self._call_batch(chunk, block)

        parts = await asyncio.gather(*(one(chunk) for chunk in chunks))
        return [raw for part in parts for raw in part]

    async def _call_batch(
        self, targets: Sequence[tuple[str, bytes]], block: int
    ) -> list[bytes | None]:
        calls = [
            {"from": ZERO_ADDRESS, "to": to, "data": "0x" + data.hex(), "gas": RESOLVER_GAS}
            for to, data in targets
        ]
        async with rpc_guard("resolvers"):
            provider = self._w3.provider
            if len(calls) > 1 and isinstance(provider, AsyncHTTPProvider):
                # Raw batch at the provider: web3's batch helper raises for the whole batch
                # when one call reverts, and one bad resolver must not blind the others.
                requests = [(RPCEndpoint("eth_call"), [call, hex(block)]) for call in calls]
                responses = await provider.make_batch_request(requests)
                if isinstance(responses, list) and len(responses) == len(calls):
                    return [_batch_result(r) for r in responses]
                log.warning("resolvers.batch_failed response=%s", str(responses)[:200])
            out: list[bytes | None] = []
            for call in calls:
                try:
                    out.append(bytes(await self._w3.eth.call(call, block)))  # type: ignore[arg-type]
                except TRANSPORT_ERRORS:
                    raise
                except Exception:  # a reverting resolver means "not now", not a node failure
                    out.append(None)
            return out

    async def block(self, number: int) -> tuple[int, bytes, int]:
        """(number, hash, timestamp) of a block."""
        async with rpc_guard("block"):
            b = await self._w3.eth.get_block(number)
        return int(b["number"]), bytes(b["hash"]), int(b["timestamp"])


def _batch_result(response: Any) -> bytes | None:
    if isinstance(response, bytes | bytearray):
        return bytes(response)
    if isinstance(response, dict):
        if "error" in response:
            return None
        result = response.get("result")
        if isinstance(result, str):
            return bytes.fromhex(result[2:] if result.startswith("0x") else result)
    return None
