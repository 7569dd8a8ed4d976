"""`keeper job list` and `keeper job show`: a job's state and its money, read from the chain.

A job's state is the one a quorum would see (keeper.core.job_state, the rules the nodes apply):
never "Active" for a job that cannot run. Its money comes from its events: every deposit
(JobCreated and each JobFunded), what executions cost (JobExecuted), what was paid back
(JobFundsWithdrawn); failures carry their decoded revert (JobFailed).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import sys
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from eth_utils.hexadecimal import encode_hex
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from keeper.chain.contracts import Deployment, bind, call, decode_revert_data, get_logs_paged
from keeper.cli.chain_io import chain_step, format_revert, load_deployment, reading_web3
from keeper.cli.formatting import ether, format_date, format_duration, format_table, format_when
from keeper.cli.job import describe_trigger, fetch_job, format_cursor, parse_job_id
from keeper.cli.jobspec import parse_address
from keeper.config import Settings
from keeper.core.job_state import (
    JobFacts,
    JobState,
    QuorumFacts,
    compute_job_evaluation,
    compute_runway,
    is_quorum_reachable,
)
from keeper.core.jobs import Job, JobStatus, decode_trigger, job_from_created
from keeper.core.quorum import Member, unpack_member
from keeper.core.triggers import TriggerKind
from keeper.core.units import format_ether
from keeper.errors import ValidationError
from keeper.node.cron_calendar import cron_next_fire

RECENT_EXECUTIONS = 20  # the recent price: the average payment of this many last executions
DEFAULT_LIMIT = 20
MAX_CRON_STEPS = 1000  # fire times walked to turn a cron runway into a time
LIVE_KEEPER = (1, 2)  # KeeperRegistry.Status Active, Exiting: still signs

# The STATE column: a job that cannot run is never "Active".
STATE_WORDS = {
    JobState.PAUSED: "Paused",
    JobState.CANCELLED: "Cancelled",
    JobState.UNDERFUNDED: "Underfunded",
    JobState.NO_QUORUM: "No quorum",
    JobState.EXPIRED: "Expired",
    JobState.FINISHED: "Finished",
    JobState.PRICED_OUT: "Priced out",
    JobState.GAS_LIMIT_LOW: "Gas limit low",
    JobState.TARGET_REVERTS: "Target reverts",
    JobState.RESOLVER_REVERTS: "Resolver reverts",
}


def state_word(state: JobState) -> str:
    return STATE_WORDS.get(state, "Active")


NODE_TIMEOUT = 5


async def fetch_node_views(url: str, path: str) -> tuple[Any, str | None]:
    """GET a job view of a node's admin listener (`/v1/jobs` or `/v1/jobs/{id}`): the JSON,
    or None and why not (unreachable, or 404 for a job the node does not know)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=NODE_TIMEOUT)) as session,
            session.get(url.rstrip("/") + path) as response,
        ):
            if response.status == 404:
                return None, "the node does not know this job"
            if response.status != 200:
                return None, f"HTTP {response.status}"
            return await response.json(), None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return None, f"not reachable ({type(exc).__name__})"


def node_state_word(view: dict[str, Any]) -> str | None:
    """The STATE word of a node's evaluation; None where the node's view adds nothing (a job
    its quorums do not serve, or a state this CLI does not know)."""
    try:
        state = JobState(str(view.get("state")))
    except ValueError:
        return None
    return None if state == JobState.NOT_MINE else state_word(state)


def describe_failure(reason: bytes) -> str:
    """A target's revert data as a person reads it: `Error(not ready)`, `NoWork()`, ..."""
    if not reason:
        return "no revert data (out of gas, or a bare revert)"
    revert = decode_revert_data(reason)
    if revert.error_name == "Unknown":
        return f"custom error 0x{reason[:4].hex()} (not in the network's ABIs)"
    return format_revert(revert)


@dataclass
class Quorums:
    """The current epoch's quorums and which members still sign, read once per command."""

    epoch: int
    members: list[list[Member]]
    live: set[str]

    def facts(self, quorum_of: int, threshold_bps: int) -> QuorumFacts:
        members = self.members[quorum_of] if quorum_of < len(self.members) else []
        # `mine` stands for "some quorum serves it": the CLI is no node of its own.
        reachable = bool(members) and is_quorum_reachable(members, self.live, threshold_bps)
        return QuorumFacts(quorum_of, True, reachable)


