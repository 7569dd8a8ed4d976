"""The node's only transaction signer: nonces, EIP-1559 fees, replacement when stuck, and a
store-backed outbox so that a restart neither loses nor repeats a transaction.

Every signed transaction is written to the store BEFORE it is broadcast. A crash after the write
leaves a row the next `start` re-broadcasts byte for byte (same hash, so the chain can include
it at most once); a crash before it leaves nothing, and the nonce was never used. Fees come from
the pure policy in `keeper.core.fees`; this module only feeds it the latest base fee.

Rows of one nonce are the original and its replacements; the one paying the most is the live
one. Once any of them is mined the rest are marked `replaced`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound
from web3.types import TxReceipt

from keeper.chain.rpc import rpc_guard
from keeper.core.addresses import checksum_address
from keeper.core.fees import FeePolicy, Fees, compute_bump, compute_fees, is_stuck
from keeper.core.types import BlockNumber, Wei
from keeper.errors import RpcUnavailable, TransactionFailed
from keeper.store.db import PendingTx, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TxOutcome:
    """How a sent transaction ended. `block_number` is None (and `success` False) when its nonce
    was consumed by a transaction this node never signed, e.g. the same key used elsewhere."""

    purpose: str
    tx_hash: bytes
    nonce: int
    success: bool
    block_number: int | None
    gas_used: int


class TxSender:
    """Signs, persists, broadcasts and follows this node's transactions; one per node.

    Sends and polls are serialised by one lock, so nonces are handed out in order and a
    replacement is never built while a send of the same account is half done.
    """

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        account: LocalAccount,
        store: Store,
        policy: FeePolicy,
        chain_id: int,
    ) -> None:
        self._w3 = w3
        self._account = account
        self._store = store
        self._policy = policy
        self._chain_id = chain_id
        self._lock = asyncio.Lock()
        self._next_nonce: int | None = None

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address  # eth-account keeps it in checksum form

    # ------------------------------------------------------------------ public API

    async def start(self) -> list[TxOutcome]:
        """Reconciles the store with the chain after a (re)start.

        Rows whose nonce the chain has already used are settled from their receipts; the live
        row of every other nonce is re-broadcast verbatim, since the node may have lost it.
        Returns the outcomes settled here, so the caller can account for them.
        """
        async with self._lock:
            head = await self._head_number()
            chain_nonce = await self._nonce_at("latest")
            outcomes: list[TxOutcome] = []
            for group in await self._pending_groups():
                outcome = await self._settle(group, chain_nonce, consumed_is_final=True)
                if outcome is not None:
                    outcomes.append(outcome)
                elif group[0].nonce >= chain_nonce:
                    await self._rebroadcast(_live(group))
            await self._sync_nonce()
            log.info(
                "tx.started address=%s next_nonce=%s head=%d settled=%d",
                self.address,
                self._next_nonce,
                head,
                len(outcomes),
            )
            return outcomes

    async def send(self, to: str, data: bytes, gas: int, purpose: str, value: int = 0) -> bytes:
        """Signs and broadcasts a type-2 transaction; returns its hash.

        The row is stored before the broadcast. If the RPC is unreachable the transaction stays
        pending and `poll` re-broadcasts it; if the node rejects it outright the row is marked
        failed, the nonce is given back, and TransactionFailed is raised.
        """
        async with self._lock:
            block = await self._latest_block()
            nonce = await self._free_nonce()
            fees = compute_fees(self._policy, Wei(int(block["baseFeePerGas"])))
            params: dict[str, Any] = {
                "type": 2,
                "chainId": self._chain_id,
                "nonce": nonce,
                "to": checksum_address(to),
                "value": value,
                "data": data,
                "gas": gas,
            }
            row = self._sign(params, fees, purpose, int(block["number"]))
            await self._store.add_pending_tx(row)
            self._next_nonce = nonce + 1
            try:
                await self._broadcast(row.raw)
            except RpcUnavailable as exc:
                log.warning(
                    "tx.deferred nonce=%d tx=%s purpose=%s error=%s",
                    nonce,
                    _hex(row.tx_hash),
                    purpose,
                    exc,
                )
                return row.tx_hash
            except Exception as exc:
                # The node answered, and not with success: the transaction never entered its
                # pool, so its nonce is still free. Give it back; the next send re-reads the
                # chain's count as well, which covers "nonce too low".
                await self._store.mark_tx(row.tx_hash, "failed")
                self._next_nonce = nonce
                log.warning(
                    "tx.rejected nonce=%d tx=%s purpose=%s error=%s",
                    nonce,
                    _hex(row.tx_hash),
                    purpose,
                    exc,
                )
                raise TransactionFailed(f"{purpose}: node rejected transaction: {exc}") from exc
            log.info(
                "tx.sent nonce=%d tx=%s purpose=%s max_fee=%d priority_fee=%d block=%d",
                nonce,
                _hex(row.tx_hash),
                purpose,
                row.max_fee,
                row.priority_fee,
                row.sent_block,
            )
            return row.tx_hash

    async def poll(self, head: int) -> list[TxOutcome]:
        """Follows every pending transaction at `head`: settles mined ones, replaces stuck ones
        with higher fees, and re-broadcasts ones the node does not know (after an outage)."""
        async with self._lock:
            outcomes: list[TxOutcome] = []
            chain_nonce: int | None = None
            base_fee: Wei | None = None
            for group in await self._pending_groups():
                if chain_nonce is None:
                    chain_nonce = await self._nonce_at("latest")
                live = _live(group)
                stuck = is_stuck(BlockNumber(live.sent_block), BlockNumber(head), self._policy)
                outcome = await self._settle(group, chain_nonce, consumed_is_final=stuck)
                if outcome is not None:
                    outcomes.append(outcome)
                elif live.nonce < chain_nonce:
                    continue  # used on chain, receipt not visible yet: wait for it
                elif stuck:
                    if base_fee is None:
                        base_fee = Wei(int((await self._latest_block())["baseFeePerGas"]))
                    await self._bump(live, head, base_fee)
                elif not await self._is_known(live.tx_hash):
                    await self._rebroadcast(live)
            return outcomes

    # ------------------------------------------------------------------ settling

    async def _settle(
        self, group: Sequence[PendingTx], chain_nonce: int, *, consumed_is_final: bool
    ) -> TxOutcome | None:
        """The outcome of a nonce if one of its rows is mined (or the nonce was consumed by a
        foreign transaction and `consumed_is_final`), after marking the rows; else None."""
        for row in group:
            receipt = await self._receipt(row.tx_hash)
            if receipt is None:
                continue
            success = int(receipt["status"]) == 1
            # Siblings first: if we crash in between, the mined row is still pending and the
            # next poll settles it again from its receipt.
            await self._store.mark_nonce(row.nonce, "replaced", except_hash=row.tx_hash)
            await self._store.mark_tx(row.tx_hash, "mined" if success else "failed")
            outcome = TxOutcome(
                purpose=row.purpose,
                tx_hash=row.tx_hash,
                nonce=row.nonce,
                success=success,
                block_number=int(receipt["blockNumber"]),
                gas_used=int(receipt["gasUsed"]),
            )
            log.log(
                logging.INFO if success else logging.WARNING,
                "tx.mined nonce=%d tx=%s purpose=%s status=%d block=%d gas_used=%d",
                row.nonce,
                _hex(row.tx_hash),
                row.purpose,
                int(receipt["status"]),
                outcome.block_number,
                outcome.gas_used,
            )
            return outcome
        nonce = group[0].nonce
        if nonce < chain_nonce and consumed_is_final:
            await self._store.mark_nonce(nonce, "failed")
            live = _live(group)
            log.error(
                "tx.dropped nonce=%d tx=%s purpose=%s reason=nonce_used_by_unknown_tx",
                nonce,
                _hex(live.tx_hash),
                live.purpose,
            )
            return TxOutcome(live.purpose, live.tx_hash, nonce, False, None, 0)
        return None

    # ------------------------------------------------------------------ replacing and resending

    async def _bump(self, live: PendingTx, head: int, base_fee: Wei) -> None:
        """Replaces a stuck transaction: same nonce, call and gas, higher fees (persist first)."""
        previous = Fees(Wei(live.max_fee), Wei(live.priority_fee))
        fees = compute_bump(self._policy, previous, base_fee)
        if fees is None:
            log.warning(
                "tx.bump_capped nonce=%d tx=%s purpose=%s max_fee=%d cap=%d",
                live.nonce,
                _hex(live.tx_hash),
                live.purpose,
                live.max_fee,
                self._policy.max_fee_cap,
            )
            if not await self._is_known(live.tx_hash):
                await self._rebroadcast(live)
            return
        row = self._sign(_call_of(live.raw), fees, live.purpose, head)
        await self._store.add_pending_tx(row)
        try:
            await self._broadcast(row.raw)
        except RpcUnavailable as exc:
            log.warning("tx.deferred nonce=%d tx=%s error=%s", row.nonce, _hex(row.tx_hash), exc)
            return
        except Exception as exc:
            # Rejected (e.g. the original was mined meanwhile): the original stays live.
            await self._store.mark_tx(row.tx_hash, "failed")
            log.warning(
                "tx.bump_rejected nonce=%d tx=%s replaces=%s error=%s",
                row.nonce,
                _hex(row.tx_hash),
                _hex(live.tx_hash),
                exc,
            )
            return
        log.info(
            "tx.bumped nonce=%d tx=%s replaces=%s purpose=%s max_fee=%d priority_fee=%d",
            row.nonce,
            _hex(row.tx_hash),
            _hex(live.tx_hash),
            row.purpose,
            row.max_fee,
            row.priority_fee,
        )

    async def _rebroadcast(self, row: PendingTx) -> None:
        """Sends the stored bytes again. Errors are logged, never fatal: "already known" and
        "nonce too low" mean the node has it or mined it, which the receipt check settles."""
        try:
            await self._broadcast(row.raw)
        except RpcUnavailable as exc:
            log.warning("tx.deferred nonce=%d tx=%s error=%s", row.nonce, _hex(row.tx_hash), exc)
        except Exception as exc:
            log.info(
                "tx.rebroadcast_refused nonce=%d tx=%s error=%s", row.nonce, _hex(row.tx_hash), exc
            )
        else:
            log.info(
                "tx.rebroadcast nonce=%d tx=%s purpose=%s",
                row.nonce,
                _hex(row.tx_hash),
                row.purpose,
            )

    def _sign(self, params: dict[str, Any], fees: Fees, purpose: str, block: int) -> PendingTx:
        tx = {
            **params,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority_fee,
        }
        signed = self._account.sign_transaction(tx)
        return PendingTx(
            tx_hash=bytes(signed.hash),
            nonce=int(tx["nonce"]),
            raw=bytes(signed.raw_transaction),
            purpose=purpose,
            max_fee=fees.max_fee,
            priority_fee=fees.priority_fee,
            sent_block=block,
            status="pending",
        )

    # ------------------------------------------------------------------ RPC boundary

    async def _broadcast(self, raw: bytes) -> None:
        """Raises RpcUnavailable for transport failures; anything else is the node's answer."""
        async with rpc_guard("eth_sendRawTransaction"):
            await self._w3.eth.send_raw_transaction(raw)

    async def _receipt(self, tx_hash: bytes) -> TxReceipt | None:
        try:
            async with rpc_guard("eth_getTransactionReceipt"):
                return await self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None

    async def _is_known(self, tx_hash: bytes) -> bool:
        try:
            async with rpc_guard("eth_getTransactionByHash"):
                await self._w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            return False
        return True

    async def expected_gas_price(self) -> Wei:
        """What a transaction sent now would pay per gas: the latest base fee plus this node's
        tip, within its fee cap (a job with a lower `maxGasPrice` waits)."""
        block = await self._latest_block()
        base_fee = Wei(int(block["baseFeePerGas"]))
        fees = compute_fees(self._policy, base_fee)
        return Wei(min(fees.max_fee, base_fee + fees.priority_fee))

    async def _latest_block(self) -> Any:
        async with rpc_guard("eth_getBlockByNumber"):
            return await self._w3.eth.get_block("latest")

    async def _head_number(self) -> int:
        async with rpc_guard("eth_blockNumber"):
            return int(await self._w3.eth.block_number)

    async def _nonce_at(self, block: Literal["latest", "pending"]) -> int:
        async with rpc_guard("eth_getTransactionCount"):
            return int(await self._w3.eth.get_transaction_count(self.address, block))

    async def _sync_nonce(self) -> None:
        self._next_nonce = await self._free_nonce()

    async def _free_nonce(self) -> int:
        """Next nonce = past the chain's pending count and every still-pending row we signed.

        Only `pending` rows count: a row rejected outright (`failed` without a receipt) never
        used its nonce, and counting it would leave a gap no later transaction could cross.
        Nor does a counter kept in memory: a reorg can drop a transaction that was mined (anvil
        drops the replaced blocks' transactions), which frees its nonce again, and a nonce past
        the chain's would then wait behind that gap forever.
        """
        chain_pending = await self._nonce_at("pending")
        pending = await self._store.pending_txs("pending")
        ours = max((row.nonce + 1 for row in pending), default=0)
        return max(chain_pending, ours)

    async def _pending_groups(self) -> list[list[PendingTx]]:
        rows = await self._store.pending_txs("pending")
        return [list(g) for _, g in groupby(rows, key=lambda r: r.nonce)]


def _live(group: Sequence[PendingTx]) -> PendingTx:
    """The replacement that counts: the best-paying, latest-sent row of a nonce."""
    return max(group, key=lambda r: (r.max_fee, r.priority_fee, r.sent_block))


def _call_of(raw: bytes) -> dict[str, Any]:
    """The nonce, call and gas of a signed type-2 transaction, without its fees or signature."""
    tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    params: dict[str, Any] = {
        "type": 2,
        "chainId": int(tx["chainId"]),
        "nonce": int(tx["nonce"]),
        "value": int(tx["value"]),
        "data": bytes(tx["data"]),
        "gas": int(tx["gas"]),
    }
    if tx.get("to"):
        params["to"] = checksum_address(bytes(tx["to"]))
    return params


def _hex(value: bytes) -> str:
    return "0x" + value.hex()
