"""Running the installed `keeper` console script, and checking its one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3

from keeper.chain.contracts import JOB_VIEW_FIELDS
from keeper.core.jobs import NO_PAYLOAD
from keeper.core.triggers import compute_time_cursor
from tests.anvil import AnvilProcess

KEEPER = Path(sys.executable).parent / "keeper"
ETHER = 10**18


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_keeper(*args: str, cwd: Path, timeout: float = 120) -> Result:
    """`keeper ARGS` in a subprocess with no KEEPER_* variables inherited, run from `cwd` so no
    stray .env is read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPER_")}
    proc = subprocess.run(
        [str(KEEPER), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def key_hex(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit code 2, exactly one stderr line `keeper: error: ...` holding every fragment, and no
    traceback anywhere."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("keeper: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.returncode == 2, result
    return lines[0]


def assert_ok(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def created_job_id(result: Result) -> int:
    match = re.search(r"^created job (\d+) ", assert_ok(result), re.MULTILINE)
    assert match, result.stdout
    return int(match.group(1))


def tx_hash(result: Result) -> str:
    match = re.search(r"^tx (0x[0-9a-f]{64}) ", result.stdout, re.MULTILINE)
    assert match, result.stdout
    return match.group(1)


@dataclass
class CliChain:
    """An anvil with a CLI-made deployment; dev account 0 deployed it and owns the jobs."""

    anvil: AnvilProcess
    workdir: Path
    deployment_file: Path
    deployment: Any
    accounts: list[LocalAccount]
    target: str
    w3: Web3
    tm: Any

    @property
    def owner(self) -> LocalAccount:
        return self.accounts[0]

    def keeper(
        self,
        *args: str,
        key: str | None = None,
        deployment: Path | None = None,
        rpc_url: str | None = None,
        keystore: tuple[Path, Path] | None = None,
    ) -> Result:
        """A job/operator command against this chain, as dev account 0 unless told otherwise."""
        flags = ["--rpc-url", rpc_url or self.anvil.url]
        flags += ["--deployment", str(deployment or self.deployment_file)]
        if keystore is not None:
            flags += ["--keystore", str(keystore[0]), "--password-file", str(keystore[1])]
        else:
            flags += ["--private-key", key or key_hex(self.owner)]
        return run_keeper(*args, *flags, cwd=self.workdir)

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(zip(JOB_VIEW_FIELDS, self.tm.functions.getJob(job_id).call(), strict=True))

    def snapshot(self) -> tuple[int, int, int]:
        """What a rejected command must not change: job count, the owner's nonce and balance."""
        return (
            int(self.tm.functions.nextJobId().call()),
            int(self.w3.eth.get_transaction_count(self.owner.address)),
            int(self.w3.eth.get_balance(self.owner.address)),
        )


@asynccontextmanager
async def harness_net(cli_chain: CliChain) -> AsyncIterator[Any]:
    """tests.harness.Net over the CLI's anvil and deployment: dev accounts 2-8 are keepers
    (harness helpers standing in for nodes), dev account 0 deployed and owns the jobs."""
    from keeper.chain.anvil import AnvilChain
    from keeper.chain.contracts import DeployParams, bind, contract_at
    from keeper.chain.rpc import disconnect
    from keeper.core.report import Domain
    from tests.harness import Net

    chain = AnvilChain(cli_chain.anvil, accounts=10)
    w3 = chain.web3()
    contracts = bind(w3, cli_chain.deployment)
    net = Net(
        chain=chain,  # type: ignore[arg-type]
        w3=w3,
        deployment=cli_chain.deployment,
        params=DeployParams(),
        registry=contracts.registry,
        tm=contracts.task_manager,
        target=contract_at(w3, "DemoTarget", cli_chain.target),
        deployer=chain.accounts[0],
        owner=chain.accounts[0],
        keepers=chain.accounts[2:9],
        domain=Domain(cli_chain.deployment.chain_id, cli_chain.deployment.task_manager),
    )
    try:
        yield net
    finally:
        await disconnect(w3)


# Time jobs of the money and watch tests: DemoTarget.onTime(), and DemoTarget.onCondition(0),
# which reverts with its custom error NoWork().
ON_TIME = keccak(text="onTime()")[:4]
NO_WORK = keccak(text="onCondition(uint256)")[:4] + abi_encode(["uint256"], [0])
INTERVAL = 60


def create(chain: CliChain, calldata: bytes, *flags: str) -> int:
    """A Time job calling `calldata` on the demo target, created even if `job create`'s check
    would refuse it (tests of failures need jobs that fail)."""
    return created_job_id(
        chain.keeper(
            "job", "create", "--target", chain.target, "--calldata", "0x" + calldata.hex(),
            "--every", f"{INTERVAL}s", "--force", *flags,
        )
    )  # fmt: skip


def create_unchecked(chain: CliChain, calldata: bytes) -> int:
    """A Time job made by calling createJob directly (dev account 0, ten required deposits): a
    job whose call reverts, which `keeper job create` checks would refuse."""
    trigger = abi_encode(["uint64"], [INTERVAL])
    spec = (chain.target, calldata, 0, trigger, 200_000, 6700, 0, 0, 0, 0)
    deposit = 10 * chain.tm.functions.requiredDeposit(200_000, 0).call()
    sender = {"from": chain.owner.address, "value": deposit}
    tx = chain.tm.functions.createJob(spec).transact(sender)
    receipt = chain.w3.eth.wait_for_transaction_receipt(tx)
    (event,) = chain.tm.events.JobCreated().process_receipt(receipt)
    return int(event["args"]["jobId"])


async def run_round(net: Any, job_id: int) -> Any:
    """The Time job's next slot, executed by its quorum once chain time has reached it (its
    item's payload empty: the job's call is in its forwarder's code)."""
    job = await net.job(job_id)
    due_at = job["startTime"] if job["round"] == 0 else job["lastCursor"] + INTERVAL
    net.time_travel(max(due_at, await net.timestamp()) + 1)
    net.mine(1)
    now = await net.timestamp()
    cursor = compute_time_cursor(job["startTime"], INTERVAL, now, job["lastCursor"])
    assert cursor is not None
    return await net.execute_round(
        job_id, cursor, NO_PAYLOAD, check_block=await net.block_number() - 1
    )
