"""Soak benchmark (issue 5): jobs of every trigger kind on a live network, keepers killed.

One keeper at a time is killed with SIGKILL and restarted on its own store.

Run: .venv/bin/python benchmarks/soak.py [--seconds 600] [--jobs 1000] [--kill-every 30]
     (writes the soak section of docs/benchmarks.md; `--no-write` only prints;
      e.g. `--seconds 90 --jobs 100 --no-write` for a short check)

anvil with 1-second blocks and one `keeper run` process per keeper (the e2e Cluster), equal
stakes in one quorum: with a 2/3 threshold and never more than one keeper down, a quorum is
always alive, so every slot, log and request must execute, and exactly once.

The jobs are mostly Time jobs (intervals spread over `--intervals`, start times at random on
the grid), some Cron jobs (every minute or every other minute), some Event jobs (DemoEvent tags
on a few DemoTargets, which the benchmark emits every `--emit-every` seconds) and some Condition
jobs (one DemoTarget each, since a shared `pending` would be consumed by whichever job ran
first; the benchmark requests one unit of work every `--request-every` seconds, round robin).
Every job is funded for the whole run. At 1,000 jobs the mix asks for about 6 rounds a second
(Time 3.9, Cron 0.7 with a burst on each minute, Event 1.0, Condition at most 0.5; the run
prints its figure), which five keepers and anvil carry on 2 cores at about a quarter of a core
per keeper.

After a warm-up (keeper set formed, every keeper holds every job, the first Time slot reached)
the chaos phase kills a random keeper (seeded) every `--kill-every` seconds, restarts it after
a random 1-5 s outage and waits until it has caught up before the next kill. Then it stops
killing and emitting, lets the last rounds land (`--drain`), and reads the chain:

- executions per kind, from the JobExecuted logs of the chaos phase and the drain;
- doubles: a (job, cursor) or a (job, round) executed more than once, over the whole run
  (must be 0; the script exits 1 otherwise);
- misses: Time and Cron slots due during the chaos phase that never executed (a skipped slot
  is a miss), DemoEvent logs an Event job never executed, units of Condition work requested
  and still pending at the end;
- failed executions (success=false), and RSS and CPU per keeper process (psutil, sampled every
  second; CPU seconds summed over a keeper's incarnations, CPU % = CPU seconds / wall seconds
  of the chaos phase and the drain, 100 % = one core).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from benchmarks.latency import CREATE_GAS, percentile, wait_chain_time
from benchmarks.report import DOCS, commit_label, machine, write_section
from keeper.chain.artifacts import load_artifact
from keeper.chain.contracts import transact
from keeper.core.triggers import compute_event_cursor
from keeper.node.cron_calendar import cron_next_fire
from tests.e2e.cluster import Cluster, start_cluster
from tests.e2e.support import (
    CRON,
    GAS_LIMIT,
    THRESHOLD_BPS,
    chain_head,
    condition_spec,
    event_spec,
    read_store,
    store_head,
    time_spec,
    wait_for_keeper_set,
)

BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
KINDS = ("Time", "Cron", "Event", "Condition")
# Share of the jobs per kind; Time takes the rest.
MIX = {"Cron": 0.06, "Event": 0.10, "Condition": 0.04}
# Cron expressions and their period in seconds; "1-59/2" fires on the minutes "*/2" skips.
CRONS = (("* * * * *", 60), ("*/2 * * * *", 120), ("1-59/2 * * * *", 120))
EVENT_TAGS = 5  # DemoEvent tags per emitting DemoTarget
EVENT_PAIRS = 20  # (target, tag) pairs at most; the Event jobs are dealt over them
CONFIRMATIONS = 2
TX_GAS = 100_000  # emitDemo / request: not estimated (request costs more once pending is 0)
LOG_PAGE = 500  # blocks per eth_getLogs
MIB = 1024 * 1024
LOG_LINE = re.compile(r"^(\S+ \S+) ([A-Z]+) \S+ (\S+)(.*)$")  # asctime level name event


@dataclass(frozen=True)
class Job:
    job_id: int
    kind: str
    target: str
    period: int = 0  # seconds between slots (Time, Cron)
    start: int = 0  # first slot (Time)
    cron: str = ""
    tag: int = 0  # DemoEvent tag (Event)
    created: int = 0  # creation block


@dataclass
class Usage:
    """One process's CPU and memory across its incarnations (a restart is a new pid)."""

    kills: int = 0
    pid: int | None = None
    cpu_ended: float = 0.0  # CPU seconds of the incarnations that are gone
    cpu_now: float = 0.0  # CPU seconds of the current one, at its last sample
    cpu_base: float = 0.0  # CPU seconds when the measured window began
    peak_rss: int = 0
    last_rss: int = 0

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_ended + self.cpu_now - self.cpu_base


