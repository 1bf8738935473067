//! SQLite databases in the snapshot, with real duplicity: taken with
//! SQLite's online backup while writers commit, so that every restored copy
//! is one committed state; a locked or corrupt database is copied as bytes
//! and warned of; files that vanish while the snapshot is taken are left
//! out, never a failure.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use rusqlite::Connection;

/// A writer like Nextcloud's or Roundcube's: small transactions, each of
/// which moves an amount between two of 100 accounts (whose balances always
/// add up to 100,000) and logs it (the log always has as many rows as the
/// counter says; now and then 20 are deleted), with rows of padding so that
/// the database spans pages. `total` counts the transfers.
const WRITER: &str = r#"
import os, random, sqlite3, sys, time
path, mode, stop = sys.argv[1], sys.argv[2], sys.argv[3]
db = sqlite3.connect(path, timeout=60, isolation_level=None)
db.execute("PRAGMA journal_mode=" + mode)
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER, pad BLOB)")
db.execute("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, amount INTEGER, pad BLOB)")
db.execute("CREATE INDEX IF NOT EXISTS log_amount ON log (amount)")
db.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER, total INTEGER)")
if db.execute("SELECT count(*) FROM counter").fetchone()[0] == 0:
    db.execute("INSERT INTO counter VALUES (0, 0)")
    for i in range(100):
        db.execute("INSERT INTO accounts (balance, pad) VALUES (1000, randomblob(3000))")
db.execute("COMMIT")
rng = random.Random()
while not os.path.exists(stop):
    a, b = rng.randrange(1, 101), rng.randrange(1, 101)
    amount = rng.randrange(1, 50)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE accounts SET balance = balance - ?, pad = randomblob(3000) WHERE id = ?", (amount, a))
    db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, b))
    db.execute("INSERT INTO log (amount, pad) VALUES (?, randomblob(?))", (amount, rng.randrange(100, 2000)))
    db.execute("UPDATE counter SET n = n + 1, total = total + 1")
    db.execute("COMMIT")
    if rng.random() < 0.02:
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM log WHERE id IN (SELECT id FROM log ORDER BY random() LIMIT 20)")
        db.execute("UPDATE counter SET n = (SELECT count(*) FROM log)")
        db.execute("COMMIT")
"#;

struct Writer {
    child: Child,
    stop: PathBuf,
    db: PathBuf,
}

impl Writer {
    /// Starts a writer on `db` in journal mode `mode` ("DELETE" or "WAL"),
    /// and waits for its first commits.
    fn start(db: &Path, mode: &str) -> Writer {
        let stop = db.with_extension("stop-writer");
        let child = Command::new("python3")
            .args(["-c", WRITER])
            .arg(db)
            .arg(mode)
            .arg(&stop)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 runs the writer");
        let writer = Writer {
            child,
            stop,
            db: db.to_owned(),
        };
        assert!(
            wait_for(30, || writer.commits() > 20),
            "the writer on {} does not commit",
            db.display()
        );
        writer
    }

    fn commits(&self) -> i64 {
        Connection::open(&self.db)
            .and_then(|c| {
                c.busy_timeout(Duration::from_secs(5))?;
                c.query_row("SELECT total FROM counter", [], |r| r.get(0))
            })
            .unwrap_or(0)
    }

    fn stop(mut self) {
        fs::write(&self.stop, "").unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the writer on {} failed",
            self.db.display()
        );
        fs::remove_file(&self.stop).unwrap();
    }
}

