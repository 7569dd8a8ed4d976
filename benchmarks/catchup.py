"""A keeper's follower catching up 20,000 blocks through a hosted provider's emulator.

Run: .venv/bin/python benchmarks/catchup.py [--blocks 20000] [--no-write]
     (writes the catchup section of docs/benchmarks.md; `--no-write` only prints)

anvil makes `--blocks` blocks after the deployment, with contract events along the way (a job
created every `--blocks / 20` blocks, an Event job's log every `--blocks / 40`). In front of it
the emulator of tests/provider.py plays a budget plan: 10 requests a second with bursts of 20,
then HTTP 429 with Retry-After; eth_getLogs capped at 1,000 blocks and 10,000 results; batches
at 100; a second backend one or two blocks behind answering every other request. The keeper's
follower (the node's, 200 blocks a pass) syncs from the deployment block to the head through
the RPC pool the node uses (told 9 requests a second, bursts of 18). Figures: wall time,
requests and 429s the emulator saw, and that the store then holds every job and log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeper.chain.follower import ChainFollower
from keeper.chain.pool import EndpointLimits, RpcPool
from keeper.chain.rpc import connect, disconnect
from keeper.store.db import Store
from tests.anvil import AnvilChain, AnvilProcess
from tests.harness import make_net
from tests.integration.test_follower import create_event_job, create_time_job, emit_demo
from tests.provider import ProviderEmulator

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- catchup:begin -->", "<!-- catchup:end -->"
KEY = "bench0123456789abcdef"
PLAN = {"per_second": 10.0, "burst": 20.0}
KEEPER_LIMITS = EndpointLimits(per_second=9.0, burst=18.0, concurrency=8)
MAX_RANGE = 200  # NodeOptions.max_sync_range


async def measure(blocks: int) -> dict[str, Any]:
    anvil = AnvilProcess(accounts=6)
    rpc = ProviderEmulator(anvil.url, KEY, **PLAN)
    try:
        net = await make_net(keepers=4, chain=AnvilChain(anvil, accounts=6))
        job_id = await create_event_job(net)
        logs, jobs = [], 1
        step = max(1, blocks // 40)
        start = await net.block_number()
        while await net.block_number() - start < blocks:
            logs.append(await emit_demo(net, len(logs)))
            if len(logs) % 2 == 0:
                await create_time_job(net)
                jobs += 1
            for _ in range(step // 100):
                net.mine(100)  # anvil_mine of many blocks at once outlasts the RPC timeout
            net.mine(step % 100 or 1)
        head = await net.block_number()
        await disconnect(net.w3)
        await rpc.start()
        with tempfile.TemporaryDirectory() as tmp:
            store = await Store.open(
                Path(tmp) / "keeper.db",
                chain_id=net.deployment.chain_id,
                registry=net.deployment.registry,
                task_manager=net.deployment.task_manager,
                operator=net.keepers[0].address,
            )
            w3 = connect(rpc.url, lean=True, limits=KEEPER_LIMITS)
            follower = ChainFollower(
                w3, net.registry, net.tm, store, start_block=net.deployment.block,
                max_range=MAX_RANGE,
            )  # fmt: skip
            began = time.monotonic()
            passes = 0
            while True:
                result = await follower.sync()
                passes += 1
                if result.head >= head:
                    break
            seconds = time.monotonic() - began
            stored_jobs = len(await store.jobs())
            pool = w3.provider
            assert isinstance(pool, RpcPool)
            totals = pool.totals()
            stored_logs = await store.next_job_logs([(job_id, 0, head)])
            await store.close()
            await disconnect(w3)
        span = head - net.deployment.block
        if stored_jobs != jobs or job_id not in stored_logs:
            raise AssertionError(f"store has {stored_jobs} of {jobs} jobs, logs {stored_logs}")
        return {
            "blocks": span,
            "seconds": round(seconds, 1),
            "passes": passes,
            "requests": rpc.requests,
            "requests_per_1000_blocks": round(
                1000 * rpc.requests / (head - net.deployment.block), 1
            ),
            "throttled": rpc.throttled,
            "throttled_share": f"{100 * rpc.throttled / max(1, rpc.requests):.1f}%",
            "header_calls": rpc.calls["eth_getBlockByNumber"],
            "getlogs_calls": rpc.calls["eth_getLogs"],
            "lagging_short_answers": rpc.empty_lagging_logs,
            "rechecked_by_hash": follower._logs.rechecked,
            "pool_requests": totals["requests"],
            "jobs": stored_jobs,
            "logs": len(logs),
        }
    finally:
        await rpc.stop()
        anvil.stop()


def section(result: dict[str, Any], commit: str, command: str) -> str:
    from benchmarks.report import machine

    r = result
    date = subprocess.run(["date", "-u", "+%F"], capture_output=True, text=True).stdout.strip()
    return "\n".join(
        [
            BEGIN,
            "## Catch-up through a hosted provider's emulator",
            "",
            f"Command: `{command}`. Commit: {commit}. Machine: {machine()}. Date: {date}.",
            "",
            "One follower (the node's: 200 blocks a pass, the RPC pool told 9 requests a second "
            "with bursts of 18) syncs from the deployment block to anvil's head through the "
            "emulator of tests/provider.py playing a budget plan: 10 requests a second, bursts "
            "of 20, then 429 with Retry-After; eth_getLogs at most 1,000 blocks and 10,000 "
            "results; batches at most 100; a second backend one or two blocks behind answering "
            "every other request. Events along the way: a job created every "
            f"{r['blocks'] // 20} blocks or so, an Event job's log every {r['blocks'] // 40}.",
            "",
            "| commit | blocks | seconds | requests | per 1,000 blocks | 429s | header batch "
            "items | eth_getLogs | short answers from the lagging backend | asked again by "
            "hash |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {commit} | {r['blocks']} | {r['seconds']} | {r['requests']} "
            f"| {r['requests_per_1000_blocks']} | {r['throttled']} ({r['throttled_share']}) "
            f"| {r['header_calls']} | {r['getlogs_calls']} | {r['lagging_short_answers']} "
            f"| {r['rechecked_by_hash']} |",
            "",
            "Headers come in JSON-RPC batches of 100 (one HTTP request), one batch at a time; the "
            "contracts' events and the Event jobs' logs one eth_getLogs each per pass, "
            f"{r['requests'] / max(1, r['passes']):.1f} requests per pass over {r['passes']} "
            "passes: the time is the plan's rate. The store then held all "
            f"{r['jobs']} jobs and the Event job's logs. Not measured before this follower: "
            "it sent a pass's 200 eth_getBlockByNumber at once, and a 429 failed the pass.",
            END,
        ]
    )


def main() -> None:
    from benchmarks.report import commit_label, publish

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20_000)
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args()
    result = asyncio.run(measure(args.blocks))
    measured = ("keeper/core", "keeper/chain", "keeper/store")
    commit = commit_label(*measured)
    print(commit, json.dumps(result))
    # --no-write does not change what is measured: the command shown is the one that writes.
    shown = [a for a in sys.argv[1:] if a != "--no-write"]
    command = " ".join([".venv/bin/python benchmarks/catchup.py", *shown])
    publish(BEGIN, END, section(result, commit, command), no_write=args.no_write)


if __name__ == "__main__":
    main()
