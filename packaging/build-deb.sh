#!/bin/bash
# Builds the Debian package: /usr/bin/mailbackup, depending on duplicity,
# with no maintainer script (box setup runs `mailbackup install`).
#   bash packaging/build-deb.sh        -> target/debian/mailbackup_VERSION_ARCH.deb
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
cargo build --release --locked -q

stage=target/debian/stage
rm -rf "$stage"
install -D -m 0755 target/release/mailbackup "$stage/usr/bin/mailbackup"
install -D -m 0644 README.md "$stage/usr/share/doc/mailbackup/README.md"
install -D -m 0644 packaging/copyright "$stage/usr/share/doc/mailbackup/copyright"
mkdir -p "$stage/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" \
    -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$stage" | cut -f1)/" \
    packaging/control.in > "$stage/DEBIAN/control"
deb=target/debian/mailbackup_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$stage" "$deb" > /dev/null
echo "$deb"
