"""A keeper asks its provider for the logs of its own quorums' Event jobs only, and still executes,
exactly once, a log emitted before a rotation moved the job to its quorum.

Protocol, follower: log queries carry the active Event jobs of the quorums the node sits in, in
the epoch started before the block (and the previous one through its grace period); a job the
node serves from a rotation on has its logs since its cursor backfilled, reading again only the
stored header window's headers however long the job's emitter was quiet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from eth_utils.crypto import keccak

from keeper.chain.follower import ChainFollower
from keeper.chain.rpc import connect, disconnect
from keeper.core.quorum import compute_quorum_of
from keeper.core.triggers import compute_event_cursor
from keeper.store.chain_state import KEEP_BLOCKS
from tests.anvil import AnvilChain, AnvilProcess
from tests.harness import (
    ETHER,
    EVENT,
    TIME,
    Net,
    event_trigger,
    make_net,
    network_params,
    selector,
    time_trigger,
)
from tests.integration.store_support import read_table
from tests.integration.test_follower import create_event_job, emit_demo
from tests.node.support import DEMO_EVENT, assert_exactly_once, executions_after
from tests.nodes import Network, start_network
from tests.provider import ProviderEmulator

KEY = "5eed0123456789abcdef77"
OTHER_EVENT = keccak(text="NeverEmitted(uint256)")


@pytest.fixture
async def two_quorums() -> AsyncIterator[Net]:
    """Four keepers of equal stake on anvil, in epoch 1's two quorums of two."""
    anvil = AnvilProcess(accounts=6)
    net: Net | None = None
    try:
        net = await make_net(
            keepers=4, params=network_params(target_quorum_size=2), chain=AnvilChain(anvil, 6)
        )
        await net.register_keepers([ETHER] * 4)
        await net.rotate()
        yield net
    finally:
        if net is not None:
            await disconnect(net.w3)
        anvil.stop()


async def create_event_jobs_on_both_sides(net: Net, member: str) -> tuple[int, int]:
    """An Event job on DemoEvent in `member`'s quorum and one on OTHER_EVENT in the other
    (job ids are assigned in turn: a Time job takes an id whose side is already covered)."""
    seed = bytes(await net.registry.functions.epochSeed(1).call())
    quorums = await net.quorums(1)
    (mine,) = [i for i, q in enumerate(quorums) if member in {m.address for m in q}]
    made: dict[bool, int] = {}
    while len(made) < 2:
        next_id = int(await net.tm.functions.nextJobId().call())
        ours = compute_quorum_of(seed, next_id, len(quorums)) == mine
        if ours in made:
            await net.create_job(net.spec(TIME, time_trigger(3600), selector("onTime()")))
            continue
        topic = DEMO_EVENT if ours else OTHER_EVENT
        trigger = event_trigger(net.target.address, [topic])
        made[ours] = await net.create_job(net.spec(EVENT, trigger, selector("onEvent()")))
    return made[True], made[False]


async def test_an_event_job_of_another_quorum_costs_no_log_query(
    two_quorums: Net, tmp_path: Path
) -> None:
    net = two_quorums
    me = net.keepers[0].address
    # given an Event job in this keeper's quorum and one (on another first topic) in the other
    mine, theirs = await create_event_jobs_on_both_sides(net, me)
    # and this keeper's follower behind a hosted provider's emulator that counts log filters
    rpc = ProviderEmulator(str(net.chain.anvil.url), KEY, per_second=1000, burst=1000)  # type: ignore[attr-defined]
    await rpc.start()
    store = await net.open_store(tmp_path / "keeper.db", me)
    w3 = connect(rpc.url, lean=True)
    follower = ChainFollower(
        w3, net.registry, net.tm, store, start_block=net.deployment.block, member=me
    )
    try:
        # when the follower catches up, then follows the emitter's logs block by block
        wanted = []
        for tag in range(4):
            receipt = await net.tx(net.target.functions.emitDemo(tag, 1), net.owner)
            (log,) = [r for r in receipt["logs"] if bytes(r["topics"][0]) == DEMO_EVENT]
            wanted.append(compute_event_cursor(log["blockNumber"], log["logIndex"]))
            for _ in range(50):
                result = await follower.sync()
                if result.head >= await net.block_number():
                    break
        # then the provider saw log queries for this quorum's job's topic, never the other's
        assert rpc.log_topics["0x" + DEMO_EVENT.hex()] > 0
        assert rpc.log_topics["0x" + OTHER_EVENT.hex()] == 0
        # and this quorum's job has every log
        rows = read_table(tmp_path / "keeper.db", "job_logs")
        assert sorted(int(r[1]) for r in rows if r[0] == mine) == wanted
        assert [r for r in rows if r[0] == theirs] == []
    finally:
        await disconnect(w3)
        await store.close()
        await rpc.stop()


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    """Keepers 0 and 1 in epoch 1's one quorum; nodes 2 and 3 join later."""
    network = await start_network(tmp_path, stakes=(ETHER, ETHER))
    yield network
    await network.stop()


