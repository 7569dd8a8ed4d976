"""New heads pushed by the RPC over a WebSocket (`eth_subscribe` newHeads), so a node starts on a
block when it is mined rather than at its next poll.

Only a wake-up: what the block holds is still read over HTTP by the follower, which checks
numbers, hashes and parents. Polling goes on beside it, so a lost subscription (an RPC without
WebSockets, an outage) costs latency, never a block; the watcher reconnects by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from hexbytes import HexBytes
from web3 import AsyncWeb3, WebSocketProvider

from keeper.chain.follower import Header
from keeper.chain.jsonrpc import parse_fees
from keeper.core.redact import redact_url

log = logging.getLogger(__name__)

RETRY_FIRST = 1.0
RETRY_MAX = 30.0


def parse_head(result: object) -> Header | None:
    """(number, hash, parent hash, timestamp) of a newHeads message; None if it lacks any."""
    if not isinstance(result, Mapping):  # web3 hands an AttributeDict, not a dict
        return None
    number, timestamp = result.get("number"), result.get("timestamp")
    block_hash, parent = result.get("hash"), result.get("parentHash")
    if not (isinstance(number, int) and isinstance(timestamp, int)):
        return None
    if not (isinstance(block_hash, bytes | str) and isinstance(parent, bytes | str)):
        return None
    hashes = bytes(HexBytes(block_hash)), bytes(HexBytes(parent))
    if any(len(h) != 32 for h in hashes):
        return None
    return number, hashes[0], hashes[1], timestamp


class HeadWatcher:
    """Calls `on_head(header)` for every head the RPC pushes, reconnecting with backoff."""

    def __init__(
        self,
        url: str,
        on_head: Callable[[Header], None],
        *,
        on_fees: Callable[[int, int | None, int | None], None] | None = None,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self._url = url
        self._on_head = on_head
        self._on_fees = on_fees  # a head's base fee and gas limit, which the push carries
        self._retry_first = retry_first
        self._retry_max = retry_max
        self.subscribed = False
        self.heads_seen = 0

    async def run(self) -> None:
        """Runs until cancelled; never raises otherwise."""
        delay = self._retry_first
        where = redact_url(self._url)  # a hosted RPC's path or user info may hold an API key
        failing = False
        while True:
            try:
                provider = WebSocketProvider(self._url, max_connection_retries=1)
                async with AsyncWeb3(provider) as w3:
                    await w3.eth.subscribe("newHeads")
                    self.subscribed = True
                    delay, failing = self._retry_first, False
                    log.info("heads.subscribed url=%s", where)
                    async for message in w3.socket.process_subscriptions():
                        result = message.get("result")
                        header = parse_head(result)
                        if header is not None:
                            self.heads_seen += 1
                            if self._on_fees is not None:
                                self._on_fees(header[0], *parse_fees(result))
                            self._on_head(header)
                log.info("heads.closed url=%s", where)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the socket means: poll, retry later
                # Said once per outage (an RPC without WebSockets would repeat it forever).
                level = logging.INFO if self.subscribed or not failing else logging.DEBUG
                log.log(
                    level,
                    "heads.unavailable url=%s error=%s retry_in=%.0fs (polling meanwhile)",
                    where,
                    type(exc).__name__,
                    delay,
                )
                failing = True
            self.subscribed = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)
