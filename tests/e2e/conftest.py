"""e2e tests share one xdist worker: each starts anvil and several keeper processes, and two
such clusters at once on a 2-core machine would starve each other's turns.

The reorg, keeper-set and crash-soak tests were written at the end of the first session and
have not yet been run in a full CI pass: they run only with KEEPER_E2E_ALL=1 until a session
has seen them pass there (see the issue notes), so an unverified test cannot turn CI red.
"""

from __future__ import annotations

import os

import pytest

NOT_YET_IN_DEFAULT_RUN = {"test_reorg.py", "test_keeper_set.py", "test_crash_soak.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_all = os.environ.get("KEEPER_E2E_ALL") == "1"
    kept, deselected = [], []
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.xdist_group("e2e"))
            if not run_all and item.fspath.basename in NOT_YET_IN_DEFAULT_RUN:
                deselected.append(item)
                continue
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
