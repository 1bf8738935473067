//! Off-site targets end to end: the booted Debian 12 of `e2e/backup.rs`, on the
//! host's network, backing up through its units to a private sshd and to
//! moto on the host's 127.0.0.1.

use crate::common::container::{Boot, Container, Suite};
use crate::common::describe;
use crate::common::needs_root;
use crate::common::servers::{Moto, Sshd};

/// A container on the host's network, where its postfix and dovecot listen
/// on the host's ports: one at a time, across the test processes.
struct HostContainer {
    container: Container,
    _lock: std::fs::File,
}

impl std::ops::Deref for HostContainer {
    type Target = Container;
    fn deref(&self) -> &Container {
        &self.container
    }
}

fn boot() -> HostContainer {
    boot_suite(Suite::Bookworm)
}

fn boot_suite(suite: Suite) -> HostContainer {
    use std::os::fd::AsRawFd;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/.e2e-host-network.lock");
    let lock = std::fs::File::create(path).unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    HostContainer {
        container: Boot::new().suite(suite).host_network().start(),
        _lock: lock,
    }
}

/// Lists a tree with owners, modes, times and sizes, and hashes of the
/// files' content, leaving out backup/ and the hook's mark. A SQLite
/// database is hashed without the header fields that SQLite's online backup
/// sets in the snapshot's copy (see `common::without_sqlite_counters`):
/// the version of SQLite that wrote it differs where the package's SQLite
/// is not the system's (Debian 13).
const LIST_TREE: &str = r#"list() { cd "$1" && find . -mindepth 1 \( -path ./backup -o -path ./hook-ran \) -prune -o -exec stat -c '%n %F %a %u %g %Y %s' {} + | sort; find . -path ./backup -prune -o -path ./hook-ran -prune -o -type f -print0 | python3 -c '
import hashlib, sys
for p in sorted(sys.stdin.read().split("\0")):
    if not p:
        continue
    b = bytearray(open(p, "rb").read())
    if len(b) >= 100 and b[:16] == b"SQLite format 3\0":
        b[24:28] = bytes(4)
        b[92:100] = bytes(8)
    print(hashlib.sha256(b).hexdigest(), p)
'; }"#;

/// Restores the newest backup from `url` with plain duplicity (its options
/// and environment before), and compares it with the live data.
fn assert_restore_equals_live(c: &Container, url: &str, options: &str, env: &str) {
    c.ok(&format!(
        r#"set -e
        {LIST_TREE}
        rm -rf /tmp/r && mkdir -m 700 /tmp/r /tmp/r/gnupg
        {env} PASSPHRASE="$(head -n1 /home/user-data/backup/secret_key.txt)" GNUPGHOME=/tmp/r/gnupg \
            duplicity restore --archive-dir /tmp/r/cache {options} {url} /tmp/r/data >/dev/null
        list /home/user-data > /tmp/r/want; list /tmp/r/data > /tmp/r/got
        diff /tmp/r/want /tmp/r/got"#
    ));
}

/// Waits for the failure mail of mailbackup.service in root's mailbox.
fn failure_mail(c: &Container, since_count: usize) -> String {
    c.ok(&format!(
        "i=0; until [ \"$(grep -c '^Subject: .*mailbackup.service failed' /var/mail/root 2>/dev/null)\" -gt {since_count} ]; do \
         sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || break; done; cat /var/mail/root"
    ))
}

/// Writes a file in the container, byte for byte, with `mode`.
fn put_file(c: &Container, path: &str, content: &str, mode: &str) {
    let mut encode = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut encode.stdin.take().unwrap(), content.as_bytes()).unwrap();
    let encoded = String::from_utf8(encode.wait_with_output().unwrap().stdout).unwrap();
    c.ok(&format!(
        "mkdir -p \"$(dirname {path})\" && echo {encoded} | base64 -d > {path} && chmod {mode} {path}"
    ));
}

fn journal(c: &Container) -> String {
    c.ok("journalctl -u mailbackup.service --no-pager | tail -60")
}

