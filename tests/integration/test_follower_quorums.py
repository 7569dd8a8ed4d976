"""A keeper's follower asks for the logs of its own quorums' Event jobs only, and a job it comes to
serve at a rotation gets the logs its previous quorum held and had not executed: backfilled from
the job's cursor, by the same activity rule (paused stretches left out) as a node that followed
the job all along, with only the stored header window's headers read again (deeper blocks take
eth_getLogs's answers as they come), so a quiet emitter's long gap costs no header requests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from keeper.chain.follower import ChainFollower
from keeper.core.serving import EPOCH_GRACE_BLOCKS
from keeper.store.chain_state import KEEP_BLOCKS
from tests.harness import ETHER, NO_PAYLOAD, Net
from tests.integration.store_support import read_table
from tests.integration.test_follower import create_event_job, emit_demo


async def open_follower(net: Net, path: Path, member: LocalAccount | None) -> ChainFollower:
    store = await net.open_store(path)
    return ChainFollower(
        net.chain.web3(),
        net.registry,
        net.tm,
        store,
        start_block=net.deployment.block,
        reorg_depth=4,
        member=None if member is None else member.address,
    )


async def sync_all(follower: ChainFollower) -> None:
    for _ in range(100):
        result = await follower.sync()
        if result.head >= result.chain_head:
            return
    raise AssertionError("follower did not catch up in 100 calls")


async def seat_keepers_1_to_4(net: Net) -> None:
    """Keepers 1-4 registered and rotated in: epoch 1's one quorum, keeper 0 outside it."""
    for keeper in net.keepers[1:5]:
        await net.register(keeper, ETHER)
    await net.rotate()


def stored_logs(path: Path, job_id: int) -> list[int]:
    return sorted(int(row[1]) for row in read_table(path, "job_logs") if row[0] == job_id)


async def test_a_job_served_from_a_rotation_gets_the_logs_its_old_quorum_did_not_execute(
    net: Net, tmp_path: Path
) -> None:
    # given keepers 1-4 in epoch 1's one quorum, and keeper 0 not registered yet
    me = net.keepers[0]
    await seat_keepers_1_to_4(net)
    mine = await open_follower(net, tmp_path / "mine.db", me)
    everyone = await open_follower(net, tmp_path / "all.db", None)
    try:
        # and an Event job whose first log executed, then a log, a pause, a log, a resume, a log
        job_id = await create_event_job(net)
        first = await emit_demo(net, 0)
        await net.execute_round(job_id, first, NO_PAYLOAD)
        kept = [await emit_demo(net, 1)]
        await net.tx(net.tm.functions.pause(job_id), net.owner)
        await emit_demo(net, 2)
        await net.tx(net.tm.functions.resume(job_id), net.owner)
        kept.append(await emit_demo(net, 3))
        await sync_all(mine)
        await sync_all(everyone)
        # then keeper 0, in no quorum, never asked for the emitter's logs and holds none
        assert mine._logs.asked[net.target.address.lower()] == 0
        assert stored_logs(tmp_path / "mine.db", job_id) == []
        # when 300 blocks pass (the store keeps 256 headers) and keeper 0 joins the one quorum
        net.mine(300)
        await sync_all(mine)
        log_block = kept[0] >> 32
        assert await mine._store.block_hash(log_block) is None
        await net.register(me, ETHER)
        await net.age_epoch()
        await net.rotate()
        net.mine(1)  # the pass after the epoch's first block serves its jobs
        await sync_all(mine)
        await sync_all(everyone)
        # then it holds the logs above the job's cursor that a node following all along holds
        above = [c for c in stored_logs(tmp_path / "all.db", job_id) if c > first]
        assert above == kept
        assert stored_logs(tmp_path / "mine.db", job_id) == kept
        # and later logs come with its ordinary passes
        later = await emit_demo(net, 4)
        await sync_all(mine)
        assert stored_logs(tmp_path / "mine.db", job_id) == [*kept, later]
        # and a node catching up from the deployment in ranges of 200 blocks, across the
        # rotation's block, keeps the same: its pass ends at that block, the next backfills
        late = await open_follower(net, tmp_path / "late.db", me)
        try:
            await sync_all(late)
            assert stored_logs(tmp_path / "late.db", job_id) == [*kept, later]
        finally:
            await late._store.close()
    finally:
        await mine._store.close()
        await everyone._store.close()


