"""createJob validation: every bad field has a named error and leaves no half-made job.

Protocol: "Validation at createJob reverts with a named custom error for each bad field ...
Bad input never leaves a half-made job."
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode as abi_encode

from keeper.errors import ContractRevert
from tests.harness import (
    CONDITION,
    CRON,
    EVENT,
    TIME,
    ZERO32,
    Net,
    condition_trigger,
    cron_trigger,
    event_trigger,
    selector,
    time_trigger,
)

MIN_GAS_LIMIT, MAX_GAS_LIMIT = 10_000, 5_000_000
MAX_CALLDATA = 4096
ZERO_ADDRESS = "0x" + "00" * 20
ON_TIME = selector("onTime()")


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


async def job_count_and_holdings(net: Net) -> tuple[int, int]:
    return int(await net.tm.functions.nextJobId().call()), await net.balance(net.tm.address)


async def assert_rejected(
    net: Net, spec: tuple[Any, ...], error: str, value: int | None = None
) -> ContractRevert:
    """createJob(spec) reverts with `error`; the TaskManager holds no new job and no new ether."""
    before = await job_count_and_holdings(net)
    deposit = value if value is not None else 10 * await net.required_deposit(spec[4])
    with pytest.raises(ContractRevert) as e:
        await net.tx(net.tm.functions.createJob(spec), net.owner, value=deposit)
    assert e.value.error_name == error
    assert await job_count_and_holdings(net) == before
    return e.value


async def create(net: Net, spec: tuple[Any, ...], value: int | None = None) -> tuple[int, Any]:
    """Creates a job; returns its id and the JobCreated event."""
    deposit = value if value is not None else 10 * await net.required_deposit(spec[4])
    receipt = await net.tx(net.tm.functions.createJob(spec), net.owner, value=deposit)
    (event,) = await net.events(net.tm, "JobCreated", receipt)
    return int(event["args"]["jobId"]), event


# ----------------------------------------------------------------------- target, gas, threshold


async def test_eoa_target_is_rejected(net: Net) -> None:
    # given a spec whose target is an externally owned account
    spec = net.spec(TIME, time_trigger(60), ON_TIME, target=net.owner.address)
    # when / then createJob names the target
    err = await assert_rejected(net, spec, "TargetNotContract")
    assert err.args == (net.owner.address.lower(),)


@pytest.mark.parametrize("gas_limit", [MIN_GAS_LIMIT - 1, MAX_GAS_LIMIT + 1])
async def test_gas_limit_outside_bounds_is_rejected(net: Net, gas_limit: int) -> None:
    # given a gas limit just outside [MIN_GAS_LIMIT, MAX_GAS_LIMIT]
    spec = net.spec(TIME, time_trigger(60), ON_TIME, gas_limit=gas_limit)
    # when / then createJob reports the limit and the bounds
    err = await assert_rejected(net, spec, "GasLimitOutOfRange")
    assert err.args == (gas_limit, MIN_GAS_LIMIT, MAX_GAS_LIMIT)


@pytest.mark.parametrize("threshold_bps", [5000, 10_001])
async def test_threshold_outside_half_to_all_is_rejected(net: Net, threshold_bps: int) -> None:
    # given a threshold not in (5000, 10000]
    spec = net.spec(TIME, time_trigger(60), ON_TIME, threshold_bps=threshold_bps)
    # when / then
    err = await assert_rejected(net, spec, "ThresholdOutOfRange")
    assert err.args == (threshold_bps,)


@pytest.mark.parametrize("threshold_bps", [5001, 10_000])
async def test_threshold_at_the_bounds_is_accepted(net: Net, threshold_bps: int) -> None:
    # given a threshold at the edges of (5000, 10000]
    spec = net.spec(TIME, time_trigger(60), ON_TIME, threshold_bps=threshold_bps)
    # when the job is created
    job_id, _ = await create(net, spec)
    # then it stores that threshold
    assert (await net.job(job_id))["thresholdBps"] == threshold_bps


# ----------------------------------------------------------------------- time window, interval


async def test_end_not_after_start_is_rejected(net: Net) -> None:
    # given a window that ends where it starts
    start = await net.timestamp() + 1000
    spec = net.spec(TIME, time_trigger(60), ON_TIME, start_time=start, end_time=start)
    # when / then
    err = await assert_rejected(net, spec, "InvalidTimeWindow")
    assert err.args == (start, start)


async def test_end_in_the_past_is_rejected(net: Net) -> None:
    # given a window that is well-ordered but already over
    now = await net.timestamp()
    spec = net.spec(TIME, time_trigger(60), ON_TIME, start_time=now - 100, end_time=now - 10)
    # when / then
    err = await assert_rejected(net, spec, "InvalidTimeWindow")
    assert err.args == (now - 100, now - 10)


async def test_time_interval_below_minimum_is_rejected(net: Net) -> None:
    # given a Time job every 9 s (MIN_INTERVAL is 10 s)
    spec = net.spec(TIME, time_trigger(9), ON_TIME)
    # when / then
    err = await assert_rejected(net, spec, "IntervalTooShort")
    assert err.args == (9, 10)


async def test_condition_min_interval_zero_is_rejected(net: Net) -> None:
    # given a Condition job that could fire twice at the same block
    trigger = condition_trigger(net.target.address, selector("checker()"), mode=0, min_interval=0)
    spec = net.spec(CONDITION, trigger, b"")
    # when / then
    err = await assert_rejected(net, spec, "IntervalTooShort")
    assert err.args == (0, 1)


# ----------------------------------------------------------------------- trigger bytes


async def test_zero_emitter_is_rejected(net: Net) -> None:
    spec = net.spec(EVENT, event_trigger(ZERO_ADDRESS), selector("onEvent()"))
    await assert_rejected(net, spec, "ZeroEmitter")


def _malformed_triggers() -> list[Any]:
    emitter = "0x" + "11" * 20
    resolver_cd = selector("checker()")
    cron_ok = cron_trigger("* * * * *")
    event_ok = event_trigger(emitter, confirmations=1)
    cond_ok = condition_trigger(emitter, resolver_cd)
    cases = [
        (TIME, word(60)[1:], "time-31-bytes"),
        (TIME, word(60) + word(0), "time-64-bytes"),
        (TIME, word(2**64), "time-above-uint64"),
        (CRON, word(0x40) + ZERO32 + cron_ok[32:], "cron-non-canonical-offset"),
        (CRON, cron_ok + ZERO32, "cron-trailing-bytes"),
        (CRON, cron_trigger(""), "cron-empty"),
        (CRON, cron_trigger("* * * *"), "cron-4-fields"),
        (CRON, cron_trigger("* * * * * *"), "cron-6-fields"),
        (CRON, cron_trigger("*  * * * *"), "cron-double-space"),
        (CRON, cron_trigger(" * * * * *"), "cron-leading-space"),
        (EVENT, event_ok[:-32], "event-160-bytes"),
        (EVENT, event_ok + ZERO32, "event-224-bytes"),
        (EVENT, event_ok[:-32] + word(2**16), "event-confirmations-above-uint16"),
        (EVENT, word(2**160) + event_ok[32:], "event-emitter-above-uint160"),
        (CONDITION, cond_ok[:159], "condition-too-short"),
        (CONDITION, condition_trigger(emitter, resolver_cd, mode=2), "condition-mode-2"),
        (CONDITION, cond_ok[:32] + word(0xA0) + cond_ok[64:], "condition-wrong-offset"),
        (CONDITION, cond_ok + ZERO32, "condition-trailing-bytes"),
    ]
    return [pytest.param(kind, trigger, id=name) for kind, trigger, name in cases]


@pytest.mark.parametrize(("kind", "trigger"), _malformed_triggers())
async def test_malformed_trigger_is_rejected(net: Net, kind: int, trigger: bytes) -> None:
    # given trigger bytes that are not the canonical encoding the kind expects
    spec = net.spec(kind, trigger, ON_TIME)
    # when / then createJob names the kind whose bytes are malformed
    err = await assert_rejected(net, spec, "MalformedTrigger")
    assert err.args == (kind,)


async def test_confirmations_above_maximum_are_rejected(net: Net) -> None:
    trigger = event_trigger(net.target.address, confirmations=65)
    spec = net.spec(EVENT, trigger, selector("onEvent()"))
    err = await assert_rejected(net, spec, "ConfirmationsTooHigh")
    assert err.args == (65, 64)


async def test_eoa_resolver_is_rejected(net: Net) -> None:
    spec = net.spec(CONDITION, condition_trigger(net.owner.address, selector("checker()")), b"")
    err = await assert_rejected(net, spec, "ResolverNotContract")
    assert err.args == (net.owner.address.lower(),)


async def test_call_data_above_maximum_is_rejected(net: Net) -> None:
    spec = net.spec(TIME, time_trigger(60), b"\x01" * (MAX_CALLDATA + 1))
    err = await assert_rejected(net, spec, "CallDataTooLong")
    assert err.args == (MAX_CALLDATA + 1, MAX_CALLDATA)


async def test_resolver_call_data_above_maximum_is_rejected(net: Net) -> None:
    trigger = condition_trigger(net.target.address, b"\x01" * (MAX_CALLDATA + 1))
    err = await assert_rejected(net, net.spec(CONDITION, trigger, b""), "CallDataTooLong")
    assert err.args == (MAX_CALLDATA + 1, MAX_CALLDATA)


# ----------------------------------------------------------------------- deposit


# The deposit follows the block's base fee; a job's own maximum below the market price fixes
# it, so the tests below know the exact figure the createJob block will ask.
JOB_MAX_PRICE = 10**8  # 0.1 gwei, below any base fee plus the 2 gwei largest tip


async def test_deposit_one_wei_short_is_rejected(net: Net) -> None:
    # given a deposit one wei below one worst-case execution
    required = await net.required_deposit(200_000, JOB_MAX_PRICE)
    spec = net.spec(TIME, time_trigger(60), ON_TIME, gas_limit=200_000, max_gas_price=JOB_MAX_PRICE)
    # when / then
    err = await assert_rejected(net, spec, "DepositTooLow", value=required - 1)
    assert err.args == (required - 1, required)


async def test_deposit_of_exactly_one_execution_is_accepted(net: Net) -> None:
    # given exactly the required deposit
    required = await net.required_deposit(200_000, JOB_MAX_PRICE)
    held = await net.balance(net.tm.address)
    # when the job is created
    spec = net.spec(TIME, time_trigger(60), ON_TIME, max_gas_price=JOB_MAX_PRICE)
    job_id, event = await create(net, spec, value=required)
    # then the whole deposit is the job's balance
    assert event["args"]["deposit"] == required
    assert (await net.job(job_id))["balance"] == required
    assert await net.balance(net.tm.address) == held + required


# ----------------------------------------------------------------------- valid jobs


def _valid_specs(net: Net) -> list[tuple[tuple[Any, ...], int, int]]:
    """One valid spec per kind, with the interval and mode getJob must report."""
    target = net.target.address
    topic = bytes.fromhex("ab" * 32)
    resolver_cd = abi_encode(["bytes"], [b"check"])
    mode1 = selector("checkUpkeep(bytes)") + resolver_cd
    return [
        (net.spec(TIME, time_trigger(60), ON_TIME, max_executions=3), 60, 0),
        (net.spec(CRON, cron_trigger("*/5 * * * *"), selector("onCron()")), 0, 0),
        (net.spec(EVENT, event_trigger(target, [topic], 64), selector("onEvent()")), 64, 0),
        (net.spec(CONDITION, condition_trigger(target, selector("checker()"), 0, 3), b""), 3, 0),
        (net.spec(CONDITION, condition_trigger(target, mode1, 1, 1), b""), 1, 1),
    ]


@pytest.mark.parametrize(
    "index", range(5), ids=["time", "cron", "event", "condition-0", "condition-1"]
)
async def test_valid_job_is_created_and_announced(net: Net, index: int) -> None:
    # given a valid spec of one kind
    spec, interval, mode = _valid_specs(net)[index]
    expected_id = await net.tm.functions.nextJobId().call()
    deposit = 10 * await net.required_deposit(spec[4])
    # when the owner creates it
    job_id, event = await create(net, spec, value=deposit)
    # then JobCreated carries the id, owner, kind, the full spec and the deposit
    args = event["args"]
    assert (job_id, args["owner"], args["kind"], args["deposit"]) == (
        expected_id,
        net.owner.address,
        spec[2],
        deposit,
    )
    assert tuple(args["spec"].values()) == spec
    # and the stored job matches it
    job = await net.job(job_id)
    assert (job["status"], job["kind"], job["target"], job["gasLimit"], job["thresholdBps"]) == (
        1,
        spec[2],
        spec[0],
        spec[4],
        spec[5],
    )
    assert (job["interval"], job["mode"], job["balance"], job["round"]) == (
        interval,
        mode,
        deposit,
        0,
    )
    assert await net.tm.functions.nextJobId().call() == expected_id + 1


async def test_start_time_zero_means_creation_time(net: Net) -> None:
    receipt = await net.tx(
        net.tm.functions.createJob(net.spec(TIME, time_trigger(60), ON_TIME)),
        net.owner,
        value=await net.required_deposit(),
    )
    (event,) = await net.events(net.tm, "JobCreated", receipt)
    created_at = (await net.w3.eth.get_block(receipt["blockNumber"]))["timestamp"]
    assert (await net.job(event["args"]["jobId"]))["startTime"] == created_at


async def test_event_job_cursor_starts_after_its_creation_block(net: Net) -> None:
    # given an event job
    spec = net.spec(EVENT, event_trigger(net.target.address), selector("onEvent()"))
    # when it is created
    deposit = await net.required_deposit()
    receipt = await net.tx(net.tm.functions.createJob(spec), net.owner, value=deposit)
    (event,) = await net.events(net.tm, "JobCreated", receipt)
    # then its cursor is past every log of the creation block, so older logs never fire
    job = await net.job(event["args"]["jobId"])
    assert job["lastCursor"] == (receipt["blockNumber"] << 32) | 0xFFFFFFFF


async def test_cron_every_five_minutes_is_accepted(net: Net) -> None:
    spec = net.spec(CRON, cron_trigger("*/5 * * * *"), selector("onCron()"))
    job_id, event = await create(net, spec)
    assert event["args"]["spec"]["trigger"] == cron_trigger("*/5 * * * *")
    assert (await net.job(job_id))["kind"] == CRON
