"""The node's store over aiosqlite: one facade over three repositories.

One connection, WAL journal synced on every commit, every multi-row change in one transaction.
What it stores is split by kind: the chain as followed (`chain_state`: headers, events, their
folds and the snapshot that bounds them), what this node signed and the rounds it worked on
(`rounds`), and the transactions it sent (`transactions`). `Store` opens, migrates and checks
the database and lets callers reach all three through one object; moving the snapshot is the
one write that spans them (it prunes rounds, signatures and settled transactions it closed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from keeper.core.jobs import Job, JobStatus
from keeper.core.quorum import Member
from keeper.core.report import Report
from keeper.errors import StoreError, StoreMismatch
from keeper.store.chain_state import KEEP_BLOCKS, ChainState, SnapshotAdvance
from keeper.store.connection import Connection, first_row
from keeper.store.records import (
    JOB_EVENTS,
    KEEPER_EVENTS,
    ChainEvent,
    Epoch,
    PendingTx,
    SignedReport,
    report_from_dict,
    to_bytes,
)
from keeper.store.rounds import RoundBook
from keeper.store.schema import MIGRATIONS, SCHEMA_VERSION
from keeper.store.transactions import TransactionBook

__all__ = [
    "JOB_EVENTS",
    "KEEPER_EVENTS",
    "ChainEvent",
    "Epoch",
    "PendingTx",
    "SignedReport",
    "Store",
    "backup_path",
    "report_from_dict",
    "to_bytes",
]

log = logging.getLogger(__name__)


class Store:
    """Async repository of one node's state. Open with `Store.open`, close with `close`."""

    def __init__(self, conn: aiosqlite.Connection, path: str, keep_blocks: int) -> None:
        self._db = conn
        self.path = path
        shared = Connection(conn)
        self.chain = ChainState(shared, keep_blocks)
        self.rounds = RoundBook(shared)
        self.txs = TransactionBook(shared)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        chain_id: int,
        registry: str,
        task_manager: str,
        operator: str,
        keep_blocks: int = KEEP_BLOCKS,
    ) -> Store:
        """Opens (creating or migrating) the database and checks it belongs to this deployment.

        A database written for another chain, deployment or operator raises StoreMismatch: its
        signatures and pending transactions mean nothing here and must not be reused.
        `keep_blocks`: headers kept, and how far the snapshot trails the head.
        """
        try:
            # Autocommit: a one-statement write is one hop to the database thread instead of two
            # (statement, then commit); multi-statement writes open their transaction with BEGIN.
            conn = await aiosqlite.connect(str(path), isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        store = cls(conn, str(path), keep_blocks)
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
        row = first_row(await self._db.execute_fetchall("PRAGMA user_version"))
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
        existing = {
            str(k): str(v)
            for k, v in await self._db.execute_fetchall("SELECT key, value FROM meta")
        }
        for key, value in identity.items():
            if key in existing and existing[key] != value:
                raise StoreMismatch(
                    f"store {self.path} was written for {key}={existing[key]}, not {value}"
                )
        await self._db.executemany(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", list(identity.items())
        )

    # ------------------------------------------------------------------ the chain as followed

    async def head(self) -> tuple[int, bytes] | None:
        """The last block whose events were applied (the sync cursor)."""
        return await self.chain.head()

    async def block_hash(self, number: int) -> bytes | None:
        return await self.chain.block_hash(number)

    async def block_timestamp(self, number: int) -> int | None:
        return await self.chain.block_timestamp(number)

    @property
    def registry_generation(self) -> int:
        """Moves on whenever blocks with a registry event are applied or blocks are rolled back."""
        return self.chain.registry_generation

    async def apply_blocks(
        self,
        headers: Iterable[tuple[int, bytes, bytes, int]],
        events: Iterable[ChainEvent],
        job_logs: Iterable[tuple[int, int, int, bytes]] = (),
    ) -> None:
        """Records headers (number, hash, parent, timestamp), their events and matched Event-job
        logs (job_id, cursor, block, hash), and folds the events, all in one transaction; the
        snapshot follows `keep_blocks` behind, pruning what it closed in the same transaction."""
        await self.chain.apply_blocks(headers, events, job_logs, self._prune_locked)

    async def _prune_locked(self, advance: SnapshotAdvance) -> None:
        await self.rounds.prune_locked(advance)
        await self.txs.prune_locked(advance.block)

    async def rollback_to(self, number: int, *, restart_turns: bool = True) -> int:
        """Forgets everything learned from blocks above `number`: the snapshot's state comes
        back and only the events above it are folded again (returns how many). Open rounds
        restart their turns unless `restart_turns` is False (a resume, where nothing is known to
        have changed). Signatures, submitted rounds and pending transactions stay."""
        reopen = self.rounds.reopen_locked if restart_turns else None
        return await self.chain.rollback_to(number, reopen)

    async def snapshot_block(self) -> int:
        """The height below which nothing is rolled back any more (-1: no snapshot yet)."""
        return await self.chain.snapshot_block()

    async def job(self, job_id: int) -> Job | None:
        return await self.chain.job(job_id)

    async def jobs(self, status: JobStatus | None = None) -> list[Job]:
        """Jobs in id order (all, or those with `status`)."""
        return await self.chain.jobs(status)

    async def endpoint(self, address: str) -> str | None:
        return await self.chain.endpoint(address)

    async def keepers(self) -> dict[str, dict[str, Any]]:
        return await self.chain.keepers()

    async def latest_epoch(self) -> Epoch | None:
        return await self.chain.latest_epoch()

    async def epoch(self, epoch: int) -> Epoch | None:
        return await self.chain.epoch(epoch)

    async def quorums(self, epoch: int) -> list[list[Member]]:
        """Members of each quorum of `epoch`, in quorum order (empty if the epoch is unknown)."""
        return await self.chain.quorums(epoch)

    async def executions(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """JobExecuted events still stored (above the snapshot), oldest first."""
        return await self.chain.executions(job_id)

    async def execution_counts(self) -> tuple[int, int]:
        """(JobExecuted events, how many of them succeeded) followed up to the head."""
        return await self.chain.execution_counts()

    async def first_block_at(self, timestamp: int) -> int | None:
        """The lowest stored block whose timestamp reaches `timestamp` (None if none does)."""
        return await self.chain.first_block_at(timestamp)

    async def first_blocks_at(self, timestamps: Iterable[int]) -> dict[int, int]:
        return await self.chain.first_blocks_at(timestamps)

    async def next_job_log(self, job_id: int, after_cursor: int, max_block: int) -> int | None:
        return await self.chain.next_job_log(job_id, after_cursor, max_block)

    async def next_job_logs(self, wanted: Iterable[tuple[int, int, int]]) -> dict[int, int]:
        return await self.chain.next_job_logs(wanted)

    async def next_job_log_runs(
        self, wanted: Iterable[tuple[int, int, int, int]]
    ) -> dict[int, list[int]]:
        return await self.chain.next_job_log_runs(wanted)

    # ------------------------------------------------------------------ signatures and rounds

    async def signed_for(
        self, job_id: int, round_: int, check_block: int, check_block_hash: bytes
    ) -> list[SignedReport]:
        """Reports already signed for this equivocation key."""
        return await self.rounds.signed_for(job_id, round_, check_block, check_block_hash)

    async def record_signature(self, report: Report, digest: bytes, signature: bytes) -> bool:
        """Stores a signature unless one with a DIFFERENT result exists for the same key;
        False (nothing stored) when signing would be equivocation."""
        return await self.rounds.record_signature(report, digest, signature)

    async def record_signatures(self, rows: Sequence[tuple[Report, bytes, bytes]]) -> list[bool]:
        return await self.rounds.record_signatures(rows)

    async def signature_count(self) -> int:
        return await self.rounds.signature_count()

    async def round_state(self, job_id: int, round_: int) -> tuple[str, int, dict[str, Any]] | None:
        return await self.rounds.round_state(job_id, round_)

    async def round_states(
        self, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], tuple[str, int, dict[str, Any]]]:
        return await self.rounds.round_states(keys)

    async def open_rounds(self, rounds: Iterable[tuple[int, int, int]]) -> None:
        await self.rounds.open_rounds(rounds)

    async def save_round(
        self, job_id: int, round_: int, status: str, due_block: int, data: dict[str, Any]
    ) -> None:
        await self.rounds.save_round(job_id, round_, status, due_block, data)

    async def round_counts(self) -> dict[str, int]:
        return await self.rounds.round_counts()

    # ------------------------------------------------------------------ transactions

    async def add_pending_tx(self, tx: PendingTx) -> None:
        """Persists a signed transaction; call BEFORE broadcasting it."""
        await self.txs.add_pending_tx(tx)

    async def pending_txs(self, status: str = "pending") -> list[PendingTx]:
        return await self.txs.pending_txs(status)

    async def mark_tx(self, tx_hash: bytes, status: str) -> None:
        await self.txs.mark_tx(tx_hash, status)

    async def mark_nonce(self, nonce: int, status: str, except_hash: bytes | None = None) -> None:
        """Marks every still-pending transaction of `nonce` (e.g. `replaced` once one is mined)."""
        await self.txs.mark_nonce(nonce, status, except_hash)


def backup_path(db: str, version: int) -> str:
    """Where the copy of `db` at schema `version` goes: the first name not taken."""
    path = f"{db}.v{version}.bak"
    n = 0
    while os.path.exists(path):
        n += 1
        path = f"{db}.v{version}.{n}.bak"
    return path
