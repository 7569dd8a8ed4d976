"""benchmarks/timeline.py places members' log lines on the leader's timeline correctly."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.timeline import breakdown, main, read_rounds

LOGS = [
    # block 10: job 1's leader starts at .000, job 2's leader 30 ms later
    "2026-11-27 10:00:00,000 INFO keeper.node.leader round.lead job=1 round=4 rank=0 cursor=9 "
    "check_block=10",
    "2026-11-27 10:00:00,030 INFO keeper.node.leader round.lead job=2 round=7 rank=0 cursor=9 "
    "check_block=10",
    # job 1: members signed at +12 (handler 5 ms), +20 (8 ms), +26 (4 ms)
    "2026-11-27 10:00:00,012 INFO keeper.node.member batch.signed leader=0xA items=1 "
    "check_block=10 ms=5.0 sync_ms=0.0 rounds=1:4",
    "2026-11-27 10:00:00,026 INFO keeper.node.member batch.signed leader=0xA items=1 "
    "check_block=10 ms=4.0 sync_ms=0.0 rounds=1:4",
    "2026-11-27 10:00:00,020 INFO keeper.node.member batch.signed leader=0xA items=1 "
    "check_block=10 ms=8.0 sync_ms=0.0 rounds=1:4",
    # the leader needed 3 signatures: its own and two members'
    "2026-11-27 10:00:00,029 INFO keeper.node.leader round.threshold job=1 round=4 rank=0 "
    "signers=3 ms=29.5",
    # job 2 never reached threshold: not in the breakdown
    "2026-11-27 10:00:00,050 INFO keeper.node.member batch.signed leader=0xB items=1 "
    "check_block=10 ms=3.0 sync_ms=0.0 rounds=2:7",
    "some unrelated line",
]


def test_stages_of_a_round_are_measured_from_its_leaders_start() -> None:
    stages = breakdown(read_rounds(LOGS))
    assert stages["lead spread"] == pytest.approx([0.0], abs=0.01)
    assert stages["first handler start"] == pytest.approx([7.0], abs=0.01)  # 12 - 5
    assert sorted(stages["member handler"]) == [4.0, 5.0, 8.0]
    assert stages["k-th member signed"] == pytest.approx([20.0], abs=0.01)  # the 2nd member to sign
    assert stages["threshold"] == [29.5]


def test_a_directory_without_logs_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("timeline: error: no keeper*.log")


def test_a_directory_of_logs_prints_every_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keeper0.log").write_text("\n".join(LOGS) + "\n")
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "threshold ms: median   29.5" in out
    assert "lead spread ms: median    0.0" in out


def test_a_signed_batch_counts_for_each_of_its_rounds() -> None:
    line = (
        "2026-11-27 10:00:00,040 INFO keeper.node.member batch.signed leader=0xA items=2 "
        "check_block=10 ms=6.0 sync_ms=0.0 rounds=1:4,3:2"
    )
    rounds = read_rounds([line])
    assert len(rounds[(1, 4)].signed) == len(rounds[(3, 2)].signed) == 1
    assert rounds[(3, 2)].signed[0][1] == 6.0
