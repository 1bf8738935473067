#!/bin/bash
# Installs what the tests need (as root, on Debian 12) and runs all of them:
# formatting, lints, unit tests, and the integration tests against real
# duplicity 0.8 and 3.x.
#   bash tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
bash tests/msrv.sh
cargo nextest run --no-fail-fast
