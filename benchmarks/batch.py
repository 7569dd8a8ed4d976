"""Throughput, CPU and latency of many jobs due together, on a live 7-keeper network: anvil
with 1-second blocks and one `keeper run` process per keeper (the e2e Cluster), one quorum.

Run: .venv/bin/python benchmarks/batch.py [--only burst1000 burst100 cpu event50]
     (writes the batch section of docs/benchmarks.md; `--append` keeps the rows of other labels,
     `--no-write` only prints)

Scenarios, each on a fresh network:
- burst1000: 1,000 Time jobs whose first slot is the same second: executions per block on the
  quorum (the most in one block, and the blocks from due until the last one executed).
- burst100: 100 Time jobs on one grid every 30 s (cron jobs of one schedule), three slots:
  blocks from due (the first block whose timestamp reaches the slot) to inclusion.
- cpu: 100 Time jobs every 10 s with start times spread over the interval (10 executions a
  second): the CPU seconds of all 7 keeper processes over a 120 s window divided by the
  executions in it.
- event50: one Event job (1 confirmation) and 50 of its logs emitted in a burst: blocks from a
  log's confirmation to its execution.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, write_section
from tests.e2e.cluster import Cluster, start_cluster
from tests.e2e.support import event_spec, time_spec, wait_for_keeper_set

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- batch:begin -->", "<!-- batch:end -->"
KEEPERS = 7
CREATE_GAS = 600_000
SCENARIOS = ("burst1000", "burst100", "cpu", "event50")
DEFAULT_WINDOW = 120.0  # cpu: seconds measured (a minute's figure moved by a tenth between runs)
HEADER = "| setup | scenario | figure | value | detail |"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Row:
    scenario: str
    figure: str
    value: str
    detail: str = ""


@dataclass
class Result:
    label: str
    rows: list[Row] = field(default_factory=list)


# ---------------------------------------------------------------------- the network


async def network(tmp: Path) -> tuple[Cluster, Any, Any]:
    """Seven equal keepers in one quorum, running, and a demo target."""
    cluster = start_cluster(tmp, stakes=(2,) * KEEPERS, quorum_size=KEEPERS, start=False)
    for i in cluster.keepers:
        cluster.start(i)
    w3 = cluster.web3()
    everyone = {kp.account.address for kp in cluster.keepers.values()}
    await wait_for_keeper_set(cluster, w3, everyone, timeout=300)
    target = await cluster.deploy_target(w3)
    return cluster, w3, target


async def create(
    cluster: Cluster, w3: Any, specs: list[tuple[Any, ...]], executions: int = 3
) -> list[int]:
    """Creates the jobs (sent together, mined over a few blocks), each funded for
    `executions` worst-case executions; returns their ids."""
    tm = (await cluster.contracts(w3)).task_manager
    deposit = executions * int(await tm.functions.requiredDeposit(200_000, 0).call())
    owner = cluster.accounts[1].address
    ids = []
    # In chunks of a block's worth, each mined before the next is sent: with a thousand in
    # anvil's pool at once, some were dropped and never mined.
    for lo in range(0, len(specs), 40):
        hashes = []
        for spec in specs[lo : lo + 40]:
            params = {"from": owner, "value": deposit, "gas": CREATE_GAS}
            hashes.append(await tm.functions.createJob(spec).transact(params))
        for tx in hashes:
            receipt = await w3.eth.wait_for_transaction_receipt(tx, timeout=120)
            assert receipt["status"] == 1, f"createJob {tx.hex()} failed"
            (log,) = tm.events.JobCreated().process_receipt(receipt)
            ids.append(int(log["args"]["jobId"]))
    return ids


async def head(w3: Any) -> tuple[int, int]:
    block = await w3.eth.get_block("latest")
    return int(block["number"]), int(block["timestamp"])


async def wait_time(w3: Any, timestamp: int) -> int:
    while True:
        number, ts = await head(w3)
        if ts >= timestamp:
            return number
        await asyncio.sleep(0.25)


async def executions(cluster: Cluster, w3: Any, first: int) -> list[Any]:
    tm = (await cluster.contracts(w3)).task_manager
    return list(await tm.events.JobExecuted().get_logs(from_block=first))


async def first_block_at(w3: Any, lo: int, timestamp: int) -> int:
    """The first block at or after `lo` whose timestamp reaches `timestamp`."""
    number = lo
    while int((await w3.eth.get_block(number))["timestamp"]) < timestamp:
        number += 1
    return number


# ---------------------------------------------------------------------- scenarios


async def burst(cluster: Cluster, w3: Any, jobs: int, interval: int, slots: int) -> list[Row]:
    target = await cluster.deploy_target(w3)
    _, now = await head(w3)
    first_slot = now + 30 + jobs // 10
    await create(cluster, w3, [time_spec(target.address, interval, first_slot)] * jobs)
    start = await wait_time(w3, first_slot) - 1
    last_slot = first_slot + (slots - 1) * interval
    await wait_time(w3, last_slot)
    want = jobs * slots
    deadline = time.monotonic() + 300
    logs: list[Any] = []
    while time.monotonic() < deadline:
        logs = [
            x for x in await executions(cluster, w3, start) if int(x["args"]["cursor"]) <= last_slot
        ]
        if len(logs) >= want:
            break
        await asyncio.sleep(2)
    due = {
        s: await first_block_at(w3, start, s) for s in range(first_slot, last_slot + 1, interval)
    }
    blocks = [float(int(x["blockNumber"]) - due[int(x["args"]["cursor"])]) for x in logs]
    per_block = Counter(int(x["blockNumber"]) for x in logs)
    txs = {x["transactionHash"] for x in logs}
    name = f"burst{jobs}"
    rows = [
        Row(name, "executed", f"{len(logs)} of {want}", f"{len(txs)} execute transactions"),
        Row(name, "blocks due to inclusion, median", f"{percentile(blocks, 50):.0f}"),
        Row(name, "blocks due to inclusion, p99", f"{percentile(blocks, 99):.0f}"),
        Row(name, "most executions in one block", str(max(per_block.values()))),
        Row(
            name,
            "blocks from due to the last execution",
            f"{max(blocks):.0f}",
            f"{len(logs) / (max(blocks) + 1):.1f} jobs per block over that span",
        ),
    ]
    return rows


def keeper_cpu(cluster: Cluster) -> float:
    total = 0.0
    for kp in cluster.keepers.values():
        if kp.proc is not None:
            times = psutil.Process(kp.proc.pid).cpu_times()
            total += times.user + times.system
    return total


async def cpu(cluster: Cluster, w3: Any, window: float) -> list[Row]:
    target = await cluster.deploy_target(w3)
    interval, jobs = 10, 100
    _, now = await head(w3)
    first_slot = now + 30
    specs = [time_spec(target.address, interval, first_slot + i % interval) for i in range(jobs)]
    await create(cluster, w3, specs)
    await wait_time(w3, first_slot + 2 * interval)
    b0, _ = await head(w3)
    c0 = keeper_cpu(cluster)
    await asyncio.sleep(window)
    c1 = keeper_cpu(cluster)
    b1, _ = await head(w3)
    logs = [x for x in await executions(cluster, w3, b0 + 1) if int(x["blockNumber"]) <= b1]
    txs = {x["transactionHash"] for x in logs}
    per_job = (c1 - c0) * 1000 / max(1, len(logs))
    return [
        Row(
            "cpu",
            "executions in the window",
            str(len(logs)),
            f"{len(txs)} transactions, blocks {b0 + 1}..{b1}, {window:.0f} s",
        ),
        Row(
            "cpu",
            "network CPU per executed job, ms",
            f"{per_job:.1f}",
            f"{c1 - c0:.1f} CPU-s of 7 keepers",
        ),
    ]


async def event(cluster: Cluster, w3: Any, logs_n: int) -> list[Row]:
    target = await cluster.deploy_target(w3)
    confirmations = 1
    # funded for every log at worst-case cost: a leader batches no more rounds than that
    (job_id,) = await create(
        cluster, w3, [event_spec(target.address, 9, confirmations)], executions=logs_n + 5
    )
    b0, _ = await head(w3)
    await cluster.owner_tx(w3, target.functions.emitDemo(9, 0))  # the keepers see the job live
    deadline = time.monotonic() + 120
    while not await executions(cluster, w3, b0) and time.monotonic() < deadline:
        await asyncio.sleep(1)
    owner = cluster.accounts[1].address
    hashes = [
        await target.functions.emitDemo(9, k + 1).transact({"from": owner, "gas": 100_000})
        for k in range(logs_n)
    ]
    log_blocks = [
        int((await w3.eth.wait_for_transaction_receipt(h, timeout=120))["blockNumber"])
        for h in hashes
    ]
    start = min(log_blocks)
    deadline = time.monotonic() + 300
    done: list[Any] = []
    while time.monotonic() < deadline:
        done = [
            x
            for x in await executions(cluster, w3, start)
            if int(x["args"]["jobId"]) == job_id and int(x["args"]["cursor"]) >> 32 >= start
        ]
        if len(done) >= logs_n:
            break
        await asyncio.sleep(1)
    lags = [
        float(int(x["blockNumber"]) - ((int(x["args"]["cursor"]) >> 32) + confirmations))
        for x in done
    ]
    return [
        Row(
            "event50",
            "logs executed",
            f"{len(done)} of {logs_n}",
            f"logs in blocks {start}..{max(log_blocks)}",
        ),
        Row(
            "event50",
            "blocks from confirmation to execution, max",
            f"{max(lags):.0f}" if lags else "-",
            f"median {percentile(lags, 50):.0f}" if lags else "",
        ),
    ]


async def scenario(name: str, args: argparse.Namespace) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix=f"keeper-batch-{name}-"))
    print(f"[{name}] cluster in {tmp}", flush=True)
    cluster, w3, _ = await network(tmp)
    try:
        if name == "burst1000":
            return await burst(cluster, w3, 1000, 3600, 1)
        if name == "burst100":
            return await burst(cluster, w3, 100, 30, 3)
        if name == "cpu":
            return await cpu(cluster, w3, args.window)
        return await event(cluster, w3, 50)
    finally:
        cluster.stop_all()
        await cluster.close_clients()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------- reporting


def existing_rows(label: str, scenarios: list[str]) -> list[str]:
    """The section's rows, but those of `label` for the scenarios measured again."""
    text = DOCS.read_text() if DOCS.exists() else ""
    if BEGIN not in text:
        return []
    section = text.split(BEGIN, 1)[1].split(END, 1)[0].splitlines()
    again = tuple(f"| {label} | {name} |" for name in scenarios)
    return [
        ln for ln in section if ln.startswith("| ") and ln != HEADER and not ln.startswith(again)
    ]


