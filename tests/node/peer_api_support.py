"""A live 8-keeper network for the peer API tests, and what they need to talk to it raw.

Eight keepers of equal stake with target quorum size 4 form two quorums, so a job's quorum has
real members, and the other quorum gives a registered keeper that is NOT a member. The Time job
has executed once (so a past round exists). Tests never let the nodes tick while they post:
`make_due` mines a block past the next slot and only syncs the nodes, so the job stays due at
the head and no leader closes the round under the test's feet.

Requests are built exactly as keeper/node/leader.py builds them, but from the chain alone (the
slot grid, the block hash, the job's round), so the tests do not trust the code they test. Most
cases post a batch of one item: `post_raw` reads a refusal of that one item as the answer's
status and code, the way a refusal of the whole batch comes.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from keeper.core.messages import SIGNATURE_HEADER, BatchRequest, encode_batch, sign_body
from keeper.core.quorum import rank_batch_members
from keeper.core.report import Batch, Report, compute_report_digest, sign_batch, sign_report
from keeper.node.context import NodeOptions
from keeper.node.node import KeeperNode
from tests.harness import ETHER, NO_PAYLOAD, TIME, selector, time_trigger
from tests.nodes import Network, start_network

INTERVAL = 60
STALE_BLOCKS = 8
DEADLINE_BLOCKS = 40
CALL_DATA = selector("onTime()")
JSON_TYPE = {"Content-Type": "application/json"}
# Registered nowhere: its signature is valid, its address is no keeper's.
STRANGER: LocalAccount = Account.from_key(keccak(b"peer-api stranger"))


@dataclass
class World:
    """The network, its Time job, and who is in the job's quorum (node indices)."""

    network: Network
    job_id: int
    members: list[int]  # the job's quorum
    outsiders: list[int]  # the other quorum
    http: aiohttp.ClientSession
    quorum: int = 0  # the index of the job's quorum
    due_block: int = 0  # the block `make_due` last made the job due at

    def node(self, i: int) -> KeeperNode:
        return self.network.nodes[i]

    def key(self, i: int) -> LocalAccount:
        return self.network.net.keepers[i]


@dataclass(frozen=True)
class Snapshot:
    """What a peer request must never change unless the node signs: its signatures and rounds."""

    signature_count: int
    round_counts: dict[str, int]
    signatures: list[tuple[Any, ...]]
    rounds: list[tuple[Any, ...]]


async def sync_all(network: Network) -> None:
    """Every node catches up with the chain WITHOUT leading anything (no tick)."""
    for node in network.nodes.values():
        await node.sync_now()


async def build_world(tmp: Path) -> World:
    network = await start_network(
        tmp,
        stakes=[ETHER] * 8,
        # the cases below sign many different results for one round key with a member's key
        # (each to check one refusal): proving that equivocation would slash the test's leader
        options=NodeOptions(stale_blocks=STALE_BLOCKS, prove_equivocation=False),
        target_quorum_size=4,
    )
    try:
        return await _with_a_job(network)
    except BaseException:
        await network.stop()
        raise


async def _with_a_job(network: Network) -> World:
    net = network.net
    job_id = await net.create_job(net.spec(TIME, time_trigger(INTERVAL), CALL_DATA))

    async def executed_once() -> bool:
        return len(await network.executions(job_id)) >= 1

    await network.step_until(executed_once, max_blocks=20)
    await sync_all(network)
    assert [len(q) for q in await net.quorums()] == [4, 4]
    quorum, members = await net.quorum_for_job(job_id)
    addresses = [k.address.lower() for k in net.keepers]
    in_quorum = sorted(addresses.index(m.address.lower()) for m in members)
    outside = sorted(set(range(8)) - set(in_quorum))
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    return World(network, job_id, in_quorum, outside, http, quorum)


