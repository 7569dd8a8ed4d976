"""The node's only transaction signer: nonces, fees, replacement when stuck, cancellation when
doomed, a limit on transactions in flight, and a store-backed outbox so that a restart neither
loses nor repeats a transaction.

Every signed transaction is written to the store BEFORE it is broadcast. A crash after the write
leaves a row the next `start` re-broadcasts byte for byte (same hash, so the chain can include
it at most once); a crash before it leaves nothing, and the nonce was never used. Fees come from
the pure policy in `keeper.core.fees`; this module only feeds it the latest base fee and the
recent blocks' tips (`eth_feeHistory`, read once per block; `eth_gasPrice` on a node without
it). A chain whose blocks carry no base fee gets legacy (type-0) transactions, and their
replacements are legacy too.

A pending transaction that can no longer succeed (the `doom_check` the node gives says why, e.g.
its round was executed by another keeper, its epoch rotated, its keeper already slashed) is
never bumped or re-sent: a 0-value self-send at the least replacement price takes its nonce,
which costs 21,000 gas instead of a revert.

Rows of one nonce are the original and its replacements; the one paying the most is the live
one. Once any of them is mined the rest are marked `replaced`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

from eth_account._utils.legacy_transactions import Transaction as LegacyTransaction
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound, Web3Exception

from keeper.chain.jsonrpc import block_fees, receipt, send_raw_transaction, transaction_count
from keeper.chain.rpc import rpc_guard
from keeper.core.addresses import checksum_address
from keeper.core.fees import (
    FEE_HISTORY_BLOCKS,
    FeePolicy,
    Fees,
    compute_bump,
    compute_cancel,
    compute_fees,
    compute_priority_fee,
    compute_priority_fee_from_gas_price,
    is_stuck,
)
from keeper.core.types import BlockNumber, Wei
from keeper.errors import ConfigError, RpcUnavailable, TooManyInFlight, TransactionFailed
from keeper.store.db import PendingTx, Store

log = logging.getLogger(__name__)

# How far below the newest block noted fees are kept (base_fee_at asks for the head).
KNOWN_FEE_BLOCKS = 16

DEFAULT_MAX_IN_FLIGHT = 16
SELF_SEND_GAS = 21_000
CANCEL_PREFIX = "cancel:"
"""Purpose of the self-send that frees a doomed transaction's nonce: `cancel:<its purpose>`."""

DoomCheck = Callable[[str, str | None, bytes, int], Awaitable[str | None]]
"""(purpose, to, calldata, head) -> why a transaction still pending at `head` can no longer
succeed, or None while it can."""


