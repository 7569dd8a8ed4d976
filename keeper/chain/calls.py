"""Encoding and simulating the calls a keeper sends: `execute` and `rotate`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.utils.abi import get_abi_element

from keeper.chain.contracts import revert_of
from keeper.chain.rpc import rpc_guard
from keeper.core.quorum import Member
from keeper.core.report import REPORT_TYPES, Report
from keeper.errors import ChainError, ContractRevert

# Gas of execute beyond the target's limit: base work plus one signature check per signer.
EXECUTE_BASE_GAS = 150_000
EXECUTE_GAS_PER_MEMBER = 8_000
ROTATE_BASE_GAS = 300_000
ROTATE_GAS_PER_KEEPER = 40_000


FORWARDER_GAS = 5_000  # TaskManager.FORWARDER_GAS
POST_CALL_GAS = 30_000  # TaskManager.POST_CALL_GAS


def compute_execute_gas(gas_limit: int, members: int) -> int:
    """A gas limit that always satisfies the contract's 63/64 guard, which applies twice (into
    the job's forwarder, then into the target); eth_estimateGas does not know about it and
    under-estimates jobs with large limits."""
    forwarder_gas = gas_limit * 64 // 63 + FORWARDER_GAS
    return (
        forwarder_gas * 64 // 63
        + POST_CALL_GAS
        + EXECUTE_BASE_GAS
        + EXECUTE_GAS_PER_MEMBER * members
    )


def compute_rotate_gas(keepers: int) -> int:
    return ROTATE_BASE_GAS + ROTATE_GAS_PER_KEEPER * keepers


class BillingTerms(NamedTuple):
    """The TaskManager's billing constants: an execution is billed
    `min(tx.gasprice, basefee + max_priority_fee, gas_price_cap, job max) * gas + premium`."""

    gas_price_cap: int
    max_priority_fee: int
    premium: int


class KeeperCalls:
    """The TaskManager and registry calls of one keeper, encoded and simulated."""

    def __init__(self, w3: AsyncWeb3[Any], registry: AsyncContract, task_manager: AsyncContract):
        self._w3 = w3
        self.registry = registry
        self.task_manager = task_manager
        self._can_rotate_data = registry.encode_abi("canRotate", args=[])
        # execute is encoded for every round led: eth-abi on the ABI's types directly, without
        # web3's per-call ABI lookup and argument normalisation (~1 ms a call).
        execute_abi = get_abi_element(task_manager.abi, "execute")
        self._execute_selector = function_abi_to_4byte_selector(execute_abi)
        self._execute_types = get_abi_input_types(execute_abi)

    def execute_data(
        self,
        report: Report,
        payload: bytes,
        members: Sequence[Member],
        bitmap: int,
        signatures: bytes,
    ) -> bytes:
        args = (report.as_tuple(), payload, [m.word for m in members], bitmap, signatures)
        return self._execute_selector + abi_encode(self._execute_types, args)

    def execute_report(self, data: bytes) -> Report | None:
        """The report an `execute` calldata carries, or None for other calldata. The report is
        a static tuple, encoded in place at the head of the arguments: only its words are read."""
        size = 32 * len(REPORT_TYPES["Report"])
        if data[:4] != self._execute_selector or len(data) < 4 + size:
            return None
        (fields,) = abi_decode([self._execute_types[0]], data[4 : 4 + size])
        return Report(*fields)

    def slash_equivocation_data(self, a: Report, sig_a: bytes, b: Report, sig_b: bytes) -> bytes:
        """`slashEquivocation(a, sigA, b, sigB)` calldata."""
        data = self.task_manager.encode_abi(
            "slashEquivocation", args=[a.as_tuple(), sig_a, b.as_tuple(), sig_b]
        )
        return bytes.fromhex(data[2:])

    def rotate_data(self) -> bytes:
        return bytes.fromhex(self.registry.encode_abi("rotate", args=[])[2:])

    async def simulate(self, sender: str, to: str, data: bytes, gas: int) -> ContractRevert | None:
        """eth_call against the pending block (where the transaction would land); the decoded
        revert, or None when it would succeed."""
        call = {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": gas}
        try:
            async with rpc_guard("simulate"):
                await self._w3.eth.call(call, "pending")  # type: ignore[arg-type]
        except Exception as exc:
            revert = revert_of(exc)
            if revert is None:
                raise
            return revert
        return None

    async def can_rotate(self) -> bool:
        """`canRotate()`, asked every head: one plain eth_call of fixed calldata, without the
        contract-call machinery (ABI lookup and formatting) that costs more than the call."""
        call = {"to": str(self.registry.address), "data": self._can_rotate_data}
        async with rpc_guard("canRotate"):
            result = bytes(await self._w3.eth.call(call))  # type: ignore[arg-type]
        if len(result) != 32:
            raise ChainError(f"canRotate returned {len(result)} bytes, not one word")
        return int.from_bytes(result, "big") != 0

    async def account_funds(self, address: str) -> tuple[int, int]:
        """(ETH balance, unwithdrawn TaskManager earnings) of `address`, in wei."""
        async with rpc_guard("account funds"):
            balance = int(await self._w3.eth.get_balance(address))  # type: ignore[arg-type]
            earned = int(await self.task_manager.functions.earnings(address).call())
        return balance, earned

    async def turn_blocks(self) -> int:
        """KeeperRegistry.turnBlocks: every member of a quorum ranks leaders by it alike."""
        async with rpc_guard("turnBlocks"):
            return int(await self.registry.functions.turnBlocks().call())

    async def billing(self) -> BillingTerms:
        async with rpc_guard("billing"):
            functions = self.task_manager.functions
            cap = int(await functions.gasPriceCap().call())
            max_priority_fee = int(await functions.maxPriorityFee().call())
            premium = int(await functions.premium().call())
        return BillingTerms(cap, max_priority_fee, premium)