async def test_a_job_the_keeper_stops_serving_stops_costing_log_queries(
    net: Net, tmp_path: Path
) -> None:
    # given keepers 0-3 in epoch 1's one quorum, keeper 0 following an Event job of it
    me = net.keepers[0]
    for keeper in net.keepers[:4]:
        await net.register(keeper, ETHER)
    await net.rotate()
    mine = await open_follower(net, tmp_path / "mine.db", me)
    emitter = net.target.address.lower()
    try:
        job_id = await create_event_job(net)
        held = [await emit_demo(net, 0)]
        await sync_all(mine)
        assert stored_logs(tmp_path / "mine.db", job_id) == held
        # when keeper 0 leaves and epoch 2 forms without it
        await net.tx(net.registry.functions.requestExit(), me)
        await net.age_epoch()
        await net.rotate()
        start = await net.block_number()
        # then through the grace period it still follows the job (its old quorum may sign)
        held.append(await emit_demo(net, 1))
        await sync_all(mine)
        assert stored_logs(tmp_path / "mine.db", job_id) == held
        # and after it, the emitter is asked no more and its logs are not kept
        net.mine(start + EPOCH_GRACE_BLOCKS - await net.block_number())
        await sync_all(mine)
        asked = mine._logs.asked[emitter]
        for tag in range(2, 5):
            await emit_demo(net, tag)
            await sync_all(mine)
        assert mine._logs.asked[emitter] == asked
        assert stored_logs(tmp_path / "mine.db", job_id) == held
    finally:
        await mine._store.close()


def count_calls(follower: ChainFollower) -> Counter[str]:
    """The JSON-RPC calls the follower's provider makes from now on, by method."""
    calls: Counter[str] = Counter()
    provider: Any = follower._w3.provider
    make_request = provider.make_request

    async def counted(method: str, params: Any) -> Any:
        calls[method] += 1
        return await make_request(method, params)

    provider.make_request = counted
    return calls


async def test_a_backfill_over_thousands_of_quiet_blocks_reads_only_the_stored_headers(
    net: Net, tmp_path: Path
) -> None:
    # given keepers 1-4 in epoch 1's one quorum, and an Event job with one log never executed
    me = net.keepers[0]
    await seat_keepers_1_to_4(net)
    mine = await open_follower(net, tmp_path / "mine.db", me)
    calls = count_calls(mine)
    try:
        job_id = await create_event_job(net)
        kept = await emit_demo(net, 1)
        # and an emitter quiet for 3,000 blocks, which keeper 0 (in no quorum) follows
        net.mine(3000)
        await sync_all(mine)
        assert stored_logs(tmp_path / "mine.db", job_id) == []
        # when keeper 0 joins the one quorum, and the pass after the epoch's first block runs
        await net.register(me, ETHER)
        await net.age_epoch()
        await net.rotate()
        await sync_all(mine)
        gap = await net.block_number() - (kept >> 32)
        assert gap > 3000
        calls.clear()
        net.mine(1)
        await sync_all(mine)
        # then it read the headers of the stored window (and the new block) only, not the gap's
        assert 0 < calls["eth_getBlockByNumber"] <= KEEP_BLOCKS + 3
        # and it holds the log from before the rotation, once
        assert stored_logs(tmp_path / "mine.db", job_id) == [kept]
        await sync_all(mine)
        assert stored_logs(tmp_path / "mine.db", job_id) == [kept]
    finally:
        await mine._store.close()
