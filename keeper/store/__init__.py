"""The node's SQLite state (aiosqlite, WAL): the only package that touches the database."""

from keeper.store.db import ChainEvent, PendingTx, SignedReport, Store

__all__ = ["ChainEvent", "PendingTx", "SignedReport", "Store"]
