"""The store with a long history: restart to synced, per-block store time, size after pruning.

Run: .venv/bin/python benchmarks/store.py [--history 10000 1000000] [--no-write]
     (writes the store section of docs/benchmarks.md; `--no-write` only prints)

For each history size N the store is seeded directly in SQLite (N JobExecuted events would
take a chain days to emit) as a keeper from before the snapshot left it: one keeper, one
epoch, 10,000 Time jobs created in block 1, then 10 executions a block (N / 10 blocks, one in
ten failed), every event row kept, the last 256 headers. Then, in order:

- before: the cost the store paid before the snapshot, on this very file: the execution count
  query over the events (run on every block) and a rollback that folds every stored event
  again (run on every restart and reorg);
- upgrade: the first block applied, which folds the history into the snapshot and prunes it
  (once per store);
- restart to synced: the store closed and opened again, rolled back `reorg_depth` (12) blocks
  as the follower's resume does, its job table read, and the 12 blocks applied again, as a
  node does before it is synced (the store's share: no RPC);
- per block: 600 more blocks, each as a node's store sees it (the header with its 10
  executions, the execution counts, 10 rounds opened, 10 signatures recorded); median and p90
  wall time of the last 200 (the window full, pruning every block);
- size: the pages in use before pruning (history and folded state), after pruning and after 400 and
  600 more blocks (the window full by 400: equal if bounded), and the file after them
  (SQLite reuses freed pages; `VACUUM` gives them back to the filesystem).

The aims (issue 13): restart to synced <= 3 s at 1,000,000 executions; per-block time the same
at 10,000 and 1,000,000; size bounded after pruning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.core.quorum import pack_member
from keeper.core.report import Domain, Report, compute_report_digest
from keeper.store.db import ChainEvent, Store

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- store:begin -->", "<!-- store:end -->"

JOBS = 10_000
PER_BLOCK = 10
KEEP = 256
REORG_DEPTH = 12
MEASURED_BLOCKS = 600
KEEPER = "0x" + "33" * 20
OWNER = "0x" + "44" * 20
IDENTITY: dict[str, Any] = {
    "chain_id": 31337,
    "registry": "0x" + "11" * 20,
    "task_manager": "0x" + "22" * 20,
    "operator": KEEPER,
}
DOMAIN = Domain(31337, "0x" + "22" * 20)
TIME_TRIGGER = "0x" + abi_encode(["uint64"], [60]).hex()


def block_hash(n: int) -> bytes:
    return keccak(f"block{n}".encode())


def ts(n: int) -> int:
    return 1_700_000_000 + 12 * n


def header(n: int) -> tuple[int, bytes, bytes, int]:
    return (n, block_hash(n), block_hash(n - 1), ts(n))


def genesis_events() -> list[tuple[str, dict[str, Any]]]:
    member = "0x" + pack_member(KEEPER, 10**18).hex()
    out: list[tuple[str, dict[str, Any]]] = [
        ("KeeperRegistered", {"keeper": KEEPER, "stake": 10**18, "endpoint": "http://a"}),
        ("EpochStarted", {"epoch": 1, "seed": "0x" + "0e" * 32, "quorumCount": 1}),
        ("QuorumFormed", {"epoch": 1, "quorum": 0, "members": [member]}),
    ]
    for job_id in range(1, JOBS + 1):
        spec = {
            "target": "0x" + "55" * 20,
            "callData": "0x" + keccak(text="onTime()")[:4].hex(),
            "kind": 0,
            "trigger": TIME_TRIGGER,
            "gasLimit": 200_000,
            "thresholdBps": 6667,
            "startTime": 0,
            "endTime": 0,
            "maxExecutions": 0,
            "maxGasPrice": 0,
        }
        forwarder = "0x" + f"{job_id:040x}"
        args = {"jobId": job_id, "owner": OWNER, "kind": 0, "spec": spec, "deposit": 10**24}
        out.append(("JobCreated", {**args, "forwarder": forwarder}))
    return out


def executions_of(block: int) -> list[dict[str, Any]]:
    """Block `block`'s JobExecuted arguments: execution n goes to job n % JOBS, round n // JOBS."""
    out = []
    for k in range(PER_BLOCK):
        n = (block - 2) * PER_BLOCK + k
        out.append(
            {
                "jobId": n % JOBS + 1,
                "round": n // JOBS,
                "cursor": ts(block - 1),
                "executor": KEEPER,
                "success": n % 10 != 0,
                "gasUsed": 50_000,
                "payment": 10**12,
            }
        )
    return out


def chain_events(block: int) -> list[ChainEvent]:
    return [
        ChainEvent("JobExecuted", block, i, block_hash(block), tx_hash(block, i), a, ts(block))
        for i, a in enumerate(executions_of(block))
    ]


