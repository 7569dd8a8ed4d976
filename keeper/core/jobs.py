"""A job as keepers know it: the spec from `JobCreated` plus state folded from later events.

Folding events (created, funded, paused, resumed, cancelled, funds withdrawn, ownership
transferred, executed) into a `Job` is pure,
so the store can rebuild any job after a reorg by replaying the events that survived.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from functools import cached_property
from typing import Any

from eth_abi.abi import decode as abi_decode

from keeper.core.addresses import checksum_address
from keeper.core.triggers import JobRules, TriggerKind

ZERO_TOPIC = b"\x00" * 32


class JobStatus(IntEnum):
    """TaskManager.JobStatus, same numbering."""

    Active = 1
    Paused = 2
    Cancelled = 3


@dataclass(frozen=True)
class Trigger:
    """The decoded `trigger` bytes; only the fields of the job's kind are set."""

    kind: TriggerKind
    interval: int = 0  # Time seconds
    cron: str = ""
    emitter: str = ""
    topics: tuple[bytes, bytes, bytes, bytes] = (ZERO_TOPIC,) * 4
    confirmations: int = 0
    resolver: str = ""
    resolver_calldata: bytes = b""
    mode: int = 0
    min_interval: int = 0

    @property
    def schedule_interval(self) -> int:
        """The contract's overloaded `interval` field for this kind."""
        if self.kind == TriggerKind.Time:
            return self.interval
        if self.kind == TriggerKind.Event:
            return self.confirmations
        if self.kind == TriggerKind.Condition:
            return self.min_interval
        return 0


def decode_trigger(kind: int, data: bytes) -> Trigger:
    """Decodes trigger bytes that `createJob` already validated."""
    k = TriggerKind(kind)
    if k == TriggerKind.Time:
        (interval,) = abi_decode(["uint64"], data)
        return Trigger(kind=k, interval=int(interval))
    if k == TriggerKind.Cron:
        (expr,) = abi_decode(["string"], data)
        return Trigger(kind=k, cron=str(expr))
    if k == TriggerKind.Event:
        emitter, topics, confirmations = abi_decode(["address", "bytes32[4]", "uint16"], data)
        t = tuple(bytes(x) for x in topics)
        return Trigger(
            kind=k,
            emitter=checksum_address(emitter),
            topics=(t[0], t[1], t[2], t[3]),
            confirmations=int(confirmations),
        )
    resolver, calldata, mode, min_interval = abi_decode(
        ["address", "bytes", "uint8", "uint64"], data
    )
    return Trigger(
        kind=k,
        resolver=checksum_address(resolver),
        resolver_calldata=bytes(calldata),
        mode=int(mode),
        min_interval=int(min_interval),
    )


def is_log_match(trigger: Trigger, address: str, topics: list[bytes]) -> bool:
    """A log matches an Event trigger when the emitter matches and every non-zero topic does."""
    if trigger.kind != TriggerKind.Event or address.lower() != trigger.emitter.lower():
        return False
    for i, wanted in enumerate(trigger.topics):
        if wanted == ZERO_TOPIC:
            continue
        if i >= len(topics) or topics[i] != wanted:
            return False
    return True


# The payload of a Time, Cron or Event item: empty. The job's callData lives in its forwarder's
# code and the TaskManager skips any other payload with PayloadMismatch; only a Condition item
# carries one (the resolver's result).
NO_PAYLOAD = b""


@dataclass(frozen=True)
class Job:
    """One job: immutable spec and the state the chain holds for it."""

    job_id: int
    owner: str
    target: str
    call_data: bytes
    trigger: Trigger
    gas_limit: int
    threshold_bps: int
    start_time: int
    end_time: int
    max_executions: int
    created_block: int
    # The job's own caller (TaskManager.forwarderOf): its target sees this as msg.sender.
    forwarder: str = ""
    # Most the job pays per gas (0 = no cap of its own): keepers wait while the price is above.
    max_gas_price: int = 0
    status: JobStatus = JobStatus.Active
    round: int = 0
    last_cursor: int = 0
    balance: int = 0
    # The block of the last event that let a new round open (creation, execution, resume,
    # top-up): every node folds the same events, so leader turns can count from it.
    opened_block: int = 0

    @property
    def kind(self) -> TriggerKind:
        return self.trigger.kind

    @cached_property  # read for every job at every head; a Job never changes
    def rules(self) -> JobRules:
        return JobRules(
            kind=self.kind,
            start_time=self.start_time,
            end_time=self.end_time,
            interval=self.trigger.schedule_interval,
            max_executions=self.max_executions,
            round=self.round,
            last_cursor=self.last_cursor,
        )

    @property
    def is_exhausted(self) -> bool:
        return self.max_executions != 0 and self.round >= self.max_executions

    def is_priced_out(self, gas_price: int) -> bool:
        """True while a transaction at `gas_price` would cost more per gas than the job pays:
        the job waits (TaskManager bills at most `maxGasPrice`)."""
        return self.max_gas_price != 0 and gas_price > self.max_gas_price


