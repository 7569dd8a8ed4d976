"""Which jobs a keeper serves at a block: its quorums in the epoch started before the block, and
the previous epoch's through the registry's grace period."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from keeper.core.quorum import Member, compute_quorum_of
from keeper.core.serving import (
    EPOCH_GRACE_BLOCKS,
    Seat,
    compute_seat,
    compute_serving_seats,
    is_job_served,
)

ME = "0x" + "11" * 20
OTHER = "0x" + "22" * 20
THIRD = "0x" + "33" * 20


def seat(epoch: int, start: int, quorums: frozenset[int] = frozenset({0})) -> Seat:
    return Seat(epoch, start, bytes([epoch]) * 32, 2, quorums)


def test_a_seat_is_the_quorums_the_member_sits_in() -> None:
    quorums = [[Member(OTHER, 1)], [Member(ME.upper().replace("0X", "0x"), 1), Member(THIRD, 1)]]
    mine = compute_seat(3, 100, b"\x01" * 32, quorums, ME)
    assert mine.quorums == frozenset({1}) and mine.count == 2
    assert compute_seat(3, 100, b"\x01" * 32, quorums, "0x" + "44" * 20).quorums == frozenset()


@given(st.integers(min_value=1, max_value=10_000))
def test_a_job_is_served_by_the_seat_of_its_quorum(job_id: int) -> None:
    seed = b"\x07" * 32
    index = compute_quorum_of(seed, job_id, 3)
    assert Seat(1, 0, seed, 3, frozenset({index})).is_serving(job_id)
    assert not Seat(1, 0, seed, 3, frozenset({0, 1, 2} - {index})).is_serving(job_id)
    assert not Seat(1, 0, seed, 3, frozenset()).is_serving(job_id)


def test_an_epoch_serves_from_the_block_after_it_started() -> None:
    first, second = seat(1, 10), seat(2, 100)
    assert compute_serving_seats([first, second], 10) == ()
    assert compute_serving_seats([first, second], 11) == (first,)
    assert compute_serving_seats([first, second], 100) == (first,)
    assert compute_serving_seats([first, second], 101) == (first, second)


def test_the_previous_epoch_serves_through_the_grace_period_only() -> None:
    first, second = seat(1, 10), seat(2, 100)
    assert compute_serving_seats([second, first], 100 + EPOCH_GRACE_BLOCKS) == (first, second)
    assert compute_serving_seats([first, second], 101 + EPOCH_GRACE_BLOCKS) == (second,)
    # an epoch two back never serves, however close its start
    third = seat(3, 105)
    assert compute_serving_seats([first, second, third], 106) == (second, third)


def test_no_seat_serves_no_job() -> None:
    assert not is_job_served((), 1)
    assert is_job_served((seat(1, 0, frozenset({0, 1})),), 1)
