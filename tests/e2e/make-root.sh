#!/bin/bash
# Builds (once) a Debian root that the end-to-end tests boot with
# systemd-nspawn: systemd, real postfix and dovecot-imapd, duplicity (with
# boto3 for S3, rsync and the ssh client for ssh targets), and a mail user.
# Cached in $MAILBACKUP_E2E_ROOT (default below), which the tests never
# change: they boot it with --volatile=overlay.
#   bash tests/e2e/make-root.sh [bookworm|trixie]     (bookworm by default)
set -euo pipefail
suite=${1:-bookworm}
case "$suite" in
    bookworm) version=v3 ;;
    trixie) version=v1 ;;
    *) echo "make-root.sh: unknown suite '$suite' (bookworm or trixie)" >&2; exit 2 ;;
esac
# The version is in the name too: a machine that runs the tests of two
# branches keeps both roots.
if [ "$suite" = bookworm ]; then
    root=${MAILBACKUP_E2E_ROOT:-/var/cache/mailbackup-e2e/$suite-$version}
else
    root=${MAILBACKUP_E2E_ROOT_TRIXIE:-/var/cache/mailbackup-e2e/$suite-$version}
fi
stamp=$root/.mailbackup-e2e-$version
[ -e "$stamp" ] && exit 0

export DEBIAN_FRONTEND=noninteractive
for p in debootstrap systemd-container; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="${missing:-} $p"
done
if [ -n "${missing:-}" ]; then apt-get update -q && apt-get install -y -q $missing; fi

# The host's own Debian mirror (a box behind its own mirror can run the
# tests), unless MAILBACKUP_DEBIAN_MIRROR names another.
host_mirror() {
    local uri
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /^\[/ && $2 !~ /security/ { print $2; exit }
        $1 == "deb" && $2 ~ /^\[/ && $3 !~ /security/ { print $3; exit }' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
    echo "${uri:-http://deb.debian.org/debian}"
}
mirror=${MAILBACKUP_DEBIAN_MIRROR:-$(host_mirror)}

rm -rf "$root.tmp"
mkdir -p "$(dirname "$root")"
echo "bootstrapping $suite from $mirror"
# Only the base goes through debootstrap: on trixie its resolver fails on
# python3-boto3 (python3-cryptography's cffi dependency), so the extras are
# installed with apt inside the root, on both suites alike.
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,debconf-utils \
    "$suite" "$root.tmp" "$mirror"
# apt in the root uses the same mirror: the host's sources on bookworm (the
# host's own suite); on trixie, the mirror for trixie.
if [ "$suite" = bookworm ]; then
    cp /etc/apt/sources.list.d/*.sources "$root.tmp/etc/apt/sources.list.d/" 2>/dev/null || true
    [ -s /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root.tmp/etc/apt/sources.list" || true
else
    echo "deb $mirror $suite main" > "$root.tmp/etc/apt/sources.list"
fi
echo mailbackup-e2e > "$root.tmp/etc/hostname"
chroot "$root.tmp" sh -ec '
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    echo "postfix postfix/mailname string box.example.com" | debconf-set-selections
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        postfix dovecot-imapd duplicity gnupg python3 sqlite3 procps \
        python3-boto3 rsync openssh-client
    apt-get clean
    useradd --system --create-home --home-dir /home/user-data user-data
    # Set up in a chroot, postfix may listen on no TCP port; a box takes
    # mail on 127.0.0.1:25, where the failure mail is handed in.
    postconf -e inet_interfaces=loopback-only inet_protocols=ipv4
    systemctl enable postfix dovecot
    systemctl mask systemd-networkd-wait-online.service console-getty.service 2>/dev/null || true
'
touch "$root.tmp/.mailbackup-e2e-$version"
# An older version of the root, if any, goes.
rm -rf "$root"
mv "$root.tmp" "$root"
echo "built $root"
