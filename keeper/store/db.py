"""The node's repository over aiosqlite.

One connection, WAL journal synced on every commit, every multi-row change in one transaction.
Jobs, keepers and epochs are folds of the followed events (keeper.core.jobs), so a reorg is undone
by deleting what came from orphaned blocks and folding again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from keeper.core.addresses import checksum_address
from keeper.core.jobs import Job, JobStatus, Trigger, apply_job_event, job_from_created
from keeper.core.quorum import Member
from keeper.core.report import Report
from keeper.core.triggers import TriggerKind
from keeper.errors import StoreError, StoreMismatch
from keeper.store.schema import MIGRATIONS, SCHEMA_VERSION

_T = TypeVar("_T")

log = logging.getLogger(__name__)

# A stored signature for the same (job, round, check block, hash) with a different result.
_CONFLICTING_SIGNATURE = (
    "SELECT 1 FROM signatures WHERE job_id = ? AND round = ? AND check_block = ? "
    "AND check_block_hash = ? AND (cursor != ? OR payload_hash != ?) LIMIT 1"
)
# Stores a signature unless a conflicting one exists: the check and the insert in one statement.
_INSERT_SIGNATURE = (
    "INSERT OR IGNORE INTO signatures (job_id, round, check_block, check_block_hash, "
    "cursor, payload_hash, digest, report, signature) "
    f"SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS ({_CONFLICTING_SIGNATURE})"
)
# A round's status and data; its due block is kept unless a reorg reopened the round.
_SAVE_ROUND = (
    "INSERT INTO rounds (job_id, round, status, due_block, data) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (job_id, round) DO UPDATE SET status = excluded.status, "
    "data = excluded.data, due_block = CASE WHEN rounds.status = 'reopened' "
    "THEN excluded.due_block ELSE rounds.due_block END"
)
JOB_EVENTS = (
    "JobCreated",
    "JobFunded",
    "JobPaused",
    "JobResumed",
    "JobCancelled",
    "JobFundsWithdrawn",
    "JobOwnershipTransferred",
    "JobExecuted",
)
KEEPER_EVENTS = (
    "KeeperRegistered",
    "StakeAdded",
    "EndpointSet",
    "ExitRequested",
    "Withdrawn",
    "Slashed",
    "KeeperEvicted",
)


@dataclass(frozen=True)
class ChainEvent:
    """A decoded contract event with where it came from. `args` holds JSON-safe values:
    bytes as 0x-hex strings, addresses checksummed, tuples as dicts."""

    name: str
    block_number: int
    log_index: int
    block_hash: bytes
    tx_hash: bytes
    args: dict[str, Any]
    block_timestamp: int = 0


@dataclass(frozen=True)
class SignedReport:
    """A report this node signed, with its signature."""

    report: Report
    signature: bytes


@dataclass(frozen=True)
class PendingTx:
    """A transaction this node signed; `status` is pending, mined, replaced or failed."""

    tx_hash: bytes
    nonce: int
    raw: bytes
    purpose: str
    max_fee: int
    priority_fee: int
    sent_block: int
    status: str


@dataclass(frozen=True)
class Epoch:
    epoch: int
    seed: bytes
    count: int
    start_block: int


def to_bytes(value: Any) -> bytes:
    """JSON-safe hex (or bytes) back to bytes."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _job_to_json(job: Job) -> str:
    t = job.trigger
    return json.dumps(
        {
            "job_id": job.job_id,
            "owner": job.owner,
            "target": job.target,
            "call_data": "0x" + job.call_data.hex(),
            "trigger": {
                "kind": int(t.kind),
                "interval": t.interval,
                "cron": t.cron,
                "emitter": t.emitter,
                "topics": ["0x" + x.hex() for x in t.topics],
                "confirmations": t.confirmations,
                "resolver": t.resolver,
                "resolver_calldata": "0x" + t.resolver_calldata.hex(),
                "mode": t.mode,
                "min_interval": t.min_interval,
            },
            "gas_limit": job.gas_limit,
            "threshold_bps": job.threshold_bps,
            "start_time": job.start_time,
            "end_time": job.end_time,
            "max_executions": job.max_executions,
            "created_block": job.created_block,
            "forwarder": job.forwarder,
            "max_gas_price": job.max_gas_price,
            "status": int(job.status),
            "round": job.round,
            "last_cursor": job.last_cursor,
            "balance": job.balance,
            "opened_block": job.opened_block,
        }
    )


