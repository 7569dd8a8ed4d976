"""When a node's `rotate` or `slashEquivocation` can no longer succeed (keeper/core/doom.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.core.doom import (
    compute_rotate_doom_reason,
    compute_rotate_purpose,
    compute_slash_doom_reason,
    compute_slash_purpose,
    get_rotate_epoch,
    get_slash_signer,
)

SIGNER = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"


def test_purposes_name_what_the_doom_rules_read() -> None:
    assert get_rotate_epoch(compute_rotate_purpose(7, 1234)) == 7
    assert get_slash_signer(compute_slash_purpose(SIGNER)) == SIGNER.lower()
    for other in ("execute:3:1", "cancel:rotate:7:1234", "rotate", "rotate:x:1", "slash:"):
        assert get_rotate_epoch(other) is None
        assert get_slash_signer(other) is None


def test_a_rotate_of_an_epoch_others_rotated_is_doomed() -> None:
    assert compute_rotate_doom_reason(3, 4) == "epoch_rotated"
    assert compute_rotate_doom_reason(3, 3) is None  # armed or not: it may still succeed
    assert compute_rotate_doom_reason(0, None) is None  # no epoch yet


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("active", None),
        ("exiting", None),
        (None, None),
        ("none", None),
        ("slashed", "already_slashed"),
        ("withdrawn", "nothing_to_slash"),
    ],
)
def test_a_slash_of_a_keeper_that_cannot_be_slashed_is_doomed(
    status: str | None, reason: str | None
) -> None:
    assert compute_slash_doom_reason(status) == reason


@given(st.integers(0, 2**64), st.integers(0, 2**64), st.integers(0, 5))
def test_a_doomed_rotate_stays_doomed_as_epochs_pass(sent: int, current: int, more: int) -> None:
    if compute_rotate_doom_reason(sent, current) is not None:
        assert compute_rotate_doom_reason(sent, current + more) is not None
