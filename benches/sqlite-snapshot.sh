#!/bin/bash
# What SQLite's online backup costs a snapshot: a box with a Nextcloud-like
# database of about 200 MB (owncloud/owncloud.db: a file cache table with
# its indexes) and a small mail store, and a writer committing small
# transactions to the database all the while, as php-fpm does. For the
# database in rollback-journal mode and in WAL mode:
#
# - the time of `snapshot --prepare` (while the mail runs: it takes the
#   database) and of `snapshot --complete` (the part the mail waits for);
# - the longest a writer's commit took meanwhile: in rollback-journal mode
#   a commit waits while the database is read;
# - that the copy passes `PRAGMA integrity_check`.
#
# On the host, with STORAGE_ROOT on a disk (not tmpfs):
#   bash benches/sqlite-snapshot.sh
#   BENCH_DIR=/srv/scratch MAILBACKUP_BIN=target/release/mailbackup bash benches/sqlite-snapshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."

work=${BENCH_DIR:-/var/tmp/mailbackup-sqlite-bench}
bin=${MAILBACKUP_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --locked -q
    bin=target/release/mailbackup
fi
bin=$(realpath "$bin")
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
if [ "$(stat -f -c %T "$work")" = tmpfs ]; then
    echo "$work is on tmpfs: give BENCH_DIR a directory on a disk" >&2
    exit 1
fi
root=$work/user-data
mkdir -p "$root/backup" "$root/owncloud"
printf 'STORAGE_ROOT=%s\nSTORAGE_USER=user-data\n' "$root" > "$work/mailinabox.conf"

# 200 MB: rows like Nextcloud's oc_filecache, with its indexes.
python3 - "$root/owncloud/owncloud.db" <<'PY'
import os, random, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("""CREATE TABLE oc_filecache (fileid INTEGER PRIMARY KEY, storage INTEGER,
    path TEXT, path_hash TEXT, parent INTEGER, name TEXT, mimetype INTEGER, size INTEGER,
    mtime INTEGER, etag TEXT, permissions INTEGER, checksum TEXT)""")
db.execute("CREATE UNIQUE INDEX fs_storage_path_hash ON oc_filecache (storage, path_hash)")
db.execute("CREATE INDEX fs_parent_name_hash ON oc_filecache (parent, name)")
db.execute("CREATE INDEX fs_mtime ON oc_filecache (mtime)")
rng = random.Random(3)
i = 0
while os.path.getsize(sys.argv[1]) < 200 << 20:
    rows = []
    for _ in range(20000):
        i += 1
        path = "files/folder%d/file%d.jpg" % (i // 100, i)
        rows.append((1, path, "%032x" % rng.getrandbits(128), i // 100, "file%d.jpg" % i, 7,
                     rng.randrange(1 << 24), 1790000000 + i, "%013x" % rng.getrandbits(52), 27,
                     "SHA1:%040x" % rng.getrandbits(160)))
    db.executemany("INSERT INTO oc_filecache (storage, path, path_hash, parent, name, mimetype,"
                   " size, mtime, etag, permissions, checksum) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
db.close()
PY
python3 - "$root" <<'PY'
import os, sys
for b in range(10):
    for d in ("cur", "new", "tmp"):
        os.makedirs("%s/mail/mailboxes/example.com/user%d/%s" % (sys.argv[1], b, d), exist_ok=True)
    for i in range(500):
        with open("%s/mail/mailboxes/example.com/user%d/cur/%d.M%d.box:2,S" % (sys.argv[1], b, i, i), "w") as f:
            f.write("Subject: %d\r\n\r\n%s\r\n" % (i, "x" * 2000))
PY
chown -R 33:33 "$root/owncloud"
echo "owncloud.db: $(du -m --apparent-size "$root/owncloud/owncloud.db" | cut -f1) MB, 5,000 messages"

# A writer like php-fpm: a small transaction every 10 ms; writes the longest
# commit (in seconds) and the commits made when told to stop.
writer() {
    python3 - "$root/owncloud/owncloud.db" "$1" "$work/stop" "$work/writer.out" <<'PY' &
import os, random, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
db.execute("PRAGMA journal_mode=" + sys.argv[2])
open(sys.argv[3] + ".ready", "w").close()
rng, slowest, n = random.Random(), 0.0, 0
while not os.path.exists(sys.argv[3]):
    t = time.monotonic()
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE oc_filecache SET mtime = mtime + 1, etag = ? WHERE fileid = ?",
               ("%013x" % rng.getrandbits(52), rng.randrange(1, 500000)))
    db.execute("COMMIT")
    slowest = max(slowest, time.monotonic() - t)
    n += 1
    time.sleep(0.01)
open(sys.argv[4], "w").write("%.3f %d\n" % (slowest, n))
PY
    until [ -e "$work/stop.ready" ]; do sleep 0.05; done
}

seconds() { "$@" 2>&1 | grep -o 'in [0-9.]* s' | head -n1 | grep -o '[0-9.]*'; }

for mode in DELETE WAL; do
    rm -f "$work/stop" "$work/stop.ready" "$work/writer.out"
    writer "$mode"
    sleep 1
    prepare=$(seconds "$bin" --config "$work/mailinabox.conf" snapshot --prepare)
    complete=$(seconds "$bin" --config "$work/mailinabox.conf" snapshot --complete)
    touch "$work/stop"
    wait
    read -r slowest commits < "$work/writer.out"
    check=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' \
        "$root/backup/snapshot/owncloud/owncloud.db")
    printf '%-8s prepare %s s (mail runs), complete %s s (mail waits), slowest commit meanwhile %s s (%s commits), copy: %s\n' \
        "$mode" "$prepare" "$complete" "$slowest" "$commits" "$check"
    "$bin" --config "$work/mailinabox.conf" snapshot --remove 2>/dev/null
done
# The same without the database: what it adds.
mv "$root/owncloud/owncloud.db" "$work/aside.db"
prepare=$(seconds "$bin" --config "$work/mailinabox.conf" snapshot --prepare)
"$bin" --config "$work/mailinabox.conf" snapshot --complete 2>/dev/null
"$bin" --config "$work/mailinabox.conf" snapshot --remove 2>/dev/null
printf '%-8s prepare %s s\n' "no db" "$prepare"
