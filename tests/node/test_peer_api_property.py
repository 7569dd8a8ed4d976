"""Property: whatever body reaches POST /v1/reports/batch of a live member, signed or not, the
answer is a 4xx (never a 5xx, never a signature) and the node's signatures and rounds do not
change.

Bodies are random bytes, random JSON, objects with the request's own keys, and the honest
request (a batch of one) with one field replaced, dropped or added. A replaced header or item
field keeps the original leader signature, so the only acceptable message is the honest one;
re-encodings that decode to exactly the honest request (say, an address in lower case) are the
same message and are skipped. A refusal of the one item reads as the answer's status and code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from keeper.core.messages import BatchRequest, MessageError, decode_batch, encode_batch
from tests.node.peer_api_support import (
    JSON_TYPE,
    STALE_BLOCKS,
    STRANGER,
    World,
    batch_for,
    expect_refused,
    honest_report,
    leaders_in_order,
    make_due,
    open_world,
    post_request,
    request_for,
    signed_headers,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

REQUEST_KEYS = ["type", "sender", "sentBlock", "header", "items", "leaderSignature"]
HEADER_KEYS = ["epoch", "quorum", "checkBlock", "checkBlockHash", "executor", "deadline"]
ITEM_KEYS = ["jobId", "round", "cursor", "payload"]
# The header's and the item's fields weigh double: most of the node's checks are about them.
MUTABLE_PATHS = (
    REQUEST_KEYS
    + [f"header.{k}" for k in HEADER_KEYS] * 2
    + [f"items.0.{k}" for k in ITEM_KEYS] * 2
)
ERROR_CODES = {
    "Unsigned",
    "BadSignature",
    "Malformed",
    "Stale",
    "ExecutorMismatch",
    "TooEarly",
    "StaleCheckBlock",
    "BadDeadline",
    "UnknownJob",
    "WrongEpoch",
    "NotMember",
    "NotMyQuorum",
    "BadLeaderSignature",
    "RoundDone",
    "WrongRound",
    "BlockHashMismatch",
    "NotDue",
    "CursorMismatch",
    "PayloadMismatch",
    "NotYourTurn",
    "UnknownQuorum",
    "WrongQuorum",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with open_world(tmp_path_factory.mktemp("peer-api-property")) as built:
        yield built


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def honest(world: World) -> BatchRequest:
    """The request the job's primary (rank 0, in its turn) sends for the due round."""
    await make_due(world)
    leader = (await leaders_in_order(world))[0]
    return request_for(world, world.key(leader), await honest_report(world, leader))