#[test]
fn s3_backups_by_the_units_restore_and_keep_the_secret_in_the_credential() {
    needs_root!();
    let moto = Moto::start();
    moto.create_bucket("mail-backups");
    let c = boot();
    put_file(
        &c,
        "/home/user-data/backup/custom.yaml",
        &moto.custom_yaml("mail-backups/box1"),
        "644",
    );
    // What `ps` is searched for, kept off every command line.
    put_file(&c, "/root/pattern", &format!("{}\n", moto.secret), "600");
    let out = c.set_up_box(4, "");
    assert!(
        out.contains("readable by root only") && out.contains("checked s3+http://"),
        "{out}"
    );
    assert_eq!(c.ok("systemctl is-enabled mailbackup.timer"), "enabled\n");
    assert_eq!(
        c.ok("stat -c %a /home/user-data/backup/custom.yaml"),
        "600\n"
    );

    // A backup, watched: the secret never shows in any process's arguments.
    let out = c.sh(r#"systemctl start mailbackup.service & s=$!
        seen=0; leaked=0
        while kill -0 $s 2>/dev/null; do
            if pgrep -f 'bin/duplicit[y] (full|incr)' >/dev/null; then seen=1; fi
            ps -eww -o args | grep -qFf /root/pattern && leaked=1
            sleep 0.05
        done
        wait $s; echo "rc=$? seen=$seen leaked=$leaked""#);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rc=0 seen=1 leaked=0"),
        "{}\n{}",
        describe(&out),
        journal(&c)
    );
    c.mail_is_up();
    assert!(c.hook_mark(20).is_some());
    assert!(
        !c.ok("ls /home/user-data/backup").contains("encrypted"),
        "the backup stayed on the box"
    );
    let keys = moto.keys("mail-backups");
    assert!(
        keys.iter().any(|k| k.starts_with("box1/duplicity-full.")),
        "{keys:?}"
    );
    let url = "boto3+s3://mail-backups/box1";
    let options = format!("--s3-endpoint-url=http://{}", moto.endpoint());
    let env = format!(
        "AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY='{}'",
        moto.key_id, moto.secret
    );
    assert_restore_equals_live(&c, url, &options, &env);

    // An increment, by the timer's service again; status and the check see it.
    c.ok("echo 'a new message' > /home/user-data/mail/mailboxes/example.com/alice/new/1790002000.M2.box && chown 5000:5000 /home/user-data/mail/mailboxes/example.com/alice/new/1790002000.M2.box");
    let out = c.sh("systemctl start mailbackup.service");
    assert!(out.status.success(), "{}", journal(&c));
    assert_restore_equals_live(&c, url, &options, &env);
    let status = c.ok("mailbackup status --json");
    assert!(
        status.contains(&format!(
            "\"directory\": \"s3+http://{}/mail-backups/box1\"",
            moto.endpoint()
        )),
        "{status}"
    );
    assert_eq!(status.matches("\"full\": false").count(), 1, "{status}");
    c.ok("mailbackup key confirm < /home/user-data/backup/secret_key.txt");
    assert_eq!(c.sh("mailbackup status --check").status.code(), Some(0));

    // Nowhere it must not be: unit files, systemd's view, the journal.
    for place in [
        "cat /etc/systemd/system/mailbackup*",
        "systemctl show mailbackup.service mailbackup-verify.service",
        "journalctl -b --no-pager",
    ] {
        assert!(
            !c.ok(place).contains(&moto.secret),
            "the secret is in `{place}`"
        );
    }

    // A wrong secret: a failed unit, the mail naming the cause, mail running.
    c.ok("sed -i 's/^target_pass: .*/target_pass: wrong-secret-3f9a/' /home/user-data/backup/custom.yaml && grep -q wrong-secret /home/user-data/backup/custom.yaml");
    let out = c.sh("systemctl start mailbackup.service");
    assert!(!out.status.success());
    c.mail_is_up();
    assert_ne!(c.result(), "success");
    let mail = failure_mail(&c, 0);
    assert!(mail.contains("bad credentials"), "{mail}");
    assert!(
        !mail.contains("wrong-secret-3f9a") && !mail.contains(&moto.secret),
        "a secret is in the mail"
    );
    let out = c.sh("mailbackup status --check");
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));

    // A bucket that is not there.
    put_file(
        &c,
        "/home/user-data/backup/custom.yaml",
        &moto.custom_yaml("no-such-bucket/box1"),
        "600",
    );
    let out = c.sh("systemctl start mailbackup.service");
    assert!(!out.status.success());
    c.mail_is_up();
    let mail = failure_mail(&c, 1);
    assert!(mail.contains("no such bucket"), "{mail}");
}

#[test]
fn an_ssh_target_set_up_as_an_operator_would_and_the_disaster_restore() {
    needs_root!();
    ssh_target_and_disaster_restore(Suite::Bookworm);
}

