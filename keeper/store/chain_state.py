"""What the node knows of the chain: recent headers, followed events, and their folds (jobs,
keepers, epochs, quorums, execution counters), with a snapshot that bounds all of it.

Jobs, keepers and epochs are folds of the followed events (keeper.core.jobs). The live tables
hold the fold up to the sync head; the `snap_*` tables hold it up to the snapshot height, which
trails the head by `keep_blocks` (as deep as the headers kept, so every reorg the follower can
see lands above it) and moves SNAPSHOT_STEP blocks at a time. Events at or below the snapshot
are folded into it and deleted, so a reorg or a restart puts the snapshot back and folds only
the events above it, and the store holds a window of blocks, not the history.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aiosqlite

from keeper.core.addresses import checksum_address
from keeper.core.jobs import Job, JobStatus, apply_job_event, job_from_created
from keeper.core.quorum import Member, unpack_member
from keeper.core.triggers import TriggerKind
from keeper.store.connection import Connection, first_row
from keeper.store.records import (
    JOB_EVENTS,
    KEEPER_EVENTS,
    REGISTRY_EVENTS,
    ChainEvent,
    Epoch,
    bytes_spec,
    epoch_of,
    job_from_json,
    job_to_json,
    to_bytes,
)

_T = TypeVar("_T")

log = logging.getLogger(__name__)

# Headers kept, and how far the snapshot trails the head: the follower finds a reorg by walking
# back over stored headers, so none it can find goes below the snapshot.
KEEP_BLOCKS = 256
# Blocks the snapshot moves at a time: folding a block's events into it and pruning behind it
# is a dozen statements, each a hop to the database thread; once per 16 blocks instead of once
# per block (the snapshot trails the head by keep_blocks to keep_blocks + 15).
SNAPSHOT_STEP = 16


@dataclass(frozen=True)
class _Tables:
    """One set of fold tables: the live state or the snapshot's."""

    jobs: str
    keepers: str
    epochs: str
    quorums: str
    counters: str

    def all(self) -> tuple[str, ...]:
        return (self.jobs, self.keepers, self.epochs, self.quorums, self.counters)


LIVE = _Tables("jobs", "keepers", "epochs", "quorums", "counters")
SNAPSHOT = _Tables("snap_jobs", "snap_keepers", "snap_epochs", "snap_quorums", "snap_counters")


@dataclass(frozen=True)
class SnapshotAdvance:
    """The snapshot moved up to `block`; `rounds` holds each job that executed on the way, with
    its round at `block`: every earlier round of it is closed for good (no reorg reaches it)."""

    block: int
    rounds: dict[int, int]