def _epoch_of(row: Any) -> Epoch:
    return Epoch(int(row[0]), bytes(row[1]), int(row[2]), int(row[3]))


def _job_from_json(text: str) -> Job:
    d = json.loads(text)
    t = d["trigger"]
    topics = tuple(to_bytes(x) for x in t["topics"])
    trigger = Trigger(
        kind=TriggerKind(t["kind"]),
        interval=t["interval"],
        cron=t["cron"],
        emitter=t["emitter"],
        topics=(topics[0], topics[1], topics[2], topics[3]),
        confirmations=t["confirmations"],
        resolver=t["resolver"],
        resolver_calldata=to_bytes(t["resolver_calldata"]),
        mode=t["mode"],
        min_interval=t["min_interval"],
    )
    return Job(
        job_id=d["job_id"],
        owner=d["owner"],
        target=d["target"],
        call_data=to_bytes(d["call_data"]),
        trigger=trigger,
        gas_limit=d["gas_limit"],
        threshold_bps=d["threshold_bps"],
        start_time=d["start_time"],
        end_time=d["end_time"],
        max_executions=d["max_executions"],
        created_block=d["created_block"],
        forwarder=d.get("forwarder", ""),
        max_gas_price=d.get("max_gas_price", 0),
        status=JobStatus(d["status"]),
        round=d["round"],
        last_cursor=d["last_cursor"],
        balance=d["balance"],
        opened_block=d.get("opened_block", d["created_block"]),
    )


def _report_to_json(report: Report) -> str:
    m = report.as_message()
    m["checkBlockHash"] = "0x" + report.checkBlockHash.hex()
    m["payloadHash"] = "0x" + report.payloadHash.hex()
    return json.dumps(m)


def report_from_dict(m: dict[str, Any]) -> Report:
    return Report(
        jobId=int(m["jobId"]),
        round=int(m["round"]),
        epoch=int(m["epoch"]),
        cursor=int(m["cursor"]),
        checkBlock=int(m["checkBlock"]),
        checkBlockHash=to_bytes(m["checkBlockHash"]),
        payloadHash=to_bytes(m["payloadHash"]),
        executor=checksum_address(m["executor"]),
        deadline=int(m["deadline"]),
    )


