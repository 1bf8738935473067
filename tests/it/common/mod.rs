//! Helpers shared by the integration tests: a box in a temporary directory,
//! a clean `Command` for the binary, a mail store generator, a tree snapshot
//! for byte-for-byte comparison, and plain-duplicity restores.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;

pub mod container;
pub mod listing;
pub mod mount;
pub mod oracle;
pub mod package;
pub mod servers;
pub mod tier;

pub(crate) use tier::needs_root;

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
    /// More environment for mailbackup (HOME, STATE_DIRECTORY).
    pub env: Vec<(OsString, OsString)>,
    /// Secrets besides the passphrase that must never be shown.
    pub secrets: Vec<String>,
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
            env: Vec::new(),
            secrets: Vec::new(),
        }
    }

    pub fn with_flavor(mut self, flavor: &Flavor) -> MailBox {
        self.path_var = flavor.path_var();
        self
    }

    /// Sets a variable in mailbackup's environment.
    pub fn with_env(mut self, key: &str, value: impl Into<OsString>) -> MailBox {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes `backup/custom.yaml`.
    pub fn set_target(&self, custom_yaml: &str) {
        fs::write(self.root.join("backup/custom.yaml"), custom_yaml).unwrap();
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
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
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

    /// `mailbackup key confirm` with the key file, as an operator pastes
    /// it back: `status --check` no longer warns of an unconfirmed key.
    pub fn confirm_key(&self) {
        let out = self
            .cmd(&["key", "confirm"])
            .stdin(std::fs::File::open(self.key_file()).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
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
        for secret in &self.secrets {
            for stream in [&out.stdout, &out.stderr] {
                assert!(
                    !String::from_utf8_lossy(stream).contains(secret.as_str()),
                    "a secret of the target appeared in the output"
                );
            }
        }
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

/// Mail-in-a-Box's `users.sqlite` as its setup makes it (setup/mail-users.sh):
/// four tables and a migration, so its header's schema cookie is well above
/// the 1 of a database with one table, as on a real box.
pub const MIAB_USERS_SCHEMA: &str = "\
    CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE, \
        password TEXT NOT NULL, extra, privileges TEXT NOT NULL DEFAULT '');
    CREATE TABLE aliases (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL UNIQUE, \
        destination TEXT NOT NULL, permitted_senders TEXT);
    CREATE TABLE mfa (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, \
        type TEXT NOT NULL, secret TEXT NOT NULL, mru_token TEXT, label TEXT, \
        FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE);
    CREATE TABLE auto_aliases (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL UNIQUE, \
        destination TEXT NOT NULL, permitted_senders TEXT);
    ALTER TABLE users ADD COLUMN quota TEXT NOT NULL DEFAULT '0';";

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
    // Made aside and copied in: sqlite resolves symlinks in its path itself,
    // which breaks a root reached through /proc/PID/root.
    let made = tempfile::tempdir().unwrap();
    let out = Command::new("sqlite3")
        .arg(made.path().join("users.sqlite"))
        .arg(format!("{MIAB_USERS_SCHEMA} INSERT INTO users (email, password) VALUES ('alice@example.com', '{{SHA512-CRYPT}}x'), ('zoë@example.com', '{{SHA512-CRYPT}}y');"))
        .output()
        .expect("sqlite3 is missing: run tests/setup.sh first");
    assert!(out.status.success(), "{}", describe(&out));
    let db = root.join("mail/users.sqlite");
    let _ = fs::remove_file(&db);
    fs::copy(made.path().join("users.sqlite"), &db).unwrap();
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
/// Walked relative to open directories, so that paths longer than the
/// kernel's limit of 4,096 bytes can be read too.
pub fn snapshot(root: &Path, skip: &[&str]) -> Tree {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    let mut map = BTreeMap::new();
    let top = nix::fcntl::open(root, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let meta = fs::metadata(root).unwrap();
    map.insert(String::new(), state_of(&meta, "dir", Vec::new(), false));
    walk(&top, Path::new(""), skip, &mut map);
    fn walk(dir: &std::os::fd::OwnedFd, rel: &Path, skip: &[&str], map: &mut Tree) {
        let entries = nix::dir::Dir::from_fd(dir.try_clone().unwrap()).unwrap();
        for entry in entries {
            let entry = entry.unwrap();
            let name = std::ffi::OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
            if name == "." || name == ".." {
                continue;
            }
            let path = rel.join(&name);
            let key = path.to_string_lossy().into_owned();
            if skip.contains(&key.as_str()) {
                continue;
            }
            let st = nix::sys::stat::fstatat(
                dir,
                name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .unwrap();
            let fmt = st.st_mode & libc::S_IFMT;
            let open = |flags: OFlag| {
                openat(
                    dir,
                    name.as_os_str(),
                    flags | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )
                .unwrap_or_else(|e| panic!("{key}: {e}"))
            };
            let (kind, content) = match fmt {
                libc::S_IFLNK => (
                    "symlink",
                    nix::fcntl::readlinkat(dir, name.as_os_str())
                        .unwrap()
                        .into_encoded_bytes(),
                ),
                libc::S_IFDIR => ("dir", Vec::new()),
                libc::S_IFIFO => ("fifo", Vec::new()),
                libc::S_IFSOCK => ("socket", Vec::new()),
                libc::S_IFCHR | libc::S_IFBLK => ("device", st.st_rdev.to_le_bytes().to_vec()),
                _ => {
                    let mut f = fs::File::from(open(OFlag::O_RDONLY));
                    let mut content = Vec::new();
                    std::io::Read::read_to_end(&mut f, &mut content).unwrap();
                    ("file", without_sqlite_counters(content))
                }
            };
            map.insert(
                key.clone(),
                FileState {
                    kind,
                    mode: st.st_mode,
                    uid: st.st_uid,
                    gid: st.st_gid,
                    // Directory times change whenever an entry is added; the
                    // root's is not restored by duplicity. Symlinks' times
                    // are not kept.
                    mtime: matches!(kind, "file" | "fifo" | "dir").then_some(st.st_mtime),
                    content,
                },
            );
            if kind == "dir" {
                walk(
                    &open(OFlag::O_RDONLY | OFlag::O_DIRECTORY),
                    &path,
                    skip,
                    map,
                );
            }
        }
    }
    map
}

/// A SQLite database with the header fields that SQLite's online backup
/// sets in its copy blanked: the change counter (bytes 24..28), the change
/// it is valid for and the version of SQLite that wrote it (92..100). The
/// snapshot takes databases with it; every other byte must be the same.
pub fn without_sqlite_counters(mut content: Vec<u8>) -> Vec<u8> {
    if content.len() >= 100 && content.starts_with(b"SQLite format 3\0") {
        content[24..28].fill(0);
        content[92..100].fill(0);
    }
    content
}

fn state_of(m: &fs::Metadata, kind: &'static str, content: Vec<u8>, mtime: bool) -> FileState {
    FileState {
        kind,
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        mtime: mtime.then_some(m.mtime()),
        content,
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
    plain_restore_from(mailbox, flavor, &local_url(mailbox), &[], &[], time)
}

/// `plain_restore` into `dest`, which must not exist.
pub fn plain_restore_to(mailbox: &MailBox, flavor: &Flavor, time: Option<&str>, dest: &Path) {
    plain_restore_url_to(mailbox, flavor, &local_url(mailbox), &[], &[], time, dest);
}

/// The duplicity URL of the box's local target.
fn local_url(mailbox: &MailBox) -> OsString {
    let mut url = OsString::from("file://");
    url.push(mailbox.target());
    url
}

/// Restores from the duplicity target `url` with plain duplicity, its
/// `options` and `env`, as anyone with the key and the target could.
pub fn plain_restore_from(
    mailbox: &MailBox,
    flavor: &Flavor,
    url: &OsString,
    options: &[&str],
    env: &[(&str, &str)],
    time: Option<&str>,
) -> PathBuf {
    let dest = tempfile::Builder::new()
        .prefix("restore")
        .tempdir_in(mailbox.dir.path())
        .unwrap()
        .keep()
        .join("restored");
    plain_restore_url_to(mailbox, flavor, url, options, env, time, &dest);
    dest
}

fn plain_restore_url_to(
    mailbox: &MailBox,
    flavor: &Flavor,
    url: &OsString,
    options: &[&str],
    env: &[(&str, &str)],
    time: Option<&str>,
    dest: &Path,
) {
    let work = tempfile::Builder::new()
        .prefix("work")
        .tempdir_in(mailbox.dir.path())
        .unwrap()
        .keep();
    let gnupg = work.join("gnupg");
    fs::create_dir(&gnupg).unwrap();
    fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = clean_command("duplicity", &flavor.path_var());
    c.arg("restore")
        .arg("--archive-dir")
        .arg(work.join("cache"))
        .env("PASSPHRASE", mailbox.passphrase())
        .env("GNUPGHOME", &gnupg)
        .envs(env.iter().copied());
    if let Some(t) = time {
        c.args(["--time", t]);
    }
    c.args(options).arg(url).arg(dest);
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
        // A new address each day: the column is UNIQUE.
        .arg("INSERT INTO users (email, password) SELECT 'new' || count(*) || '@example.com', 'z' FROM users;")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
}

/// A command's error output.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What real boxes hold beside mail, all of which a snapshot must keep as a
/// live backup keeps it: set-uid and set-gid files, set-gid and sticky
/// directories, FIFOs, sparse files (one in `mail/`, which the snapshot
/// copies, one in `owncloud/`, which it links), a path just under the
/// kernel's limit of 4,096 bytes, odd names, hard links, a dangling symlink
/// and a file of mode 0000. Owners and groups that root is not in. Returns
/// the relative path of the long one.
pub fn make_odd_tree(root: &Path) -> PathBuf {
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let file = |rel: &str, content: &[u8], mode: u32, owner: (u32, u32)| {
        let p = root.join(rel);
        write_file(&p, content, 0o600, mtime);
        std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    let dir = |rel: &str, mode: u32, owner: (u32, u32)| {
        let p = root.join(rel);
        fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    // A shared upload directory: set-gid, inherited by what is made in it.
    dir("www/shared", 0o2775, (5000, 5001));
    dir("www/shared/uploads", 0o2775, (5000, 5001));
    file(
        "www/shared/uploads/report.pdf",
        b"%PDF-1.4\n",
        0o664,
        (5000, 5001),
    );
    file("www/cgi/setuid-tool", b"#!/bin/sh\n", 0o4755, (5000, 5000));
    file("www/cgi/setgid-tool", b"#!/bin/sh\n", 0o2755, (5000, 5001));
    file(
        "mail/setgid in mail",
        b"copied, not linked",
        0o2750,
        (5000, 5001),
    );
    dir("www/tmp", 0o1777, (0, 0));
    file("www/locked", b"nobody reads me", 0o000, (5000, 5000));
    for fifo in ["owncloud/data/pipe", "mail/spool.fifo"] {
        let p = root.join(fifo);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o620)).unwrap();
        std::os::unix::fs::chown(&p, Some(5000), Some(5001)).unwrap();
        fs::File::options()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    // Sparse: 100 MiB that take a few KiB.
    for (rel, at) in [
        ("owncloud/data/disk.img", 50 << 20),
        ("mail/spamassassin/bayes_toks", 0),
    ] {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let f = fs::File::create(&p).unwrap();
        f.set_len(100 << 20).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[7u8; 4096], at).unwrap();
        f.set_modified(mtime).unwrap();
    }
    // Odd names.
    let odd = root.join("www/odd");
    fs::create_dir_all(&odd).unwrap();
    for name in [
        &b" leading space"[..],
        b"tab\there",
        b"new\nline",
        b"back\\slash",
        b"-dash",
        b"\xc3\xbcn\xc3\xaf \xe2\x82\xac",
        b"not utf-8 \xff\xfe",
        b"*?[]",
    ] {
        write_file(
            &odd.join(std::ffi::OsStr::from_bytes(name)),
            name,
            0o644,
            mtime,
        );
    }
    // Hard links: one inode, two names.
    write_file(&root.join("owncloud/data/a.txt"), b"twice", 0o644, mtime);
    fs::hard_link(
        root.join("owncloud/data/a.txt"),
        root.join("owncloud/data/b.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("www/dangling")).unwrap();
    // A path of 4,090 bytes, of which STORAGE_ROOT is the first part.
    let mut rel = PathBuf::from("long");
    let total = |rel: &Path| root.as_os_str().len() + 1 + rel.as_os_str().len();
    while total(&rel) + 201 + 10 < 4090 {
        rel.push("d".repeat(200));
    }
    let name = "f".repeat(4090 - total(&rel) - 1);
    rel.push(name);
    assert_eq!(total(&rel), 4090);
    write_file(&root.join(&rel), b"far down", 0o640, mtime);
    for p in [
        "www",
        "www/cgi",
        "www/odd",
        "owncloud",
        "owncloud/data",
        "mail/spamassassin",
    ] {
        set_mtime(&root.join(p), mtime);
    }
    rel
}