async def read_quorums(registry: AsyncContract) -> Quorums | None:
    epoch, start_block, *_ = await call(registry.functions.epochState())
    if not epoch:
        return None
    logs = await get_logs_paged(
        registry.events.QuorumFormed(),
        int(start_block),
        {"epoch": int(epoch)},
        to_block=int(start_block),
    )
    ordered = sorted(logs, key=lambda log: int(log["args"]["quorum"]))
    members = [[unpack_member(bytes(w)) for w in log["args"]["members"]] for log in ordered]
    live: set[str] = set()
    for address in {m.address for quorum in members for m in quorum}:
        _stake, status, *_ = await call(registry.functions.keeperInfo(address))
        if int(status) in LIVE_KEEPER:
            live.add(address.lower())
    return Quorums(int(epoch), members, live)


@dataclass
class JobRecord:
    """One job as the chain holds it: its view, its events and its state at the head."""

    job_id: int
    view: dict[str, Any]
    job: Job
    created: Any
    min_balance: int
    head: int
    head_ts: int
    quorum: QuorumFacts | None
    fundings: list[Any] = field(default_factory=list)
    executions: list[Any] = field(default_factory=list)
    failures: dict[int, bytes] = field(default_factory=dict)
    withdrawals: list[Any] = field(default_factory=list)
    auto_pauses: list[Any] = field(default_factory=list)

    @property
    def evaluation(self) -> Any:
        cron = cron_next_fire(self.job.trigger.cron) if self.job.kind == TriggerKind.Cron else None
        facts = JobFacts(self.job, self.head, self.head_ts, self.min_balance, self.quorum)
        return compute_job_evaluation(facts, cron)


async def read_job(
    tm: AsyncContract,
    registry: AsyncContract,
    deployment: Deployment,
    job_id: int,
    quorums: Quorums | None,
    created: Any | None = None,
    *,
    history: bool = False,
) -> JobRecord:
    """The job's view, its state's inputs, and with `history` its money and execution events."""
    view = await fetch_job(tm, job_id)
    w3 = tm.w3
    if created is None:
        by_id = {"jobId": job_id}
        (created,) = await get_logs_paged(tm.events.JobCreated(), deployment.block, by_id)
    created_block = await w3.eth.get_block(int(created["blockNumber"]))
    job = job_from_created(
        dict(created["args"]), int(created["blockNumber"]), int(created_block["timestamp"])
    )
    job = dataclasses.replace(
        job,
        status=JobStatus(int(view["status"])),
        round=int(view["round"]),
        last_cursor=int(view["lastCursor"]),
        balance=int(view["balance"]),
    )
    head = await w3.eth.get_block("latest")
    quorum = None
    if quorums is not None:
        index = int(await call(registry.functions.quorumOf(job_id, quorums.epoch)))
        quorum = quorums.facts(index, job.threshold_bps)
    record = JobRecord(
        job_id=job_id,
        view=view,
        job=job,
        created=created,
        min_balance=int(await call(tm.functions.minBalance(job_id))),
        head=int(head["number"]),
        head_ts=int(head["timestamp"]),
        quorum=quorum,
    )
    if history:
        by_job = {"jobId": job_id}
        start = int(created["blockNumber"])
        record.fundings = await get_logs_paged(tm.events.JobFunded(), start, by_job)
        record.executions = await get_logs_paged(tm.events.JobExecuted(), start, by_job)
        failed = await get_logs_paged(tm.events.JobFailed(), start, by_job)
        record.failures = {int(e["args"]["round"]): bytes(e["args"]["reason"]) for e in failed}
        record.withdrawals = await get_logs_paged(tm.events.JobFundsWithdrawn(), start, by_job)
        auto_paused = getattr(tm.events, "JobAutoPaused", None)  # absent from older ABIs
        if auto_paused is not None:
            record.auto_pauses = await get_logs_paged(auto_paused(), start, by_job)
    return record


async def read_contracts(
    settings: Settings,
) -> tuple[AsyncWeb3[Any], AsyncContract, AsyncContract, Deployment]:
    w3 = await reading_web3(settings)
    deployment = await load_deployment(settings, w3)
    contracts = bind(w3, deployment)
    return w3, contracts.task_manager, contracts.registry, deployment


# ------------------------------------------------------------------ job list


