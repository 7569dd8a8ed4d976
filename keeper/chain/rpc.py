"""Connecting to a JSON-RPC endpoint, and translating transport failures at this boundary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ProviderConnectionError, TimeExhausted, Web3RPCError

from keeper.errors import RpcUnavailable

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
    other errors pass through untouched)."""
    try:
        yield
    except RpcUnavailable:
        raise
    except TRANSPORT_ERRORS as exc:
        raise RpcUnavailable(f"{operation}: RPC unreachable ({type(exc).__name__}: {exc})") from exc
    except Web3RPCError as exc:
        message = str(exc)
        if "timeout" in message.lower() or "unavailable" in message.lower():
            raise RpcUnavailable(f"{operation}: {message}") from exc
        raise


def connect(rpc_url: str, timeout: float = 10.0) -> AsyncWeb3[Any]:
    """An AsyncWeb3 over HTTP(S) with a bounded request timeout."""
    provider = AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": timeout})
    return AsyncWeb3(provider)