# TaskManager.MAX_EXECUTION_OVERHEAD_GAS: the worst-case gas of `execute` beyond the target's.
MAX_EXECUTION_OVERHEAD_GAS = 150_000


def compute_min_balance(
    gas_limit: int,
    gas_price_cap: int,
    premium: int,
    max_gas_price: int = 0,
    base_fee: int | None = None,
    max_priority_fee: int = 0,
) -> int:
    """TaskManager._minBalance: one worst-case execution (the gas limit plus
    MAX_EXECUTION_OVERHEAD_GAS) at the highest price an execution can be billed in a block
    with `base_fee`: base fee plus the largest tip, within the cap and the job's maximum.

    The contract reads the base fee of the block that executes; a node asks a block or two
    earlier, so callers pass the next block's highest possible base fee
    (`compute_next_base_fee_bound`). Without a base fee (unknown, or a chain without one) the
    cap alone prices it, the most the contract could ask."""
    price = gas_price_cap if base_fee is None else min(base_fee + max_priority_fee, gas_price_cap)
    if max_gas_price != 0 and max_gas_price < price:
        price = max_gas_price
    return (gas_limit + MAX_EXECUTION_OVERHEAD_GAS) * price + premium


def compute_next_base_fee_bound(base_fee: int) -> int:
    """The highest base fee the next block can have (EIP-1559: at most 1/8 more)."""
    return base_fee + (base_fee + 7) // 8


def job_from_created(args: dict[str, Any], block_number: int, block_timestamp: int) -> Job:
    """A new Job from `JobCreated` args (`spec` as the ABI tuple's named fields)."""
    spec = args["spec"]
    kind = int(spec["kind"])
    trigger = decode_trigger(kind, bytes(spec["trigger"]))
    start = int(spec["startTime"]) or block_timestamp
    last_cursor = (block_number << 32) | 0xFFFFFFFF if kind == TriggerKind.Event else 0
    return Job(
        job_id=int(args["jobId"]),
        owner=checksum_address(args["owner"]),
        target=checksum_address(spec["target"]),
        call_data=bytes(spec["callData"]),
        trigger=trigger,
        gas_limit=int(spec["gasLimit"]),
        threshold_bps=int(spec["thresholdBps"]),
        start_time=start,
        end_time=int(spec["endTime"]),
        max_executions=int(spec["maxExecutions"]),
        created_block=block_number,
        forwarder=checksum_address(args["forwarder"]),
        max_gas_price=int(spec["maxGasPrice"]),
        opened_block=block_number,
        last_cursor=last_cursor,
        balance=int(args["deposit"]),
    )


def apply_job_event(job: Job, name: str, args: dict[str, Any], block: int = 0) -> Job:
    """The job after one of its events in `block` (JobCreated is `job_from_created`'s)."""
    if name == "JobFunded":
        return replace(job, balance=int(args["balance"]), opened_block=block)
    if name == "JobPaused":
        return replace(job, status=JobStatus.Paused)
    if name == "JobResumed":
        return replace(job, status=JobStatus.Active, opened_block=block)
    if name == "JobCancelled":
        # The balance stays until withdrawFunds: reports checked before the cancel may still run.
        return replace(job, status=JobStatus.Cancelled)
    if name == "JobFundsWithdrawn":
        return replace(job, balance=0)
    if name == "JobOwnershipTransferred":
        return replace(job, owner=checksum_address(args["to"]))
    if name == "JobExecuted":
        return replace(
            job,
            round=int(args["round"]) + 1,
            last_cursor=int(args["cursor"]),
            balance=max(0, job.balance - int(args["payment"])),
            opened_block=block,
        )
    return job