/// An ssh target set up as an operator would, a changed host key, and the
/// disaster restore onto a new box, on `suite`.
pub(crate) fn ssh_target_and_disaster_restore(suite: Suite) {
    let mut sshd = Sshd::start();
    let c = boot_suite(suite);
    c.ok("mkdir -p /home/user-data/backup && echo 'target: off' > /home/user-data/backup/custom.yaml");
    c.set_up_box(4, "");
    // Backups are off: the service says so and succeeds.
    let out = c.sh("systemctl start mailbackup.service");
    assert!(out.status.success(), "{}", journal(&c));
    assert!(journal(&c).contains("backups are off"));
    assert_eq!(c.sh("mailbackup status --check").status.code(), Some(2));

    // The operator names the server; install makes the key and says what to do.
    c.ok(&format!(
        "echo 'target: {}' > /home/user-data/backup/custom.yaml",
        sshd.target()
    ));
    let out = c.sh("mailbackup install 2>&1");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("created the ssh key /root/.ssh/id_rsa_miab")
            && text.contains("bad credentials"),
        "{text}"
    );
    let public = c.ok("cat /root/.ssh/id_rsa_miab.pub");
    assert!(text.contains(public.trim()), "{text}");
    sshd.authorize(&public);
    let out = c.ok("mailbackup install 2>&1");
    assert!(out.contains("checked rsync://"), "{out}");
    assert_eq!(c.ok("systemctl is-enabled mailbackup.timer"), "enabled\n");

    let out = c.sh("systemctl start mailbackup.service");
    assert!(out.status.success(), "{}", journal(&c));
    c.mail_is_up();
    assert!(
        sshd.remote_files()
            .iter()
            .any(|f| f.ends_with(".manifest.gpg")),
        "{:?}",
        sshd.remote_files()
    );
    assert!(
        c.ok("cat /var/lib/mailbackup/known_hosts")
            .contains(&format!("[127.0.0.1]:{}", sshd.port)),
        "the host key was not pinned"
    );
    let url = format!(
        "rsync://root@127.0.0.1:{}/{}",
        sshd.port,
        sshd.remote.display()
    );
    let options = "'--ssh-options=-oIdentityFile=/root/.ssh/id_rsa_miab -oBatchMode=yes -oUserKnownHostsFile=/var/lib/mailbackup/known_hosts'";
    assert_restore_equals_live(&c, &url, options, "");
    let want = c.ok(&format!("{LIST_TREE}\nlist /home/user-data"));
    let carried: Vec<(String, String)> = [
        "/home/user-data/backup/secret_key.txt",
        "/home/user-data/backup/custom.yaml",
        "/root/.ssh/id_rsa_miab",
    ]
    .iter()
    .map(|f| (f.to_string(), c.ok(&format!("cat {f}"))))
    .collect();

    // The server's host key changes: the backup fails and says why.
    sshd.change_host_key();
    let out = c.sh("systemctl start mailbackup.service");
    assert!(!out.status.success());
    c.mail_is_up();
    let mail = failure_mail(&c, 0);
    assert!(
        mail.contains("host key changed") && mail.contains("ssh-keygen -R"),
        "{mail}"
    );
    let line = String::from_utf8_lossy(&c.sh("mailbackup status --check").stdout).into_owned();
    assert!(line.contains("host key changed"), "{line}");

    // The box is lost. A new one, with only the key, the settings and the
    // ssh key, gets the mail back from the server (and pins its new host key).
    drop(c);
    let fresh = boot_suite(suite);
    // A directory of the overlay's lower layer cannot be renamed: the new
    // box's data lies on a file system of its own, as a real disk would.
    fresh.ok("mount -t tmpfs -o size=256m tmpfs /home && mkdir /home/user-data && chown user-data /home/user-data");
    fresh.ok("dpkg -i /srv/host/mailbackup.deb >/dev/null && printf 'STORAGE_ROOT=/home/user-data\\nSTORAGE_USER=user-data\\nPRIMARY_HOSTNAME=box.example.com\\n' > /etc/mailinabox.conf && mkdir -p -m 700 /home/user-data/backup /root/.ssh");
    for (path, content) in &carried {
        put_file(&fresh, path, content, "600");
    }
    let out = fresh.sh("mailbackup restore --in-place --yes 2>&1");
    assert!(out.status.success(), "{}", describe(&out));
    fresh.mail_is_up();
    assert_eq!(
        fresh.ok(&format!("{LIST_TREE}\nlist /home/user-data")),
        want,
        "the restored box differs"
    );
}

#[test]
fn install_for_a_target_that_does_not_work_says_what_became_of_the_timers() {
    needs_root!();
    // No server is needed: nothing listens on the port, in a network of
    // the container's own.
    let c = Container::boot();
    c.prepare_box(1);
    c.ok("echo 'target: rsync://backup@127.0.0.1:1//srv/backups/box' > /home/user-data/backup/custom.yaml");
    let out = c.sh("mailbackup install");
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        err.contains("unreachable") && err.contains("no timer was enabled"),
        "{err}"
    );
    // The units are in the system's directory: no word of another one.
    assert!(
        text.contains("created /etc/systemd/system/mailbackup.service")
            && !text.contains("is not /etc/systemd/system"),
        "{text}"
    );
    assert_eq!(
        c.sh("systemctl is-enabled mailbackup.timer").stdout,
        b"disabled\n"
    );

    // Backups to the box's own disk, timers on; then the target moves to a
    // server that is down while install runs: the timers stay on (a server
    // down during box setup must not end the backups), and install says so.
    c.ok("echo 'target: local' > /home/user-data/backup/custom.yaml && mailbackup install");
    c.ok("echo 'target: rsync://backup@127.0.0.1:1//srv/backups/box' > /home/user-data/backup/custom.yaml");
    let out = c.sh("mailbackup install");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        err.contains(
            "mailbackup.timer, mailbackup-verify.timer and mailbackup-drill.timer stay enabled from the earlier install"
        ) && err.contains("administrator@box.example.com")
            && !err.contains("no timer was enabled"),
        "{err}"
    );
    assert_eq!(c.ok("systemctl is-enabled mailbackup.timer"), "enabled\n");
}
