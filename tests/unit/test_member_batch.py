"""A member signs the accepted items of a batch once, and never with an item its guard refuses.

The guard (the store's one row per item, inserted only if no other result is stored for the
item's key) is asked before the signature leaves the node; an item it refuses is answered 409
`Conflict` and the rest are signed again without it, as their own batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from eth_account import Account

from keeper.core.messages import BatchRequest, Refusal
from keeper.core.report import Batch, Domain, Report, compute_batch_digest, recover_batch_signer
from keeper.monitor.metrics import NodeMetrics
from keeper.node import member as member_module
from keeper.node.context import NodeContext, NodeOptions
from keeper.node.member import MemberService
from keeper.store.db import Store

DOMAIN = Domain(1, "0x" + "22" * 20)


class GuardOf:
    """The part of Store a batch answer writes to: refuses every row of `conflicting` jobs
    (another result stored for their key) and records what it was asked."""

    def __init__(self, conflicting: set[int]) -> None:
        self.conflicting = conflicting
        self.asked: list[list[tuple[int, bytes]]] = []

    async def record_signatures(self, rows: Sequence[Any]) -> list[bool]:
        self.asked.append([(report.jobId, digest) for report, digest, _ in rows])
        return [report.jobId not in self.conflicting for report, _, _ in rows]


def a_member(store: GuardOf) -> tuple[MemberService, str]:
    account = Account.create()
    ctx = NodeContext(account, DOMAIN, cast(Store, store), NodeOptions())

    async def sync_now(block: int) -> int:
        return block

    service = MemberService(ctx, cast(Any, None), NodeMetrics(), sync_now, lambda: False)

    async def envelope(req: Any, began: float) -> Any:
        return member_module._Envelope(0, (), 9, 0.0)

    async def check_item(req: Any, index: int, envelope: Any, known: Any = None) -> None:
        return None  # every item is this node's own result

    service._check_envelope = envelope  # type: ignore[method-assign]
    service._check_item = check_item  # type: ignore[method-assign]
    return service, str(account.address)


def a_batch(jobs: list[int], leader: str) -> BatchRequest:
    base = Report(1, 0, 1, 5, 9, b"\x01" * 32, b"\x02" * 32, leader, 40)
    batch = Batch.of([Report(**{**base.__dict__, "jobId": job}) for job in jobs])
    return BatchRequest.of(leader, 9, batch, [b""] * len(jobs), b"")


async def test_an_item_the_guard_refuses_is_409_and_the_rest_are_signed_without_it() -> None:
    # given a member that signed another result for job 2's key before (a restart ago)
    store = GuardOf(conflicting={2})
    member, address = a_member(store)
    req = a_batch([1, 2, 3], address)

    # when a batch of jobs 1, 2 and 3 asks it to sign
    answer = await member.handle_batch(req)

    # then job 2 is refused as a conflict, jobs 1 and 3 accepted
    first, conflict, third = answer.results
    assert (first, third) == (True, True)
    assert isinstance(conflict, Refusal) and (conflict.status, conflict.code) == (409, "Conflict")
    # and the one signature is over the batch of jobs 1 and 3, whose rows were stored with
    # that batch's digest before it left (the first try's rows are the same results)
    subset = req.batch.subset([0, 2])
    assert answer.signature is not None
    assert recover_batch_signer(subset, DOMAIN, answer.signature) == address
    full, again = store.asked
    assert full == [(j, compute_batch_digest(req.batch, DOMAIN)) for j in (1, 2, 3)]
    assert again == [(j, compute_batch_digest(subset, DOMAIN)) for j in (1, 3)]


async def test_when_the_guard_refuses_every_item_no_signature_leaves() -> None:
    store = GuardOf(conflicting={1, 2})
    member, address = a_member(store)

    answer = await member.handle_batch(a_batch([1, 2], address))

    assert answer.signature is None
    assert all(isinstance(r, Refusal) and r.code == "Conflict" for r in answer.results)
    assert len(store.asked) == 1
