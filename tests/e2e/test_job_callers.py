"""Every job calls its own target from its own caller, on a running network.

Four `keeper run` processes on anvil, jobs created with `keeper job create` as an owner would.
A job may not target the registry or the TaskManager (the registry trusts the TaskManager to
slash): `createJob` refuses it. Every job's target sees the job's forwarder as `msg.sender`,
never the TaskManager and never another job's forwarder.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from keeper.chain.contracts import deploy_contract
from tests.e2e.cluster import KEEPER, Cluster, key_hex
from tests.e2e.support import start_network


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_network(tmp_path_factory.mktemp("callers"), stakes=(2, 2, 2, 2))
    try:
        yield c
    finally:
        c.stop_all()


def create(
    cluster: Cluster, owner: Any, target: str, calldata: str
) -> subprocess.CompletedProcess[str]:
    """`keeper job create` as `owner`, a Time job every 10 s."""
    env = {"KEEPER_RPC_URL": cluster.anvil.url, "KEEPER_PRIVATE_KEY": key_hex(owner)}
    args = ["job", "create", "--deployment", str(cluster.deployment_file)]
    args += ["--target", target, "--calldata", calldata, "--every", "10s", "--fund", "1ether"]
    return subprocess.run(
        [str(KEEPER), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def created_id(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    match = re.search(r"^created job (\d+)", result.stdout, re.MULTILINE)
    assert match, result.stdout
    return int(match.group(1))


async def test_the_registry_and_the_task_manager_are_refused_as_targets(cluster: Cluster) -> None:
    stranger = cluster.accounts[-1]
    slash = "0x" + "00" * 4  # any calldata: the target alone is refused
    for name, address in (
        ("registry", cluster.deployment.registry),
        ("task manager", cluster.deployment.task_manager),
    ):
        result = create(cluster, stranger, address, slash)
        assert result.returncode != 0, name
        assert f"ForbiddenTarget({address})" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


async def test_each_target_sees_only_its_own_jobs_forwarder(cluster: Cluster) -> None:
    w3 = cluster.web3()
    tm = (await cluster.contracts(w3)).task_manager
    alice, bob = cluster.accounts[-2], cluster.accounts[-3]
    probe_a = await deploy_contract(w3, "CallerProbe", alice.address)
    probe_b = await deploy_contract(w3, "CallerProbe", bob.address)
    # given the address alice's next job will call from, known before the job exists
    expected = await tm.functions.nextForwarder(alice.address).call()
    # when alice and bob each create a job that pokes a probe
    job_a = created_id(create(cluster, alice, probe_a.address, "poke()"))
    job_b = created_id(create(cluster, bob, probe_b.address, "poke()"))
    assert await tm.functions.forwarderOf(job_a).call() == expected

    async def both_ran() -> bool:
        calls = [await p.functions.calls().call() for p in (probe_a, probe_b)]
        return min(calls) >= 2

    await cluster.wait_until(both_ran, 120, "both jobs to execute twice")
    # then each probe saw its own job's forwarder, never the TaskManager or the other forwarder
    forwarder_a = await tm.functions.forwarderOf(job_a).call()
    forwarder_b = await tm.functions.forwarderOf(job_b).call()
    assert len({forwarder_a, forwarder_b, tm.address}) == 3
    assert await probe_a.functions.lastCaller().call() == forwarder_a
    assert await probe_b.functions.lastCaller().call() == forwarder_b
    # and a forwarder is not a target either: bob cannot aim a job at alice's
    result = create(cluster, bob, forwarder_a, "poke()")
    assert result.returncode != 0
    assert f"ForbiddenTarget({forwarder_a})" in result.stderr, result.stderr
