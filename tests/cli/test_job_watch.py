"""`keeper job watch` follows an owner's jobs and reports executions, failures with their
decoded reason, the auto-pause, underfunding and a low runway: as lines, and as Slack-compatible
JSON POSTed to a webhook (a real aiohttp server on 127.0.0.1 here)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.cli.support import (
    ETHER,
    KEEPER,
    NO_WORK,
    ON_TIME,
    CliChain,
    Result,
    assert_one_line_error,
    create,
    create_unchecked,
    harness_net,
    key_hex,
    run_round,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WATCH_TIMEOUT = 120


class Webhook:
    """Collects the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.url = ""

    async def receive(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.Response(text="ok")


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/hook", hook.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()


async def watch(chain: CliChain, *args: str) -> Result:
    """`keeper job watch ARGS` as dev account 0, without blocking this loop (the webhook
    server runs on it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPER_")}
    proc = await asyncio.create_subprocess_exec(
        str(KEEPER), "job", "watch", *args,
        "--rpc-url", chain.anvil.url, "--deployment", str(chain.deployment_file),
        "--private-key", key_hex(chain.owner),
        cwd=chain.workdir, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), WATCH_TIMEOUT)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@pytest.fixture(scope="module")
def history(cli_chain: CliChain) -> dict[str, int]:
    """Keepers in a quorum, then: a paying job executed twice, a failing one three times (it
    pauses itself), a thin one once (it is left underfunded). Returns job ids and the blocks."""
    required = cli_chain.tm.functions.requiredDeposit(200_000, 1).call()
    ids = {
        "paying": create(cli_chain, ON_TIME, "--fund", "0.05ether"),
        "failing": create_unchecked(cli_chain, NO_WORK),
        "thin": create(cli_chain, ON_TIME, "--max-gas-price", "1wei", "--fund", str(required)),
    }

    async def run() -> tuple[int, int]:
        async with harness_net(cli_chain) as net:
            await net.register_keepers([ETHER] * 4)
            await net.rotate()
            first = await net.block_number() + 1
            for _ in range(2):
                await run_round(net, ids["paying"])
            for _ in range(3):
                await run_round(net, ids["failing"])
            await run_round(net, ids["thin"])
            return first, await net.block_number()

    first, last = asyncio.run(run())
    return ids | {"first": first, "last": last}


def lines_of(result: Result) -> list[str]:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout.splitlines()


async def test_watch_reports_every_kind_as_lines_and_to_the_webhook(
    cli_chain: CliChain, history: dict[str, int], webhook: Webhook
) -> None:
    paying, failing, thin = history["paying"], history["failing"], history["thin"]
    result = await watch(
        cli_chain,
        "--owner", cli_chain.owner.address,
        "--from-block", str(history["first"]), "--to-block", str(history["last"]),
        "--webhook", webhook.url, "--low-runway", "100000",
    )  # fmt: skip
    lines = lines_of(result)
    assert lines[0] == (
        f"watching jobs of {cli_chain.owner.address} from block {history['first']} "
        f"to {history['last']}"
    )
    text = "\n".join(lines)
    assert f"job {paying} executed round 0: gas " in text
    assert f"job {paying} executed round 1: gas " in text
    assert text.count(f"job {failing} FAILED round ") == 3
    assert f"job {failing} FAILED round 0: NoWork() (charged " in text
    assert (
        f"job {failing} PAUSED itself after 3 failed execution(s) in a row; "
        f"`keeper job resume {failing}` once the cause is fixed"
    ) in text
    assert f"job {thin} UNDERFUNDED: underfunded: has " in text
    assert f"job {paying} LOW RUNWAY: " in text and "below 100000 execution(s)" in text
    assert text.count(f"job {paying} LOW RUNWAY") == 1  # once per crossing
    # and the webhook got the same reports, Slack-compatible
    assert [body["text"] for body in webhook.bodies] == lines[1:]
    kinds = {(b["keeper"]["job"], b["keeper"]["event"]) for b in webhook.bodies}
    assert {(failing, "auto_paused"), (thin, "underfunded"), (paying, "low_runway")} <= kinds
    failed = next(b for b in webhook.bodies if b["keeper"]["event"] == "failed")
    assert failed["keeper"]["success"] is False and int(failed["keeper"]["payment"]) > 0


async def test_watch_by_id_and_a_runway_threshold_in_time(
    cli_chain: CliChain, history: dict[str, int]
) -> None:
    paying = history["paying"]
    result = await watch(
        cli_chain, str(paying),
        "--from-block", str(history["first"]), "--to-block", str(history["last"]),
        "--low-runway", "3650d",
    )  # fmt: skip
    lines = lines_of(result)
    assert lines[0].startswith(f"watching jobs {paying} from block ")
    assert all(f"job {paying} " in line for line in lines[1:]), lines
    (low,) = [line for line in lines if "LOW RUNWAY" in line]
    assert "execution(s) left (about " in low and "below 3650d" in low


async def test_an_unreachable_webhook_is_a_warning_not_the_end(
    cli_chain: CliChain, history: dict[str, int]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    result = await watch(
        cli_chain, str(history["failing"]),
        "--from-block", str(history["first"]), "--to-block", str(history["last"]),
        "--webhook", closed,
    )  # fmt: skip
    lines = lines_of(result)
    assert sum("FAILED" in line for line in lines) == 3
    assert "keeper: warning: webhook unreachable: ClientConnectorError" in result.stderr


async def test_bad_watch_input_is_one_line(cli_chain: CliChain) -> None:
    assert_one_line_error(await watch(cli_chain, "--low-runway", "soon"), "invalid --low-runway")
    assert_one_line_error(
        await watch(cli_chain, "--webhook", "ftp://x"), "--webhook must be an http(s) URL"
    )
    assert_one_line_error(await watch(cli_chain, "0"), "invalid job id '0'")
