#!/bin/bash
# Installs what the tests need (as root, on Debian 12) and runs all of them:
# formatting, lints, unit tests, and the integration tests against real
# duplicity 0.8 and 3.x.
#   bash tests/run-all.sh
# Every tier of tests/it/ runs (see tests/it/main.rs): as a normal user the
# tests that need root would only return, so this refuses to run as one.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/run-all.sh runs every test, and most need root: sudo bash tests/run-all.sh" >&2
    exit 1
fi

bash tests/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
bash tests/msrv.sh
cargo nextest run --no-fail-fast
