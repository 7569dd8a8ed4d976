"""Several JSON-RPC endpoints as one web3 provider, each used within a hosted provider's limits.

Per endpoint: a token bucket (requests a second, with a burst), a bound on requests in flight,
and a pause when the provider answers HTTP 429: as long as its `Retry-After` asks, else an
exponential backoff (web3's own retry ignores `Retry-After` and retries at once). A transport
failure or a 5xx rests the endpoint with a backoff and sends the request to the next one;
`prefer_next` (the follower calls it on a lagging `latest`) moves later requests to the next one
too. An endpoint's URL never appears in what this module logs or raises (the API key is in it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
from eth_typing import URI
from web3 import AsyncHTTPProvider
from web3._utils.batching import sort_batch_response_by_response_ids
from web3.types import RPCEndpoint, RPCResponse

from keeper.chain.rpc import TRANSPORT_ERRORS, LoopSessionManager
from keeper.core.backoff import compute_backoff, compute_retry_delay, parse_retry_after
from keeper.core.ratelimit import RateLimit, TokenBuckets
from keeper.core.redact import redact_url

log = logging.getLogger(__name__)

THROTTLED = 429
NOT_THERE_RETRIES = 3  # asks for a block a backend lacked, after the first
NOT_THERE_FIRST = 0.1  # seconds before the first of them, doubling
_NOT_THERE = ("header not found", "unknown block", "block not found")
RETRIES = 6  # attempts after the first, over all endpoints, before the request fails


@dataclass(frozen=True)
class EndpointLimits:
    """What one endpoint is asked at most: `per_second` requests (bursts of `burst`), and
    `concurrency` in flight. A JSON-RPC batch is one request."""

    per_second: float = 50.0
    burst: float = 100.0
    concurrency: int = 8

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("an endpoint needs a concurrency of at least 1")
        RateLimit(self.per_second, self.burst)  # its own checks


@dataclass
class Endpoint:
    """One URL's state; `name` is the redacted URL, safe to show."""

    url: str
    name: str
    bucket: TokenBuckets
    gate: asyncio.Semaphore
    resting_until: float = 0.0  # after a 429 or a failure: no request before this time
    failures: int = 0  # consecutive failures, for the backoff
    requests: int = 0
    throttled: int = 0  # HTTP 429 answers
    failed: int = 0  # transport errors and 5xx
    waited: float = 0.0  # seconds spent waiting for the bucket or a Retry-After
    stats: dict[str, int] = field(default_factory=dict)


def is_not_there_yet(method: str, params: Any, response: Any) -> bool:
    """Whether `response` says a backend lacks a block by number that the caller named."""
    if not isinstance(response, dict):
        return False
    error = response.get("error")
    if isinstance(error, dict):
        message = str(error.get("message", "")).lower()
        return any(m in message for m in _NOT_THERE)
    if method == "eth_getBlockByNumber" and "result" in response and response["result"] is None:
        tag = params[0] if params else None
        return isinstance(tag, str) and tag.startswith("0x")
    return False


