#!/bin/bash
# What a backup costs the mail, in a booted systemd with real postfix and
# dovecot, with STORAGE_ROOT on the host's disk (bind-mounted into the
# container; a snapshot on tmpfs would flatter it):
#
# - the downtime of `--downtime full` (Mail-in-a-Box's shape) and of the
#   snapshot mode, from the journal: first "Stopping" of dovecot or postfix
#   to the last "Started";
# - the pause of `--downtime pause`, as clients see it: a client opens an
#   SMTP connection every 20 ms and waits for the banner; the slowest banner
#   and the connections refused (none, if it works);
# - the extra disk a snapshot takes: the blocks of its copies and
#   directories (links take none);
#
# for 50,000 messages (about 200 MB, realistic sizes, Dovecot index files
# and a sqlite database), then beside 2 GiB and 20 GiB of Nextcloud files,
# then for 250,000 messages, so that the cost per message and per byte shows.
# Where only the downtime matters, the backup is stopped once duplicity runs.
#   bash benches/downtime.sh                 (as root; builds what it needs)
#   BENCH_DIR=/srv/scratch bash benches/downtime.sh    (where the data goes)
#   MAILBACKUP_DEB=FILE bash benches/downtime.sh     (that package, e.g. an
#                                                     older one, to compare)
#   DOWNTIME_ONLY_50K=1 bash benches/downtime.sh     (only the first rows)
set -euo pipefail
cd "$(dirname "$0")/.."

work=${BENCH_DIR:-/var/tmp/mailbackup-bench}
bash tests/e2e/make-root.sh >/dev/null
deb=${MAILBACKUP_DEB:-$(bash packaging/build-deb.sh)}
rm -rf "$work" && mkdir -p "$work/data" "$work/share"
if [ "$(stat -f -c %T "$work")" = tmpfs ]; then
    echo "$work is on tmpfs: give BENCH_DIR a directory on a disk" >&2
    exit 1
fi
cp "$deb" "$work/share/mailbackup.deb"
cp tests/e2e/mail-clients.py "$work/share/"
cg=mailbackup-bench-$$
(
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        if [ -e "$h/cgroup.procs" ]; then mkdir -p "$h/$cg" && echo $BASHPID > "$h/$cg/cgroup.procs"; fi
    done
    # cgroup v2 in the container, where `systemctl freeze` works.
    export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
    exec systemd-nspawn --register=no --keep-unit --volatile=overlay --private-network --quiet \
        -D "${MAILBACKUP_E2E_ROOT:-/var/cache/mailbackup-e2e/bookworm-v3}" --bind="$work/share:/srv/host" \
        --bind="$work/data:/home/user-data" -b
) > "$work/console.log" 2>&1 &
nspawn=$!
init=
for _ in $(seq 300); do
    init=$(ps -o pid= --ppid "$nspawn" 2>/dev/null | head -n1 | tr -d ' ' || true)
    [ -n "$init" ] && break
    sleep 0.1
done
ct() { nsenter -t "$init" -a /bin/sh -c "$1"; }
cleanup() {
    ct "systemctl poweroff" 2>/dev/null || true
    sleep 3; kill -9 "$init" 2>/dev/null || true; wait 2>/dev/null || true
    find /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 120); do
    state=$(ct "systemctl is-system-running --wait" 2>/dev/null || true)
    [ -n "$state" ] && break
    sleep 0.5
done

ct "dpkg -i /srv/host/mailbackup.deb >/dev/null
    printf 'STORAGE_ROOT=/home/user-data\nSTORAGE_USER=user-data\nPRIMARY_HOSTNAME=box.example.com\n' > /etc/mailinabox.conf
    chown user-data /home/user-data"
echo "STORAGE_ROOT on $(df --output=source,fstype "$work/data" | tail -n1)"

# The mail store: 50 mailboxes, message sizes from 1 KB to 1 MB (most a few
# KB), Dovecot index files per mailbox, a sqlite database.
make_store() {
    ct "rm -rf /home/user-data/mail && python3 - $1 <<'PY'
import os, random, sqlite3, sys
n = int(sys.argv[1])
rng = random.Random(5)
root = '/home/user-data/mail/mailboxes/example.com'
boxes = 50
for b in range(boxes):
    box = '%s/user%02d' % (root, b)
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(box, d), exist_ok=True)
    for name, size in (('dovecot.index', 40000), ('dovecot.index.log', 120000), ('dovecot.index.cache', 300000), ('dovecot-uidlist', 30000)):
        with open(os.path.join(box, name), 'wb') as f:
            f.write(os.urandom(size))
