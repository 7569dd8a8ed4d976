"""Slither over contracts/, each finding checked against contracts/slither-triage.txt.

Run by scripts/slither.sh with the interpreter of .venv-slither (see scripts/setup.sh):

    bash scripts/slither.sh                # fail on untriaged findings and on stale triage lines
    bash scripts/slither.sh --print-keys   # every current finding: its key and description
    bash scripts/slither.sh --update       # rewrite the triage file: reasons kept, new keys TODO

Slither compiles through scripts/solc-shim.mjs, a `solc` executable backed by solc-js with the
settings of scripts/compile.mjs; node_modules (OpenZeppelin) is filtered out of the results.

A finding's key is its detector and the qualified name of its first element, the thing the
finding is about (`timestamp KeeperRegistry.withdraw`, `uninitialized-state TaskManager._jobs`;
an expression stands for its function), so keys survive edits that move lines. One key covers
every finding of that detector on that element. Triage file lines:

    <key> | <why it is fine, or how it is mitigated>
    exclude <detector> | <why the whole detector is off>

Findings silenced inline (`// slither-disable-...`) or in a slither.db.json are shown all the
same (--show-ignored-findings): this file is the one place where findings are accepted.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRIAGE_FILE = ROOT / "contracts" / "slither-triage.txt"
SHIM = ROOT / "scripts" / "solc-shim.mjs"
SLITHER = ROOT / ".venv-slither" / "bin" / "slither"
# A directory target: crytic-compile takes the *.sol files directly in it, not subdirectories.
TARGET = "contracts/"
TODO = "TODO"

HEADER = """\
# Slither findings on contracts/, accepted one by one; checked by scripts/slither.sh (run by
# scripts/test.sh), which fails on any finding not listed here and on any line here that no
# longer matches a finding.
#
#   <detector> <Contract.element> | <why it is fine, or how it is mitigated>
#   exclude <detector> | <why the whole detector is off>
#
# One key covers every finding of that detector on that element (an expression counts as its
# function). `bash scripts/slither.sh --print-keys` shows each current finding with its key;
# `bash scripts/slither.sh --update` rewrites this file (reasons of matching keys kept, new keys
# marked TODO, which fails the check until a reason replaces it; comments are not kept).
# Only contracts/*.sol are analysed: contracts/demo holds test targets (MaliciousTarget misbehaves
# on purpose), and node_modules is filtered out. Slither sees no call made in inline assembly,
# and builds no IR for OpenZeppelin's ReentrancyGuardTransient internals (a note in its output;
# its reentrancy detectors know the nonReentrant modifier by name).
# A line starting with "~" is a finding slither reports on some runs and not others (its
# timestamp taint analysis is not deterministic, even with PYTHONHASHSEED fixed): accepted when
# reported, not stale when not.
"""

IR_FAILURE = re.compile(r"Impossible to generate IR for (\S+) \((\S+?)#")


@dataclass
class Triage:
    reasons: dict[str, str] = field(default_factory=dict)  # key -> reason
    excluded: dict[str, str] = field(default_factory=dict)  # detector -> reason
    lines: dict[str, int] = field(default_factory=dict)  # key or "exclude <detector>" -> line
    # keys slither reports on some runs only (its taint analysis is not deterministic): a
    # line starting with "~" is accepted when present and not stale when absent
    intermittent: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


@dataclass
class Finding:
    key: str
    check: str
    impact: str
    confidence: str
    descriptions: list[str]


def say(message: str) -> None:
    print(message, file=sys.stderr)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse_triage(path: Path) -> Triage:
    triage = Triage()
    if not path.exists():
        triage.problems.append(f"{shown(path)} does not exist")
        return triage
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{shown(path)}:{number}"
        sometimes = line.startswith("~")
        key, sep, reason = (part.strip() for part in line.removeprefix("~").partition("|"))
        key = " ".join(key.split())
        if not sep or not key:
            triage.problems.append(f"{where}: expected '<key> | <reason>': {line}")
            continue
        if not reason or reason == TODO:
            triage.problems.append(f"{where}: no reason given for {key}")
            continue
        if key in triage.lines:
            triage.problems.append(f"{where}: {key} already listed on line {triage.lines[key]}")
            continue
        triage.lines[key] = number
        words = key.split(" ")
        if words[0] == "exclude":
            if len(words) != 2:
                triage.problems.append(f"{where}: expected 'exclude <detector> | <reason>'")
                continue
            triage.excluded[words[1]] = reason
        elif len(words) != 2:
            triage.problems.append(f"{where}: expected '<detector> <Contract.element> | <reason>'")
        else:
            triage.reasons[key] = reason
            if sometimes:
                triage.intermittent.add(key)
    return triage


def element_name(element: dict[str, Any]) -> str:
    """`Contract.function`, `Contract.function.local`, `Contract.Event`, ...; nodes name their
    function, pragma directives their file."""
    fields = element.get("type_specific_fields") or {}
    parent = fields.get("parent")
    if element.get("type") == "node":
        return element_name(parent) if parent else element.get("name", "?")
    if element.get("type") == "pragma":
        source = (element.get("source_mapping") or {}).get("filename_relative", "?")
        return f"{source}:{element.get('name', '?')}"
    name = str(element.get("name", "?"))
    return f"{element_name(parent)}.{name}" if parent else name


def finding_key(result: dict[str, Any]) -> str:
    elements = result.get("elements") or []
    name = element_name(elements[0]) if elements else "-"
    return f"{result['check']} {''.join(name.split())}"


def run_slither(excluded: list[str]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Slither's detector results, and (function, file) of each function it could not analyse."""
    if not SLITHER.exists():
        sys.exit(f"slither: {shown(SLITHER)} is missing: run bash scripts/setup.sh")
    with tempfile.TemporaryDirectory(prefix="slither-") as tmp:
        out = Path(tmp) / "results.json"
        cmd = [
            str(SLITHER),
            TARGET,
            "--solc-standard-json",
            "--solc",
            str(SHIM),
            "--solc-disable-warnings",
            "--filter-paths",
            "node_modules",
            "--show-ignored-findings",
            "--fail-none",
            "--json",
            str(out),
        ]
        if excluded:
            cmd += ["--exclude", ",".join(sorted(excluded))]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        data = json.loads(out.read_text(encoding="utf-8")) if out.exists() else None
    if proc.returncode != 0 or not data or not data.get("success"):
        sys.stderr.write(proc.stdout + proc.stderr)
        error = (data or {}).get("error") or f"exit status {proc.returncode}"
        sys.exit(f"slither: did not run: {error}")
    results: list[dict[str, Any]] = (data.get("results") or {}).get("detectors") or []
    return results, [(m[1], m[2]) for m in IR_FAILURE.finditer(proc.stderr)]


