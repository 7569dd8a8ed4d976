"""A bounded store: the state folded up to a snapshot trailing the head, history below it pruned,
and restarts and reorgs folding only what lies above it. Each pruned store is checked against
a store that keeps everything (a snapshot deeper than the chain) fed the same blocks.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from keeper.chain.follower import ChainFollower
from keeper.core.report import MAX_CHECK_AGE
from keeper.store.chain_state import SNAPSHOT_STEP
from keeper.store.db import ChainEvent, PendingTx, Store
from keeper.store.schema import MIGRATIONS
from tests.harness import Net
from tests.integration.store_support import read_table
from tests.integration.test_follower import assert_store_equals_chain, create_time_job, fork_point
from tests.integration.test_store import (
    EVENT_JOB,
    OPERATOR,
    OTHER,
    TIME_JOB,
    block_hash,
    created,
    event,
    headers,
    open_store,
    quorum_formed,
    report,
    sign,
    ts,
)

KEEP = 16  # a short window, so a few hundred blocks prune something
EVERYTHING = 10**9  # a snapshot deeper than any test chain: nothing is ever pruned
# Tables that hold the fold itself (what a node reads), to compare a pruned store with a full one
STATE_TABLES = ("jobs", "keepers", "epochs", "quorums", "counters")


def executed(
    job_id: int, block: int, index: int, round_: int, success: bool = True, cursor: int = 0
) -> ChainEvent:
    return event(
        "JobExecuted",
        block,
        index,
        jobId=job_id,
        round=round_,
        cursor=cursor or ts(block - 1),
        executor=OPERATOR,
        success=success,
        gasUsed=50_000,
        payment=10**12,
    )


class Chain:
    """Blocks 1..n of a made-up chain: a keeper, an epoch, three Time jobs and an Event job
    executed over and over (failures included), and a top-up now and then."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.rounds = {1: 0, 2: 0, 3: 0}
        self.blocks: dict[int, list[ChainEvent]] = {}

    def events_of(self, block: int) -> list[ChainEvent]:
        if block not in self.blocks:
            self.blocks[block] = self._make(block)
        return self.blocks[block]

    def _make(self, block: int) -> list[ChainEvent]:
        if block == 1:
            return [
                event("KeeperRegistered", 1, 0, keeper=OPERATOR, stake=10**18, endpoint="http://a"),
                *quorum_formed(1, 1, 1, {OPERATOR: 10**18}),
                created(1, 1, 3, 0, TIME_JOB),
                created(2, 1, 4, 0, TIME_JOB),
                created(3, 1, 5, 2, EVENT_JOB),
            ]
        out: list[ChainEvent] = []
        for job_id in sorted(self.rounds):
            if self.rng.random() < 0.6:
                success = self.rng.random() < 0.8
                cursor = (block - 1) << 32 if job_id == 3 else 0
                out.append(executed(job_id, block, len(out), self.rounds[job_id], success, cursor))
                self.rounds[job_id] += 1
        if self.rng.random() < 0.1:
            out.append(
                event(
                    "JobFunded",
                    block,
                    len(out),
                    jobId=1,
                    **{"from": OTHER},
                    amount=1,
                    balance=10**18 + block,
                )
            )
        return out

    def executions(self, last: int) -> tuple[int, int]:
        """(executions, successes) in blocks 1..last, counted from the events themselves."""
        done = [e for b in range(1, last + 1) for e in self.events_of(b) if e.name == "JobExecuted"]
        return len(done), sum(1 for e in done if e.args["success"])


async def feed(store: Store, chain: Chain, first: int, last: int, step: int = 7) -> None:
    for start in range(first, last + 1, step):
        end = min(last, start + step - 1)
        evs = [e for b in range(start, end + 1) for e in chain.events_of(b)]
        await store.apply_blocks(headers(start, end), evs)


async def pair(tmp_path: Path) -> tuple[Store, Store]:
    """A pruned store and a full one."""
    pruned = await open_store(tmp_path / "pruned.db", keep_blocks=KEEP)
    full = await open_store(tmp_path / "full.db", keep_blocks=EVERYTHING)
    return pruned, full


