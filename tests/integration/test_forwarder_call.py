"""A Time, Cron or Event job's call lives in its forwarder's code.

Protocol: the forwarder's runtime code ends with the job's callData, the TaskManager, the target
and the callData's length; an item of such a job carries an empty payload (any other is skipped
with PayloadMismatch), and the TaskManager sends its forwarder only the gas word, so `execute`
reads no storage and carries no bytes for the call. Before, every item carried the job's
callData as its payload, checked against the job's `callDataHash` slot.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from web3.contract import AsyncContract

from keeper.chain.contracts import deploy_contract, revert_of
from keeper.errors import ContractRevert
from tests.harness import (
    CONDITION,
    EVENT,
    NO_PAYLOAD,
    TIME,
    Net,
    condition_trigger,
    event_trigger,
    selector,
    time_trigger,
)
from tests.integration.execute_support import DEMO_EVENT, INTERVAL, emit_demo_event

MAX_CALLDATA = 4096  # TaskManager.MAX_CALLDATA
POKE = selector("poke()")
# A callData of the maximum length, not starting with a selector of the probe's (its fallback runs)
LONGEST = bytes((i * 7 + 1) % 256 for i in range(MAX_CALLDATA))


async def probe(net: Net) -> AsyncContract:
    return await deploy_contract(net.w3, "CallerProbe", net.deployer.address)


async def received(target: AsyncContract) -> tuple[int, bytes, int]:
    """(calls, keccak of the last calldata, its length) as the probe recorded them."""
    return (
        int(await target.functions.calls().call()),
        bytes(await target.functions.lastDataHash().call()),
        int(await target.functions.lastDataLength().call()),
    )


async def executed(net: Net, receipt: Any) -> Any:
    (event,) = await net.events(net.tm, "JobExecuted", receipt)
    return event["args"]


@pytest.mark.parametrize("call_data", [POKE, b"", LONGEST], ids=["poke", "empty", "longest"])
async def test_a_time_target_gets_exactly_its_call_data_from_an_empty_payload(
    net4: Net, call_data: bytes
) -> None:
    # given a Time job whose callData is 4 bytes, empty, or of the maximum length, created at the
    # address nextForwarder showed before
    target = await probe(net4)
    predicted = await net4.tm.functions.nextForwarder(net4.owner.address).call()
    spec = net4.spec(TIME, time_trigger(INTERVAL), call_data, target=target.address)
    job_id = await net4.create_job(spec)
    forwarder = await net4.tm.functions.forwarderOf(job_id).call()
    assert forwarder == predicted
    # (the callData is in the forwarder's code, ahead of its three tail words)
    code = bytes(await net4.w3.eth.get_code(forwarder))
    assert code[-96 - len(call_data) : -96] == call_data
    assert int.from_bytes(code[-32:], "big") == len(call_data)
    # when the quorum executes its first slot with an empty payload
    start = (await net4.job(job_id))["startTime"]
    net4.time_travel(start + 5)
    done = await executed(net4, await net4.execute_round(job_id, start, NO_PAYLOAD))
    # then the target ran once, called by the forwarder with exactly the job's callData
    assert done["success"] is True
    assert await received(target) == (1, keccak(call_data), len(call_data))
    assert await target.functions.lastCaller().call() == forwarder
    # and the job's view still names the callData's hash
    assert (await net4.job(job_id))["callDataHash"] == keccak(call_data)


async def test_an_event_target_gets_exactly_its_call_data_from_an_empty_payload(
    net4: Net,
) -> None:
    # given an Event job on the demo target's DemoEvent calling a probe with a long callData
    target = await probe(net4)
    call_data = POKE + bytes(range(1, 200))
    trigger = event_trigger(net4.target.address, [DEMO_EVENT], 1)
    job_id = await net4.create_job(net4.spec(EVENT, trigger, call_data, target=target.address))
    # when a matching log is confirmed and the quorum executes it with an empty payload
    cursor, _ = await emit_demo_event(net4)
    net4.mine(1)
    done = await executed(net4, await net4.execute_round(job_id, cursor, NO_PAYLOAD))
    # then the target got exactly the job's callData (poke() with trailing bytes)
    assert (done["cursor"], done["success"]) == (cursor, True)
    assert await received(target) == (1, keccak(call_data), len(call_data))


async def test_a_stranger_sending_the_gas_word_alone_is_refused(net4: Net) -> None:
    # given a Time job whose call lives in its forwarder, and a stranger
    target = await probe(net4)
    job_id = await net4.create_job(
        net4.spec(TIME, time_trigger(INTERVAL), POKE, target=target.address)
    )
    forwarder = await net4.tm.functions.forwarderOf(job_id).call()
    stranger = net4.keepers[7]
    # when the stranger sends the forwarder what the TaskManager sends: the gas word alone
    tx = {"from": stranger.address, "to": forwarder, "data": "0x" + (100_000).to_bytes(32).hex()}
    with pytest.raises(ContractRevert) as info:
        try:
            await net4.w3.eth.send_transaction(tx)  # type: ignore[arg-type]
        except Exception as exc:
            revert = revert_of(exc)
            if revert is None:
                raise
            raise revert from exc
    err = info.value
    assert err.error_name == "NotTaskManager"
    # then NotTaskManager, and the embedded call never ran
    assert err.args == (stranger.address.lower(),)
    assert await target.functions.calls().call() == 0


async def test_the_task_manager_holds_no_forwarder_call_outside_a_creation(net4: Net) -> None:
    # given a job created with a long callData
    target = await probe(net4)
    await net4.create_job(net4.spec(TIME, time_trigger(INTERVAL), LONGEST, target=target.address))
    # then what a forwarder's constructor reads back is empty again (its transient slots cleared)
    target_address, call_data = await net4.tm.functions.forwarderCall().call()
    assert (int(target_address, 16), bytes(call_data)) == (0, b"")


async def test_a_condition_jobs_forwarder_holds_no_call_data(net4: Net) -> None:
    # given a Condition job created with a callData (its items carry the resolver's result)
    trigger = condition_trigger(net4.target.address, selector("checker()"))
    job_id = await net4.create_job(net4.spec(CONDITION, trigger, POKE))
    forwarder = await net4.tm.functions.forwarderOf(job_id).call()
    # then its forwarder's code ends with the TaskManager, the target and a zero length
    code = bytes(await net4.w3.eth.get_code(forwarder))
    assert int.from_bytes(code[-32:], "big") == 0
    assert code[-96:-64] == bytes(12) + bytes.fromhex(net4.tm.address[2:])
    assert code[-64:-32] == bytes(12) + bytes.fromhex(net4.target.address[2:])
