#!/bin/bash
# Benchmark of `mailbackup status --json` on off-site targets of 30,000
# files (3,000 backups), timed beside the plain listing each one rests on:
#  - S3 (moto on 127.0.0.1, as in the tests): a paginated ListObjectsV2 of
#    the same prefix with boto3, in one process, timed around the listing
#    alone (without Python's start and imports) and as a whole process;
#  - ssh (a private sshd on 127.0.0.1): `rsync --list-only` of the same
#    directory with the same ssh options.
# Prints the median of RUNS runs of each; the runs take turns, so that
# other load on the machine weighs on both alike. Needs tests/setup.sh first.
#   bash benches/remote-status.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
work=$PWD/target/bench-remote
rm -rf "$work"
mkdir -p "$work/root/backup" "$work/remote" "$work/home/.ssh" "$work/state"
printf 'STORAGE_ROOT=%s\n' "$work/root" > "$work/mailinabox.conf"
cargo build --release -q
bin=$PWD/target/release/mailbackup
venv=$PWD/target/test-tools/moto
python3 benches/remote_names.py 3000 > "$work/names"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seconds() { # wall-clock seconds of one run of "$@"
    local t0 t1
    t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# S3
port=$(free_port)
INITIAL_NO_AUTH_ACTION_COUNT=3 "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$port"
url=http://127.0.0.1:$port
read -r key secret < <("$venv/bin/python" tests/tools/s3.py "$url" bootstrap)
"$venv/bin/python" tests/tools/s3.py "$url" "$key" "$secret" mb bench
sed 's/^/box\//' "$work/names" | "$venv/bin/python" tests/tools/s3.py "$url" "$key" "$secret" put bench
printf "target: s3+http://127.0.0.1:%s/bench/box\ntarget_user: %s\ntarget_pass: '%s'\n" "$port" "$key" "$secret" \
    > "$work/root/backup/custom.yaml"
cat > "$work/list.py" <<'PY'
import sys, time, boto3
url, key, secret = sys.argv[1:4]
t = time.perf_counter()
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id=key, aws_secret_access_key=secret)
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="box/"):
    n += len(page.get("Contents", []))
print("%.3f %d" % (time.perf_counter() - t, n))
PY
objects=$("$venv/bin/python" "$work/list.py" "$url" "$key" "$secret" | cut -d' ' -f2)
: > "$work/s3_list"; : > "$work/s3_proc"; : > "$work/s3_ours"
for _ in $(seq "$runs"); do
    t0=$(date +%s.%N)
    "$venv/bin/python" "$work/list.py" "$url" "$key" "$secret" | cut -d' ' -f1 >> "$work/s3_list"
    echo "$(date +%s.%N) - $t0" | bc -l >> "$work/s3_proc"
    seconds "$bin" --config "$work/mailinabox.conf" status --json >> "$work/s3_ours"
done
s3_list=$(median < "$work/s3_list")
s3_proc=$(median < "$work/s3_proc")
s3_ours=$(median < "$work/s3_ours")
backups=$("$bin" --config "$work/mailinabox.conf" status --json | grep -c '"date":')

# ssh
while read -r name size; do truncate -s "$size" "$work/remote/$name"; done < "$work/names"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/home/.ssh/id_rsa_miab"
cp "$work/home/.ssh/id_rsa_miab.pub" "$work/authorized_keys"
sport=$(free_port)
cat > "$work/sshd_config" <<CONF
Port $sport
ListenAddress 127.0.0.1
HostKey $work/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
CONF
mkdir -p /run/sshd
/usr/sbin/sshd -D -f "$work/sshd_config" &
pids+=($!)
wait_port "$sport"
printf 'target: rsync://root@127.0.0.1:%s/%s\n' "$sport" "$work/remote" > "$work/root/backup/custom.yaml"
export HOME=$work/home STATE_DIRECTORY=$work/state
"$bin" --config "$work/mailinabox.conf" check-target > /dev/null # pins the host key
ssh_opts="ssh -p$sport -oIdentityFile=$work/home/.ssh/id_rsa_miab -oIdentitiesOnly=yes -oBatchMode=yes -oUserKnownHostsFile=$work/state/known_hosts"
: > "$work/rsync_list"; : > "$work/rsync_ours"
for _ in $(seq "$runs"); do
    seconds rsync -e "$ssh_opts" --list-only --no-h "root@127.0.0.1:$work/remote/" >> "$work/rsync_list"
    seconds "$bin" --config "$work/mailinabox.conf" status --json >> "$work/rsync_ours"
done
rsync_list=$(median < "$work/rsync_list")
rsync_ours=$(median < "$work/rsync_ours")
rsync_backups=$("$bin" --config "$work/mailinabox.conf" status --json | grep -c '"date":')

printf 'S3: %d objects, %d backups\n' "$objects" "$backups"
printf '  boto3 paginated listing, listing alone: %.3f s\n' "$s3_list"
printf '  boto3 paginated listing, whole process: %.3f s\n' "$s3_proc"
printf '  mailbackup status --json:               %.3f s (%.2fx the listing alone)\n' "$s3_ours" "$(echo "$s3_ours / $s3_list" | bc -l)"
printf 'ssh: %d files, %d backups\n' "$(ls "$work/remote" | wc -l)" "$rsync_backups"
printf '  rsync --list-only:                      %.3f s\n' "$rsync_list"
printf '  mailbackup status --json:               %.3f s (%.2fx)\n' "$rsync_ours" "$(echo "$rsync_ours / $rsync_list" | bc -l)"
