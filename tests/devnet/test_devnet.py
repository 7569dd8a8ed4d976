"""`keeper devnet`, the README's main command, run as a person runs it: the console script."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

KEEPER = Path(sys.executable).parent / "keeper"


def test_devnet_executes_every_kind_and_writes_a_summary(tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    # when the devnet runs for 40 seconds
    result = subprocess.run(
        [str(KEEPER), "devnet", "--duration", "40", "--summary-json", str(summary_file)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    # then it stops cleanly by itself
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "stopped cleanly" in result.stdout
    # and every kind of job executed at least once, as the summary says
    summary = json.loads(summary_file.read_text())
    kinds = {job["kind"] for job in summary["jobs"]}
    assert kinds == {"Time", "Cron", "Event", "Condition"}
    for job in summary["jobs"]:
        assert job["executions"] >= 1, job
        assert job["rounds"] == job["executions"], job
    assert any(j["name"].startswith("automation") and j["executions"] >= 1 for j in summary["jobs"])
    assert len(summary["keepers"]) == 4
    assert sum(k["executions_submitted"] for k in summary["keepers"]) == sum(
        j["executions"] for j in summary["jobs"]
    )
    assert all(k["reports_signed"] > 0 for k in summary["keepers"])
    # and executions were shown live, with where each keeper's dashboard is
    assert "round   0" in result.stdout
    assert "/dashboard/" in result.stdout


def test_ctrl_c_stops_the_devnet_cleanly(tmp_path: Path) -> None:
    workdir = tmp_path / "devnet"
    proc = subprocess.Popen(
        [str(KEEPER), "devnet", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # given a running devnet that has started executing
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if "round   0" in line or time.monotonic() > deadline:
                break
        # when it gets SIGINT (Ctrl-C)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # then it exits 0 and every keeper's store was closed cleanly (no WAL left, intact)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped cleanly" in out
    stores = sorted(workdir.glob("keeper*.db"))
    assert len(stores) == 4
    for store in stores:
        assert (
            not Path(str(store) + "-wal").exists() or Path(str(store) + "-wal").stat().st_size == 0
        )
        with sqlite3.connect(store) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
