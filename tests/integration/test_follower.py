"""The chain follower on eth-tester: what the store learns from events equals what the contracts
say, in bounded ranges, across reorgs (eth-tester snapshot/revert, then a longer other branch)
and across restarts.

eth-tester's `revert` re-imports the snapshot block, and py-evm re-executes some blocks
differently (a `rotate()` block fails with a gas mismatch), so every snapshot here is taken on
an empty block (`fork_point`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3._utils.events import get_event_data

from keeper.chain.follower import ChainFollower, EventDecoder, SyncResult, to_jsonable
from keeper.core.quorum import compute_quorum_hash
from keeper.core.triggers import compute_event_cursor
from keeper.store.db import Store
from tests.harness import (
    ETHER,
    EVENT,
    NO_PAYLOAD,
    TIME,
    Net,
    event_trigger,
    make_net,
    network_params,
    selector,
    time_trigger,
)
from tests.integration.store_support import read_folds, read_table

DEMO_EVENT = keccak(text="DemoEvent(address,uint256,uint256)")
KEEPER_STATUS = {1: "active", 2: "exiting", 3: "slashed", 4: "withdrawn"}


@dataclass
class Follower:
    """A store and a follower on one database file, restartable like a node."""

    net: Net
    path: Path
    store: Store
    follower: ChainFollower
    reorg_depth: int
    max_range: int

    @classmethod
    async def open(
        cls, net: Net, path: Path, reorg_depth: int = 4, max_range: int = 200
    ) -> Follower:
        store = await net.open_store(path)
        follower = ChainFollower(
            net.chain.web3(),
            net.registry,
            net.tm,
            store,
            start_block=net.deployment.block,
            reorg_depth=reorg_depth,
            max_range=max_range,
        )
        return cls(net, path, store, follower, reorg_depth, max_range)

    async def sync_all(self) -> list[SyncResult]:
        """Calls `sync` until the store has the chain's head; returns every call's result."""
        results = []
        for _ in range(100):
            result = await self.follower.sync()
            results.append(result)
            if result.head >= result.chain_head:
                return results
        raise AssertionError("follower did not catch up in 100 calls")

    async def restart(self) -> None:
        await self.store.close()
        again = await Follower.open(self.net, self.path, self.reorg_depth, self.max_range)
        self.store, self.follower = again.store, again.follower

    async def head_matches_chain(self) -> bool:
        head = await self.store.head()
        assert head is not None
        chain_head = await self.net.block_number()
        chain_hash = bytes((await self.net.w3.eth.get_block(chain_head))["hash"])
        return head == (chain_head, chain_hash)


@pytest.fixture
async def follower(net4: Net, tmp_path: Path) -> AsyncIterator[Follower]:
    f = await Follower.open(net4, tmp_path / "keeper.db")
    yield f
    await f.store.close()


async def emit_demo(net: Net, tag: int) -> int:
    """Emits DemoEvent from the target; returns the log's Event-job cursor."""
    receipt = await net.tx(net.target.functions.emitDemo(tag, 1), net.owner)
    (log,) = [r for r in receipt["logs"] if bytes(r["topics"][0]) == DEMO_EVENT]
    return compute_event_cursor(int(log["blockNumber"]), int(log["logIndex"]))


def fork_point(net: Net) -> tuple[int, int]:
    """Mines an empty block and snapshots the chain there: (snapshot id, its block number)."""
    net.mine(1)
    return net.chain.snapshot(), net.chain.latest_number()


async def create_time_job(net: Net) -> int:
    return await net.create_job(net.spec(TIME, time_trigger(60), selector("onTime()")))


async def create_event_job(net: Net) -> int:
    trigger = event_trigger(net.target.address, [DEMO_EVENT])
    return await net.create_job(net.spec(EVENT, trigger, selector("onEvent()")))


async def assert_store_equals_chain(net: Net, store: Store) -> None:
    """Jobs, keepers, epochs and quorums in the store are what the contracts' views say."""
    count = int(await net.tm.functions.nextJobId().call()) - 1
    jobs = await store.jobs()
    assert [j.job_id for j in jobs] == list(range(1, count + 1))
    for job in jobs:
        view = await net.job(job.job_id)
        assert (job.status, job.round, job.last_cursor, job.balance) == (
            view["status"],
            view["round"],
            view["lastCursor"],
            view["balance"],
        )
        assert (job.owner, job.target, job.start_time, job.gas_limit) == (
            view["owner"],
            view["target"],
            view["startTime"],
            view["gasLimit"],
        )
    keepers = await store.keepers()
    registered = await net.registry.events.KeeperRegistered().get_logs(
        from_block=net.deployment.block
    )
    assert sorted(keepers) == sorted({log["args"]["keeper"] for log in registered})
    # the registry lists the keepers a rotation looks at: every active one, while an exiting
    # one leaves the list (at once when no rotation is armed) but keeps its record
    listed = await net.registry.functions.keepers().call()
    assert set(listed) <= set(keepers)
    assert {a for a, known in keepers.items() if known["status"] == "active"} <= set(listed)
    for address, known in keepers.items():
        stake, status, _, _, endpoint = await net.registry.functions.keeperInfo(address).call()
        assert (known["stake"], known["status"], known["endpoint"]) == (
            stake,
            KEEPER_STATUS[status],
            endpoint,
        )
    current = await net.epoch()
    for number in range(1, current + 1):
        epoch = await store.epoch(number)
        assert epoch is not None
        assert epoch.seed == bytes(await net.registry.functions.epochSeed(number).call())
        assert epoch.count == await net.registry.functions.quorumCount(number).call()
        quorums = await store.quorums(number)
        assert len(quorums) == epoch.count
        for index, members in enumerate(quorums):
            on_chain = bytes(await net.registry.functions.quorumHash(number, index).call())
            assert compute_quorum_hash(members) == on_chain
    assert (await store.latest_epoch()).epoch == current  # type: ignore[union-attr]


