"""eth_getLogs as a hosted provider answers it: ranges it refuses, and backends that lack blocks.

- A range refused as too large, or for too many results, is split in halves until it passes;
  the span that passed is kept as the next ranges' size.
- An answer is checked against the headers' logs blooms: a block past the newest block the
  answer has logs of, whose bloom says it may hold a wanted log, is asked again by its hash
  (EIP-234), which a backend that does not have the block refuses ("unknown block") instead of
  answering empty. Without a usable bloom (eth-tester's is one byte) the answer is taken as is.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import Web3RPCError

from keeper.chain.jsonrpc import get_logs
from keeper.core.bloom import BLOOM_BYTES, is_any_log_possible

log = logging.getLogger(__name__)

# What providers say when a range is too large or holds too many logs (geth, erigon, Alchemy,
# Infura, QuickNode, Ankr, BlastAPI...); a rate-limit message is not one of them.
_TOO_MUCH = (
    "more than",
    "block range",
    "range is too large",
    "range too large",
    "too many",
    "exceed maximum",
    "exceeds maximum",
    "response size",
    "limited to",
    "query timeout",
)
_NOT_THERE = ("unknown block", "block not found", "header not found")


def is_too_much(message: str) -> bool:
    """Whether a provider's eth_getLogs error asks for a smaller range."""
    text = message.lower()
    return "rate" not in text and any(m in text for m in _TOO_MUCH)


def is_block_unknown(message: str) -> bool:
    """Whether a provider's error says the backend does not have the block (yet)."""
    text = message.lower()
    return any(m in text for m in _NOT_THERE)


class BlockNotYetServed(Exception):
    """The backend that answered lacks a block the follower already has a header of."""


@dataclass(frozen=True)
class LogQuery:
    """Addresses, and first topics when filtered by them (None: any)."""

    addresses: tuple[str, ...]
    topic0s: tuple[bytes, ...] | None = None

    def params(self) -> dict[str, Any]:
        query: dict[str, Any] = {"address": list(self.addresses)}
        if self.topic0s is not None:
            query["topics"] = [["0x" + t.hex() for t in self.topic0s]]
        return query

    def may_hold(self, bloom: bytes) -> bool:
        """Whether a block with this bloom may hold a wanted log (True when there is no bloom)."""
        if len(bloom) != BLOOM_BYTES:
            return False  # nothing to check against: the answer stands
        addresses = [bytes(HexBytes(a)) for a in self.addresses]
        return is_any_log_possible(bloom, addresses, self.topic0s)


class LogFetcher:
    """Fetches a query's logs over a range of blocks whose hashes and blooms are known."""

    def __init__(self, w3: AsyncWeb3[Any], max_span: int) -> None:
        self._w3 = w3
        self.span = max_span  # blocks per eth_getLogs; lowered when a provider refuses
        self.splits = 0
        self.rechecked = 0  # blocks asked again by hash
        self.asked: Counter[str] = Counter()  # eth_getLogs calls per address asked for

    async def fetch(
        self,
        query: LogQuery,
        first: int,
        last: int,
        hashes: Mapping[int, bytes],
        blooms: Mapping[int, bytes],
    ) -> list[Any]:
        """The logs of blocks first..last; BlockNotYetServed when a backend lacked a block.
        A block without a known bloom (a pushed head) is asked by hash, never by number."""
        self.asked.update(a.lower() for a in query.addresses)
        if first == last and first not in blooms:
            return await self._by_hash(query, first, hashes[first])
        logs: list[Any] = []
        start = first
        while start <= last:
            end = min(last, start + self.span - 1)
            for low, high, part in await self._range(query, start, end):
                logs.extend(part)
                # One answer is one backend's: one that had block n had every block below it.
                newest = max((int(raw["blockNumber"]) for raw in part), default=low - 1)
                for number in range(newest + 1, high + 1):
                    bloom = blooms.get(number)
                    if bloom is None or query.may_hold(bloom):
                        self.rechecked += 1
                        logs.extend(await self._by_hash(query, number, hashes[number]))
            start = end + 1
        return logs

    async def _range(
        self, query: LogQuery, first: int, last: int
    ) -> list[tuple[int, int, list[Any]]]:
        """(first, last, logs) of each answer the range took, split where it was refused."""
        params = {**query.params(), "fromBlock": first, "toBlock": last}
        try:
            return [(first, last, await get_logs(self._w3, params))]
        except Web3RPCError as exc:
            if not is_too_much(str(exc)) or first == last:
                raise
        middle = (first + last) // 2
        self.span = max(1, middle - first + 1)
        self.splits += 1
        log.info("sync.logs_split from=%d to=%d span=%d", first, last, self.span)
        return await self._range(query, first, middle) + await self._range(query, middle + 1, last)

    async def _by_hash(self, query: LogQuery, number: int, block_hash: bytes) -> list[Any]:
        params = {**query.params(), "blockHash": "0x" + block_hash.hex()}
        try:
            return await get_logs(self._w3, params)
        except Web3RPCError as exc:
            if is_block_unknown(str(exc)):
                raise BlockNotYetServed(str(exc)) from exc
            # A provider without EIP-234: the block by number, its answer taken as it is.
            log.info("sync.logs_by_hash_refused block=%d error=%s", number, str(exc)[:120])
            by_number = {**query.params(), "fromBlock": number, "toBlock": number}
            return await get_logs(self._w3, by_number)


def sorted_logs(logs: Sequence[Any]) -> list[Any]:
    """Logs in chain order (a recheck appends a block's logs after the range's)."""
    return sorted(logs, key=lambda raw: (int(raw["blockNumber"]), int(raw["logIndex"])))
