"""One valid round of `execute`, and the means to tamper with one part of it at a time.

Every negative test of `execute` starts from a round that is proven to execute (see the happy
path controls), changes exactly one thing, and checks both the named custom error and that the
rejected call left every trace of a round untouched: the job's round, cursor and balance, the
target's counter and every keeper's earnings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, keccak, to_checksum_address
from web3.types import TxReceipt

from keeper.chain.contracts import decode_revert_data
from keeper.core.quorum import Member
from keeper.core.report import Report
from keeper.errors import ContractRevert
from tests.harness import (
    CONDITION,
    EVENT,
    NO_PAYLOAD,
    TIME,
    Net,
    condition_trigger,
    event_trigger,
    execute_error,
    selector,
    time_trigger,
)

INTERVAL = 60
ON_TIME = selector("onTime()")
ON_EVENT = selector("onEvent()")
CHECKER = selector("checker()")
DEMO_EVENT = keccak(text="DemoEvent(address,uint256,uint256)")


@dataclass(frozen=True)
class Trace:
    """Everything an executed round changes; a rejected one must leave all of it as it was."""

    round: int
    last_cursor: int
    balance: int
    target_count: int
    earnings: tuple[int, ...]


async def observe(net: Net, job_id: int) -> Trace:
    job = await net.job(job_id)
    earnings = [await net.tm.functions.earnings(k.address).call() for k in net.keepers]
    return Trace(
        round=job["round"],
        last_cursor=job["lastCursor"],
        balance=job["balance"],
        target_count=await net.target.functions.count().call(),
        earnings=tuple(earnings),
    )


async def assert_rejected(
    net: Net, job_id: int, submit: Callable[[], Awaitable[Any]], error: str
) -> tuple[Any, ...]:
    """Runs `submit`, expects the custom error `error`, and checks that nothing changed.

    Returns the error's decoded arguments for the caller to check, addresses checksummed. A
    per-item check (tests.harness.SKIP_ERRORS) skips the batch's only item, so the batch
    reverts `NothingExecuted` (no arguments); test_batch_execute.py names the skip reasons.
    """
    before = await observe(net, job_id)
    with pytest.raises(ContractRevert) as info:
        await submit()
    assert info.value.error_name == execute_error(error), str(info.value)
    assert await observe(net, job_id) == before
    return tuple(_checksummed(arg) for arg in info.value.args)


def _checksummed(arg: Any) -> Any:
    if isinstance(arg, str) and is_address(arg):
        return to_checksum_address(arg)
    return arg


@dataclass(frozen=True)
class Round:
    """A report for a job's next round, its payload and the quorum that signs it."""

    net: Net
    job_id: int
    report: Report
    payload: bytes
    members: list[Member]

    @property
    def executor(self) -> LocalAccount:
        return self.net.account_of(self.report.executor)

    @property
    def signers(self) -> list[LocalAccount]:
        return [self.net.account_of(m.address) for m in self.members]

    def altered(self, **fields: Any) -> Report:
        """The report with some fields changed (to be signed again by the quorum)."""
        return replace(self.report, **fields)

    def signatures(self, report: Report | None = None) -> list[bytes]:
        """Every member's signature over `report`, in member order."""
        signed = self.net.sign(report or self.report, self.signers)
        return [signed[m.address] for m in self.members]

    async def submit(
        self,
        report: Report | None = None,
        *,
        payload: bytes | None = None,
        members: Sequence[Member] | None = None,
        signatures: dict[str, bytes] | None = None,
        signers: Sequence[LocalAccount] | None = None,
        bitmap: int | None = None,
        packed: bytes | None = None,
        sender: LocalAccount | str | None = None,
    ) -> TxReceipt:
        """`execute` with this round's parts, any of them replaced; signed by the whole quorum
        over the (possibly altered) report unless signatures or signers are given."""
        rep = report or self.report
        sigs = signatures
        if sigs is None:
            sigs = self.net.sign(rep, self.signers if signers is None else signers)
        return await self.net.execute(
            rep,
            self.payload if payload is None else payload,
            self.members if members is None else members,
            sigs,
            bitmap=bitmap,
            packed=packed,
            sender=sender,
        )

    async def rejected(self, error: str, **submit: Any) -> tuple[Any, ...]:
        """Submits with the given replacements and expects `error` with nothing changed."""
        return await assert_rejected(self.net, self.job_id, lambda: self.submit(**submit), error)

    async def executes(self, **submit: Any) -> None:
        """Submits and checks that the round was recorded, the target ran and the sender was
        paid from the job's balance."""
        rep = submit.get("report") or self.report
        sender = submit.get("sender") or rep.executor
        paid = sender if isinstance(sender, str) else sender.address
        earned = self.net.tm.functions.earnings(paid)
        before, earned_before = await observe(self.net, self.job_id), await earned.call()
        receipt = await self.submit(**submit)
        (event,) = await self.net.events(self.net.tm, "JobExecuted", receipt)
        args = event["args"]
        assert (args["jobId"], args["round"], args["cursor"]) == (rep.jobId, rep.round, rep.cursor)
        assert args["success"] is True
        after = await observe(self.net, self.job_id)
        assert (after.round, after.last_cursor) == (before.round + 1, rep.cursor)
        assert after.target_count == before.target_count + 1
        assert args["payment"] > 0
        assert after.balance == before.balance - args["payment"]
        assert await earned.call() == earned_before + args["payment"]


