"""Samples the node's load with psutil so the quorum can route leadership around it.

What is measured, and why:

- CPU of *this process*, not of the host. The node is one Python process whose event loop runs
  on one core at a time (the GIL); when its CPU nears 100 (percent of one core) the loop is
  saturated and the node will miss its leader turn, however idle the other cores are. Host CPU
  on a many-core machine stays low in exactly that case.
- Memory of the *host* (``virtual_memory().percent``), not of the process. The node's own
  share is small and says little; what endangers it is the host running out (swap, the OOM
  killer), whoever is using the memory. The process RSS is still reported, for metrics.

The scheduler is owned by the caller (the app); this module only adds one interval job to it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import psutil
from apscheduler.jobstores.base import JobLookupError

from keeper.core.load import LoadSample, is_overloaded

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

__all__ = ["DEFAULT_INTERVAL", "LoadMonitor", "LoadSample", "Reading", "SampleFn"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0
JOB_ID = "keeper-load-monitor"

Reading = tuple[float, float, int]
"""(cpu_percent, memory_percent, rss_bytes) as read from the system."""

SampleFn = Callable[[], Reading]


class LoadMonitor:
    """Keeps the latest `LoadSample`; `force` pins the overloaded flag for tests and operators."""

    def __init__(
        self,
        max_cpu: float,
        max_mem: float,
        process: psutil.Process | None = None,
        sample_fn: SampleFn | None = None,
        *,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if max_cpu <= 0 or max_mem <= 0:
            raise ValueError("load limits must be positive")
        if interval <= 0:
            raise ValueError("sampling interval must be positive")
        self.max_cpu = max_cpu
        self.max_mem = max_mem
        self._interval = interval
        self._forced: bool | None = None
        self._job: Any = None
        if sample_fn is None:
            self._process = process if process is not None else psutil.Process()
            # psutil's first cpu_percent(None) is a meaningless 0.0 that starts the interval.
            self._process.cpu_percent(None)
            sample_fn = self._read_psutil
        self._read = sample_fn
        # Sample once now so `latest` is never empty.
        self._latest = self.sample()

    def _read_psutil(self) -> Reading:
        with self._process.oneshot():
            cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss
        return (cpu, psutil.virtual_memory().percent, rss)

    def sample(self) -> LoadSample:
        """Read the load now, apply the rule (or the pinned flag) and remember the result."""
        cpu, mem, rss = self._read()
        self._latest = LoadSample(cpu, mem, rss, self._is_overloaded(cpu, mem))
        return self._latest

    def _is_overloaded(self, cpu: float, mem: float) -> bool:
        if self._forced is not None:
            return self._forced
        return is_overloaded(cpu, mem, self.max_cpu, self.max_mem)

    @property
    def latest(self) -> LoadSample:
        """The most recent sample (taken at construction, then every interval)."""
        return self._latest

    def force(self, overloaded: bool | None) -> None:
        """Pin the overloaded flag (True/False), or return to measuring (None). Immediate."""
        self._forced = overloaded
        last = self._latest
        self._latest = replace(
            last, overloaded=self._is_overloaded(last.cpu_percent, last.memory_percent)
        )

    async def _tick(self) -> None:
        # A coroutine, so AsyncIOScheduler runs it on the event loop rather than a thread.
        try:
            self.sample()
        except psutil.Error as exc:
            log.warning("load.sample_failed error=%s", exc)

    def start(self, scheduler: AsyncIOScheduler) -> None:
        """Sample every interval on the caller's scheduler (started or not)."""
        self._job = scheduler.add_job(
            self._tick,
            "interval",
            seconds=self._interval,
            id=JOB_ID,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            # A busy event loop delays the sample; late is fine, skipping it is not.
            misfire_grace_time=None,
        )

    def stop(self) -> None:
        """Remove the sampling job; harmless if never started or the scheduler is gone."""
        job, self._job = self._job, None
        if job is not None:
            with contextlib.suppress(JobLookupError):
                job.remove()