def state(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {table: read_table(path, table) for table in STATE_TABLES}


# ---------------------------------------------------------------------- bounded


async def test_history_below_the_snapshot_is_folded_into_it_and_deleted(tmp_path: Path) -> None:
    # given a pruned and a full store fed the same 400 blocks
    chain = Chain()
    pruned, full = await pair(tmp_path)
    for store in (pruned, full):
        await feed(store, chain, 1, 400)
    # then the pruned one holds only the events and headers above its snapshot
    # (the snapshot trails the head by KEEP blocks and moves SNAPSHOT_STEP at a time)
    snapshot = await pruned.snapshot_block()
    assert 400 - KEEP - SNAPSHOT_STEP < snapshot <= 400 - KEEP
    events = {r[0] for r in read_table(tmp_path / "pruned.db", "events")}
    assert events <= set(range(snapshot + 1, 401))
    assert min(r[0] for r in read_table(tmp_path / "pruned.db", "blocks")) == snapshot
    # and reads the same state as the full one
    assert state(tmp_path / "pruned.db") == state(tmp_path / "full.db")
    assert await pruned.jobs() == await full.jobs()
    await pruned.close()
    await full.close()


async def test_counters_match_a_full_recount(tmp_path: Path) -> None:
    # given a chain of executions, some failed, followed through reorgs above the snapshot
    chain = Chain(seed=7)
    store = await open_store(tmp_path / "k.db", keep_blocks=KEEP)
    await feed(store, chain, 1, 300)
    assert await store.execution_counts() == chain.executions(300)
    for depth in (3, KEEP - 1, 1):
        head = await store.head()
        assert head is not None
        await store.rollback_to(head[0] - depth)
        # then after each rollback the counters are those of the blocks that remain
        assert await store.execution_counts() == chain.executions(head[0] - depth)
        chain.blocks = {b: e for b, e in chain.blocks.items() if b <= head[0] - depth}
        await feed(store, chain, head[0] - depth + 1, head[0] + 50)
        assert await store.execution_counts() == chain.executions(head[0] + 50)
    # and a restart reads them as they were
    total = await store.execution_counts()
    await store.close()
    store = await open_store(tmp_path / "k.db", keep_blocks=KEEP)
    assert await store.execution_counts() == total
    await store.close()


# ---------------------------------------------------------------------- restarts and reorgs


async def test_a_restart_replays_only_the_events_above_the_snapshot(tmp_path: Path) -> None:
    # given a store with 2,000 blocks of history, closed and opened again
    chain = Chain(seed=3)
    pruned, full = await pair(tmp_path)
    for store in (pruned, full):
        await feed(store, chain, 1, 2000, step=50)
        await store.close()
    pruned, full = await pair(tmp_path)
    # when it resumes 12 blocks back, as the follower does
    refolded = await pruned.rollback_to(2000 - 12, restart_turns=False)
    await full.rollback_to(2000 - 12, restart_turns=False)
    # then it folded again only the events between its snapshot and there
    above = [e for b in range(2000 - KEEP + 1, 2000 - 12 + 1) for e in chain.events_of(b)]
    assert refolded == len(above) < 30
    # and its state is the one folded from the whole history
    assert state(tmp_path / "pruned.db") == state(tmp_path / "full.db")
    await feed(pruned, chain, 2000 - 11, 2010)
    await feed(full, chain, 2000 - 11, 2010)
    assert state(tmp_path / "pruned.db") == state(tmp_path / "full.db")
    await pruned.close()
    await full.close()


async def test_a_reorg_above_the_snapshot_puts_the_snapshot_back_and_folds_the_rest(
    tmp_path: Path,
) -> None:
    # given both stores at block 300
    chain = Chain(seed=5)
    pruned, full = await pair(tmp_path)
    for store in (pruned, full):
        await feed(store, chain, 1, 300)
    # when blocks 290-300 are replaced by a fork where job 2 is cancelled and job 1 paused
    fork = [event("JobCancelled", 290, 0, jobId=2, unlockBlock=418)]
    fork_b = [event("JobPaused", 292, 0, jobId=1)]
    for store in (pruned, full):
        await store.rollback_to(289)
        await store.apply_blocks(headers(290, 291, "fork"), fork)
        await store.apply_blocks(
            [(292, block_hash(292, "fork"), block_hash(291, "fork"), ts(292))], fork_b
        )
    # then the pruned store's state is the full store's
    assert state(tmp_path / "pruned.db") == state(tmp_path / "full.db")
    assert await pruned.head() == (292, block_hash(292, "fork"))
    assert [j.status.name for j in await pruned.jobs()] == ["Paused", "Cancelled", "Active"]
    await pruned.close()
    await full.close()


async def test_a_reorg_below_the_snapshot_drops_the_chain_state_to_learn_it_again(
    tmp_path: Path,
) -> None:
    # given a pruned store at block 200 that signed a report and works on a round
    chain = Chain(seed=9)
    path = tmp_path / "k.db"
    store = await open_store(path, keep_blocks=KEEP)
    await feed(store, chain, 1, 200)
    before = state(path)
    assert await sign(store, report(jobId=1, round=chain.rounds[1], checkBlock=199))
    await store.save_round(1, chain.rounds[1], "due", 199, {})
    # when a reorg reaches below the snapshot (nothing there can be put back)
    await store.rollback_to(await store.snapshot_block() - 1)
    # then the chain state is gone, to be learned again from the follower's start block
    assert await store.head() is None
    assert await store.jobs() == []
    assert await store.snapshot_block() == -1
    assert await store.execution_counts() == (0, 0)
    # while what the node signed stays, and the round waits for its turns to restart
    assert await store.signature_count() == 1
    assert await store.round_state(1, chain.rounds[1]) == ("reopened", 199, {})
    # and following the chain again from block 1 folds the same state
    await feed(store, chain, 1, 200)
    assert state(path) == before
    await store.close()


# ---------------------------------------------------------------------- what pruning keeps


async def test_pruning_keeps_the_equivocation_record_a_signature_could_still_need(
    tmp_path: Path,
) -> None:
    # given a store at block 150 where job 1 executed rounds 0 and 1 (at blocks 5 and 10)
    store = await open_store(tmp_path / "k.db", keep_blocks=KEEP)
    await store.apply_blocks(headers(1, 1), [created(1, 1, 0, 0, TIME_JOB)])
    await store.apply_blocks(headers(2, 150), [executed(1, 5, 0, 0), executed(1, 10, 0, 1)])
    # and signatures for its closed rounds, for its open round 2, and for another job's round
    signed = [
        report(jobId=1, round=0, checkBlock=4),
        report(jobId=1, round=1, checkBlock=9),
        report(jobId=1, round=2, checkBlock=120),
        report(jobId=1, round=2, checkBlock=300),
        report(jobId=2, round=0, checkBlock=300),
    ]
    for r in signed:
        assert await sign(store, r)
    # when the snapshot moves past both executions, then past block 120's check window
    await store.apply_blocks(headers(151, 200), [])
    snapshot = await store.snapshot_block()
    assert snapshot > 10 and snapshot - MAX_CHECK_AGE <= 120
    # then the closed rounds' signatures are gone (a member answers RoundDone before signing)
    kept = [(r[0], r[1], r[2]) for r in read_table(tmp_path / "k.db", "signatures")]
    assert sorted(kept) == [(1, 2, 120), (1, 2, 300), (2, 0, 300)]
    # and a conflicting result for every signature kept is still refused
    for r in signed[2:]:
        other = replace(r, cursor=r.cursor + 1)
        assert not await sign(store, other)
    # until a check block falls MAX_CHECK_AGE below the snapshot: no report for it passes a
    # member's StaleCheckBlock check or the chain's, so it is forgotten too
    await store.apply_blocks(headers(201, 120 + MAX_CHECK_AGE + KEEP + 1), [])
    kept = [(r[0], r[1], r[2]) for r in read_table(tmp_path / "k.db", "signatures")]
    assert sorted(kept) == [(1, 2, 300), (2, 0, 300)]
    # and the count of signatures made is still every one of them
    assert await store.signature_count() == len(signed)
    await store.close()


async def test_rounds_closed_below_the_snapshot_are_pruned_and_still_counted(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "k.db", keep_blocks=KEEP)
    await store.apply_blocks(headers(1, 1), [created(1, 1, 0, 0, TIME_JOB)])
    await store.save_round(1, 0, "submitted", 3, {"tx": "0x01"})
    await store.save_round(1, 1, "due", 6, {})
    await store.save_round(2, 0, "due", 6, {})  # a job this store never saw execute
    # when round 0 executes and the snapshot passes it
    await store.apply_blocks(headers(2, 60), [executed(1, 5, 0, 0)])
    # then round 0 is gone, the open rounds stay, and the counts are what they were
    assert await store.round_state(1, 0) is None
    assert await store.round_state(1, 1) == ("due", 6, {})
    assert await store.round_state(2, 0) == ("due", 6, {})
    assert await store.round_counts() == {"submitted": 1, "due": 2}
    await store.close()


async def test_settled_transactions_below_the_snapshot_are_pruned(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "k.db", keep_blocks=KEEP)

    def tx(n: int, status: str, sent_block: int) -> PendingTx:
        return PendingTx(bytes([n]) * 32, n, b"raw", "execute:1:0", 10, 1, sent_block, status)

    for t in (tx(1, "mined", 3), tx(2, "replaced", 3), tx(3, "failed", 4), tx(4, "pending", 4)):
        await store.add_pending_tx(t)
    await store.add_pending_tx(tx(5, "mined", 50))
    # when the snapshot passes block 4 but not 50
    await store.apply_blocks(headers(1, 40), [])
    # then the settled transactions sent at or below it are gone, the pending one stays
    nonces = sorted(r[1] for r in read_table(tmp_path / "k.db", "pending_txs"))
    assert nonces == [4, 5]
    assert [t.nonce for t in await store.pending_txs("pending")] == [4]
    await store.close()


async def test_event_logs_a_job_executed_past_are_pruned(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "k.db", keep_blocks=KEEP)
    await store.apply_blocks(headers(1, 1), [created(3, 1, 0, 2, EVENT_JOB)])
    logs = [(3, (b << 32) | 1, b, block_hash(b)) for b in (2, 3, 4, 30)]
    await store.apply_blocks(headers(2, 30), [executed(3, 6, 0, 0, cursor=(3 << 32) | 1)], logs)
    # when the snapshot passes the execution (of the log at block 3)
    await store.apply_blocks(headers(31, 40), [])
    # then the logs at or below its cursor are gone and the next one is still proposed
    assert sorted(r[1] >> 32 for r in read_table(tmp_path / "k.db", "job_logs")) == [4, 30]
    assert await store.next_job_log(3, (3 << 32) | 1, 40) == (4 << 32) | 1
    await store.close()


# ---------------------------------------------------------------------- from schema v1


async def test_a_v1_store_gets_counters_from_its_events(tmp_path: Path) -> None:
    # given a store written by a keeper before the snapshot (schema v1), with its history
    path = tmp_path / "k.db"
    chain = Chain(seed=11)
    reference = await open_store(tmp_path / "full.db", keep_blocks=EVERYTHING)
    await feed(reference, chain, 1, 100)
    await reference.close()
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[1] + "PRAGMA user_version=1;")
    conn.execute("ATTACH ? AS full", (str(tmp_path / "full.db"),))
    for table in ("meta", "blocks", "events", "jobs", "keepers", "epochs", "quorums"):
        conn.execute(f"INSERT INTO {table} SELECT * FROM full.{table}")
    conn.commit()
    conn.close()
    # when this keeper opens it
    store = await open_store(path, keep_blocks=KEEP)
    # then its counters are a count of its events, and its first block prunes the history
    assert await store.execution_counts() == chain.executions(100)
    await feed(store, chain, 101, 101)
    assert await store.snapshot_block() == 101 - KEEP
    assert await store.execution_counts() == chain.executions(101)
    assert all(r[0] > 101 - KEEP for r in read_table(path, "events"))
    await store.close()


