"""A hosted RPC provider's emulator in front of anvil, with the limits a budget plan has.

- The API key in the URL path (`/v3/KEY`); any other path is 404.
- HTTP 429 with `Retry-After` (whole seconds) above `per_second` requests (bursts of `burst`);
  a JSON-RPC batch is one request, and a batch of more than `max_batch` calls is refused whole.
- `eth_getLogs` refused above `max_log_range` blocks ("exceed maximum block range: 1000") or
  `max_log_results` results ("query returned more than 10000 results").
- No `eth_subscribe` (HTTP only, so no WebSocket either).
- Two backends behind a load balancer, answering in turn: the second one's head is one or two
  blocks behind (alternately). It answers `latest` with its own head, `null` for blocks past its
  head, an EMPTY `eth_getLogs` for a range past its head (the answer that loses events), and
  "unknown block" for `eth_getLogs` by the hash of a block it does not have (as geth does).

It counts what it receives: HTTP requests, calls by method, 429s, and refusals.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

from keeper.core.ratelimit import RateLimit, TokenBuckets

RANGE_TOO_LARGE = "exceed maximum block range: {limit}"
TOO_MANY_RESULTS = "query returned more than {limit} results"


class ProviderEmulator:
    def __init__(
        self,
        upstream: str,
        key: str,
        *,
        per_second: float = 10.0,
        burst: float = 20.0,
        max_batch: int = 100,
        max_log_range: int = 1000,
        max_log_results: int = 10_000,
        lagging_backend: bool = True,
        block_hash_filter: bool = True,
    ) -> None:
        self.upstream = upstream
        self.key = key
        self.limit = RateLimit(per_second, burst)
        self._bucket = TokenBuckets(self.limit, 1)
        self.max_batch = max_batch
        self.max_log_range = max_log_range
        self.max_log_results = max_log_results
        self.lagging_backend = lagging_backend
        self.block_hash_filter = block_hash_filter  # False: refuses EIP-234 `blockHash` queries
        self.requests = 0  # HTTP requests received on the key's path
        self.throttled = 0  # of which answered 429
        self.calls: Counter[str] = Counter()  # JSON-RPC calls served, by method
        self.refused: Counter[str] = Counter()  # calls answered with a provider error, by reason
        self.empty_lagging_logs = 0  # eth_getLogs answered empty by the lagging backend
        # eth_getLogs calls by the first topics they filter on (0x-hex; "any" when unfiltered)
        self.log_topics: Counter[str] = Counter()
        self.port = 0
        self._turn = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3/{self.key}"

    async def start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post(f"/v3/{self.key}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        wait = self._bucket.acquire("", time.monotonic())
        if wait > 0:
            self.throttled += 1
            return web.Response(
                status=429,
                text="Too Many Requests",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        body = await request.json()
        calls = body if isinstance(body, list) else [body]
        if isinstance(body, list) and len(body) > self.max_batch:
            self.refused["batch"] += 1
            return web.json_response(
                _error(None, -32600, f"batch of {len(body)} exceeds the limit of {self.max_batch}")
            )
        self._turn += 1
        lag = 0 if not self.lagging_backend or self._turn % 2 else 1 + (self._turn // 2) % 2
        head = await self._head()
        answers = [await self._serve(call, head - lag if lag else None) for call in calls]
        return web.json_response(answers if isinstance(body, list) else answers[0])

    # ------------------------------------------------------------------ one call

    async def _serve(self, call: dict[str, Any], lag_head: int | None) -> Any:
        method = str(call.get("method"))
        call_id = call.get("id")
        params = list(call.get("params") or [])
        self.calls[method] += 1
        if method in ("eth_subscribe", "eth_unsubscribe"):
            self.refused["subscribe"] += 1
            return _error(call_id, -32601, f"the method {method} does not exist/is not available")
        if method == "eth_getLogs" and not self.block_hash_filter and "blockHash" in params[0]:
            self.refused["block_hash"] += 1
            return _error(call_id, -32602, "invalid argument 0: unknown field blockHash")
        if method == "eth_getLogs":
            self._count_topics(params)
            refusal = await self._refuse_logs(params, lag_head)
            if refusal is not None:
                return {**refusal, "id": call_id}
        if lag_head is not None:
            try:
                lagging = await self._lagging_answer(method, params, lag_head)
            except _NotThere:
                return _error(call_id, -32000, "header not found")
            if lagging is not None:
                return {"jsonrpc": "2.0", "id": call_id, "result": lagging[0]}
            if method == "eth_getLogs" and params and "blockHash" in params[0]:
                block = await self._upstream("eth_getBlockByHash", [params[0]["blockHash"], False])
                if block is None or int(block["number"], 16) > lag_head:
                    return _error(call_id, -32000, "unknown block")
        answer = await self._raw(call)
        result = answer.get("result")
        limit = self.max_log_results
        if method == "eth_getLogs" and isinstance(result, list) and len(result) > limit:
            self.refused["results"] += 1
            return _error(call_id, -32005, TOO_MANY_RESULTS.format(limit=limit))
        return answer

    def _count_topics(self, params: list[Any]) -> None:
        query = params[0] if params and isinstance(params[0], dict) else {}
        topics = query.get("topics") or [None]
        first = topics[0]
        if first is None:
            self.log_topics["any"] += 1
        else:
            wanted = [first] if isinstance(first, str) else first
            self.log_topics.update(str(t).lower() for t in wanted)

    async def _refuse_logs(self, params: list[Any], lag_head: int | None) -> Any:
        query = params[0] if params and isinstance(params[0], dict) else {}
        if "blockHash" in query:
            return None
        head = await self._head() if lag_head is None else lag_head
        first = _block_number(query.get("fromBlock", "latest"), head)
        last = _block_number(query.get("toBlock", "latest"), head)
        if last - first + 1 > self.max_log_range:
            self.refused["range"] += 1
            return _error(None, -32005, RANGE_TOO_LARGE.format(limit=self.max_log_range))
        return None

    async def _lagging_answer(
        self, method: str, params: list[Any], lag_head: int
    ) -> tuple[Any] | None:
        """The lagging backend's own answer, where it differs from the head's; None to forward."""
        if method == "eth_blockNumber":
            return (hex(lag_head),)
        if method == "eth_getBlockByNumber" and params:
            tag = params[0]
            if tag in ("latest", "pending", "safe", "finalized"):
                params[0] = hex(lag_head) if tag in ("latest", "pending") else tag
                return (await self._upstream(method, params),)
            if isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > lag_head:
                return (None,)
        if method == "eth_getBlockByHash" and params:
            block = await self._upstream(method, params)
            if block is not None and int(block["number"], 16) > lag_head:
                return (None,)
            return (block,)
        if method == "eth_getLogs" and params and "blockHash" not in params[0]:
            query = dict(params[0])
            first = _block_number(query.get("fromBlock", "latest"), lag_head)
            last = _block_number(query.get("toBlock", "latest"), lag_head)
            if last > lag_head:
                self.empty_lagging_logs += 1
                if first > lag_head:
                    return ([],)
                query["toBlock"] = hex(lag_head)
                return (await self._upstream(method, [query]),)
        if method in _AT_BLOCK and len(params) >= 2:
            tag = params[-1]
            if isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > lag_head:
                raise _NotThere
            if tag in ("latest", "pending"):
                params[-1] = hex(lag_head)
        if method == "eth_getTransactionReceipt" and params:
            receipt = await self._upstream(method, params)
            if receipt is not None and int(receipt["blockNumber"], 16) > lag_head:
                return (None,)
            return (receipt,)
        return None

    # ------------------------------------------------------------------ upstream

    async def _head(self) -> int:
        head = await self._upstream("eth_blockNumber", [])
        if head is None:
            raise web.HTTPBadGateway(text="upstream unavailable")
        return int(head, 16)

    async def _upstream(self, method: str, params: list[Any]) -> Any:
        answer = await self._raw({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        return answer.get("result")

    async def _raw(self, call: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        try:
            async with self._session.post(self.upstream, json=call) as up:
                answer: dict[str, Any] = await up.json(content_type=None)
                return answer
        except aiohttp.ClientError:  # the chain behind is gone (the test is ending)
            return _error(call.get("id"), -32603, "upstream unavailable")


_AT_BLOCK = ("eth_call", "eth_getBalance", "eth_getCode", "eth_getStorageAt")


class _NotThere(Exception):
    """The lagging backend lacks the block a call names."""


def _error(call_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}


def _block_number(tag: Any, head: int) -> int:
    if isinstance(tag, int):
        return tag
    if isinstance(tag, str) and tag.startswith("0x"):
        return int(tag, 16)
    return head  # latest, pending, safe, finalized: near enough for a range check
