"""Running the installed `keeper` console script, and checking its one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from keeper.chain.contracts import JOB_VIEW_FIELDS
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


def harness_net(cli_chain: CliChain) -> Any:
    """tests.harness.Net over the CLI's anvil and deployment: dev accounts 2-8 are keepers
    (harness helpers standing in for nodes), dev account 0 deployed and owns the jobs."""
    from keeper.chain.anvil import AnvilChain
    from keeper.chain.contracts import DeployParams, bind, contract_at
    from keeper.core.report import Domain
    from tests.harness import Net

    chain = AnvilChain(cli_chain.anvil, accounts=10)
    w3 = chain.web3()
    contracts = bind(w3, cli_chain.deployment)
    return Net(
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
