#!/bin/bash
# Mail downtime of a backup, in a booted systemd with real postfix and
# dovecot: the --downtime full mode (the reference's shape) against the
# snapshot mode, for a full and an incremental backup of a store of 50,000
# messages (about 200 MB, realistic sizes) with a sqlite file and Dovecot
# index files; then the snapshot mode again with every message twice as
# large; and the disk space a snapshot takes beside the non-message files.
# Downtime is read from the journal: from the first "Stopping" of dovecot or
# postfix to the last "Started" of them.
#   bash benches/downtime.sh            (as root; builds what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${MESSAGES:-50000}

bash tests/e2e/make-root.sh >/dev/null
deb=$(bash packaging/build-deb.sh)
share=$(mktemp -d /tmp/mailbackup-bench.XXXXXX)
cp "$deb" "$share/mailbackup.deb"
cg=mailbackup-bench-$$
(
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        if [ -e "$h/cgroup.procs" ]; then mkdir -p "$h/$cg" && echo $BASHPID > "$h/$cg/cgroup.procs"; fi
    done
    exec systemd-nspawn --register=no --keep-unit --volatile=overlay --private-network --quiet \
        -D /var/cache/mailbackup-e2e/bookworm --bind="$share:/srv/host" -b
) > "$share/console.log" 2>&1 &
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
    rm -rf "$share"
}
trap cleanup EXIT
for _ in $(seq 120); do
    state=$(ct "systemctl is-system-running --wait" 2>/dev/null || true)
    [ -n "$state" ] && break
    sleep 0.5
done

ct "dpkg -i /srv/host/mailbackup.deb >/dev/null
    printf 'STORAGE_ROOT=/home/user-data\nSTORAGE_USER=user-data\nPRIMARY_HOSTNAME=box.example.com\n' > /etc/mailinabox.conf"

# The mail store: 50 mailboxes, message sizes from 1 KB to 1 MB (most a few
# KB), Dovecot index files per mailbox, a sqlite database. SCALE multiplies
# the message sizes.
make_store() {
    ct "rm -rf /home/user-data/mail && python3 - $MESSAGES $1 <<'PY'
import os, random, sqlite3, sys
n, scale = int(sys.argv[1]), int(sys.argv[2])
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
    size = min(int(rng.lognormvariate(7.6, 1.0)), 1 << 20) * scale + 300
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

reset_backups() { ct "rm -rf /home/user-data/backup/encrypted /home/user-data/backup/cache"; }

# Runs one backup; prints "downtime total" in seconds.
backup() {
    local since t0 t1 log
    since=$(ct "date +%s.%N")
    t0=$(date +%s.%N)
    ct "systemctl start mailbackup.service"
    t1=$(date +%s.%N)
    log=$(ct "journalctl -u dovecot.service -u postfix@-.service --since @$since -o short-unix --no-pager")
    awk -v total="$(echo "$t1 - $t0" | bc -l)" '
        /Stopping/ && !stop { stop = $1 }
        /Started/ { start = $1 }
        END { printf "%.2f %.1f\n", start - stop, total }' <<< "$log"
}

more_mail() {
    ct "for i in 1 2 3 4 5 6 7 8 9 10; do
            printf 'Subject: new %s\r\n\r\nnew\r\n' \$i > /home/user-data/mail/mailboxes/example.com/user01/new/1800000000.M\$i.box
        done; chown -R 5000:5000 /home/user-data/mail/mailboxes/example.com/user01/new"
}

report() { printf '%-40s downtime %6s s   run %6s s\n' "$1" $2; }

make_store 1
size=$(ct "du -sh --apparent-size /home/user-data/mail | cut -f1")
echo "mail store: $MESSAGES messages, $size"

ct "mailbackup install --downtime full >/dev/null"
report "--downtime full, full backup" "$(backup)"
more_mail
report "--downtime full, incremental backup" "$(backup)"

reset_backups
ct "mailbackup install >/dev/null"
report "--downtime snapshot, full backup" "$(backup)"
ct "journalctl -u mailbackup-snapshot.service -o cat --no-pager | grep -o 'snapshot of .*'" | tail -n1
if [ -n "${TIMELINE:-}" ]; then
    ct "journalctl -u dovecot.service -u postfix@-.service -u mailbackup-snapshot.service -u mailbackup.service -o short-unix --no-pager | grep -E 'Stopp|Start|snapshot of' | tail -n 14"
fi
more_mail
report "--downtime snapshot, incremental backup" "$(backup)"

# The space a snapshot takes, beside what the non-message files take.
ct "systemctl start mailbackup-snapshot.service"
used_with=$(ct "df -B1 --output=used /home/user-data | tail -n1")
ct "systemctl stop mailbackup-snapshot.service"
used_without=$(ct "df -B1 --output=used /home/user-data | tail -n1")
others=$(ct "find /home/user-data -path /home/user-data/backup -prune -o -type f ! -path '*/cur/*' ! -path '*/new/*' -printf '%s\n' | awk '{s += \$1} END {print s}'")
printf 'snapshot takes %d KiB on disk; the non-message files %d KiB\n' \
    $(((used_with - used_without) / 1024)) $((others / 1024))

make_store 2
reset_backups
size=$(ct "du -sh --apparent-size /home/user-data/mail | cut -f1")
echo "mail store with every message twice as large: $size"
report "--downtime snapshot, full backup, x2" "$(backup)"
