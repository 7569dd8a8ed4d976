"""`keeper job watch`: follow an owner's jobs and say what happens to them, as lines and, with
--webhook, as JSON POSTed to a URL (a Slack-compatible body: {"text": ...}, details under
"keeper").

What is reported: executions, failures with their decoded reason, pauses (an auto-pause after
failures in a row, when the contract's ABI has JobAutoPaused), top-ups, an execution that left
the job underfunded (JobUnderfunded, or the balance read back where the ABI lacks it), and a
runway that fell below the threshold, in executions (`--low-runway 10`) or time
(`--low-runway 2d`), once per crossing.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from keeper.chain.contracts import Deployment, get_logs_paged
from keeper.cli.chain_io import chain_step
from keeper.cli.formatting import format_date, format_duration
from keeper.cli.job import parse_job_id
from keeper.cli.job_view import describe_failure, read_contracts, read_job, read_runway
from keeper.cli.jobspec import parse_address
from keeper.config import Settings, load_account
from keeper.core.units import format_ether
from keeper.errors import ValidationError

DEFAULT_LOW_RUNWAY = "10"
DEFAULT_POLL_SECONDS = 2.0
WEBHOOK_TIMEOUT = 10
_THRESHOLD = re.compile(r"^([0-9]+)([mhd]?)$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
# Events read each pass, in the order a block's alerts are printed when they share a log index.
WATCHED_EVENTS = (
    "JobCreated",
    "JobFunded",
    "JobExecuted",
    "JobFailed",
    "JobPaused",
    "JobAutoPaused",
    "JobResumed",
    "JobCancelled",
    "JobUnderfunded",
)


@dataclass(frozen=True)
class Threshold:
    """Low runway: fewer than `executions` left, or less than `seconds` of them."""

    executions: int | None = None
    seconds: int | None = None

    def is_low(self, executions: int, seconds: int | None) -> bool:
        if self.executions is not None:
            return executions < self.executions
        return seconds is not None and self.seconds is not None and seconds < self.seconds

    def __str__(self) -> str:
        if self.executions is not None:
            return f"{self.executions} execution(s)"
        return format_duration(self.seconds or 0)


def parse_threshold(text: str) -> Threshold:
    """`10` (executions), or `30m`, `12h`, `2d` (time left)."""
    match = _THRESHOLD.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValidationError(
            f"invalid --low-runway {text!r}: a number of executions (10) or a time (12h, 2d)"
        )
    number, unit = int(match.group(1)), match.group(2)
    if not unit:
        return Threshold(executions=number)
    return Threshold(seconds=number * _UNIT_SECONDS[unit])


@dataclass(frozen=True)
class Alert:
    """One thing that happened to a job, as a line and as the webhook's details."""

    job_id: int
    event: str
    block: int
    time: int
    text: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return f"{format_date(self.time)}  block {self.block}  {self.text}"

    def body(self) -> dict[str, Any]:
        keeper = {"job": self.job_id, "event": self.event, "block": self.block, "time": self.time}
        return {"text": self.line, "keeper": keeper | self.details}


def describe_log(name: str, args: dict[str, Any], failures: dict[int, bytes]) -> tuple[str, str]:
    """(event, text) for a log of a watched job; reasons in the same words as `job show`."""
    job = f"job {args['jobId']}"
    if name == "JobExecuted":
        paid = format_ether(int(args["payment"]))
        if args["success"]:
            text = f"{job} executed round {args['round']}: gas {args['gasUsed']}, paid {paid}"
            return "executed", text
        reason = failures.get(int(args["round"]))
        why = describe_failure(reason) if reason is not None else "reason not recorded"
        return "failed", f"{job} FAILED round {args['round']}: {why} (charged {paid})"
    if name == "JobFunded":
        return (
            "funded",
            f"{job} funded with {format_ether(int(args['amount']))}; balance "
            f"{format_ether(int(args['balance']))}",
        )
    if name == "JobAutoPaused":
        return (
            "auto_paused",
            f"{job} PAUSED itself after {args['failures']} failed execution(s) in a row; "
            f"`keeper job resume {args['jobId']}` once the cause is fixed",
        )
    if name == "JobPaused":
        return "paused", f"{job} paused"
    if name == "JobResumed":
        return "resumed", f"{job} resumed"
    if name == "JobCancelled":
        return "cancelled", f"{job} cancelled; its balance unlocks at block {args['unlockBlock']}"
    if name == "JobUnderfunded":
        return "underfunded", underfunded_text(
            int(args["jobId"]), int(args["balance"]), int(args["required"])
        )
    return "created", f"{job} created"


