//! A booted systemd for end-to-end tests: the Debian 12 (or 13, see
//! [`Suite`]) root that `tests/e2e/make-root.sh` builds, booted with systemd-nspawn on a
//! throw-away overlay, with real postfix, dovecot and duplicity, and the
//! mailbackup Debian package in `/srv/host`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::package::QUICK_PROFILE;
use super::{describe, MIAB_USERS_SCHEMA};

/// The Debian release a container boots: each has a root of its own,
/// built by `tests/e2e/make-root.sh SUITE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Suite {
    /// Debian 12: systemd 252, duplicity 0.8.22.
    #[default]
    Bookworm,
    /// Debian 13: systemd 257, duplicity 3.0, cgroup v2 only, postfix run
    /// by postfix.service itself, home directories 0700.
    Trixie,
}

impl Suite {
    /// The cached root, its variable and its version stamp.
    fn root_and_stamp(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Suite::Bookworm => (
                "MAILBACKUP_E2E_ROOT",
                "/var/cache/mailbackup-e2e/bookworm-v3",
                ".mailbackup-e2e-v3",
            ),
            Suite::Trixie => (
                "MAILBACKUP_E2E_ROOT_TRIXIE",
                "/var/cache/mailbackup-e2e/trixie-v1",
                ".mailbackup-e2e-v1",
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
        }
    }
}

/// The root of `suite`.
pub fn suite_root(suite: Suite) -> PathBuf {
    let (var, default, stamp) = suite.root_and_stamp();
    let root = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| default.into());
    assert!(
        root.join(stamp).exists(),
        "{} is missing: run tests/setup.sh (or tests/e2e/make-root.sh {}) first",
        root.display(),
        suite.name()
    );
    root
}

/// The Debian package of these sources, built once per run: once per
/// process under `cargo test`, and once for all the processes of one
/// `cargo nextest run` (one NEXTEST_RUN_ID), which wait for each other.
/// With the quick `package-test` profile (no LTO), whose dependencies the
/// upgrade test's next version reuses; what the package holds does not
/// depend on the profile.
pub fn debian_package() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_debian_package_once).clone()
}

fn build_debian_package_once() -> PathBuf {
    use std::os::fd::AsRawFd;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The lock that `package::build_deb` takes too: the builds share target/.
    let lock = fs::File::create(manifest.join("target/.build-deb.lock")).unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let stamp = manifest.join("target/deb-built-in-run");
    let run = std::env::var("NEXTEST_RUN_ID").ok();
    if let (Some(run), Ok(built)) = (&run, fs::read_to_string(&stamp)) {
        if let Some((r, deb)) = built.split_once('\n') {
            if r == run && Path::new(deb).exists() {
                return deb.into();
            }
        }
    }
    let deb = manifest.join("target/test-package/mailbackup.deb");
    let out = Command::new("bash")
        .arg("packaging/build-deb.sh")
        .current_dir(manifest)
        .env(QUICK_PROFILE.0, QUICK_PROFILE.1)
        .env("MAILBACKUP_DEB_OUTPUT", &deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the package: {}",
        describe(&out)
    );
    if let Some(run) = run {
        fs::write(&stamp, format!("{run}\n{}", deb.display())).unwrap();
    }
    deb
}

/// A booted container; powered off when dropped.
pub struct Container {
    cgroup: String,
    /// STORAGE_ROOT in the container.
    pub root: String,
    nspawn: Child,
    init: u32,
    _share: tempfile::TempDir,
    /// The Debian release it runs.
    pub suite: Suite,
    /// Held while a container on the host's network runs: its postfix and
    /// dovecot take the host's ports, so one at a time, across processes.
    _host_network: Option<fs::File>,
}

/// How to boot a container.
pub struct Boot {
    storage_root: String,
    unified_cgroups: Option<bool>,
    host_network: bool,
    binds: Vec<(PathBuf, String)>,
    suite: Suite,
}

impl Boot {
    pub fn new() -> Boot {
        Boot {
            storage_root: "/home/user-data".into(),
            unified_cgroups: None,
            host_network: false,
            binds: Vec::new(),
            suite: Suite::default(),
        }
    }

    /// The Debian release to boot (Debian 12 unless told).
    pub fn suite(mut self, suite: Suite) -> Boot {
        self.suite = suite;
        self
    }

    /// The box keeps its data in `dir` (STORAGE_ROOT in the container).
    pub fn storage_root(mut self, dir: &str) -> Boot {
        self.storage_root = dir.to_owned();
        self
    }

