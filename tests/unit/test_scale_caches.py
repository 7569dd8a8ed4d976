"""What keeps a head cheap with thousands of jobs changes no answer: the per-epoch job -> quorum
cache, the remembered Cron next fires, and resolver calls split into bounded JSON-RPC batches."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from web3 import AsyncHTTPProvider, AsyncWeb3

from keeper.chain.reader import ChainReader
from keeper.core.quorum import Member, compute_quorum_of
from keeper.core.triggers import compute_cron_cursor
from keeper.node.context import EpochQuorums, NodeContext, NodeOptions
from keeper.node.cron_calendar import cron_next_fire
from keeper.node.evaluate import CronFires
from keeper.store.db import Epoch, Store

T0 = 1_700_000_000
seeds = st.binary(min_size=32, max_size=32)
job_ids = st.integers(min_value=0, max_value=2**64)


def quorums_of(count: int) -> list[list[Member]]:
    return [[Member("0x" + f"{q + 1:040x}", 10**18)] for q in range(count)]


# ----------------------------------------------------------------------------- job -> quorum


@given(seeds, st.integers(min_value=1, max_value=40), st.lists(job_ids, max_size=30))
def test_cached_quorum_of_a_job_is_the_pure_answer(
    seed: bytes, count: int, jobs: list[int]
) -> None:
    # given the quorums of one epoch
    quorums = EpochQuorums(Epoch(3, seed, count, 100), quorums_of(count))
    # when each job is asked twice (the second answer comes from the cache)
    for job in jobs + jobs:
        view = quorums.for_job(job)
        # then it is exactly compute_quorum_of's quorum
        index = compute_quorum_of(seed, job, count)
        assert (view.index, view.members, view.epoch) == (
            index,
            quorums.quorums[index],
            quorums.epoch,
        )
        assert view.has(view.members[0].address.upper().replace("0X", "0x"))


class EpochStore:
    """The three reads NodeContext makes, from values a test changes."""

    def __init__(self) -> None:
        self.epochs: dict[int, Epoch] = {}
        self.members: dict[int, list[list[Member]]] = {}

    async def latest_epoch(self) -> Epoch | None:
        return self.epochs[max(self.epochs)] if self.epochs else None

    async def epoch(self, number: int) -> Epoch | None:
        return self.epochs.get(number)

    async def quorums(self, number: int) -> list[list[Member]]:
        return [list(q) for q in self.members.get(number, [])]


async def test_node_keeps_an_epochs_quorums_until_the_epoch_changes() -> None:
    store = EpochStore()
    ctx = NodeContext(cast(Any, None), cast(Any, None), cast(Store, store), NodeOptions())
    assert await ctx.epoch_quorums() is None
    # given epoch 1 with three quorums
    store.epochs[1] = Epoch(1, b"\x01" * 32, 3, 10)
    store.members[1] = quorums_of(3)
    first = await ctx.epoch_quorums()
    assert first is not None
    # when asked again at later heads, the same object (and its job cache) serves
    assert await ctx.epoch_quorums() is first
    assert await ctx.epoch_quorums(1) is first
    # when a reorg replaces epoch 1's seed, it is rebuilt
    store.epochs[1] = Epoch(1, b"\x02" * 32, 3, 10)
    second = await ctx.epoch_quorums()
    assert second is not None and second is not first
    assert second.for_job(5).index == compute_quorum_of(b"\x02" * 32, 5, 3)
    # when epoch 2 starts, it is the newest, and epoch 1 is still answered from its cache
    store.epochs[2] = Epoch(2, b"\x03" * 32, 2, 50)
    store.members[2] = quorums_of(2)
    third = await ctx.epoch_quorums()
    assert third is not None and third.epoch.epoch == 2
    assert await ctx.epoch_quorums(1) is second
    for job in range(50):
        view = await ctx.quorum_for(job)
        assert view is not None and view.index == compute_quorum_of(b"\x03" * 32, job, 2)


# ----------------------------------------------------------------------------- Cron next fire

EXPRESSIONS = ["* * * * *", "*/5 * * * *", "0 * * * *", "30 2 * * 1-5", "0 0 1 * 0", "0 0 29 2 *"]
REMEMBERED = CronFires(cron_next_fire)  # shared by every example, so entries are reused


@given(
    st.sampled_from(EXPRESSIONS),
    st.integers(min_value=T0 - 10**6, max_value=T0),
    st.integers(min_value=0, max_value=T0 + 10**6),
    st.integers(min_value=T0, max_value=T0 + 10**7),
    st.sampled_from([0, T0 + 5 * 10**5, T0 + 10**8]),
)
def test_remembered_cron_cursor_is_the_direct_computation(
    expr: str, start: int, last_cursor: int, now_ts: int, end_time: int
) -> None:
    direct = compute_cron_cursor(cron_next_fire(expr), start, now_ts, last_cursor, end_time)
    assert REMEMBERED.cursor(expr, start, now_ts, last_cursor, end_time) == direct
    # asked again at a later check time, from the remembered next fire
    later = now_ts + 3_600
    direct = compute_cron_cursor(cron_next_fire(expr), start, later, last_cursor, end_time)
    assert REMEMBERED.cursor(expr, start, later, last_cursor, end_time) == direct


def test_a_head_where_nothing_is_due_walks_no_schedule() -> None:
    calls: list[int] = []
    hourly = cron_next_fire("0 * * * *")

    def counted(after: int) -> int | None:
        calls.append(after)
        return hourly(after)

    fires = CronFires(lambda _expr: counted)
    last = T0 // 3600 * 3600  # the job just fired on the hour
    assert fires.cursor("0 * * * *", 0, last + 10, last, 0) is None
    assert len(calls) == 1  # the next fire after the cursor, once
    # then every later head before the next hour costs a comparison only
    for now in range(last + 12, last + 3600, 12):
        assert fires.cursor("0 * * * *", 0, now, last, 0) is None
    assert len(calls) == 1
    # and the hour, once it comes, is the cursor
    assert fires.cursor("0 * * * *", 0, last + 3600 + 5, last, 0) == last + 3600


def test_remembered_fires_are_bounded() -> None:
    fires = CronFires(cron_next_fire, limit=8)
    for cursor in range(100):
        assert fires.next_fire("* * * * *", 0, T0 + cursor * 60) == (T0 // 60 + cursor + 1) * 60
    assert len(fires._fires) <= 8


# ----------------------------------------------------------------------------- batches


class BatchProvider(AsyncHTTPProvider):
    """Answers each eth_call of a batch with its own calldata; records the batch sizes."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1")
        self.sizes: list[int] = []

    async def make_batch_request(self, requests: Any) -> Any:
        self.sizes.append(len(requests))
        return [
            {"jsonrpc": "2.0", "id": i, "result": params[0]["data"]}
            for i, (_method, params) in enumerate(requests)
        ]