@contextlib.asynccontextmanager
async def open_world(tmp: Path) -> AsyncIterator[World]:
    """The world for one test module (each module builds its own: it takes seconds)."""
    built = await build_world(tmp)
    try:
        yield built
    finally:
        await built.http.close()
        await built.network.stop()


async def make_due(world: World) -> int:
    """Mines one block past the job's next slot and syncs every node; returns the new head."""
    net = world.network.net
    net.time_travel(await net.timestamp() + INTERVAL)
    await sync_all(world.network)
    world.due_block = await net.block_number()
    return world.due_block


async def leaders_in_order(world: World) -> list[int]:
    """The job's quorum (node indices) in leader order for the rounds due at the block
    `make_due` left: the first leads from that block, the next one turn later (members refuse
    a turn not yet come)."""
    epoch = await world.network.net.epoch()
    by_address = {world.key(i).address.lower(): i for i in world.members}
    ranked = rank_batch_members(
        epoch, world.quorum, world.due_block, [world.key(i).address for i in world.members]
    )
    return [by_address[a.lower()] for a in ranked]


async def mine_to_turn(world: World, rank: int) -> int:
    """From the due block (the head `make_due` left), mines to the first block of `rank`'s turn
    and syncs every node; returns the new head."""
    net = world.network.net
    net.mine(rank * world.network.turn_blocks)
    await sync_all(world.network)
    return await net.block_number()


async def given_an_honest_request(world: World) -> tuple[LocalAccount, int, BatchRequest]:
    """A due round; its primary (rank 0, whose turn it is) is about to ask the next member."""
    await make_due(world)
    leader_index, receiver = (await leaders_in_order(world))[:2]
    leader = world.key(leader_index)
    report = await honest_report(world, leader_index)
    return leader, receiver, request_for(world, leader, report)


async def store_an_earlier_result(world: World, node: int, report: Report) -> Report:
    """Stores in `node`'s signature store a signed report with the same key as `report` and a
    different result (as an earlier run of the node, with another view of the job, would have
    left it) and returns it."""
    earlier = replace(report, cursor=report.cursor - INTERVAL)
    domain = world.network.net.domain
    assert await world.node(node).store.record_signature(
        earlier,
        compute_report_digest(earlier, domain),
        sign_report(world.key(node).key, earlier, domain),
    )
    return earlier


async def honest_report(world: World, executor: int, check_block: int | None = None) -> Report:
    """The report an honest leader `executor` proposes at `check_block` (default: the head)."""
    net = world.network.net
    head = await net.block_number()
    block = await net.w3.eth.get_block(head if check_block is None else check_block)
    job = await net.job(world.job_id)
    start, ts = int(job["startTime"]), int(block["timestamp"])
    return Report(
        jobId=world.job_id,
        round=int(job["round"]),
        epoch=await net.epoch(),
        cursor=start + (ts - start) // INTERVAL * INTERVAL,
        checkBlock=int(block["number"]),
        checkBlockHash=bytes(block["hash"]),
        payloadHash=keccak(NO_PAYLOAD),
        executor=world.key(executor).address,
        deadline=head + DEADLINE_BLOCKS,
        quorum=world.quorum,
    )


def request_for(
    world: World,
    sender: LocalAccount,
    report: Report,
    *,
    payload: bytes = NO_PAYLOAD,
    leader: LocalAccount | None = None,
    sent_block: int | None = None,
) -> BatchRequest:
    """`report` alone (a batch of one) sent by `sender`, signed by `leader` (default: the
    sender, as leaders do)."""
    return batch_for(
        world, sender, [report], payloads=[payload], leader=leader, sent_block=sent_block
    )