def render(result: Result, kept: list[str], command: str) -> str:
    rows = kept + [
        f"| {result.label} | {r.scenario} | {r.figure} | {r.value} | {r.detail} |"
        for r in result.rows
    ]
    return "\n".join(
        [
            BEGIN,
            "## Many jobs due together (anvil, 1-second blocks, 7 keeper processes)",
            "",
            f"Machine: {machine()}. Command: `{command}` (each setup's rows are one run of it; "
            "the single-job rows ran the same script on that commit's code). Seven equal "
            "keepers in one quorum, threshold 6667 bps, `deploy --turn-blocks 2`; a fresh "
            "network per scenario (see the script's docstring for each).",
            "",
            "Aims (issue 14): network CPU per executed job with 7 keepers at 10 jobs a second "
            "at most 10 ms; 100 jobs due in one block: median 1 block from due to inclusion, "
            "p99 at most 2; 50 logs of one Event job executed within 3 blocks of their "
            "confirmation; jobs per block with 1,000 due at once, measured.",
            "",
            HEADER,
            "|---|---|---|---:|---|",
            *rows,
            "",
            END,
        ]
    )


def label_default() -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"commit {commit}, {time.strftime('%Y-%m-%d', time.gmtime())}"


async def main(args: argparse.Namespace) -> None:
    result = Result(args.label or label_default())
    for name in args.only:
        rows = await scenario(name, args)
        for r in rows:
            print(f"[{name}] {r.figure}: {r.value} {r.detail}", flush=True)
        result.rows += rows
    command = (
        "python benchmarks/batch.py"
        + (f" --only {' '.join(args.only)}" if args.only != list(SCENARIOS) else "")
        + (f" --window {args.window:g}" if args.window != DEFAULT_WINDOW else "")
    )
    section = render(result, existing_rows(result.label, args.only) if args.append else [], command)
    if args.no_write:
        print(section)
    else:
        write_section(BEGIN, END, section, DOCS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    p.add_argument("--window", type=float, default=DEFAULT_WINDOW, help="cpu: seconds measured")
    p.add_argument("--label", default="", help="the setup column (default: commit and date)")
    p.add_argument("--append", action="store_true", help="keep the rows of other setups")
    p.add_argument("--no-write", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
