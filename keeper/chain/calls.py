"""Encoding and simulating the calls a keeper sends: `execute` (a batch), `slashEquivocation`
and `rotate`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.utils.abi import get_abi_element

from keeper.chain import jsonrpc
from keeper.chain.contracts import revert_of
from keeper.chain.rpc import rpc_guard
from keeper.core.equivocation import SignedBy
from keeper.core.quorum import Member
from keeper.core.report import Batch, Report, compute_payload_hash
from keeper.core.rotation import EpochTiming
from keeper.errors import ChainError, ContractRevert, RpcUnavailable

log = logging.getLogger(__name__)

# Gas of execute beyond its targets' limits: the batch's shared work plus one signature check
# per member, and per item its checks, cold job slots, failure record and settlement.
EXECUTE_BASE_GAS = 150_000
EXECUTE_GAS_PER_MEMBER = 8_000
EXECUTE_GAS_PER_ITEM = 40_000
ROTATE_BASE_GAS = 300_000
ROTATE_GAS_PER_KEEPER = 40_000


FORWARDER_GAS = 5_000  # TaskManager.FORWARDER_GAS
POST_CALL_GAS = 30_000  # TaskManager.POST_CALL_GAS


def compute_execute_gas(gas_limits: Sequence[int], members: int) -> int:
    """A gas limit for a batch whose items' jobs have `gas_limits` (in item order) that always
    satisfies the contract's 63/64 guard for every item: before each item's call the guard asks
    for that call's forwarder gas (the 63/64 rule applies twice, into the job's forwarder, then
    into the target) plus POST_CALL_GAS. eth_estimateGas does not know about the guard and
    under-estimates jobs with large limits. Each item is counted at its worst: its forwarder's
    whole gas and EXECUTE_GAS_PER_ITEM besides, so the last one still finds its guard met."""
    items = sum(
        (limit * 64 // 63 + FORWARDER_GAS) * 64 // 63 + EXECUTE_GAS_PER_ITEM for limit in gas_limits
    )
    return items + POST_CALL_GAS + EXECUTE_BASE_GAS + EXECUTE_GAS_PER_MEMBER * members


def compute_rotate_gas(keepers: int) -> int:
    return ROTATE_BASE_GAS + ROTATE_GAS_PER_KEEPER * keepers


def compute_equivocation_proof(signed: SignedBy) -> tuple[Any, ...]:
    """The ABI tuple of TaskManager's `EquivocationProof` for one signed item."""
    return (
        signed.report.header.as_tuple(),
        list(signed.hashes),
        signed.index,
        signed.report.item_tuple(),
        signed.signature,
    )


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
        batch: Batch,
        payloads: Sequence[bytes],
        members: Sequence[Member],
        bitmap: int,
        signatures: bytes,
    ) -> bytes:
        """`execute(header, items, members, signerBitmap, signatures)` calldata: `payloads[i]`
        is the payload of `batch.items[i]` (whose payloadHash the quorum signed)."""
        if len(payloads) != len(batch.items):
            raise ValueError(f"{len(batch.items)} items but {len(payloads)} payloads")
        items = [
            (r.jobId, r.round, r.cursor, payload)
            for r, payload in zip(batch.items, payloads, strict=True)
        ]
        args = (batch.header.as_tuple(), items, [m.word for m in members], bitmap, signatures)
        return self._execute_selector + abi_encode(self._execute_types, args)

    def execute_batch(self, data: bytes) -> tuple[Batch, tuple[bytes, ...]] | None:
        """The batch an `execute` calldata carries (each item's payloadHash computed from its
        payload) and the payloads, or None for other calldata or an encoding no batch has."""
        if data[:4] != self._execute_selector:
            return None
        try:
            header, items, _, _, _ = abi_decode(self._execute_types, data[4:])
            epoch, quorum, check_block, check_block_hash, executor, deadline = header
            reports = [
                Report(
                    jobId=job_id,
                    round=round_,
                    epoch=epoch,
                    cursor=cursor,
                    checkBlock=check_block,
                    checkBlockHash=bytes(check_block_hash),
                    payloadHash=compute_payload_hash(bytes(payload)),
                    executor=executor,
                    deadline=deadline,
                    quorum=quorum,
                )
                for job_id, round_, cursor, payload in items
            ]
            batch = Batch.of(reports)
        except Exception:  # eth-abi's decoding errors, or an empty or oversized batch
            return None
        return batch, tuple(bytes(item[3]) for item in items)

    def execute_report(self, data: bytes) -> Report | None:
        """The first item of the batch an `execute` calldata carries, or None."""
        carried = self.execute_batch(data)
        return None if carried is None else carried[0].items[0]

    def slash_data(self, a: SignedBy, b: SignedBy) -> bytes:
        """`slashEquivocation(a, b)` calldata: each proof is the signed item's batch header,
        the batch's item hashes, the item's index and the item, and the signature."""
        data = self.task_manager.encode_abi(
            "slashEquivocation", args=[compute_equivocation_proof(a), compute_equivocation_proof(b)]
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

    async def simulate_execute(
        self, sender: str, to: str, data: bytes, gas: int
    ) -> tuple[int, ContractRevert | None]:
        """eth_call of an `execute` against the pending block: (the executed-items bitmap it
        returns, None), or (0, the decoded revert). `NothingExecuted` says every item would be
        skipped."""
        call = {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": gas}
        try:
            async with rpc_guard("simulate"):
                result = bytes(await self._w3.eth.call(call, "pending"))  # type: ignore[arg-type]
        except Exception as exc:
            revert = revert_of(exc)
            if revert is None:
                raise
            return 0, revert
        if len(result) != 32:
            raise ChainError(f"execute returned {len(result)} bytes, not one word")
        return int.from_bytes(result, "big"), None

    async def can_rotate(self) -> bool:
        """`canRotate()`, asked every head: one plain eth_call of fixed calldata, without the
        contract-call machinery (ABI lookup and formatting) that costs more than the call."""
        async with rpc_guard("canRotate"):
            result = await jsonrpc.call(self._w3, str(self.registry.address), self._can_rotate_data)
        if len(result) != 32:
            raise ChainError(f"canRotate returned {len(result)} bytes, not one word")
        return int.from_bytes(result, "big") != 0

    async def epoch_timing(self, generation: int, block: int) -> EpochTiming | None:
        """The registry's `epochState()` and `armedRotation()` at `block`, for the store's
        registry `generation`; None when the provider cannot answer at that block (a lagging
        backend without it): the caller then asks `canRotate()` as it would without."""
        try:
            async with rpc_guard("epochState"):
                state = await self.registry.functions.epochState().call(block_identifier=block)
                armed = await self.registry.functions.armedRotation().call(block_identifier=block)
        except RpcUnavailable:
            raise
        except Exception as exc:  # any answer that is not the state: do without it
            log.info("rotation.timing_unread block=%d error=%s", block, exc)
            return None
        epoch, _start_block, _start_time, _count, set_changed, due_at = state
        return EpochTiming(
            generation=generation,
            block=block,
            epoch=int(epoch),
            set_changed=bool(set_changed),
            due_at=int(due_at),
            arm_block=int(armed[0]),
        )

    async def account_funds(self, address: str) -> tuple[int, int]:
        """(ETH balance, unwithdrawn TaskManager earnings) of `address`, in wei."""
        data = self.task_manager.encode_abi("earnings", args=[address])
        async with rpc_guard("account funds"):
            balance = await jsonrpc.balance(self._w3, address)
            earned = await jsonrpc.call(self._w3, str(self.task_manager.address), data)
        return balance, int.from_bytes(earned, "big")

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
