"""`keeper devnet`: a whole keeper network in one process, live.

An embedded chain (eth-tester) or anvil, a block producer (one block a second, 12 chain seconds
apart, so a per-minute cron job fires every five seconds of wall time), N full keeper nodes
with their own keys, stores and peer ports on 127.0.0.1 talking over HTTP, and one job of each
kind against the demo target. Executions are printed as they land.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.types import Wei

from keeper.chain.anvil import AnvilChain, AnvilProcess
from keeper.chain.contracts import (
    DeployParams,
    bind,
    deploy_contract,
    deploy_contracts,
    transact,
)
from keeper.chain.embedded import EmbeddedChain
from keeper.chain.rpc import disconnect
from keeper.core.fees import FeePolicy
from keeper.core.triggers import TriggerKind
from keeper.node.context import NodeOptions
from keeper.node.node import KeeperNode
from keeper.store.db import Store

ETHER = 10**18
BLOCK_SECONDS = 12
DEMO_EVENT = keccak(text="DemoEvent(address,uint256,uint256)")


@dataclass(frozen=True)
class DevnetOptions:
    keepers: int = 4
    duration: float | None = None
    summary_json: str | None = None
    chain: str = "embedded"
    block_interval: float = 1.0
    workdir: str | None = None


@dataclass(frozen=True)
class DemoJob:
    job_id: int
    name: str
    kind: TriggerKind


class Devnet:
    """The running network; `run()` until the duration passes or `stop()` is called."""

    def __init__(self, options: DevnetOptions, out: Callable[[str], None] = print) -> None:
        self.options = options
        self.out = out
        self.anvil: AnvilProcess | None = None
        self.chain: EmbeddedChain | AnvilChain
        self.nodes: list[KeeperNode] = []
        self.jobs: list[DemoJob] = []
        self.stop_event = asyncio.Event()
        self._seen: set[tuple[int, int]] = set()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # ------------------------------------------------------------------ setup

    async def start(self) -> None:
        n = self.options.keepers
        if self.options.chain == "anvil":
            self.anvil = AnvilProcess(accounts=n + 3)
            self.chain = AnvilChain(self.anvil, accounts=n + 3)
            self.out(f"anvil running at {self.anvil.url} (pid {self.anvil.pid})")
        else:
            self.chain = EmbeddedChain(accounts=n + 3)
        self.w3 = self.chain.web3()
        self.deployer, self.owner, *keepers = self.chain.accounts
        params = DeployParams(
            min_stake=ETHER,
            unbonding_period=3600,
            epoch_length=24 * 3600,
            target_quorum_size=max(4, n),
            turn_blocks=2,
            gas_price_cap=100 * 10**9,
            premium=10**14,
        )
        self.deployment = await deploy_contracts(self.w3, self.deployer.address, params)
        contracts = bind(self.w3, self.deployment)
        self.registry, self.tm = contracts.registry, contracts.task_manager
        workdir = self.options.workdir
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="keeper-devnet-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        deployment_file = self.workdir / "deployment.json"
        deployment_file.write_text(self.deployment.to_json())
        self.out(
            f"deployed KeeperRegistry {self.deployment.registry}, "
            f"TaskManager {self.deployment.task_manager} (chain {self.deployment.chain_id})"
        )
        if self.anvil is not None:
            self.out(f"RPC URL {self.anvil.url}; deployment file {deployment_file}")
        self.out(
            f"chain time runs {BLOCK_SECONDS}x faster than wall time: one block every "
            f"{self.options.block_interval:g} s, {BLOCK_SECONDS} chain seconds apart"
        )
        for i, account in enumerate(keepers[:n]):
            node = await self._start_node(i, account)
            stake = (i + 1) * ETHER
            await self._tx(self.registry.functions.register(node.endpoint), account, value=stake)
            self.out(
                f"keeper {i} {account.address} staked {i + 1} ether, peer API {node.endpoint}, "
                f"status {node.admin_endpoint}, dashboard {node.admin_endpoint}/dashboard/"
            )
        self.producer = asyncio.create_task(self._produce_blocks())
        await self._wait_for_epoch()
        if not self.stop_event.is_set():
            await self._create_jobs()
            if self.anvil is not None:
                self._show_accounts(deployment_file)

    async def _start_node(self, i: int, account: LocalAccount) -> KeeperNode:
        store = await Store.open(
            self.workdir / f"keeper{i}.db",
            chain_id=self.deployment.chain_id,
            registry=self.deployment.registry,
            task_manager=self.deployment.task_manager,
            operator=account.address,
        )
        node = KeeperNode(
            w3=self.chain.web3(),
            account=account,
            deployment=self.deployment,
            store=store,
            options=NodeOptions(
                poll_interval=0.25,
                deadline_blocks=20,
                # anvil pushes new heads on its own port; the embedded chain has no socket
                ws_url=self.anvil.url.replace("http://", "ws://") if self.anvil else None,
            ),
            fee_policy=FeePolicy(),
        )
        await node.start()
        self.nodes.append(node)
        return node

    async def _wait_for_epoch(self) -> None:
        while int(await self.registry.functions.currentEpoch().call()) == 0:
            if self.stop_event.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), 0.2)
        epoch = int(await self.registry.functions.currentEpoch().call())
        count = int(await self.registry.functions.quorumCount(epoch).call())
        self.out(f"epoch {epoch} formed by the keepers: {count} quorum(s)")

    async def _create_jobs(self) -> None:
        self.target = await deploy_contract(self.w3, "DemoTarget", self.deployer.address, 60)
        t = self.target.address

        def sel(signature: str) -> bytes:
            return keccak(text=signature)[:4]

        specs: list[tuple[str, TriggerKind, bytes, bytes]] = [
            ("time every 60s", TriggerKind.Time, abi_encode(["uint64"], [60]), sel("onTime()")),
            (
                "cron * * * * *",
                TriggerKind.Cron,
                abi_encode(["string"], ["* * * * *"]),
                sel("onCron()"),
            ),
            (
                "event DemoEvent",
                TriggerKind.Event,
                abi_encode(
                    ["address", "bytes32[4]", "uint16"],
                    [t, [DEMO_EVENT, b"\0" * 32, b"\0" * 32, b"\0" * 32], 1],
                ),
                sel("onEvent()"),
            ),
            (
                "condition checker()",
                TriggerKind.Condition,
                abi_encode(["address", "bytes", "uint8", "uint64"], [t, sel("checker()"), 0, 1]),
                b"",
            ),
            (
                "automation checkUpkeep",
                TriggerKind.Condition,
                abi_encode(
                    ["address", "bytes", "uint8", "uint64"],
                    [t, sel("checkUpkeep(bytes)") + abi_encode(["bytes"], [b"demo"]), 1, 1],
                ),
                b"",
            ),
        ]
        deposit = 20 * int(await self.tm.functions.requiredDeposit(200_000, 0).call())
        for name, kind, trigger, call_data in specs:
            spec = (t, call_data, int(kind), trigger, 200_000, 6667, 0, 0, 0, 0)
            receipt = await self._tx(self.tm.functions.createJob(spec), self.owner, value=deposit)
            (event,) = self.tm.events.JobCreated().process_receipt(receipt)
            job = DemoJob(int(event["args"]["jobId"]), name, kind)
            self.jobs.append(job)
            self.out(f"job {job.job_id}: {name}")

    def _show_accounts(self, deployment_file: Path) -> None:
        """On anvil, others can join in: which key does what (anvil's public dev keys)."""
        assert self.anvil is not None

        def key(account: LocalAccount) -> str:
            return "0x" + bytes(account.key).hex()

        ids = ", ".join(str(job.job_id) for job in self.jobs)
        self.out(
            f"demo target {self.target.address} (DemoTarget: onTime(), onCron(), onEvent(), "
            "checker(), checkUpkeep/performUpkeep, emitDemo(a,b), request(n))"
        )
        self.out(f"job owner {self.owner.address} owns jobs {ids}; its key {key(self.owner)}")
        self.out(f"deployer {self.deployer.address}; its key {key(self.deployer)}")
        keepers = self.chain.accounts[2 : 2 + len(self.nodes)]
        for i, account in enumerate(keepers):
            self.out(f"keeper {i} {account.address}; its key {key(account)}")
        for account in self.chain.accounts[2 + len(self.nodes) :]:
            self.out(f"spare account {account.address} (funded); its key {key(account)}")
        self.out(
            "as the job owner, in another shell:\n"
            f"  export KEEPER_RPC_URL={self.anvil.url} KEEPER_DEPLOYMENT={deployment_file} "
            f"KEEPER_PRIVATE_KEY={key(self.owner)}\n"
            "  .venv/bin/keeper job list"
        )

    async def _tx(self, fn: Any, sender: LocalAccount, value: int = 0) -> Any:
        return await transact(self.w3, fn, {"from": sender.address, "value": Wei(value)})

    # ------------------------------------------------------------------ running

    async def _produce_blocks(self) -> None:
        """One block per interval, BLOCK_SECONDS of chain time apart; demo traffic now and then."""
        blocks = 0
        while not self.stop_event.is_set():
            latest = await self.w3.eth.get_block("latest")
            self.chain.time_travel(int(latest["timestamp"]) + BLOCK_SECONDS)
            blocks += 1
            if self.jobs and blocks % 8 == 0:
                await self._tx(self.target.functions.emitDemo(blocks, blocks * 7), self.owner)
            if self.jobs and blocks % 10 == 0:
                await self._tx(self.target.functions.request(blocks), self.owner)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), self.options.block_interval)

    async def _show_executions(self) -> None:
        names = {j.job_id: j for j in self.jobs}
        logs = await self.tm.events.JobExecuted().get_logs(from_block=self.deployment.block)
        for log in sorted(logs, key=lambda x: (x["blockNumber"], x["logIndex"])):
            key = (int(log["blockNumber"]), int(log["logIndex"]))
            if key in self._seen:
                continue
            self._seen.add(key)
            a = log["args"]
            job = names.get(int(a["jobId"]))
            label = job.name if job else "?"
            self.out(
                f"block {log['blockNumber']:>5}  job {a['jobId']} {label:<24} round {a['round']:>3}"
                f"  executor {a['executor'][:10]}  gas {a['gasUsed']:>7,}  "
                f"{'ok' if a['success'] else 'REVERTED'}"
            )

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        while not self.stop_event.is_set():
            await self._show_executions()
            if self.options.duration and time.monotonic() - started >= self.options.duration:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), 0.5)
        await self._show_executions()
        return await self.summary()

    async def summary(self) -> dict[str, Any]:
        logs = await self.tm.events.JobExecuted().get_logs(from_block=self.deployment.block)
        jobs = []
        for job in self.jobs:
            mine = [x for x in logs if int(x["args"]["jobId"]) == job.job_id]
            state = await self.tm.functions.getJob(job.job_id).call()
            jobs.append(
                {
                    "id": job.job_id,
                    "name": job.name,
                    "kind": job.kind.name,
                    "executions": len(mine),
                    "rounds": int(state[12]),
                    "last_cursor": int(state[13]),
                }
            )
        keepers = []
        for node in self.nodes:
            submitted = sum(1 for x in logs if x["args"]["executor"] == node.address)
            keepers.append(
                {
                    "address": node.address,
                    "reports_signed": await node.store.signature_count(),
                    "executions_submitted": submitted,
                }
            )
        return {
            "chain": self.options.chain,
            "chain_id": self.deployment.chain_id,
            "registry": self.deployment.registry,
            "task_manager": self.deployment.task_manager,
            "jobs": jobs,
            "keepers": keepers,
        }

    async def stop(self) -> None:
        self.stop_event.set()
        producer = getattr(self, "producer", None)
        if producer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await producer
        for node in self.nodes:
            await node.stop()
            await disconnect(node.w3)
        if getattr(self, "w3", None) is not None:
            await disconnect(self.w3)
        if self.anvil is not None:
            self.anvil.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


async def run_devnet(options: DevnetOptions, out: Callable[[str], None] = print) -> int:
    """Runs the devnet until the duration passes or SIGINT/SIGTERM; 0 on a clean stop."""
    devnet = Devnet(options, out)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, devnet.stop_event.set)
    try:
        await devnet.start()
        limit = f" (or after {options.duration:g} s)" if options.duration else ""
        out(f"running; Ctrl-C stops{limit}")
        summary = await devnet.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await devnet.stop()
    for job in summary["jobs"]:
        out(f"job {job['id']} {job['name']}: {job['executions']} execution(s)")
    if options.summary_json:
        Path(options.summary_json).write_text(json.dumps(summary, indent=2) + "\n")
        out(f"summary written to {options.summary_json}")
    out("stopped cleanly")
    return 0
