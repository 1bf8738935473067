#!/bin/bash
# Backs up the demo mail store in demo/user-data with mailbackup: a real
# encrypted duplicity backup (full the first time, incremental after), its
# status, and a restore with plain duplicity compared with the original.
#   bash demo/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v duplicity >/dev/null; then
    echo "Installing duplicity..."
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q duplicity
fi
cargo build --release -q
bin=$PWD/target/release/mailbackup

work=$PWD/target/demo
root=$work/user-data
mkdir -p "$root/backup"
cp -a demo/user-data/. "$root/"
for d in "$root"/mail/mailboxes/*/*/{,.Sent/}; do mkdir -p "$d"{cur,new,tmp}; done
date -u > "$root/mail/last-demo-run"
if [ ! -s "$root/backup/secret_key.txt" ]; then
    (umask 077 && head -c 48 /dev/urandom | base64 -w0 > "$root/backup/secret_key.txt")
fi
printf 'STORAGE_ROOT=%s\nSTORAGE_USER=%s\n' "$root" "$(id -un)" > "$work/mailinabox.conf"

echo "== mailbackup run"
"$bin" --config "$work/mailinabox.conf" run
echo
echo "== mailbackup status"
"$bin" --config "$work/mailinabox.conf" status

echo
echo "== restore with plain duplicity and the key, compare with the data"
restore=$(mktemp -d)
trap 'rm -rf "$restore"' EXIT
mkdir -m 700 "$restore/gnupg"
PASSPHRASE=$(head -n1 "$root/backup/secret_key.txt") GNUPGHOME=$restore/gnupg \
    duplicity restore --archive-dir "$restore/cache" "file://$root/backup/encrypted" "$restore/data" > /dev/null
diff -r --exclude=backup "$root" "$restore/data"
echo "The restore equals $root (without backup/)."
