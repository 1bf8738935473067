#!/bin/bash
# Benchmark of `mailbackup drill` on S3 (moto on 127.0.0.1, as in the
# tests): a store of 50,000 messages in 10 mailboxes of 5,000 (random,
# incompressible bodies of 2 to 38 KB, about 1 GB), one full backup, then a
# drill of one mailbox (example.com/user05) and mail/users.sqlite.
# Prints the drill's time, the bytes it read from the target (as it counts
# them: the latest chain's manifests and signatures, and the volumes whose
# path range holds each restored path) and the backup's total size.
# Needs tests/setup.sh first (the moto venv).
#   bash benches/drill.sh [MAILBOXES] [MESSAGES_PER_MAILBOX]
set -euo pipefail
cd "$(dirname "$0")/.."
mailboxes=${1:-10}
per_box=${2:-5000}
work=$PWD/target/bench-drill
rm -rf "$work"
mkdir -p "$work/root/backup" "$work/home"
printf 'STORAGE_ROOT=%s\nSTORAGE_USER=user-data\n' "$work/root" > "$work/mailinabox.conf"
# MAILBACKUP_BIN: a mailbackup binary already built (duplicity does the work).
bin=${MAILBACKUP_BIN:-}
if [ -z "$bin" ]; then cargo build --release -q; bin=$PWD/target/release/mailbackup; fi
venv=$PWD/target/test-tools/moto

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

/usr/bin/python3 - "$work/root" "$mailboxes" "$per_box" <<'PY'
import base64, os, random, sys
root, boxes, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(17)
for b in range(boxes):
    m = os.path.join(root, "mail/mailboxes/example.com/user%02d" % b)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(m, sub))
    for n in range(per):
        size = rnd.randint(2_000, 38_000)
        body = base64.encodebytes(os.urandom(size * 3 // 4))
        name = "17900%05d.M%dP%d.box.example.com,S=%d:2,S" % (n, n, b, size)
        with open(os.path.join(m, "cur", name), "wb") as f:
            f.write(b"From: a@example.org\r\nSubject: %d\r\n\r\n" % n + body)
    with open(os.path.join(m, "dovecot.index"), "wb") as f:
        f.write(os.urandom(8192))
PY
sqlite3 "$work/root/mail/users.sqlite" \
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, password TEXT); INSERT INTO users (email, password) VALUES ('user05@example.com', 'x');"
head -c 64 /dev/urandom | base64 -w0 > "$work/root/backup/secret_key.txt"
chmod 600 "$work/root/backup/secret_key.txt"
store=$(du -sb --exclude=backup "$work/root" | cut -f1)

port=$(free_port)
INITIAL_NO_AUTH_ACTION_COUNT=3 "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$port"
url=http://127.0.0.1:$port
read -r key secret < <("$venv/bin/python" tests/tools/s3.py "$url" bootstrap)
"$venv/bin/python" tests/tools/s3.py "$url" "$key" "$secret" mb bench
printf "target: s3+http://127.0.0.1:%s/bench/box\ntarget_user: %s\ntarget_pass: '%s'\n" "$port" "$key" "$secret" \
    > "$work/root/backup/custom.yaml"

export HOME=$work/home MAILBACKUP_METRICS_DIR=$work
t0=$(date +%s.%N)
"$bin" --config "$work/mailinabox.conf" run > "$work/run.log" 2>&1
t1=$(date +%s.%N)
sleep 1.1
"$bin" --config "$work/mailinabox.conf" drill --mailbox example.com/user05 > "$work/drill.log" 2>&1
t2=$(date +%s.%N)
total=$(sed -n 's/^mailbackup_backups_size_bytes{type="full"} //p' "$work/mailbackup.prom")
read_bytes=$(sed -n 's/^mailbackup_drill_read_bytes //p' "$work/mailbackup.prom")
volumes=$("$venv/bin/python" tests/tools/s3.py "$url" "$key" "$secret" keys bench | grep -c 'difftar')
grep '^mailbackup: the drill' "$work/drill.log"
printf 'messages: %d in %d mailboxes; store %d bytes\n' $((mailboxes * per_box)) "$mailboxes" "$store"
printf 'backup (full, to moto): %.1f s, %d bytes in %d volumes\n' "$(echo "$t1 - $t0" | bc -l)" "$total" "$volumes"
printf 'drill of example.com/user05 (%d messages) and mail/users.sqlite: %.1f s, read %d bytes = %.1f%% of the backup\n' \
    "$per_box" "$(echo "$t2 - $t1 - 1.1" | bc -l)" "$read_bytes" "$(echo "100 * $read_bytes / $total" | bc -l)"
