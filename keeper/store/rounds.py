"""What this node signed and the rounds it worked on: the equivocation record and round states.

A signature is stored BEFORE it leaves the node and is never rolled back by a reorg; it is
pruned only once it can do no more harm (`prune_locked`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from keeper.core.report import MAX_CHECK_AGE, Report
from keeper.store.chain_state import SnapshotAdvance
from keeper.store.connection import Connection, first_row
from keeper.store.records import SignedReport, report_from_dict, report_to_json

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


class RoundBook:
    """Signatures and rounds of one node. Writes run under the shared connection's lock."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._db = conn.db
        self._write = conn.write

    async def signed_for(
        self, job_id: int, round_: int, check_block: int, check_block_hash: bytes
    ) -> list[SignedReport]:
        """Reports already signed for this equivocation key."""
        rows = await self._db.execute_fetchall(
            "SELECT report, signature FROM signatures WHERE job_id = ? AND round = ? "
            "AND check_block = ? AND check_block_hash = ?",
            (job_id, round_, check_block, check_block_hash),
        )
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
        row = (*key, *result, digest, report_to_json(report), signature)
        # One statement checks, inserts and commits (a member answers in the middle of every
        # block's work, and each statement is a hop to the database thread).
        cur = await self._db.execute(_INSERT_SIGNATURE, (*row, *key, *result))
        if cur.rowcount == 1:
            return True
        # Nothing inserted: this very signature is stored already (a retry), or a conflicting one.
        return not await self._db.execute_fetchall(_CONFLICTING_SIGNATURE, (*key, *result))

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
            row = (*key, *result, digest, report_to_json(report), signature)
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
                for r in await self._db.execute_fetchall(
                    "SELECT job_id, round, check_block, check_block_hash, digest FROM signatures "
                    "WHERE (job_id, round, check_block, check_block_hash, digest) "
                    f"IN (VALUES {values})",
                    [x for key in chunk for x in key],
                ):
                    stored.add((int(r[0]), int(r[1]), int(r[2]), bytes(r[3]), bytes(r[4])))
        return [key in stored for key in keys]

    async def signature_count(self) -> int:
        """Signatures this node ever recorded: those stored and those pruned."""
        row = first_row(
            await self._db.execute_fetchall(
                "SELECT (SELECT COUNT(*) FROM signatures) + "
                "COALESCE((SELECT count FROM pruned WHERE what = 'signatures'), 0)"
            )
        )
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ rounds

    async def round_state(self, job_id: int, round_: int) -> tuple[str, int, dict[str, Any]] | None:
        row = first_row(
            await self._db.execute_fetchall(
                "SELECT status, due_block, data FROM rounds WHERE job_id = ? AND round = ?",
                (job_id, round_),
            )
        )
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
            rows = await self._db.execute_fetchall(
                "SELECT job_id, round, status, due_block, data FROM rounds "
                f"WHERE (job_id, round) IN (VALUES {values})",
                [x for key in chunk for x in key],
            )
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
        """Rounds this node worked on, by last status: those stored and those pruned."""
        rows = await self._db.execute_fetchall(
            "SELECT status, COUNT(*) FROM rounds GROUP BY status UNION ALL "
            "SELECT substr(what, 8), count FROM pruned WHERE what LIKE 'rounds:%'"
        )
        out: Counter[str] = Counter()
        for status, count in rows:
            out[str(status)] += int(count)
        return dict(out)

    # ------------------------------------------------------------------ reorgs and pruning

    async def reopen_locked(self) -> None:
        """A round this node was waiting on may have been executed in a removed block and be
        open again: its turns restart from the next head (the leader sees 'reopened'), or every
        backup whose turn passed would lead at once. Submitted rounds keep theirs."""
        await self._db.execute("UPDATE rounds SET status = 'reopened' WHERE status = 'due'")

    async def prune_locked(self, advance: SnapshotAdvance) -> None:
        """Deletes what the snapshot at `advance.block` made harmless to forget, in the caller's
        transaction, keeping a count of it.

        Rounds of a job below its round at the snapshot are executed for good: no reorg reopens
        them, and a member refuses any report for them (RoundDone) before it signs. Their
        signatures go with them, and so does every signature whose check block is more than
        MAX_CHECK_AGE below the snapshot: the chain refuses such a report and a member refuses
        to sign one (StaleCheckBlock, against the chain's head too), so no conflicting
        signature can follow it. Everything else stays, the open round's signatures included.
        """
        if advance.rounds:
            await self._prune_closed_locked(advance.rounds)
        cur = await self._db.execute(
            "DELETE FROM signatures WHERE check_block < ?", (advance.block - MAX_CHECK_AGE,)
        )
        await self._count_pruned_locked({"signatures": max(cur.rowcount, 0)})

    async def _prune_closed_locked(self, rounds: dict[int, int]) -> None:
        """Deletes the rounds of each job below its round in `rounds`, and their signatures."""
        closed = json.dumps([[job_id, round_] for job_id, round_ in rounds.items()])
        statuses = Counter(
            str(row[0])
            for row in await self._db.execute_fetchall(
                "DELETE FROM rounds WHERE (job_id, round) IN (SELECT r.job_id, r.round FROM "
                "json_each(?) q JOIN rounds r ON r.job_id = json_extract(q.value, '$[0]') "
                "AND r.round < json_extract(q.value, '$[1]')) RETURNING status",
                (closed,),
            )
        )
        cur = await self._db.executemany(
            "DELETE FROM signatures WHERE job_id = ? AND round < ?", rounds.items()
        )
        counts = {f"rounds:{status}": n for status, n in statuses.items()}
        await self._count_pruned_locked({**counts, "signatures": max(cur.rowcount, 0)})

    async def _count_pruned_locked(self, counts: dict[str, int]) -> None:
        rows = [(what, n) for what, n in counts.items() if n]
        if rows:
            await self._db.executemany(
                "INSERT INTO pruned (what, count) VALUES (?, ?) "
                "ON CONFLICT (what) DO UPDATE SET count = count + excluded.count",
                rows,
            )
