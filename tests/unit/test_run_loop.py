"""A keeper command runs on uvloop's event loop (libuv), not asyncio's own."""

from __future__ import annotations

import asyncio

from keeper.cli.main import run_loop


def test_a_command_runs_on_uvloop_and_returns_its_result() -> None:
    async def command() -> tuple[str, int]:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__, 7

    module, result = run_loop(command())

    assert module.startswith("uvloop")
    assert result == 7
