"""`keeper job ...`: the job owner's commands that send (create, fund, pause, resume, cancel,
withdraw, transfer, accept) and the helpers the read-only ones share (keeper.cli.job_view).

Flags are validated before any RPC; every chain step runs inside `chain_step`, so an unreachable
RPC, a revert (by its custom error's name) or any other web3 failure is one line.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.hexadecimal import encode_hex
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import Web3Exception
from web3.logs import DISCARD
from web3.types import TxReceipt, Wei

from keeper.chain.contracts import JOB_VIEW_FIELDS, Deployment, bind, call
from keeper.cli.chain_io import chain_step, load_deployment, reading_web3, send, signing_web3
from keeper.cli.jobspec import CHECK_UPKEEP_SELECTOR, draft_from_flags, parse_address
from keeper.cli.simulate import simulate_job
from keeper.config import Settings
from keeper.core.jobs import Trigger
from keeper.core.triggers import LOG_INDEX_MASK, TriggerKind, split_event_cursor
from keeper.core.units import format_ether, parse_amount
from keeper.errors import ContractRevert, InvalidAmount, JobRefused, ValidationError

ZERO_TOPIC = b"\x00" * 32


def parse_job_id(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or int(value) == 0:
        raise ValidationError(f"invalid job id {text!r}: expected a positive whole number")
    return int(value)


async def fetch_job(tm: AsyncContract, job_id: int) -> dict[str, Any]:
    """TaskManager.getJob as a dict; an unknown id is one clear error."""
    try:
        values = await call(tm.functions.getJob(job_id))
    except ContractRevert as exc:
        if exc.error_name == "UnknownJob":
            raise ValidationError(f"job {job_id} does not exist") from exc
        raise
    return dict(zip(JOB_VIEW_FIELDS, values, strict=True))


# ------------------------------------------------------------------ formatting


def ether(wei: int) -> str:
    return format_ether(wei).removesuffix(" ether")


def format_cursor(kind: TriggerKind, cursor: int) -> str:
    """Event cursors as `block/logIndex` (`end` = after every log of the block), others raw."""
    if kind == TriggerKind.Event:
        block, index = split_event_cursor(cursor)
        return f"{block}/{'end' if index == LOG_INDEX_MASK else index}"
    return str(cursor)


def format_time(ts: int, none: str) -> str:
    if ts == 0:
        return none
    return f"{ts} ({datetime.fromtimestamp(ts, tz=UTC):%Y-%m-%d %H:%M:%S} UTC)"


def describe_trigger(trigger: Trigger) -> str:
    if trigger.kind == TriggerKind.Time:
        return f"every {trigger.interval}s"
    if trigger.kind == TriggerKind.Cron:
        return f"cron {trigger.cron!r} (UTC)"
    if trigger.kind == TriggerKind.Event:
        topics = ", ".join(
            f"topic{i} {encode_hex(t)}" for i, t in enumerate(trigger.topics) if t != ZERO_TOPIC
        )
        return (
            f"a log of {trigger.emitter} ({topics or 'any topics'}), "
            f"{trigger.confirmations} confirmation(s)"
        )
    spacing = f"at least {trigger.min_interval} block(s) apart"
    data = trigger.resolver_calldata
    if trigger.mode == 1 and data[:4] == CHECK_UPKEEP_SELECTOR:
        (check_data,) = abi_decode(["bytes"], data[4:])
        return (
            f"mode 1 (Automation-compatible): {trigger.resolver}.checkUpkeep("
            f"{encode_hex(check_data)}), then performUpkeep(performData); {spacing}"
        )
    return (
        f"mode {trigger.mode}: resolver {trigger.resolver} called with {encode_hex(data)}; "
        f"{spacing}"
    )


def tx_line(receipt: TxReceipt) -> str:
    return (
        f"tx {encode_hex(receipt['transactionHash'])} "
        f"(block {receipt['blockNumber']}, gas {receipt['gasUsed']})"
    )


def _events(contract: AsyncContract, name: str, receipt: TxReceipt) -> list[Any]:
    return list(getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD))


# ------------------------------------------------------------------ commands


async def _owner(settings: Settings) -> tuple[AsyncWeb3[Any], Any, AsyncContract]:
    w3, account = await signing_web3(settings)
    deployment = await load_deployment(settings, w3)
    return w3, account, bind(w3, deployment).task_manager


async def _reader(settings: Settings) -> tuple[AsyncContract, Deployment]:
    w3 = await reading_web3(settings)
    deployment = await load_deployment(settings, w3)
    return bind(w3, deployment).task_manager, deployment


async def job_create(settings: Settings, args: argparse.Namespace) -> int:
    draft = draft_from_flags(args)
    deposit = parse_amount(args.fund) if args.fund is not None else None
    w3, account, tm = await _owner(settings)
    create = tm.functions.createJob(draft.as_tuple())
    async with chain_step("createJob"):
        if deposit is None:
            required = tm.functions.requiredDeposit(draft.gas_limit, draft.max_gas_price)
            deposit = 10 * int(await call(required))
        # The contract's own checks first (ForbiddenTarget, DepositTooLow, ...), by name.
        await _dry_run(create, account.address, deposit)
    async with chain_step("check the job"):
        found = await simulate_job(w3, tm, account.address, draft, args.emitter_abi)
    for line in found.notes:
        print(f"check: {line}")
    for line in found.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if found.refusals:
        if not args.force:
            raise JobRefused(
                "; ".join(found.refusals) + " (nothing was sent; --force creates it anyway)"
            )
        for line in found.refusals:
            print(f"warning: {line} (created anyway: --force)", file=sys.stderr)
    async with chain_step("createJob"):
        receipt = await send(w3, account, create, deposit)
    (event,) = _events(tm, "JobCreated", receipt)
    print(
        f"created job {event['args']['jobId']} ({draft.kind.name}), funded {format_ether(deposit)}"
    )
    print(
        f"its target sees calls from {event['args']['forwarder']} "
        "(the job's own forwarder: lock the target to it)"
    )
    print(tx_line(receipt))
    return 0


async def _dry_run(fn: Any, sender: str, value: int) -> None:
    """eth_call of `fn` as `sender` would send it: a revert is raised by name. Anything else (a
    sender without the ether, a node that prices calls) is left for the send to report."""
    try:
        await call(fn, {"from": sender, "value": Wei(value)})
    except ContractRevert:
        raise
    except (Web3Exception, ValueError):
        return


async def job_fund(settings: Settings, args: argparse.Namespace) -> int:
    job_id = parse_job_id(args.id)
    amount = parse_amount(args.amount)
    if amount == 0:
        raise InvalidAmount(f"invalid amount {args.amount!r}: must be more than zero")
    w3, account, tm = await _owner(settings)
    async with chain_step("fund"):
        await fetch_job(tm, job_id)
        receipt = await send(w3, account, tm.functions.fund(job_id), amount)
    (event,) = _events(tm, "JobFunded", receipt)
    balance = int(event["args"]["balance"])
    print(f"funded job {job_id} with {format_ether(amount)}; balance {format_ether(balance)}")
    print(tx_line(receipt))
    return 0


# `job ACTION ID` -> the TaskManager function it sends.
_OWNER_ACTIONS = {
    "pause": "pause",
    "resume": "resume",
    "cancel": "cancel",
    "withdraw": "withdrawFunds",
    "accept": "acceptJobOwnership",
}


async def job_owner_action(settings: Settings, args: argparse.Namespace) -> int:
    """pause, resume, cancel, withdraw or accept: one call with the job id."""
    action: str = args.job_command
    job_id = parse_job_id(args.id)
    w3, account, tm = await _owner(settings)
    async with chain_step(action):
        await fetch_job(tm, job_id)
        receipt = await send(w3, account, getattr(tm.functions, _OWNER_ACTIONS[action])(job_id))
    past = {
        "pause": "paused",
        "resume": "resumed",
        "cancel": "cancelled",
        "withdraw": "withdrew the balance of",
        "accept": "took over",
    }[action]
    print(f"{past} job {job_id}")
    if action == "cancel":
        (event,) = _events(tm, "JobCancelled", receipt)
        unlock = int(event["args"]["unlockBlock"])
        print(
            f"its balance stays until block {unlock} (reports signed before the cancel may "
            f"still execute); then: keeper job withdraw {job_id}"
        )
    if action == "withdraw":
        (event,) = _events(tm, "JobFundsWithdrawn", receipt)
        amount = int(event["args"]["amount"])
        print(f"refund {format_ether(amount)} ({amount} wei) to {event['args']['to']}")
    print(tx_line(receipt))
    return 0


async def job_transfer(settings: Settings, args: argparse.Namespace) -> int:
    """Offers a job to a new owner (the first of two steps)."""
    job_id = parse_job_id(args.id)
    new_owner = parse_address(args.new_owner, "new owner")
    w3, account, tm = await _owner(settings)
    async with chain_step("transfer"):
        await fetch_job(tm, job_id)
        receipt = await send(w3, account, tm.functions.transferJobOwnership(job_id, new_owner))
    print(f"offered job {job_id} to {new_owner}; it becomes theirs when they run `job accept`")
    print(tx_line(receipt))
    return 0


# TaskManager.setMaxFailures takes 0-254 (255 is its own "never" mark).
MAX_FAILURES_LIMIT = 254


async def job_max_failures(settings: Settings, args: argparse.Namespace) -> int:
    """How many failed executions in a row pause the job (TaskManager.setMaxFailures)."""
    job_id = parse_job_id(args.id)
    text = args.count.strip()
    if not text.isdigit() or int(text) > MAX_FAILURES_LIMIT:
        raise ValidationError(
            f"invalid failure count {args.count!r}: "
            f"expected 0-{MAX_FAILURES_LIMIT} (0: never pause)"
        )
    count = int(text)
    w3, account, tm = await _owner(settings)
    async with chain_step("setMaxFailures"):
        await fetch_job(tm, job_id)
        receipt = await send(w3, account, tm.functions.setMaxFailures(job_id, count))
    if count == 0:
        print(f"job {job_id} never pauses itself after failures")
    else:
        print(f"job {job_id} pauses itself after {count} failed executions in a row")
    print(tx_line(receipt))
    return 0


JOB_COMMANDS = {
    "create": job_create,
    "fund": job_fund,
    "pause": job_owner_action,
    "resume": job_owner_action,
    "cancel": job_owner_action,
    "withdraw": job_owner_action,
    "accept": job_owner_action,
    "transfer": job_transfer,
    "max-failures": job_max_failures,
}