# ---------------------------------------------------------------------- with the follower


def identity_of(net: Net) -> dict[str, Any]:
    return {
        "chain_id": net.deployment.chain_id,
        "registry": net.deployment.registry,
        "task_manager": net.deployment.task_manager,
        "operator": net.keepers[0].address,
    }


def follower_of(net: Net, store: Store) -> ChainFollower:
    start = net.deployment.block
    return ChainFollower(
        net.chain.web3(), net.registry, net.tm, store, start_block=start, reorg_depth=4
    )


async def sync_to_head(follower: ChainFollower) -> None:
    for _ in range(100):
        result = await follower.sync()
        if result.head >= result.chain_head:
            return
    raise AssertionError("follower did not catch up in 100 calls")


async def test_a_resume_never_rolls_back_below_the_snapshot(net4: Net, tmp_path: Path) -> None:
    # given a follower whose store keeps a short window, synced past it
    path = tmp_path / "k.db"

    async def follow() -> tuple[Store, ChainFollower]:
        store = await Store.open(path, **identity_of(net4), keep_blocks=KEEP)
        return store, follower_of(net4, store)

    store, follower = await follow()
    net4.mine(3 * KEEP)
    await sync_to_head(follower)
    # and rolled back to its snapshot (the deepest reorg it can find), then stopped
    snapshot = await store.snapshot_block()
    assert snapshot > net4.deployment.block
    await store.rollback_to(snapshot)
    jobs = await store.jobs()
    await store.close()
    # when it starts again and resumes
    store, follower = await follow()
    await follower.resume()
    # then it keeps the snapshot's state (it cannot roll back below it without starting over)
    assert await store.head() is not None
    assert await store.snapshot_block() == snapshot
    assert await store.jobs() == jobs
    await store.close()


async def test_a_reorg_below_the_snapshot_is_followed_from_the_start_block(
    net4: Net, tmp_path: Path
) -> None:
    # given a follower whose short window has passed a job created on a branch
    store = await Store.open(tmp_path / "k.db", **identity_of(net4), keep_blocks=KEEP)
    follower = follower_of(net4, store)
    await sync_to_head(follower)
    snapshot_id, fork_block = fork_point(net4)
    await create_time_job(net4)
    net4.mine(3 * KEEP)
    await sync_to_head(follower)
    assert await store.snapshot_block() > fork_block
    # when the chain switches to a longer branch from below the snapshot
    net4.chain.revert(snapshot_id)
    net4.mine(3 * KEEP + 5)
    await sync_to_head(follower)
    # then the store starts over and holds what the new branch says, not the orphaned job
    assert await store.head() == (
        await net4.block_number(),
        bytes((await net4.w3.eth.get_block("latest"))["hash"]),
    )
    assert await store.jobs() == []
    await assert_store_equals_chain(net4, store)
    await store.close()
