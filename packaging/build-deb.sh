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
# Man pages and completions, generated from the command-line definitions.
docs=target/debian/docs
rm -rf "$docs"
target/release/mailbackup generate-docs "$docs" > /dev/null
mkdir -p "$stage/usr/share/man/man1"
for page in "$docs"/man/*.1; do
    gzip -9n < "$page" > "$stage/usr/share/man/man1/$(basename "$page").gz"
done
install -D -m 0644 "$docs/completions/mailbackup.bash" "$stage/usr/share/bash-completion/completions/mailbackup"
install -D -m 0644 "$docs/completions/_mailbackup" "$stage/usr/share/zsh/vendor-completions/_mailbackup"
install -D -m 0644 "$docs/completions/mailbackup.fish" "$stage/usr/share/fish/vendor_completions.d/mailbackup.fish"
mkdir -p "$stage/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" \
    -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$stage" | cut -f1)/" \
    packaging/control.in > "$stage/DEBIAN/control"
deb=target/debian/mailbackup_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$stage" "$deb" > /dev/null
echo "$deb"
