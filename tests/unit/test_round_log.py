"""RoundLog: each kind of line once per round, repeats counted and summarised in one line when
the round is done (a later round of its job, retired, or evicted past the table's bound)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.monitor.repeats import RoundLog

LOGGER = "test.round_log"


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_kind_is_logged_once_per_round_and_counted_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    rounds = RoundLog(logging.getLogger(LOGGER))
    for head in range(50):
        rounds.log([(1, 0)], "round.no_quorum", logging.INFO, "round.no_quorum head=%d", head)
        rounds.log([(1, 0)], "peer.unreachable:0xa", logging.INFO, "peer.unreachable head=%d", head)
    assert messages(caplog) == ["round.no_quorum head=0", "peer.unreachable head=0"]
    # when a later round of the job is seen, the earlier one is summarised in one line
    rounds.log([(1, 1)], "round.lead", logging.INFO, "round.lead")
    assert messages(caplog)[2:] == [
        "round.repeats job=1 round=0 peer.unreachable:0xa=49 round.no_quorum=49",
        "round.lead",
    ]
    assert len(rounds) == 1


def test_a_batch_line_is_logged_if_any_of_its_rounds_is_new(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    rounds = RoundLog(logging.getLogger(LOGGER))
    assert rounds.log([(1, 0)], "peer.unreachable:0xa", logging.INFO, "a")
    assert not rounds.log([(1, 0)], "peer.unreachable:0xa", logging.INFO, "b")
    assert rounds.log([(1, 0), (2, 0)], "peer.unreachable:0xa", logging.INFO, "c")
    assert messages(caplog) == ["a", "c"]


def test_retired_rounds_are_summarised_only_if_something_was_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    rounds = RoundLog(logging.getLogger(LOGGER))
    rounds.log([(1, 0)], "round.lead", logging.INFO, "lead 1")
    rounds.log([(2, 0)], "round.lead", logging.INFO, "lead 2")
    rounds.log([(2, 0)], "round.lead", logging.INFO, "lead 2 again")
    rounds.retire([])
    assert messages(caplog) == ["lead 1", "lead 2", "round.repeats job=2 round=0 round.lead=1"]
    assert len(rounds) == 0


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3), st.sampled_from("abc"))))
def test_lines_per_round_are_bounded_and_memory_too(
    events: list[tuple[int, int, str]],
) -> None:
    logger = logging.getLogger(LOGGER + ".property")
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        rounds = RoundLog(logger, max_rounds=8)
        for job, round_, kind in events:
            rounds.log([(job, round_)], kind, logging.INFO, "%s job=%d round=%d", kind, job, round_)
            assert len(rounds) <= 8
        rounds.retire([])
    finally:
        logger.removeHandler(handler)
    # every line kind counted: each line said or summarised, never more than kinds + 1 per
    # round between two summaries of it
    total = sum(1 for m in said if not m.startswith("round.repeats"))
    held = sum(
        int(part.split("=")[1])
        for m in said
        if m.startswith("round.repeats")
        for part in m.split()[3:]
    )
    assert total + held == len(events)
