"""Each package imports only what its room may touch (STYLE.md): the core is pure, only chain/
talks to web3, only store/ to the database, only peers/ serves HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "keeper"

IO_MODULES = {"web3", "aiohttp", "aiosqlite", "asyncio", "psutil", "apscheduler", "sqlite3"}
ALLOWED = {
    "core": set(),
    "chain": {"web3", "asyncio", "aiohttp"},
    "store": {"aiosqlite", "sqlite3", "asyncio"},
    "peers": {"aiohttp", "asyncio"},
    "monitor": {"psutil", "apscheduler"},
    "node": {"asyncio", "apscheduler", "web3"},
    # The shell the user drives: chain access through keeper.chain, its own small HTTP calls
    # (status, webhooks); never the store or the scheduler.
    "cli": {"web3", "asyncio", "aiohttp"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_each_room_imports_only_its_io() -> None:
    violations = []
    for room, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / room).rglob("*.py")):
            bad = (imported_roots(path) & IO_MODULES) - allowed
            if bad:
                violations.append(f"{path.relative_to(PACKAGE)}: {sorted(bad)}")
    assert violations == []


def test_the_core_imports_nothing_of_the_node() -> None:
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("keeper")
            ):
                assert node.module.startswith(("keeper.core", "keeper.errors")), (
                    f"{path.name} imports {node.module}"
                )
