"""`job show` and `job list` with --admin-url print a running node's own evaluation (the
"why" its quorum sees) beside the chain's: here four real keeper nodes, in this process, on
anvil, whose job's target reverts."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from eth_abi.abi import encode as abi_encode

from keeper.chain.anvil import AnvilChain, AnvilProcess
from tests.cli.support import KEEPER, NO_WORK, Result
from tests.nodes import start_network

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLI_TIMEOUT = 120


async def keeper(cwd: Path, *args: str) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPER_")}
    proc = await asyncio.create_subprocess_exec(
        str(KEEPER), *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def test_job_show_and_list_print_the_nodes_reason(tmp_path: Path) -> None:
    anvil = AnvilProcess(accounts=12)
    try:
        network = await start_network(tmp_path, chain=AnvilChain(anvil, accounts=12))
        try:
            net = network.net
            deployment = tmp_path / "deployment.json"
            deployment.write_text(net.deployment.to_json())
            # given a Time job whose target call reverts with NoWork(), executed once
            spec = net.spec(0, abi_encode(["uint64"], [60]), NO_WORK)
            job_id = await net.create_job(spec)

            async def failed_once() -> bool:
                return int((await net.job(job_id))["failures"]) >= 1

            await network.step_until(failed_once, max_blocks=40)
            await network.step()  # the nodes evaluate the job after its failure
            admin = network.nodes[0].admin_endpoint
            flags = ("--rpc-url", anvil.url, "--deployment", str(deployment))
            # when the owner asks with the node's admin URL
            shown = await keeper(tmp_path, "job", "show", str(job_id), "--admin-url", admin, *flags)
            assert shown.returncode == 0, shown.stderr
            match = re.search(r"^  node says\s+(.*)$", shown.stdout, re.MULTILINE)
            assert match, shown.stdout
            # then it prints the node's reason: the target's revert, decoded
            assert match.group(1).startswith("Target reverts: target simulation reverts: NoWork()")
            assert match.group(1).endswith(f", {admin})")
            listed = await keeper(tmp_path, "job", "list", "--admin-url", admin, *flags)
            assert listed.returncode == 0, listed.stderr
            (row,) = [r for r in listed.stdout.splitlines() if r.split()[0] == str(job_id)]
            assert "Target reverts" in row
            # and a node that is not there is said, not fatal
            gone = await keeper(
                tmp_path, "job", "show", str(job_id), "--admin-url", "http://127.0.0.1:9", *flags
            )
            assert gone.returncode == 0, gone.stderr
            assert "node says      nothing: not reachable (ClientConnectorError)" in gone.stdout
        finally:
            await network.stop()
    finally:
        anvil.stop()
