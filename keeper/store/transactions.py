"""Transactions this node signed, persisted before broadcast so a restart re-sends the very same
transaction (same nonce and hash) instead of a new one."""

from __future__ import annotations

from keeper.store.connection import Connection
from keeper.store.records import PendingTx


class TransactionBook:
    """Signed transactions by status (pending, mined, replaced, failed)."""

    def __init__(self, conn: Connection) -> None:
        self._db = conn.db
        self._write = conn.write

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
        rows = await self._db.execute_fetchall(
            "SELECT tx_hash, nonce, raw, purpose, max_fee, priority_fee, sent_block, status "
            "FROM pending_txs WHERE status = ? ORDER BY nonce, max_fee",
            (status,),
        )
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

    async def prune_locked(self, below: int) -> None:
        """Deletes settled transactions (mined, replaced, failed) sent at or below `below`, in
        the caller's transaction: the sender only ever reads pending ones."""
        await self._db.execute(
            "DELETE FROM pending_txs WHERE status != 'pending' AND sent_block <= ?", (below,)
        )