def tx_hash(block: int, index: int) -> bytes:
    return keccak(b"%d:%d" % (block, index))


def file_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def in_use(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        pages, free, size = (
            conn.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_count", "freelist_count", "page_size")
        )
    finally:
        conn.close()
    return int((pages - free) * size)


def seed(path: Path, history: int) -> int:
    """Writes `history` executions as an unpruned store holds them; returns the head block."""
    last = 1 + history // PER_BLOCK
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    rows: list[tuple[Any, ...]] = []
    for i, (name, args) in enumerate(genesis_events()):
        row = (1, i, block_hash(1), keccak(b"1:%d" % i), name, args.get("jobId"))
        rows.append((*row, json.dumps({**args, "_ts": ts(1)})))
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    executions = successes = 0
    for start in range(2, last + 1, 5_000):
        rows = []
        for block in range(start, min(last, start + 4_999) + 1):
            for i, a in enumerate(executions_of(block)):
                executions += 1
                successes += 1 if a["success"] else 0
                row = (block, i, block_hash(block), keccak(b"%d:%d" % (block, i)), "JobExecuted")
                rows.append((*row, a["jobId"], json.dumps({**a, "_ts": ts(block)})))
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.executemany(
        "INSERT INTO blocks VALUES (?, ?, ?, ?)",
        [header(n) for n in range(last - KEEP + 1, last + 1)],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO counters VALUES (?, ?)",
        [("executions", executions), ("successes", successes)],
    )
    conn.commit()
    conn.close()
    return last


def old_execution_counts(path: Path) -> float:
    """ms of the query every block ran before the counters (over the stored events)."""
    conn = sqlite3.connect(path)
    try:
        began = time.perf_counter()
        conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(json_extract(args, '$.success') = 1), 0) "
            "FROM events WHERE name = 'JobExecuted'"
        ).fetchone()
        return (time.perf_counter() - began) * 1000
    finally:
        conn.close()


async def block_work(store: Store, block: int) -> None:
    """One block as a node's store sees it: the header and its events, the execution counts,
    the rounds now due opened, and this node's signatures for them recorded."""
    await store.apply_blocks([header(block)], chain_events(block))
    await store.execution_counts()
    due = [(a["jobId"], a["round"] + 1, block) for a in executions_of(block)]
    await store.open_rounds(due)
    fields = {"epoch": 1, "cursor": ts(block), "checkBlock": block}
    fields |= {"checkBlockHash": block_hash(block), "payloadHash": keccak(b"p")}
    fields |= {"executor": to_checksum_address(KEEPER), "deadline": block + 40}
    reports = [Report(jobId=job_id, round=round_, **fields) for job_id, round_, _ in due]
    signed = [(r, compute_report_digest(r, DOMAIN), b"\x01" * 65) for r in reports]
    await store.record_signatures(signed)


async def measure(history: int, folder: Path) -> dict[str, Any]:
    path = folder / f"store-{history}.db"
    await (await Store.open(path, **IDENTITY)).close()  # the schema, as a keeper creates it
    began = time.perf_counter()
    head = seed(path, history)
    seed_s = time.perf_counter() - began
    seeded_bytes = file_size(path)
    counts_ms = old_execution_counts(path)

    store = await Store.open(path, **IDENTITY)
    began = time.perf_counter()
    refolded = await store.rollback_to(head)  # no snapshot yet: every event folded again
    refold_all_s = time.perf_counter() - began
    assert refolded == history + len(genesis_events()), refolded
    unpruned_bytes = in_use(path)
    began = time.perf_counter()
    head += 1
    await store.apply_blocks([header(head)], chain_events(head))
    upgrade_s = time.perf_counter() - began
    assert await store.snapshot_block() == head - KEEP
    await store.close()
    pruned_bytes = in_use(path)

    began = time.perf_counter()
    store = await Store.open(path, **IDENTITY)
    replayed = await store.rollback_to(head - REORG_DEPTH, restart_turns=False)
    await store.jobs()
    for block in range(head - REORG_DEPTH + 1, head + 1):
        await store.apply_blocks([header(block)], chain_events(block))
    restart_s = time.perf_counter() - began
    assert (await store.head()) == (head, block_hash(head))

    times: list[float] = []
    in_use_at: dict[int, int] = {}
    for n, block in enumerate(range(head + 1, head + 1 + MEASURED_BLOCKS), start=1):
        began = time.perf_counter()
        await block_work(store, block)
        times.append((time.perf_counter() - began) * 1000)
        if n in (MEASURED_BLOCKS - 200, MEASURED_BLOCKS):
            in_use_at[n] = in_use(path)
    head += MEASURED_BLOCKS
    total, successes = await store.execution_counts()
    assert total == history + (1 + MEASURED_BLOCKS) * PER_BLOCK, total
    async with store._db.execute("SELECT COUNT(*) FROM events") as cur:
        row = await cur.fetchone()
    stored_events = int(row[0]) if row else 0
    await store.close()
    steady = sorted(times[-200:])
    return {
        "history": history,
        "blocks": head,
        "seed_s": round(seed_s, 1),
        "seeded_mb": round(seeded_bytes / 1e6, 1),
        "unpruned_mb": round(unpruned_bytes / 1e6, 1),
        "old_counts_ms": round(counts_ms, 1),
        "refold_all_s": round(refold_all_s, 2),
        "upgrade_s": round(upgrade_s, 2),
        "restart_s": round(restart_s, 3),
        "replayed": replayed,
        "block_median_ms": round(statistics.median(steady), 2),
        "block_p90_ms": round(steady[int(len(steady) * 0.9)], 2),
        "pruned_mb": round(pruned_bytes / 1e6, 2),
        "file_after_mb": round(file_size(path) / 1e6, 1),
        "in_use_400_mb": round(in_use_at[MEASURED_BLOCKS - 200] / 1e6, 2),
        "in_use_600_mb": round(in_use_at[MEASURED_BLOCKS] / 1e6, 2),
        "stored_events": stored_events,
        "executions_counted": total,
        "successes_counted": successes,
    }


