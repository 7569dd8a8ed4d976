"""What the live benchmarks share when they report: the machine they ran on and the writing of
their own section of docs/benchmarks.md (between its markers, the rest left untouched)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from keeper.chain.anvil import ANVIL

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"


def git(*args: str) -> str:
    """A git command's output in this repository, stripped."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def commit_label(*measured: str) -> str:
    """HEAD's short hash, marked "(+ uncommitted)" when a measured path differs from it: a
    figure is named by the commit it measured."""
    dirty = " (+ uncommitted)" if git("status", "--porcelain", "--", *measured) else ""
    return git("rev-parse", "--short", "HEAD") + dirty


def publish(begin: str, end: str, section: str, *, no_write: bool) -> None:
    """Prints the section (--no-write) or writes it into docs/benchmarks.md."""
    if no_write:
        print(section)
    else:
        write_section(begin, end, section)


def machine() -> str:
    """Cores, CPU model, OS, Python and anvil versions, as one line for the docs."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        anvil = subprocess.run(
            [str(ANVIL), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()[0]
    except (OSError, IndexError):
        anvil = "anvil"
    return (
        f"{os.cpu_count()} cores (nproc), {model}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, {anvil}"
    )


def write_section(begin: str, end: str, section: str, docs: Path = DOCS) -> None:
    """Replaces the text between `begin` and `end` (markers included) with `section`, which
    starts with `begin` and ends with `end`; a missing section is added at the end."""
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    if begin not in text:
        text = text.rstrip("\n") + "\n\n" + begin + "\n" + end + "\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    docs.write_text(head + section + tail)
