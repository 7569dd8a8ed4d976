"""What the e2e scenarios share on top of the Cluster: job specs per trigger kind, chain
control (pausing anvil's interval mining, raw transactions), read-only access to a keeper's
store, the node's `/v1/status`, and the exactly-once checks every scenario ends with."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import AsyncWeb3

from keeper.chain.contracts import transact
from keeper.core.quorum import unpack_member
from keeper.core.triggers import compute_event_cursor
from tests.e2e.cluster import Cluster, start_cluster

TIME, CRON, EVENT, CONDITION = 0, 1, 2, 3
GAS_LIMIT = 200_000
THRESHOLD_BPS = 6667
DEMO_EVENT = keccak(text="DemoEvent(address,uint256,uint256)")
ZERO32 = b"\x00" * 32


def start_network(tmp: Path, stakes: Sequence[int]) -> Cluster:
    """`start_cluster`, with every keeper registered before any of them runs. Registering
    while keepers run races their rotate(): `keeper register` sends exactly its gas estimate,
    and a rotation landing in between (it clears the registry's set-changed flag, which makes
    register's write of it dearer) leaves the registration out of gas."""
    cluster = start_cluster(tmp, stakes=stakes, start=False)
    for i in cluster.keepers:
        cluster.start(i)
    return cluster


def time_spec(target: str, interval: int, start_time: int = 0) -> tuple[Any, ...]:
    return (target, keccak(text="onTime()")[:4], TIME, abi_encode(["uint64"], [interval]),
            GAS_LIMIT, THRESHOLD_BPS, start_time, 0, 0, 0)  # fmt: skip


def event_spec(target: str, tag: int, confirmations: int) -> tuple[Any, ...]:
    """An Event job on the target's own DemoEvent with indexed `tag` (topic 2)."""
    topics = [DEMO_EVENT, ZERO32, tag.to_bytes(32, "big"), ZERO32]
    trigger = abi_encode(["address", "bytes32[4]", "uint16"], [target, topics, confirmations])
    return (target, keccak(text="onEvent()")[:4], EVENT, trigger,
            GAS_LIMIT, THRESHOLD_BPS, 0, 0, 0, 0)  # fmt: skip


def condition_spec(target: str, min_interval: int) -> tuple[Any, ...]:
    """Condition mode 0 on the target's own `checker()` (its payload calls onCondition)."""
    trigger = abi_encode(
        ["address", "bytes", "uint8", "uint64"],
        [target, keccak(text="checker()")[:4], 0, min_interval],
    )
    return (target, b"", CONDITION, trigger, GAS_LIMIT, THRESHOLD_BPS, 0, 0, 0, 0)


async def create_job(
    cluster: Cluster, w3: AsyncWeb3[Any], spec: tuple[Any, ...], executions: int = 60
) -> tuple[int, int]:
    """Creates and funds a job as its owner; returns (job id, creation block)."""
    tm = (await cluster.contracts(w3)).task_manager
    deposit = executions * int(await tm.functions.requiredDeposit(spec[4], spec[9]).call())
    receipt = await cluster.owner_tx(w3, tm.functions.createJob(spec), value=deposit)
    job_id = int(tm.events.JobCreated().process_receipt(receipt)[0]["args"]["jobId"])
    return job_id, int(receipt["blockNumber"])


async def chain_job(cluster: Cluster, w3: AsyncWeb3[Any], job_id: int) -> dict[str, Any]:
    """TaskManager.getJob as a dict keyed by the JobView field names."""
    tm = (await cluster.contracts(w3)).task_manager
    outputs = next(i for i in tm.abi if i.get("name") == "getJob")["outputs"][0]["components"]
    names = [str(c["name"]) for c in outputs]
    return dict(zip(names, await tm.functions.getJob(job_id).call(), strict=True))


async def wait_for_epoch(cluster: Cluster, w3: AsyncWeb3[Any], epoch: int = 1) -> None:
    registry = (await cluster.contracts(w3)).registry

    async def formed() -> bool:
        return int(await registry.functions.currentEpoch().call()) >= epoch

    await cluster.wait_until(formed, 120, f"epoch {epoch}")


async def quorum_members(cluster: Cluster, w3: AsyncWeb3[Any], epoch: int) -> list[list[str]]:
    """Member addresses of every quorum formed for `epoch`, from the QuorumFormed logs."""
    registry = (await cluster.contracts(w3)).registry
    logs = await registry.events.QuorumFormed().get_logs(
        from_block=cluster.deployment.block, argument_filters={"epoch": epoch}
    )
    logs = sorted(logs, key=lambda x: int(x["args"]["quorum"]))
    return [[unpack_member(bytes(w)).address for w in lg["args"]["members"]] for lg in logs]


async def wait_for_keeper_set(
    cluster: Cluster, w3: AsyncWeb3[Any], addresses: AbstractSet[str], timeout: float = 120
) -> int:
    """Waits for an epoch whose quorums hold exactly `addresses` (keepers start one by one,
    and every registration lets them rotate early, so the first epochs hold fewer); returns it.
    """
    registry = (await cluster.contracts(w3)).registry
    found: list[int] = []

    async def formed() -> bool:
        epoch = int(await registry.functions.currentEpoch().call())
        members = {a for q in await quorum_members(cluster, w3, epoch) for a in q}
        if epoch >= 1 and members == addresses:
            found.append(epoch)
            return True
        return False

    await cluster.wait_until(formed, timeout, f"an epoch of exactly {sorted(addresses)}")
    return found[-1]


# ---------------------------------------------------------------------- chain control


@contextlib.contextmanager
def mining_paused(cluster: Cluster, block_time: int = 1) -> Iterator[None]:
    """Stops anvil's interval mining (blocks then come only from `evm_mine`/`anvil_reorg`)."""
    cluster.anvil.rpc("evm_setIntervalMining", 0)
    try:
        yield
    finally:
        cluster.anvil.rpc("evm_setIntervalMining", block_time)


def chain_head(cluster: Cluster) -> int:
    return int(cluster.anvil.rpc("eth_blockNumber"), 16)


def chain_block_hash(cluster: Cluster, number: int) -> bytes:
    block = cluster.anvil.rpc("eth_getBlockByNumber", hex(number), False)
    return bytes.fromhex(block["hash"][2:])


async def sign_call(
    w3: AsyncWeb3[Any], account: LocalAccount, fn: Any, nonce: int | None = None
) -> str:
    """A signed type-2 transaction calling `fn`, as 0x-hex (for eth_sendRawTransaction and
    anvil_reorg's replacement list)."""
    if nonce is None:
        nonce = int(await w3.eth.get_transaction_count(account.address, "pending"))
    tx = await fn.build_transaction(
        {
            "from": account.address,
            "nonce": nonce,
            "gas": 100_000,
            "maxFeePerGas": 50 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "chainId": await w3.eth.chain_id,
        }
    )
    signed = account.sign_transaction(tx)
    return "0x" + bytes(signed.raw_transaction).hex()


# ---------------------------------------------------------------------- keepers' own view


def read_store(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """A read-only query of a running keeper's SQLite store (WAL lets it read alongside)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return list(conn.execute(sql, tuple(params)).fetchall())
    finally:
        conn.close()


def store_head(db: Path) -> tuple[int, bytes] | None:
    rows = read_store(db, "SELECT number, hash FROM blocks ORDER BY number DESC LIMIT 1")
    return (int(rows[0][0]), bytes(rows[0][1])) if rows else None


def node_status(cluster: Cluster, i: int) -> dict[str, Any]:
    """GET /v1/status of keeper `i` (cheaper than spawning `keeper status` in a poll loop)."""
    url = cluster.keepers[i].admin_endpoint + "/v1/status"
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.loads(response.read()))


def try_status(cluster: Cluster, i: int) -> dict[str, Any] | None:
    """`node_status`, or None while the node is not (yet, or no longer) listening."""
    try:
        return node_status(cluster, i)
    except OSError:
        return None


def job_status(status: dict[str, Any], job_id: int) -> dict[str, Any] | None:
    return next((j for j in status["jobs"] if int(j["id"]) == job_id), None)


# ---------------------------------------------------------------------- invariants


def assert_rounds_contiguous(executions: Sequence[Any]) -> None:
    """Rounds 0, 1, 2, ... in chain order, cursors strictly increasing, no failed target call."""
    rounds = [int(e["args"]["round"]) for e in executions]
    assert rounds == list(range(len(rounds))), f"rounds not contiguous: {rounds}"
    cursors = [int(e["args"]["cursor"]) for e in executions]
    assert all(a < b for a, b in itertools.pairwise(cursors)), cursors
    failed = [e for e in executions if not e["args"]["success"]]
    assert not failed, f"executions with success=false: {failed}"


class Traffic:
    """What the long e2e runs send while the keepers work: DemoEvent logs (for an Event job) and
    units of work requested (for a Condition job), each from a spare dev account of its own."""

    # Not estimated: `request` costs more when an execution emptied `pending` in between.
    TX_GAS = 100_000

    def __init__(self, cluster: Cluster, w3: AsyncWeb3[Any], target: Any, tag: int) -> None:
        self.w3, self.target, self.tag = w3, target, tag
        self.emitter, self.requester = cluster.accounts[-1], cluster.accounts[-2]
        self.requested: list[int] = []
        self._values = iter(range(1_000_000))

    async def emit(self) -> None:
        fn = self.target.functions.emitDemo(self.tag, next(self._values))
        await transact(self.w3, fn, {"from": self.emitter.address, "gas": self.TX_GAS})

    async def request(self) -> None:
        amount = len(self.requested) + 1
        fn = self.target.functions.request(amount)
        await transact(self.w3, fn, {"from": self.requester.address, "gas": self.TX_GAS})
        self.requested.append(amount)


async def every(period: float, until: float, action: Callable[[], Awaitable[Any]]) -> int:
    """Runs `action()` every `period` seconds until the monotonic time `until`; returns how
    many times it ran."""
    count = 0
    while time.monotonic() < until:
        started = time.monotonic()
        await action()
        count += 1
        await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))
    return count


async def assert_logs_and_requests_worked_off(
    cluster: Cluster,
    w3: AsyncWeb3[Any],
    target: Any,
    jobs: tuple[int, int],
    event_created: int,
    emitted: int,
    requested: Sequence[int],
    timeout: float,
) -> list[Any]:
    """Waits until the Event job (jobs[0]) executed every DemoEvent log emitted since its
    creation and the Condition job (jobs[1]) every requested unit; checks each log ran once, in
    order, and both jobs' rounds are contiguous. Returns the Condition job's executions."""
    event_job, condition_job = jobs
    demo_logs = await target.events.DemoEvent().get_logs(from_block=event_created + 1)
    log_cursors = sorted(
        compute_event_cursor(int(lg["blockNumber"]), int(lg["logIndex"])) for lg in demo_logs
    )
    assert len(log_cursors) == emitted

    async def drained() -> bool:
        events = await cluster.executions(w3, event_job)
        pending = int(await target.functions.pending().call())
        return len(events) >= len(log_cursors) and pending == 0

    await cluster.wait_until(drained, timeout, "the last logs and requests to execute")
    event_executions = await cluster.executions(w3, event_job)
    assert_rounds_contiguous(event_executions)
    assert [int(e["args"]["cursor"]) for e in event_executions] == log_cursors
    condition_executions: list[Any] = await cluster.executions(w3, condition_job)
    assert_rounds_contiguous(condition_executions)
    assert int(await target.functions.conditionTotal().call()) == sum(requested)
    return condition_executions


def assert_every_slot_once(executions: Sequence[Any], start: int, interval: int) -> None:
    """Time job: cursors on the grid `start + k * interval`, one slot after the other."""
    cursors = [int(e["args"]["cursor"]) for e in executions]
    assert all((c - start) % interval == 0 for c in cursors), f"off the grid: {cursors}"
    gaps = [b - a for a, b in itertools.pairwise(cursors)]
    assert gaps == [interval] * len(gaps), f"slots missed: cursor gaps {gaps}"