async def job_list(settings: Settings, args: argparse.Namespace) -> int:
    owner = parse_address(args.owner, "--owner") if args.owner else None
    _w3, tm, registry, deployment = await read_contracts(settings)
    filters = {"owner": owner} if owner else {}
    async with chain_step("job list"):
        logs = await get_logs_paged(tm.events.JobCreated(), deployment.block, filters)
        quorums = await read_quorums(registry)
        records = [
            await read_job(tm, registry, deployment, int(log["args"]["jobId"]), quorums, log)
            for log in logs
        ]
    if not records:
        print("no jobs" + (f" owned by {owner}" if owner else ""))
        return 0
    node_states: dict[int, str] = {}
    if args.admin_url:
        views, problem = await fetch_node_views(args.admin_url, "/v1/jobs")
        if problem:
            print(
                f"keeper: warning: node {args.admin_url} {problem}: states from the chain",
                file=sys.stderr,
            )
        for view in views or []:
            word = node_state_word(view)
            if word is not None:
                node_states[int(view["id"])] = word
    rows = [("ID", "KIND", "STATUS", "STATE", "ROUND", "LAST CURSOR", "BALANCE (ETH)", "TARGET")]
    for r in records:
        rows.append(
            (
                str(r.job_id),
                r.job.kind.name,
                JobStatus(int(r.view["status"])).name,
                node_states.get(r.job_id) or state_word(r.evaluation.state),
                str(r.job.round),
                format_cursor(r.job.kind, r.job.last_cursor),
                ether(r.job.balance),
                str(r.job.target),
            )
        )
    print("\n".join(format_table(rows)))
    return 0


# ------------------------------------------------------------------ job show


@dataclass(frozen=True)
class Money:
    deposited: int
    top_ups: int
    spent: int
    withdrawn: int
    executions: int
    failed: int
    average: int | None  # the recent price: mean payment of the last RECENT_EXECUTIONS


def compute_money(record: JobRecord) -> Money:
    payments = [int(log["args"]["payment"]) for log in record.executions]
    recent = payments[-RECENT_EXECUTIONS:]
    return Money(
        deposited=int(record.created["args"]["deposit"])
        + sum(int(log["args"]["amount"]) for log in record.fundings),
        top_ups=len(record.fundings),
        spent=sum(payments),
        withdrawn=sum(int(log["args"]["amount"]) for log in record.withdrawals),
        executions=len(payments),
        failed=sum(1 for log in record.executions if not log["args"]["success"]),
        average=sum(recent) // len(recent) if recent else None,
    )


def compute_time_left(record: JobRecord, runway: int, spacing: int | None) -> int | None:
    """Seconds `runway` more executions last: by the schedule for Time and Cron jobs, else at
    the recent spacing between executions (None when not known)."""
    job = record.job
    if runway == 0:
        return 0
    if job.kind == TriggerKind.Time:
        return runway * job.trigger.interval
    if job.kind == TriggerKind.Cron:
        next_fire = cron_next_fire(job.trigger.cron)
        at = first = max(job.last_cursor, record.head_ts)
        steps = min(runway, MAX_CRON_STEPS)
        for _ in range(steps):
            fire = next_fire(at)
            if fire is None:
                return None
            at = fire
        return (at - first) * runway // steps
    return runway * spacing if spacing else None


def compute_spacing(record: JobRecord, times: dict[int, int]) -> int | None:
    """Mean seconds between the recent executions (None with fewer than two)."""
    recent = record.executions[-RECENT_EXECUTIONS:]
    if len(recent) < 2:
        return None
    first, last = (times[int(log["blockNumber"])] for log in (recent[0], recent[-1]))
    return (last - first) // (len(recent) - 1) or None


@dataclass(frozen=True)
class Runway:
    """What the balance still pays for at the recent price: executions and (when known) time."""

    executions: int | None  # None before the first execution
    seconds: int | None
    average: int | None


async def read_runway(w3: AsyncWeb3[Any], record: JobRecord) -> Runway:
    """The runway of a record read `with history`."""
    average = compute_money(record).average
    executions = compute_runway(record.job.balance, record.min_balance, average)
    if executions is None:
        return Runway(None, None, None)
    recent = record.executions[-RECENT_EXECUTIONS:]
    times = await _timestamps(w3, [int(log["blockNumber"]) for log in recent])
    seconds = compute_time_left(record, executions, compute_spacing(record, times))
    return Runway(executions, seconds, average)


