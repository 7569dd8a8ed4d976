#!/usr/bin/env bash
# Every check the CI runs: setup, lint, types, static analysis of the contracts, tests.
# Extra arguments go to pytest.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

echo "test: ruff" >&2
.venv/bin/ruff check keeper tests benchmarks scripts
.venv/bin/ruff format --check keeper tests benchmarks scripts

echo "test: mypy" >&2
.venv/bin/mypy keeper

echo "test: slither" >&2
bash scripts/slither.sh

echo "test: pytest" >&2
status=0
# loadfile: a module's tests run on one worker, in file order (several share one anvil and
# build on the state the earlier ones left). xdist's loadgroup does not group under pytest 9.
.venv/bin/pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@" || status=$?
if [[ "$status" == 5 ]]; then
    echo "test: pytest collected no tests" >&2
fi
exit "$status"
