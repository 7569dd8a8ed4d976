"""Load: the pure overload rule, and the monitor that samples, pins and schedules it."""

from __future__ import annotations

import asyncio
import math

import psutil
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from hypothesis import given
from hypothesis import strategies as st

from keeper.core.load import LoadSample, is_overloaded
from keeper.monitor.load import LoadMonitor, Reading
from keeper.monitor.metrics import NodeMetrics

percent = st.floats(0, 1000, allow_nan=False)


class Readings:
    """An injected sample_fn that returns queued readings, repeating the last one."""

    def __init__(self, *readings: Reading) -> None:
        self.queue = list(readings)
        self.calls = 0
        self.called = asyncio.Event() if _loop_running() else None

    def __call__(self) -> Reading:
        self.calls += 1
        if self.called is not None and self.calls >= 3:
            self.called.set()
        return self.queue.pop(0) if len(self.queue) > 1 else self.queue[0]


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# ---------------------------------------------------------------------------- the rule


def test_overloaded_only_strictly_above_a_limit() -> None:
    assert not is_overloaded(80.0, 90.0, max_cpu=80.0, max_mem=90.0)
    assert is_overloaded(80.1, 10.0, max_cpu=80.0, max_mem=90.0)
    assert is_overloaded(10.0, 90.1, max_cpu=80.0, max_mem=90.0)
    assert not is_overloaded(math.nan, math.nan, max_cpu=80.0, max_mem=90.0)


@given(cpu=percent, mem=percent, max_cpu=percent, max_mem=percent)
def test_property_overloaded_iff_either_reading_exceeds_its_limit(
    cpu: float, mem: float, max_cpu: float, max_mem: float
) -> None:
    result = is_overloaded(cpu, mem, max_cpu, max_mem)
    assert result == (cpu > max_cpu or mem > max_mem)
    # Monotonic: more load never makes a node less overloaded.
    if result:
        assert is_overloaded(cpu + 1, mem + 1, max_cpu, max_mem)


# ---------------------------------------------------------------------------- the monitor


def test_given_readings_when_sampled_then_the_rule_is_applied() -> None:
    readings = Readings((10.0, 20.0, 1000), (95.0, 20.0, 2000))
    monitor = LoadMonitor(max_cpu=90.0, max_mem=80.0, sample_fn=readings)

    assert monitor.latest == LoadSample(10.0, 20.0, 1000, overloaded=False)
    sample = monitor.sample()

    assert sample == LoadSample(95.0, 20.0, 2000, overloaded=True)
    assert monitor.latest is sample


def test_given_a_forced_flag_then_it_wins_until_released() -> None:
    monitor = LoadMonitor(max_cpu=90.0, max_mem=80.0, sample_fn=Readings((10.0, 20.0, 1)))

    monitor.force(True)
    assert monitor.latest.overloaded
    assert monitor.sample().overloaded

    monitor.force(None)
    assert not monitor.latest.overloaded
    assert not monitor.sample().overloaded


def test_force_false_hides_real_overload() -> None:
    monitor = LoadMonitor(max_cpu=50.0, max_mem=50.0, sample_fn=Readings((99.0, 99.0, 1)))
    assert monitor.latest.overloaded

    monitor.force(False)

    assert not monitor.latest.overloaded
    assert not monitor.sample().overloaded


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LoadMonitor(max_cpu=0, max_mem=50.0, sample_fn=Readings((0.0, 0.0, 0)))
    with pytest.raises(ValueError):
        LoadMonitor(max_cpu=50, max_mem=50.0, sample_fn=Readings((0.0, 0.0, 0)), interval=0)


def test_given_no_sample_fn_then_psutil_reads_this_process_and_the_host() -> None:
    monitor = LoadMonitor(max_cpu=1000.0, max_mem=100.0, process=psutil.Process())

    sample = monitor.sample()

    assert sample.cpu_percent >= 0
    assert 0 < sample.memory_percent <= 100
    assert sample.rss_bytes > 0
    assert not sample.overloaded


async def test_given_a_scheduler_when_started_then_it_samples_every_interval() -> None:
    readings = Readings((10.0, 20.0, 1))
    monitor = LoadMonitor(max_cpu=90.0, max_mem=80.0, sample_fn=readings, interval=0.02)
    scheduler = AsyncIOScheduler()
    scheduler.start()
    try:
        monitor.start(scheduler)
        assert readings.called is not None
        await asyncio.wait_for(readings.called.wait(), timeout=5)
        assert readings.calls >= 3
        monitor.stop()
        assert scheduler.get_job("keeper-load-monitor") is None
        monitor.stop()
    finally:
        scheduler.shutdown(wait=False)


def test_metrics_record_a_load_sample() -> None:
    metrics = NodeMetrics()

    metrics.record_load(LoadSample(42.5, 61.0, 1, overloaded=True))

    text = metrics.render().decode()
    assert "keeper_load_cpu_percent 42.5" in text
    assert "keeper_load_memory_percent 61.0" in text
    assert "keeper_overloaded 1.0" in text


def test_each_metrics_instance_has_its_own_registry() -> None:
    a, b = NodeMetrics(), NodeMetrics()

    a.rounds_started.inc()
    a.record_execution(success=False)
    a.record_rejection("Malformed")

    assert "keeper_rounds_started_total 1.0" in a.render().decode()
    assert "keeper_rounds_started_total 0.0" in b.render().decode()
    assert 'keeper_executions_total{result="failure"} 1.0' in a.render().decode()
    assert 'keeper_peer_rejections_total{code="Malformed"} 1.0' in a.render().decode()