def batch_for(
    world: World,
    sender: LocalAccount,
    reports: list[Report],
    *,
    payloads: list[bytes] | None = None,
    leader: LocalAccount | None = None,
    sent_block: int | None = None,
) -> BatchRequest:
    """The batch of `reports` (one header) sent by `sender`, signed by `leader` (default: the
    sender); every payload is empty (a Time item's: the call is in the forwarder) unless given."""
    batch = Batch.of(reports)
    signature = sign_batch((leader or sender).key, batch, world.network.net.domain)
    return BatchRequest.of(
        sender.address,
        reports[0].checkBlock if sent_block is None else sent_block,
        batch,
        payloads if payloads is not None else [NO_PAYLOAD] * len(reports),
        signature,
    )


def the_report(req: BatchRequest) -> Report:
    """The one item of a batch of one."""
    (report,) = req.items
    return report


def with_report(
    req: BatchRequest, sender: LocalAccount, world: World, **changes: Any
) -> BatchRequest:
    """`req` (a batch of one) with report fields changed and the leader signature made again
    by `sender`."""
    report = replace(the_report(req), **changes)
    return request_for(world, sender, report, payload=req.payloads[0], sent_block=req.sent_block)


def signed_headers(body: bytes, signer: LocalAccount) -> dict[str, str]:
    return {**JSON_TYPE, SIGNATURE_HEADER: "0x" + sign_body(signer.key, body).hex()}


REPORTS_PATH = "/v1/reports/batch"


async def post_raw(
    world: World, node: int, body: Any, headers: dict[str, str], path: str = REPORTS_PATH
) -> tuple[int, dict[str, Any]]:
    """POSTs to `path` of `nodes[node]`; every answer, 200 or not, is JSON. The answer to a
    batch of one whose item was refused reads as that item's status and error body."""
    status, answer = await post_batch_raw(world, node, body, headers, path)
    results = answer.get("results") if status == 200 else None
    if isinstance(results, list) and len(results) == 1 and isinstance(results[0], dict):
        assert answer["signature"] is None, answer
        refusal = results[0]
        return int(refusal["status"]), {"error": refusal["error"], "reason": refusal["reason"]}
    return status, answer


async def post_batch_raw(
    world: World, node: int, body: Any, headers: dict[str, str], path: str = REPORTS_PATH
) -> tuple[int, dict[str, Any]]:
    """POSTs to `path` of `nodes[node]`: the status and the JSON answer as they came."""
    url = world.node(node).endpoint + path
    async with world.http.post(url, data=body, headers=headers) as resp:
        text = await resp.text()
        assert resp.content_type == "application/json", text
        assert "Traceback" not in text
        return resp.status, json.loads(text)


async def post_request(
    world: World, node: int, req: BatchRequest, signer: LocalAccount
) -> tuple[int, dict[str, Any]]:
    body = encode_batch(req)
    return await post_raw(world, node, body, signed_headers(body, signer))


def _rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    # A second, read-only connection to the node's own database file (WAL allows it).
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
    finally:
        conn.close()


async def snapshot(world: World, node: int) -> Snapshot:
    store = world.node(node).store
    path = world.network.db_path(node)
    return Snapshot(
        signature_count=await store.signature_count(),
        round_counts=await store.round_counts(),
        signatures=_rows(path, "signatures"),
        rounds=_rows(path, "rounds"),
    )


async def expect_refused(
    world: World, node: int, body: Any, headers: dict[str, str], path: str = REPORTS_PATH
) -> tuple[int, str]:
    """Posts and returns (status, error code), asserting the node's state did not change."""
    before = await snapshot(world, node)
    status, answer = await post_raw(world, node, body, headers, path)
    assert await snapshot(world, node) == before, f"state changed on {status} {answer}"
    assert set(answer) == {"error", "reason"}, answer
    return status, str(answer["error"])


async def metric(world: World, node: int, name: str, labels: str = "") -> float:
    """One sample of the node's /metrics (0 when the labelled series does not exist yet)."""
    async with world.http.get(world.node(node).admin_endpoint + "/metrics") as resp:
        text = await resp.text()
    series = re.escape(name + (f"{{{labels}}}" if labels else ""))
    found = re.search(rf"^{series} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0
