#!/usr/bin/env bash
# Set up and run the keeper network. On the embedded chain (the default) only the Python half is
# set up: the committed artifacts mean no Node.js is needed. With `--chain anvil` the npm
# packages are installed too (anvil comes from npm), so it runs on a fresh clone as well.
# Extra arguments go to `keeper devnet`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "devnet: $*" >&2; }

wants_anvil=0
previous=""
for arg in "$@"; do
    if [[ "$arg" == "--chain=anvil" || ( "$previous" == "--chain" && "$arg" == "anvil" ) ]]; then
        wants_anvil=1
    fi
    previous=$arg
done

bash scripts/setup.sh --python-only

if [[ "$wants_anvil" == 1 ]]; then
    stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || ! -x node_modules/.bin/anvil ]]; then
        if ! command -v npm >/dev/null 2>&1; then
            say "--chain anvil needs Node.js 20 and npm (anvil comes from npm): apt-get install nodejs npm"
            exit 1
        fi
        say "installing node_modules for anvil (npm ci)"
        npm ci --no-audit --no-fund --loglevel=error >&2
        rm -f node_modules/.installed-*
        touch "$stamp"
    fi
fi

exec .venv/bin/keeper devnet "$@"