class _Fold:
    """Folds events, in chain order, into one set of tables. Jobs change in `jobs` (the caller's
    dict) and are written, with the counters, by `finish`."""

    def __init__(self, db: aiosqlite.Connection, tables: _Tables, jobs: dict[int, Job]) -> None:
        self._db = db
        self._t = tables
        self.jobs = jobs
        self.changed: dict[int, Job] = {}
        self.executed: set[int] = set()
        self._counts: Counter[str] = Counter()

    async def apply(self, name: str, args: dict[str, Any], block: int, ts: int) -> None:
        if name == "JobCreated":
            self._put(job_from_created(bytes_spec(args), block, ts))
        elif name in JOB_EVENTS:
            job = self.jobs.get(int(args["jobId"]))
            if job is not None:
                self._put(apply_job_event(job, name, args, block))
            if name == "JobExecuted":
                self.executed.add(int(args["jobId"]))
                self._counts["executions"] += 1
                self._counts["successes"] += 1 if args.get("success") else 0
        elif name in KEEPER_EVENTS:
            await self._fold_keeper(name, args)
        elif name == "EpochStarted":
            await self._db.execute(
                f"INSERT OR REPLACE INTO {self._t.epochs} (epoch, seed, count, start_block) "
                "VALUES (?, ?, ?, ?)",
                (int(args["epoch"]), to_bytes(args["seed"]), int(args["quorumCount"]), block),
            )
        elif name == "QuorumFormed":
            await self._db.execute(
                f"INSERT OR REPLACE INTO {self._t.quorums} (epoch, quorum, members) "
                "VALUES (?, ?, ?)",
                (int(args["epoch"]), int(args["quorum"]), json.dumps(list(args["members"]))),
            )

    async def finish(self) -> None:
        # An empty executemany is still a hop to the database thread: skipped.
        if self.changed:
            await self._db.executemany(
                f"INSERT OR REPLACE INTO {self._t.jobs} (job_id, status, data) VALUES (?, ?, ?)",
                [(job.job_id, int(job.status), job_to_json(job)) for job in self.changed.values()],
            )
        counts = [(name, n) for name, n in self._counts.items() if n]
        if counts:
            await self._db.executemany(
                f"INSERT INTO {self._t.counters} (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                counts,
            )

    def _put(self, job: Job) -> None:
        self.jobs[job.job_id] = job
        self.changed[job.job_id] = job

    async def _fold_keeper(self, name: str, args: dict[str, Any]) -> None:
        address = checksum_address(args["keeper"])
        row = first_row(
            await self._db.execute_fetchall(
                f"SELECT endpoint, data FROM {self._t.keepers} WHERE address = ?", (address,)
            )
        )
        endpoint = str(row[0]) if row else ""
        data: dict[str, Any] = json.loads(row[1]) if row else {"status": "none", "stake": 0}
        if name == "KeeperRegistered":
            endpoint = str(args["endpoint"])
            data = {"status": "active", "stake": int(args["stake"])}
        elif name == "StakeAdded":
            data["stake"] = int(args["total"])
        elif name == "EndpointSet":
            endpoint = str(args["endpoint"])
        elif name in ("ExitRequested", "KeeperEvicted"):
            data["status"] = "exiting"
        elif name == "Withdrawn":
            data = {"status": "withdrawn", "stake": 0}
        elif name == "Slashed":
            data = {"status": "slashed", "stake": 0}
        await self._db.execute(
            f"INSERT OR REPLACE INTO {self._t.keepers} (address, endpoint, data) VALUES (?, ?, ?)",
            (address, endpoint, json.dumps(data)),
        )


