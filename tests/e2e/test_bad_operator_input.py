"""An operator's mistakes at `keeper run`: each is refused before the node does anything, with
a non-zero exit, one `keeper: error:` line on stderr (no traceback, no secret), and no process
left behind.

The checks are `keeper.app.build_node` / `run_node`: the key, the deployment against the chain
(chain id, TaskManager code), the store's identity and lock, the listen port, and the RPC itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from keeper.chain.anvil import free_port
from tests.e2e.cluster import KEEPER, Cluster, key_hex, start_cluster

EXIT_TIMEOUT = 30.0  # the process must give up by itself within this
ERROR_PREFIX = "keeper: error:"


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # one registered keeper, not running: each test runs `keeper run` itself
    c = start_cluster(tmp_path_factory.mktemp("bad_input"), stakes=(2,), start=False)
    try:
        yield c
    finally:
        c.stop_all()


async def run_keeper(
    cluster: Cluster,
    *,
    private_key: str | None = None,
    rpc_url: str | None = None,
    deployment: Path | None = None,
    db: Path | None = None,
    port: int | None = None,
) -> Outcome:
    """`keeper run` as an operator would start it; waits for it to exit on its own."""
    kp = cluster.keepers[0]
    env = {
        **os.environ,
        "KEEPER_RPC_URL": rpc_url or cluster.anvil.url,
        "KEEPER_PRIVATE_KEY": private_key or key_hex(kp.account),
    }
    proc = await asyncio.create_subprocess_exec(
        str(KEEPER),
        "run",
        "--deployment",
        str(deployment or cluster.deployment_file),
        "--listen",
        f"127.0.0.1:{port or free_port()}",
        "--db",
        str(db or cluster.tmp / f"fresh-{free_port()}.db"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), EXIT_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise AssertionError(f"keeper run did not exit within {EXIT_TIMEOUT:.0f} s") from None
    assert proc.returncode is not None
    return Outcome(proc.returncode, stdout.decode(), stderr.decode())


def assert_refused(outcome: Outcome, *fragments: str) -> str:
    """Non-zero exit, the last stderr line is the one error line, no traceback; returns it."""
    assert outcome.returncode != 0, outcome
    lines = outcome.stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, outcome.stderr
    assert lines[-1] == errors[0], outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert "running; peer API" not in outcome.stdout
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def edited_deployment(cluster: Cluster, name: str, **changes: object) -> Path:
    data = json.loads(cluster.deployment_file.read_text())
    data.update(changes)
    path = cluster.tmp / name
    path.write_text(json.dumps(data))
    return path


async def test_malformed_private_key_is_refused_without_echoing_it(cluster: Cluster) -> None:
    # given the operator's key with its last byte cut off
    bad_key = key_hex(cluster.keepers[0].account)[:-2]
    # when the node starts with it
    outcome = await run_keeper(cluster, private_key=bad_key)
    # then it refuses, and never prints the key
    assert_refused(outcome, "private key is malformed")
    assert bad_key[2:] not in outcome.stderr + outcome.stdout


async def test_deployment_for_another_chain_is_refused(cluster: Cluster) -> None:
    # given a copy of the deployment file claiming another chain id
    other = edited_deployment(cluster, "other-chain.json", chain_id=cluster.deployment.chain_id + 1)
    # when the node starts against anvil with it
    outcome = await run_keeper(cluster, deployment=other)
    # then it names both chain ids
    assert_refused(
        outcome,
        f"chain {cluster.deployment.chain_id + 1}",
        f"chain {cluster.deployment.chain_id}",
    )


async def test_deployment_without_contract_code_is_refused(cluster: Cluster) -> None:
    # given a deployment file whose addresses hold no code on this chain
    nowhere = Account.create().address
    other = edited_deployment(cluster, "no-code.json", registry=nowhere, task_manager=nowhere)
    # when the node starts with it
    outcome = await run_keeper(cluster, deployment=other)
    # then it says there is no TaskManager there
    assert_refused(outcome, "no TaskManager", nowhere)


async def test_listen_port_in_use_is_refused(cluster: Cluster) -> None:
    # given a port someone else already listens on
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        # when the node is told to listen there
        outcome = await run_keeper(cluster, port=port)
    # then it refuses with the address it could not bind
    assert_refused(outcome, "cannot listen", f"127.0.0.1:{port}")


async def test_store_of_another_deployment_is_refused(cluster: Cluster) -> None:
    # given keeper 0's store, written by a run against the first deployment (its log of this
    # run only: a line of an earlier run would pass for this one's start)
    cluster.keepers[0].log.unlink(missing_ok=True)
    kp = cluster.start(0)

    async def store_written() -> bool:
        return kp.log.exists() and "running; peer API" in kp.log.read_text()

    await cluster.wait_until(store_written, 90, "keeper 0 to start on its store")
    # (SIGTERM stops it cleanly within kill()'s 30 s, also when it lands mid-request)
    cluster.kill(0, signal.SIGTERM)
    assert kp.proc is not None and kp.proc.returncode == 0
    assert kp.db.exists()
    # and a second set of contracts on the same chain
    other = cluster.tmp / "other.json"
    cluster.cli("deploy", "--out", str(other), key=cluster.accounts[0])
    assert json.loads(other.read_text())["task_manager"] != cluster.deployment.task_manager
    # when the same keeper runs the second deployment on the first store
    outcome = await run_keeper(cluster, deployment=other, db=kp.db)
    # then it refuses to reuse the store (its signatures and transactions mean nothing there)
    assert_refused(outcome, f"store {kp.db}", "was written for")


async def test_unreachable_rpc_is_refused(cluster: Cluster) -> None:
    # given an RPC URL where nothing listens
    url = f"http://127.0.0.1:{free_port()}"
    # when the node starts with it
    outcome = await run_keeper(cluster, rpc_url=url)
    # then it gives up by itself and names the URL
    assert_refused(outcome, "RPC unreachable", url)


async def test_a_second_keeper_on_a_running_keepers_store_is_refused(cluster: Cluster) -> None:
    # given keeper 0 running on its store (its log of this run only: earlier runs wrote there)
    cluster.keepers[0].log.unlink(missing_ok=True)
    kp = cluster.start(0)
    try:

        async def started() -> bool:
            return kp.log.exists() and "running; peer API" in kp.log.read_text()

        await cluster.wait_until(started, 90, "keeper 0 to start on its store")
        assert kp.proc is not None
        # when the operator starts a second `keeper run` with the same key and --db (two such
        # processes once sent transactions with each other's nonces)
        outcome = await run_keeper(cluster, db=kp.db)
        # then it refuses before touching the store, naming it and the running keeper's pid
        assert_refused(outcome, f"store {kp.db}", "in use", f"pid {kp.proc.pid}")
        # and the first keeps running and answering
        assert kp.running
        assert (await cluster.status(0))["address"] == kp.account.address
    finally:
        cluster.kill(0, signal.SIGTERM)
    assert kp.proc is not None and kp.proc.returncode == 0
