"""SIGINT and SIGTERM always end `keeper run`: the first asks for a graceful stop and arms a
deadline, a second ends the process at once (a stop once hung for ten minutes while the peer
API kept signing). The exits are faked here; tests/e2e/test_node_lifecycle.py sends real signals
to real processes."""

from __future__ import annotations

import asyncio
import signal
import threading

from keeper.app import EXIT_STOP_TIMED_OUT, SignalStop


class FakeExit:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


async def test_the_first_signal_asks_for_a_graceful_stop() -> None:
    # given a running node's signal handling
    exit_now = FakeExit()
    stop = SignalStop(asyncio.get_running_loop(), timeout=60, exit_now=exit_now)
    # when SIGTERM arrives
    stop.on_signal(signal.SIGTERM)
    try:
        # then the graceful stop is requested, and nothing is forced
        await asyncio.wait_for(stop.requested.wait(), 1)
        assert stop.signal_name == "SIGTERM"
        assert exit_now.codes == []
        # but a deadline is armed
        assert stop.watchdog is not None and stop.watchdog.is_alive()
    finally:
        assert stop.watchdog is not None
        stop.watchdog.cancel()


async def test_a_stop_that_outlives_its_deadline_ends_the_process() -> None:
    # given a first signal, and a graceful stop that never finishes
    exit_now = FakeExit()
    stop = SignalStop(asyncio.get_running_loop(), timeout=0.05, exit_now=exit_now)
    stop.on_signal(signal.SIGINT)
    # when the deadline passes (the watchdog is a thread: a stuck loop cannot hold it)
    assert await asyncio.to_thread(exit_now.called.wait, 5)
    # then the process ends with the timed-out code
    assert exit_now.codes == [EXIT_STOP_TIMED_OUT]


async def test_a_second_signal_ends_the_process_at_once() -> None:
    # given a graceful stop under way
    exit_now = FakeExit()
    stop = SignalStop(asyncio.get_running_loop(), timeout=60, exit_now=exit_now)
    stop.on_signal(signal.SIGINT)
    try:
        # when a second SIGINT arrives
        stop.on_signal(signal.SIGINT)
        # then the process ends there and then, as killed by that signal
        assert exit_now.codes == [128 + signal.SIGINT]
    finally:
        assert stop.watchdog is not None
        stop.watchdog.cancel()


async def test_install_and_uninstall_restore_the_previous_handlers() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop = SignalStop(asyncio.get_running_loop(), exit_now=FakeExit())
    stop.install()
    try:
        assert signal.getsignal(signal.SIGTERM) == stop.on_signal
        assert signal.getsignal(signal.SIGINT) == stop.on_signal
    finally:
        stop.uninstall()
    assert {sig: signal.getsignal(sig) for sig in before} == before
