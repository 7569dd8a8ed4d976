"""The one aiosqlite connection the store's repositories share, and its writer lock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiosqlite


def first_row(rows: Iterable[Any]) -> Any | None:
    """The first row of `execute_fetchall`'s answer, None if there is none. Reads go through
    `execute_fetchall`: one hop to the database thread where `async with execute() as cur`
    and a fetch take three, and each hop wakes the event loop from that thread."""
    return next(iter(rows), None)


class Connection:
    """Coroutines share the connection, so a transaction must not interleave with another
    coroutine's statements: every write holds `write`, multi-statement ones in `transaction`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.write = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN ... COMMIT, rolled back on any error; hold `write` around it."""
        await self.db.execute("BEGIN")
        try:
            yield self.db
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.rollback()
            raise