class ChainState:
    """Headers, events and their folds. Writes run under the shared connection's lock."""

    def __init__(self, conn: Connection, keep_blocks: int = KEEP_BLOCKS) -> None:
        self._conn = conn
        self._db = conn.db
        self.keep_blocks = keep_blocks
        # Every job, decoded, in memory: nodes read the whole table on each pass and the store
        # is its only writer. None until first read, and after a write transaction failed.
        self._jobs: dict[int, Job] | None = None
        # Reads of the sync head, blocks, epochs, quorums and endpoints: apply_blocks updates or
        # drops what a block changes, rollback_to drops them all (members answer many requests
        # per block from them).
        self._folds: dict[tuple[Any, ...], Any] = {}
        self._snapshot: int | None = None  # the snapshot height, once read (-1: none yet)
        # Moves on whenever the registry's state may have changed in the store's view: blocks
        # applied with any registry event, or blocks rolled back. What a node read
        # of the registry at one generation holds until the next (keeper.core.rotation).
        self.registry_generation = 0

    # ------------------------------------------------------------------ snapshot

    async def snapshot_block(self) -> int:
        """The height the snapshot tables hold the state of; -1 before the first snapshot."""
        if self._snapshot is None:
            row = first_row(
                await self._db.execute_fetchall(
                    "SELECT value FROM meta WHERE key = 'snapshot_block'"
                )
            )
            self._snapshot = int(row[0]) if row else -1
        return self._snapshot

    async def _advance_snapshot(self, target: int) -> SnapshotAdvance | None:
        """Folds the events up to `target` into the snapshot and deletes them, with the matched
        logs no Event job will propose again. In the caller's transaction."""
        old = await self.snapshot_block()
        if target <= old:
            return None
        ids = [
            int(r[0])
            for r in await self._db.execute_fetchall(
                "SELECT DISTINCT job_id FROM events WHERE block_number > ? AND block_number <= ? "
                "AND job_id IS NOT NULL",
                (old, target),
            )
        ]
        fold = _Fold(self._db, SNAPSHOT, await self._read_jobs(SNAPSHOT.jobs, ids))
        await self._fold_events(fold, old, target)
        await fold.finish()
        await self._db.execute("DELETE FROM events WHERE block_number <= ?", (target,))
        # An Event job never proposes a log at or below its cursor, and a cancelled job none.
        executed = [fold.jobs[i] for i in sorted(fold.executed) if i in fold.jobs]
        await self._db.executemany(
            "DELETE FROM job_logs WHERE job_id = ? AND cursor <= ?",
            [(job.job_id, job.last_cursor) for job in executed if job.kind == TriggerKind.Event],
        )
        await self._db.executemany(
            "DELETE FROM job_logs WHERE job_id = ? AND block_number <= ?",
            [(j.job_id, target) for j in fold.changed.values() if j.status == JobStatus.Cancelled],
        )
        await self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('snapshot_block', ?)", (str(target),)
        )
        self._snapshot = target
        return SnapshotAdvance(target, {job.job_id: job.round for job in executed})

    async def _read_jobs(self, table: str, ids: Iterable[int]) -> dict[int, Job]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = await self._db.execute_fetchall(
            f"SELECT data FROM {table} WHERE job_id IN (SELECT value FROM json_each(?))",
            (json.dumps(wanted),),
        )
        jobs = [job_from_json(str(r[0])) for r in rows]
        return {job.job_id: job for job in jobs}

    # ------------------------------------------------------------------ blocks and sync cursor

    async def _read_one(
        self,
        key: tuple[Any, ...],
        sql: str,
        params: tuple[Any, ...],
        convert: Callable[[Any], _T],
    ) -> _T | None:
        """One row of a table folded from blocks, converted; kept in the per-block read cache
        (cleared whenever blocks are applied or rolled back)."""
        if key not in self._folds:
            row = first_row(await self._db.execute_fetchall(sql, params))
            self._folds[key] = convert(row) if row else None
        return cast(_T | None, self._folds[key])

    async def head(self) -> tuple[int, bytes] | None:
        """The last block whose events were applied (the sync cursor)."""
        return await self._read_one(
            ("head",),
            "SELECT number, hash FROM blocks ORDER BY number DESC LIMIT 1",
            (),
            lambda row: (int(row[0]), bytes(row[1])),
        )

    async def _block(self, number: int) -> tuple[bytes, int] | None:
        return await self._read_one(
            ("block", number),
            "SELECT hash, timestamp FROM blocks WHERE number = ?",
            (number,),
            lambda row: (bytes(row[0]), int(row[1])),
        )

    async def block_hash(self, number: int) -> bytes | None:
        block = await self._block(number)
        return block[0] if block else None

    async def block_timestamp(self, number: int) -> int | None:
        block = await self._block(number)
        return block[1] if block else None

    async def apply_blocks(
        self,
        headers: Iterable[tuple[int, bytes, bytes, int]],
        events: Iterable[ChainEvent],
        job_logs: Iterable[tuple[int, int, int, bytes]] = (),
        on_snapshot: Callable[[SnapshotAdvance], Awaitable[None]] | None = None,
    ) -> None:
        """Records headers (number, hash, parent, timestamp), their events and matched Event-job
        logs (job_id, cursor, block, hash), folds the events, and moves the snapshot up behind
        the head (`on_snapshot` prunes what it closed), all in one transaction."""
        headers, events = list(headers), list(events)
        keep_blocks = self.keep_blocks
        async with self._conn.write:
            # Job events change only jobs, kept apart in memory: blocks with nothing else keep
            # the cached epochs, quorums and endpoints (a leader reads every member's endpoint
            # on every round).
            keep = all(e.name in JOB_EVENTS for e in events)
            if any(e.name in REGISTRY_EVENTS for e in events):
                self.registry_generation += 1
            self._forget_chain_reads(keep_registry=keep)
            try:
                await self._apply_blocks_locked(headers, events, job_logs, on_snapshot)
            except BaseException:
                self._folds.clear()
                raise
            self._forget_chain_reads(keep_registry=keep)
            for number, block_hash, _parent, timestamp in headers:
                self._folds[("block", number)] = (block_hash, timestamp)
            if headers:
                top = max(headers)
                self._folds[("head",)] = (top[0], top[1])
                for key in [k for k in self._folds if k[0] == "block"]:
                    if key[1] < top[0] - keep_blocks:
                        del self._folds[key]

    def _forget_chain_reads(self, *, keep_registry: bool) -> None:
        """Drops cached reads a block changes: the head always (a read during the transaction
        sees its uncommitted rows), and everything but stored blocks unless `keep_registry`."""
        for key in list(self._folds):
            if key[0] == "head" or (not keep_registry and key[0] != "block"):
                del self._folds[key]

    async def _apply_blocks_locked(
        self,
        headers: list[tuple[int, bytes, bytes, int]],
        events: list[ChainEvent],
        job_logs: Iterable[tuple[int, int, int, bytes]],
        on_snapshot: Callable[[SnapshotAdvance], Awaitable[None]] | None,
    ) -> None:
        events = sorted(events, key=lambda e: (e.block_number, e.log_index))
        # Every statement is a hop to the database thread, and a member's answers wait for this
        # transaction: rows go in one executemany per table, the jobs' folds at the end.
        fold = _Fold(self._db, LIVE, await self._job_table())
        try:
            async with self._conn.transaction() as db:
                await db.executemany(
                    "INSERT OR REPLACE INTO blocks (number, hash, parent_hash, timestamp) "
                    "VALUES (?, ?, ?, ?)",
                    headers,
                )
                if events:
                    await db.executemany(
                        "INSERT OR IGNORE INTO events "
                        "(block_number, log_index, block_hash, tx_hash, name, job_id, args) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                ev.block_number,
                                ev.log_index,
                                ev.block_hash,
                                ev.tx_hash,
                                ev.name,
                                ev.args.get("jobId"),
                                json.dumps({**ev.args, "_ts": ev.block_timestamp}),
                            )
                            for ev in events
                        ],
                    )
                for ev in events:
                    await fold.apply(ev.name, ev.args, ev.block_number, ev.block_timestamp)
                await fold.finish()
                logs = list(job_logs)
                if logs:
                    await db.executemany(
                        "INSERT OR IGNORE INTO job_logs (job_id, cursor, block_number, "
                        "block_hash) VALUES (?, ?, ?, ?)",
                        logs,
                    )
                cut = max(h[0] for h in headers) - self.keep_blocks if headers else -1
                if cut - await self.snapshot_block() >= SNAPSHOT_STEP:
                    # The snapshot's own header stays: the head after a rollback to it, and
                    # the bottom of the follower's walk back (a reorg below it starts over).
                    await db.execute("DELETE FROM blocks WHERE number < ?", (cut,))
                    advance = await self._advance_snapshot(cut)
                    if advance is not None and on_snapshot is not None:
                        await on_snapshot(advance)
        except BaseException:
            self._jobs = None
            self._snapshot = None
            raise

    async def rollback_to(
        self, number: int, also: Callable[[], Awaitable[None]] | None = None
    ) -> int:
        """Forgets everything learned from blocks above `number`: the snapshot's state comes
        back and the events between it and `number` are folded again (`also` runs in the same
        transaction). Returns how many events were folded again.

        Below the snapshot nothing can be put back: the chain state is dropped whole and the
        follower learns it again from its start block."""
        async with self._conn.write:
            self._folds.clear()
            self.registry_generation += 1
            try:
                return await self._rollback_to_locked(number, also)
            finally:
                self._folds.clear()

    async def _rollback_to_locked(
        self, number: int, also: Callable[[], Awaitable[None]] | None
    ) -> int:
        snapshot = await self.snapshot_block()
        self._jobs = None
        try:
            async with self._conn.transaction() as db:
                for table in LIVE.all():
                    await db.execute(f"DELETE FROM {table}")
                if number < snapshot:
                    log.warning("store.reset below_snapshot=%d to=%d", snapshot, number)
                    for table in ("blocks", "events", "job_logs", *SNAPSHOT.all()):
                        await db.execute(f"DELETE FROM {table}")
                    await db.execute("DELETE FROM meta WHERE key = 'snapshot_block'")
                    self._snapshot = -1
                else:
                    await db.execute("DELETE FROM blocks WHERE number > ?", (number,))
                    await db.execute("DELETE FROM events WHERE block_number > ?", (number,))
                    await db.execute("DELETE FROM job_logs WHERE block_number > ?", (number,))
                    for live, snap in zip(LIVE.all(), SNAPSHOT.all(), strict=True):
                        await db.execute(f"INSERT INTO {live} SELECT * FROM {snap}")
                if also is not None:
                    await also()
                fold = _Fold(db, LIVE, await self._job_table())
                refolded = 0
                if number >= snapshot:
                    refolded = await self._fold_events(fold, snapshot, number)
                await fold.finish()
        except BaseException:
            self._jobs = None
            self._snapshot = None
            raise
        log.info("store.rollback to=%d snapshot=%d refolded=%d", number, snapshot, refolded)
        return refolded

    async def _fold_events(self, fold: _Fold, above: int, upto: int) -> int:
        """Folds the stored events of blocks `above` < b <= `upto`, in chain order, a chunk of
        rows at a time (a store written before the snapshot holds its whole history); returns
        how many."""
        count = 0
        async with self._db.execute(
            "SELECT name, block_number, args FROM events WHERE block_number > ? "
            "AND block_number <= ? ORDER BY block_number, log_index",
            (above, upto),
        ) as cur:
            while rows := list(await cur.fetchmany(10_000)):
                for name, block_number, args in rows:
                    data = json.loads(args)
                    await fold.apply(str(name), data, int(block_number), int(data.get("_ts", 0)))
                count += len(rows)
        return count

    # ------------------------------------------------------------------ reads

    async def _job_table(self) -> dict[int, Job]:
        if self._jobs is None:
            rows = await self._db.execute_fetchall("SELECT data FROM jobs ORDER BY job_id")
            jobs = [job_from_json(str(r[0])) for r in rows]
            self._jobs = {job.job_id: job for job in jobs}
        return self._jobs

    async def job(self, job_id: int) -> Job | None:
        return (await self._job_table()).get(job_id)

    async def jobs(self, status: JobStatus | None = None) -> list[Job]:
        """Jobs in id order (all, or those with `status`)."""
        table = await self._job_table()
        return [table[i] for i in sorted(table) if status is None or table[i].status == status]

    async def endpoint(self, address: str) -> str | None:
        return await self._read_one(
            ("endpoint", address.lower()),
            "SELECT endpoint FROM keepers WHERE address = ?",
            (checksum_address(address),),
            lambda row: str(row[0]),
        )

    async def keepers(self) -> dict[str, dict[str, Any]]:
        rows = await self._db.execute_fetchall("SELECT address, endpoint, data FROM keepers")
        return {str(a): {"endpoint": str(e), **json.loads(d)} for a, e, d in rows}

    async def latest_epoch(self) -> Epoch | None:
        return await self._read_one(
            ("latest_epoch",),
            "SELECT epoch, seed, count, start_block FROM epochs ORDER BY epoch DESC LIMIT 1",
            (),
            epoch_of,
        )

    async def epoch(self, epoch: int) -> Epoch | None:
        return await self._read_one(
            ("epoch", epoch),
            "SELECT epoch, seed, count, start_block FROM epochs WHERE epoch = ?",
            (epoch,),
            epoch_of,
        )

    async def quorums(self, epoch: int) -> list[list[Member]]:
        """Members of each quorum of `epoch`, in quorum order (empty if the epoch is unknown)."""
        key = ("quorums", epoch)
        if key not in self._folds:
            rows = await self._db.execute_fetchall(
                "SELECT members FROM quorums WHERE epoch = ? ORDER BY quorum", (epoch,)
            )
            self._folds[key] = [
                [unpack_member(to_bytes(w)) for w in json.loads(r[0])] for r in rows
            ]
        return [list(q) for q in self._folds[key]]

    async def executions(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """JobExecuted events still stored (those above the snapshot), oldest first, with block
        and transaction. The chain keeps them all (`keeper job show` reads them there)."""
        query = "SELECT block_number, tx_hash, args FROM events WHERE name = 'JobExecuted'"
        params: tuple[Any, ...] = ()
        if job_id is not None:
            query += " AND job_id = ?"
            params = (job_id,)
        rows = await self._db.execute_fetchall(query + " ORDER BY block_number, log_index", params)
        out = []
        for block_number, tx_hash, args in rows:
            data = json.loads(args)
            data.pop("_ts", None)
            out.append({**data, "block": int(block_number), "tx": "0x" + bytes(tx_hash).hex()})
        return out

    async def execution_counts(self) -> tuple[int, int]:
        """(JobExecuted events, how many of them succeeded) followed up to the head: counters
        kept by the fold, not a count of stored rows."""
        counts = {
            str(name): int(value)
            for name, value in await self._db.execute_fetchall(
                "SELECT name, value FROM counters WHERE name IN ('executions', 'successes')"
            )
        }
        return counts.get("executions", 0), counts.get("successes", 0)

    async def first_block_at(self, timestamp: int) -> int | None:
        """The lowest stored block whose timestamp reaches `timestamp` (None if none does)."""
        row = first_row(
            await self._db.execute_fetchall(
                "SELECT MIN(number) FROM blocks WHERE timestamp >= ?", (timestamp,)
            )
        )
        return int(row[0]) if row and row[0] is not None else None

    async def first_blocks_at(self, timestamps: Iterable[int]) -> dict[int, int]:
        """`first_block_at` of each timestamp, in one query; a timestamp no stored block reaches
        is left out."""
        wanted = sorted(set(timestamps))
        if not wanted:
            return {}
        rows = await self._db.execute_fetchall(
            "SELECT number, timestamp FROM blocks WHERE timestamp >= ? ORDER BY number",
            (wanted[0],),
        )
        out: dict[int, int] = {}
        for number, timestamp in rows:
            # Timestamps never decrease along the chain: the first block reaching each one.
            while len(out) < len(wanted) and wanted[len(out)] <= int(timestamp):
                out[wanted[len(out)]] = int(number)
        return out

    async def next_job_log(self, job_id: int, after_cursor: int, max_block: int) -> int | None:
        """The oldest matched log of an Event job above `after_cursor`, confirmed by `max_block`."""
        row = first_row(
            await self._db.execute_fetchall(
                "SELECT cursor FROM job_logs WHERE job_id = ? AND cursor > ? AND block_number <= ? "
                "ORDER BY cursor LIMIT 1",
                (job_id, after_cursor, max_block),
            )
        )
        return int(row[0]) if row else None

    async def next_job_logs(self, wanted: Iterable[tuple[int, int, int]]) -> dict[int, int]:
        """`next_job_log` for many Event jobs in one query: for each (job id, after cursor,
        max block), the oldest matched log above the cursor confirmed by the block, keyed by
        job id (jobs with none are left out)."""
        runs = await self.next_job_log_runs((job, after, top, 1) for job, after, top in wanted)
        return {job_id: cursors[0] for job_id, cursors in runs.items()}

    async def next_job_log_runs(
        self, wanted: Iterable[tuple[int, int, int, int]]
    ) -> dict[int, list[int]]:
        """For each (job id, after cursor, max block, limit), up to `limit` of the job's matched
        logs above the cursor confirmed by the block, in cursor order, in one query: the logs an
        Event job's next rounds work off, one per round. Jobs with none are left out."""
        rows = [[job_id, after, top, limit] for job_id, after, top, limit in wanted if limit > 0]
        if not rows:
            return {}
        # One index seek per log: each step finds the next confirmed log above the last.
        found = await self._db.execute_fetchall(
            "WITH RECURSIVE q AS (SELECT json_extract(value, '$[0]') AS job_id, "
            "json_extract(value, '$[1]') AS after, json_extract(value, '$[2]') AS max_block, "
            "json_extract(value, '$[3]') AS lim FROM json_each(?)), "
            "r(job_id, cursor, max_block, lim, n) AS ("
            "SELECT job_id, after, max_block, lim, 0 FROM q "
            "UNION ALL SELECT r.job_id, (SELECT c.cursor FROM job_logs c "
            "WHERE c.job_id = r.job_id AND c.cursor > r.cursor AND c.block_number <= r.max_block "
            "ORDER BY c.cursor LIMIT 1), r.max_block, r.lim, r.n + 1 FROM r "
            "WHERE r.cursor IS NOT NULL AND r.n < r.lim) "
            "SELECT job_id, cursor FROM r WHERE n > 0 AND cursor IS NOT NULL "
            "ORDER BY job_id, cursor",
            (json.dumps(rows),),
        )
        out: dict[int, list[int]] = {}
        for job_id, cursor in found:
            out.setdefault(int(job_id), []).append(int(cursor))
        return out
