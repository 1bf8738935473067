#!/bin/bash
# Builds the package with the Rust that Cargo.toml's rust-version names, if
# that toolchain is here: the one running, or one rustup has installed
# (rustup cannot download one in CI). Else says so in one line.
#   bash tests/msrv.sh
set -euo pipefail
cd "$(dirname "$0")/.."

msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
if [ -z "$msrv" ]; then
    echo "msrv: Cargo.toml declares no rust-version" >&2
    exit 1
fi
running=$(rustc --version)
if [ "$(echo "$running" | cut -d' ' -f2)" = "$msrv" ]; then
    cargo build --locked
    echo "msrv: built with rust $msrv, the rust-version"
elif rustup toolchain list 2>/dev/null | grep -q "^$msrv-"; then
    cargo "+$msrv" build --locked --target-dir target/msrv
    echo "msrv: built with rust $msrv, the rust-version"
else
    echo "msrv: rust $msrv (the rust-version) is not installed here, so not checked; the tests ran with $running"
fi
