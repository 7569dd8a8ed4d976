"""When a node counts as overloaded (protocol step 3: overloaded members lead last).

Pure: the readings come from keeper.monitor.load, which samples psutil.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoadSample:
    """One load reading: the node process's CPU, the host's memory, the process's RSS."""

    cpu_percent: float
    memory_percent: float
    rss_bytes: int
    overloaded: bool


def is_overloaded(
    cpu_percent: float, memory_percent: float, max_cpu: float, max_mem: float
) -> bool:
    """True when either reading is strictly above its limit.

    Strictly above, so a limit of 100 memory percent means "never"; a NaN reading (psutil
    before its first interval) compares false and never marks a node overloaded by accident.
    """
    return cpu_percent > max_cpu or memory_percent > max_mem
