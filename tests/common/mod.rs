//! Helpers shared by the integration tests: a box in a temporary directory,
//! a clean `Command` for the binary, a mail store generator, a tree snapshot
//! for byte-for-byte comparison, and plain-duplicity restores.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;

pub mod container;

pub const BIN: &str = env!("CARGO_BIN_EXE_mailbackup");

/// A duplicity installation the round-trip tests run against.
#[derive(Clone, Debug)]
pub struct Flavor {
    pub name: &'static str,
    /// Put first in PATH so that `duplicity` is this one.
    pub bin_dir: PathBuf,
}

impl Flavor {
    pub fn path_var(&self) -> OsString {
        let mut p = OsString::from(&self.bin_dir);
        p.push(":/usr/sbin:/usr/bin:/sbin:/bin");
        p
    }
}

/// Debian's duplicity 0.8, and duplicity 3.x from PyPI in the venv that
/// `tests/setup.sh` creates. Both must be there: a missing one fails.
pub fn flavors() -> Vec<Flavor> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/duplicity3/bin");
    for f in [
        Path::new("/usr/bin/duplicity").to_owned(),
        venv.join("duplicity"),
    ] {
        assert!(
            f.exists(),
            "{} is missing: run tests/setup.sh first",
            f.display()
        );
    }
    vec![
        Flavor {
            name: "debian",
            bin_dir: "/usr/bin".into(),
        },
        Flavor {
            name: "pypi3",
            bin_dir: venv,
        },
    ]
}

/// A Mail-in-a-Box in a temporary directory: `conf` and `STORAGE_ROOT`.
pub struct MailBox {
    pub dir: TempDir,
    pub root: PathBuf,
    pub conf: PathBuf,
    pub path_var: OsString,
}

impl MailBox {
    /// A box with an empty `STORAGE_ROOT` (named with a space and UTF-8) and
    /// a multi-line key like the ones Mail-in-a-Box made with
    /// `openssl rand -base64 2048`.
    pub fn new() -> MailBox {
        MailBox::named("user data ü")
    }

    /// A box whose STORAGE_ROOT is called `root_name`.
    pub fn named(root_name: &str) -> MailBox {
        let dir = tempfile::Builder::new()
            .prefix("mailbackup-test")
            .tempdir()
            .unwrap();
        let root = dir.path().join(root_name);
        fs::create_dir_all(root.join("backup")).unwrap();
        let conf = dir.path().join("mailinabox.conf");
        fs::write(
            &conf,
            format!(
                "STORAGE_USER=user-data\nSTORAGE_ROOT={}\nPRIMARY_HOSTNAME=box.example.com\n",
                root.display()
            ),
        )
        .unwrap();
        let key = root.join("backup/secret_key.txt");
        fs::write(&key, multi_line_key()).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        MailBox {
            dir,
            root,
            conf,
            path_var: "/usr/sbin:/usr/bin:/sbin:/bin".into(),
        }
    }

    pub fn with_flavor(mut self, flavor: &Flavor) -> MailBox {
        self.path_var = flavor.path_var();
        self
    }

    pub fn key_file(&self) -> PathBuf {
        self.root.join("backup/secret_key.txt")
    }

    pub fn target(&self) -> PathBuf {
        self.root.join("backup/encrypted")
    }

    /// The key file's first line: what gpg uses.
    pub fn passphrase(&self) -> String {
        fs::read_to_string(self.key_file())
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned()
    }

    /// `mailbackup --config CONF ARGS` with a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = clean_command(BIN, &self.path_var);
        c.arg("--config").arg(&self.conf).args(args);
        c
    }

    /// Runs mailbackup, checks that the passphrase is not in its output, and
    /// returns the output.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().unwrap();
        self.assert_no_secret(&out);
        out
    }

    /// Runs mailbackup and requires success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mailbackup {args:?} failed: {}",
            describe(&out)
        );
        out
    }

    pub fn assert_no_secret(&self, out: &Output) {
        let Ok(key) = fs::read_to_string(self.key_file()) else {
            return;
        };
        let Some(secret) = key.lines().next().filter(|l| !l.is_empty()) else {
            return;
        };
        for stream in [&out.stdout, &out.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains(secret),
                "the passphrase appeared in the output"
            );
        }
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.ok(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The kinds of the backups, newest first: "full" or "inc".
    pub fn kinds(&self) -> Vec<&'static str> {
        self.status()["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                if b["full"].as_bool().unwrap() {
                    "full"
                } else {
                    "inc"
                }
            })
            .collect()
    }
}

pub fn multi_line_key() -> String {
    let bytes = random_bytes(1536);
    let out = Command::new("base64")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    out.stdin.as_ref().unwrap().write_all(&bytes).unwrap();
    let out = out.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::io::Read::read_exact(&mut fs::File::open("/dev/urandom").unwrap(), &mut buf).unwrap();
    buf
}

