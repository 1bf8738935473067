#!/bin/bash
# Benchmark of `mailbackup status --json` on a large target (118,800 files:
# 30 chains, 900 backups), beside the reference's backup_status() and the
# floor, `find` doing one readdir and one stat per file. Prints the median
# of RUNS runs of each, and mailbackup's peak memory.
#   bash benches/status.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
work=${BENCH_DIR:-target/bench-status}
root=$PWD/$work/root
dir=$root/backup/encrypted
if [ "$(ls "$dir" 2>/dev/null | wc -l)" != 118800 ]; then
    rm -rf "$work"
    /usr/bin/python3 benches/make_target.py "$dir"
fi
printf 'STORAGE_ROOT=%s\n' "$root" > "$work/mailinabox.conf"
cargo build --release -q
bin=target/release/mailbackup

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seconds() { # wall-clock seconds of one run of "$@"
    local t0 t1
    t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

"$bin" --config "$work/mailinabox.conf" status --json > /dev/null # warm the caches
ref=$(cd tests/reference && /usr/bin/python3 - "$root" "$runs" <<'PY'
import statistics, sys, time
import backup
root, runs = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(runs):
    t = time.perf_counter()
    backup.backup_status({"STORAGE_ROOT": root})
    times.append(time.perf_counter() - t)
print("%.3f" % statistics.median(times))
PY
)
floor=$(for _ in $(seq "$runs"); do seconds find "$dir" -maxdepth 1 -printf '%s\n'; done | median)
ours=$(for _ in $(seq "$runs"); do seconds "$bin" --config "$work/mailinabox.conf" status --json; done | median)
peak=$(/usr/bin/time -f %M "$bin" --config "$work/mailinabox.conf" status --json 2>&1 >/dev/null | tail -1)
printf 'files in the target:                  %d\n' "$(ls "$dir" | wc -l)"
printf 'reference backup_status():            %.3f s\n' "$ref"
printf "find -printf '%%s' (the floor):        %.3f s\n" "$floor"
printf 'mailbackup status --json:             %.3f s, peak memory %.1f MB\n' "$ours" "$(echo "$peak / 1024" | bc -l)"
