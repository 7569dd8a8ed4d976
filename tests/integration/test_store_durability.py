"""What the store's file promises an operator: a signature is on disk before it leaves the node,
a migration never touches the only copy of a database, and one process at a time uses it."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import keeper.store.db as store_db
from keeper.core.report import compute_report_digest
from keeper.errors import StoreInUse
from keeper.store.lock import StoreLock
from keeper.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.integration.store_support import read_table
from tests.integration.test_store import DOMAIN, SIG, open_store, report, sign

# PRAGMA synchronous values
SYNCHRONOUS_FULL = 2

NEXT = SCHEMA_VERSION + 1
# A harmless next schema version: a new table, and a column on one that holds rows.
NEXT_MIGRATION = """
    CREATE TABLE migrated (x INTEGER);
    ALTER TABLE signatures ADD COLUMN migrated_note TEXT;
"""


def user_version(path: Path | str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def tables(path: Path | str) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {str(r[0]) for r in rows}
    finally:
        conn.close()


@pytest.fixture
def upgrade(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Turns this keeper into one a schema version later (until the test ends)."""

    def to_next_schema() -> None:
        monkeypatch.setitem(MIGRATIONS, NEXT, NEXT_MIGRATION)
        monkeypatch.setattr(store_db, "SCHEMA_VERSION", NEXT)

    return to_next_schema


# ---------------------------------------------------------------------- the equivocation record


async def test_every_commit_is_synced_to_disk(tmp_path: Path) -> None:
    # given an open store
    store = await open_store(tmp_path / "k.db")
    try:
        # then its connection syncs the WAL on every commit (NORMAL would only on checkpoints:
        # a power cut could lose a signature that has already left the node)
        async with store._db.execute("PRAGMA synchronous") as cur:
            row = await cur.fetchone()
        assert row is not None and row[0] == SYNCHRONOUS_FULL
    finally:
        await store.close()


async def test_a_signature_is_committed_when_record_signature_returns(tmp_path: Path) -> None:
    # given an open store and a second, independent connection (another process's view)
    path = tmp_path / "k.db"
    store = await open_store(path)
    try:
        # when a signature is recorded (and nothing else happens on the store)
        assert await sign(store, report())
        # then the other connection sees the row at once: it is committed, not pending
        rows = read_table(path, "signatures")
        assert [(r[0], r[1], r[2]) for r in rows] == [(7, 3, 120)]
        # and a batch likewise
        batch = [report(jobId=8), report(jobId=9)]
        stored = await store.record_signatures(
            [(r, compute_report_digest(r, DOMAIN), SIG) for r in batch]
        )
        assert stored == [True, True]
        assert sorted(r[0] for r in read_table(path, "signatures")) == [7, 8, 9]
    finally:
        await store.close()


# ---------------------------------------------------------------------- migrations


async def test_a_migration_backs_the_old_database_up_first(
    tmp_path: Path, upgrade: Callable[[], None]
) -> None:
    # given a store written at the current schema, holding a signature
    path = tmp_path / "k.db"
    store = await open_store(path)
    await sign(store, report())
    await store.close()
    # (opened again by the same keeper: nothing to migrate, nothing copied)
    await (await open_store(path)).close()
    assert not list(tmp_path.glob("*.bak"))
    # when a keeper one schema version later opens it
    upgrade()
    store = await open_store(path)
    await store.close()
    # then the store is migrated
    assert user_version(path) == NEXT
    assert "migrated" in tables(path)
    # and a copy of it as it was sits next to it: the old version, the old rows, no new table
    backup = Path(f"{path}.v{SCHEMA_VERSION}.bak")
    assert backup.exists()
    assert user_version(backup) == SCHEMA_VERSION
    assert "migrated" not in tables(backup)
    assert [(r[0], r[1]) for r in read_table(backup, "signatures")] == [(7, 3)]
    assert read_table(backup, "meta") == read_table(path, "meta")
    assert not list(tmp_path.glob("*.part"))


async def test_an_earlier_backup_is_never_overwritten(
    tmp_path: Path, upgrade: Callable[[], None]
) -> None:
    # given a store at the current schema and a backup of that version already there
    path = tmp_path / "k.db"
    await (await open_store(path)).close()
    earlier = Path(f"{path}.v{SCHEMA_VERSION}.bak")
    earlier.write_bytes(b"an operator's own copy")
    # when it is migrated
    upgrade()
    await (await open_store(path)).close()
    # then the earlier file is untouched and the new copy has a name of its own
    assert earlier.read_bytes() == b"an operator's own copy"
    second = Path(f"{path}.v{SCHEMA_VERSION}.1.bak")
    assert user_version(second) == SCHEMA_VERSION


async def test_a_fresh_database_gets_no_backup(tmp_path: Path, upgrade: Callable[[], None]) -> None:
    # given no database yet, and a keeper with two schema versions
    path = tmp_path / "k.db"
    upgrade()
    # when a keeper creates it (every migration, from nothing)
    await (await open_store(path)).close()
    # then there was nothing to copy
    assert user_version(path) == NEXT
    assert [p.name for p in tmp_path.iterdir() if ".bak" in p.name] == []


# ---------------------------------------------------------------------- one process per store


def test_a_locked_store_is_refused_naming_its_holder(tmp_path: Path) -> None:
    # given a store whose lock is held
    db = tmp_path / "k.db"
    held = StoreLock.acquire(db)
    try:
        # when another opener tries (flock conflicts between open files, in-process too)
        with pytest.raises(StoreInUse) as refused:
            StoreLock.acquire(db)
        # then it is refused, naming the store and the holder's pid
        assert f"store {db}" in str(refused.value)
        assert f"pid {os.getpid()}" in str(refused.value)
    finally:
        held.release()
    # and once released, the store can be locked again
    StoreLock.acquire(db).release()