def group(results: list[dict[str, Any]]) -> dict[str, Finding]:
    findings: dict[str, Finding] = {}
    for result in results:
        key = finding_key(result)
        finding = findings.setdefault(
            key, Finding(key, result["check"], result["impact"], result["confidence"], [])
        )
        finding.descriptions.append(result["description"].strip())
    return dict(sorted(findings.items()))


def indented(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def draft(findings: dict[str, Finding], triage: Triage, with_descriptions: bool) -> str:
    """A triage file for the current findings, keeping the reasons of keys that still match."""
    out = [HEADER]
    for detector, reason in sorted(triage.excluded.items()):
        out.append(f"exclude {detector} | {reason}")
    if triage.excluded:
        out.append("")
    keys = sorted(set(findings) | triage.intermittent)
    for key in keys:
        finding = findings.get(key)
        if with_descriptions and finding is not None:
            out.append(f"# [{finding.impact}/{finding.confidence}]")
            out.extend(indented(d, "#   ") for d in finding.descriptions)
        mark = "~ " if key in triage.intermittent else ""
        out.append(f"{mark}{key} | {triage.reasons.get(key, TODO)}")
        if with_descriptions:
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--print-keys",
        action="store_true",
        help="print every current finding (key, impact, description) as a draft triage file",
    )
    mode.add_argument(
        "--update",
        action="store_true",
        help="rewrite the triage file for the current findings (new keys get TODO)",
    )
    parser.add_argument("--triage", type=Path, default=TRIAGE_FILE, help=argparse.SUPPRESS)
    args = parser.parse_args()
    triage_path: Path = args.triage.resolve()

    started = time.monotonic()
    triage = parse_triage(triage_path)
    results, ir_failures = run_slither(list(triage.excluded))
    findings = group(results)
    elapsed = time.monotonic() - started

    if args.print_keys or args.update:
        for problem in triage.problems:
            say(f"slither: warning: {problem}")
    if args.print_keys:
        sys.stdout.write(draft(findings, triage, with_descriptions=True))
        return 0
    if args.update:
        dropped = sorted(set(triage.reasons) - set(findings) - triage.intermittent)
        triage_path.write_text(draft(findings, triage, with_descriptions=False), encoding="utf-8")
        for key in dropped:
            say(f"slither: dropped stale: {key}")
        todo = [key for key in findings if key not in triage.reasons]
        for key in todo:
            say(f"slither: new, marked {TODO}: {key}")
        say(f"slither: rewrote {shown(triage_path)}")
        return 0

    failed = False
    for problem in triage.problems:
        say(f"slither: triage file: {problem}")
        failed = True
    for name, source in ir_failures:
        # Slither cannot build its IR for some library code (e.g. OpenZeppelin's
        # ReentrancyGuardTransient, TransientSlot's user-defined value types): a gap in its view
        # of node_modules is noted; one in the project's own code would hide findings.
        if source.startswith("node_modules/"):
            say(f"slither: note: no IR for {name} ({source}); not analysed")
        else:
            say(f"slither: could not analyse {name} ({source})")
            failed = True

    untriaged = [f for key, f in findings.items() if key not in triage.reasons]
    for finding in untriaged:
        say(f"\nuntriaged: {finding.key}  [{finding.impact}/{finding.confidence}]")
        for description in finding.descriptions:
            say(indented(description, "    "))
    stale = sorted(
        set(triage.reasons) - set(findings) - triage.intermittent, key=lambda k: triage.lines[k]
    )
    for key in stale:
        line = triage.lines[key]
        why = "its detector is excluded" if key.split()[0] in triage.excluded else "no such finding"
        say(f"stale: {shown(triage_path)}:{line}: {key} ({why})")

    summary = (
        f"slither: {len(results)} finding(s) under {len(findings)} key(s), "
        f"{len(findings) - len(untriaged)} triaged, {len(untriaged)} untriaged, "
        f"{len(stale)} stale triage line(s), {len(triage.excluded)} detector(s) excluded "
        f"({elapsed:.0f} s)"
    )
    say(("\n" if untriaged or stale else "") + summary)
    if untriaged or stale:
        say(
            "slither: add '<key> | <reason>' lines to the triage file, remove stale ones "
            "(bash scripts/slither.sh --update does both, new keys marked TODO)"
        )
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