@dataclass
class Kill:
    keeper: int
    at: float  # seconds into the chaos phase
    down: float
    catch_up: float | None  # seconds from restart to within a block of the chain; None: never


@dataclass
class Tally:
    jobs: int = 0
    rate: float = 0.0  # nominal rounds per second
    executions: int = 0
    due: int = 0
    missed: int = 0
    doubles: int = 0
    failed: int = 0


@dataclass
class Result:
    tallies: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})
    usage: dict[str, Usage] = field(default_factory=dict)
    kills: list[Kill] = field(default_factory=list)
    logs: dict[str, Counter[str]] = field(default_factory=dict)  # keeper_log_counts
    notes: list[str] = field(default_factory=list)
    chaos_seconds: float = 0.0
    measured_seconds: float = 0.0
    deposit_ether: float = 0.0

    @property
    def doubles(self) -> int:
        return sum(t.doubles for t in self.tallies.values())


# ---------------------------------------------------------------------- sampling


class Sampler:
    """Samples RSS and CPU time of every keeper process and of anvil."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.usage: dict[str, Usage] = {f"keeper {i}": Usage() for i in cluster.keepers}
        self.usage["anvil"] = Usage()
        self._procs: dict[int, psutil.Process] = {}

    def pids(self) -> dict[str, int]:
        out = {
            f"keeper {i}": kp.proc.pid
            for i, kp in self.cluster.keepers.items()
            if kp.proc is not None and kp.running
        }
        out["anvil"] = self.cluster.anvil.pid
        return out

    def sample(self) -> None:
        for name, pid in self.pids().items():
            usage = self.usage[name]
            if pid != usage.pid:
                usage.cpu_ended += usage.cpu_now
                usage.cpu_now, usage.pid = 0.0, pid
            try:
                proc = self._procs.get(pid)
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                with proc.oneshot():
                    cpu = proc.cpu_times()
                    rss = int(proc.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
            usage.cpu_now = cpu.user + cpu.system
            usage.last_rss, usage.peak_rss = rss, max(usage.peak_rss, rss)

    def begin(self) -> None:
        """Starts the measured window: CPU counts from here, peak RSS from the current RSS."""
        self.sample()
        for usage in self.usage.values():
            usage.cpu_base = usage.cpu_ended + usage.cpu_now
            usage.peak_rss = usage.last_rss

    async def run(self, period: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(period)


# ---------------------------------------------------------------------- the network


async def send_all(w3: Any, sends: list[Any], chunk: int = 50) -> list[Any]:
    """Sends transactions one after the other (the node assigns the nonces in order), `chunk`
    at a time, each chunk mined before the next is priced (a thousand at once fill blocks
    until the base fee passes the max fee the later ones carry), and returns their receipts;
    `sends` are coroutine factories returning a tx hash."""
    receipts: list[Any] = []
    for start in range(0, len(sends), chunk):
        hashes = [await send() for send in sends[start : start + chunk]]
        mined = await asyncio.gather(
            *(w3.eth.wait_for_transaction_receipt(h, timeout=300) for h in hashes)
        )
        for tx, receipt in zip(hashes, mined, strict=True):
            assert receipt["status"] == 1, f"transaction {tx.hex()} failed"
        receipts += mined
    return receipts


async def deploy_targets(cluster: Cluster, w3: Any, n: int) -> list[Any]:
    """`n` DemoTargets, deployed in a few blocks rather than one block each."""
    artifact = load_artifact("DemoTarget")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    deployer = cluster.accounts[0].address
    receipts = await send_all(
        w3,
        [
            lambda: factory.constructor(60).transact({"from": deployer, "gas": 2_000_000})
            for _ in range(n)
        ],
    )
    return [cluster.target_at(w3, r["contractAddress"]) for r in receipts]


def cron_spec(target: str, expr: str) -> tuple[Any, ...]:
    return (target, keccak(text="onCron()")[:4], CRON, abi_encode(["string"], [expr]),
            GAS_LIMIT, THRESHOLD_BPS, 0, 0, 0, 0)  # fmt: skip


def job_counts(n: int) -> dict[str, int]:
    counts = {kind: round(n * share) for kind, share in MIX.items()}
    return {"Time": n - sum(counts.values()), **counts}


def event_pairs(n_event: int) -> int:
    return max(1, min(EVENT_PAIRS, n_event))


def nominal_rates(jobs: list[Job], args: argparse.Namespace) -> dict[str, float]:
    """Rounds per second each kind asks for (Condition: at most one per request)."""
    n_event = sum(j.kind == "Event" for j in jobs)
    return {
        "Time": sum(1 / j.period for j in jobs if j.kind == "Time"),
        "Cron": sum(1 / j.period for j in jobs if j.kind == "Cron"),
        "Event": n_event / event_pairs(n_event) / args.emit_every if n_event else 0.0,
        "Condition": 1 / args.request_every if any(j.kind == "Condition" for j in jobs) else 0.0,
    }


async def create_jobs(
    cluster: Cluster, w3: Any, args: argparse.Namespace
) -> tuple[list[Job], dict[str, Any], int, float]:
    """Deploys the targets and creates the mix; returns the jobs, the targets (by address),
    the first Time slot and the ether deposited."""
    counts = job_counts(args.jobs)
    pairs = event_pairs(counts["Event"]) if counts["Event"] else 0
    emitters = math.ceil(pairs / EVENT_TAGS)
    targets = await deploy_targets(cluster, w3, 1 + emitters + counts["Condition"])
    shared, emitting, resolving = targets[0], targets[1 : 1 + emitters], targets[1 + emitters :]
    tm = (await cluster.contracts(w3)).task_manager
    per_execution = int(await tm.functions.requiredDeposit(GAS_LIMIT, 0).call())
    horizon = int(args.seconds + args.drain) + 600  # warm-up included, generously
    now = int((await w3.eth.get_block("latest"))["timestamp"])
    first_slot = now + 30 + args.jobs // 10  # the keepers learn every job before its first slot
    rng = random.Random(args.seed)

    planned: list[tuple[Job, tuple[Any, ...], int]] = []  # job (no id yet), spec, executions
    for i in range(counts["Time"]):
        interval = args.intervals[i % len(args.intervals)]
        start = first_slot + rng.randrange(interval)
        job = Job(0, "Time", shared.address, period=interval, start=start)
        planned.append((job, time_spec(shared.address, interval, start), horizon // interval))
    for i in range(counts["Cron"]):
        expr, period = CRONS[i % len(CRONS)]
        job = Job(0, "Cron", shared.address, period=period, cron=expr)
        planned.append((job, cron_spec(shared.address, expr), horizon // period))
    for i in range(counts["Event"]):
        emitter = emitting[i % pairs // EVENT_TAGS]
        tag = i % pairs % EVENT_TAGS + 1
        job = Job(0, "Event", emitter.address, tag=tag)
        runs = int(horizon / (args.emit_every * pairs))
        planned.append((job, event_spec(emitter.address, tag, CONFIRMATIONS), runs))
    for target in resolving:
        job = Job(0, "Condition", target.address)
        runs = int(horizon / (args.request_every * len(resolving)))
        planned.append((job, condition_spec(target.address, 1), runs))

    owner = cluster.accounts[1].address
    deposits = [(runs + 3) * per_execution for _, _, runs in planned]
    receipts = await send_all(
        w3,
        [
            lambda spec=spec, value=value: tm.functions.createJob(spec).transact(
                {"from": owner, "value": value, "gas": CREATE_GAS}
            )
            for (_, spec, _), value in zip(planned, deposits, strict=True)
        ],
    )
    jobs = []
    for (job, _, _), receipt in zip(planned, receipts, strict=True):
        job_id = int(tm.events.JobCreated().process_receipt(receipt)[0]["args"]["jobId"])
        created = int(receipt["blockNumber"])
        jobs.append(Job(job_id, job.kind, job.target, job.period, job.start, job.cron, job.tag,
                        created))  # fmt: skip
    by_address = {t.address: t for t in targets}
    return jobs, by_address, first_slot, sum(deposits) / 10**18


async def wait_for_jobs(cluster: Cluster, job_ids: set[int], timeout: float = 600) -> None:
    """Waits until every keeper's store holds every job (read from the SQLite file: the
    node's /v1/status costs it two queries per job, seconds with 1,000 jobs on a busy host)."""

    async def everyone_has_them() -> bool:
        for kp in cluster.keepers.values():
            rows = await asyncio.to_thread(read_store, kp.db, "SELECT job_id FROM jobs")
            if not job_ids <= {int(r[0]) for r in rows}:
                return False
        return True

    await cluster.wait_until(everyone_has_them, timeout, "every keeper to hold every job")


