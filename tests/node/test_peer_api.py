"""POST /v1/reports/batch of a live node refuses every bad message with its own 4xx and changes
nothing.

Protocol step 6: a peer message is accepted only if its sender signed it and is a member of the
job's quorum in a usable epoch; unsigned, malformed, foreign or stale messages get a clear 4xx.
Step 4: a member signs only the result it derives itself at the leader's check block. Each case
starts from the request an honest leader would send (the signing tests show it is accepted),
changes one thing, and checks the status, the error code and that the receiving node's
signatures and rounds are exactly as before. The requests are batches of one: a refusal of the
item reads as the answer's status and code (tests/node/peer_api_support.py `post_raw`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from keeper.core.messages import BatchRequest, encode_batch
from keeper.core.report import Report
from keeper.peers.server import DEFAULT_MAX_BODY
from tests.node.peer_api_support import (
    CALL_DATA,
    INTERVAL,
    JSON_TYPE,
    STALE_BLOCKS,
    STRANGER,
    World,
    expect_refused,
    honest_report,
    leaders_in_order,
    make_due,
    open_world,
    post_raw,
    request_for,
    signed_headers,
    the_report,
    with_report,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with open_world(tmp_path_factory.mktemp("peer-api")) as built:
        yield built


@dataclass
class Given:
    """A due round, its honest request from `leader` (the member whose turn it is) to
    `receiver` (another); `other` is a third member."""

    world: World
    head: int
    leader_index: int
    leader: LocalAccount
    receiver: int
    other: int
    req: BatchRequest

    def signed(self, req: BatchRequest, signer: LocalAccount | None = None) -> Posted:
        body = encode_batch(req)
        return Posted(self.receiver, body, signed_headers(body, signer or self.leader))

    @property
    def report(self) -> Report:
        return the_report(self.req)

    def report_changed(self, **changes: Any) -> Posted:
        return self.signed(with_report(self.req, self.leader, self.world, **changes))

    def json_changed(self, edit: Callable[[dict[str, Any]], None]) -> Posted:
        obj = json.loads(encode_batch(self.req))
        edit(obj)
        body = json.dumps(obj).encode()
        return Posted(self.receiver, body, signed_headers(body, self.leader))


@dataclass
class Posted:
    receiver: int
    body: bytes
    headers: dict[str, str]


async def given_a_due_round(world: World) -> Given:
    head = await make_due(world)
    # the round's primary leads at its due block (members refuse a leader before its turn)
    leader_index, receiver, other = (await leaders_in_order(world))[:3]
    report = await honest_report(world, leader_index)
    leader = world.key(leader_index)
    req = request_for(world, leader, report)
    return Given(world, head, leader_index, leader, receiver, other, req)


Builder = Callable[[Given], Awaitable[Posted]]
BAD_LEADER = "BadLeaderSignature"
# Leader "signatures" of the right length that recover to no one (eth_keys refuses them).
ZERO_RS = bytes(64) + b"\x1b"
HUGE_RS = b"\xff" * 64 + b"\x1c"
BAD_V = b"\x01" * 64 + b"\x05"


# ---------------------------------------------------------------------------- the cases


async def unsigned(g: Given) -> Posted:
    return Posted(g.receiver, encode_batch(g.req), dict(JSON_TYPE))


async def signed_by_another_member(g: Given) -> Posted:
    return g.signed(g.req, signer=g.world.key(g.other))


async def oversized(g: Given) -> Posted:
    body = encode_batch(g.req) + b" " * DEFAULT_MAX_BODY
    return Posted(g.receiver, body, signed_headers(body, g.leader))


async def not_json(g: Given) -> Posted:
    body = encode_batch(g.req)[:-7]
    return Posted(g.receiver, body, signed_headers(body, g.leader))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(obj: dict[str, Any]) -> None:
        target: Any = obj
        *parents, leaf = path.split(".")
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[leaf] = value

    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def edit(obj: dict[str, Any]) -> None:
        del obj[key]

    return edit


def wrong_type(edit: Callable[[dict[str, Any]], None]) -> Builder:
    async def build(g: Given) -> Posted:
        return g.json_changed(edit)

    return build


async def text_plain(g: Given) -> Posted:
    posted = g.signed(g.req)
    return replace(posted, headers={**posted.headers, "Content-Type": "text/plain"})


async def from_the_other_quorum(g: Given) -> Posted:
    outsider = g.world.key(g.world.outsiders[0])
    report = replace(g.report, executor=outsider.address)
    return g.signed(request_for(g.world, outsider, report), signer=outsider)


async def from_an_unregistered_key(g: Given) -> Posted:
    report = replace(g.report, executor=STRANGER.address)
    return g.signed(request_for(g.world, STRANGER, report), signer=STRANGER)


async def to_a_node_of_the_other_quorum(g: Given) -> Posted:
    return replace(g.signed(g.req), receiver=g.world.outsiders[0])


async def stale(g: Given) -> Posted:
    return g.signed(replace(g.req, sent_block=g.head - STALE_BLOCKS - 1))


async def executor_not_sender(g: Given) -> Posted:
    return g.report_changed(executor=g.world.key(g.other).address)


async def future_check_block(g: Given) -> Posted:
    return g.report_changed(checkBlock=g.head + 5)


async def wrong_check_block_hash(g: Given) -> Posted:
    return g.report_changed(checkBlockHash=keccak(b"another chain"))


async def next_epoch(g: Given) -> Posted:
    return g.report_changed(epoch=g.report.epoch + 1)


async def next_round(g: Given) -> Posted:
    return g.report_changed(round=g.report.round + 1)


async def past_round(g: Given) -> Posted:
    assert g.report.round >= 1, "the fixture executed round 0"
    return g.report_changed(round=g.report.round - 1)


async def leader_signed_by_another(g: Given) -> Posted:
    other = g.world.key(g.other)
    return g.signed(request_for(g.world, g.leader, g.report, leader=other))


async def leader_signed_another_report(g: Given) -> Posted:
    signed_other = with_report(g.req, g.leader, g.world, cursor=g.report.cursor + 1)
    return g.signed(replace(g.req, leader_signature=signed_other.leader_signature))


def leader_signature(signature: bytes) -> Builder:
    async def build(g: Given) -> Posted:
        return g.signed(replace(g.req, leader_signature=signature))

    return build


async def next_slot(g: Given) -> Posted:
    return g.report_changed(cursor=g.report.cursor + INTERVAL)


async def off_grid(g: Given) -> Posted:
    return g.report_changed(cursor=g.report.cursor - 1)


async def at_the_block_of_the_last_execution(g: Given) -> Posted:
    executions = await g.world.network.executions(g.world.job_id)
    block = int(executions[-1]["blockNumber"])
    report = await honest_report(g.world, g.leader_index, check_block=block)
    last_cursor = int(executions[-1]["args"]["cursor"])
    assert report.cursor <= last_cursor, "the slot at that block was already executed"
    return g.signed(request_for(g.world, g.leader, report, sent_block=g.head))


async def another_payload(g: Given) -> Posted:
    payload = CALL_DATA  # the job's own callData: a Time item carries none
    report = replace(g.report, payloadHash=keccak(payload))
    return g.signed(request_for(g.world, g.leader, report, payload=payload))


async def another_quorum(g: Given) -> Posted:
    other = next(i for i in range(2) if i != g.world.quorum)
    return g.report_changed(quorum=other)


async def unknown_quorum(g: Given) -> Posted:
    return g.report_changed(quorum=7)


async def unknown_job(g: Given) -> Posted:
    return g.report_changed(jobId=g.world.job_id + 1000)


async def expired_deadline(g: Given) -> Posted:
    return g.report_changed(deadline=g.head - 1)


CASES: list[tuple[str, Builder, int, str]] = [
    # server: media type, size, body signature, decoding
    ("unsigned", unsigned, 401, "Unsigned"),
    ("signed by another key than sender", signed_by_another_member, 401, "BadSignature"),
    ("oversized body", oversized, 413, "BodyTooLarge"),
    ("malformed JSON", not_json, 400, "Malformed"),
    ("sentBlock as a string", wrong_type(_set("sentBlock", "12")), 400, "Malformed"),
    ("round as a boolean", wrong_type(_set("items.0.round", True)), 400, "Malformed"),
    ("negative jobId", wrong_type(_set("items.0.jobId", -1)), 400, "Malformed"),
    ("payload without 0x", wrong_type(_set("items.0.payload", "c0ffee")), 400, "Malformed"),
    ("header as a list", wrong_type(_set("header", [1, 2])), 400, "Malformed"),
    ("no items", wrong_type(_set("items", [])), 400, "Malformed"),
    ("quorum too large", wrong_type(_set("header.quorum", 2**16)), 400, "Malformed"),
    ("short leader signature", wrong_type(_set("leaderSignature", "0x00")), 400, "Malformed"),
    ("an unknown field", wrong_type(_set("extra", 1)), 400, "Malformed"),
    ("a missing field", wrong_type(_drop("sentBlock")), 400, "Malformed"),
    ("wrong content type", text_plain, 415, "UnsupportedMediaType"),
    # node: who sent it and to whom
    ("sender of the other quorum", from_the_other_quorum, 403, "NotMember"),
    ("unregistered sender", from_an_unregistered_key, 403, "NotMember"),
    ("receiver of the other quorum", to_a_node_of_the_other_quorum, 403, "NotMyQuorum"),
    ("a header naming the other quorum", another_quorum, 403, "NotMember"),
    ("a header naming no quorum", unknown_quorum, 409, "UnknownQuorum"),
    # node: freshness and the report's fields
    ("stale sentBlock", stale, 422, "Stale"),
    ("executor is not the sender", executor_not_sender, 422, "ExecutorMismatch"),
    ("future checkBlock", future_check_block, 425, "TooEarly"),
    ("deadline already passed", expired_deadline, 422, "BadDeadline"),
    ("wrong checkBlockHash", wrong_check_block_hash, 409, "BlockHashMismatch"),
    ("wrong epoch", next_epoch, 409, "WrongEpoch"),
    ("a future round", next_round, 409, "WrongRound"),
    ("an executed round", past_round, 409, "RoundDone"),
    ("leader signature by another member", leader_signed_by_another, 401, BAD_LEADER),
    ("leader signature of another report", leader_signed_another_report, 401, BAD_LEADER),
    ("leader signature of zeros", leader_signature(ZERO_RS), 401, BAD_LEADER),
    ("leader signature with r, s >= n", leader_signature(HUGE_RS), 401, BAD_LEADER),
    ("leader signature with v = 5", leader_signature(BAD_V), 401, BAD_LEADER),
    # node: the result itself
    ("a cursor one slot ahead", next_slot, 422, "CursorMismatch"),
    ("a cursor off the slot grid", off_grid, 422, "CursorMismatch"),
    ("a check block where nothing is due", at_the_block_of_the_last_execution, 422, "NotDue"),
    ("a payload where none belongs", another_payload, 422, "PayloadMismatch"),
    ("an unknown job", unknown_job, 404, "UnknownJob"),
]


@pytest.mark.parametrize(
    ("build", "status", "code"),
    [pytest.param(build, status, code, id=name) for name, build, status, code in CASES],
)
async def test_a_bad_request_gets_its_4xx_and_changes_nothing(
    world: World, build: Builder, status: int, code: str
) -> None:
    # given a due round and the honest request, with one thing changed
    given = await given_a_due_round(world)
    posted = await build(given)

    # when it is posted to the node
    got = await expect_refused(world, posted.receiver, posted.body, posted.headers)

    # then the node answers with that status and code (and its state is unchanged)
    assert got == (status, code)


async def test_after_all_those_refusals_the_honest_request_is_still_signed(world: World) -> None:
    # given a due round and the honest request every case above started from
    given = await given_a_due_round(world)
    posted = given.signed(given.req)

    # when it is posted unchanged
    status, answer = await post_raw(world, posted.receiver, posted.body, posted.headers)

    # then the node signs it: the refusals were about the one thing each case changed
    assert status == 200, answer
