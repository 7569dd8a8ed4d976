"""Where a round's agreement time goes, from the logs of a kept latency run.

Run: .venv/bin/python benchmarks/timeline.py /tmp/keeper-latency-7-XXXX
     (a directory `benchmarks/latency.py --keep-logs` left behind)

The leader logs `round.lead` when it starts a round and `round.threshold ... ms=` when it holds
threshold stake; each member logs `batch.signed ... ms= rounds=job:round,...` when it has stored
its signature over a batch, with the time its handler took. Log timestamps are wall-clock
milliseconds of one machine, so the members' lines can be placed on the leader's timeline:

- lead spread: how long after the first `round.lead` of the same check block this one came
  (every keeper gets the head at once, so rounds of one block start in a burst);
- member handler: a member's time inside its handler (CPU plus waits for its own event loop);
- first handler start: when the quickest member began on the request (send, scheduling);
- k-th member signed: when the k-th member had signed (k = signatures the leader needed);
- threshold: the leader's own figure; what lies past the k-th signature is the answer's way
  back and the leader's event loop getting to it.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ \S+ (\S+) (.*)$")
Key = tuple[int, int]  # (job, round)


@dataclass
class Round:
    lead_at: float | None = None
    check_block: int = 0
    threshold_ms: float | None = None
    signers: int = 0
    signed: list[tuple[float, float]] = field(default_factory=list)  # (logged at, handler ms)


def _fields(rest: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in rest.split() if "=" in part)


def _seconds(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def read_rounds(lines: Iterable[str]) -> dict[Key, Round]:
    """Rounds by (job, round) from the lines of every keeper's log."""
    rounds: dict[Key, Round] = defaultdict(Round)
    for line in lines:
        m = LINE.match(line)
        if m is None or m.group(2) not in ("round.lead", "round.threshold", "batch.signed"):
            continue
        at, event, kv = _seconds(m.group(1)), m.group(2), _fields(m.group(3))
        if event == "batch.signed":
            for key in kv["rounds"].split(","):
                job, round_ = key.split(":")
                rounds[(int(job), int(round_))].signed.append((at, float(kv["ms"])))
            continue
        r = rounds[(int(kv["job"]), int(kv["round"]))]
        if event == "round.lead":
            r.lead_at, r.check_block = at, int(kv["check_block"])
        elif event == "round.threshold":
            r.threshold_ms, r.signers = float(kv["ms"]), int(kv["signers"])
    return rounds


def _summary(values: Sequence[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {statistics.median(ordered):6.1f}  p90 {p90:6.1f}  (n={len(ordered)})"


def breakdown(rounds: dict[Key, Round]) -> dict[str, list[float]]:
    """Milliseconds per stage over the rounds that reached threshold (see the module doc)."""
    first_lead: dict[int, float] = {}
    for r in rounds.values():
        if r.lead_at is not None:
            first_lead[r.check_block] = min(first_lead.get(r.check_block, r.lead_at), r.lead_at)
    stages: dict[str, list[float]] = defaultdict(list)
    for r in rounds.values():
        if r.lead_at is None or r.threshold_ms is None or not r.signed:
            continue
        lead = r.lead_at
        stages["lead spread"].append((lead - first_lead[r.check_block]) * 1000)
        stages["member handler"].extend(ms for _, ms in r.signed)
        stages["first handler start"].append(min((at - lead) * 1000 - ms for at, ms in r.signed))
        needed = r.signers - 1  # the leader's own signature is one of them
        ends = sorted((at - lead) * 1000 for at, _ in r.signed)
        if 0 < needed <= len(ends):
            stages["k-th member signed"].append(ends[needed - 1])
        stages["threshold"].append(r.threshold_ms)
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", type=Path, help="directory with keeper*.log")
    args = parser.parse_args(argv)
    files = sorted(args.logs.glob("keeper*.log"))
    if not files:
        print(f"timeline: error: no keeper*.log in {args.logs}", file=sys.stderr)
        return 2
    lines = (line for f in files for line in f.read_text(errors="replace").splitlines())
    stages = breakdown(read_rounds(lines))
    for name in (
        "lead spread",
        "first handler start",
        "member handler",
        "k-th member signed",
        "threshold",
    ):
        print(f"{name:>20} ms: {_summary(stages.get(name, []))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
