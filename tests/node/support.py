"""What the node tests read off the chain: executions, counters, rankings, nonces.

Everything here reads the chain (or a node's own store), never a node's private state, so the
tests check what the protocol promises rather than how a node keeps its books.
"""

from __future__ import annotations

from typing import Any

from eth_utils.crypto import keccak
from web3.contract import AsyncContract

from keeper.core.quorum import rank_batch_members
from tests.nodes import BLOCK_SECONDS, Network

DEMO_EVENT = keccak(text="DemoEvent(address,uint256,uint256)")


async def counter(contract: AsyncContract, name: str) -> int:
    """One of DemoTarget's public counters (cronCount, conditionTotal, upkeepCount, ...)."""
    return int(await getattr(contract.functions, name)().call())


async def block_timestamp(network: Network, number: int) -> int:
    return int((await network.net.w3.eth.get_block(number))["timestamp"])


async def assert_exactly_once(network: Network, job_id: int) -> list[Any]:
    """Rounds in JobExecuted are 0..n-1, each once, in order, and the contract's round is n.

    Returns the executions so the caller can check its kind's cursors.
    """
    executions = await network.executions(job_id)
    rounds = [e["args"]["round"] for e in executions]
    assert rounds == list(range(len(executions))), f"job {job_id} rounds {rounds}"
    assert (await network.net.job(job_id))["round"] == len(executions)
    return executions


async def ranking(network: Network, job_id: int, due_block: int) -> list[str]:
    """The leader order of the job's quorum for the rounds due at `due_block`, as every node
    computes it with idle loads."""
    epoch = await network.net.epoch()
    quorum, members = await network.net.quorum_for_job(job_id)
    return rank_batch_members(epoch, quorum, due_block, [m.address for m in members])


async def first_block_at(network: Network, ts: int) -> int:
    """The first block whose timestamp is at least `ts`: on chain, or the one `network.step`
    will mine (blocks BLOCK_SECONDS apart)."""
    net = network.net
    head = await net.block_number()
    head_ts = await block_timestamp(network, head)
    if ts > head_ts:
        return head + -(-(ts - head_ts) // BLOCK_SECONDS)
    block = head
    while block > 0 and await block_timestamp(network, block - 1) >= ts:
        block -= 1
    return block


async def step_to_eve(network: Network, ts: int) -> int:
    """Steps while the next block would still be before `ts`; returns the number of that next
    block, the first at `ts` (`network.step` mines it before any node's transaction)."""
    while await network.net.timestamp() + BLOCK_SECONDS < ts:
        await network.step()
    return await network.net.block_number() + 1


async def due_block_of_round(network: Network, slot: int, opened_block: int) -> int:
    """Where a Time job's round for `slot` fell due, as every node derives it
    (`Evaluator.opened_at_many`): the first block at the slot, and not before the block after
    `opened_block` (where the round opened: the job's creation, or its last execution)."""
    return max(await first_block_at(network, slot), opened_block + 1)


def node_index(network: Network, address: str) -> int:
    """Which `network.nodes[i]` runs with `address`'s key."""
    return next(
        i for i, k in enumerate(network.net.keepers) if k.address.lower() == address.lower()
    )


async def nonces(network: Network, indices: list[int]) -> dict[int, int]:
    """The chain's transaction count of each keeper: how many transactions it ever sent."""
    w3 = network.net.w3
    return {
        i: int(await w3.eth.get_transaction_count(network.net.keepers[i].address)) for i in indices
    }


async def executions_after(network: Network, job_id: int, count: int, max_blocks: int) -> list[Any]:
    """Steps until the job has at least `count` executions; returns them all."""

    async def enough() -> bool:
        return len(await network.executions(job_id)) >= count

    await network.step_until(enough, max_blocks=max_blocks)
    return await network.executions(job_id)


async def round_zero_due(network: Network, job_id: int) -> int:
    """Where a new Time job's first round falls due (its first slot, and not before the block
    after its creation), read from the chain before any node has synced the job."""
    net = network.net
    (created,) = await net.tm.events.JobCreated().get_logs(
        from_block=net.deployment.block, argument_filters={"jobId": job_id}
    )
    start = int((await net.job(job_id))["startTime"])
    return max(await first_block_at(network, start), int(created["blockNumber"]) + 1)