for i in range(n):
    size = min(int(rng.lognormvariate(7.6, 1.0)), 1 << 20) + 300
    box = '%s/user%02d/%s' % (root, i % boxes, 'new' if i % 20 == 0 else 'cur')
    name = '%d.M%dP%d.box.example.com,S=%d%s' % (1790000000 + i, i, i % 7, size, '' if 'new' in box else ':2,S')
    with open(os.path.join(box, name), 'wb') as f:
        f.write(b'Subject: message %d\r\n\r\n' % i)
        f.write(os.urandom(size // 2).hex().encode()[:size])
db = sqlite3.connect('/home/user-data/mail/users.sqlite')
db.execute('CREATE TABLE users (email TEXT, password TEXT)')
db.executemany('INSERT INTO users VALUES (?, ?)', [('user%02d@example.com' % b, 'x' * 100) for b in range(boxes)])
db.commit()
PY
    chown -R 5000:5000 /home/user-data/mail && chmod -R go-rwx /home/user-data/mail"
}

# Nextcloud's files: GIB gibibytes in files of 1 MiB to 8 MiB, in folders
# of 100, allocated on the disk.
make_cloud() {
    ct "rm -rf /home/user-data/owncloud && python3 - $1 <<'PY'
import os, random, sys
left = int(sys.argv[1]) << 30
rng = random.Random(7)
i = 0
while left > 0:
    d = '/home/user-data/owncloud/user%d/files/folder%d' % (i % 10, i // 100)
    os.makedirs(d, exist_ok=True)
    size = min(rng.randint(1, 8) << 20, left)
    fd = os.open('%s/file%d.bin' % (d, i), os.O_CREAT | os.O_WRONLY, 0o640)
    os.posix_fallocate(fd, 0, size)
    os.close(fd)
    left -= size
    i += 1
print(i)
PY
    chown -R 33:33 /home/user-data/owncloud"
}

reset_backups() { ct "rm -rf /home/user-data/backup/encrypted /home/user-data/backup/cache"; }

# The downtime of one run of mailbackup.service, in seconds, from the
# journal; with "stop", the run is stopped once duplicity runs.
downtime() {
    local since
    since=$(ct "date +%s.%N")
    run_backup "${1:-}"
    ct "journalctl -u dovecot.service -u postfix@-.service --since @$since -o short-unix --no-pager" |
        awk '/Stopping/ && !stop { stop = $1 } /Started/ { start = $1 } END { printf "%.2f\n", start - stop }'
}

# Runs mailbackup.service; prints its run time. With "stop", stops it once
# duplicity runs.
run_backup() {
    local t0 t1
    t0=$(date +%s.%N)
    if [ "${1:-}" = stop ]; then
        ct "systemctl start mailbackup.service & s=\$!
            until pgrep -f 'bin/duplicit[y] (full|incr)' >/dev/null || ! kill -0 \$s 2>/dev/null; do sleep 0.05; done
            systemctl stop mailbackup.service; wait \$s || true" >/dev/null 2>&1
    else
        ct "systemctl start mailbackup.service"
    fi
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l > "$work/runtime"
}

# The pause of one run in pause mode, as an SMTP client sees it:
# "slowest-banner refused-connections".
pause() {
    ct "rm -f /tmp/stop-clients; python3 /srv/host/mail-clients.py > /tmp/clients.json & echo \$! > /tmp/clients.pid" 
    sleep 1
    run_backup "${1:-}"
    sleep 0.5
    ct "touch /tmp/stop-clients; while kill -0 \$(cat /tmp/clients.pid) 2>/dev/null; do sleep 0.1; done
        python3 -c 'import json; s = json.load(open(\"/tmp/clients.json\")); print(\"%.2f %d %d\" % (s[\"slowest\"], s[\"refused\"], s[\"smtp\"]))'"
}

# The disk the snapshot takes beyond the data: copies and directories.
snapshot_disk() {
    ct "systemctl start mailbackup-snapshot.service && systemctl reload mailbackup-snapshot.service"
    ct "find /home/user-data/backup/snapshot \\( -type d -o -links 1 \\) -printf '%b\n' | awk '{ s += \$1 } END { printf \"%.1f MiB\", s * 512 / 1048576 }'"
    ct "systemctl stop mailbackup-snapshot.service"
}

row() { printf '%-58s %s\n' "$1" "$2"; }

ct "postconf -e inet_protocols=ipv4 && systemctl restart postfix"
make_store 50000
echo "mail store: 50,000 messages, $(ct "du -sh --apparent-size /home/user-data/mail | cut -f1")"

ct "mailbackup install --downtime full >/dev/null"
row "--downtime full, full backup" "downtime $(downtime) s, run $(cat "$work/runtime" | xargs printf '%.1f') s"
reset_backups
ct "mailbackup install --downtime snapshot >/dev/null"
row "snapshot, full backup" "downtime $(downtime) s, run $(cat "$work/runtime" | xargs printf '%.1f') s"
row "snapshot, incremental backup" "downtime $(downtime) s, run $(cat "$work/runtime" | xargs printf '%.1f') s"
ct "journalctl -u mailbackup-snapshot.service -o cat --no-pager | grep -o '\(prepared a \)\?snapshot of .*'" | tail -n2
row "snapshot, extra disk" "$(snapshot_disk)"
ct "mailbackup install --downtime pause >/dev/null"
read -r slowest refused probes < <(pause)
row "pause, incremental backup" "slowest banner $slowest s, $refused refused of $probes"

[ -z "${DOWNTIME_ONLY_50K:-}" ] || exit 0

for gib in 2 20; do
    files=$(make_cloud "$gib")
    echo "beside $gib GiB of Nextcloud files ($files files)"
    ct "mailbackup install --downtime snapshot >/dev/null"
    row "  snapshot" "downtime $(downtime stop) s"
    row "  snapshot, extra disk" "$(snapshot_disk)"
    ct "mailbackup install --downtime pause >/dev/null"
    read -r slowest refused probes < <(pause stop)
    row "  pause" "slowest banner $slowest s, $refused refused of $probes"
done
ct "rm -rf /home/user-data/owncloud"

make_store 250000
echo "mail store: 250,000 messages, $(ct "du -sh --apparent-size /home/user-data/mail | cut -f1")"
ct "mailbackup install --downtime snapshot >/dev/null"
row "  snapshot" "downtime $(downtime stop) s"
row "  snapshot, extra disk" "$(snapshot_disk)"
ct "mailbackup install --downtime pause >/dev/null"
read -r slowest refused probes < <(pause stop)
row "  pause" "slowest banner $slowest s, $refused refused of $probes"
