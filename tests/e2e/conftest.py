"""e2e tests: each starts anvil and several keeper processes. scripts/test.sh runs them with
`--dist loadfile`, so one file's tests share a worker; two files' clusters may run side by
side, and the tests must stand that load (no wall-time limits, turns counted in blocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.cluster import Cluster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
async def _close_cluster_clients(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """A test's `cluster.web3()` sessions belong to its event loop: close them there, after
    the test (the cluster fixtures that stop the processes are synchronous)."""
    yield
    for value in request.node.funcargs.values():
        cluster = value if isinstance(value, Cluster) else getattr(value, "cluster", None)
        if isinstance(cluster, Cluster):
            await cluster.close_clients()
