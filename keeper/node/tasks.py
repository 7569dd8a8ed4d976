"""Stopping background tasks for sure.

`task.cancel()` is a request, and a library can lose it: on Python 3.11, `asyncio.wait_for`
returns the inner result and drops the cancellation when both land in the same step (web3's
persistent providers await every request that way). A node that lost its one cancel would
never stop on SIGTERM, so the request is repeated until the task ends.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)

# Seconds between repeated cancel requests, and how many before giving up on the task.
CANCEL_EVERY = 0.5
CANCEL_ATTEMPTS = 20


async def cancel_and_wait(
    task: asyncio.Task[None] | None,
    *,
    every: float = CANCEL_EVERY,
    attempts: int = CANCEL_ATTEMPTS,
) -> bool:
    """Cancels `task` until it is done; True if it ended, False if it outlived every attempt."""
    if task is None:
        return True
    for attempt in range(attempts):
        if task.done():
            break
        if attempt:
            log.info("task.cancel_lost name=%s attempt=%d", task.get_name(), attempt + 1)
        task.cancel()
        # wait() neither raises the task's exception nor cancels the task on timeout
        await asyncio.wait({task}, timeout=every)
    if not task.done():
        log.warning("task.unstoppable name=%s attempts=%d", task.get_name(), attempts)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.error("task.failed name=%s error=%r", task.get_name(), task.exception())
    return True