/// Checks a restored copy: SQLite finds it sound, and it holds one
/// committed state (the invariants of `WRITER`). Returns the transfers it holds.
fn check_consistent(db: &Path) -> i64 {
    let c = Connection::open(db).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", db.display());
    let sum: i64 = c
        .query_row("SELECT sum(balance) FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sum, 100_000, "half a transfer in {}", db.display());
    let (n, logged): (i64, i64) = c
        .query_row(
            "SELECT (SELECT n FROM counter), (SELECT count(*) FROM log)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(n, logged, "half a transaction in {}", db.display());
    c.query_row("SELECT total FROM counter", [], |r| r.get(0))
        .unwrap()
}

fn sidecars(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-journal") || n.ends_with("-wal") || n.ends_with("-shm"))
        .collect()
}

fn journal_mode(db: &Path) -> String {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

/// Nextcloud's database in rollback-journal mode and Roundcube's in WAL
/// mode, each under a writer all through three snapshot backups: every
/// restored copy passes `PRAGMA integrity_check`, keeps the writer's
/// invariants, holds what was committed before the snapshot, keeps its
/// journal mode, and has no journal or WAL beside it (the writers keep
/// theirs, so a link or a byte copy would have them).
#[test]
fn databases_written_during_backups_restore_consistent() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 30);
    let cloud = mailbox.root.join("owncloud");
    let roundcube = mailbox.root.join("mail/roundcube");
    fs::create_dir_all(&cloud).unwrap();
    fs::create_dir_all(&roundcube).unwrap();
    let nextcloud = Writer::start(&cloud.join("owncloud.db"), "DELETE");
    let webmail = Writer::start(&roundcube.join("roundcube.sqlite"), "WAL");
    let mut seen = (0, 0);
    for round in 0..3 {
        let before = (nextcloud.commits(), webmail.commits());
        let out = mailbox.ok(&["snapshot", "--prepare"]);
        // users.sqlite too.
        assert_eq!(databases_taken(&stderr(&out)), Some(3), "{}", stderr(&out));
        mailbox.ok(&["snapshot", "--complete"]);
        mailbox.ok(&["run", "--from-snapshot"]);
        mailbox.ok(&["snapshot", "--remove"]);
        let restored = plain_restore(&mailbox, flavor, None);
        let n = check_consistent(&restored.join("owncloud/owncloud.db"));
        assert!(n >= before.0 && n > seen.0, "round {round}: {n} commits");
        let m = check_consistent(&restored.join("mail/roundcube/roundcube.sqlite"));
        assert!(m >= before.1 && m > seen.1, "round {round}: {m} commits");
        seen = (n, m);
        assert_eq!(sidecars(&restored.join("owncloud")), Vec::<String>::new());
        assert_eq!(
            sidecars(&restored.join("mail/roundcube")),
            Vec::<String>::new()
        );
        assert!(!sidecars(&roundcube).is_empty(), "the writer keeps its WAL");
        assert_eq!(
            journal_mode(&restored.join("mail/roundcube/roundcube.sqlite")),
            "wal"
        );
        assert_eq!(
            journal_mode(&restored.join("owncloud/owncloud.db")),
            "delete"
        );
        next_second();
    }
    nextcloud.stop();
    webmail.stop();
}

/// The log line of a snapshot step that says how many databases it took.
fn databases_taken(log: &str) -> Option<u64> {
    let at = log.find(" SQLite databases taken")?;
    log[..at].rsplit(' ').next()?.parse().ok()
}

/// A database held locked by another process (BEGIN EXCLUSIVE, a
/// transaction half written) past the bound: the snapshot waits 10 s, no
/// more, copies it as bytes with its journal, and the log and
/// `status --check` say so; once the lock is gone, so is the warning.
#[test]
fn a_locked_database_is_copied_as_bytes_and_warned_of() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 9);
    let db = mailbox.root.join("owncloud/owncloud.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    let c = Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(c);
    let stop = mailbox.dir.path().join("release");
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import os, sqlite3, sys, time\n\
             db = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             db.execute('BEGIN EXCLUSIVE')\n\
             db.execute('INSERT INTO t VALUES (2)')\n\
             open(sys.argv[2] + '.held', 'w').close()\n\
             while not os.path.exists(sys.argv[2]): time.sleep(0.05)\n\
             db.execute('ROLLBACK')\n",
        ])
        .arg(&db)
        .arg(&stop)
        .spawn()
        .unwrap();
    assert!(wait_for(20, || stop.with_extension("held").exists()));
    assert!(db.with_extension("db-journal").exists());

    let started = Instant::now();
    let out = mailbox.ok(&["snapshot"]);
    let took = started.elapsed();
    let log = stderr(&out);
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(40),
        "{took:?}"
    );
    assert!(
        log.contains("WARNING: the SQLite database")
            && log
                .contains("owncloud/owncloud.db was locked by another process for more than 10 s"),
        "{log}"
    );
    let snap = mailbox.root.join("backup/snapshot/owncloud");
    assert_eq!(
        fs::read(snap.join("owncloud.db")).unwrap(),
        fs::read(&db).unwrap()
    );
    assert!(snap.join("owncloud.db-journal").exists(), "{log}");
    mailbox.ok(&["run", "--from-snapshot"]);
    mailbox.ok(&["snapshot", "--remove"]);
    let check = mailbox.run(&["status", "--check"]);
    let line = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{line}");
    assert!(
        line.starts_with("MAILBACKUP WARNING - the last snapshot: the SQLite database")
            && line.contains("owncloud.db was locked"),
        "{line}"
    );

    fs::write(&stop, "").unwrap();
    assert!(holder.wait().unwrap().success());
    next_second();
    let out = mailbox.ok(&["snapshot"]);
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    assert_eq!(databases_taken(&stderr(&out)), Some(2), "{}", stderr(&out));
    mailbox.ok(&["run", "--from-snapshot"]);
    mailbox.ok(&["snapshot", "--remove"]);
    mailbox.confirm_key();
    let check = mailbox.run(&["status", "--check"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// A corrupt database (SQLite's header, then garbage): copied as bytes,
/// byte for byte in the restore, and warned of; the backup completes.
#[test]
fn a_corrupt_database_is_copied_as_bytes_and_warned_of() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 9);
    let db = mailbox.root.join("mail/roundcube/roundcube.sqlite");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(random_bytes(8192));
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    fs::write(&db, &bytes).unwrap();
    let out = mailbox.ok(&["snapshot"]);
    let log = stderr(&out);
    assert!(
        log.contains("WARNING: the SQLite database") && log.contains("roundcube.sqlite is corrupt"),
        "{log}"
    );
    mailbox.ok(&["run", "--from-snapshot"]);
    mailbox.ok(&["snapshot", "--remove"]);
    let restored = plain_restore(&mailbox, flavor, None);
    assert_eq!(
        fs::read(restored.join("mail/roundcube/roundcube.sqlite")).unwrap(),
        bytes
    );
    let check = mailbox.run(&["status", "--check"]);
    let line = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{line}");
    assert!(line.contains("roundcube.sqlite is corrupt"), "{line}");
}

