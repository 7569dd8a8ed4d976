"""Follows the chain: new blocks by number and hash, contract events from a persisted cursor,
logs for Event jobs, and reorgs detected by parent hash and rolled back in the store.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.abi import collapse_if_tuple
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from keeper.chain.rpc import rpc_guard
from keeper.core.addresses import checksum_address
from keeper.core.jobs import Job, JobStatus, decode_trigger, is_log_match
from keeper.core.triggers import TriggerKind, compute_event_cursor
from keeper.store.db import ChainEvent, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    """What one `sync` call did: the new local head, and where a reorg rolled back to."""

    head: int
    chain_head: int
    new_blocks: int
    reorg_to: int | None = None


def to_jsonable(value: Any) -> Any:
    """web3's decoded values -> JSON-safe values (bytes as 0x-hex, structs as dicts)."""
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return checksum_address(value)
    return value


Header = tuple[int, bytes, bytes, int]  # number, hash, parent hash, timestamp


def _header(block: Any) -> Header:
    return (
        int(block["number"]),
        bytes(block["hash"]),
        bytes(block["parentHash"]),
        int(block["timestamp"]),
    )


def _extends(header: Header, local: tuple[int, bytes]) -> bool:
    """Whether `header` is the child of the stored head `local` (number, hash)."""
    return header[0] == local[0] + 1 and header[2] == local[1]


@dataclass(frozen=True)
class _EventAbi:
    """One event's ABI, prepared once: what to decode from the topics and from the data."""

    name: str
    indexed: list[dict[str, Any]]
    plain: list[dict[str, Any]]
    plain_types: list[str]


def _name_value(abi_input: Mapping[str, Any], value: Any) -> Any:
    """A decoded value with its struct components named, as web3's event decoding names them."""
    kind = str(abi_input["type"])
    if not kind.startswith("tuple"):
        return value
    if kind != "tuple":  # tuple[] or tuple[k]: name each element
        element = {**abi_input, "type": kind[: kind.rindex("[")]}
        return [_name_value(element, v) for v in value]
    components = abi_input["components"]
    return {str(c["name"]): _name_value(c, v) for c, v in zip(components, value, strict=True)}


def _is_dynamic(kind: str) -> bool:
    return kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("tuple")


class EventDecoder:
    """Decodes logs of the registry and the TaskManager by topic0, from the artifacts' ABIs.

    It decodes with eth-abi directly, not with web3's `get_event_data`: the follower decodes
    every event of every block, and web3's generic path (argument binding, attribute dicts,
    normalizers) cost a millisecond per event. tests/integration/test_follower.py checks both
    give the same arguments for every event the contracts emit.
    """

    def __init__(self, contracts: Sequence[AsyncContract], codec: Any) -> None:
        self._codec = codec
        self._by_topic: dict[tuple[str, bytes], _EventAbi] = {}
        for contract in contracts:
            for item in contract.abi:
                entry: dict[str, Any] = dict(item)
                if entry.get("type") != "event":
                    continue
                topic = bytes(HexBytes(contract.events[str(entry["name"])].topic))
                inputs = [dict(i) for i in entry.get("inputs", [])]
                plain = [i for i in inputs if not i.get("indexed")]
                self._by_topic[(str(contract.address).lower(), topic)] = _EventAbi(
                    name=str(entry["name"]),
                    indexed=[i for i in inputs if i.get("indexed")],
                    plain=plain,
                    plain_types=[collapse_if_tuple(i) for i in plain],
                )
        self.addresses = [str(c.address) for c in contracts]

    def decode_args(self, raw: Any) -> tuple[str, dict[str, Any]] | None:
        """(event name, JSON-safe arguments) of a raw log, or None if it is not ours."""
        topics = raw["topics"]
        if not topics:
            return None
        abi = self._by_topic.get((str(raw["address"]).lower(), bytes(topics[0])))
        if abi is None or len(topics) != len(abi.indexed) + 1:
            return None
        args: dict[str, Any] = {}
        for abi_input, topic in zip(abi.indexed, topics[1:], strict=True):
            kind = str(abi_input["type"])
            # An indexed dynamic value is only its hash in the topic.
            value = bytes(topic) if _is_dynamic(kind) else self._codec.decode([kind], topic)[0]
            args[str(abi_input["name"])] = value
        values = self._codec.decode(abi.plain_types, bytes(raw["data"]))
        for abi_input, value in zip(abi.plain, values, strict=True):
            args[str(abi_input["name"])] = _name_value(abi_input, value)
        return abi.name, to_jsonable(args)

    def decode(self, raw: Any, timestamp: int) -> ChainEvent | None:
        decoded = self.decode_args(raw)
        if decoded is None:
            return None
        name, args = decoded
        return ChainEvent(
            name=name,
            block_number=int(raw["blockNumber"]),
            log_index=int(raw["logIndex"]),
            block_hash=bytes(raw["blockHash"]),
            tx_hash=bytes(raw["transactionHash"]),
            args=args,
            block_timestamp=timestamp,
        )