async def job_log_cursors(f: Follower, job_id: int) -> list[int]:
    return [row[1] for row in read_table(f.path, "job_logs") if row[0] == job_id]


# ---------------------------------------------------------------------- what is learned


async def make_history(net: Net) -> tuple[int, int, int]:
    """5 keepers in 2 quorums, jobs of two kinds and their lifecycles, stake and endpoint
    changes, an exit and a second epoch; returns (time job, event job, the event's cursor)."""
    await net.register_keepers([ETHER, 2 * ETHER, 3 * ETHER, 4 * ETHER, 5 * ETHER])
    await net.rotate()
    time_job = await create_time_job(net)
    event_job = await create_event_job(net)
    cursor = await emit_demo(net, 1)
    start = (await net.job(time_job))["startTime"]
    await net.execute_round(time_job, start, NO_PAYLOAD)
    await net.tx(net.tm.functions.fund(time_job), net.owner, value=ETHER)
    await net.tx(net.tm.functions.pause(event_job), net.owner)
    await net.tx(net.tm.functions.resume(event_job), net.owner)
    await net.tx(net.tm.functions.cancel(event_job), net.owner)
    k = net.keepers
    await net.tx(net.registry.functions.addStake(), k[0], value=ETHER)
    await net.tx(net.registry.functions.setEndpoint("http://moved:1"), k[1])
    await net.tx(net.registry.functions.requestExit(), k[2])
    await net.age_epoch()
    await net.rotate()  # the set changed: epoch 2 without keeper 2, as early as allowed
    return time_job, event_job, cursor


async def test_follower_learns_what_the_contracts_hold(tmp_path: Path) -> None:
    # given a registry with 5 keepers in 2 quorums, jobs of two kinds, and their lifecycles
    params = network_params(target_quorum_size=2)
    net = await make_net(keepers=8, params=params)
    time_job, event_job, cursor = await make_history(net)
    # when a follower syncs from the deployment block
    f = await Follower.open(net, tmp_path / "keeper.db")
    await f.sync_all()
    # then its store holds what the contracts' views hold
    await assert_store_equals_chain(net, f.store)
    assert await net.epoch() == 2
    assert [(await f.store.epoch(e)).count for e in (1, 2)] == [2, 2]  # type: ignore[union-attr]
    assert [e["round"] for e in await f.store.executions(time_job)] == [0]
    assert await job_log_cursors(f, event_job) == [cursor]
    assert await f.head_matches_chain()
    await f.store.close()


async def test_events_decode_as_web3_decodes_them() -> None:
    # given every kind of event the follower stores, emitted by the contracts
    params = network_params(target_quorum_size=2)
    net = await make_net(keepers=8, params=params)
    await make_history(net)
    decoder = EventDecoder([net.registry, net.tm], net.w3.codec)
    raw_logs = await net.w3.eth.get_logs(
        {"fromBlock": 0, "toBlock": "latest", "address": decoder.addresses}  # type: ignore[typeddict-item]
    )
    abis = {
        bytes(HexBytes(c.events[e["name"]].topic)): e
        for c in (net.registry, net.tm)
        for e in c.abi
        if e.get("type") == "event"
    }
    seen = set()
    for raw in raw_logs:
        # when the follower's decoder and web3's get_event_data decode the same log
        ours = decoder.decode_args(raw)
        theirs = get_event_data(net.w3.codec, abis[bytes(raw["topics"][0])], raw)
        # then they agree on the event and every argument
        assert ours == (theirs["event"], to_jsonable(dict(theirs["args"])))
        seen.add(ours[0])
    assert seen >= {
        "KeeperRegistered", "StakeAdded", "EndpointSet", "ExitRequested", "RotationArmed",
        "EpochStarted", "QuorumFormed", "JobCreated", "JobFunded", "JobPaused", "JobResumed",
        "JobCancelled", "JobExecuted",
    }  # fmt: skip


