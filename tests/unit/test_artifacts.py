"""The committed contract artifacts are exactly what the sources compile to."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_artifacts_match_sources() -> None:
    # given the repo's solc-js (package.json pins it) and the committed artifacts
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required to recompile the contracts (scripts/setup.sh installs it)")
    # when the sources are compiled again in memory and compared with contracts/artifacts/
    result = subprocess.run(
        [node, "scripts/compile.mjs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # then nothing is missing, stale or different
    assert result.returncode == 0, result.stdout + result.stderr