def describe_next_run(record: JobRecord, evaluation: Any) -> str:
    if not evaluation.can_run:
        return f"none while {state_word(evaluation.state).lower()}"
    job = record.job
    if evaluation.next_run is not None:
        return format_when(int(evaluation.next_run), record.head_ts)
    if job.kind == TriggerKind.Event:
        return "at the next matching log, once confirmed"
    if evaluation.next_block is not None:
        return f"block {evaluation.next_block} or later, when the resolver says so"
    return "unknown"


async def _timestamps(w3: AsyncWeb3[Any], blocks: list[int]) -> dict[int, int]:
    return {b: int((await w3.eth.get_block(b))["timestamp"]) for b in sorted(set(blocks))}


def _execution_cells(log: Any, record: JobRecord, times: dict[int, int]) -> dict[str, str]:
    a = log["args"]
    failed = not a["success"]
    reason = record.failures.get(int(a["round"])) if failed else None
    return {
        "round": str(a["round"]),
        "cursor": format_cursor(record.job.kind, int(a["cursor"])),
        "block": str(log["blockNumber"]),
        "time": format_date(times[int(log["blockNumber"])]),
        "executor": str(a["executor"]),
        "success": "success" if a["success"] else "FAILED",
        "gas": str(a["gasUsed"]),
        "payment_wei": str(int(a["payment"])),
        "payment": format_ether(int(a["payment"])),
        "reason": describe_failure(reason) if reason is not None else "",
        "tx": encode_hex(log["transactionHash"]),
    }


async def job_show(settings: Settings, args: argparse.Namespace) -> int:
    job_id = parse_job_id(args.id)
    limit = args.limit
    if limit is not None and limit < 1:
        raise ValidationError(f"--limit must be at least 1, got {limit}")
    w3, tm, registry, deployment = await read_contracts(settings)
    async with chain_step("job show"):
        await fetch_job(tm, job_id)
        quorums = await read_quorums(registry)
        record = await read_job(tm, registry, deployment, job_id, quorums, history=True)
        worst_runway, worst_cost = (int(x) for x in await call(tm.functions.runway(job_id)))
        shown = record.executions
        if limit is not None or not args.csv:
            shown = shown[-(limit or DEFAULT_LIMIT) :]
        recent = record.executions[-RECENT_EXECUTIONS:]
        times = await _timestamps(w3, [int(log["blockNumber"]) for log in shown + recent])
    if args.csv:
        out = io.StringIO()
        columns = ["round", "cursor", "block", "time", "executor", "success", "gas",
                   "payment_wei", "reason", "tx"]  # fmt: skip
        writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for log in shown:
            writer.writerow(_execution_cells(log, record, times))
        print(out.getvalue(), end="")
        return 0
    lines = render_job(record, worst_runway, worst_cost, shown, times)
    if args.admin_url:
        view, problem = await fetch_node_views(args.admin_url, f"/v1/jobs/{job_id}")
        lines[4:4] = node_lines(args.admin_url, view, problem)
    print("\n".join(lines))
    return 0


def node_lines(url: str, view: dict[str, Any] | None, problem: str | None) -> list[str]:
    """The node's evaluation of the job (the `why` its quorum sees), under the chain's."""
    if view is None:
        return [f"  {'node says':<15}nothing: {problem} ({url})"]
    word = node_state_word(view) or str(view.get("state"))
    lines = [
        f"  {'node says':<15}{word}: {view.get('reason')} (block "
        f"{view.get('evaluated_at_block')}, {url})"
    ]
    for seen in (view.get("reasons") or [])[-3:]:
        lines.append(f"  {'':<15}earlier, block {seen.get('block')}: {seen.get('reason')}")
    return lines


