#!/usr/bin/env bash
# Idempotent setup: Python venv + editable install, node_modules for contracts/tests, and
# Slither in its own venv (.venv-slither) for the static analysis of the contracts.
# Each step is skipped while its input file (pyproject.toml, package-lock.json,
# scripts/slither-requirements.txt) is unchanged.
#
#   bash scripts/setup.sh                 # Python, Node.js and Slither parts
#   bash scripts/setup.sh --python-only   # only the keeper itself (no Node.js needed)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

python_only=0
for arg in "$@"; do
    case "$arg" in
        --python-only) python_only=1 ;;
        *) echo "setup: unknown option: $arg" >&2; exit 2 ;;
    esac
done

say() { echo "setup: $*" >&2; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

find_python() {
    if command -v python3.11 >/dev/null 2>&1; then
        echo python3.11
    elif command -v python3 >/dev/null 2>&1 &&
        python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        echo python3
    else
        return 1
    fi
}

# --- Python -----------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
    py=$(find_python) || {
        say "Python 3.11 not found: install python3.11 (e.g. apt-get install python3.11 python3.11-venv)"
        exit 1
    }
    say "creating .venv with $py"
    "$py" -m venv .venv
fi

py_stamp=".venv/.installed-$(sha_of pyproject.toml)"
if [[ ! -f "$py_stamp" ]]; then
    say "installing keeper and dev tools into .venv (pyproject.toml changed)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    rm -f .venv/.installed-*
    touch "$py_stamp"
fi

if [[ "$python_only" == 1 ]]; then
    exit 0
fi

# --- Node.js (solc-js for contracts, anvil for e2e tests) --------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "Node.js and npm are required to compile contracts and run the tests: apt-get install nodejs npm"
    exit 1
fi

node_stamp="node_modules/.installed-$(sha_of package-lock.json)"
if [[ ! -f "$node_stamp" ]]; then
    say "installing node_modules (package-lock.json changed)"
    npm ci --no-audit --no-fund --loglevel=error >&2
    rm -f node_modules/.installed-*
    touch "$node_stamp"
fi

# --- Chromium (the dashboard's browser test, tests/dashboard) -----------------
if [[ ! -x /usr/bin/chromium ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing chromium for the dashboard's browser test"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
    else
        say "chromium missing: the dashboard test is skipped (as root: apt-get install -y chromium chromium-driver)"
    fi
fi

# --- Slither (static analysis of contracts/, in a venv of its own) -----------
if [[ ! -x .venv-slither/bin/python ]]; then
    py=$(find_python) || {
        say "Python 3.11 not found: install python3.11 (e.g. apt-get install python3.11 python3.11-venv)"
        exit 1
    }
    say "creating .venv-slither with $py"
    "$py" -m venv .venv-slither
fi

slither_stamp=".venv-slither/.installed-$(sha_of scripts/slither-requirements.txt)"
if [[ ! -f "$slither_stamp" ]]; then
    say "installing slither into .venv-slither (scripts/slither-requirements.txt changed)"
    .venv-slither/bin/python -m pip install --quiet --disable-pip-version-check \
        -r scripts/slither-requirements.txt
    rm -f .venv-slither/.installed-*
    touch "$slither_stamp"
fi
