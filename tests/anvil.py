"""anvil (from the npm package in package.json) as a real JSON-RPC chain, a TCP proxy that a
test can cut to make one client's RPC unreachable, and a hosted provider's look-alike (API key
in the path, 429s, a lagging backend). Every process is stopped by its pid.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from keeper.chain.anvil import AnvilChain, AnvilProcess, dev_accounts, free_port

__all__ = [
    "AnvilChain",
    "AnvilProcess",
    "ProviderLookalike",
    "TcpProxy",
    "dev_accounts",
    "free_port",
]


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `cut()` drops every connection and refuses new
    ones until `restore()`, as a network outage between one client and its RPC would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.cut_now = False
        self.requests = 0  # HTTP requests seen (POST lines from the client)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool = False
        ) -> None:
            try:
                while not self.cut_now and (data := await src.read(65536)):
                    if upstream:
                        self.requests += data.count(b"POST / HTTP/1.1")
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, upstream=True), pipe(up_reader, writer))
        self._writers.difference_update({writer, up_writer})

    def cut(self) -> None:
        self.cut_now = True
        for w in list(self._writers):
            w.close()

    def restore(self) -> None:
        self.cut_now = False

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class LoopbackRpcProxy:
    """A JSON-RPC server on 127.0.0.1, at `path`, in front of `upstream`: subclasses decide
    each answer in `_handle` and pass what they do not change on with `_forward`."""

    def __init__(self, upstream: str, path: str = "") -> None:
        self.upstream = upstream
        self.path = path
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path or "/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession()

    async def _handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def _forward(self, body: Any) -> Any:
        assert self._session is not None
        async with self._session.post(self.upstream, json=body) as up:
            return await up.json(content_type=None)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()


class ProviderLookalike(LoopbackRpcProxy):
    """A hosted provider's look-alike in front of anvil, on `/v3/KEY` (the API key in the
    path): it answers HTTP 429 with Retry-After while `limited`, and while `lag` > 0 answers
    `eth_getBlockByNumber("latest")` with the block `lag` below the real head, as a second
    backend behind a load balancer does. It counts the POSTs it receives in `requests`.
    Switched by hand, for tests that want one behaviour at a time; tests/provider.py's
    ProviderEmulator plays a whole hosted plan (limits, refusals, alternating backends)."""

    def __init__(self, upstream: str, key: str) -> None:
        super().__init__(upstream, f"/v3/{key}")
        self.key = key
        self.limited = False
        self.lag = 0
        self.requests = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.limited:
            return web.Response(status=429, text="rate limited", headers={"Retry-After": "1"})
        body = await request.json()
        if self.lag > 0:
            calls = body if isinstance(body, list) else [body]
            for call in calls:
                params = call.get("params") or []
                if call.get("method") == "eth_getBlockByNumber" and params[:1] == ["latest"]:
                    number = {"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"}
                    head = int((await self._forward({**number, "params": []}))["result"], 16)
                    params[0] = hex(max(0, head - self.lag))
        return web.json_response(await self._forward(body))
