#!/bin/bash
# Builds the Debian package with cargo-deb (metadata in Cargo.toml under
# [package.metadata.deb], maintainer scripts in packaging/scripts/) and
# prints its path. Man pages and completions are generated from the command
# line's definitions by the binary just built.
#   bash packaging/build-deb.sh        -> target/deb/mailbackup_VERSION-1_ARCH.deb
# Environment:
#   MAILBACKUP_MAINTAINER="Name <address>"   the Maintainer field
#   MAILBACKUP_DEB_VERSION=VERSION           the package's version (with revision)
#   MAILBACKUP_DEB_PROFILE=PROFILE           the cargo profile (default release)
#   MAILBACKUP_DEB_OUTPUT=FILE               where to write the package
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb > /dev/null; then
    echo "cargo-deb is missing: run tests/setup.sh, or cargo install cargo-deb --locked" >&2
    exit 1
fi
profile=${MAILBACKUP_DEB_PROFILE:-release}
# --version and the man pages say the package's version.
if [ -n "${MAILBACKUP_DEB_VERSION:-}" ]; then
    export MAILBACKUP_VERSION=$MAILBACKUP_DEB_VERSION
else
    unset MAILBACKUP_VERSION
fi
cargo build --profile "$profile" --locked -q

docs=target/deb-docs
rm -rf "$docs"
"${CARGO_TARGET_DIR:-target}/$profile/mailbackup" generate-docs "$docs" > /dev/null

# Written aside and renamed into place: whoever reads the package meanwhile
# (the tests do, in parallel) reads the old one or the new one, whole. Not
# in target/debian, whose packages cargo-deb deletes when it starts.
tmp=$(mktemp -d "${CARGO_TARGET_DIR:-target}/deb-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
args=(--no-build --locked --profile "$profile" --quiet --output "$tmp")
[ -z "${MAILBACKUP_MAINTAINER:-}" ] || args+=(--maintainer "$MAILBACKUP_MAINTAINER")
[ -z "${MAILBACKUP_DEB_VERSION:-}" ] || args+=(--deb-version "$MAILBACKUP_DEB_VERSION")
built=$(cargo deb "${args[@]}")
deb=${MAILBACKUP_DEB_OUTPUT:-${CARGO_TARGET_DIR:-target}/deb/$(basename "$built")}
mkdir -p "$(dirname "$deb")"
mv "$built" "$deb"
realpath "$deb"
