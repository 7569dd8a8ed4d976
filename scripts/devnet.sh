#!/usr/bin/env bash
# Set up (Python only: the committed artifacts mean no Node.js is needed) and run the
# keeper network on an embedded chain. Extra arguments go to `keeper devnet`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh --python-only
exec .venv/bin/keeper devnet "$@"
