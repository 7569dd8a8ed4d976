"""Execution latency of Time jobs on a live network: anvil with 1-second blocks and one
`keeper run` process per keeper (the e2e Cluster), driven the way an operator runs them.

Run: .venv/bin/python benchmarks/latency.py [--keepers 4 7] [--jobs 100]
     (writes the latency section of docs/benchmarks.md; `--no-write` only prints)

For every JobExecuted it measures
- blocks from "due" (the first block whose timestamp reaches the slot, i.e. the cursor) to the
  block that holds the execution;
- the leader's agreement time, from leading the round to holding threshold stake in
  signatures, read from the executor's `round.threshold ... ms=` log line.

Three paths: steady state (every keeper up); one member down while the round's primary is up;
and failover, the rounds whose top-ranked member had been killed (SIGKILL), so a backup led
them on its turn. Jobs start on a grid spread over the interval, so about jobs/interval rounds
fall due every second instead of all of them in one block (`--burst`: all of them in one block,
as cron jobs of one schedule would).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_keys.backends import get_backend

from benchmarks.report import machine, write_section
from keeper.core.quorum import rank_batch_members
from tests.e2e.cluster import Cluster, start_cluster
from tests.e2e.support import (
    chain_head,
    quorum_members,
    time_spec,
    try_status,
    wait_for_keeper_set,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- latency:begin -->", "<!-- latency:end -->"
THRESHOLD_LINE = re.compile(
    r"round\.threshold job=(\d+) round=(\d+) rank=(\d+) signers=(\d+) ms=([\d.]+)"
)
CREATE_GAS = 600_000
CREATE_CHUNK = 50
PATHS = ("steady", "member down", "failover")


@dataclass
class Sample:
    job_id: int
    round: int
    executor: str
    blocks: int
    ms: float | None


@dataclass
class Run:
    keepers: int
    jobs: int
    interval: int
    samples: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))
    executions: int = 0
    missed_slots: int = 0
    load: tuple[float, float] = (0.0, 0.0)
    seconds: float = 0.0
    label: str = ""
    # What the keepers sign and recover with (they inherit this process's environment).
    backend: str = field(default_factory=lambda: type(get_backend()).__name__)
    no_quorum: int = 0
    notes: list[str] = field(default_factory=list)
    extra: tuple[str, ...] = ()  # extra `keeper run` flags
    steady: float = 60.0  # seconds of steady state
    victims: int = 0  # keepers killed one after another after it
    down: float = 30.0  # seconds each stayed down
    burst: bool = False  # every job's slots in the same block


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# ---------------------------------------------------------------------- the network


async def create_jobs(
    cluster: Cluster, w3: Any, target: str, n: int, interval: int, burst: bool = False
) -> int:
    """Creates `n` Time jobs whose grids are spread over the interval (or, with `burst`, all
    on the same grid, like cron jobs of one schedule); returns the first slot."""
    tm = (await cluster.contracts(w3)).task_manager
    deposit = 3 * int(await tm.functions.requiredDeposit(200_000, 0).call())
    now = int((await w3.eth.get_block("latest"))["timestamp"])
    first_slot = now + 20 + n // 10  # the keepers learn every job before its first slot
    owner = cluster.accounts[1].address
    # In chunks, each mined before the next is priced: a thousand at once fill ten blocks,
    # and the base fee rises past the max fee the later ones were sent with (stuck for good).
    for start in range(0, n, CREATE_CHUNK):
        hashes = []
        for i in range(start, min(n, start + CREATE_CHUNK)):
            spec = time_spec(target, interval, first_slot + (0 if burst else i % interval))
            params = {"from": owner, "value": deposit, "gas": CREATE_GAS}
            hashes.append(await tm.functions.createJob(spec).transact(params))
        for tx in hashes:
            receipt = await w3.eth.wait_for_transaction_receipt(tx, timeout=300)
            assert receipt["status"] == 1, f"createJob {tx.hex()} failed"
    return first_slot


async def wait_chain_time(cluster: Cluster, w3: Any, timestamp: int) -> int:
    """Waits until the chain's head has reached `timestamp`; returns the head's number."""
    while True:
        block = await w3.eth.get_block("latest")
        if int(block["timestamp"]) >= timestamp:
            return int(block["number"])
        await asyncio.sleep(0.5)


async def caught_up(cluster: Cluster, i: int, timeout: float = 90) -> bool:
    """Waits until keeper `i` is within a block of the chain; False if it is not in time (an
    overloaded network may never let it catch up: the run goes on and says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await asyncio.to_thread(try_status, cluster, i)
        if status is not None and (status["head"] or 0) >= chain_head(cluster) - 1:
            return True
        await asyncio.sleep(1)
    return False


# ---------------------------------------------------------------------- measuring


def agreement_times(cluster: Cluster) -> dict[tuple[str, int, int], float]:
    """(leader, job, round) -> ms of its last `round.threshold` line for that round."""
    out: dict[tuple[str, int, int], float] = {}
    for kp in cluster.keepers.values():
        address = kp.account.address.lower()
        for line in kp.log.read_text(errors="replace").splitlines():
            m = THRESHOLD_LINE.search(line)
            if m:
                out[(address, int(m[1]), int(m[2]))] = float(m[5])
    return out


async def block_timestamps(w3: Any, first: int, last: int) -> list[int]:
    stamps: list[int] = []
    for lo in range(first, last + 1, 50):
        hi = min(last, lo + 49)
        blocks = await asyncio.gather(*(w3.eth.get_block(n) for n in range(lo, hi + 1)))
        stamps += [int(b["timestamp"]) for b in blocks]
    return stamps


async def measure(
    cluster: Cluster,
    w3: Any,
    run: Run,
    steady: tuple[int, int],
    outages: list[tuple[str, int, int]],
) -> None:
    """Classifies every execution in the windows and computes its latency."""
    tm = (await cluster.contracts(w3)).task_manager
    registry = (await cluster.contracts(w3)).registry
    epoch = int(await registry.functions.currentEpoch().call())
    (members,) = await quorum_members(cluster, w3, epoch)
    first = min([steady[0]] + [o[1] for o in outages])
    last = max([steady[1]] + [o[2] for o in outages])
    logs = await tm.events.JobExecuted().get_logs(from_block=first, to_block=last)
    base = max(cluster.deployment.block, first - 3 * run.interval)
    stamps = await block_timestamps(w3, base, last)
    times = agreement_times(cluster)
    # A round's first `round.no_quorum` line is logged, later ones counted in its
    # `round.repeats ... round.no_quorum=N` line (log lines are bounded per round).
    run.no_quorum = sum(
        int(n or 1)
        for kp in cluster.keepers.values()
        for n in re.findall(r"round\.no_quorum(?:=(\d+))?", kp.log.read_text(errors="replace"))
    )
    run.executions = len(logs)
    by_job: dict[int, list[int]] = defaultdict(list)
    for log in logs:
        args = log["args"]
        job_id, round_, cursor = int(args["jobId"]), int(args["round"]), int(args["cursor"])
        by_job[job_id].append(cursor)
        block = int(log["blockNumber"])
        due = base + bisect.bisect_left(stamps, cursor)
        executor = str(args["executor"])
        # one quorum (index 0): every round due at a block shares that block's primary
        primary = rank_batch_members(epoch, 0, due, members)[0]
        ms = times.get((executor.lower(), job_id, round_))
        sample = Sample(job_id, round_, executor, block - due, ms)
        if steady[0] <= block <= steady[1]:
            run.samples["steady"].append(sample)
            continue
        for victim, start, end in outages:
            if start <= block <= end:
                if primary.lower() == victim.lower() and executor.lower() != victim.lower():
                    run.samples["failover"].append(sample)
                elif primary.lower() != victim.lower():
                    run.samples["member down"].append(sample)
                break
    run.missed_slots = sum(
        (b - a) // run.interval - 1
        for cursors in by_job.values()
        for a, b in zip(sorted(cursors), sorted(cursors)[1:], strict=False)
    )


async def bench(n_keepers: int, args: argparse.Namespace) -> Run:
    tmp = Path(tempfile.mkdtemp(prefix=f"keeper-latency-{n_keepers}-"))
    print(f"[{n_keepers} keepers] cluster in {tmp}", flush=True)
    # Register everyone before any keeper runs: one rotation forms the whole set.
    cluster = start_cluster(tmp, stakes=(2,) * n_keepers, quorum_size=n_keepers, start=False)
    extra = ("--poll-interval", str(args.poll_interval)) if args.poll_interval else ()
    run = Run(
        n_keepers,
        args.jobs,
        args.interval,
        label=args.label,
        extra=extra,
        steady=args.steady,
        victims=args.victims,
        down=args.down,
        burst=args.burst,
    )
    for i in cluster.keepers:
        cluster.start(i, *run.extra)
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        w3 = cluster.web3()
        everyone = {kp.account.address for kp in cluster.keepers.values()}
        await wait_for_keeper_set(cluster, w3, everyone, timeout=300)
        target = await cluster.deploy_target(w3)
        first_slot = await create_jobs(
            cluster, w3, target.address, args.jobs, args.interval, args.burst
        )
        print(f"[{n_keepers} keepers] {args.jobs} jobs, first slot {first_slot}", flush=True)
        # warm-up: two intervals of rounds before measuring
        s0 = await wait_chain_time(cluster, w3, first_slot + 2 * args.interval)
        await asyncio.sleep(args.steady)
        s1 = chain_head(cluster)
        print(f"[{n_keepers} keepers] steady blocks {s0}..{s1}", flush=True)
        outages: list[tuple[str, int, int]] = []
        for k in range(args.victims):
            victim = k * 2 % n_keepers
            address = cluster.keepers[victim].account.address
            # the victim's in-flight rounds settle before it goes (they belong to no path)
            await asyncio.sleep(args.interval)
            cluster.kill(victim, signal.SIGKILL)
            k0 = chain_head(cluster)
            await asyncio.sleep(args.down)
            cluster.start(victim, *run.extra)
            if not await caught_up(cluster, victim):
                run.notes.append(f"keeper {victim} had not caught up 90 s after its restart")
            k1 = chain_head(cluster)
            outages.append((address, k0, k1))
            print(f"[{n_keepers} keepers] keeper {victim} down in {k0}..{k1}", flush=True)
        await asyncio.sleep(2 * args.interval)  # the last windows' rounds land
        await measure(cluster, w3, run, (s0, s1), outages)
    finally:
        run.load = (load_before, os.getloadavg()[0])
        run.seconds = time.monotonic() - began
        cluster.stop_all()
        if args.keep_logs:
            print(f"[{n_keepers} keepers] logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return run


# ---------------------------------------------------------------------- reporting


def summarize(run: Run) -> list[dict[str, Any]]:
    rows = []
    for path in PATHS:
        samples = run.samples.get(path, [])
        if not samples:
            continue
        blocks = [float(s.blocks) for s in samples]
        ms = [s.ms for s in samples if s.ms is not None]
        rows.append(
            {
                "keepers": run.keepers,
                "jobs": run.jobs,
                "path": path,
                "executions": len(samples),
                "blocks_median": percentile(blocks, 50),
                "blocks_p95": percentile(blocks, 95),
                "blocks_p99": percentile(blocks, 99),
                "ms_median": percentile(ms, 50) if ms else None,
                "ms_p99": percentile(ms, 99) if ms else None,
                "ms_samples": len(ms),
            }
        )
    return rows


HEADER = (
    "| setup | keepers | jobs | path | executions | blocks median | p95 | p99 "
    "| agreement ms median | p99 |"
)


def render_rows(runs: list[Run]) -> list[str]:
    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = []
    for run in runs:
        for row in summarize(run):
            lines.append(
                f"| {run.label} | {row['keepers']} | {row['jobs']} | {row['path']} | "
                f"{row['executions']} | {num(row['blocks_median'], '.0f')} | "
                f"{num(row['blocks_p95'], '.0f')} | {num(row['blocks_p99'], '.0f')} | "
                f"{num(row['ms_median'], '.1f')} | {num(row['ms_p99'], '.1f')} |"
            )
    return lines


def render_notes(runs: list[Run]) -> list[str]:
    return [
        f"- {run.label}, {run.keepers} keepers, {run.jobs} jobs every {run.interval} s"
        + (", all due in the same block" if run.burst else "")
        + (f" (`keeper run {' '.join(run.extra)}`)" if run.extra else "")
        + f", {run.steady:.0f} s steady, "
        + (
            f"{run.victims} keepers killed for {run.down:.0f} s each"
            if run.victims
            else "none killed"
        )
        + ": "
        f"{run.executions} executions "
        f"measured, eth-keys backend {run.backend}, {run.missed_slots} slots skipped "
        f"between them, {run.no_quorum} leader "
        f"attempts short of threshold (`round.no_quorum`); host load average "
        f"{run.load[0]:.1f} before, {run.load[1]:.1f} after; {run.seconds:.0f} s."
        + "".join(f" {n}." for n in run.notes)
        for run in runs
    ]


def render(commands: list[str], rows: list[str], notes: list[str], args: argparse.Namespace) -> str:
    lines = [
        BEGIN,
        "## Latency (anvil, 1-second blocks, keeper processes)",
        "",
        f"Machine: {machine()}. Every keeper is a `keeper run` process of the e2e Cluster "
        "(poll interval 0.25 s, `deploy --turn-blocks 2`), equal stakes, one quorum, threshold "
        "6667 bps; Time jobs with start times spread over their interval (each run's "
        "interval is in its note below); steady state after two intervals of warm-up, then "
        "keepers killed (SIGKILL) in turn and restarted on their store (each run's note says "
        "for how long and how many; notes that do not say are 60 s of steady state, then 2 "
        "keepers down for 30 s each, and none for the light-load runs).",
        "",
        "Blocks: from the first block whose timestamp reaches the slot to the block holding "
        "the JobExecuted. Agreement: the leader's time from leading the round to threshold "
        "stake in signatures (`round.threshold ... ms=` in its log). *member down*: a keeper "
        "is down but the round's primary is up; *failover*: the round's top-ranked member "
        "is down and a backup executed it on its turn (rank 1 leads 2 blocks after due).",
        "",
        "Commands:",
        "",
        *[f"- `{c}`" for c in commands],
        "",
        HEADER,
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Runs:",
        "",
        *notes,
        "",
        "Aims: median 1 block and p99 at most 3 blocks from due to inclusion; agreement "
        "median under 25 ms for 7 keepers.",
        "",
        END,
    ]
    return "\n".join(lines)


def existing(text: str) -> tuple[list[str], list[str], list[str]]:
    """Commands, table rows and run notes already in the section (for --append)."""
    if BEGIN not in text:
        return [], [], []
    section = text.split(BEGIN, 1)[1].split(END, 1)[0].splitlines()
    commands = [ln[3:-1] for ln in section if ln.startswith("- `")]
    rows = [ln for ln in section if ln.startswith("| ") and ln != HEADER]
    notes = [ln for ln in section if ln.startswith("- ") and not ln.startswith("- `")]
    return commands, rows, notes


def write(section: str) -> None:
    """Replaces the latency section (between its markers) and leaves the rest untouched."""
    write_section(BEGIN, END, section, DOCS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--keepers", type=int, nargs="+", default=[4, 7])
    p.add_argument("--jobs", type=int, default=100)
    p.add_argument("--interval", type=int, default=10, help="Time job interval, seconds")
    p.add_argument("--steady", type=float, default=60, help="steady-state seconds")
    p.add_argument(
        "--burst",
        action="store_true",
        help="every job due in the same block (as cron jobs of one schedule), not spread",
    )
    p.add_argument("--victims", type=int, default=2, help="keepers killed one after another")
    p.add_argument("--down", type=float, default=30, help="seconds each victim stays down")
    p.add_argument(
        "--poll-interval", type=float, help="keepers' --poll-interval (default: the Cluster's)"
    )
    p.add_argument("--label", default="as shipped", help="the setup column of the table")
    p.add_argument("--append", action="store_true", help="add rows to the existing table")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    p.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    p.add_argument("--keep-logs", action="store_true", help="keep the clusters' directories")
    return p.parse_args(argv)


async def main() -> None:
    args = parse_args()
    command = shlex.join([".venv/bin/python", "benchmarks/latency.py", *sys.argv[1:]])
    runs = [await bench(n, args) for n in args.keepers]
    rows = [row for run in runs for row in summarize(run)]
    print(json.dumps(rows, indent=2))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    commands, old_rows, old_notes = (
        existing(DOCS.read_text()) if args.append and DOCS.exists() else ([], [], [])
    )
    section = render(
        [*commands, command], old_rows + render_rows(runs), old_notes + render_notes(runs), args
    )
    print(section)
    if not args.no_write:
        write(section)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    asyncio.run(main())
