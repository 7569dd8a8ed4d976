"""Stopping `keeper run`: SIGTERM and Ctrl-C end the process within seconds, always, the peer API
closes first, and a second signal ends a stop that takes too long at once.

Once, in the field, a SIGINT left a node hung in its stop for ten minutes while its peer API
kept signing. Here a peer request stuck in flight (headers that promise a body which never
comes) stands in for whatever holds a stop: aiohttp alone would wait a minute for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from keeper.app import PEER_DRAIN_TIMEOUT
from tests.e2e.cluster import Cluster, KeeperProcess, start_cluster

STOP_BOUND = 15.0  # seconds from SIGTERM to the process's end
AT_ONCE = 2.0  # seconds from a second signal to the process's end


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # one registered keeper, not running: each test starts it
    c = start_cluster(tmp_path_factory.mktemp("stop"), stakes=(2,), start=False)
    try:
        yield c
    finally:
        c.stop_all()


@pytest.fixture
async def keeper(cluster: Cluster) -> AsyncIterator[KeeperProcess]:
    """Keeper 0 running and answering peers, with a log of this run only; killed by its pid if
    a test leaves it running."""
    cluster.keepers[0].log.unlink(missing_ok=True)
    kp = cluster.start(0)
    try:
        await wait_for_log(kp, "running; peer API", 90)
        yield kp
    finally:
        cluster.kill(0, signal.SIGKILL)


async def wait_for_log(kp: KeeperProcess, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kp.log.exists() and text in kp.log.read_text():
            return
        if not kp.running:
            break
        await asyncio.sleep(0.05)
    log = kp.log.read_text()[-3000:] if kp.log.exists() else ""
    raise AssertionError(f"no {text!r} in keeper {kp.index}'s log\n{log}")


async def wait_for_exit(kp: KeeperProcess, timeout: float) -> int:
    """The process's exit code; fails if it is still running after `timeout` seconds."""
    assert kp.proc is not None
    deadline = time.monotonic() + timeout
    while kp.proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    code = kp.proc.poll()
    assert code is not None, f"keeper {kp.index} still running {timeout:g} s later"
    return code


async def post_report(kp: KeeperProcess) -> int | None:
    """POST /v1/reports/batch (unsigned): the HTTP status, or None when nothing answers."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.post(f"{kp.endpoint}/v1/reports/batch", json={}) as response,
        ):
            return response.status
    except aiohttp.ClientConnectionError:
        return None


@contextlib.asynccontextmanager
async def request_stuck_in_flight(kp: KeeperProcess) -> AsyncIterator[None]:
    """A peer POST whose body never arrives: the server's handler waits for it."""
    with socket.create_connection(("127.0.0.1", kp.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/reports/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"
        )
        # A whole request on another connection, answered: the server has read the stuck
        # one's headers by then (they were readable first) and its handler is waiting.
        assert await post_report(kp) == 401
        yield


async def test_sigterm_stops_the_node_within_seconds_and_closes_the_peer_api_first(
    keeper: KeeperProcess,
) -> None:
    # given a running keeper whose peer API answers (an unsigned report gets its 401), with a
    # peer request stuck in flight
    async with request_stuck_in_flight(keeper):
        # when the operator sends SIGTERM
        assert keeper.proc is not None
        sent = time.monotonic()
        os.kill(keeper.proc.pid, signal.SIGTERM)
        # then the peer API stops answering at once, while the node is still stopping: a
        # report sent now gets no answer at all, so never a signature
        await wait_for_log(keeper, "peer_api.closed", STOP_BOUND)
        assert await post_report(keeper) is None
        # and the process ends within the bound, gracefully (the stuck request is given
        # PEER_DRAIN_TIMEOUT, then the node stops and closes its store)
        code = await wait_for_exit(keeper, STOP_BOUND - (time.monotonic() - sent))
    assert code == 0
    log = keeper.log.read_text()
    assert f"peer_api.drain_timed_out seconds={PEER_DRAIN_TIMEOUT:g}" in log
    assert "node.stopped" in log


async def test_a_second_ctrl_c_ends_the_stop_at_once(keeper: KeeperProcess) -> None:
    # given a stop under way that a peer request stuck in flight holds for seconds
    assert keeper.proc is not None
    async with request_stuck_in_flight(keeper):
        os.kill(keeper.proc.pid, signal.SIGINT)
        await wait_for_log(keeper, "node.stopping signal=SIGINT", STOP_BOUND)
        # when the operator presses Ctrl-C again
        os.kill(keeper.proc.pid, signal.SIGINT)
        # then the process ends there and then, as killed by SIGINT, its logs flushed
        code = await wait_for_exit(keeper, AT_ONCE)
    assert code == 128 + signal.SIGINT
    assert "node.forced_stop signal=SIGINT" in keeper.log.read_text()