/// A `Command` with an empty environment but PATH.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>, path_var: &OsString) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", path_var)
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null());
    c
}

pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A small but realistic mail store: Maildirs with messages in `cur/` and
/// `new/`, Dovecot index files, a sqlite database, names with spaces and
/// UTF-8, files of another owner, assorted modes and whole-second mtimes.
pub fn make_mail_store(root: &Path, messages: usize) {
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    for (i, user) in ["alice", "bob", "zoë"].iter().enumerate() {
        let mdir = root.join(format!("mail/mailboxes/example.com/{user}"));
        for sub in [
            "cur",
            "new",
            "tmp",
            ".Sent Items/cur",
            ".Sent Items/new",
            ".Sent Items/tmp",
        ] {
            fs::create_dir_all(mdir.join(sub)).unwrap();
        }
        for n in 0..messages / 3 {
            let sub = match n % 5 {
                0 => "new",
                1 => ".Sent Items/cur",
                _ => "cur",
            };
            let flags = if sub == "new" { "" } else { ":2,S" };
            let name = format!(
                "17900000{n:02}.M{n}P{i}.box.example.com,S={}{flags}",
                300 + n
            );
            let body = format!(
                "From: someone@example.org\r\nTo: {user}@example.com\r\nSubject: message {n} — ünïcødé\r\n\r\n{}\r\n",
                "Lorem ipsum dolor sit amet. ".repeat(n % 40 + 1)
            );
            write_file(&mdir.join(sub).join(name), body.as_bytes(), 0o600, mtime);
        }
        write_file(&mdir.join("dovecot.index"), &[i as u8; 4096], 0o600, mtime);
        write_file(
            &mdir.join("dovecot.index.log"),
            &vec![7u8; 10_000 + i],
            0o600,
            mtime,
        );
        write_file(&mdir.join("dovecot-uidlist"), b"3 V1 N2\n", 0o600, mtime);
    }
    fs::create_dir_all(root.join("mail/sieve/global")).unwrap();
    write_file(
        &root.join("mail/sieve/global/spam with space.sieve"),
        b"require \"fileinto\";\n",
        0o644,
        mtime,
    );
    let db = root.join("mail/users.sqlite");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, password TEXT); INSERT INTO users (email, password) VALUES ('alice@example.com', '{SHA512-CRYPT}x'), ('zoë@example.com', '{SHA512-CRYPT}y');")
        .output()
        .expect("sqlite3 is missing: run tests/setup.sh first");
    assert!(out.status.success(), "{}", describe(&out));
    fs::set_permissions(&db, fs::Permissions::from_mode(0o660)).unwrap();
    fs::create_dir_all(root.join("ssl")).unwrap();
    write_file(
        &root.join("ssl/ssl_private_key.pem"),
        b"-----BEGIN PRIVATE KEY-----\n",
        0o600,
        mtime,
    );
    write_file(
        &root.join("www/default/index.html"),
        b"<h1>box</h1>\n",
        0o644,
        mtime,
    );
    write_file(
        &root.join("dns/zone with ümlaut.txt"),
        b"@ IN A 192.0.2.1\n",
        0o640,
        mtime,
    );
    std::os::unix::fs::symlink("index.html", root.join("www/default/home.html")).unwrap();
    // Files of the mail user, as on a real box.
    for p in ["mail/mailboxes", "mail/users.sqlite", "mail/sieve"] {
        chown_tree(&root.join(p), 5000, 5000);
    }
    for p in ["mail", "mail/mailboxes/example.com", "www/default", "dns"] {
        set_mtime(&root.join(p), mtime);
    }
}

pub fn write_file(path: &Path, content: &[u8], mode: u32, mtime: SystemTime) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(path, mtime);
}

pub fn set_mtime(path: &Path, mtime: SystemTime) {
    fs::File::open(path).unwrap().set_modified(mtime).unwrap();
}

pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

/// Everything a restore must reproduce of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Whole seconds: duplicity keeps no more.
    pub mtime: Option<i64>,
    pub content: Vec<u8>,
}

/// The state of every file of a tree, by relative path.
pub type Tree = BTreeMap<String, FileState>;

/// The state of a tree, by relative path, leaving out `skip` (relative).
pub fn snapshot(root: &Path, skip: &[&str]) -> Tree {
    let mut map = BTreeMap::new();
    walk(root, root, skip, &mut map);
    map
}

