"""The anvil devnet tells a newcomer which key owns the demo jobs and where the demo target is,
and the commands it prints work as printed, from another shell, while it runs."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.support import KEEPER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STARTUP_SECONDS = 180
M = re.MULTILINE


def test_the_anvil_devnet_prints_accounts_whose_commands_work(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(KEEPER), "devnet", "--chain", "anvil", "--workdir", str(tmp_path / "devnet")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            if line.strip().endswith("keeper job list") or time.monotonic() > deadline:
                break
        text = "\n".join(seen)
        owner = re.search(r"^job owner (0x[0-9a-fA-F]{40}) owns jobs ([0-9, ]+); its key", text, M)
        target = re.search(r"^demo target (0x[0-9a-fA-F]{40}) \(DemoTarget", text, M)
        export = re.search(r"^  export (.*)$", text, M)
        assert owner and target and export, text
        assert re.search(r"^keeper 0 0x[0-9a-fA-F]{40}; its key 0x[0-9a-f]{64}$", text, M)
        # when the printed export line is used in another shell
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPER_")}
        env |= dict(item.split("=", 1) for item in shlex.split(export.group(1)))
        listed = subprocess.run(
            [str(KEEPER), "job", "list", "--owner", owner.group(1)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # then it lists the demo jobs, all calling the printed target
        assert listed.returncode == 0, listed.stderr
        rows = listed.stdout.splitlines()[1:]
        ids = {int(row.split()[0]) for row in rows}
        assert ids == {int(x) for x in owner.group(2).split(",")}
        assert all(target.group(1) in row for row in rows)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
