#!/bin/bash
# Installs what the tests need on a Debian 12 machine, as root: Debian's
# duplicity, duplicity 3.x from PyPI in a venv, the reference program's
# Python dependencies, faketime and sqlite3, cargo-deb (which builds the
# Debian package) and lintian (which checks it); for the off-site targets
# openssh-server and rsync (a private sshd per test), boto3 for both
# duplicity versions, and moto (a local S3 server) in a venv.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(duplicity gnupg faketime python3 python3-dateutil python3-venv sqlite3 systemd
          systemd-container debootstrap util-linux dpkg-dev lintian
          openssh-server openssh-client rsync python3-boto3 python3-b2sdk)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# duplicity 3.x: only what its file://, rsync and boto3 backends need.
venv=target/test-tools/duplicity3
if ! "$venv/bin/duplicity" --version 2>/dev/null | grep -q '^duplicity 3\.'; then
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --no-deps 'duplicity==3.2.1' 'fasteners==0.19'
fi
"$venv/bin/python" -c 'import boto3' 2>/dev/null || "$venv/bin/pip" install -q 'boto3==1.44.8'
# duplicity's b2 backend.
b2sdk=2.13.2
"$venv/bin/python" -c "import b2sdk, sys; sys.exit(b2sdk.__version__ != '$b2sdk')" 2>/dev/null ||
    "$venv/bin/pip" install -q "b2sdk==$b2sdk"
"$venv/bin/duplicity" --version
/usr/bin/duplicity --version

# cargo-deb, at the version the package is built with; in ~/.cargo/bin.
cargo_deb=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $cargo_deb"; then
    cargo install --locked --version "$cargo_deb" cargo-deb
fi
cargo deb --version

# A local S3 server: moto checks signatures once IAM is on.
moto=target/test-tools/moto
if ! "$moto/bin/moto_server" --help >/dev/null 2>&1; then
    rm -rf "$moto"
    /usr/bin/python3 -m venv "$moto"
    "$moto/bin/pip" install -q 'moto[server]==5.2.5' 'boto3==1.44.8'
fi

# The Debian 12 and Debian 13 roots that the end-to-end tests boot with
# systemd-nspawn.
bash tests/e2e/make-root.sh bookworm
bash tests/e2e/make-root.sh trixie