async def prepare_round(
    net: Net, job_id: int, cursor: int, payload: bytes, **report_fields: Any
) -> Round:
    """The honest round: the job's quorum in the current epoch, its first member executes."""
    epoch = report_fields.get("epoch")
    _, members = await net.quorum_for_job(job_id, epoch)
    report = await net.make_report(job_id, cursor, payload, members[0].address, **report_fields)
    return Round(net=net, job_id=job_id, report=report, payload=payload, members=members)


async def create_time_job(net: Net, deposit: int | None = None, **spec: Any) -> tuple[int, int]:
    """A Time job every INTERVAL seconds calling onTime(); returns (jobId, startTime)."""
    job_id = await net.create_job(net.spec(TIME, time_trigger(INTERVAL), ON_TIME, **spec), deposit)
    return job_id, (await net.job(job_id))["startTime"]


async def time_round(net: Net, deposit: int | None = None, **spec: Any) -> Round:
    """A Time job whose slots start and start + 60 are due (it is start + 90): a round for the
    newest slot, start + 60, as a keeper proposes it."""
    job_id, start = await create_time_job(net, deposit, **spec)
    net.time_travel(start + INTERVAL + INTERVAL // 2)
    return await prepare_round(net, job_id, start + INTERVAL, NO_PAYLOAD)


async def create_condition_job(net: Net, min_interval: int = 1, **spec: Any) -> int:
    """A Condition job (mode 0) whose resolver is the demo target's checker()."""
    trigger = condition_trigger(net.target.address, CHECKER, 0, min_interval)
    return await net.create_job(net.spec(CONDITION, trigger, b"", **spec))


async def condition_round(net: Net, job_id: int) -> Round:
    """Work is requested, so the resolver turns true: a round at the latest block as check block,
    the cursor, with the resolver's calldata as payload."""
    await net.tx(net.target.functions.request(5), net.owner)
    can_exec, data = await net.target.functions.checker().call()
    assert can_exec
    check_block = await net.block_number()
    return await prepare_round(net, job_id, check_block, bytes(data), check_block=check_block)


async def create_event_job(net: Net, confirmations: int) -> int:
    """An Event job on the demo target's DemoEvent, calling onEvent()."""
    trigger = event_trigger(net.target.address, [DEMO_EVENT], confirmations)
    return await net.create_job(net.spec(EVENT, trigger, ON_EVENT))


async def emit_demo_event(net: Net) -> tuple[int, int]:
    """Emits one DemoEvent; returns (its cursor `logBlock << 32 | logIndex`, logBlock)."""
    receipt = await net.tx(net.target.functions.emitDemo(7, 1), net.owner)
    (log,) = receipt["logs"]
    return (log["blockNumber"] << 32) | log["logIndex"], log["blockNumber"]


async def create_companion(net: Net, quorum: int) -> int:
    """A Condition job (min interval 1) served by `quorum`: its round 0 with the check block as
    cursor executes beside any item of that quorum's batch, so that item's own fate shows."""
    while True:
        job_id = await create_condition_job(net)
        if (await net.quorum_for_job(job_id))[0] == quorum:
            return job_id


def companion_item(report: Report, companion_id: int) -> Report:
    """The companion job's item under `report`'s header."""
    return replace(
        report, jobId=companion_id, round=0, cursor=report.checkBlock, payloadHash=keccak(ON_TIME)
    )


async def fate(
    net: Net, report: Report, payload: bytes, members: Sequence[Member], companion_id: int
) -> str | None:
    """What `execute` does with `report` beside the companion's item, signed by every member,
    in a chain snapshot undone afterwards: None when it executed, the name of the error its
    `JobSkipped` reason is the selector of, or the whole batch's revert."""
    snapshot = net.chain.snapshot()
    try:
        try:
            receipt = await net.execute_batch(
                [report, companion_item(report, companion_id)], [payload, ON_TIME], members
            )
        except ContractRevert as exc:
            return exc.error_name
        executed = await net.events(net.tm, "JobExecuted", receipt)
        assert [e["args"]["jobId"] for e in executed][-1] == companion_id
        skipped = await net.events(net.tm, "JobSkipped", receipt)
        if not skipped:
            return None
        (event,) = skipped
        assert event["args"]["jobId"] == report.jobId
        return decode_revert_data(bytes(event["args"]["reason"])).error_name
    finally:
        net.chain.revert(snapshot)
