"""A first full round: the quorum signs a Time report and the executor gets it executed."""

from __future__ import annotations

from tests.harness import NO_PAYLOAD, TIME, Net, selector, time_trigger


async def test_time_job_executes_once_per_slot(net4: Net) -> None:
    # given a time job every 60 s on the demo target
    job_id = await net4.create_job(net4.spec(TIME, time_trigger(60), selector("onTime()")))
    start = (await net4.job(job_id))["startTime"]
    # when the first slot is due and the quorum signs it
    net4.time_travel(start + 5)
    receipt = await net4.execute_round(job_id, start, NO_PAYLOAD)
    # then the target ran once and the round advanced
    (event,) = await net4.events(net4.tm, "JobExecuted", receipt)
    assert event["args"]["success"] is True
    assert await net4.target.functions.timeCount().call() == 1
    job = await net4.job(job_id)
    assert (job["round"], job["lastCursor"]) == (1, start)