    /// A unified (v2) cgroup hierarchy, where `systemctl freeze` works; on
    /// a host with a hybrid hierarchy the container gets v1 otherwise.
    pub fn unified_cgroups(mut self) -> Boot {
        self.unified_cgroups = Some(true);
        self
    }

    /// The cgroup v1 hierarchy (hybrid or legacy), where freezing a unit
    /// is refused.
    pub fn v1_cgroups(mut self) -> Boot {
        self.unified_cgroups = Some(false);
        self
    }

    /// The host's network, to reach servers on the host's 127.0.0.1.
    pub fn host_network(mut self) -> Boot {
        self.host_network = true;
        self
    }

    /// Binds the host's directory `host` at `dest` in the container.
    pub fn bind(mut self, host: &Path, dest: &str) -> Boot {
        self.binds.push((host.to_owned(), dest.to_owned()));
        self
    }

    pub fn start(self) -> Container {
        let root = suite_root(self.suite);
        let deb = debian_package();
        let share = tempfile::Builder::new()
            .prefix("mailbackup-e2e")
            .tempdir()
            .unwrap();
        fs::copy(&deb, share.path().join("mailbackup.deb")).unwrap();
        let console = fs::File::create(share.path().join("console.log")).unwrap();
        let bind = |host: &Path, dest: &str| {
            let mut arg = OsString::from("--bind=");
            arg.push(host);
            arg.push(":");
            arg.push(dest);
            arg
        };
        // Without a systemd on the host, every container would share the
        // host's cgroups, and their systemds would manage one another's
        // units: each gets cgroups of its own first.
        let cgroup = format!(
            "mailbackup-e2e-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut nspawn = Command::new("sh");
        nspawn
            .arg("-c")
            .arg(
                r#"for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
                    if [ -e "$h/cgroup.procs" ]; then mkdir -p "$h/$0" && echo $$ > "$h/$0/cgroup.procs"; fi
                done
                exec systemd-nspawn "$@""#,
            )
            .arg(&cgroup)
            .args(["--register=no", "--keep-unit", "--volatile=overlay", "--quiet"]);
        let host_network_lock = self.host_network.then(|| {
            use std::os::fd::AsRawFd;
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            let lock = fs::File::create(manifest.join("target/.host-network.lock")).unwrap();
            assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
            lock
        });
        if !self.host_network {
            nspawn.arg("--private-network");
        }
        // systemd 257 (Debian 13) boots on the unified hierarchy only.
        let unified = match self.suite {
            Suite::Trixie => Some(self.unified_cgroups.unwrap_or(true)),
            Suite::Bookworm => self.unified_cgroups,
        };
        if let Some(unified) = unified {
            nspawn.env(
                "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY",
                if unified { "1" } else { "0" },
            );
        }
        nspawn
            .arg("-D")
            .arg(&root)
            .arg(bind(share.path(), "/srv/host"));
        for (host, dest) in &self.binds {
            nspawn.arg(bind(host, dest));
        }
        let nspawn = nspawn
            .arg("-b")
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("systemd-nspawn is missing: run tests/setup.sh first");
        let nspawn_pid = nspawn.id();
        let mut init = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while init.is_none() && Instant::now() < deadline {
            init = child_named(nspawn_pid, "systemd");
            std::thread::sleep(Duration::from_millis(100));
        }
        let c = Container {
            cgroup,
            root: self.storage_root,
            nspawn,
            init: init.expect("the container's systemd did not start"),
            _share: share,
            suite: self.suite,
            _host_network: host_network_lock,
        };
        // Until systemd answers on its bus at all, then until it is up.
        let mut state = String::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while state.is_empty() && Instant::now() < deadline {
            let out = c.sh("timeout 120 systemctl is-system-running --wait");
            state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if state.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if state != "running" {
            let failed = c.sh("systemctl --failed --no-pager");
            panic!("the container is {state}: {}", describe(&failed));
        }
        c
    }
}

impl Default for Boot {
    fn default() -> Boot {
        Boot::new()
    }
}

/// Tells the containers of one test process apart.
static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Container {
    /// Boots the cached root with a throw-away overlay, the package in
    /// /srv/host, and waits until systemd reports the system running.
    pub fn boot() -> Container {
        Boot::new().start()
    }

    /// Boots a container whose box keeps its data in `root`.
    pub fn boot_with_root(root_dir: &str) -> Container {
        Boot::new().storage_root(root_dir).start()
    }

    /// A path in the container, as the host reaches it.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.init))
    }

    /// The directory shared with the container as /srv/host.
    pub fn share(&self) -> &Path {
        self._share.path()
    }

    /// Runs a shell script in the container.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .arg("-t")
            .arg(self.init.to_string())
            .args(["-a", "/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a script that must succeed; returns its output.
    pub fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the container: {script}\n{}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Installs the package, writes the box's config, a mail store owned by
    /// the mail user (with `big_mb` of incompressible data, so that the
    /// backup takes a while) and an after-backup hook, then installs the
    /// units.
    pub fn set_up_box(&self, big_mb: u32, install_args: &str) -> String {
        self.prepare_box(big_mb);
        self.ok(&format!("mailbackup install {install_args}"))
    }

    /// `set_up_box` without `mailbackup install`.
    pub fn prepare_box(&self, big_mb: u32) {
        let listing = self.ok(
            "dpkg -i /srv/host/mailbackup.deb >/dev/null && systemctl list-units --all --no-legend 'mailbackup*'",
        );
        assert_eq!(
            listing.trim(),
            "",
            "installing the package started something"
        );
        self.ok(&(format!("R={}\n", self.root) + &format!(
            r#"set -e
            printf 'STORAGE_ROOT=%s\nSTORAGE_USER=user-data\nPRIMARY_HOSTNAME=box.example.com\n' "$R" > /etc/mailinabox.conf
            echo 'administrator: root' >> /etc/aliases && newaliases
            m=$R/mail/mailboxes/example.com/alice
            mkdir -p $m/cur $m/new $m/tmp
            i=0; while [ $i -lt 300 ]; do
                printf 'Subject: message %s\r\n\r\nbody %s\r\n' $i $i > "$m/cur/1790000$i.M$i.box,S=40:2,S"; i=$((i+1))
            done
            echo 'first light' > "$m/new/1790001000.M1.box"
            head -c {big_mb}M /dev/urandom > $R/mail/attachments.bin
            sqlite3 $R/mail/users.sqlite "{MIAB_USERS_SCHEMA} INSERT INTO users (email, password) VALUES ('alice@example.com', 'x');"
            chown -R 5000:5000 $R/mail && chmod -R go-rwx $R/mail
            mkdir -p $R && chown user-data $R
            mkdir -p $R/backup
            printf '#!/bin/sh\n{{ id -un; echo "$STORAGE_ROOT $PRIMARY_HOSTNAME"; }} > $STORAGE_ROOT/hook-ran.tmp && mv $STORAGE_ROOT/hook-ran.tmp $STORAGE_ROOT/hook-ran\n' > $R/backup/after-backup
            chmod 755 $R/backup/after-backup
            "#
        )));
    }

    /// Starts the backup and watches postfix and dovecot while duplicity runs.
    /// Returns systemctl's exit code and what the services were meanwhile.
    pub fn start_backup_watching(&self) -> (i32, Vec<String>) {
        let out = self.sh(
            r#"systemctl start mailbackup.service & s=$!
            while kill -0 $s 2>/dev/null; do
                if pgrep -f 'bin/duplicit[y] (full|incr)' >/dev/null; then
                    echo "during: $(systemctl is-active postfix.service dovecot.service | tr '\n' ' ')"
                fi
                sleep 0.1
            done
            wait $s; echo "rc=$?""#,
        );
        let (rc, during) = rc_and_during(&out);
        (rc, during)
    }

    /// A local user, carol, whose mail postfix delivers into a Maildir in
    /// STORAGE_ROOT, so that mail lands in the data while a backup runs.
    pub fn add_maildir_user(&self) {
        self.ok(&format!(
            r#"set -e
            useradd --home-dir {root}/carol --no-create-home carol
            mkdir -p {root}/carol && chown carol {root}/carol
            postconf -e home_mailbox=Maildir/
            systemctl reload postfix"#,
            root = self.root
        ));
    }

    /// Starts `unit` while `messages` mails to carol (`add_maildir_user`),
    /// `Subject: TAG-N`, come 0.1 s apart. Returns systemctl's exit code,
    /// what postfix and dovecot were (`active active`) whenever a
    /// `duplicity ACTION` ran, and the whole output.
    pub fn start_while_mail_flows(
        &self,
        unit: &str,
        messages: u32,
        tag: &str,
        action: &str,
    ) -> (i32, Vec<String>, Output) {
        let out = self.sh(&format!(
            r#"( i=1; while [ $i -le {messages} ]; do
                   printf 'Subject: {tag}-%s\n\nmessage %s\n' $i $i | /usr/sbin/sendmail carol; i=$((i+1)); sleep 0.1
                 done ) & d=$!
            sleep 0.5
            systemctl start {unit} & s=$!
            while kill -0 $s 2>/dev/null; do
                if pgrep -f 'bin/duplicit[y] {action}' >/dev/null; then
                    echo "during: $(systemctl is-active {postfix} dovecot.service | tr '\n' ' ')"
                fi
                sleep 0.05
            done
            wait $s; echo "rc=$?"; wait $d"#,
            postfix = self.postfix_unit()
        ));
        let (rc, during) = rc_and_during(&out);
        (rc, during, out)
    }

    /// Starts a backup, stops it as an operator would once duplicity runs,
    /// and checks that the stop came back within a minute.
    pub fn stop_a_running_backup(&self) {
        let out = self.sh(r#"systemctl start mailbackup.service & s=$!
            until pgrep -f 'bin/duplicit[y] (full|incr)' >/dev/null; do
                kill -0 $s 2>/dev/null || { echo "ended first"; exit 8; }; sleep 0.1
            done
            timeout 60 systemctl stop mailbackup.service; echo "stop=$?"; wait $s"#);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("stop=0"),
            "{}",
            describe(&out)
        );
    }

    /// The unit that runs postfix's master: postfix@-.service on Debian
    /// 12, postfix.service itself on Debian 13.
    pub fn postfix_unit(&self) -> &'static str {
        match self.suite {
            Suite::Bookworm => "postfix@-.service",
            Suite::Trixie => "postfix.service",
        }
    }

    pub fn mail_is_up(&self) {
        assert_eq!(
            self.ok("systemctl is-active postfix.service dovecot.service"),
            "active\nactive\n"
        );
    }

    pub fn result(&self) -> String {
        self.ok("systemctl show -p Result --value mailbackup.service")
            .trim()
            .to_owned()
    }

    /// root's mailbox once the failure mail of mailbackup.service is in it
    /// (or after 60 s without it).
    pub fn failure_mail(&self) -> String {
        self.ok("i=0; until grep -q 'mailbackup.service failed' /var/mail/root 2>/dev/null; do sleep 0.2; i=$((i+1)); [ $i -lt 300 ] || break; done; cat /var/mail/root")
    }

    /// Waits for the hook's mark; returns its content, or None.
    pub fn hook_mark(&self, secs: u64) -> Option<String> {
        let out = self.sh(&format!(
            "i=0; while [ $i -lt {} ] && [ ! -e {root}/hook-ran ]; do sleep 0.1; i=$((i+1)); done; cat {root}/hook-ran",
            secs * 10,
            root = self.root
        ));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Restores the newest backup with plain duplicity and the key's first
    /// line, and compares it with the live data: content, modes, owners,
    /// mtimes.
    pub fn assert_restore_equals_live(&self) {
        self.ok(
            &(format!("R={}\n", self.root)
                + r#"set -e
            rm -rf /tmp/r && mkdir -m 700 /tmp/r /tmp/r/gnupg
            PASSPHRASE="$(head -n1 $R/backup/secret_key.txt)" GNUPGHOME=/tmp/r/gnupg \
                duplicity restore --archive-dir /tmp/r/cache file://$R/backup/encrypted /tmp/r/data >/dev/null
            "#),
        );
        super::assert_same_tree(
            &super::snapshot(&self.path(&self.root), &["backup", "hook-ran"]),
            &super::snapshot(&self.path("/tmp/r/data"), &["hook-ran"]),
        );
    }

    pub fn count(&self, script: &str) -> usize {
        self.ok(script).trim().parse().unwrap()
    }
}

/// The `rc=N` and the `during: STATES` lines of a watching script.
fn rc_and_during(out: &Output) -> (i32, Vec<String>) {
    let text = String::from_utf8_lossy(&out.stdout);
    let rc = text
        .lines()
        .find_map(|l| l.strip_prefix("rc="))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{}", describe(out)));
    let during = text
        .lines()
        .filter_map(|l| l.strip_prefix("during: "))
        .map(|s| s.trim().to_owned())
        .collect();
    (rc, during)
}

impl Container {
    fn remove_cgroups(&self) {
        for h in [
            "/sys/fs/cgroup/systemd",
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup",
        ] {
            let _ = Command::new("find")
                .arg(format!("{h}/{}", self.cgroup))
                .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.sh("systemctl poweroff");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                self.remove_cgroups();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Killing the container's init ends its whole PID namespace.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.init as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        self.remove_cgroups();
    }
}

/// A child of `parent` whose command is `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat
            .split_once(") ")
            .map(|(a, b)| (a.split_once(" (").map_or("", |x| x.1), b))
        else {
            continue;
        };
        let ppid: Option<u32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if comm == name && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}
