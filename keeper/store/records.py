"""What the store holds, as values, and how each is written as JSON in its rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keeper.core.addresses import checksum_address
from keeper.core.jobs import Job, JobStatus, Trigger
from keeper.core.report import Report
from keeper.core.triggers import TriggerKind

JOB_EVENTS = (
    "JobCreated",
    "JobFunded",
    "JobPaused",
    "JobResumed",
    "JobCancelled",
    "JobFundsWithdrawn",
    "JobOwnershipTransferred",
    "JobExecuted",
)
KEEPER_EVENTS = (
    "KeeperRegistered",
    "StakeAdded",
    "EndpointSet",
    "ExitRequested",
    "Withdrawn",
    "Slashed",
    "KeeperEvicted",
)
# Every event the registry emits: a block with any of them may have changed what `canRotate()`
# reads (tests/integration/test_store.py checks the list against the registry's ABI).
REGISTRY_EVENTS = (
    *KEEPER_EVENTS,
    "RotationArmed",
    "EpochStarted",
    "QuorumFormed",
    "TaskManagerSet",
)


@dataclass(frozen=True)
class ChainEvent:
    """A decoded contract event with where it came from. `args` holds JSON-safe values:
    bytes as 0x-hex strings, addresses checksummed, tuples as dicts."""

    name: str
    block_number: int
    log_index: int
    block_hash: bytes
    tx_hash: bytes
    args: dict[str, Any]
    block_timestamp: int = 0


@dataclass(frozen=True)
class SignedReport:
    """A report this node signed, with its signature."""

    report: Report
    signature: bytes


@dataclass(frozen=True)
class PendingTx:
    """A transaction this node signed; `status` is pending, mined, replaced or failed."""

    tx_hash: bytes
    nonce: int
    raw: bytes
    purpose: str
    max_fee: int
    priority_fee: int
    sent_block: int
    status: str


@dataclass(frozen=True)
class Epoch:
    epoch: int
    seed: bytes
    count: int
    start_block: int


def to_bytes(value: Any) -> bytes:
    """JSON-safe hex (or bytes) back to bytes."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def job_to_json(job: Job) -> str:
    t = job.trigger
    return json.dumps(
        {
            "job_id": job.job_id,
            "owner": job.owner,
            "target": job.target,
            "call_data": "0x" + job.call_data.hex(),
            "trigger": {
                "kind": int(t.kind),
                "interval": t.interval,
                "cron": t.cron,
                "emitter": t.emitter,
                "topics": ["0x" + x.hex() for x in t.topics],
                "confirmations": t.confirmations,
                "resolver": t.resolver,
                "resolver_calldata": "0x" + t.resolver_calldata.hex(),
                "mode": t.mode,
                "min_interval": t.min_interval,
            },
            "gas_limit": job.gas_limit,
            "threshold_bps": job.threshold_bps,
            "start_time": job.start_time,
            "end_time": job.end_time,
            "max_executions": job.max_executions,
            "created_block": job.created_block,
            "forwarder": job.forwarder,
            "max_gas_price": job.max_gas_price,
            "status": int(job.status),
            "round": job.round,
            "last_cursor": job.last_cursor,
            "balance": job.balance,
            "opened_block": job.opened_block,
        }
    )


def epoch_of(row: Any) -> Epoch:
    return Epoch(int(row[0]), bytes(row[1]), int(row[2]), int(row[3]))


def job_from_json(text: str) -> Job:
    d = json.loads(text)
    t = d["trigger"]
    topics = tuple(to_bytes(x) for x in t["topics"])
    trigger = Trigger(
        kind=TriggerKind(t["kind"]),
        interval=t["interval"],
        cron=t["cron"],
        emitter=t["emitter"],
        topics=(topics[0], topics[1], topics[2], topics[3]),
        confirmations=t["confirmations"],
        resolver=t["resolver"],
        resolver_calldata=to_bytes(t["resolver_calldata"]),
        mode=t["mode"],
        min_interval=t["min_interval"],
    )
    return Job(
        job_id=d["job_id"],
        owner=d["owner"],
        target=d["target"],
        call_data=to_bytes(d["call_data"]),
        trigger=trigger,
        gas_limit=d["gas_limit"],
        threshold_bps=d["threshold_bps"],
        start_time=d["start_time"],
        end_time=d["end_time"],
        max_executions=d["max_executions"],
        created_block=d["created_block"],
        forwarder=d.get("forwarder", ""),
        max_gas_price=d.get("max_gas_price", 0),
        status=JobStatus(d["status"]),
        round=d["round"],
        last_cursor=d["last_cursor"],
        balance=d["balance"],
        opened_block=d.get("opened_block", d["created_block"]),
    )


def report_to_json(report: Report) -> str:
    m = report.as_message()
    m["checkBlockHash"] = "0x" + report.checkBlockHash.hex()
    m["payloadHash"] = "0x" + report.payloadHash.hex()
    return json.dumps(m)


def report_from_dict(m: dict[str, Any]) -> Report:
    return Report(
        jobId=int(m["jobId"]),
        round=int(m["round"]),
        epoch=int(m["epoch"]),
        cursor=int(m["cursor"]),
        checkBlock=int(m["checkBlock"]),
        checkBlockHash=to_bytes(m["checkBlockHash"]),
        payloadHash=to_bytes(m["payloadHash"]),
        executor=checksum_address(m["executor"]),
        deadline=int(m["deadline"]),
        # a row stored before reports named their quorum reads as quorum 0
        quorum=int(m.get("quorum", 0)),
    )


def bytes_spec(args: dict[str, Any]) -> dict[str, Any]:
    spec = dict(args["spec"])
    spec["callData"] = to_bytes(spec["callData"])
    spec["trigger"] = to_bytes(spec["trigger"])
    return {**args, "spec": spec}
