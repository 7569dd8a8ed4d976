"""A headless Chromium driven over the Chrome DevTools protocol, with aiohttp only.

Debian's `chromium` (scripts/setup.sh installs it): no browser download and no Python
dependency beyond aiohttp. The browser runs with a fresh profile and the flags that keep it
off the network; it is stopped by its own pid.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1400",
    "--remote-debugging-port=0",
)
START_TIMEOUT = 30.0
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class Browser:
    """One Chromium process and one page; `async with Browser() as page:`."""

    def __init__(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="keeper-chromium-")
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        self._process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={self._profile.name}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        browser_url = await asyncio.wait_for(self._devtools_url(), START_TIMEOUT)
        port = browser_url.split("/")[2]
        self._http = aiohttp.ClientSession()
        async with self._http.get(f"http://{port}/json/list") as resp:
            targets = await resp.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Page.enable")
        return self

    async def _devtools_url(self) -> str:
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            found = _LISTENING.search(raw.decode(errors="replace"))
            if found:
                return found.group(1)
        raise RuntimeError("chromium exited before its DevTools endpoint was up")

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._profile.cleanup()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events in between are skipped)."""
        assert self._ws is not None
        call_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = await self._ws.receive_json()
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    async def open(self, url: str, ready: str, timeout_ms: int = 20_000) -> None:
        """Navigates to `url` and waits (inside the page, up to `timeout_ms`) until the
        JavaScript expression `ready` is true."""
        await self.send("Page.navigate", url=url)
        script = (
            "new Promise((resolve) => { const end = Date.now() + TIMEOUT;"
            " const check = () => { let ok = false; try { ok = Boolean(READY); } catch (e) {}"
            " if (ok) resolve(true); else if (Date.now() > end) resolve(false);"
            " else setTimeout(check, 50); }; check(); })"
        )
        waited = await self.evaluate(
            script.replace("TIMEOUT", str(timeout_ms)).replace("READY", f"({ready})")
        )
        if waited is not True:
            raise AssertionError(f"{url}: {ready} not true within {timeout_ms} ms")

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        """A PNG of the whole page."""
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
