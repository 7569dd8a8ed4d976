"""Helpers for the restart tests: reading a node's database as an operator would (read-only
sqlite3), the equivocation check over every stored signature, and the Time-job grid check.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keeper.store.db import PendingTx
from tests.harness import TIME, selector, time_trigger
from tests.node.support import due_block_of_round, ranking
from tests.nodes import Network

INTERVAL = 60


@dataclass(frozen=True)
class SignatureRow:
    job_id: int
    round: int
    check_block: int
    check_block_hash: bytes
    cursor: int
    payload_hash: bytes
    executor: str

    @property
    def key(self) -> tuple[int, int, int, bytes]:
        return (self.job_id, self.round, self.check_block, self.check_block_hash)


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def signature_rows(path: Path) -> list[SignatureRow]:
    rows = query(
        path,
        "SELECT job_id, round, check_block, check_block_hash, cursor, payload_hash, report "
        "FROM signatures ORDER BY job_id, round, check_block",
    )
    return [
        SignatureRow(
            int(j), int(r), int(cb), bytes(h), int(c), bytes(p), json.loads(rep)["executor"]
        )
        for j, r, cb, h, c, p, rep in rows
    ]


def assert_no_conflicting_signatures(path: Path) -> list[SignatureRow]:
    """For every (job, round, checkBlock, checkBlockHash) all rows carry one result."""
    rows = signature_rows(path)
    results: dict[tuple[int, int, int, bytes], set[tuple[int, bytes]]] = defaultdict(set)
    for row in rows:
        results[row.key].add((row.cursor, row.payload_hash))
    conflicts = {key: found for key, found in results.items() if len(found) > 1}
    assert not conflicts, f"{path.name} signed conflicting results: {conflicts}"
    return rows


def pending_tx_rows(path: Path) -> list[PendingTx]:
    rows = query(
        path,
        "SELECT tx_hash, nonce, raw, purpose, max_fee, priority_fee, sent_block, status "
        "FROM pending_txs ORDER BY nonce",
    )
    return [
        PendingTx(bytes(h), int(n), bytes(r), str(p), int(m), int(pf), int(sb), str(s))
        for h, n, r, p, m, pf, sb, s in rows
    ]


async def create_time_job(network: Network) -> int:
    net = network.net
    return await net.create_job(net.spec(TIME, time_trigger(INTERVAL), selector("onTime()")))


async def assert_slots_once(network: Network, job_id: int) -> list[int]:
    """Rounds 0..n-1 each once and in order, cursors strictly increasing on the job's grid.

    Returns the executed cursors.
    """
    executions = await network.executions(job_id)
    rounds = [e["args"]["round"] for e in executions]
    assert rounds == list(range(len(executions))), f"rounds {rounds}"
    cursors = [int(e["args"]["cursor"]) for e in executions]
    assert all(a < b for a, b in itertools.pairwise(cursors)), cursors
    start = (await network.net.job(job_id))["startTime"]
    assert all((c - start) % INTERVAL == 0 for c in cursors), cursors
    assert (await network.net.job(job_id))["round"] == len(executions)
    return cursors


def node_index(network: Network, address: str) -> int:
    return next(
        i for i, k in enumerate(network.net.keepers) if k.address.lower() == address.lower()
    )


async def primary_of(network: Network, job_id: int, round_: int) -> int:
    """The node index ranked first for an executed round of a Time job (idle loads, as in
    these tests): its quorum's order for the block the round fell due at, read off the chain
    (the first block at its slot, not before the block after the previous execution)."""
    executions = await network.executions(job_id)
    slot = int(executions[round_]["args"]["cursor"])
    opened = int(executions[round_ - 1]["blockNumber"])
    due = await due_block_of_round(network, slot, opened)
    return node_index(network, (await ranking(network, job_id, due))[0])


async def chain_nonce(network: Network, i: int) -> int:
    address = network.net.keepers[i].address
    return int(await network.net.w3.eth.get_transaction_count(address))