class RpcPool(AsyncHTTPProvider):
    """An AsyncHTTPProvider over several URLs (the first preferred), with limits per URL."""

    def __init__(
        self,
        urls: Sequence[str],
        limits: EndpointLimits | None = None,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retries: int = RETRIES,
    ) -> None:
        if not urls:
            raise ValueError("an RPC pool needs at least one URL")
        # web3's retry would retry at once, 429 included: this class retries instead.
        super().__init__(
            urls[0], request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        self._request_session_manager = LoopSessionManager()
        self.endpoint_uri = URI(redact_url(urls[0]))  # what web3 may quote; requests use .url
        self.limits = limits or EndpointLimits()
        self._clock = clock
        self._sleep = sleep
        self._retries = retries
        self.endpoints = [
            Endpoint(
                url=url,
                name=redact_url(url),
                bucket=TokenBuckets(RateLimit(self.limits.per_second, self.limits.burst), 1),
                gate=asyncio.Semaphore(self.limits.concurrency),
            )
            for url in urls
        ]
        self._current = 0
        self.not_there = 0  # answers that lacked a block, asked again

    def __str__(self) -> str:
        return "RPC pool " + ", ".join(e.name for e in self.endpoints)

    @property
    def current(self) -> Endpoint:
        return self.endpoints[self._current]

    def prefer_next(self, reason: str) -> None:
        """Sends later requests to the next endpoint (no-op with one)."""
        if len(self.endpoints) < 2:
            return
        before = self.current.name
        self._current = (self._current + 1) % len(self.endpoints)
        log.warning("rpc.failover from=%s to=%s reason=%s", before, self.current.name, reason)

    def totals(self) -> dict[str, int]:
        """Requests, 429s and failures over every endpoint."""
        return {
            "requests": sum(e.requests for e in self.endpoints),
            "throttled": sum(e.throttled for e in self.endpoints),
            "failed": sum(e.failed for e in self.endpoints),
        }

    # ------------------------------------------------------------------ web3's seams

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        """One call (not web3's: its debug lines quote the URL, key and all). An answer that
        a block some backend already served is not there (`null` for a block by number,
        "header not found") is asked again a few times: behind a load balancer the next
        answer is likely another backend's, and a lagging one catches up within a block."""
        data = self.encode_rpc_request(method, params)
        for attempt in range(NOT_THERE_RETRIES + 1):
            response = self.decode_rpc_response(await self.post(data))
            if attempt == NOT_THERE_RETRIES or not is_not_there_yet(method, params, response):
                return response
            self.not_there += 1
            await self._sleep(compute_backoff(attempt, NOT_THERE_FIRST))
        raise AssertionError("unreachable: the last attempt returns")

    async def disconnect(self) -> None:
        """Closes the sessions of every endpoint (web3's says so with the URL at INFO)."""
        cache = self._request_session_manager.session_cache
        for _, session in cache.items():
            await session.close()
        cache.clear()

    async def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        raw = await self.post(self.encode_batch_rpc_request(batch_requests))
        response = self.decode_rpc_response(raw)
        if not isinstance(response, list):
            return response  # one error for the whole batch (too large, say)
        return cast(list[RPCResponse], sort_batch_response_by_response_ids(response))

    # ------------------------------------------------------------------ the policy

    async def post(self, data: bytes) -> bytes:
        """POSTs `data` within the endpoints' limits: a 429 is retried (after its Retry-After)
        up to `retries` times; a failure or 5xx is tried once on every other endpoint and
        once more (a node's loop retries at its next pass: a dead RPC must not hold it up)."""
        failures_left = len(self.endpoints)
        for attempt in range(self._retries + 1):
            endpoint = self._pick()
            await self._wait_turn(endpoint)
            async with endpoint.gate:
                endpoint.requests += 1
                try:
                    raw = await self._request_session_manager.async_make_post_request(
                        URI(endpoint.url), data, **self.get_request_kwargs()
                    )
                except aiohttp.ClientResponseError as exc:
                    if exc.status != THROTTLED and exc.status < 500:
                        raise
                    self._rest(endpoint, exc, attempt)
                    if exc.status != THROTTLED:
                        failures_left -= 1
                    if attempt == self._retries or failures_left < 0:
                        raise
                    continue
                except TRANSPORT_ERRORS as exc:
                    self._rest(endpoint, exc, attempt)
                    failures_left -= 1
                    if attempt == self._retries or failures_left < 0:
                        raise
                    continue
                endpoint.failures = 0
                return raw
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pick(self) -> Endpoint:
        """The preferred endpoint unless it rests and another one is ready sooner."""
        now = self._clock()
        preferred = self.current
        if preferred.resting_until <= now or len(self.endpoints) == 1:
            return preferred
        best = min(self.endpoints, key=lambda e: e.resting_until)
        if best is not preferred and best.resting_until < preferred.resting_until:
            return best
        return preferred

    async def _wait_turn(self, endpoint: Endpoint) -> None:
        """Sleeps until the endpoint is out of its rest and its bucket has a token."""
        while True:
            now = self._clock()
            wait = max(endpoint.resting_until - now, endpoint.bucket.acquire("", now))
            if wait <= 0:
                return
            endpoint.waited += wait
            await self._sleep(wait)

    def _rest(self, endpoint: Endpoint, exc: BaseException, attempt: int) -> None:
        throttled = isinstance(exc, aiohttp.ClientResponseError) and exc.status == THROTTLED
        if throttled:
            endpoint.throttled += 1
            headers = cast(aiohttp.ClientResponseError, exc).headers
            asked = parse_retry_after(headers.get("Retry-After") if headers else None, time.time())
            delay = compute_retry_delay(attempt, asked)
        else:
            endpoint.failed += 1
            endpoint.failures += 1
            delay = compute_backoff(endpoint.failures - 1)
        endpoint.resting_until = max(endpoint.resting_until, self._clock() + delay)
        what = "throttled" if throttled else type(exc).__name__
        log.info("rpc.retry endpoint=%s error=%s wait=%.2fs", endpoint.name, what, delay)
        if not throttled and endpoint is self.current:
            self.prefer_next(what)