/// Deletes and makes files all the time: messages in a Maildir, temporary
/// files in Nextcloud's directory, until told to stop.
fn churn(root: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let cur = root.join("mail/mailboxes/example.com/alice/cur");
        let tmp = root.join("owncloud/tmp");
        fs::create_dir_all(&tmp).unwrap();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for dir in [&cur, &tmp] {
                let new = dir.join(format!("churn{n}.box:2,S"));
                fs::write(&new, "Subject: churn\r\n\r\nx\r\n").unwrap();
                if n >= 1500 {
                    let _ = fs::remove_file(dir.join(format!("churn{}.box:2,S", n - 1500)));
                }
            }
            n += 1;
        }
        n
    })
}

/// Files created and deleted all through the snapshot (SQLite journals,
/// expunged messages, temporary files): twenty backups in a row succeed,
/// and the log counts what was gone before it could be taken.
#[test]
fn files_that_vanish_during_the_snapshot_never_fail_the_backup() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 30);
    fs::create_dir_all(mailbox.root.join("owncloud")).unwrap();
    let writer = Writer::start(&mailbox.root.join("owncloud/owncloud.db"), "DELETE");
    let stop = Arc::new(AtomicBool::new(false));
    let churner = churn(mailbox.root.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let mut vanished = 0u64;
    for _ in 0..20 {
        for step in [&["snapshot", "--prepare"][..], &["snapshot", "--complete"]] {
            let log = stderr(&mailbox.ok(step));
            if let Some(at) = log.find(" files gone before they could be taken") {
                vanished += log[..at]
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
            }
        }
        mailbox.ok(&["run", "--from-snapshot"]);
        mailbox.ok(&["snapshot", "--remove"]);
    }
    stop.store(true, Ordering::Relaxed);
    let made = churner.join().unwrap();
    writer.stop();
    assert_eq!(mailbox.kinds().len(), 20);
    assert!(made > 3000, "the churn made {made} files");
    assert!(
        vanished > 0,
        "no file vanished in 20 snapshots: the race was not met"
    );
}

/// A box-shaped tree: odd modes, owners, symlinks (one named like a
/// database), big files, a sqlite file a user keeps in Nextcloud, a file
/// named like a database that is none, a WAL database nobody has open. The
/// backup restores as a live one would, databases compared by content; the
/// snapshot creates no file in the data owned by root.
#[test]
fn a_box_shaped_tree_backs_up_as_it_is() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 30);
    make_odd_tree(&mailbox.root);
    let cloud = mailbox.root.join("owncloud");
    let notes = cloud.join("alice/files/Notes");
    fs::create_dir_all(&notes).unwrap();
    for (db, mode) in [
        (cloud.join("owncloud.db"), "WAL"),
        (notes.join("notes.sqlite"), "DELETE"),
    ] {
        let c = Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", mode).unwrap();
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (randomblob(5000));")
            .unwrap();
        drop(c);
        assert!(sidecars(db.parent().unwrap()).is_empty());
        std::os::unix::fs::chown(&db, Some(33), Some(33)).unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o640)).unwrap();
    }
    std::os::unix::fs::symlink("owncloud.db", cloud.join("link.db")).unwrap();
    write_file(
        &cloud.join("alice/files/photo.db"),
        &[0xffu8; 4096],
        0o644,
        std::time::SystemTime::now(),
    );
    random_file(&cloud.join("alice/files/video.bin"), 64 << 20);
    chown_tree(&cloud, 33, 33);
    let before = fs::read(cloud.join("owncloud.db")).unwrap();
    next_second();
    let live = live_state(&mailbox.root);

    let out = mailbox.ok(&["snapshot"]);
    let log = stderr(&out);
    assert_eq!(databases_taken(&log), Some(3), "{log}");
    assert!(!log.contains("WARNING"), "{log}");
    assert_same_tree(&live, &snapshot(&mailbox.root.join("backup/snapshot"), &[]));
    // Read-only: the data is as it was, and nothing was added to it.
    assert_eq!(fs::read(cloud.join("owncloud.db")).unwrap(), before);
    for e in fs::read_dir(&cloud).unwrap() {
        let e = e.unwrap();
        assert_eq!(e.metadata().unwrap().uid(), 33, "{:?}", e.file_name());
    }
    mailbox.ok(&["run", "--from-snapshot"]);
    mailbox.ok(&["snapshot", "--remove"]);
    // Beside STORAGE_ROOT under a short name, so that the long path fits.
    let restored = mailbox.dir.path().join("r");
    plain_restore_to(&mailbox, flavor, None, &restored);
    assert_same_tree(&live, &snapshot(&restored, &[]));
    assert_eq!(journal_mode(&restored.join("owncloud/owncloud.db")), "wal");
}
