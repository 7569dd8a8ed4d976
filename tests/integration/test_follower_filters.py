"""Which Event-job logs the follower asks for and keeps: only those of jobs active at the block
before the log (paused, cancelled and not-yet-created jobs' logs are neither fetched nor kept),
by a rule of blocks alone, so a node syncing block by block and one catching up in one range
store the same logs."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Net
from tests.integration.test_follower import (
    Follower,
    create_event_job,
    emit_demo,
    job_log_cursors,
)


async def test_logs_while_paused_are_not_kept_alike_for_every_range(
    net4: Net, tmp_path: Path
) -> None:
    net = net4
    # given an Event job, a log, a pause, a log, a resume and a log (the pause and resume
    # each in a block that also emits one)
    job_id = await create_event_job(net)
    kept = [await emit_demo(net, 1)]
    await net.tx(net.tm.functions.pause(job_id), net.owner)
    await emit_demo(net, 2)
    await emit_demo(net, 3)
    await net.tx(net.tm.functions.resume(job_id), net.owner)
    kept.append(await emit_demo(net, 4))
    # when one node follows block by block and another in one range
    one = await Follower.open(net, tmp_path / "one.db", max_range=1)
    many = await Follower.open(net, tmp_path / "many.db", max_range=200)
    try:
        await one.sync_all()
        await many.sync_all()
        # then both keep exactly the logs emitted while the job was active
        assert sorted(await job_log_cursors(one, job_id)) == kept
        assert sorted(await job_log_cursors(many, job_id)) == kept
    finally:
        await one.store.close()
        await many.store.close()


async def test_a_paused_jobs_emitter_is_not_asked_for_logs(net4: Net, tmp_path: Path) -> None:
    net = net4
    # given the only Event job, paused
    job_id = await create_event_job(net)
    await net.tx(net.tm.functions.pause(job_id), net.owner)
    f = await Follower.open(net, tmp_path / "keeper.db", max_range=1)
    try:
        await f.sync_all()
        asked_before = f.follower._logs.asked[net.target.address.lower()]
        # when its emitter emits, block after block
        for tag in range(3):
            await emit_demo(net, tag)
        await f.sync_all()
        # then the follower never asks for the emitter's logs, and keeps none
        assert f.follower._logs.asked[net.target.address.lower()] == asked_before
        assert await job_log_cursors(f, job_id) == []
        # and once resumed it asks again and keeps the next log
        await net.tx(net.tm.functions.resume(job_id), net.owner)
        cursor = await emit_demo(net, 9)
        await f.sync_all()
        assert f.follower._logs.asked[net.target.address.lower()] > asked_before
        assert await job_log_cursors(f, job_id) == [cursor]
    finally:
        await f.store.close()
