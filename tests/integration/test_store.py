"""The node's SQLite store on a real file: whose database it is, which schema, the equivocation
guard across restarts, and reorg rollback of the state folded from events.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.chain.artifacts import load_artifact
from keeper.core.jobs import JobStatus
from keeper.core.quorum import pack_member
from keeper.core.report import Batch, Domain, Report, compute_batch_digest, compute_report_digest
from keeper.errors import StoreError, StoreMismatch
from keeper.store.db import ChainEvent, Store
from keeper.store.records import REGISTRY_EVENTS
from keeper.store.schema import SCHEMA_VERSION
from tests.integration.store_support import read_folds, read_table

CHAIN_ID = 31337
REGISTRY = "0x" + "11" * 20
TASK_MANAGER = "0x" + "22" * 20
OPERATOR = "0x" + "33" * 20
OTHER = "0x" + "44" * 20
IDENTITY = {
    "chain_id": CHAIN_ID,
    "registry": REGISTRY,
    "task_manager": TASK_MANAGER,
    "operator": OPERATOR,
}
DOMAIN = Domain(CHAIN_ID, TASK_MANAGER)
SIG = b"\x01" * 65


async def open_store(path: Path, **changes: Any) -> Store:
    return await Store.open(path, **{**IDENTITY, **changes})


def report(**changes: Any) -> Report:
    fields: dict[str, Any] = {
        "jobId": 7,
        "round": 3,
        "epoch": 1,
        "cursor": 1_700_000_060,
        "checkBlock": 120,
        "checkBlockHash": b"\xaa" * 32,
        "payloadHash": keccak(b"onTime()"),
        "executor": OPERATOR,
        "deadline": 160,
    }
    return Report(**{**fields, **changes})


async def sign(store: Store, r: Report) -> bool:
    return await store.record_signature(r, compute_report_digest(r, DOMAIN), SIG)


# ---------------------------------------------------------------------- identity and schema


@pytest.mark.parametrize(
    "changes",
    [
        {"chain_id": CHAIN_ID + 1},
        {"registry": OTHER},
        {"task_manager": OTHER},
        {"operator": OTHER},
    ],
    ids=["chain_id", "registry", "task_manager", "operator"],
)
async def test_store_of_another_deployment_is_refused(tmp_path: Path, changes: Any) -> None:
    # given a store written for one deployment, holding a signature
    path = tmp_path / "keeper.db"
    store = await open_store(path)
    assert await sign(store, report())
    await store.close()
    # when it is opened for another chain, registry, task manager or operator
    with pytest.raises(StoreMismatch) as err:
        await open_store(path, **changes)
    # then the error names the field, and the file is still its own deployment's, intact
    assert next(iter(changes)) in str(err.value)
    store = await open_store(path)
    assert await store.signature_count() == 1
    assert not await sign(store, report(cursor=1))
    await store.close()


async def test_addresses_are_compared_case_insensitively(tmp_path: Path) -> None:
    path = tmp_path / "keeper.db"
    await (await open_store(path, registry="0x" + "AB" * 20)).close()
    store = await open_store(path, registry="0x" + "ab" * 20)
    await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    # given a store a newer keeper migrated past this one's schema
    path = tmp_path / "keeper.db"
    await (await open_store(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    # when this keeper opens it, then it refuses instead of guessing
    with pytest.raises(StoreError, match="newer"):
        await open_store(path)
    # and it left the version alone
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)


async def test_non_database_file_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "keeper.db"
    garbage = b"this is not a database, it is a shopping list\n" * 100
    path.write_bytes(garbage)
    with pytest.raises(StoreError) as err:
        await open_store(path)
    assert not isinstance(err.value, StoreMismatch)
    assert path.read_bytes() == garbage


async def test_fresh_store_uses_wal_and_records_its_version(tmp_path: Path) -> None:
    path = tmp_path / "keeper.db"
    store = await open_store(path)
    assert await store.head() is None
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert dict(read_table(path, "meta")) == {
        "chain_id": str(CHAIN_ID),
        "registry": REGISTRY,
        "task_manager": TASK_MANAGER,
        "operator": OPERATOR,
    }


# ---------------------------------------------------------------------- equivocation guard


async def test_same_result_may_be_signed_again_for_another_executor(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "keeper.db")
    # given a signed report
    assert await sign(store, report())
    # when the same result comes from a backup leader (other executor, later deadline)
    again = report(executor=OTHER, deadline=170)
    # then it is signed too: the result did not change
    assert await sign(store, again)
    assert await sign(store, again)  # idempotent
    signed = await store.signed_for(7, 3, 120, b"\xaa" * 32)
    assert sorted(s.report.executor for s in signed) == sorted([report().executor, again.executor])
    assert await store.signature_count() == 2
    await store.close()


async def test_the_items_of_two_batches_with_the_same_results_are_both_kept(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "keeper.db")
    # given an item signed in a batch of two (one row per item, the batch's digest on each)
    item, other = report(quorum=2), report(jobId=8, quorum=2)
    pair = Batch.of([item, other])
    digest = compute_batch_digest(pair, DOMAIN)
    assert await store.record_signatures([(item, digest, SIG), (other, digest, SIG)]) == [
        True,
        True,
    ]
    # when the same item is signed again in a subset of that batch (another digest)
    alone = compute_batch_digest(pair.subset([0]), DOMAIN)
    # then it is no conflict: the same result, and both rows are kept with their quorum
    assert await store.record_signatures([(item, alone, SIG)]) == [True]
    signed = await store.signed_for(7, 3, 120, b"\xaa" * 32)
    assert [s.report for s in signed] == [item, item]
    assert {s.report.quorum for s in signed} == {2}
    await store.close()


@pytest.mark.parametrize(
    "conflict",
    [{"cursor": 1_700_000_120}, {"payloadHash": keccak(b"other()")}],
    ids=["cursor", "payload_hash"],
)
async def test_conflicting_result_is_refused_restarts_included(
    tmp_path: Path, conflict: dict[str, Any]
) -> None:
    path = tmp_path / "keeper.db"
    store = await open_store(path)
    # given a signed report
    assert await sign(store, report())
    # when a report with the same key but another result asks for a signature
    # then it is refused and nothing is stored
    assert not await sign(store, report(**conflict))
    assert not await sign(store, report(executor=OTHER, **conflict))
    assert await store.signature_count() == 1
    # and after a restart it is still refused
    await store.close()
    store = await open_store(path)
    assert not await sign(store, report(**conflict))
    (kept,) = await store.signed_for(7, 3, 120, b"\xaa" * 32)
    assert kept.report == report() and kept.signature == SIG
    # while another key (a reorged check block, the next round) may carry the other result
    assert await sign(store, report(checkBlockHash=b"\xbb" * 32, **conflict))
    assert await sign(store, report(round=4, **conflict))
    await store.close()


async def test_signatures_recorded_together_follow_the_one_by_one_rule(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "together.db")
    alone = await open_store(tmp_path / "alone.db")
    stored_before = report(round=9)
    for s in (store, alone):
        assert await sign(s, stored_before)
    # a batch: a new key, a retry, a view change of a stored result, a conflict with a stored
    # result, and two items of one new key with different results (the first one wins)
    reports = [
        report(),
        stored_before,
        report(round=9, executor=OTHER, deadline=170),
        report(round=9, cursor=1_700_000_120),
        report(round=10),
        report(round=10, payloadHash=keccak(b"other()")),
        report(round=10, deadline=171),
    ]

    together = await store.record_signatures(
        [(r, compute_report_digest(r, DOMAIN), SIG) for r in reports]
    )
    one_by_one = [await sign(alone, r) for r in reports]

    assert together == one_by_one == [True, True, True, False, True, False, True]
    assert read_table(tmp_path / "together.db", "signatures") == read_table(
        tmp_path / "alone.db", "signatures"
    )
    assert await store.record_signatures([]) == []
    for s in (store, alone):
        await s.close()


# ---------------------------------------------------------------------- reorg rollback


def event(name: str, block: int, index: int, **args: Any) -> ChainEvent:
    return ChainEvent(
        name=name,
        block_number=block,
        log_index=index,
        block_hash=block_hash(block),
        tx_hash=keccak(f"{block}:{index}".encode()),
        args=args,
        block_timestamp=ts(block),
    )


def block_hash(number: int, fork: str = "") -> bytes:
    return keccak(f"{fork}block{number}".encode())


def ts(block: int) -> int:
    return 1_700_000_000 + 12 * block


def headers(first: int, last: int, fork: str = "") -> list[tuple[int, bytes, bytes, int]]:
    """Linked headers: each parent is the previous block of the same fork (or the common one)."""
    out = []
    for n in range(first, last + 1):
        parent = block_hash(n - 1, fork if n - 1 >= first else "")
        out.append((n, block_hash(n, fork), parent, ts(n)))
    return out


def created(job_id: int, block: int, index: int, kind: int, trigger: bytes) -> ChainEvent:
    spec = {
        "target": "0x" + "55" * 20,
        "callData": "0x" + selector_hex("onTime()"),
        "kind": kind,
        "trigger": "0x" + trigger.hex(),
        "gasLimit": 200_000,
        "thresholdBps": 6667,
        "startTime": 0,
        "endTime": 0,
        "maxExecutions": 0,
        "maxGasPrice": 0,
    }
    forwarder = "0x" + "66" * 19 + f"{job_id:02x}"  # each job calls through its own forwarder
    return event(
        "JobCreated",
        block,
        index,
        jobId=job_id,
        owner=OTHER,
        kind=kind,
        spec=spec,
        deposit=10**18,
        forwarder=forwarder,
    )


def selector_hex(signature: str) -> str:
    return keccak(text=signature)[:4].hex()


def quorum_formed(epoch: int, block: int, index: int, stakes: dict[str, int]) -> list[ChainEvent]:
    members = ["0x" + pack_member(a, s).hex() for a, s in sorted(stakes.items())]
    return [
        event("EpochStarted", block, index, epoch=epoch, seed="0x" + "0e" * 32, quorumCount=1),
        event("QuorumFormed", block, index + 1, epoch=epoch, quorum=0, members=members),
    ]


TIME_JOB = abi_encode(["uint64"], [60])
EVENT_JOB = abi_encode(["address", "bytes32[4]", "uint16"], [OTHER, [b"\x00" * 32] * 4, 0])


async def test_rollback_restores_the_folded_state_before_the_orphaned_blocks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keeper.db"
    store = await open_store(path)
    # given blocks 1-3: a keeper, a Time job, an epoch with its quorum, an Event job and a log
    stable = [
        event("KeeperRegistered", 1, 0, keeper=OPERATOR, stake=10**18, endpoint="http://a"),
        created(1, 2, 0, 0, TIME_JOB),
        *quorum_formed(1, 2, 1, {OPERATOR: 10**18}),
        created(2, 3, 0, 2, EVENT_JOB),
    ]
    await store.apply_blocks(headers(1, 3), stable, [(2, (3 << 32) | 5, 3, block_hash(3))])
    before = read_folds(path)
    # when blocks 4-6 change every fold: executions, funding, pausing, stake, a new keeper,
    # endpoint, a new epoch, a new job and a new matched log
    orphaned = [
        event(
            "JobExecuted",
            4,
            0,
            jobId=1,
            round=0,
            cursor=ts(2),
            executor=OPERATOR,
            success=True,
            gasUsed=50_000,
            payment=10**15,
        ),
        event("JobFunded", 4, 1, jobId=1, **{"from": OTHER}, amount=5, balance=10**18 + 5),
        event("JobPaused", 5, 0, jobId=2),
        event("StakeAdded", 5, 1, keeper=OPERATOR, amount=10**18, total=2 * 10**18),
        event("EndpointSet", 5, 2, keeper=OPERATOR, endpoint="http://moved"),
        event("KeeperRegistered", 5, 3, keeper=OTHER, stake=10**18, endpoint="http://b"),
        *quorum_formed(2, 6, 0, {OPERATOR: 2 * 10**18, OTHER: 10**18}),
        created(3, 6, 2, 0, TIME_JOB),
    ]
    await store.apply_blocks(headers(4, 6), orphaned, [(2, (5 << 32) | 9, 5, block_hash(5))])
    # and the node signed and submitted meanwhile
    assert await sign(store, report(jobId=1, round=1, checkBlock=6))
    await store.save_round(1, 1, "submitted", 6, {"tx": "0x01"})
    await store.save_round(2, 0, "due", 5, {})
    # (the orphaned blocks did change the folds)
    job1 = await store.job(1)
    assert job1 is not None and (job1.round, job1.last_cursor) == (1, ts(2))
    assert (await store.job(2)).status == JobStatus.Paused  # type: ignore[union-attr]
    assert (await store.latest_epoch()).epoch == 2  # type: ignore[union-attr]
    assert (await store.keepers())[to_checksum_address(OPERATOR)]["endpoint"] == "http://moved"
    assert await store.next_job_log(2, (3 << 32) | 5, 6) == (5 << 32) | 9
    # when a reorg rolls the store back to block 3
    await store.rollback_to(3)
    # then every table folded from events is exactly as it was before blocks 4-6
    assert read_folds(path) == before
    assert await store.head() == (3, block_hash(3))
    assert await store.job(3) is None
    assert await store.executions() == []
    # while what the node signed and did is never rolled back
    assert await store.signature_count() == 1
    assert (await store.round_state(1, 1)) == ("submitted", 6, {"tx": "0x01"})
    # but a round it was waiting on is reopened (it may have been closed in between): its
    # turns count again from the block the leader next records, and only then
    assert await store.round_state(2, 0) == ("reopened", 5, {})
    await store.save_round(2, 0, "due", 9, {})
    await store.save_round(2, 0, "submitted", 11, {"tx": "0x02"})
    assert await store.round_state(2, 0) == ("submitted", 9, {"tx": "0x02"})
    # and the new branch folds on top of the surviving state
    fork = [event("JobCancelled", 4, 0, jobId=1, unlockBlock=4 + 128)]
    await store.apply_blocks(headers(4, 4, "fork"), fork)
    cancelled = await store.job(1)
    assert cancelled is not None and cancelled.status == JobStatus.Cancelled
    assert cancelled.balance == 10**18  # kept until withdrawFunds
    assert await store.head() == (4, block_hash(4, "fork"))
    await store.close()


async def test_the_registry_generation_moves_with_registry_events_and_rollbacks(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "keeper.db")
    # given blocks 1-2 with a keeper and an epoch
    await store.apply_blocks(
        headers(1, 2),
        [
            event("KeeperRegistered", 1, 0, keeper=OPERATOR, stake=10**18, endpoint="http://a"),
            *quorum_formed(1, 2, 0, {OPERATOR: 10**18}),
        ],
    )
    generation = store.registry_generation
    # when blocks carry only the TaskManager's events, or nothing
    await store.apply_blocks(headers(3, 3), [created(1, 3, 0, 0, TIME_JOB)])
    await store.apply_blocks(
        headers(4, 4), [event("JobSkipped", 4, 0, jobId=1, round=0, reason="0x12345678")]
    )
    # then what was read of the registry still holds
    assert store.registry_generation == generation
    # when a block carries a registry event (a rotation armed), the generation moves on
    await store.apply_blocks(headers(5, 5), [event("RotationArmed", 5, 0, epoch=2, seedBlock=7)])
    assert store.registry_generation > generation
    # and so it does when blocks are rolled back, whatever they held
    generation = store.registry_generation
    await store.rollback_to(4)
    assert store.registry_generation > generation
    await store.close()


def test_every_event_the_registry_emits_moves_the_registry_generation() -> None:
    abi = load_artifact("KeeperRegistry").abi
    assert {str(e["name"]) for e in abi if e.get("type") == "event"} == set(REGISTRY_EVENTS)


async def test_rollback_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keeper.db"
    store = await open_store(path)
    await store.apply_blocks(headers(1, 2), [created(1, 1, 0, 0, TIME_JOB)])
    await store.apply_blocks(headers(3, 4), [created(2, 3, 0, 0, TIME_JOB)])
    await store.save_round(1, 0, "due", 4, {})
    await store.rollback_to(2, restart_turns=False)  # as a resume does
    await store.close()
    store = await open_store(path)
    assert [j.job_id for j in await store.jobs()] == [1]
    assert await store.round_state(1, 0) == ("due", 4, {})
    assert await store.head() == (2, block_hash(2))
    await store.close()


async def test_jobs_remember_the_block_their_current_round_could_open(tmp_path: Path) -> None:
    # Leader turns count from it on every node, so it must come from events, not from when a
    # node happened to see them.
    store = await open_store(tmp_path / "keeper.db")
    await store.apply_blocks(headers(1, 2), [created(1, 2, 0, 0, TIME_JOB)])
    assert (await store.job(1)).opened_block == 2  # type: ignore[union-attr]
    executed = event("JobExecuted", 4, 0, jobId=1, round=0, cursor=ts(3), executor=OPERATOR,
                     success=True, gasUsed=50_000, payment=10**15)  # fmt: skip
    await store.apply_blocks(headers(3, 4), [executed])
    assert (await store.job(1)).opened_block == 4  # type: ignore[union-attr]
    await store.apply_blocks(headers(5, 5), [event("JobPaused", 5, 0, jobId=1)])
    assert (await store.job(1)).opened_block == 4  # type: ignore[union-attr]
    await store.apply_blocks(headers(6, 6), [event("JobResumed", 6, 0, jobId=1)])
    assert (await store.job(1)).opened_block == 6  # type: ignore[union-attr]
    # and a slot's first block is the first stored block whose timestamp reaches it
    assert await store.first_block_at(ts(3)) == 3
    assert await store.first_block_at(ts(3) + 1) == 4
    assert await store.first_block_at(ts(6) + 1) is None
    await store.close()


async def test_many_slots_first_blocks_are_read_at_once(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "keeper.db")
    await store.apply_blocks(headers(1, 6), [])
    # the first block reaching each slot, as first_block_at says one by one
    slots = [ts(3), ts(3) + 1, ts(1) - 5, ts(6), ts(6) + 1, ts(3)]
    assert await store.first_blocks_at(slots) == {ts(3): 3, ts(3) + 1: 4, ts(1) - 5: 1, ts(6): 6}
    for slot in slots:
        assert (await store.first_blocks_at([slot])).get(slot) == await store.first_block_at(slot)
    assert await store.first_blocks_at([]) == {}
    await store.close()


async def test_many_event_jobs_next_logs_are_read_in_one_query(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "keeper.db")
    # given matched logs of three Event jobs over blocks 1-6 (job 3 has none)
    logs = [
        (1, (2 << 32) | 0, 2),
        (1, (2 << 32) | 7, 2),
        (1, (5 << 32) | 1, 5),
        (2, (4 << 32) | 3, 4),
        (2, (6 << 32) | 0, 6),
    ]
    await store.apply_blocks(
        headers(1, 6), [], [(job, cursor, block, block_hash(block)) for job, cursor, block in logs]
    )
    cursors = [0, (2 << 32) | 0, (2 << 32) | 7, (4 << 32) | 3, (6 << 32) | 0]
    # when every (job, cursor, confirmed-by block) is asked at once
    wanted = [(job, after, top) for job in (1, 2, 3) for after in cursors for top in range(7)]
    # then each job's answer is what the one-by-one query says
    for job, after, top in wanted:
        many = await store.next_job_logs([(job, after, top)])
        assert many.get(job) == await store.next_job_log(job, after, top)
    for after in cursors:
        for top in range(7):
            many = await store.next_job_logs((job, after, top) for job in (1, 2, 3))
            one = {job: await store.next_job_log(job, after, top) for job in (1, 2, 3)}
            assert many == {job: c for job, c in one.items() if c is not None}
    # and 10,000 jobs still take one query
    many = await store.next_job_logs((job, 0, 6) for job in range(10_000))
    assert many == {1: (2 << 32) | 0, 2: (4 << 32) | 3}
    assert await store.next_job_logs([]) == {}
    await store.close()


async def test_an_event_jobs_next_logs_are_read_in_cursor_order_up_to_a_limit(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "keeper.db")
    # given matched logs of two Event jobs over blocks 1-6 (job 3 has none)
    logs = [
        (1, (2 << 32) | 7, 2),
        (1, (2 << 32) | 0, 2),
        (1, (5 << 32) | 1, 5),
        (1, (6 << 32) | 4, 6),
        (2, (4 << 32) | 3, 4),
    ]
    await store.apply_blocks(
        headers(1, 6), [], [(job, cursor, block, block_hash(block)) for job, cursor, block in logs]
    )
    job1 = sorted(cursor for job, cursor, _ in logs if job == 1)

    # when each job asks for its next logs above a cursor, confirmed by a block, up to a limit
    async def runs(*wanted: tuple[int, int, int, int]) -> dict[int, list[int]]:
        return await store.next_job_log_runs(wanted)

    # then the answer is the job's logs above the cursor, in cursor order, cut at the limit
    assert await runs((1, 0, 6, 32), (2, 0, 6, 32), (3, 0, 6, 32)) == {
        1: job1,
        2: [(4 << 32) | 3],
    }
    assert await runs((1, 0, 6, 2)) == {1: job1[:2]}
    assert await runs((1, job1[0], 6, 2)) == {1: job1[1:3]}
    # and a log not yet confirmed by the block is not among them, nor anything after it
    assert await runs((1, 0, 5, 32)) == {1: job1[:3]}
    assert await runs((1, job1[-1], 6, 32), (1, 0, 1, 32)) == {}
    # and the first of them is what next_job_logs says
    for after in [0, *job1]:
        for top in range(7):
            first = (await store.next_job_logs([(1, after, top)])).get(1)
            run = (await runs((1, after, top, 3))).get(1, [None])
            assert run[0] == first
    assert await runs() == {}
    await store.close()


async def test_rounds_opened_together_are_read_back_together(tmp_path: Path) -> None:
    path = tmp_path / "keeper.db"
    store = await open_store(path)
    await store.save_round(1, 0, "submitted", 3, {"tx": "0x01"})
    await store.save_round(2, 0, "due", 2, {})
    # when a head opens three rounds at once, one of them known already
    await store.open_rounds([(2, 0, 9), (3, 5, 7), (4, 0, 7)])
    # then each round reads back as save_round(..., "due", ...) would have left it: a round
    # already open keeps the block its turns count from
    states = await store.round_states([(1, 0), (2, 0), (3, 5), (4, 0), (4, 1), (3, 5)])
    assert states == {
        (1, 0): ("submitted", 3, {"tx": "0x01"}),
        (2, 0): ("due", 2, {}),
        (3, 5): ("due", 7, {}),
        (4, 0): ("due", 7, {}),
    }
    for key, state in states.items():
        assert await store.round_state(*key) == state
    # and they are committed (another connection sees them)
    assert len(read_table(path, "rounds")) == 4
    # and more keys than one query takes are read in chunks
    await store.open_rounds([(100 + i, 0, 1) for i in range(1000)])
    many = await store.round_states((100 + i, 0) for i in range(1000))
    assert len(many) == 1000 and many[(1099, 0)] == ("due", 1, {})
    await store.close()


async def test_a_failed_block_write_leaves_nothing_behind(tmp_path: Path) -> None:
    # Writes outside a transaction commit one statement at a time: the block writes must still be
    # all or nothing.
    path = tmp_path / "keeper.db"
    store = await open_store(path)
    await store.apply_blocks(headers(1, 2), [created(1, 1, 0, 0, TIME_JOB)])
    before = {t: read_table(path, t) for t in ("blocks", "events", "jobs")}
    broken = event("JobFunded", 3, 0, jobId=1, **{"from": OTHER}, amount=5)  # no balance
    with pytest.raises(KeyError):
        await store.apply_blocks(headers(3, 3), [created(2, 3, 1, 0, TIME_JOB), broken])
    assert {t: read_table(path, t) for t in ("blocks", "events", "jobs")} == before
    assert [j.job_id for j in await store.jobs()] == [1]
    assert await store.head() == (2, block_hash(2))
    await store.close()