fn walk(root: &Path, path: &Path, skip: &[&str], map: &mut BTreeMap<String, FileState>) {
    let rel = path
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    if skip.contains(&rel.as_str()) {
        return;
    }
    let m = fs::symlink_metadata(path).unwrap();
    let (kind, content) = if m.is_symlink() {
        (
            "symlink",
            fs::read_link(path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes(),
        )
    } else if m.is_dir() {
        ("dir", Vec::new())
    } else {
        ("file", fs::read(path).unwrap())
    };
    map.insert(
        rel,
        FileState {
            kind,
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            // Directory times change whenever an entry is added; the root's is
            // not restored by duplicity. Symlinks' times are not kept.
            mtime: (kind == "file" || (kind == "dir" && path != root)).then_some(m.mtime()),
            content,
        },
    );
    if kind == "dir" {
        for e in fs::read_dir(path).unwrap() {
            walk(root, &e.unwrap().path(), skip, map);
        }
    }
}

/// Asserts two snapshots are equal, naming the first difference.
pub fn assert_same_tree(want: &BTreeMap<String, FileState>, got: &BTreeMap<String, FileState>) {
    for (path, w) in want {
        match got.get(path) {
            None => panic!("{path:?} is missing from the restore"),
            Some(g) if g != w => panic!(
                "{path:?} differs: want {} mode {:o} {}:{} mtime {:?} ({} bytes), got {} mode {:o} {}:{} mtime {:?} ({} bytes)",
                w.kind, w.mode, w.uid, w.gid, w.mtime, w.content.len(), g.kind, g.mode, g.uid, g.gid, g.mtime, g.content.len()
            ),
            _ => {}
        }
    }
    for path in got.keys() {
        assert!(
            want.contains_key(path),
            "{path:?} is in the restore but was not backed up"
        );
    }
}

/// Restores the backup of `mailbox` with plain duplicity (its own empty
/// cache and GnuPG home) and the key file's first line; `time` as duplicity
/// takes it. Returns the restored directory.
pub fn plain_restore(mailbox: &MailBox, flavor: &Flavor, time: Option<&str>) -> PathBuf {
    let work = tempfile::Builder::new()
        .prefix("restore")
        .tempdir_in(mailbox.dir.path())
        .unwrap()
        .keep();
    let dest = work.join("restored");
    let gnupg = work.join("gnupg");
    fs::create_dir(&gnupg).unwrap();
    fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = clean_command("duplicity", &flavor.path_var());
    c.arg("restore")
        .arg("--archive-dir")
        .arg(work.join("cache"))
        .env("PASSPHRASE", mailbox.passphrase())
        .env("GNUPGHOME", &gnupg);
    if let Some(t) = time {
        c.args(["--time", t]);
    }
    let mut url = OsString::from("file://");
    url.push(mailbox.target());
    c.arg(url).arg(&dest);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "plain duplicity restore failed: {}",
        describe(&out)
    );
    let _ = clean_command("gpgconf", &flavor.path_var())
        .env("GNUPGHOME", &gnupg)
        .args(["--kill", "gpg-agent"])
        .output();
    dest
}

/// The snapshot of a live STORAGE_ROOT as a backup must contain it.
pub fn live_state(root: &Path) -> BTreeMap<String, FileState> {
    snapshot(root, &["backup"])
}

/// Waits until `cond` holds, for at most `secs`.
pub fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether duplicity currently holds a lock in the box's archive dir.
pub fn lockfile_exists(mailbox: &MailBox) -> bool {
    let cache = mailbox.root.join("backup/cache");
    fs::read_dir(cache)
        .map(|d| d.flatten().any(|e| e.path().join("lockfile").exists()))
        .unwrap_or(false)
}

/// Writes `bytes` of incompressible data to `path`.
pub fn random_file(path: &Path, bytes: usize) {
    fs::write(path, random_bytes(bytes)).unwrap();
}

/// duplicity's time stamps have whole seconds: two backups need two.
pub fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// Changes a mail store the way a day of mail does: new messages, a flag
/// change (rename), an expunge (unlink), a rewritten index, a database write.
pub fn a_day_of_mail(root: &Path) {
    let inbox = root.join("mail/mailboxes/example.com/alice");
    let cur = inbox.join("cur");
    let mut names: Vec<_> = fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    fs::rename(&names[0], names[0].with_extension("host:2,RS")).unwrap();
    fs::remove_file(&names[1]).unwrap();
    fs::write(
        inbox.join("new/1800000000.M1P1.box.example.com"),
        b"Subject: new\r\n\r\nhello\r\n",
    )
    .unwrap();
    fs::write(inbox.join("dovecot.index"), [9u8; 5000]).unwrap();
    let out = Command::new("sqlite3")
        .arg(root.join("mail/users.sqlite"))
        .arg("INSERT INTO users (email, password) VALUES ('new@example.com', 'z');")
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// A command's error output.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
