"""Stopping a background task survives a library that loses a cancellation request."""

from __future__ import annotations

import asyncio

import pytest

from keeper.node.tasks import cancel_and_wait


class DropsCancels:
    """Like Python 3.11's wait_for when a result and a cancel land in one step: the first
    `drops` cancellations are lost and the task carries on."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.stopped = False

    async def run(self) -> None:
        forever = asyncio.Event()
        while True:
            try:
                await forever.wait()
            except asyncio.CancelledError:
                if self.drops == 0:
                    self.stopped = True
                    raise
                self.drops -= 1


async def test_a_task_that_drops_cancellations_is_stopped_by_repeating_them() -> None:
    body = DropsCancels(2)
    task = asyncio.create_task(body.run())
    await asyncio.sleep(0)

    assert await cancel_and_wait(task, every=0.01) is True
    assert task.cancelled() and body.stopped


async def test_a_task_that_never_stops_is_given_up_on_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = DropsCancels(10**9)
    task = asyncio.create_task(body.run(), name="stubborn")
    await asyncio.sleep(0)

    assert await cancel_and_wait(task, every=0.01, attempts=3) is False
    assert not task.done()
    assert "task.unstoppable name=stubborn attempts=3" in caplog.text

    body.drops = 0
    assert await cancel_and_wait(task, every=0.01) is True


async def test_a_task_that_already_failed_is_reported_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails(), name="failing")
    await asyncio.wait({task})

    assert await cancel_and_wait(task) is True
    assert "task.failed name=failing error=RuntimeError('boom')" in caplog.text


async def test_no_task_is_nothing_to_stop() -> None:
    assert await cancel_and_wait(None) is True