def is_caught_up(cluster: Cluster, i: int) -> bool:
    """Keeper `i` answers its health check and its store is within a block of the chain (a
    node listens only after rolling its store back on start, so the head read is its own)."""
    kp = cluster.keepers[i]
    try:
        with urllib.request.urlopen(kp.admin_endpoint + "/healthz", timeout=5) as response:
            if response.status != 200:
                return False
    except OSError:  # not listening yet, or 503 (no successful pass yet)
        return False
    head = store_head(kp.db)
    return head is not None and head[0] >= chain_head(cluster) - 1


async def wait_caught_up(cluster: Cluster, i: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(is_caught_up, cluster, i):
            return True
        await asyncio.sleep(0.5)
    return False


async def every(period: float, until: float, action: Any) -> None:
    """Runs `action()` on a fixed schedule, one start every `period` seconds, until the
    monotonic time `until`; an action that overruns its period starts the next at once."""
    at = time.monotonic()
    while at < until:
        await action()
        at += period
        await asyncio.sleep(max(0.0, at - time.monotonic()))


async def chaos(
    cluster: Cluster, args: argparse.Namespace, until: float, sampler: Sampler
) -> list[Kill]:
    """Every `kill_every` seconds: SIGKILL a random keeper, restart it on its store after a
    random outage, and wait until it has caught up (never two down at once)."""
    rng = random.Random(args.seed)
    began = time.monotonic()
    kills: list[Kill] = []
    next_kill = began
    while True:
        await asyncio.sleep(max(0.0, next_kill - time.monotonic()))
        if time.monotonic() + args.down_max >= until:
            return kills
        victim = rng.randrange(len(cluster.keepers))
        down = rng.uniform(args.down_min, args.down_max)
        at = time.monotonic()
        sampler.sample()  # the victim's CPU time up to its death
        cluster.kill(victim, signal.SIGKILL)
        sampler.usage[f"keeper {victim}"].kills += 1
        await asyncio.sleep(down)
        cluster.start(victim)
        restarted = time.monotonic()
        ok = await wait_caught_up(cluster, victim, timeout=max(30.0, until - restarted))
        kill = Kill(victim, at - began, down, time.monotonic() - restarted if ok else None)
        kills.append(kill)
        print(
            f"  kill {len(kills)} at {kill.at:.0f} s: keeper {victim} down {down:.1f} s, "
            + (f"caught up in {kill.catch_up:.0f} s" if ok else "did not catch up"),
            flush=True,
        )
        if not ok:
            return kills  # a second kill now could take the quorum below its threshold
        next_kill = at + args.kill_every


async def traffic(
    cluster: Cluster,
    w3: Any,
    jobs: list[Job],
    targets: dict[str, Any],
    args: argparse.Namespace,
    until: float,
) -> None:
    """Emits DemoEvents for the Event jobs and requests work from the Condition jobs."""
    pairs = sorted({(j.target, j.tag) for j in jobs if j.kind == "Event"})
    resolvers = [targets[j.target] for j in jobs if j.kind == "Condition"]
    emitter, requester = cluster.accounts[-1].address, cluster.accounts[-2].address
    emitted, requested = iter(range(10**9)), iter(range(10**9))

    async def emit() -> None:
        k = next(emitted)
        address, tag = pairs[k % len(pairs)]
        fn = targets[address].functions.emitDemo(tag, k)
        await transact(w3, fn, {"from": emitter, "gas": TX_GAS})

    async def request() -> None:
        fn = resolvers[next(requested) % len(resolvers)].functions.request(1)
        await transact(w3, fn, {"from": requester, "gas": TX_GAS})

    loops = []
    if pairs:
        loops.append(every(args.emit_every, until, emit))
    if resolvers:
        loops.append(every(args.request_every, until, request))
    await asyncio.gather(*loops)


# ---------------------------------------------------------------------- measuring


async def paged_logs(event: Any, first: int, last: int) -> list[Any]:
    logs: list[Any] = []
    for lo in range(first, last + 1, LOG_PAGE):
        logs += await event.get_logs(from_block=lo, to_block=min(last, lo + LOG_PAGE - 1))
    return logs


def due_slots(job: Job, t0: int, t1: int) -> set[int]:
    """Time and Cron cursors due in [t0, t1] (chain timestamps)."""
    if job.kind == "Time":
        k = max(0, math.ceil((t0 - job.start) / job.period))
        return set(range(job.start + k * job.period, t1 + 1, job.period))
    next_fire = cron_next_fire(job.cron)
    slots = set()
    fire = next_fire(t0 - 1)
    while fire is not None and fire <= t1:
        slots.add(fire)
        fire = next_fire(fire)
    return slots


async def measure(
    cluster: Cluster,
    w3: Any,
    jobs: list[Job],
    targets: dict[str, Any],
    window: tuple[int, int, int],
    result: Result,
) -> None:
    """Executions, doubles, misses and failures per kind, from the chain."""
    b0, b1, b_end = window
    t0 = int((await w3.eth.get_block(b0))["timestamp"])
    t1 = int((await w3.eth.get_block(b1))["timestamp"])
    tm = (await cluster.contracts(w3)).task_manager
    executed = await paged_logs(tm.events.JobExecuted(), cluster.deployment.block, b_end)
    by_job: dict[int, list[Any]] = defaultdict(list)
    for log in executed:
        by_job[int(log["args"]["jobId"])].append(log)
    demo_logs: dict[tuple[str, int], set[int]] = defaultdict(set)
    for address in {j.target for j in jobs if j.kind == "Event"}:
        for log in await paged_logs(targets[address].events.DemoEvent(), b0, b_end):
            cursor = compute_event_cursor(int(log["blockNumber"]), int(log["logIndex"]))
            demo_logs[(address, int(log["args"]["tag"]))].add(cursor)

    for job in jobs:
        tally = result.tallies[job.kind]
        tally.jobs += 1
        logs = by_job.get(job.job_id, [])
        cursors = Counter(int(lg["args"]["cursor"]) for lg in logs)
        rounds = Counter(int(lg["args"]["round"]) for lg in logs)
        tally.doubles += sum(c - 1 for c in cursors.values()) + sum(c - 1 for c in rounds.values())
        in_window = [lg for lg in logs if b0 <= int(lg["blockNumber"]) <= b_end]
        tally.executions += len(in_window)
        tally.failed += sum(not lg["args"]["success"] for lg in in_window)
        if job.kind in ("Time", "Cron"):
            due = due_slots(job, t0, t1)
            tally.due += len(due)
            tally.missed += len(due - set(cursors))
        elif job.kind == "Event":
            due = {c for c in demo_logs[(job.target, job.tag)] if c >> 32 > job.created}
            tally.due += len(due)
            tally.missed += len(due - set(cursors))
        else:
            resolver = targets[job.target]
            pending = int(await resolver.functions.pending().call(block_identifier=b_end))
            served = int(await resolver.functions.conditionTotal().call(block_identifier=b_end))
            tally.due += pending + served
            tally.missed += pending


def keeper_log_counts(cluster: Cluster, since: str) -> dict[str, Counter[str]]:
    """Per keeper, from its log lines stamped `since` or later: its execute transactions mined
    (`sent`) and reverted (`reverted`), its leader attempts short of threshold (`no_quorum`),
    and every other WARNING or ERROR line by event name."""
    out = {}
    for i, kp in cluster.keepers.items():
        counts: Counter[str] = Counter()
        text = kp.log.read_text(errors="replace") if kp.log.exists() else ""
        for m in map(LOG_LINE.match, text.splitlines()):
            if m is None or m[1] < since:
                continue
            level, event, rest = m[2], m[3], m[4]
            if event == "tx.mined" and "purpose=execute" in rest:
                counts["reverted" if " status=0" in rest else "sent"] += 1
            elif event == "round.no_quorum":
                counts["no_quorum"] += 1
            elif event == "round.repeats":  # later attempts of a round, counted, not logged
                held_back = re.search(r"round\.no_quorum=(\d+)", rest)
                counts["no_quorum"] += int(held_back[1]) if held_back else 0
            elif level != "INFO":
                counts[f"{level} {event}"] += 1
        out[f"keeper {i}"] = counts
    return out


async def soak(args: argparse.Namespace) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix="keeper-soak-"))
    print(f"cluster in {tmp}", flush=True)
    # Register everyone before any keeper runs: one rotation forms the whole set.
    cluster = start_cluster(tmp, stakes=(2,) * args.keepers, quorum_size=args.keepers, start=False)
    for i in cluster.keepers:
        cluster.start(i)
    result = Result()
    sampler = Sampler(cluster)
    sampling: asyncio.Task[None] | None = None
    try:
        w3 = cluster.web3()
        everyone = {kp.account.address for kp in cluster.keepers.values()}
        await wait_for_keeper_set(cluster, w3, everyone, timeout=300)
        jobs, targets, first_slot, result.deposit_ether = await create_jobs(cluster, w3, args)
        rates = nominal_rates(jobs, args)
        for kind in KINDS:
            result.tallies[kind].rate = rates[kind]
        print(
            f"{len(jobs)} jobs ({', '.join(f'{k} {v}' for k, v in job_counts(args.jobs).items())}),"
            f" nominal {sum(rates.values()):.2f} rounds/s, {result.deposit_ether:.1f} ether "
            f"deposited; first Time slot {first_slot}",
            flush=True,
        )
        await wait_for_jobs(cluster, {j.job_id for j in jobs})
        await wait_chain_time(cluster, w3, first_slot)
        print("warm-up done: every keeper holds every job; chaos phase", flush=True)

        sampler.begin()
        since = time.strftime("%Y-%m-%d %H:%M:%S")  # the keepers' log timestamps
        sampling = asyncio.create_task(sampler.run())
        began = time.monotonic()
        b0 = chain_head(cluster)
        until = began + args.seconds
        result.kills, _ = await asyncio.gather(
            chaos(cluster, args, until, sampler), traffic(cluster, w3, jobs, targets, args, until)
        )
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        b1 = chain_head(cluster)
        result.chaos_seconds = time.monotonic() - began
        print(f"chaos phase over (blocks {b0}..{b1}); draining {args.drain:.0f} s", flush=True)
        await asyncio.sleep(args.drain)
        b_end = chain_head(cluster)
        sampler.sample()
        result.measured_seconds = time.monotonic() - began
        for i, kp in cluster.keepers.items():
            if not kp.running:
                result.notes.append(f"keeper {i} is not running at the end")
        if len(result.kills) < int(args.seconds // args.kill_every):
            result.notes.append(f"only {len(result.kills)} kills: a restarted keeper lagged")
        await measure(cluster, w3, jobs, targets, (b0, b1, b_end), result)
        result.usage = sampler.usage
        result.logs = keeper_log_counts(cluster, since)
    finally:
        if sampling is not None:
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
        cluster.stop_all()
        if args.keep_logs:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


# ---------------------------------------------------------------------- reporting


def render_tables(result: Result) -> list[str]:
    rows = [
        "| kind | jobs | rounds/s asked | executions | due | missed | doubles | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total = Tally()
    for kind, t in result.tallies.items():
        asked = f"≤ {t.rate:.2f}" if kind == "Condition" else f"{t.rate:.2f}"
        rows.append(
            f"| {kind} | {t.jobs} | {asked} | {t.executions} | {t.due} | {t.missed} | "
            f"{t.doubles} | {t.failed} |"
        )
        for name in ("jobs", "rate", "executions", "due", "missed", "doubles", "failed"):
            setattr(total, name, getattr(total, name) + getattr(t, name))
    rows.append(
        f"| **all** | {total.jobs} | {total.rate:.2f} | {total.executions} | {total.due} | "
        f"{total.missed} | {total.doubles} | {total.failed} |"
    )
    wall = result.measured_seconds or 1.0
    rows += [
        "",
        "| process | kills | CPU s | CPU % | peak RSS MiB | final RSS MiB | executions sent "
        "| reverted | no quorum |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, u in result.usage.items():
        logs = result.logs.get(name)
        sent = (
            f"{logs['sent']} | {logs['reverted']} | {logs['no_quorum']}" if logs is not None
            else "- | - | -"
        )  # fmt: skip
        rows.append(
            f"| {name} | {u.kills} | {u.cpu_seconds:.0f} | {100 * u.cpu_seconds / wall:.0f} | "
            f"{u.peak_rss / MIB:.0f} | {u.last_rss / MIB:.0f} | {sent} |"
        )
    return rows


def render_notes(result: Result) -> list[str]:
    catch_ups = [k.catch_up for k in result.kills if k.catch_up is not None]
    kills = ", ".join(f"{k.keeper}@{k.at:.0f}s" for k in result.kills)
    lines = [
        f"- {len(result.kills)} kills (keeper@second): {kills or 'none'}; "
        + (
            f"a restarted keeper was within a block of the chain after "
            f"{percentile(catch_ups, 50):.0f} s median, {max(catch_ups):.0f} s at most."
            if catch_ups
            else "no restarted keeper caught up."
        ),
        f"- Chaos phase {result.chaos_seconds:.0f} s, measured (chaos + drain) "
        f"{result.measured_seconds:.0f} s; {result.deposit_ether:.1f} ether of deposits.",
    ]
    for name, counts in result.logs.items():
        other = Counter({k: n for k, n in counts.items() if " " in k})  # WARNING/ERROR lines
        if other:
            top = ", ".join(f"`{event}` {n}" for event, n in other.most_common(6))
            lines.append(f"- {name} log: {top}.")
    lines += [f"- {n}." for n in result.notes]
    return lines


def render(command: str, result: Result, args: argparse.Namespace, commit: str) -> str:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    lines = [
        BEGIN,
        f"## Soak (anvil, 1-second blocks, a random keeper killed every {args.kill_every:.0f} s)",
        "",
        f"Commit: {commit}. Machine: {machine()}. Date: {today}.",
        "",
        f"Command: `{command}`",
        "",
        f"{args.keepers} `keeper run` processes of the e2e Cluster (poll interval 0.25 s, "
        "`deploy --turn-blocks 2`), equal stakes, one quorum, threshold 6667 bps, "
        "so one keeper down "
        f"leaves a quorum alive. {args.jobs} jobs: Time every "
        f"{'/'.join(str(i) for i in args.intervals)} s with random starts on the grid, Cron "
        f"({', '.join(f'`{e}`' for e, _ in CRONS)}), Event on DemoEvent tags "
        f"({CONFIRMATIONS} confirmations; one emitDemo every {args.emit_every:g} s), Condition "
        f"(mode 0, one DemoTarget each; one request every {args.request_every:g} s). Chaos "
        f"phase of {args.seconds:g} s: SIGKILL a random keeper (seed {args.seed}) every "
        f"{args.kill_every:g} s, restart it on its store after {args.down_min:g}-"
        f"{args.down_max:g} s, wait until it has caught up; then {args.drain:g} s of drain.",
        "",
        "Executions: JobExecuted in the chaos phase and the drain (the drain's include slots "
        "due after the chaos phase, so they exceed *due*). Due: Time and Cron slots that fell "
        "due in the chaos phase, DemoEvent logs emitted, units of Condition work requested "
        "(one execution may serve several). Missed: due and never executed (a skipped slot "
        "is a miss; for Condition, work still pending at the end). Doubles: a (job, cursor) "
        "or (job, round) executed twice, whole run. CPU % of one core over the chaos phase "
        "and the drain, summed over a keeper's incarnations; RSS sampled every second. From "
        "each keeper's log over the same time: its execute transactions mined, those that "
        "reverted (another leader closed the round first; the keeper pays their gas), and "
        "its leader attempts short of threshold (`round.no_quorum`).",
        "",
        *render_tables(result),
        "",
        *render_notes(result),
        "",
        END,
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=600, help="length of the chaos phase")
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--kill-every", type=float, default=30, help="seconds between kills")
    p.add_argument("--keepers", type=int, default=5)
    p.add_argument("--seed", type=int, default=1, help="kill schedule and Time job starts")
    p.add_argument("--down-min", type=float, default=1.0, help="shortest outage, seconds")
    p.add_argument("--down-max", type=float, default=5.0, help="longest outage, seconds")
    p.add_argument("--drain", type=float, default=60, help="seconds after the chaos phase")
    p.add_argument(
        "--intervals", type=int, nargs="+", default=[120, 240, 480], help="Time job intervals"
    )
    p.add_argument("--emit-every", type=float, default=5, help="seconds between DemoEvents")
    p.add_argument("--request-every", type=float, default=2, help="seconds between requests")
    p.add_argument("--json", type=Path, help="also write the tallies as JSON here")
    p.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    p.add_argument("--keep-logs", action="store_true", help="keep the cluster's directory")
    return p.parse_args(argv)


async def main() -> int:
    args = parse_args()
    command = shlex.join([".venv/bin/python", "benchmarks/soak.py", *sys.argv[1:]])
    commit = commit_label("keeper", "contracts")
    result = await soak(args)
    section = render(command, result, args, commit)
    print(section)
    if args.json:
        tallies = {k: vars(t) for k, t in result.tallies.items()}
        args.json.write_text(json.dumps(tallies, indent=2) + "\n")
    if not args.no_write:
        write_section(BEGIN, END, section, DOCS)
        print(f"wrote {DOCS}")
    if result.doubles:
        print(f"FAIL: {result.doubles} double executions", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
