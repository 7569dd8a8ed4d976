"""Connecting to a JSON-RPC endpoint, and translating transport failures at this boundary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from eth_typing import URI
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3._utils.http_session_manager import HTTPSessionManager
from web3.exceptions import ProviderConnectionError, TimeExhausted, Web3RPCError

from keeper.core.redact import redact_urls
from keeper.errors import RpcUnavailable

if TYPE_CHECKING:
    from keeper.chain.pool import EndpointLimits

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    ProviderConnectionError,
    TimeExhausted,
)


@asynccontextmanager
async def rpc_guard(operation: str) -> AsyncIterator[None]:
    """Turns transport failures inside the block into RpcUnavailable (contract reverts and
    other errors pass through untouched). The message names no URL's path, query or user info:
    that is where hosted providers put the API key, and transport errors quote the URL."""
    try:
        yield
    except RpcUnavailable:
        raise
    except TRANSPORT_ERRORS as exc:
        raise RpcUnavailable(
            redact_urls(f"{operation}: RPC unreachable ({type(exc).__name__}: {exc})")
        ) from exc
    except Web3RPCError as exc:
        message = str(exc)
        if "timeout" in message.lower() or "unavailable" in message.lower():
            raise RpcUnavailable(redact_urls(f"{operation}: {message}")) from exc
        raise


class LoopSessionManager(HTTPSessionManager):
    """web3's session cache without its process-wide thread lock.

    web3 8.0.0 takes a class-level `threading.Lock` in a thread pool on every request; a request
    cancelled while that acquire is pending (the node's loop task on SIGTERM) leaves the lock
    taken forever (web3.py issue #3867), so every later request in the process hangs and the
    interpreter never exits (it joins the blocked pool threads). A node uses one event loop, where
    a check-then-insert with no await in between needs no lock at all.
    """

    async def async_cache_and_return_session(
        self,
        endpoint_uri: URI,
        session: aiohttp.ClientSession | None = None,
        request_timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientSession:
        key = f"{id(asyncio.get_running_loop())}:{endpoint_uri}"
        cached = self.session_cache.get_cache_entry(key)
        if cached is not None and not cached.closed and session is None:
            return cast(aiohttp.ClientSession, cached)
        # Keep-alive: a node makes several RPC calls per block, and a new TCP connection for
        # each (force_close) cost more CPU than the calls themselves under load.
        fresh = session or aiohttp.ClientSession(
            raise_for_status=True,
            connector=aiohttp.TCPConnector(enable_cleanup_closed=True),
        )
        self.session_cache.cache(key, fresh)
        if cached is not None and cached is not fresh and not cached.closed:
            await cached.close()
        return fresh


# Middleware a node never needs: it sends raw signed transactions and names no ENS address,
# yet the ENS middleware walks every request's parameters and the validation middleware asks
# for the chain id before every eth_call (3.2 ms of CPU per call with them, 1.2 without).
NODE_UNUSED_MIDDLEWARE = ("ens_name_to_address", "validation")


def split_rpc_urls(rpc_url: str | Sequence[str]) -> list[str]:
    """The URLs of `--rpc-url` given once or more, or of KEEPER_RPC_URL as a comma-separated
    list, in order of preference."""
    items = [rpc_url] if isinstance(rpc_url, str) else list(rpc_url)
    return [u.strip() for item in items for u in item.split(",") if u.strip()]


def connect(
    rpc_url: str | Sequence[str],
    timeout: float = 10.0,
    *,
    lean: bool = False,
    limits: EndpointLimits | None = None,
) -> AsyncWeb3[Any]:
    """An AsyncWeb3 over one or more HTTP(S) URLs (keeper.chain.pool: failover, a rate limit
    and a bound on requests in flight per URL, 429s retried after their Retry-After) with a
    bounded request timeout; `lean` (the node's) drops the middleware in
    NODE_UNUSED_MIDDLEWARE."""
    from keeper.chain.pool import RpcPool  # the pool builds on this module's session manager

    w3 = AsyncWeb3(RpcPool(split_rpc_urls(rpc_url), limits, timeout=timeout))
    if lean:
        for name in NODE_UNUSED_MIDDLEWARE:
            w3.middleware_onion.remove(name)
    return w3


async def disconnect(w3: AsyncWeb3[Any]) -> None:
    """Closes the HTTP sessions an AsyncHTTPProvider keeps (one per event loop), which nothing
    else closes: left open, aiohttp warns about them when they are collected. Other providers
    (eth-tester's) hold no connection and are left alone."""
    if isinstance(w3.provider, AsyncHTTPProvider):
        await w3.provider.disconnect()
