"""anvil from the repo's npm package: a real JSON-RPC dev chain for the devnet and e2e tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from keeper.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
ANVIL = REPO / "node_modules" / ".bin" / "anvil"
# anvil's well-known development mnemonic: test keys only, never for value.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dev_accounts(count: int) -> list[LocalAccount]:
    """anvil's development accounts 0..count-1."""
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        for i in range(count)
    ]


class AnvilProcess:
    """One anvil on a free loopback port, stopped by its pid. `hardfork` picks the EVM rules
    (e.g. "berlin": a chain before EIP-1559, whose blocks carry no base fee)."""

    def __init__(
        self,
        accounts: int = 20,
        block_time: float | None = None,
        port: int | None = None,
        hardfork: str | None = None,
    ) -> None:
        if not ANVIL.exists():
            raise ConfigError(f"{ANVIL} is missing: run `npm ci` (scripts/setup.sh does)")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--accounts", str(accounts), "--silent"]
        if block_time is not None:
            cmd += ["--block-time", str(block_time)]
        if hardfork is not None:
            cmd += ["--hardfork", hardfork]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.pid = self.proc.pid
        self._wait_ready()

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.rpc("eth_chainId")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ConfigError("anvil did not start")

    def rpc(self, method: str, *params: Any) -> Any:
        """A synchronous JSON-RPC call, for chain control (mining, snapshots, reorgs)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class AnvilChain:
    """The EmbeddedChain interface (tests/harness.py's Net uses it) over an anvil process."""

    def __init__(self, anvil: AnvilProcess, accounts: int = 20) -> None:
        self.anvil = anvil
        self.accounts = dev_accounts(accounts)

    def web3(self, url: str | None = None) -> AsyncWeb3[Any]:
        return AsyncWeb3(AsyncHTTPProvider(url or self.anvil.url, request_kwargs={"timeout": 5}))

    def mine(self, blocks: int = 1) -> None:
        self.anvil.rpc("anvil_mine", hex(blocks))

    def time_travel(self, timestamp: int) -> None:
        self.anvil.rpc("evm_mine", timestamp)

    def latest_timestamp(self) -> int:
        return int(self.anvil.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def latest_number(self) -> int:
        return int(self.anvil.rpc("eth_blockNumber"), 16)

    def snapshot(self) -> int:
        return int(self.anvil.rpc("evm_snapshot"), 16)

    def revert(self, snapshot_id: int) -> None:
        self.anvil.rpc("evm_revert", hex(snapshot_id))
