#!/bin/bash
# The time of `mailbackup restore --mailbox` for one mailbox of 5,000
# messages out of a 50,000 message store (10 mailboxes, realistic sizes,
# folders, flags), beside a plain `duplicity restore -r` of the same
# directory with the same archive dir: what the mailbox restore adds (the
# target's listing, the moves into the live Maildir, owners, subscriptions)
# over duplicity's own work. Each is run RUNS times (default 3), in turn;
# the medians and their ratio are printed. Target: ratio <= 1.2.
#   bash benches/restore-mailbox.sh              (as root; builds what it needs)
#   BENCH_DIR=/srv/scratch RUNS=5 bash benches/restore-mailbox.sh
#   MAILBACKUP_BIN=target/release/mailbackup bash benches/restore-mailbox.sh
set -euo pipefail
cd "$(dirname "$0")/.."

work=${BENCH_DIR:-/var/tmp/mailbackup-bench-restore}
runs=${RUNS:-3}
# MAILBACKUP_BIN: a mailbackup already built (default: build the release one).
bin=${MAILBACKUP_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --locked -q
    bin=$PWD/target/release/mailbackup
fi
rm -rf "$work" && mkdir -p "$work/root/backup"
trap 'rm -rf "$work"' EXIT
root=$work/root
printf 'STORAGE_ROOT=%s\nSTORAGE_USER=user-data\n' "$root" > "$work/mailinabox.conf"
head -c 1536 /dev/urandom | base64 > "$root/backup/secret_key.txt"
chmod 600 "$root/backup/secret_key.txt"

python3 - "$root" <<'EOF'
import os, random, sys
root = sys.argv[1]
random.seed(15)
folders = [("", 0.55), (".Sent", 0.2), (".Archive", 0.15), (".Archive.2024", 0.07), (".Invoices", 0.03)]
words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod".split()
text = " ".join(random.choice(words) for _ in range(400_000))
for u in range(10):
    m = os.path.join(root, "mail/mailboxes/example.com", f"user{u}")
    for f, _ in folders:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(m, f, sub), exist_ok=True)
    with open(os.path.join(m, "subscriptions"), "w") as s:
        s.write("Sent\nArchive\nArchive.2024\nInvoices\n")
    for n in range(5000):
        f = random.choices([f for f, _ in folders], [w for _, w in folders])[0]
        # Sizes of real mail: mostly a few kB, some attachments.
        size = int(min(random.lognormvariate(8.2, 1.1), 2_000_000))
        at = random.randrange(len(text) - 2_000_000)
        body = text[at:at + size]
        flags = random.choice([":2,S", ":2,S", ":2,RS", ":2,FS", ":2,"])
        sub = "new" if flags == ":2," and random.random() < 0.3 else "cur"
        name = f"17{n:08d}.M{n}P{u}.box,S={len(body) + 80}" + ("" if sub == "new" else flags)
        with open(os.path.join(m, f, sub, name), "w") as out:
            out.write(f"From: a@example.org\r\nMessage-ID: <{u}-{n}@example.org>\r\nSubject: {n}\r\n\r\n{body}\r\n")
EOF
chown -R mail:mail "$root/mail"
chmod -R go-rwx "$root/mail"
echo "store: $(find "$root/mail" -type f | wc -l) files, $(du -sh "$root/mail" | cut -f1)"
start=$(date +%s.%N)
"$bin" --config "$work/mailinabox.conf" run > "$work/run.log" 2>&1
echo "full backup: $(echo "$(date +%s.%N) - $start" | bc) s"

mailbox=mail/mailboxes/example.com/user3
live=$root/$mailbox
gnupg=$work/gnupg && mkdir -m 700 "$gnupg"
plain() {
    rm -rf "$work/plain"
    PASSPHRASE="$(head -n1 "$root/backup/secret_key.txt")" GNUPGHOME=$gnupg \
        duplicity restore --archive-dir "$root/backup/cache" -r "$mailbox" \
        "file://$root/backup/encrypted" "$work/plain" > /dev/null
}
ours() {
    rm -rf "$live"/.Restored* "$live/mailbackup-restores"
    "$bin" --config "$work/mailinabox.conf" restore --mailbox user3@example.com \
        > /dev/null 2> "$work/restore.log"
}
timed() {
    local t0 t1
    t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}
plain_times=() ours_times=()
for _ in $(seq "$runs"); do
    plain_times+=("$(timed plain)")
    ours_times+=("$(timed ours)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
fastest() { printf '%s\n' "$@" | sort -n | head -n1; }
p=$(median "${plain_times[@]}") o=$(median "${ours_times[@]}")
pf=$(fastest "${plain_times[@]}") of=$(fastest "${ours_times[@]}")
echo "restored: $(find "$live"/.Restored*/cur "$live"/.Restored*/new -type f | wc -l) messages ($(tail -n1 "$work/restore.log"))"
echo "plain duplicity restore -r: ${plain_times[*]} s (median $p s, fastest $pf s)"
echo "restore --mailbox:          ${ours_times[*]} s (median $o s, fastest $of s)"
echo "ratio of the medians: $(echo "scale=3; $o / $p" | bc), of the fastest: $(echo "scale=3; $of / $pf" | bc)"