class Store:
    """Async repository of one node's state. Open with `Store.open`, close with `close`."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._db = conn
        self.path = path
        # One writer at a time: coroutines share the connection, so a transaction must not
        # interleave with another coroutine's statements.
        self._write = asyncio.Lock()
        # Every job, decoded, in memory: nodes read the whole table on each pass and the store
        # is its only writer. None until first read, and after a write transaction failed.
        self._jobs: dict[int, Job] | None = None
        # Reads of the sync head, blocks, epochs, quorums and endpoints: apply_blocks updates or
        # drops what a block changes, rollback_to drops them all (members answer many requests
        # per block from them).
        self._folds: dict[tuple[Any, ...], Any] = {}

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls, path: str | Path, *, chain_id: int, registry: str, task_manager: str, operator: str
    ) -> Store:
        """Opens (creating or migrating) the database and checks it belongs to this deployment.

        A database written for another chain, deployment or operator raises StoreMismatch: its
        signatures and pending transactions mean nothing here and must not be reused.
        """
        try:
            # Autocommit: a one-statement write is one hop to the database thread instead of two
            # (statement, then commit); multi-statement writes open their transaction with BEGIN.
            conn = await aiosqlite.connect(str(path), isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        store = cls(conn, str(path))
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit returns only once the WAL is on disk. A signature leaves the node
            # after record_signature returns, so the row that forbids a conflicting one must
            # survive a power cut, not only a crash of the process (NORMAL's guarantee).
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await store._migrate()
            await store._check_identity(
                {
                    "chain_id": str(chain_id),
                    "registry": registry.lower(),
                    "task_manager": task_manager.lower(),
                    "operator": operator.lower(),
                }
            )
        except sqlite3.DatabaseError as exc:
            await conn.close()
            raise StoreError(f"{path} is not a keeper store: {exc}") from exc
        except BaseException:
            await conn.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store schema v{version} is newer than this keeper (v{SCHEMA_VERSION})"
            )
        if 0 < version < SCHEMA_VERSION:
            await self._back_up(version)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            await self._db.executescript(
                "BEGIN;" + MIGRATIONS[target] + f"PRAGMA user_version={target}; COMMIT;"
            )

    async def _back_up(self, version: int) -> None:
        """Copies the database, as it is at schema `version`, before a migration changes it:
        `<db>.v<version>.bak`, or `<db>.v<version>.<n>.bak` next to earlier copies (never
        overwritten). Made with sqlite's backup API, so it is consistent; written under a
        temporary name and renamed, so a copy that exists is whole."""
        target = backup_path(self.path, version)
        partial = f"{target}.part"
        try:
            dest = sqlite3.connect(partial, check_same_thread=False)
            try:
                await self._db.backup(dest)
            finally:
                dest.close()
            os.replace(partial, target)
        except (sqlite3.Error, OSError) as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise StoreError(f"cannot back up store {self.path} to {target}: {exc}") from exc
        log.info("store.backed_up path=%s schema=%d target=%s", self.path, version, target)

    async def _check_identity(self, identity: dict[str, str]) -> None:
        async with self._db.execute("SELECT key, value FROM meta") as cur:
            existing = {str(k): str(v) for k, v in await cur.fetchall()}
        for key, value in identity.items():
            if key in existing and existing[key] != value:
                raise StoreMismatch(
                    f"store {self.path} was written for {key}={existing[key]}, not {value}"
                )
        await self._db.executemany(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", list(identity.items())
        )

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
            async with self._db.execute(sql, params) as cur:
                row = await cur.fetchone()
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
        keep_blocks: int = 256,
    ) -> None:
        """Records headers (number, hash, parent, timestamp), their events and matched Event-job
        logs (job_id, cursor, block, hash), and folds the events, all in one transaction."""
        headers, events = list(headers), list(events)
        async with self._write:
            # Job events change only jobs, kept apart in memory: blocks with nothing else keep
            # the cached epochs, quorums and endpoints (a leader reads every member's endpoint
            # on every round).
            keep = all(e.name in JOB_EVENTS for e in events)
            self._forget_chain_reads(keep_registry=keep)
            try:
                await self._apply_blocks_locked(headers, events, job_logs, keep_blocks)
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
                    if key[1] <= top[0] - keep_blocks:
                        del self._folds[key]

    def _forget_chain_reads(self, *, keep_registry: bool) -> None:
        """Drops cached reads a block changes: the head always (a read during the transaction
        sees its uncommitted rows), and everything but stored blocks unless `keep_registry`."""
        for key in list(self._folds):
            if key[0] == "head" or (not keep_registry and key[0] != "block"):
                del self._folds[key]

    async def _apply_blocks_locked(
        self,
        headers: Iterable[tuple[int, bytes, bytes, int]],
        events: Iterable[ChainEvent],
        job_logs: Iterable[tuple[int, int, int, bytes]] = (),
        keep_blocks: int = 256,
    ) -> None:
        """Records headers (number, hash, parent, timestamp), their events and matched Event-job
        logs (job_id, cursor, block, hash), and folds the events, all in one transaction."""
        headers = list(headers)
        events = sorted(events, key=lambda e: (e.block_number, e.log_index))
        # Every statement is a hop to the database thread, and a member's answers wait for this
        # transaction: rows go in one executemany per table, the jobs' folds at the end.
        await self._job_table()
        changed: dict[int, Job] = {}
        await self._db.execute("BEGIN")
        try:
            await self._db.executemany(
                "INSERT OR REPLACE INTO blocks (number, hash, parent_hash, timestamp) "
                "VALUES (?, ?, ?, ?)",
                headers,
            )
            await self._db.executemany(
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
                await self._fold(ev.name, ev.args, ev.block_number, ev.block_timestamp, changed)
            await self._write_jobs(changed.values())
            await self._db.executemany(
                "INSERT OR IGNORE INTO job_logs (job_id, cursor, block_number, block_hash) "
                "VALUES (?, ?, ?, ?)",
                list(job_logs),
            )
            if headers:
                top = max(h[0] for h in headers)
                await self._db.execute("DELETE FROM blocks WHERE number <= ?", (top - keep_blocks,))
            await self._db.execute("COMMIT")
        except BaseException:
            self._jobs = None
            await self._db.rollback()
            raise

    async def rollback_to(self, number: int, *, restart_turns: bool = True) -> None:
        """Forgets everything learned from blocks above `number` and refolds jobs, keepers and
        epochs from the events that remain; open rounds restart their turns unless
        `restart_turns` is False (a resume, where nothing is known to have changed).
        Signatures, submitted rounds and pending transactions stay."""
        async with self._write:
            self._folds.clear()
            try:
                await self._rollback_to_locked(number, restart_turns)
            finally:
                self._folds.clear()

    async def _rollback_to_locked(self, number: int, restart_turns: bool) -> None:
        """Forgets everything learned from blocks above `number` and refolds jobs, keepers and
        epochs from the events that remain. Signatures and pending transactions stay."""
        self._jobs = None
        changed: dict[int, Job] = {}
        await self._db.execute("BEGIN")
        try:
            await self._db.execute("DELETE FROM blocks WHERE number > ?", (number,))
            await self._db.execute("DELETE FROM events WHERE block_number > ?", (number,))
            await self._db.execute("DELETE FROM job_logs WHERE block_number > ?", (number,))
            await self._db.execute("DELETE FROM jobs")
            await self._db.execute("DELETE FROM keepers")
            await self._db.execute("DELETE FROM epochs")
            await self._db.execute("DELETE FROM quorums")
            # A round this node was waiting on may have been executed in a removed block and be
            # open again: its turns restart from the next head (the leader sees 'reopened'), or
            # every backup whose turn passed would lead at once. Submitted rounds keep theirs.
            if restart_turns:
                await self._db.execute("UPDATE rounds SET status = 'reopened' WHERE status = 'due'")
            async with self._db.execute(
                "SELECT name, block_number, args FROM events ORDER BY block_number, log_index"
            ) as cur:
                rows = await cur.fetchall()
            await self._job_table()  # empty now: the folds below fill it
            for name, block_number, args in rows:
                data = json.loads(args)
                block, ts = int(block_number), int(data.get("_ts", 0))
                await self._fold(str(name), data, block, ts, changed)
            await self._write_jobs(changed.values())
            await self._db.execute("COMMIT")
        except BaseException:
            self._jobs = None
            await self._db.rollback()
            raise

    async def _fold(
        self, name: str, args: dict[str, Any], block: int, ts: int, changed: dict[int, Job]
    ) -> None:
        """Folds one event; jobs change in memory and in `changed`, for `_write_jobs`."""
        if name == "JobCreated":
            job = job_from_created(_bytes_spec(args), block, ts)
            self._put_job(job, changed)
        elif name in JOB_EVENTS:
            job_opt = await self.job(int(args["jobId"]))
            if job_opt is not None:
                self._put_job(apply_job_event(job_opt, name, args, block), changed)
        elif name in KEEPER_EVENTS:
            await self._fold_keeper(name, args)
        elif name == "EpochStarted":
            await self._db.execute(
                "INSERT OR REPLACE INTO epochs (epoch, seed, count, start_block) "
                "VALUES (?, ?, ?, ?)",
                (int(args["epoch"]), to_bytes(args["seed"]), int(args["quorumCount"]), block),
            )
        elif name == "QuorumFormed":
            await self._db.execute(
                "INSERT OR REPLACE INTO quorums (epoch, quorum, members) VALUES (?, ?, ?)",
                (int(args["epoch"]), int(args["quorum"]), json.dumps(list(args["members"]))),
            )

    async def _fold_keeper(self, name: str, args: dict[str, Any]) -> None:
        address = checksum_address(args["keeper"])
        async with self._db.execute(
            "SELECT endpoint, data FROM keepers WHERE address = ?", (address,)
        ) as cur:
            row = await cur.fetchone()
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
            "INSERT OR REPLACE INTO keepers (address, endpoint, data) VALUES (?, ?, ?)",
            (address, endpoint, json.dumps(data)),
        )

    def _put_job(self, job: Job, changed: dict[int, Job]) -> None:
        if self._jobs is not None:
            self._jobs[job.job_id] = job
        changed[job.job_id] = job

    async def _write_jobs(self, jobs: Iterable[Job]) -> None:
        await self._db.executemany(
            "INSERT OR REPLACE INTO jobs (job_id, status, data) VALUES (?, ?, ?)",
            [(job.job_id, int(job.status), _job_to_json(job)) for job in jobs],
        )

    # ------------------------------------------------------------------ reads

    async def _job_table(self) -> dict[int, Job]:
        if self._jobs is None:
            async with self._db.execute("SELECT data FROM jobs ORDER BY job_id") as cur:
                rows = await cur.fetchall()
            jobs = [_job_from_json(str(r[0])) for r in rows]
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
        async with self._db.execute("SELECT address, endpoint, data FROM keepers") as cur:
            rows = await cur.fetchall()
        return {str(a): {"endpoint": str(e), **json.loads(d)} for a, e, d in rows}

    async def latest_epoch(self) -> Epoch | None:
        return await self._read_one(
            ("latest_epoch",),
            "SELECT epoch, seed, count, start_block FROM epochs ORDER BY epoch DESC LIMIT 1",
            (),
            _epoch_of,
        )

    async def epoch(self, epoch: int) -> Epoch | None:
        return await self._read_one(
            ("epoch", epoch),
            "SELECT epoch, seed, count, start_block FROM epochs WHERE epoch = ?",
            (epoch,),
            _epoch_of,
        )

    async def quorums(self, epoch: int) -> list[list[Member]]:
        """Members of each quorum of `epoch`, in quorum order (empty if the epoch is unknown)."""
        from keeper.core.quorum import unpack_member

        key = ("quorums", epoch)
        if key not in self._folds:
            async with self._db.execute(
                "SELECT members FROM quorums WHERE epoch = ? ORDER BY quorum", (epoch,)
            ) as cur:
                rows = await cur.fetchall()
            self._folds[key] = [
                [unpack_member(to_bytes(w)) for w in json.loads(r[0])] for r in rows
            ]
        return [list(q) for q in self._folds[key]]

    async def executions(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """JobExecuted events, oldest first, with block and transaction."""
        query = "SELECT block_number, tx_hash, args FROM events WHERE name = 'JobExecuted'"
        params: tuple[Any, ...] = ()
        if job_id is not None:
            query += " AND job_id = ?"
            params = (job_id,)
        async with self._db.execute(query + " ORDER BY block_number, log_index", params) as cur:
            rows = await cur.fetchall()
        out = []
        for block_number, tx_hash, args in rows:
            data = json.loads(args)
            data.pop("_ts", None)
            out.append({**data, "block": int(block_number), "tx": "0x" + bytes(tx_hash).hex()})
        return out

    async def execution_counts(self) -> tuple[int, int]:
        """(JobExecuted events, how many of them succeeded) known to the store."""
        async with self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(json_extract(args, '$.success') = 1), 0) "
            "FROM events WHERE name = 'JobExecuted'"
        ) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def first_block_at(self, timestamp: int) -> int | None:
        """The lowest stored block whose timestamp reaches `timestamp` (None if none does)."""
        async with self._db.execute(
            "SELECT MIN(number) FROM blocks WHERE timestamp >= ?", (timestamp,)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else None

    async def first_blocks_at(self, timestamps: Iterable[int]) -> dict[int, int]:
        """`first_block_at` of each timestamp, in one query; a timestamp no stored block reaches
        is left out."""
        wanted = sorted(set(timestamps))
        if not wanted:
            return {}
        async with self._db.execute(
            "SELECT number, timestamp FROM blocks WHERE timestamp >= ? ORDER BY number",
            (wanted[0],),
        ) as cur:
            rows = await cur.fetchall()
        out: dict[int, int] = {}
        for number, timestamp in rows:
            # Timestamps never decrease along the chain: the first block reaching each one.
            while len(out) < len(wanted) and wanted[len(out)] <= int(timestamp):
                out[wanted[len(out)]] = int(number)
        return out

    async def next_job_log(self, job_id: int, after_cursor: int, max_block: int) -> int | None:
        """The oldest matched log of an Event job above `after_cursor`, confirmed by `max_block`."""
        async with self._db.execute(
            "SELECT cursor FROM job_logs WHERE job_id = ? AND cursor > ? AND block_number <= ? "
            "ORDER BY cursor LIMIT 1",
            (job_id, after_cursor, max_block),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else None

    async def next_job_logs(self, wanted: Iterable[tuple[int, int, int]]) -> dict[int, int]:
        """`next_job_log` for many Event jobs in one query: for each (job id, after cursor,
        max block), the oldest matched log above the cursor confirmed by the block, keyed by
        job id (jobs with none are left out)."""
        rows = [[job_id, after, max_block] for job_id, after, max_block in wanted]
        if not rows:
            return {}
        async with self._db.execute(
            "WITH q AS (SELECT json_extract(value, '$[0]') AS job_id, "
            "json_extract(value, '$[1]') AS after, json_extract(value, '$[2]') AS max_block "
            "FROM json_each(?)) "
            "SELECT q.job_id, (SELECT l.cursor FROM job_logs l WHERE l.job_id = q.job_id "
            "AND l.cursor > q.after AND l.block_number <= q.max_block "
            "ORDER BY l.cursor LIMIT 1) FROM q",
            (json.dumps(rows),),
        ) as cur:
            found = await cur.fetchall()
        return {int(job_id): int(cursor) for job_id, cursor in found if cursor is not None}

    # ------------------------------------------------------------------ signatures

    async def signed_for(
        self, job_id: int, round_: int, check_block: int, check_block_hash: bytes
    ) -> list[SignedReport]:
        """Reports already signed for this equivocation key."""
        async with self._db.execute(
            "SELECT report, signature FROM signatures WHERE job_id = ? AND round = ? "
            "AND check_block = ? AND check_block_hash = ?",
            (job_id, round_, check_block, check_block_hash),
        ) as cur:
            rows = await cur.fetchall()
        return [SignedReport(report_from_dict(json.loads(r)), bytes(s)) for r, s in rows]

    async def record_signature(self, report: Report, digest: bytes, signature: bytes) -> bool:
        """Stores a signature unless one with a DIFFERENT result exists for the same key.

        Returns False (and stores nothing) when signing would be equivocation.
        """
        async with self._write:
            return await self._record_signature_locked(report, digest, signature)

    async def _record_signature_locked(
        self, report: Report, digest: bytes, signature: bytes
    ) -> bool:
        """Stores a signature unless one with a DIFFERENT result exists for the same key.

        Returns False (and stores nothing) when signing would be equivocation. The check and
        the insert are one statement, so two concurrent requests cannot both pass.
        """
        key = (report.jobId, report.round, report.checkBlock, report.checkBlockHash)
        result = (report.cursor, report.payloadHash)
        row = (*key, *result, digest, _report_to_json(report), signature)
        # One statement checks, inserts and commits (a member answers in the middle of every
        # block's work, and each statement is a hop to the database thread).
        cur = await self._db.execute(_INSERT_SIGNATURE, (*row, *key, *result))
        if cur.rowcount == 1:
            return True
        # Nothing inserted: this very signature is stored already (a retry), or a conflicting one.
        async with self._db.execute(_CONFLICTING_SIGNATURE, (*key, *result)) as check:
            return await check.fetchone() is None

    async def record_signatures(self, rows: Sequence[tuple[Report, bytes, bytes]]) -> list[bool]:
        """`record_signature` for each (report, digest, signature), in order, in a few trips to
        the database thread however many there are. Each insert is still one guarded statement
        of its own (the rows are independent; the transaction around them only makes the batch
        one sync to disk), and an item is stored iff its own row is there afterwards: a
        conflicting row, stored before or by an earlier item of the same call, kept it out."""
        if len(rows) == 1:
            async with self._write:
                return [await self._record_signature_locked(*rows[0])]
        params: list[tuple[Any, ...]] = []
        keys: list[tuple[Any, ...]] = []
        for report, digest, signature in rows:
            key = (report.jobId, report.round, report.checkBlock, report.checkBlockHash)
            result = (report.cursor, report.payloadHash)
            row = (*key, *result, digest, _report_to_json(report), signature)
            params.append((*row, *key, *result))
            keys.append((*key, digest))
        stored: set[tuple[Any, ...]] = set()
        async with self._write:
            # One transaction: one sync of the WAL for the batch instead of one per row.
            await self._db.execute("BEGIN")
            try:
                await self._db.executemany(_INSERT_SIGNATURE, params)
                await self._db.execute("COMMIT")
            except BaseException:
                await self._db.rollback()
                raise
            for start in range(0, len(keys), 150):
                chunk = keys[start : start + 150]
                values = ", ".join("(?, ?, ?, ?, ?)" for _ in chunk)
                async with self._db.execute(
                    "SELECT job_id, round, check_block, check_block_hash, digest FROM signatures "
                    "WHERE (job_id, round, check_block, check_block_hash, digest) "
                    f"IN (VALUES {values})",
                    [x for key in chunk for x in key],
                ) as cur:
                    for r in await cur.fetchall():
                        stored.add((int(r[0]), int(r[1]), int(r[2]), bytes(r[3]), bytes(r[4])))
        return [key in stored for key in keys]

    async def signature_count(self) -> int:
        async with self._db.execute("SELECT COUNT(*) FROM signatures") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ rounds

    async def round_state(self, job_id: int, round_: int) -> tuple[str, int, dict[str, Any]] | None:
        async with self._db.execute(
            "SELECT status, due_block, data FROM rounds WHERE job_id = ? AND round = ?",
            (job_id, round_),
        ) as cur:
            row = await cur.fetchone()
        return (str(row[0]), int(row[1]), json.loads(row[2])) if row else None

    async def round_states(
        self, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], tuple[str, int, dict[str, Any]]]:
        """`round_state` of each (job_id, round) that has one, in one query per 400 keys."""
        wanted = list(dict.fromkeys(keys))
        out: dict[tuple[int, int], tuple[str, int, dict[str, Any]]] = {}
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            values = ", ".join("(?, ?)" for _ in chunk)
            async with self._db.execute(
                "SELECT job_id, round, status, due_block, data FROM rounds "
                f"WHERE (job_id, round) IN (VALUES {values})",
                [x for key in chunk for x in key],
            ) as cur:
                rows = await cur.fetchall()
            for job_id, round_, status, due_block, data in rows:
                out[(int(job_id), int(round_))] = (str(status), int(due_block), json.loads(data))
        return out

    async def open_rounds(self, rounds: Iterable[tuple[int, int, int]]) -> None:
        """Records (job_id, round, due_block) as due, in one transaction: `save_round(...,
        "due", due_block, {})` for each."""
        rows = [(job_id, round_, "due", due_block, "{}") for job_id, round_, due_block in rounds]
        if not rows:
            return
        async with self._write:
            await self._db.execute("BEGIN")
            try:
                await self._db.executemany(_SAVE_ROUND, rows)
                await self._db.execute("COMMIT")
            except BaseException:
                await self._db.rollback()
                raise

    async def save_round(
        self, job_id: int, round_: int, status: str, due_block: int, data: dict[str, Any]
    ) -> None:
        """Records a round's status; its due block is set once, when the round is first seen
        or after a reorg reopened it, and kept by every later update."""
        async with self._write:
            await self._save_round_locked(job_id, round_, status, due_block, data)

    async def _save_round_locked(
        self, job_id: int, round_: int, status: str, due_block: int, data: dict[str, Any]
    ) -> None:
        await self._db.execute(_SAVE_ROUND, (job_id, round_, status, due_block, json.dumps(data)))

    async def round_counts(self) -> dict[str, int]:
        async with self._db.execute("SELECT status, COUNT(*) FROM rounds GROUP BY status") as cur:
            rows = await cur.fetchall()
        return {str(s): int(c) for s, c in rows}

    # ------------------------------------------------------------------ pending transactions

    async def add_pending_tx(self, tx: PendingTx) -> None:
        """Persists a signed transaction; call BEFORE broadcasting it."""
        async with self._write:
            await self._add_pending_tx_locked(tx)

    async def _add_pending_tx_locked(self, tx: PendingTx) -> None:
        """Persists a signed transaction; call BEFORE broadcasting it."""
        await self._db.execute(
            "INSERT OR REPLACE INTO pending_txs (tx_hash, nonce, raw, purpose, max_fee, "
            "priority_fee, sent_block, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tx.tx_hash,
                tx.nonce,
                tx.raw,
                tx.purpose,
                tx.max_fee,
                tx.priority_fee,
                tx.sent_block,
                tx.status,
            ),
        )

    async def pending_txs(self, status: str = "pending") -> list[PendingTx]:
        async with self._db.execute(
            "SELECT tx_hash, nonce, raw, purpose, max_fee, priority_fee, sent_block, status "
            "FROM pending_txs WHERE status = ? ORDER BY nonce, max_fee",
            (status,),
        ) as cur:
            rows = await cur.fetchall()
        return [
            PendingTx(bytes(h), int(n), bytes(r), str(p), int(m), int(pf), int(sb), str(s))
            for h, n, r, p, m, pf, sb, s in rows
        ]

    async def mark_tx(self, tx_hash: bytes, status: str) -> None:
        async with self._write:
            await self._mark_tx_locked(tx_hash, status)

    async def _mark_tx_locked(self, tx_hash: bytes, status: str) -> None:
        await self._db.execute(
            "UPDATE pending_txs SET status = ? WHERE tx_hash = ?", (status, tx_hash)
        )

    async def mark_nonce(self, nonce: int, status: str, except_hash: bytes | None = None) -> None:
        """Marks every still-pending transaction of `nonce` (e.g. `replaced` once one is mined)."""
        async with self._write:
            await self._mark_nonce_locked(nonce, status, except_hash)

    async def _mark_nonce_locked(
        self, nonce: int, status: str, except_hash: bytes | None = None
    ) -> None:
        """Marks every still-pending transaction of `nonce` (e.g. `replaced` once one is mined)."""
        await self._db.execute(
            "UPDATE pending_txs SET status = ? WHERE nonce = ? AND status = 'pending' "
            "AND tx_hash != ?",
            (status, nonce, except_hash or b""),
        )

    async def max_nonce(self) -> int | None:
        async with self._db.execute("SELECT MAX(nonce) FROM pending_txs") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else None


def backup_path(db: str, version: int) -> str:
    """Where the copy of `db` at schema `version` goes: the first name not taken."""
    path = f"{db}.v{version}.bak"
    n = 0
    while os.path.exists(path):
        n += 1
        path = f"{db}.v{version}.{n}.bak"
    return path


def _bytes_spec(args: dict[str, Any]) -> dict[str, Any]:
    spec = dict(args["spec"])
    spec["callData"] = to_bytes(spec["callData"])
    spec["trigger"] = to_bytes(spec["trigger"])
    return {**args, "spec": spec}