def underfunded_text(job_id: int, balance: int, required: int) -> str:
    return (
        f"job {job_id} UNDERFUNDED: underfunded: has {format_ether(balance)}, needs "
        f"{format_ether(required)} for one worst-case execution; "
        f"`keeper job fund {job_id} AMOUNT`"
    )


class Watcher:
    """The jobs followed, the runway alerts already given, and one pass over a block range."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        tm: AsyncContract,
        registry: AsyncContract,
        deployment: Deployment,
        jobs: set[int],
        owner: str | None,
        threshold: Threshold,
    ) -> None:
        self.w3, self.tm, self.registry, self.deployment = w3, tm, registry, deployment
        self.jobs, self.owner, self.threshold = jobs, owner, threshold
        self.low: set[int] = set()  # jobs whose low runway was reported and not recovered
        self.events = {
            name: getattr(tm.events, name)
            for name in WATCHED_EVENTS
            if getattr(tm.events, name, None) is not None  # absent from older ABIs
        }

    async def scan(self, start: int, end: int) -> list[Alert]:
        """What happened to the watched jobs in blocks start..end, in chain order."""
        logs: list[tuple[int, int, str, Any]] = []
        for name, event in self.events.items():
            for log in await get_logs_paged(event(), start, {}, to_block=end):
                logs.append((int(log["blockNumber"]), int(log["logIndex"]), name, log))
        logs.sort(key=lambda item: (item[0], item[1]))
        failures = {
            (int(log["args"]["jobId"]), int(log["args"]["round"])): bytes(log["args"]["reason"])
            for _b, _i, name, log in logs
            if name == "JobFailed"
        }
        times: dict[int, int] = {}
        alerts: list[Alert] = []
        touched: set[int] = set()
        for block, _index, name, log in logs:
            args = dict(log["args"])
            job_id = int(args["jobId"])
            if name == "JobCreated" and self.owner and args["owner"].lower() == self.owner.lower():
                self.jobs.add(job_id)
            if job_id not in self.jobs or name == "JobFailed":
                continue
            if name in ("JobExecuted", "JobFunded"):
                touched.add(job_id)
            mine = {r: reason for (j, r), reason in failures.items() if j == job_id}
            kind, text = describe_log(name, args, mine)
            if block not in times:
                times[block] = int((await self.w3.eth.get_block(block))["timestamp"])
            alerts.append(Alert(job_id, kind, block, times[block], text, _details(name, args)))
        for job_id in sorted(touched):
            alerts += await self.check_funds(job_id, end, times, alerts)
        return alerts

    async def check_funds(
        self, job_id: int, block: int, times: dict[int, int], seen: list[Alert]
    ) -> list[Alert]:
        """Underfunded (where the ABI has no event for it) and low runway, after an execution
        or a top-up."""
        record = await read_job(self.tm, self.registry, self.deployment, job_id, None, history=True)
        if block not in times:
            times[block] = int((await self.w3.eth.get_block(block))["timestamp"])
        out: list[Alert] = []
        said = any(a.job_id == job_id and a.event == "underfunded" for a in seen)
        no_event = "JobUnderfunded" not in self.events
        if record.job.balance < record.min_balance and not said and no_event:
            text = underfunded_text(job_id, record.job.balance, record.min_balance)
            out.append(Alert(job_id, "underfunded", block, times[block], text))
        runway = await read_runway(self.w3, record)
        if runway.executions is None:
            return out
        if self.threshold.is_low(runway.executions, runway.seconds):
            if job_id not in self.low:
                self.low.add(job_id)
                about = f" (about {format_duration(runway.seconds)})" if runway.seconds else ""
                text = (
                    f"job {job_id} LOW RUNWAY: {runway.executions} execution(s) left{about} at "
                    f"{format_ether(runway.average or 0)} each, below {self.threshold}; "
                    f"`keeper job fund {job_id} AMOUNT`"
                )
                details = {"runway_executions": runway.executions, "runway_seconds": runway.seconds}
                out.append(Alert(job_id, "low_runway", block, times[block], text, details))
        else:
            self.low.discard(job_id)
        return out


def _details(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The log's numbers for machines: amounts in wei as strings."""
    keep = ("round", "gasUsed", "payment", "amount", "balance", "required", "failures", "success")
    return {k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in args.items() if k in keep}  # fmt: skip