def section(rows: list[dict[str, Any]], command: str, commit: str) -> str:
    from benchmarks.report import machine

    today = time.strftime("%Y-%m-%d", time.gmtime())
    big = rows[-1]
    lines = [
        BEGIN,
        "## Store: a long history, bounded",
        "",
        f"Command: `{command}`. Commit: {commit}. Machine: {machine()}. Date: {today}.",
        "",
        f"Aims: restart to synced <= 3 s at 1,000,000 stored executions (today "
        f"{big['restart_s']} s at {big['history']:,}); per-block store time independent of "
        "history (median and p90 below, 10,000 against 1,000,000); size bounded after pruning.",
        "",
        "The store is seeded directly in SQLite as a keeper from before the snapshot left it "
        "(10,000 Time jobs, 10 executions a block, every event row kept, the last 256 headers); "
        "see benchmarks/store.py. *Restart*: open, roll back 12 blocks as the follower's resume "
        "does, read the job table, apply the 12 blocks again (the store's share; no RPC). "
        "*Per block*: the header with 10 executions, the execution counts, 10 rounds opened "
        "and 10 signatures recorded (synced to disk); median and p90 of the last 200 of 600 "
        "blocks, with the window full and pruning every block. *Before* is what the store "
        "paid before the snapshot, timed on the same seeded file: the count query run on every "
        "block, and a rollback folding every stored event (every restart and reorg). *Upgrade* "
        "is the first block on such a store, which folds its history into the snapshot (once).",
        "",
        "| executions | blocks | restart to synced s | events refolded | per block median ms "
        "| per block p90 ms | before: count query ms | before: refold all s | upgrade s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['history']:,} | {r['blocks']:,} | {r['restart_s']} | {r['replayed']} "
            f"| {r['block_median_ms']} | {r['block_p90_ms']} | {r['old_counts_ms']} "
            f"| {r['refold_all_s']} | {r['upgrade_s']} |"
        )
    lines += [
        "",
        "| executions | in use before pruning MB | after pruning MB | after 400 more blocks MB "
        "| after 600 more blocks MB | file after 600 more blocks MB | events stored |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['history']:,} | {r['unpruned_mb']} | {r['pruned_mb']} | {r['in_use_400_mb']} "
            f"| {r['in_use_600_mb']} | {r['file_after_mb']} | {r['stored_events']:,} |"
        )
    lines += [
        "",
        "What the store holds after pruning is the window above the snapshot (256 blocks of "
        "events and headers, 384 of signatures, the rounds still open) and the folded state "
        "(jobs, keepers, epochs, counters, twice: live and snapshot), whatever the history. "
        "The file keeps the pages "
        "the history used (SQLite reuses them; `VACUUM` returns them once after an upgrade).",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    from benchmarks.report import commit_label, publish

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args()
    if any(h < PER_BLOCK * (KEEP + REORG_DEPTH) for h in args.history):
        parser.error(f"--history is at least {PER_BLOCK * (KEEP + REORG_DEPTH)} executions")
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("STORE_BENCH_DIR")) as folder:
        for history in args.history:
            result = asyncio.run(measure(history, Path(folder)))
            print(json.dumps(result), flush=True)
            rows.append(result)
    commit = commit_label("keeper/store")
    command = " ".join([".venv/bin/python benchmarks/store.py", *sys.argv[1:]])
    publish(BEGIN, END, section(rows, command, commit), no_write=args.no_write)


if __name__ == "__main__":
    main()
