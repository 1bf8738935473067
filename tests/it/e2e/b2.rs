//! A B2 target end to end: the booted Debian 12 of `e2e.rs`, on the host's
//! network, backing up through its units to the local B2 server
//! (tests/tools/b2_server.py) on the host's 127.0.0.1, with Debian's
//! duplicity and b2sdk. The key reaches the units only in the settings
//! file, loaded as a systemd credential.
//!
//! The cached root has no python3-b2sdk: the host's (Debian 12's, the same
//! Python) is bound in at /opt/b2py with the test realm's sitecustomize.py,
//! and a drop-in gives the service the test seam's environment.

use crate::common::needs_root;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::container::{Boot, Container};
use crate::common::servers::free_port;
use crate::common::{describe, wait_for};

const KEY_ID: &str = "0012ab34cd";
const KEY: &str = "K001e2e/Key+Secret=";
const QUOTED_KEY: &str = "K001e2e%2FKey%2BSecret%3D";

struct B2Server {
    port: u16,
    child: Child,
}

impl B2Server {
    fn start() -> B2Server {
        let port = free_port();
        let child = Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/b2_server.py"))
            .args(["--port", &port.to_string()])
            .args(["--key", &format!("{KEY_ID}:{KEY}")])
            .args(["--bucket", "mail-backups"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_for(30, || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()));
        B2Server { port, child }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn files(&self, bucket: &str) -> Vec<String> {
        let body = ureq::get(format!("{}/_test/buckets", self.url()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let all: serde_json::Value = serde_json::from_str(&body).unwrap();
        all[bucket]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for B2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's b2sdk and what it needs beyond the root's packages, and the
/// test realm's sitecustomize.py, in one directory for PYTHONPATH.
fn b2_python_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("b2py").tempdir().unwrap();
    let site = Path::new("/usr/lib/python3/dist-packages");
    for package in ["b2sdk", "logfury", "arrow", "tqdm"] {
        assert!(
            site.join(package).is_dir(),
            "{package} is missing: run tests/setup.sh (python3-b2sdk)"
        );
        let out = Command::new("cp")
            .arg("-a")
            .arg(site.join(package))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
    }
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/b2_realm/sitecustomize.py"),
        dir.path().join("sitecustomize.py"),
    )
    .unwrap();
    dir
}

/// A container on the host's network: one at a time, across the test
/// processes (its postfix and dovecot listen on the host's ports).
fn boot(python_dir: &Path) -> (Container, fs::File) {
    use std::os::fd::AsRawFd;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/.e2e-host-network.lock");
    let lock = fs::File::create(path).unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let c = Boot::new()
        .host_network()
        .bind(python_dir, "/opt/b2py")
        .start();
    (c, lock)
}

fn put_file(c: &Container, path: &str, content: &str, mode: &str) {
    fs::write(c.share().join("put"), content).unwrap();
    c.ok(&format!(
        "mkdir -p \"$(dirname {path})\" && cp /srv/host/put {path} && chmod {mode} {path} && rm /srv/host/put"
    ));
}

fn journal(c: &Container) -> String {
    c.ok("journalctl -u mailbackup.service --no-pager | tail -60")
}

#[test]
fn b2_backups_by_the_units_keep_the_key_in_the_credential() {
    needs_root!();
    let server = B2Server::start();
    let python = b2_python_dir();
    let (c, _lock) = boot(python.path());
    let env = format!(
        "PYTHONPATH=/opt/b2py B2_TEST_REALM_URL={url} MAILBACKUP_B2_API_URL={url}",
        url = server.url()
    );
    put_file(
        &c,
        "/home/user-data/backup/custom.yaml",
        &format!("target: b2://{KEY_ID}:{QUOTED_KEY}@mail-backups/box1\n"),
        "644",
    );
    put_file(
        &c,
        "/etc/systemd/system/mailbackup.service.d/b2-test.conf",
        &format!("[Service]\nEnvironment={env}\n"),
        "644",
    );
    put_file(
        &c,
        "/root/pattern",
        &format!("{KEY}\n{QUOTED_KEY}\n"),
        "600",
    );
    c.prepare_box(2);
    let out = c.ok(&format!("env {env} mailbackup install"));
    assert!(
        out.contains("readable by root only") && out.contains(&format!("b2://{KEY_ID}@")),
        "{out}"
    );
    assert_eq!(c.ok("systemctl is-enabled mailbackup.timer"), "enabled\n");

    // A backup, watched: the key never shows in any process's arguments.
    let out = c.sh(
        r#"systemctl daemon-reload; systemctl start mailbackup.service & s=$!
        seen=0; leaked=0
        while kill -0 $s 2>/dev/null; do
            if pgrep -f 'bin/duplicit[y] (full|incr)' >/dev/null; then seen=1; fi
            ps -eww -o args | grep -qFf /root/pattern && leaked=1
            sleep 0.05
        done
        wait $s; echo "rc=$? seen=$seen leaked=$leaked""#,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rc=0 seen=1 leaked=0"),
        "{}\n{}",
        describe(&out),
        journal(&c)
    );
    c.mail_is_up();
    let files = server.files("mail-backups");
    assert!(
        files.iter().any(|f| f.starts_with("box1/duplicity-full.")),
        "{files:?}"
    );
    let status = c.ok(&format!("env {env} mailbackup status --json"));
    assert!(
        status.contains(&format!(
            "\"directory\": \"b2://{KEY_ID}@mail-backups/box1\""
        )),
        "{status}"
    );
    for place in [
        "cat /etc/systemd/system/mailbackup*.service",
        "systemctl show mailbackup.service mailbackup-verify.service",
        "journalctl -b --no-pager",
    ] {
        let text = c.ok(place);
        assert!(
            !text.contains(KEY) && !text.contains(QUOTED_KEY),
            "the key is in `{place}`"
        );
    }

    // A wrong key: a failed unit, the mail naming the cause, without it.
    put_file(
        &c,
        "/home/user-data/backup/custom.yaml",
        &format!("target: b2://{KEY_ID}:K001wrong7c2e@mail-backups/box1\n"),
        "600",
    );
    let out = c.sh("systemctl start mailbackup.service");
    assert!(!out.status.success());
    c.mail_is_up();
    let mail = c.ok(
        "i=0; until grep -q '^Subject: .*mailbackup.service failed' /var/mail/root 2>/dev/null; do \
         sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || break; done; cat /var/mail/root",
    );
    assert!(mail.contains("bad credentials"), "{mail}");
    assert!(
        !mail.contains("K001wrong7c2e") && !mail.contains(KEY),
        "a key is in the mail"
    );
}