# ---------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**260)
    | st.floats(allow_nan=False)
    | st.text(max_size=24)
    | st.binary(max_size=40).map(lambda b: "0x" + b.hex()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
UINT_FIELDS = {"jobId", "round", "epoch", "quorum", "cursor", "checkBlock", "deadline"}


def _hex(size: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=size, max_size=size).map(lambda b: "0x" + b.hex())


def _near(value: int) -> st.SearchStrategy[int]:
    """Another value of a uint field: close to the honest one, or anywhere in uint64."""
    close = st.integers(min_value=max(0, value - 3), max_value=value + 3)
    return close | st.integers(min_value=0, max_value=2**64 - 1)


def _encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@st.composite
def mutated(draw: st.DrawFn, world: World, honest: BatchRequest) -> bytes:
    """The honest request (as JSON) with one field replaced by a well-typed or random value,
    dropped, or an unknown one added. A changed batch is signed again by the leader (except
    for its deadline, with which the same result is legitimately signable) or not."""
    obj = json.loads(encode_batch(honest))
    addresses = [k.address for k in world.network.net.keepers] + [STRANGER.address]
    path = draw(st.sampled_from(MUTABLE_PATHS), label="path")
    *parents, leaf = path.split(".")
    target: Any = obj
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    action = draw(st.sampled_from(["typed"] * 5 + ["random", "drop", "add"]))
    if action == "drop":
        del target[leaf]
    elif action == "add":
        target[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    elif action == "random":
        target[leaf] = draw(json_values)
    elif leaf == "sentBlock":
        # Not covered by the leader's signature: any fresh value is the honest message again.
        target[leaf] = draw(
            st.integers(min_value=0, max_value=honest.sent_block - STALE_BLOCKS - 1)
        )
    elif leaf in UINT_FIELDS:
        target[leaf] = draw(_near(target[leaf]))
    elif leaf in {"sender", "executor"}:
        target[leaf] = draw(st.sampled_from(addresses) | _hex(20))
    elif leaf == "leaderSignature":
        zero_signature = st.just("0x" + "00" * 65)  # r = s = 0: recovers to no one
        target[leaf] = draw(_hex(65) | zero_signature)
    elif leaf == "checkBlockHash":
        target[leaf] = draw(_hex(32))
    else:  # type, payload (no longer empty), the whole header or item list
        target[leaf] = draw(st.text(max_size=12) | _hex(4))
    body = _encode(obj)
    resign = path.startswith(("header.", "items.")) and leaf != "deadline" and draw(st.booleans())
    if resign:
        try:
            req = decode_batch(body)
        except MessageError:
            return body
        leader = leader_key(world, honest)
        obj["leaderSignature"] = encode_leader_signature(world, leader, req)
        body = _encode(obj)
    return body


def leader_key(world: World, honest: BatchRequest) -> LocalAccount:
    """The key of the honest request's leader."""
    return next(k for k in world.network.net.keepers if k.address == honest.sender)


def receiver_of(world: World, honest: BatchRequest) -> int:
    """The member the honest request goes to: the first one that is not its leader."""
    return next(i for i in world.members if world.key(i).address != honest.sender)


def encode_leader_signature(world: World, leader: LocalAccount, req: BatchRequest) -> str:
    signed = batch_for(world, leader, list(req.items), payloads=list(req.payloads))
    return "0x" + signed.leader_signature.hex()


def bodies(world: World, honest: BatchRequest) -> st.SearchStrategy[bytes]:
    """Mostly mutations of the honest request (they reach the node's checks), some noise."""
    keyed = st.dictionaries(st.sampled_from(REQUEST_KEYS) | st.text(max_size=8), json_values)
    noise = st.binary(max_size=400) | json_values.map(_encode) | keyed.map(_encode)
    return st.sampled_from(["noise", "mutated", "mutated", "mutated"]).flatmap(
        lambda kind: noise if kind == "noise" else mutated(world, honest)
    )


def claimed_sender(body: bytes) -> str | None:
    """The `sender` a body claims, if it has one that is a string."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    sender = obj.get("sender") if isinstance(obj, dict) else None
    return sender.lower() if isinstance(sender, str) else None


def is_the_honest_message(body: bytes, honest: BatchRequest) -> bool:
    try:
        return decode_batch(body) == honest
    except MessageError:
        return False


# ---------------------------------------------------------------------------- the property


@given(data=st.data())
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_property_any_body_gets_a_4xx_and_changes_nothing(
    world: World, honest: BatchRequest, data: st.DataObject
) -> None:
    # given any body, unsigned, signed by the key of the sender it claims (when it is one we
    # hold), by the leader, or by a stranger
    body = data.draw(bodies(world, honest), label="body")
    assume(not is_the_honest_message(body, honest))
    keys = {k.address.lower(): k for k in [*world.network.net.keepers, STRANGER]}
    claimed = keys.get(claimed_sender(body) or "")
    choices = [claimed, leader_key(world, honest), STRANGER, None]
    signer = data.draw(st.sampled_from([c for c in choices if c is not None] + [None]))
    headers = dict(JSON_TYPE) if signer is None else signed_headers(body, signer)

    # when it is posted to a member of the job's quorum
    status, code = await expect_refused(world, receiver_of(world, honest), body, headers)

    # then it is refused with a 4xx and a known code, and nothing changed (expect_refused)
    event(f"{status} {code}")
    assert 400 <= status <= 499
    assert code in ERROR_CODES


async def test_after_the_property_the_honest_request_is_signed(
    world: World, honest: BatchRequest
) -> None:
    # when the honest message itself is posted after all the bodies above
    status, answer = await post_request(
        world, receiver_of(world, honest), honest, leader_key(world, honest)
    )

    # then the node, still up and unchanged, signs it
    assert status == 200, answer
