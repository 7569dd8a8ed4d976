"""A real multi-process network: anvil with a block time, contracts deployed and keepers
registered through the `keeper` console script, one `keeper run` process per keeper.

Every process the cluster starts is stopped by its pid, also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from keeper.chain.anvil import AnvilProcess, dev_accounts, free_port
from keeper.chain.contracts import Deployment, bind, contract_at, deploy_contract, transact
from keeper.chain.rpc import disconnect

KEEPER = Path(sys.executable).parent / "keeper"
ETHER = 10**18


def key_hex(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


@dataclass
class KeeperProcess:
    index: int
    account: LocalAccount
    port: int
    admin_port: int
    db: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The peer API (what the keeper registered)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_endpoint(self) -> str:
        """Status, health and metrics."""
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Cluster:
    """anvil + deployment + keeper processes. Accounts: 0 deploys, 1 owns jobs, 2.. keep."""

    tmp: Path
    anvil: AnvilProcess
    accounts: list[LocalAccount]
    deployment_file: Path
    deployment: Deployment
    keepers: dict[int, KeeperProcess] = field(default_factory=dict)
    rpc_urls: dict[int, str] = field(default_factory=dict)
    # The tests' own RPC clients: tests/e2e/conftest.py closes them in the test's event loop.
    clients: list[AsyncWeb3[Any]] = field(default_factory=list)

    # ------------------------------------------------------------------ CLI

    def cli(self, *args: str, key: LocalAccount | None = None, check: bool = True) -> str:
        """Runs the console script like an operator; returns stdout."""
        env = {**os.environ, "KEEPER_RPC_URL": self.anvil.url}
        if key is not None:
            env["KEEPER_PRIVATE_KEY"] = key_hex(key)
        result = subprocess.run(
            [str(KEEPER), *args], capture_output=True, text=True, env=env, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"keeper {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    # ------------------------------------------------------------------ keepers

    def register(self, i: int, stake_ether: int) -> KeeperProcess:
        """Stakes and registers keeper `i` (account i + 2) with a fresh loopback port."""
        account = self.accounts[i + 2]
        kp = KeeperProcess(
            index=i,
            account=account,
            port=free_port(),
            admin_port=free_port(),
            db=self.tmp / f"keeper{i}.db",
            log=self.tmp / f"keeper{i}.log",
        )
        self.cli(
            "register",
            "--deployment",
            str(self.deployment_file),
            "--stake",
            f"{stake_ether}ether",
            "--endpoint",
            kp.endpoint,
            key=account,
        )
        self.keepers[i] = kp
        return kp

    def start(self, i: int, *extra: str) -> KeeperProcess:
        """Starts `keeper run` for keeper `i` on its store (a restart resumes from it)."""
        kp = self.keepers[i]
        env = {
            **os.environ,
            "KEEPER_RPC_URL": self.rpc_urls.get(i, self.anvil.url),
            "KEEPER_PRIVATE_KEY": key_hex(kp.account),
            # A busy 2-core test machine must not make nodes shed leadership at random.
            "KEEPER_MAX_CPU_PERCENT": "1000",
        }
        log = kp.log.open("ab")
        kp.proc = subprocess.Popen(
            [
                str(KEEPER),
                "run",
                "--deployment",
                str(self.deployment_file),
                "--listen",
                f"127.0.0.1:{kp.port}",
                "--admin-listen",
                f"127.0.0.1:{kp.admin_port}",
                "--db",
                str(kp.db),
                "--poll-interval",
                "0.25",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        return kp

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        kp = self.keepers[i]
        if kp.proc is not None and kp.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(kp.proc.pid, sig)
            kp.proc.wait(timeout=30)

    def stop_all(self) -> None:
        for i in list(self.keepers):
            self.kill(i, signal.SIGTERM if self.keepers[i].running else signal.SIGKILL)
        self.anvil.stop()

    # ------------------------------------------------------------------ chain access

    def web3(self) -> AsyncWeb3[Any]:
        w3 = AsyncWeb3(AsyncHTTPProvider(self.anvil.url, request_kwargs={"timeout": 10}))
        self.clients.append(w3)
        return w3

    async def close_clients(self) -> None:
        """Closes the HTTP sessions of every `web3()` handed out (in the loop that used them)."""
        clients, self.clients = self.clients, []
        for w3 in clients:
            await disconnect(w3)

    async def contracts(self, w3: AsyncWeb3[Any]) -> Any:
        return bind(w3, self.deployment)

    async def deploy_target(self, w3: AsyncWeb3[Any], upkeep_interval: int = 60) -> Any:
        return await deploy_contract(w3, "DemoTarget", self.accounts[0].address, upkeep_interval)

    def target_at(self, w3: AsyncWeb3[Any], address: str) -> Any:
        return contract_at(w3, "DemoTarget", address)

    async def owner_tx(self, w3: AsyncWeb3[Any], fn: Any, value: int = 0) -> Any:
        return await transact(w3, fn, {"from": self.accounts[1].address, "value": value})  # type: ignore[typeddict-item]

    async def executions(self, w3: AsyncWeb3[Any], job_id: int | None = None) -> list[Any]:
        tm = bind(w3, self.deployment).task_manager
        filters = {"jobId": job_id} if job_id is not None else None
        logs = await tm.events.JobExecuted().get_logs(
            from_block=self.deployment.block, argument_filters=filters
        )
        return sorted(logs, key=lambda x: (x["blockNumber"], x["logIndex"]))

    async def status(self, i: int) -> dict[str, Any]:
        """The node's own status (its admin listener's /v1/status), as monitoring reads it."""
        url = f"{self.keepers[i].admin_endpoint}/v1/status"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

    async def wait_until(
        self, predicate: Callable[[], Awaitable[bool]], timeout: float, what: str
    ) -> None:
        """Polls `predicate` until it holds (the chain makes blocks on its own)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await predicate():
                return
            await asyncio.sleep(0.5)
        logs = "\n".join(
            f"--- keeper {i}\n" + kp.log.read_text()[-3000:]
            for i, kp in self.keepers.items()
            if kp.log.exists()
        )
        raise AssertionError(f"timed out waiting for {what}\n{logs}")


