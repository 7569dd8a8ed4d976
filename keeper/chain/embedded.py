"""An in-process chain (eth-tester + py-evm) for tests, benchmarks and the embedded devnet.

Several AsyncWeb3 instances can share one chain: each gets its own provider pointing at the
same EthereumTester, so nodes in one process see the same blocks.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from web3 import AsyncWeb3
from web3.providers.eth_tester import AsyncEthereumTesterProvider

ZERO_ADDRESS = b"\x00" * 20
ZERO_ADDRESS_BALANCE = 10**24  # wei: 10^6 ether, the same as each pre-funded account


class EmbeddedChain:
    """One eth-tester chain with `accounts` pre-funded, well-known keys (1, 2, 3, ...)."""

    def __init__(self, accounts: int = 20) -> None:
        genesis = PyEVMBackend.generate_genesis_state(num_accounts=accounts)
        # Resolvers are eth_call'ed from the zero address (as Automation does). Real nodes do
        # not charge an eth_call's gas to its sender; eth-tester refuses the call unless the
        # sender could pay gas * gas price, so the zero address gets a balance at genesis.
        genesis[ZERO_ADDRESS] = {
            "balance": ZERO_ADDRESS_BALANCE,
            "nonce": 0,
            "code": b"",
            "storage": {},
        }
        self.backend = PyEVMBackend(genesis_state=genesis)
        self.tester = EthereumTester(self.backend)
        self.accounts: list[LocalAccount] = [
            Account.from_key(key.to_bytes()) for key in self.backend.account_keys
        ]

    def web3(self, url: str | None = None) -> AsyncWeb3[Any]:
        """A new AsyncWeb3 on this chain (one per node, as separate RPC clients would be);
        `url` exists for interface parity with AnvilChain and is ignored."""
        provider = AsyncEthereumTesterProvider()
        provider.ethereum_tester = self.tester
        return AsyncWeb3(provider)

    def mine(self, blocks: int = 1) -> None:
        self.tester.mine_blocks(blocks)

    def time_travel(self, timestamp: int) -> None:
        """Mines one block at `timestamp` (must be later than the latest block)."""
        self.tester.time_travel(timestamp)

    def latest_timestamp(self) -> int:
        return int(self.tester.get_block_by_number("latest")["timestamp"])

    def latest_number(self) -> int:
        return int(self.tester.get_block_by_number("latest")["number"])

    def snapshot(self) -> int:
        return int(self.tester.take_snapshot())

    def revert(self, snapshot_id: int) -> None:
        self.tester.revert_to_snapshot(snapshot_id)
