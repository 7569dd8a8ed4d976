"""One anvil per test module, a deployment made with `keeper deploy`, and a DemoTarget.

Every test here drives the installed console script in a subprocess, exactly as an operator
or a job owner would; the chain is read back with web3 to check what (did not) change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3

from keeper.chain.artifacts import load_artifact
from keeper.chain.contracts import Deployment, deploy_contract
from keeper.chain.rpc import disconnect
from tests.anvil import AnvilProcess, dev_accounts
from tests.cli.support import CliChain, key_hex, run_keeper


async def _deploy_target(url: str, sender: str) -> str:
    w3 = AsyncWeb3(AsyncHTTPProvider(url))
    try:
        target = await deploy_contract(w3, "DemoTarget", sender, 60)
    finally:
        await disconnect(w3)
    return str(target.address)


@pytest.fixture(scope="module")
def cli_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliChain]:
    """anvil with KeeperRegistry + TaskManager deployed by the CLI (dev account 0) and a
    DemoTarget deployed from dev account 9; anvil is killed by pid at the end."""
    workdir = tmp_path_factory.mktemp("cli")
    anvil = AnvilProcess(accounts=10)
    try:
        accounts = dev_accounts(10)
        deployment_file = workdir / "deployment.json"
        result = run_keeper(
            "deploy",
            "--rpc-url",
            anvil.url,
            "--private-key",
            key_hex(accounts[0]),
            "--out",
            str(deployment_file),
            cwd=workdir,
        )
        assert result.returncode == 0, result.stderr
        deployment = Deployment.load(deployment_file)
        target = asyncio.run(_deploy_target(anvil.url, accounts[9].address))
        w3 = Web3(HTTPProvider(anvil.url, request_kwargs={"timeout": 10}))
        tm = w3.eth.contract(address=deployment.task_manager, abi=load_artifact("TaskManager").abi)
        yield CliChain(
            anvil=anvil,
            workdir=workdir,
            deployment_file=deployment_file,
            deployment=deployment,
            accounts=accounts,
            target=target,
            w3=w3,
            tm=tm,
        )
    finally:
        anvil.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
