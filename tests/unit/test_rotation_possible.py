"""`canRotate()` is asked unless the registry state last read rules a rotation out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keeper.core.rotation import ROTATION_LOOKAHEAD_SECONDS, EpochTiming, is_rotation_possible

DUE_AT = 1_000_000
RUNNING = EpochTiming(
    generation=7, block=500, epoch=3, set_changed=False, due_at=DUE_AT, arm_block=0
)
LONG_BEFORE = DUE_AT - ROTATION_LOOKAHEAD_SECONDS - 1


def test_an_epoch_running_far_from_its_end_rules_it_out() -> None:
    assert not is_rotation_possible(RUNNING, 7, LONG_BEFORE)


@pytest.mark.parametrize(
    "head_timestamp", [DUE_AT - ROTATION_LOOKAHEAD_SECONDS, DUE_AT - 1, DUE_AT, DUE_AT + 3600]
)
def test_from_a_lookahead_before_the_end_on_it_is_asked(head_timestamp: int) -> None:
    assert is_rotation_possible(RUNNING, 7, head_timestamp)


@pytest.mark.parametrize(
    "timing",
    [
        None,  # never read (or the provider could not answer at the store's head)
        replace(RUNNING, generation=6),  # read before the store applied a registry event
        replace(RUNNING, epoch=0),  # no epoch yet: due as soon as anyone is active
        replace(RUNNING, arm_block=480),  # armed: due once the seed block has passed
        replace(RUNNING, set_changed=True),  # a set change: due once MIN_EPOCH_BLOCKS old
    ],
)
def test_what_the_reading_cannot_rule_out_is_asked(timing: EpochTiming | None) -> None:
    assert is_rotation_possible(timing, 7, LONG_BEFORE)
