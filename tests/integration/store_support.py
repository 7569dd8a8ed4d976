"""Reading a store's SQLite file the way an operator would: a second, read-only connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

# Tables that are folds of followed events (plus the headers and events they come from): what a
# reorg must put back exactly.
FOLDED_TABLES = ("blocks", "events", "jobs", "keepers", "epochs", "quorums", "job_logs")


def read_table(path: Path | str, table: str) -> list[tuple[Any, ...]]:
    """Every committed row of `table`, in a stable order."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        conn.close()


def read_folds(path: Path | str) -> dict[str, list[tuple[Any, ...]]]:
    return {table: read_table(path, table) for table in FOLDED_TABLES}