async def call(reader: ChainReader, targets: Sequence[tuple[str, bytes]], **kw: Any) -> Any:
    return await reader.call_resolvers(targets, 7, **kw)


async def test_resolver_calls_go_in_batches_of_at_most_the_limit() -> None:
    provider = BatchProvider()
    reader = ChainReader(AsyncWeb3(provider))
    targets = [("0x" + "ab" * 20, i.to_bytes(4, "big")) for i in range(250)]
    # when 250 resolvers are due at one block
    raws = await call(reader, targets)
    # then no batch holds more than 100 calls, and the answers keep the targets' order
    assert sorted(provider.sizes, reverse=True) == [100, 100, 50]
    assert raws == [data for _, data in targets]
    # and the node's setting is the limit
    assert NodeOptions().max_rpc_batch == 100
    provider.sizes.clear()
    assert await call(reader, targets[:8], max_batch=3) == [data for _, data in targets[:8]]
    assert sorted(provider.sizes) == [2, 3, 3]


# ----------------------------------------------------------------------------- member batches


class SignAll:
    """A store that takes every signature (the part of Store a batch answer writes to)."""

    async def record_signatures(self, rows: Sequence[Any]) -> list[bool]:
        return [True] * len(rows)


async def test_a_members_batch_items_are_checked_concurrently() -> None:
    from eth_account import Account

    from keeper.core.messages import BatchRequest
    from keeper.core.report import Batch, Domain, Report, recover_batch_signer
    from keeper.monitor.metrics import NodeMetrics
    from keeper.node import member as member_module
    from keeper.node.member import MemberService

    account = Account.create()
    domain = Domain(1, "0x" + "22" * 20)
    ctx = NodeContext(account, domain, cast(Store, SignAll()), NodeOptions())

    async def sync_now(block: int) -> int:
        return block

    service = MemberService(ctx, cast(Any, None), NodeMetrics(), sync_now, lambda: False)
    items = 16
    in_flight = 0
    most = 0
    everyone_waiting = asyncio.Event()

    async def envelope(req: Any, began: float) -> Any:
        return member_module._Envelope(0, (), 9, 0.0)

    async def check_item(req: Any, index: int, envelope: Any, known: Any = None) -> None:
        # Stands in for the item's checks, resolver eth_call included: each waits until all
        # items are in flight at once, which only concurrent checking lets happen.
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == items:
            everyone_waiting.set()
        await asyncio.wait_for(everyone_waiting.wait(), 5)
        in_flight -= 1

    service._check_envelope = envelope  # type: ignore[method-assign]
    service._check_item = check_item  # type: ignore[method-assign]
    report = Report(1, 0, 1, 5, 9, b"\x01" * 32, b"\x02" * 32, account.address, 40)
    batch = Batch.of([Report(**{**report.__dict__, "jobId": job}) for job in range(items)])
    req = BatchRequest.of(account.address, 9, batch, [b""] * items, b"")
    response = await service.handle_batch(req)
    assert most == items
    # and every item is answered, in order, under one signature over all of them
    assert response.results == (True,) * items
    assert response.signature is not None
    assert recover_batch_signer(batch, domain, response.signature) == account.address