class ChainFollower:
    """Keeps the store's view of the chain current, one bounded range at a time."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        registry: AsyncContract,
        task_manager: AsyncContract,
        store: Store,
        *,
        start_block: int,
        reorg_depth: int = 12,
        max_range: int = 200,
    ) -> None:
        self._w3 = w3
        self._store = store
        self._decoder = EventDecoder([registry, task_manager], w3.codec)
        self._start_block = start_block
        self._reorg_depth = reorg_depth
        self._max_range = max_range
        self._lock = asyncio.Lock()
        self._chain_head = 0  # the chain's head at the last sync
        self._pushed: Header | None = None  # the newest header pushed since the last sync

    async def resume(self) -> None:
        """After a restart: forget the last `reorg_depth` blocks and learn them again, so a
        reorg that happened while the node was down cannot leave orphaned state behind."""
        head = await self._store.head()
        if head is not None:
            back_to = max(self._start_block - 1, head[0] - self._reorg_depth)
            await self._store.rollback_to(back_to, restart_turns=False)
            log.info("sync.resume from=%d stored_head=%d", back_to, head[0])

    def note_head(self, header: Header) -> None:
        """A header the RPC pushed (keeper.chain.heads): the next sync takes it as the chain's
        latest instead of asking, if it extends the stored head by one block. Anything else (a
        gap, another branch) makes the sync ask the chain as it would without a push."""
        if self._pushed is None or header[0] >= self._pushed[0]:
            self._pushed = header

    async def sync(self, until: int | None = None) -> SyncResult:
        """Applies up to `max_range` new blocks; call repeatedly until `head == chain_head`.

        With `until`, a sync that another caller finished while this one waited for the lock
        (the store already holds block `until`) returns without asking the chain again.
        """
        async with self._lock, rpc_guard("sync"):
            if until is not None:
                local = await self._store.head()
                if local is not None and local[0] >= until:
                    return SyncResult(local[0], max(local[0], self._chain_head), 0)
            result = await self._sync_once()
            self._chain_head = result.chain_head
            return result

    async def _sync_once(self) -> SyncResult:
        # One call for the common cases: nothing new (latest is our head) or one new block
        # that extends our head, which is the whole header range and the reorg check at once.
        local = await self._store.head()
        pushed, self._pushed = self._pushed, None
        if pushed is not None and local is not None and _extends(pushed, local):
            latest = pushed  # the header came with the push: nothing to ask
        else:
            latest = _header(await self._w3.eth.get_block("latest"))
        chain_head = latest[0]
        if local is not None and latest[:2] == local:
            return SyncResult(local[0], chain_head, 0)
        reorg_to: int | None = None
        extends = local is not None and _extends(latest, local)
        if local is not None and not extends:
            reorg_to = await self._check_reorg(local, latest)
            local = await self._store.head()
        first = local[0] + 1 if local else self._start_block
        if first > chain_head:
            return SyncResult(local[0] if local else first - 1, chain_head, 0, reorg_to)
        last = min(chain_head, first + self._max_range - 1)
        headers = [latest] if extends else await self._headers(first, last)
        if local is not None and headers[0][2] != local[1]:
            # The chain moved under us between the reorg check and now: step back, retry later.
            await self._store.rollback_to(local[0] - 1)
            return SyncResult(local[0] - 1, chain_head, 0, local[0] - 1)
        for prev, cur in itertools.pairwise(headers):
            if cur[2] != prev[1]:
                return SyncResult(first - 1, chain_head, 0, reorg_to)
        hashes = {h[0]: h[1] for h in headers}
        stamps = {h[0]: h[3] for h in headers}
        raw_logs = await self._w3.eth.get_logs(
            {"fromBlock": first, "toBlock": last, "address": self._decoder.addresses}  # type: ignore[typeddict-item]
        )
        events: list[ChainEvent] = []
        for raw in raw_logs:
            if bytes(raw["blockHash"]) != hashes.get(int(raw["blockNumber"])):
                return SyncResult(first - 1, chain_head, 0, reorg_to)  # reorg mid-fetch
            event = self._decoder.decode(raw, stamps[int(raw["blockNumber"])])
            if event is not None:
                events.append(event)
        job_logs = await self._event_job_logs(first, last, events, hashes)
        if job_logs is None:
            return SyncResult(first - 1, chain_head, 0, reorg_to)
        await self._store.apply_blocks(headers, events, job_logs)
        if events:
            log.debug("sync.events from=%d to=%d count=%d", first, last, len(events))
        return SyncResult(last, chain_head, last - first + 1, reorg_to)

    async def _headers(self, first: int, last: int) -> list[Header]:
        blocks = await asyncio.gather(*(self._w3.eth.get_block(n) for n in range(first, last + 1)))
        return [_header(b) for b in blocks]

    async def _check_reorg(self, local: tuple[int, bytes], latest: Header) -> int | None:
        """Walks back from the local head to the newest block the chain still has, rolls the
        store back to it and returns its number; None when there was no reorg."""
        number, stored_hash = local
        if number > latest[0]:
            # A lower `latest` whose block we hold with the same hash is a backend lagging
            # behind the one we synced from (load-balanced providers), not a reorg: keep our
            # head. A real reorg shows as a different hash once the chain reaches our height.
            if await self._store.block_hash(latest[0]) == latest[1]:
                log.info("sync.lagging_rpc latest=%d head=%d", latest[0], local[0])
                return None
            number = latest[0]  # the chain got shorter
        elif number == latest[0]:
            if latest[1] == stored_hash:
                return None
        elif bytes((await self._w3.eth.get_block(number))["hash"]) == stored_hash:
            return None
        while number >= self._start_block:
            ours = await self._store.block_hash(number)
            if ours is None:
                break
            theirs = bytes((await self._w3.eth.get_block(number))["hash"])
            if ours == theirs:
                break
            number -= 1
        await self._store.rollback_to(number)
        log.warning("sync.reorg rolled_back_to=%d previous_head=%d", number, local[0])
        return number

    async def _event_job_logs(
        self,
        first: int,
        last: int,
        events: list[ChainEvent],
        hashes: dict[int, bytes],
    ) -> list[tuple[int, int, int, bytes]] | None:
        """(job_id, cursor, block, hash) of logs matching Event jobs, created ones included."""
        jobs: list[tuple[int, int, Any]] = []
        for job in await self._store.jobs():
            if job.kind == TriggerKind.Event and job.status != JobStatus.Cancelled:
                jobs.append((job.job_id, job.created_block, job.trigger))
        for ev in events:
            if ev.name == "JobCreated" and int(ev.args["spec"]["kind"]) == TriggerKind.Event:
                trigger_bytes = bytes.fromhex(str(ev.args["spec"]["trigger"])[2:])
                trigger = decode_trigger(TriggerKind.Event, trigger_bytes)
                jobs.append((int(ev.args["jobId"]), ev.block_number, trigger))
        if not jobs:
            return []
        emitters = sorted({t.emitter for _, _, t in jobs})
        raw_logs = await self._w3.eth.get_logs(
            {"fromBlock": first, "toBlock": last, "address": emitters}
        )
        out: list[tuple[int, int, int, bytes]] = []
        for raw in raw_logs:
            block = int(raw["blockNumber"])
            if bytes(raw["blockHash"]) != hashes.get(block):
                return None
            topics = [bytes(t) for t in raw["topics"]]
            for job_id, created_block, trigger in jobs:
                if block > created_block and is_log_match(trigger, str(raw["address"]), topics):
                    cursor = compute_event_cursor(block, int(raw["logIndex"]))
                    out.append((job_id, cursor, block, bytes(raw["blockHash"])))
        return out


def is_event_job(job: Job) -> bool:
    return job.kind == TriggerKind.Event
