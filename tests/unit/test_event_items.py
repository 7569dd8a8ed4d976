"""A member accepts item (job, r+k) of an Event job only as the k-th next confirmed log after
round r's, with the same payload: round r's item is checked in full first, and this rule says
what its later rounds must be. Pure, no chain."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from keeper.core.jobs import NO_PAYLOAD
from keeper.core.report import Report
from keeper.errors import PeerRejected
from keeper.node.evaluate import Proposal
from keeper.node.member import MemberService

PAYLOAD = NO_PAYLOAD  # an Event item carries none: the job's call is in its forwarder's code
LOGS = ((7 << 32) | 1, (7 << 32) | 2, (8 << 32) | 0)  # the logs after round 3's


def proposal() -> Proposal:
    return Proposal(job_id=5, round=3, cursor=(7 << 32) | 0, payload=PAYLOAD, next_cursors=LOGS)


def item(round_: int, cursor: int, payload: bytes = PAYLOAD) -> Report:
    return Report(
        jobId=5,
        round=round_,
        epoch=1,
        cursor=cursor,
        checkBlock=9,
        checkBlockHash=b"\x00" * 32,
        payloadHash=keccak(payload),
        executor="0x" + "11" * 20,
        deadline=20,
    )


def refusal(report: Report, k: int, payload: bytes = PAYLOAD) -> tuple[int, str] | None:
    try:
        MemberService._check_next_item(report, payload, proposal(), k)
    except PeerRejected as exc:
        return exc.status, exc.code
    return None


@pytest.mark.parametrize("k", [1, 2, 3])
def test_round_r_plus_k_with_the_kth_next_log_is_accepted(k: int) -> None:
    assert refusal(item(3 + k, LOGS[k - 1]), k) is None


def test_another_log_for_round_r_plus_k_is_a_cursor_mismatch() -> None:
    assert refusal(item(5, LOGS[0]), 2) == (422, "CursorMismatch")


def test_a_round_past_the_logs_this_node_has_confirmed_is_not_due() -> None:
    assert refusal(item(7, (9 << 32) | 0), 4) == (422, "NotDue")


def test_a_round_whose_predecessor_is_missing_is_the_wrong_round() -> None:
    # round 5 right after round 3's item: round 4 is not before it
    assert refusal(item(5, LOGS[1]), 1) == (409, "WrongRound")


def test_a_round_already_done_is_refused_as_done() -> None:
    assert refusal(item(2, LOGS[0]), 1) == (409, "RoundDone")


def test_another_payload_is_refused() -> None:
    assert refusal(item(4, LOGS[0], b"other"), 1, b"other") == (422, "PayloadMismatch")