async def post(session: aiohttp.ClientSession, url: str, alert: Alert) -> None:
    """POST one alert; a webhook that fails is a warning on stderr, never the end of watching."""
    try:
        async with session.post(url, json=alert.body()) as response:
            if response.status >= 300:
                print(f"keeper: warning: webhook answered HTTP {response.status}", file=sys.stderr)
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"keeper: warning: webhook unreachable: {type(exc).__name__}", file=sys.stderr)


def _owner_of(settings: Settings, args: argparse.Namespace) -> str | None:
    if args.owner:
        return parse_address(args.owner, "--owner")
    if args.ids:
        return None
    if settings.private_key or settings.keystore:
        return str(load_account(settings).address)
    raise ValidationError("whose jobs? give job IDs, --owner ADDR, or the owner's key")


async def job_watch(settings: Settings, args: argparse.Namespace) -> int:
    ids = {parse_job_id(text) for text in args.ids}
    threshold = parse_threshold(args.low_runway)
    if args.webhook and not args.webhook.startswith(("http://", "https://")):
        raise ValidationError(f"--webhook must be an http(s) URL, got {args.webhook!r}")
    if args.poll_interval <= 0:
        raise ValidationError("--poll-interval must be positive")
    owner = _owner_of(settings, args)
    w3, tm, registry, deployment = await read_contracts(settings)
    async with chain_step("job watch"):
        head = int(await w3.eth.block_number)
        if owner is not None:
            by_owner = {"owner": owner}
            created = await get_logs_paged(tm.events.JobCreated(), deployment.block, by_owner)
            ids |= {int(log["args"]["jobId"]) for log in created}
    watcher = Watcher(w3, tm, registry, deployment, ids, owner, threshold)
    at = head + 1 if args.from_block is None else args.from_block
    who = f"jobs of {owner}" if owner else "jobs " + ", ".join(str(i) for i in sorted(ids))
    print(f"watching {who} from block {at}" + (f" to {args.to_block}" if args.to_block else ""))
    timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if args.from_block is None:  # live: what is already low is worth saying first
            async with chain_step("job watch"):
                alerts: list[Alert] = []
                for job_id in sorted(ids):
                    alerts += await watcher.check_funds(job_id, head, {}, alerts)
            for alert in alerts:
                print(alert.line, flush=True)
                if args.webhook:
                    await post(session, args.webhook, alert)
        while args.to_block is None or at <= args.to_block:
            async with chain_step("job watch"):
                head = int(await w3.eth.block_number)
                end = head if args.to_block is None else min(head, args.to_block)
                alerts = await watcher.scan(at, end) if end >= at else []
            for alert in alerts:
                print(alert.line, flush=True)
                if args.webhook:
                    await post(session, args.webhook, alert)
            at = max(at, end + 1)
            if args.to_block is None or at <= args.to_block:
                await asyncio.sleep(args.poll_interval)
    return 0