async def test_bounded_ranges_reach_the_same_state(follower: Follower, tmp_path: Path) -> None:
    net = follower.net
    # given 30 blocks with events spread over them
    job_id = await create_event_job(net)
    for i in range(6):
        await net.tx(net.tm.functions.fund(job_id), net.owner, value=i + 1)
        await emit_demo(net, i)
        net.mine(3)
    # when one follower syncs 5 blocks at a time and another in one range
    small = await Follower.open(net, tmp_path / "small.db", max_range=5)
    results = await small.sync_all()
    await follower.sync_all()
    # then the small one took several calls of at most 5 blocks, each continuing the last
    span = results[-1].head - (net.deployment.block - 1)
    assert span >= 30
    assert len(results) >= span // 5
    assert all(0 < r.new_blocks <= 5 for r in results)
    assert [r.head for r in results] == sorted({r.head for r in results})
    assert all(r.reorg_to is None for r in results)
    # and both stores hold the same state, which is the chain's
    assert read_folds(small.path) == read_folds(follower.path)
    await assert_store_equals_chain(net, small.store)
    assert len(await job_log_cursors(small, job_id)) == 6
    await small.store.close()


# ---------------------------------------------------------------------- reorgs


async def test_reorg_forgets_the_orphaned_branch(follower: Follower) -> None:
    net = follower.net
    # given an Event job, synced
    event_job = await create_event_job(net)
    await follower.sync_all()
    snapshot, fork_block = fork_point(net)
    # and a branch with a new job, a matching log and a new keeper, synced too
    orphan_job = await create_time_job(net)
    orphan_cursor = await emit_demo(net, 7)
    newcomer = net.keepers[4]
    await net.register(newcomer, ETHER)
    await follower.sync_all()
    assert await follower.store.job(orphan_job) is not None
    assert await job_log_cursors(follower, event_job) == [orphan_cursor]
    assert newcomer.address in await follower.store.keepers()
    orphan_head = await net.block_number()
    # when the chain reorgs to a longer branch where the log comes later and the rest never
    net.chain.revert(snapshot)
    net.mine(4)
    new_cursor = await emit_demo(net, 7)
    assert await net.block_number() > orphan_head
    results = await follower.sync_all()
    # then the follower rolled back to the fork point
    assert results[0].reorg_to == fork_block
    # and the orphaned job and keeper are gone, and the log is recorded once, at its new place
    assert await follower.store.job(orphan_job) is None
    assert newcomer.address not in await follower.store.keepers()
    assert await job_log_cursors(follower, event_job) == [new_cursor]
    assert new_cursor != orphan_cursor
    assert await follower.store.next_job_log(event_job, 0, 2**32) == new_cursor
    # and the store's head is the chain's head, hash included
    assert await follower.head_matches_chain()
    await assert_store_equals_chain(net, follower.store)


async def test_reorg_to_a_shorter_branch(follower: Follower) -> None:
    net = follower.net
    job_id = await create_time_job(net)
    await follower.sync_all()
    snapshot, fork_block = fork_point(net)
    await net.tx(net.tm.functions.pause(job_id), net.owner)
    net.mine(5)
    await follower.sync_all()
    # when the chain drops those blocks and grows one different block only
    net.chain.revert(snapshot)
    net.mine(1)
    results = await follower.sync_all()
    assert results[0].reorg_to == fork_block
    assert await follower.head_matches_chain()
    await assert_store_equals_chain(net, follower.store)


# ---------------------------------------------------------------------- restarts


async def test_resume_relearns_the_last_blocks(follower: Follower) -> None:
    net = follower.net
    # given a synced store whose last blocks hold events
    await create_event_job(net)
    net.mine(6)
    late_job = await create_time_job(net)
    await follower.sync_all()
    before = read_folds(follower.path)
    head = await follower.store.head()
    assert head is not None
    # when the node restarts
    await follower.restart()
    await follower.follower.resume()
    # then it forgot the last reorg_depth blocks
    resumed = await follower.store.head()
    assert resumed is not None and resumed[0] == head[0] - follower.reorg_depth
    assert await follower.store.job(late_job) is None
    # and learns them again to the very same state
    results = await follower.sync_all()
    assert results[0].reorg_to is None
    assert read_folds(follower.path) == before


async def test_reorg_while_stopped_is_undone_after_resume(follower: Follower) -> None:
    net = follower.net
    await follower.sync_all()
    snapshot, _ = fork_point(net)
    orphan_job = await create_time_job(net)
    net.mine(8)  # deeper than reorg_depth
    await follower.sync_all()
    await follower.store.close()
    # while the node is down the chain reorgs to a different, longer branch
    net.chain.revert(snapshot)
    net.mine(12)
    kept_job = await create_time_job(net)
    # when it restarts
    await follower.restart()
    await follower.follower.resume()
    await follower.sync_all()
    # then the orphaned job is gone and the new branch's job holds its id
    assert kept_job == orphan_job
    job = await follower.store.job(kept_job)
    assert job is not None and job.created_block == await net.block_number()
    assert await follower.head_matches_chain()
    await assert_store_equals_chain(net, follower.store)
