#!/usr/bin/env bash
# Slither over contracts/, checked against contracts/slither-triage.txt (see scripts/slither_triage.py).
#
#   bash scripts/slither.sh                # fails on untriaged findings and on stale triage lines
#   bash scripts/slither.sh --print-keys   # every current finding: key, impact, description
#   bash scripts/slither.sh --update       # rewrite the triage file: reasons kept, new keys TODO
#
# Needs .venv-slither and node_modules, both made by `bash scripts/setup.sh`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x .venv-slither/bin/python ]]; then
    echo "slither: .venv-slither is missing: run bash scripts/setup.sh" >&2
    exit 2
fi
exec .venv-slither/bin/python scripts/slither_triage.py "$@"