def held_logs(network: Network, i: int, job_id: int) -> list[int]:
    return sorted(int(r[1]) for r in read_table(network.db_path(i), "job_logs") if r[0] == job_id)


async def test_a_log_from_before_a_rotation_runs_once_on_the_new_quorum(
    network: Network,
) -> None:
    net = network.net
    # given an Event job with 64 confirmations (the most there is) in quorum {0, 1}, and a log
    trigger = event_trigger(net.target.address, [DEMO_EVENT], confirmations=64)
    job_id = await net.create_job(net.spec(EVENT, trigger, selector("onEvent()")))
    await network.step(2)
    receipt = await net.tx(net.target.functions.emitDemo(7, 1), net.owner)
    (log,) = [r for r in receipt["logs"] if bytes(r["topics"][0]) == DEMO_EVENT]
    cursor = compute_event_cursor(log["blockNumber"], log["logIndex"])
    await network.step(2)
    # and nodes 2 and 3 joining, while 0 and 1 ask to leave
    for i in (2, 3):
        node = await network.start_node(i)
        await net.register(net.keepers[i], ETHER, node.endpoint)
    await network.step(2)
    for i in (0, 1):
        await net.tx(net.registry.functions.requestExit(), net.keepers[i])
    # then the serving nodes hold the log and the newcomers, in no quorum yet, do not
    assert held_logs(network, 0, job_id) == [cursor]
    assert held_logs(network, 2, job_id) == held_logs(network, 3, job_id) == []

    # when the nodes rotate to epoch 2, whose one quorum is {2, 3}
    async def rotated() -> bool:
        return await net.epoch() == 2

    await network.step_until(rotated, max_blocks=50)
    newcomers = {net.keepers[2].address, net.keepers[3].address}
    assert {m.address for m in (await net.quorums(2))[0]} == newcomers
    assert await net.block_number() < log["blockNumber"] + 64  # the log is not due yet

    # then the new quorum backfills the log and executes it, once
    (execution,) = await executions_after(network, job_id, 1, max_blocks=80)
    await network.step(6)
    assert await assert_exactly_once(network, job_id) == [execution]
    assert execution["args"]["cursor"] == cursor
    assert execution["args"]["executor"] in newcomers
    assert held_logs(network, 2, job_id) == held_logs(network, 3, job_id) == [cursor]


@pytest.fixture
async def five_keepers() -> AsyncIterator[Net]:
    """Five keepers on anvil, none registered yet."""
    anvil = AnvilProcess(accounts=7)
    net: Net | None = None
    try:
        net = await make_net(keepers=5, chain=AnvilChain(anvil, 7))
        yield net
    finally:
        if net is not None:
            await disconnect(net.w3)
        anvil.stop()


async def test_a_rotation_backfill_behind_a_provider_reads_the_stored_window_not_the_gap(
    five_keepers: Net, tmp_path: Path
) -> None:
    net = five_keepers
    me = net.keepers[0]
    # given keepers 1-4 in epoch 1's one quorum, and an Event job with a log never executed
    for keeper in net.keepers[1:5]:
        await net.register(keeper, ETHER)
    await net.rotate()
    job_id = await create_event_job(net)
    kept = await emit_demo(net, 1)
    # and keeper 0's follower behind a provider whose second backend lags, while the emitter
    # stays quiet for 3,000 blocks
    rpc = ProviderEmulator(str(net.chain.anvil.url), KEY, per_second=1000, burst=1000)  # type: ignore[attr-defined]
    await rpc.start()
    store = await net.open_store(tmp_path / "keeper.db", me.address)
    w3 = connect(rpc.url, lean=True)
    follower = ChainFollower(
        w3, net.registry, net.tm, store, start_block=net.deployment.block, member=me.address
    )

    async def sync_until_caught_up() -> None:
        for _ in range(200):
            result = await follower.sync()
            if result.head >= await net.block_number():
                return
        raise AssertionError("not caught up in 200 passes")

    def held() -> list[int]:
        rows = read_table(tmp_path / "keeper.db", "job_logs")
        return sorted(int(r[1]) for r in rows if r[0] == job_id)

    try:
        net.mine(3000)
        await sync_until_caught_up()
        assert held() == []
        # when keeper 0 joins the one quorum, and the pass after the epoch's first block runs
        await net.register(me, ETHER)
        await net.age_epoch()
        await net.rotate()
        await sync_until_caught_up()
        assert await net.block_number() - (kept >> 32) > 3000
        before = rpc.calls["eth_getBlockByNumber"]
        net.mine(1)
        await sync_until_caught_up()
        # then the headers read again are the stored window's (3,010 before: the whole gap's)
        assert rpc.calls["eth_getBlockByNumber"] - before <= KEEP_BLOCKS + 8
        # and the log from before the rotation is held, once
        assert held() == [kept]
    finally:
        await disconnect(w3)
        await store.close()
        await rpc.stop()
