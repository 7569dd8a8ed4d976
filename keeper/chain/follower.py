"""Follows the chain: new blocks by number and hash, contract events from a persisted cursor,
logs for Event jobs, and reorgs detected by parent hash and rolled back in the store.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.abi import collapse_if_tuple
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import BlockNotFound, Web3RPCError
from web3.types import RPCEndpoint

from keeper.chain.jsonrpc import json_provider, parse_fees, request
from keeper.chain.logs import BlockNotYetServed, LogFetcher, LogQuery, sorted_logs
from keeper.chain.rpc import rpc_guard
from keeper.core.abi_words import decode_static_words, is_static_word_type
from keeper.core.addresses import checksum_address
from keeper.core.jobs import ZERO_TOPIC, Job, JobStatus, Trigger, decode_trigger, is_log_match
from keeper.core.serving import Seat, compute_seat, compute_serving_seats, is_job_served
from keeper.core.triggers import TriggerKind, compute_event_cursor, split_event_cursor
from keeper.store.db import ChainEvent, Store

log = logging.getLogger(__name__)

HEADER_BATCH = 100  # eth_getBlockByNumber calls per JSON-RPC batch (hosted providers cap at 100)
# Job events that change whether an Event job's logs are kept (see _job_activity).
_ACTIVITY = {"JobCreated": True, "JobResumed": True, "JobPaused": False, "JobCancelled": False}


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


def _bloom(block: Any) -> bytes:
    bloom = block.get("logsBloom")
    return bytes(HexBytes(bloom)) if bloom is not None else b""


def _raw_block(result: Any) -> tuple[Header, bytes] | None:
    """(header, bloom) of a raw eth_getBlockByNumber result; None for `null` (not there)."""
    if not isinstance(result, Mapping):
        return None
    return (
        (
            int(result["number"], 16),
            bytes(HexBytes(result["hash"])),
            bytes(HexBytes(result["parentHash"])),
            int(result["timestamp"], 16),
        ),
        bytes(HexBytes(result.get("logsBloom") or "0x")),
    )


def _prefix(
    blocks: Sequence[tuple[Header, bytes] | None], numbers: Sequence[int]
) -> list[tuple[Header, bytes]]:
    """The blocks up to the first missing one (or one that is not the number asked)."""
    out: list[tuple[Header, bytes]] = []
    for block, number in zip(blocks, numbers, strict=True):
        if block is None or block[0][0] != number:
            break
        out.append(block)
    return out


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
    words: bool  # every plain type is one word read by hand (keeper.core.abi_words)


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
                    words=all(is_static_word_type(str(i["type"])) for i in plain),
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
            if _is_dynamic(kind):
                value = bytes(topic)
            else:
                read = decode_static_words([kind], bytes(topic))
                value = read[0] if read is not None else self._codec.decode([kind], topic)[0]
            args[str(abi_input["name"])] = value
        data = bytes(raw["data"])
        values = decode_static_words(abi.plain_types, data) if abi.words else None
        if values is None:  # a dynamic type, or a word eth-abi refuses: its answer or its error
            values = self._codec.decode(abi.plain_types, data)
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
        header_batch: int = HEADER_BATCH,
        member: str | None = None,
        on_fees: Callable[[int, int | None, int | None], None] | None = None,
    ) -> None:
        self._w3 = w3
        self._on_fees = on_fees  # the base fee and gas limit of each latest block read
        # The keeper whose quorums' Event jobs are followed; None follows every Event job.
        self._member = member
        self._activity_topics = tuple(
            bytes(HexBytes(task_manager.events[name].topic)) for name in ("JobPaused", "JobResumed")
        )
        self._task_manager = str(task_manager.address)
        self._logs = LogFetcher(w3, max_range)
        self._header_batch = header_batch
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
        reorg that happened while the node was down cannot leave orphaned state behind. Blocks
        the chain calls finalized cannot have been reorged: those are kept."""
        head = await self._store.head()
        if head is not None:
            back_to = max(self._start_block - 1, head[0] - self._reorg_depth)
            finalized = await self.finalized_block()
            if finalized is not None:
                back_to = max(back_to, min(head[0], finalized))
            # Below the store's snapshot nothing can be put back: it would start over.
            back_to = max(back_to, min(head[0], await self._store.snapshot_block()))
            await self._store.rollback_to(back_to, restart_turns=False)
            log.info("sync.resume from=%d stored_head=%d", back_to, head[0])

    async def finalized_block(self) -> int | None:
        """The chain's `finalized` block number, where it has one below `latest`; None where
        it has none (an error), or calls its head final (dev chains such as eth-tester, whose
        snapshots revert it all the same)."""
        try:
            finalized = await self._w3.eth.get_block("finalized")
            latest = await self._w3.eth.get_block("latest")
        except (Web3RPCError, BlockNotFound, ValueError):
            return None
        number = int(finalized["number"])
        return number if number < int(latest["number"]) else None

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
        blooms: dict[int, bytes] = {}
        if pushed is not None and local is not None and _extends(pushed, local):
            latest = pushed  # the header came with the push: nothing to ask (no bloom either)
        else:
            latest, bloom = await self._latest()
            blooms[latest[0]] = bloom
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
        headers = [latest] if extends else await self._headers(first, last, blooms)
        if not headers:
            # The backend that answered has not got block `first` yet (a lagging one behind a
            # load balancer): not a reorg, not an error; the next pass asks again.
            log.info("sync.block_not_served block=%d", first)
            return SyncResult(first - 1, first - 1, 0, reorg_to)
        last = headers[-1][0]
        if local is not None and headers[0][2] != local[1]:
            # The chain moved under us between the reorg check and now: step back, retry later.
            await self._store.rollback_to(local[0] - 1)
            return SyncResult(local[0] - 1, chain_head, 0, local[0] - 1)
        for prev, cur in itertools.pairwise(headers):
            if cur[2] != prev[1]:
                return SyncResult(first - 1, chain_head, 0, reorg_to)
        hashes = {h[0]: h[1] for h in headers}
        stamps = {h[0]: h[3] for h in headers}
        try:
            raw_logs = await self._logs.fetch(
                LogQuery(tuple(self._decoder.addresses)), first, last, hashes, blooms
            )
            events = self._decode_events(raw_logs, hashes, stamps)
            if events is not None and self._member is not None:
                last, events = _end_at_epoch_start(last, events)
            job_logs = (
                None
                if events is None
                else await self._event_job_logs(first, last, events, hashes, blooms)
            )
        except BlockNotYetServed:
            log.info("sync.block_not_served from=%d to=%d", first, last)
            return SyncResult(first - 1, first - 1, 0, reorg_to)
        if events is None or job_logs is None:
            return SyncResult(first - 1, chain_head, 0, reorg_to)  # reorg mid-fetch
        if len(headers) > last - first + 1:  # the pass ended at an epoch's first block
            headers = headers[: last - first + 1]
        await self._store.apply_blocks(headers, events, job_logs)
        if events:
            log.debug("sync.events from=%d to=%d count=%d", first, last, len(events))
        return SyncResult(last, chain_head, last - first + 1, reorg_to)

    def _decode_events(
        self, raw_logs: list[Any], hashes: dict[int, bytes], stamps: dict[int, int]
    ) -> list[ChainEvent] | None:
        """The contracts' events of the range; None if a log is from another branch."""
        events: list[ChainEvent] = []
        for raw in sorted_logs(raw_logs):
            if bytes(raw["blockHash"]) != hashes.get(int(raw["blockNumber"])):
                return None
            event = self._decoder.decode(raw, stamps[int(raw["blockNumber"])])
            if event is not None:
                events.append(event)
        return events

    async def _headers(self, first: int, last: int, blooms: dict[int, bytes]) -> list[Header]:
        """Headers first..last, up to the first one the answering backend does not have (a
        lagging backend answers `null` for a block past its head); their blooms into `blooms`.
        Over HTTP in JSON-RPC batches of `header_batch`, one batch at a time: a catch-up
        costs a request per hundred blocks, not a hundred concurrent requests."""
        numbers = list(range(first, last + 1))
        provider = self._w3.provider
        found: list[tuple[Header, bytes]] = []
        if isinstance(provider, AsyncHTTPProvider):
            i = 0
            while i < len(numbers):
                chunk = numbers[i : i + self._header_batch]
                calls = [(RPCEndpoint("eth_getBlockByNumber"), [hex(n), False]) for n in chunk]
                answers = await provider.make_batch_request(calls)
                if isinstance(answers, list) and len(answers) == len(chunk):
                    parsed = [_raw_block(a.get("result")) for a in answers]
                elif len(chunk) > 1:  # a provider capping batches lower: halve, and keep that
                    self._header_batch = max(1, len(chunk) // 2)
                    log.info(
                        "sync.header_batch_refused size=%d next=%d", len(chunk), self._header_batch
                    )
                    continue
                else:  # no batches at all
                    block = await self._block_or_none(chunk[0])
                    parsed = [None if block is None else (_header(block), _bloom(block))]
                complete = _prefix(parsed, chunk)
                found.extend(complete)
                if len(complete) < len(chunk):
                    break
                i += len(chunk)
        else:
            blocks = await asyncio.gather(
                *(self._block_or_none(n) for n in numbers), return_exceptions=False
            )
            parsed = [None if b is None else (_header(b), _bloom(b)) for b in blocks]
            found = _prefix(parsed, numbers)
        for header, bloom in found:
            blooms[header[0]] = bloom
        return [header for header, _ in found]

    async def _latest(self) -> tuple[Header, bytes]:
        """The latest block's header and bloom (asked at every poll: plain JSON over HTTP)."""
        provider = json_provider(self._w3)
        if provider is None:
            block = await self._w3.eth.get_block("latest")
            return _header(block), _bloom(block)
        result = await request(provider, "eth_getBlockByNumber", ["latest", False])
        found = _raw_block(result)
        if found is None:
            raise BlockNotFound("Block with id: 'latest' not found.")
        if self._on_fees is not None:
            self._on_fees(found[0][0], *parse_fees(result))
        return found

    async def _block_or_none(self, number: int) -> Any:
        try:
            return await self._w3.eth.get_block(number)
        except BlockNotFound:
            return None

    async def _check_reorg(self, local: tuple[int, bytes], latest: Header) -> int | None:
        """Walks back from the local head to the newest block the chain still has, rolls the
        store back to it and returns its number; None when there was no reorg."""
        number, stored_hash = local
        if number > latest[0]:
            # A lower `latest` whose block we hold with the same hash is a backend lagging
            # behind the one we synced from (load-balanced providers), not a reorg: keep our
            # head. A real reorg shows as a different hash once the chain reaches our height.
            held = await self._store.block_hash(latest[0])
            if held is None:  # below what the store holds: does the chain still have our head?
                ours_now = await self._block_or_none(number)
                lagging = ours_now is None or bytes(ours_now["hash"]) == stored_hash
            else:
                lagging = held == latest[1]
            if lagging:
                log.info("sync.lagging_rpc latest=%d head=%d", latest[0], local[0])
                prefer_next = getattr(self._w3.provider, "prefer_next", None)
                if prefer_next is not None:  # several URLs (keeper.chain.pool): try the next
                    prefer_next("lagging")
                return None
            number = latest[0]  # the chain got shorter
        elif number == latest[0]:
            if latest[1] == stored_hash:
                return None
        else:
            ours_now = await self._block_or_none(number)
            if ours_now is None or bytes(ours_now["hash"]) == stored_hash:
                return None  # not served yet by this backend: the header check decides later
        while number >= self._start_block:
            ours = await self._store.block_hash(number)
            if ours is None:
                break
            theirs_block = await self._block_or_none(number)
            if theirs_block is None:
                return None  # a backend without our head's height cannot show a reorg
            if ours == bytes(theirs_block["hash"]):
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
        blooms: dict[int, bytes],
    ) -> list[tuple[int, int, int, bytes]] | None:
        """(job_id, cursor, block, hash) of logs matching Event jobs while they are active.

        A log in block b counts for a job that was active at the end of block b - 1 (created
        before b, and not paused or cancelled since, or resumed). The rule depends on blocks
        only, never on where a sync pass's range began, so every node stores the same logs.
        Only the emitters (and first topics, where every job names one) of jobs active at some
        block of the range are asked for: a paused job on a busy contract costs nothing. With a
        member, only its own quorums' jobs are (another quorum's job costs nothing either), and
        a job it serves from this range on has its logs since its cursor backfilled.
        """
        stored = await self._store.jobs()
        activity = self._job_activity(stored, events)
        backfill: list[tuple[int, int, int, bytes]] = []
        if self._member is not None:
            seats = await self._seats()
            if seats is not None:
                now = compute_serving_seats(seats, first)
                before = compute_serving_seats(seats, first - 1)
                activity = {j: a for j, a in activity.items() if is_job_served(now, j)}
                acquired = [
                    job
                    for job in stored
                    if now != before
                    and job.job_id in activity
                    and not is_job_served(before, job.job_id)
                ]
                if acquired:
                    found = await self._backfill(acquired, first - 1)
                    if found is None:
                        return None
                    backfill = found
        jobs = [(job_id, trigger) for job_id, (trigger, _, changes) in activity.items()]
        wanted = [
            trigger
            for trigger, active, changes in activity.values()
            if active or any(on for _, on in changes)
        ]
        if not wanted:
            return backfill
        emitters = tuple(sorted({t.emitter for t in wanted}))
        topic0s: tuple[bytes, ...] | None = tuple(sorted({t.topics[0] for t in wanted}))
        if topic0s is not None and ZERO_TOPIC in topic0s:
            topic0s = None  # a job takes any first topic: filter by emitter only
        raw_logs = await self._logs.fetch(LogQuery(emitters, topic0s), first, last, hashes, blooms)
        out = backfill
        for raw in sorted_logs(raw_logs):
            block = int(raw["blockNumber"])
            if bytes(raw["blockHash"]) != hashes.get(block):
                return None
            topics = [bytes(t) for t in raw["topics"]]
            for job_id, trigger in jobs:
                if not _is_active_before(activity[job_id], block):
                    continue
                if is_log_match(trigger, str(raw["address"]), topics):
                    cursor = compute_event_cursor(block, int(raw["logIndex"]))
                    out.append((job_id, cursor, block, bytes(raw["blockHash"])))
        return out

    async def _seats(self) -> list[Seat] | None:
        """This member's seats in the newest three epochs the store holds (enough to tell what
        it served at the pass's first block and the block before); None while an epoch's
        quorums are not all stored, which follows every job rather than guess."""
        assert self._member is not None
        latest = await self._store.latest_epoch()
        if latest is None:
            return []
        seats: list[Seat] = []
        for number in range(latest.epoch, max(0, latest.epoch - 3), -1):
            epoch = await self._store.epoch(number)
            if epoch is None:
                continue
            quorums = await self._store.quorums(number)
            if len(quorums) != epoch.count:
                return None
            seats.append(
                compute_seat(epoch.epoch, epoch.start_block, epoch.seed, quorums, self._member)
            )
        return seats

    async def _backfill(
        self, jobs: Sequence[Job], upto: int
    ) -> list[tuple[int, int, int, bytes]] | None:
        """The logs of Event jobs this member serves from block `upto + 1` on, from each job's
        cursor block to `upto`: the logs the job's previous quorum held and has not executed.

        Only the blocks of the stored header window (`keep_blocks` below `upto`) have their
        headers read again (in batches), for their hashes and blooms: a lagging backend answers
        eth_getLogs empty only near the head, and a block deeper than the window is below any
        reorg the follower can see, so there the eth_getLogs answers stand as they come (a quiet
        emitter's month-old cursor costs the window's headers, not one request per 100 blocks of
        the month). The pauses and resumes of the range come with the logs, so the activity rule
        (a log counts when the job was active at the end of the block before) is applied as a
        node that followed the job all along applied it. None when the chain moved under the
        range (the pass is retried)."""
        starts = {job.job_id: split_event_cursor(job.last_cursor)[0] for job in jobs}
        low = max(self._start_block, min(starts.values()))
        if low > upto:
            return []
        # "Final enough" is the stored header window (the store's keep_blocks, 256), not
        # `reorg_depth`: reorgs are found by walking back over stored headers, and the snapshot
        # trails the head by as much.
        checked_from = max(low, upto - self._store.chain.keep_blocks)
        blooms = _WindowBlooms(checked_from)
        headers = await self._headers(checked_from, upto, blooms.checked)
        if not headers or headers[-1][0] != upto:
            raise BlockNotYetServed(f"block {upto} for a backfill")
        for prev, cur in itertools.pairwise(headers):
            if cur[2] != prev[1]:
                return None
        if headers[-1][1] != await self._store.block_hash(upto):
            return None  # another branch than the store's: a reorg the next pass finds
        hashes = {h[0]: h[1] for h in headers}
        triggers = [job.trigger for job in jobs]
        topic0s: tuple[bytes, ...] | None = tuple(
            sorted({t.topics[0] for t in triggers} | set(self._activity_topics))
        )
        if ZERO_TOPIC in {t.topics[0] for t in triggers}:
            topic0s = None
        emitters = tuple(sorted({t.emitter for t in triggers} | {self._task_manager}))
        raw_logs = await self._logs.fetch(LogQuery(emitters, topic0s), low, upto, hashes, blooms)
        ordered = sorted_logs(raw_logs)
        changes: dict[int, list[tuple[int, bool]]] = {job.job_id: [] for job in jobs}
        paused, resumed = self._activity_topics
        for raw in ordered:
            topics = [bytes(t) for t in raw["topics"]]
            if str(raw["address"]).lower() != self._task_manager.lower() or len(topics) < 2:
                continue
            if topics[0] in (paused, resumed):
                job_id = int.from_bytes(topics[1], "big")
                if job_id in changes:
                    changes[job_id].append((int(raw["blockNumber"]), topics[0] == resumed))
        out: list[tuple[int, int, int, bytes]] = []
        for job in jobs:
            moves = changes[job.job_id]
            # Active at `low` unless its first change in the range is a resume.
            active = not moves[0][1] if moves else job.status == JobStatus.Active
            activity = (job.trigger, active, moves)
            for raw in ordered:
                block = int(raw["blockNumber"])
                if block >= checked_from and bytes(raw["blockHash"]) != hashes.get(block):
                    return None
                topics = [bytes(t) for t in raw["topics"]]
                cursor = compute_event_cursor(block, int(raw["logIndex"]))
                if cursor <= job.last_cursor or not _is_active_before(activity, block):
                    continue
                if is_log_match(job.trigger, str(raw["address"]), topics):
                    out.append((job.job_id, cursor, block, bytes(raw["blockHash"])))
        log.info("sync.backfill jobs=%d from=%d to=%d logs=%d", len(jobs), low, upto, len(out))
        return out

    @staticmethod
    def _job_activity(
        stored: Sequence[Job], events: Sequence[ChainEvent]
    ) -> dict[int, tuple[Trigger, bool, list[tuple[int, bool]]]]:
        """Per Event job: (trigger, active before the range, [(block, active after it)])."""
        activity: dict[int, tuple[Trigger, bool, list[tuple[int, bool]]]] = {}
        for job in stored:
            if job.kind == TriggerKind.Event and job.status != JobStatus.Cancelled:
                activity[job.job_id] = (job.trigger, job.status == JobStatus.Active, [])
        for ev in events:
            on = _ACTIVITY.get(ev.name)
            if on is None:
                continue
            job_id = int(ev.args["jobId"])
            if ev.name == "JobCreated":
                if int(ev.args["spec"]["kind"]) != TriggerKind.Event:
                    continue
                trigger_bytes = bytes.fromhex(str(ev.args["spec"]["trigger"])[2:])
                activity[job_id] = (decode_trigger(TriggerKind.Event, trigger_bytes), False, [])
            if job_id in activity:
                activity[job_id][2].append((ev.block_number, on))
        return activity