@dataclass(frozen=True)
class Market:
    """What the chain asks at one block: its base fee (None on a chain without EIP-1559) and
    the tip the policy takes from the recent blocks."""

    block: int
    base_fee: Wei | None
    tip: Wei


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
    replacement is never built while a send of the same account is half done. At most
    `max_in_flight` nonces are pending at once: past that, `send` raises TooManyInFlight.
    """

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        account: LocalAccount,
        store: Store,
        policy: FeePolicy,
        chain_id: int,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        doom_check: DoomCheck | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ConfigError(f"max in flight must be at least 1, got {max_in_flight}")
        self._w3 = w3
        self._account = account
        self._store = store
        self._policy = policy
        self._chain_id = chain_id
        self._max_in_flight = max_in_flight
        self._doom_check = doom_check
        self._lock = asyncio.Lock()
        self._next_nonce: int | None = None
        self._market_cache: Market | None = None
        # (block, base fee, gas limit) of the last block read for its base fee
        self._base_fee_cache: tuple[int, Wei | None, int | None] | None = None
        # Blocks' fees a pushed head or the follower's read already brought (`note_fees`).
        self._known_fees: dict[int, tuple[int | None, int | None]] = {}
        self._history_unavailable = False  # the node refused eth_feeHistory: eth_gasPrice
        self._gas_price_warned = False

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address  # eth-account keeps it in checksum form

    @property
    def policy(self) -> FeePolicy:
        return self._policy

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    def has_room(self, pending: Sequence[PendingTx]) -> bool:
        """True while the store's `pending` rows hold fewer nonces than `max_in_flight`, i.e.
        a send would be taken."""
        return _in_flight(pending) < self._max_in_flight

    def bound_by_contract(self, gas_price_cap: Wei, max_priority_fee: Wei) -> None:
        """Holds billed offers to the TaskManager's bounds (read once at start): a tip above
        its `maxPriorityFee` or a price above its `gasPriceCap` is not billed to the job."""
        self._policy = self._policy.bounded_by_contract(gas_price_cap, max_priority_fee)
        self._market_cache = None
        policy = self._policy
        log.info(
            "tx.fee_limits fee_cap=%d node_cap=%d contract_cap=%d tip_floor=%d tip_cap=%d "
            "contract_max_tip=%d percentile=%s",
            policy.fee_cap,
            policy.max_fee_cap,
            gas_price_cap,
            policy.priority_fee_floor,
            policy.tip_cap,
            max_priority_fee,
            policy.priority_fee_percentile,
        )
        if policy.priority_fee_floor > policy.tip_cap:
            log.warning(
                "tx.tip_floor_above_cap floor=%d tip_cap=%d: tips are held to the cap, which "
                "a chain with a higher minimum tip will not include",
                policy.priority_fee_floor,
                policy.tip_cap,
            )

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
        """Signs and broadcasts a transaction (type 2, or legacy on a chain without a base
        fee); returns its hash.

        With `max_in_flight` nonces already pending it raises TooManyInFlight and signs
        nothing. The row is stored before the broadcast. If the RPC is unreachable the
        transaction stays pending and `poll` re-broadcasts it; if the node rejects it outright
        the row is marked failed, the nonce is given back, and TransactionFailed is raised.
        """
        async with self._lock:
            pending = await self._store.pending_txs("pending")
            if not self.has_room(pending):
                raise TooManyInFlight(
                    f"{purpose}: {_in_flight(pending)} transactions in flight, "
                    f"the limit is {self._max_in_flight}"
                )
            market = await self._market()
            nonce = await self._free_nonce(pending)
            fees = compute_fees(self._policy, market.base_fee, market.tip)
            params: dict[str, Any] = {
                "chainId": self._chain_id,
                "nonce": nonce,
                "to": checksum_address(to),
                "value": value,
                "data": data,
                "gas": gas,
            }
            row = self._sign(params, fees, purpose, market.block, legacy=market.base_fee is None)
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
        """Follows every pending transaction at `head`: settles mined ones, cancels doomed ones
        (a self-send takes the nonce), replaces stuck ones with higher fees, and re-broadcasts
        ones the node does not know (after an outage)."""
        async with self._lock:
            outcomes: list[TxOutcome] = []
            chain_nonce: int | None = None
            market: Market | None = None
            for group in await self._pending_groups():
                if chain_nonce is None:
                    chain_nonce = await self._nonce_at("latest")
                live = _live(group)
                stuck = is_stuck(BlockNumber(live.sent_block), BlockNumber(head), self._policy)
                outcome = await self._settle(group, chain_nonce, consumed_is_final=stuck)
                if outcome is not None:
                    outcomes.append(outcome)
                    continue
                if live.nonce < chain_nonce:
                    continue  # used on chain, receipt not visible yet: wait for it
                doom = await self._doom_of(live, head)
                if doom is not None:
                    market = market or await self._market()
                    await self._cancel(live, head, market, doom)
                elif stuck:
                    market = market or await self._market()
                    await self._bump(live, head, market)
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

    async def _doom_of(self, live: PendingTx, head: int) -> str | None:
        """Why `live` can no longer succeed, per the node's check; a self-send never is."""
        if self._doom_check is None or live.purpose.startswith(CANCEL_PREFIX):
            return None
        params, _ = _call_of(live.raw)
        return await self._doom_check(live.purpose, params.get("to"), params["data"], head)

    async def _bump(self, live: PendingTx, head: int, market: Market) -> None:
        """Replaces a stuck transaction: same nonce, call and gas, higher fees (persist first).
        A stuck self-send is replaced by another at the least replacement price."""
        params, legacy = _call_of(live.raw)
        previous = Fees(Wei(live.max_fee), Wei(live.priority_fee))
        base_fee = _base_fee_for(market, legacy)
        if live.purpose.startswith(CANCEL_PREFIX):
            fees = compute_cancel(self._policy, previous, base_fee, market.tip)
        else:
            fees = compute_bump(self._policy, previous, base_fee, market.tip)
        if fees is None:
            log.warning(
                "tx.bump_capped nonce=%d tx=%s purpose=%s max_fee=%d priority_fee=%d "
                "fee_cap=%d tip_cap=%d",
                live.nonce,
                _hex(live.tx_hash),
                live.purpose,
                live.max_fee,
                live.priority_fee,
                self._policy.fee_cap,
                self._policy.tip_cap,
            )
            if not await self._is_known(live.tx_hash):
                await self._rebroadcast(live)
            return
        row = self._sign(params, fees, live.purpose, head, legacy=legacy)
        await self._replace(live, row, "tx.bumped")

    async def _cancel(self, live: PendingTx, head: int, market: Market, reason: str) -> None:
        """Frees the nonce of a transaction that can no longer succeed: a 0-value self-send at
        the least price the pool takes as its replacement (a fresh one if the node has lost
        the original). It is never bumped or re-sent itself."""
        _, legacy = _call_of(live.raw)
        previous = Fees(Wei(live.max_fee), Wei(live.priority_fee))
        base_fee = _base_fee_for(market, legacy)
        fees = compute_cancel(self._policy, previous, base_fee, market.tip)
        if fees is None and not await self._is_known(live.tx_hash):
            fees = compute_fees(self._policy, base_fee, market.tip)
        if fees is None:
            log.warning(
                "tx.cancel_capped nonce=%d tx=%s purpose=%s reason=%s max_fee=%d cap=%d",
                live.nonce,
                _hex(live.tx_hash),
                live.purpose,
                reason,
                live.max_fee,
                self._policy.max_fee_cap,
            )
            return
        self_send = {
            "chainId": self._chain_id,
            "nonce": live.nonce,
            "to": self.address,
            "value": 0,
            "data": b"",
            "gas": SELF_SEND_GAS,
        }
        row = self._sign(self_send, fees, CANCEL_PREFIX + live.purpose, head, legacy=legacy)
        await self._replace(live, row, f"tx.cancelled reason={reason}")

    async def _replace(self, live: PendingTx, row: PendingTx, event: str) -> None:
        """Persists and broadcasts `row`, a replacement of `live` at the same nonce."""
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
                "tx.replacement_rejected nonce=%d tx=%s replaces=%s error=%s",
                row.nonce,
                _hex(row.tx_hash),
                _hex(live.tx_hash),
                exc,
            )
            return
        log.info(
            "%s nonce=%d tx=%s replaces=%s purpose=%s max_fee=%d priority_fee=%d",
            event,
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

    def _sign(
        self, params: dict[str, Any], fees: Fees, purpose: str, block: int, *, legacy: bool
    ) -> PendingTx:
        """Signs `params` with `fees`: as a legacy transaction (`gasPrice`, EIP-155) or type 2.
        The row stores a legacy transaction's gas price in both fee columns."""
        tx: dict[str, Any]
        if legacy:
            tx = {**params, "gasPrice": fees.max_fee}
        else:
            tx = {
                **params,
                "type": 2,
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
            await send_raw_transaction(self._w3, raw)

    async def _receipt(self, tx_hash: bytes) -> dict[str, int] | None:
        """Status, block number and gas used of a mined transaction; None while not mined."""
        async with rpc_guard("eth_getTransactionReceipt"):
            return await receipt(self._w3, tx_hash)

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
        market = await self._market()
        fees = compute_fees(self._policy, market.base_fee, market.tip)
        if market.base_fee is None:
            return fees.max_fee
        return Wei(min(fees.max_fee, market.base_fee + fees.priority_fee))

    async def _market(self) -> Market:
        """The latest block's base fee and the policy's tip, with one `eth_feeHistory` (or, on
        a node without it, one `eth_gasPrice`) per block however many transactions it sees
        sent."""
        block = await self._latest_block()
        number = int(block["number"])
        cached = self._market_cache
        if cached is not None and cached.block == number:
            return cached
        raw_base_fee = block.get("baseFeePerGas")
        base_fee = None if raw_base_fee is None else Wei(int(raw_base_fee))
        history = await self._fee_history()
        if history is not None:
            tip = compute_priority_fee(self._policy, *history)
        else:
            gas_price = await self._gas_price()
            if gas_price is None:
                tip = compute_priority_fee(self._policy, [], [])
            else:
                tip = compute_priority_fee_from_gas_price(self._policy, gas_price, base_fee)
        self._market_cache = Market(number, base_fee, tip)
        return self._market_cache

    async def _fee_history(self) -> tuple[list[int], list[float]] | None:
        """Each recent block's tip at the policy's percentile, and how full it was; None from
        a node without `eth_feeHistory` (it is not asked again)."""
        if self._history_unavailable:
            return None
        try:
            async with rpc_guard("eth_feeHistory"):
                history = await self._w3.eth.fee_history(
                    FEE_HISTORY_BLOCKS, "latest", [self._policy.priority_fee_percentile]
                )
        except (Web3Exception, ValueError) as exc:
            self._history_unavailable = True
            log.warning("tx.fee_history_unavailable error=%s: pricing from eth_gasPrice", exc)
            return None
        rewards = [int(r[0]) if r else 0 for r in history.get("reward") or []]
        return rewards, [float(x) for x in history.get("gasUsedRatio") or []]

    async def _gas_price(self) -> int | None:
        """The node's `eth_gasPrice`, the fallback where it has no fee history; None (tip the
        floor) from a node that has neither."""
        try:
            async with rpc_guard("eth_gasPrice"):
                return int(await self._w3.eth.gas_price)
        except (Web3Exception, ValueError) as exc:
            if not self._gas_price_warned:
                self._gas_price_warned = True
                log.warning("tx.gas_price_unavailable error=%s: tipping the floor", exc)
            return None

    async def base_fee_at(self, block_number: int) -> Wei | None:
        """The base fee of block `block_number` (None on a chain without one), one read per
        block: the contract's minimum balance follows it."""
        cached = self._base_fee_cache
        if cached is not None and cached[0] == block_number:
            return cached[1]
        known = self._known_fees.get(block_number)
        if known is not None:
            fee, limit = known
        else:
            async with rpc_guard("eth_getBlockByNumber"):
                fee, limit = await block_fees(self._w3, block_number)
        base_fee = None if fee is None else Wei(fee)
        self._base_fee_cache = (block_number, base_fee, limit)
        return base_fee

    def note_fees(self, block_number: int, base_fee: int | None, gas_limit: int | None) -> None:
        """A block's base fee and gas limit as its pushed head or the follower's read of it
        brought them: `base_fee_at` then reads no block for it (one RPC a head less)."""
        self._known_fees[block_number] = (base_fee, gas_limit)
        for number in [n for n in self._known_fees if n < block_number - KNOWN_FEE_BLOCKS]:
            del self._known_fees[number]

    @property
    def block_gas_limit(self) -> int | None:
        """The gas limit of the last block `base_fee_at` read (None before any): free to ask,
        the same read brought it."""
        cached = self._base_fee_cache
        return None if cached is None else cached[2]

    async def _latest_block(self) -> Any:
        async with rpc_guard("eth_getBlockByNumber"):
            return await self._w3.eth.get_block("latest")

    async def _head_number(self) -> int:
        async with rpc_guard("eth_blockNumber"):
            return int(await self._w3.eth.block_number)

    async def _nonce_at(self, block: Literal["latest", "pending"]) -> int:
        async with rpc_guard("eth_getTransactionCount"):
            return await transaction_count(self._w3, self.address, block)

    async def _sync_nonce(self) -> None:
        self._next_nonce = await self._free_nonce()

    async def _free_nonce(self, pending: Sequence[PendingTx] | None = None) -> int:
        """Next nonce = past the chain's pending count and every still-pending row we signed.

        Only `pending` rows count: a row rejected outright (`failed` without a receipt) never
        used its nonce, and counting it would leave a gap no later transaction could cross.
        Nor does a counter kept in memory: a reorg can drop a transaction that was mined (anvil
        drops the replaced blocks' transactions), which frees its nonce again, and a nonce past
        the chain's would then wait behind that gap forever.
        """
        chain_pending = await self._nonce_at("pending")
        if pending is None:
            pending = await self._store.pending_txs("pending")
        ours = max((row.nonce + 1 for row in pending), default=0)
        return max(chain_pending, ours)

    async def _pending_groups(self) -> list[list[PendingTx]]:
        rows = await self._store.pending_txs("pending")
        return [list(g) for _, g in groupby(rows, key=lambda r: r.nonce)]


def _live(group: Sequence[PendingTx]) -> PendingTx:
    """The replacement that counts: the best-paying, latest-sent row of a nonce."""
    return max(group, key=lambda r: (r.max_fee, r.priority_fee, r.sent_block))


def _in_flight(pending: Sequence[PendingTx]) -> int:
    """Nonces among `pending` rows (an original and its replacements hold one)."""
    return len({row.nonce for row in pending})


def _base_fee_for(market: Market, legacy: bool) -> Wei | None:
    """The base fee to price a replacement with: none for a legacy transaction, which stays
    legacy; zero for a type-2 one on a chain that stopped reporting one."""
    if legacy:
        return None
    return market.base_fee if market.base_fee is not None else Wei(0)


def _is_legacy(raw: bytes) -> bool:
    """A legacy transaction is an RLP list (first byte >= 0xc0); a typed one starts with its
    type byte (EIP-2718)."""
    return raw[0] >= 0xC0


def _call_of(raw: bytes) -> tuple[dict[str, Any], bool]:
    """The nonce, call and gas of a signed transaction, without its fees or signature, and
    whether it is legacy."""
    if _is_legacy(raw):
        legacy = LegacyTransaction.from_bytes(HexBytes(raw)).as_dict()
        v = int(legacy["v"])
        call: dict[str, Any] = {
            "nonce": int(legacy["nonce"]),
            "value": int(legacy["value"]),
            "data": bytes(legacy["data"]),
            "gas": int(legacy["gas"]),
        }
        if v >= 35:  # EIP-155: v = 2 * chainId + 35 or 36
            call["chainId"] = (v - 35) // 2
        if legacy.get("to"):
            call["to"] = checksum_address(bytes(legacy["to"]))
        return call, True
    tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    params: dict[str, Any] = {
        "chainId": int(tx["chainId"]),
        "nonce": int(tx["nonce"]),
        "value": int(tx["value"]),
        "data": bytes(tx["data"]),
        "gas": int(tx["gas"]),
    }
    if tx.get("to"):
        params["to"] = checksum_address(bytes(tx["to"]))
    return params, False


def _hex(value: bytes) -> str:
    return "0x" + value.hex()