def render_job(
    record: JobRecord, worst_runway: int, worst_cost: int, shown: list[Any], times: dict[int, int]
) -> list[str]:
    job, view, now = record.job, record.view, record.head_ts
    evaluation = record.evaluation
    money = compute_money(record)
    lines = [f"job {record.job_id}"]
    spec = record.created["args"]["spec"]
    call_data = bytes(spec["callData"])
    bps = job.threshold_bps
    rows: list[tuple[str, str]] = [
        ("owner", str(view["owner"])),
        ("status", JobStatus(int(view["status"])).name),
        ("state", f"{state_word(evaluation.state)}: {evaluation.reason}"),
        ("next run", describe_next_run(record, evaluation)),
        ("kind", job.kind.name),
        ("target", str(view["target"])),
        ("caller", f"{view['forwarder']} (the job's forwarder: msg.sender at the target)"),
    ]
    if int(str(view["pendingOwner"]), 16) != 0:
        rows.append(("offered to", str(view["pendingOwner"])))
    rows += [
        ("calldata", f"{encode_hex(call_data)} ({len(call_data)} bytes)"),
        ("trigger", describe_trigger(decode_trigger(int(job.kind), bytes(spec["trigger"])))),
        ("gas limit", str(view["gasLimit"])),
        ("threshold", f"{bps} bps ({bps / 100:g}% of the quorum's stake)"),
        ("start", format_when(job.start_time, now)),
        ("end", format_when(job.end_time, now) if job.end_time else "none"),
        ("max executions", str(view["maxExecutions"] or "unlimited")),
        ("round", str(view["round"])),
        ("last cursor", format_cursor(job.kind, job.last_cursor)),
        (
            "max gas price",
            f"{int(view['maxGasPrice'])} wei" if int(view["maxGasPrice"]) else "none",
        ),
    ]
    if "maxFailures" in view:
        rows.append(
            (
                "failures",
                f"{view['failures']} in a row (pauses itself at {view['maxFailures']})"
                if int(view["maxFailures"])
                else f"{view['failures']} in a row (never pauses itself)",
            )
        )
    if record.auto_pauses:
        last = record.auto_pauses[-1]
        rows.append(
            (
                "auto-paused",
                f"{len(record.auto_pauses)} time(s), last at block {last['blockNumber']} after "
                f"{last['args']['failures']} failed execution(s) in a row",
            )
        )
    rows += money_rows(record, money, worst_runway, worst_cost, times)
    lines += [f"  {name:<15}{value}" for name, value in rows]
    total = money.executions
    header = f"executions ({total})"
    if len(shown) < total:
        header = (
            f"executions ({total}; the newest {len(shown)} shown: --limit N for more, "
            "--csv for a table)"
        )
    lines.append(header)
    for log in shown:
        c = _execution_cells(log, record, times)
        line = (
            f"  round {c['round']}  cursor {c['cursor']}  block {c['block']}  "
            f"executor {c['executor']}  {c['success']}  gas {c['gas']}  "
            f"payment {c['payment']}  {c['time']}"
        )
        if c["reason"]:
            line += f"  reason {c['reason']}"
        lines.append(line)
    return lines


def money_rows(
    record: JobRecord, money: Money, worst_runway: int, worst_cost: int, times: dict[int, int]
) -> list[tuple[str, str]]:
    job = record.job
    deposit = int(record.created["args"]["deposit"])
    rows = [
        (
            "deposited",
            f"{format_ether(money.deposited)} ({format_ether(deposit)} at creation"
            + (f" + {money.top_ups} top-up(s))" if money.top_ups else ")"),
        ),
        (
            "spent",
            f"{format_ether(money.spent)} on {money.executions} execution(s)"
            + (f", {money.failed} failed" if money.failed else ""),
        ),
    ]
    if money.withdrawn:
        rows.append(("withdrawn", format_ether(money.withdrawn)))
    rows += [
        ("balance", format_ether(job.balance)),
        ("min balance", f"{format_ether(record.min_balance)} (one worst-case execution)"),
    ]
    if money.average is None:
        rows.append(("average cost", "none yet (no execution)"))
    else:
        rows.append(
            (
                "average cost",
                f"{format_ether(money.average)} per execution (the last "
                f"{min(money.executions, RECENT_EXECUTIONS)})",
            )
        )
    spacing = compute_spacing(record, times)
    runway = compute_runway(job.balance, record.min_balance, money.average)
    if runway is not None:
        left = compute_time_left(record, runway, spacing)
        when = f", about {format_duration(left)}" if left is not None else ""
        rows.append(("runway", f"{runway} execution(s) at the recent price{when}"))
    worst_left = compute_time_left(record, worst_runway, spacing)
    rows.append(
        (
            "runway (worst)",
            f"{worst_runway} execution(s) at {format_ether(worst_cost)} each (the whole gas "
            "limit at today's price)"
            + (f", about {format_duration(worst_left)}" if worst_left is not None else ""),
        )
    )
    return rows


VIEW_COMMANDS = {"list": job_list, "show": job_show}