class _WindowBlooms(Mapping[int, bytes]):
    """A backfill's blooms for LogFetcher: those of the headers read again from `checked_from`
    on, and none below it (no usable bloom: the eth_getLogs answer for those blocks stands)."""

    def __init__(self, checked_from: int) -> None:
        self.checked_from = checked_from
        self.checked: dict[int, bytes] = {}

    def __getitem__(self, number: int) -> bytes:
        if number < self.checked_from:
            return b""
        return self.checked[number]

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and (number < self.checked_from or number in self.checked)

    def __iter__(self) -> Iterator[int]:
        return iter(self.checked)

    def __len__(self) -> int:
        return len(self.checked)


def _end_at_epoch_start(last: int, events: list[ChainEvent]) -> tuple[int, list[ChainEvent]]:
    """The range cut at the first block that starts an epoch, and its events: the pass learns
    the new quorums with that block, and the next one follows (and backfills) their jobs."""
    starts = [ev.block_number for ev in events if ev.name == "EpochStarted"]
    if not starts or min(starts) >= last:
        return last, events
    cut = min(starts)
    return cut, [ev for ev in events if ev.block_number <= cut]


def _is_active_before(activity: tuple[Trigger, bool, list[tuple[int, bool]]], block: int) -> bool:
    """Whether the job was active at the end of block `block - 1`."""
    _, active, changes = activity
    for at, on in changes:  # in chain order
        if at >= block:
            break
        active = on
    return active


def is_event_job(job: Job) -> bool:
    return job.kind == TriggerKind.Event
