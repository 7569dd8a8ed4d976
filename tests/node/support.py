"""What the node tests read off the chain: executions, counters, rankings, nonces.

Everything here reads the chain (or a node's own store), never a node's private state, so the
tests check what the protocol promises rather than how a node keeps its books.
"""

from __future__ import annotations

from typing import Any

from eth_utils.crypto import keccak
from web3.contract import AsyncContract

from keeper.core.quorum import rank_members
from tests.nodes import Network

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


async def ranking(network: Network, job_id: int, round_: int) -> list[str]:
    """The quorum's leader order for one round, as every node computes it with idle loads."""
    _, members = await network.net.quorum_for_job(job_id)
    return rank_members(job_id, round_, [m.address for m in members])


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