def start_cluster(
    tmp: Path,
    stakes: Sequence[int] = (1, 2, 3, 4),
    block_time: float = 1.0,
    quorum_size: int = 4,
    epoch_length: int = 24 * 3600,
    start: bool = True,
    turn_blocks: int = 2,
) -> Cluster:
    """anvil, `keeper deploy`, `keeper register` for each stake, `keeper run` for each."""
    anvil = AnvilProcess(accounts=len(stakes) + 8, block_time=block_time)
    accounts = dev_accounts(len(stakes) + 8)
    deployment_file = tmp / "deployment.json"
    cluster = Cluster(
        tmp=tmp,
        anvil=anvil,
        accounts=accounts,
        deployment_file=deployment_file,
        deployment=Deployment(0, "0x" + "00" * 20, "0x" + "00" * 20, 0),
    )
    try:
        cluster.cli(
            "deploy",
            "--out",
            str(deployment_file),
            "--quorum-size",
            str(quorum_size),
            "--epoch-length",
            str(epoch_length),
            "--unbonding-period",
            "60",
            "--turn-blocks",
            str(turn_blocks),
            key=accounts[0],
        )
        cluster.deployment = Deployment.load(deployment_file)
        # Every keeper registers before any runs: the first rotation freezes the set when it
        # is armed, and a keeper registered after that waits a whole early-rotation spacing.
        for i, stake in enumerate(stakes):
            cluster.register(i, stake)
        if start:
            for i in range(len(stakes)):
                cluster.start(i)
    except BaseException:
        cluster.stop_all()  # the keepers already started, then anvil
        raise
    return cluster
