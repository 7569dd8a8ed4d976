"""anvil (from the npm package in package.json) as a real JSON-RPC chain, and a TCP proxy that a
test can cut to make one client's RPC unreachable. Every process is stopped by its pid.
"""

from __future__ import annotations

import asyncio

from keeper.chain.anvil import AnvilChain, AnvilProcess, dev_accounts, free_port

__all__ = ["AnvilChain", "AnvilProcess", "TcpProxy", "dev_accounts", "free_port"]


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
