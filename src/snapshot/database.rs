//! SQLite databases in the snapshot: taken with SQLite's online backup, so
//! that the snapshot holds one committed state of each, whatever its
//! writers (Nextcloud, Roundcube, the management daemon, none of which a
//! backup stops) do meanwhile.
//!
//! A file is a database when its first 16 bytes are SQLite's header. Which
//! files are opened to read it is the policy's (`policy.rs`); this module
//! reads the header and takes the copy.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};

/// The first 16 bytes of every SQLite database file.
pub const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The smallest database that holds anything: one page of the smallest
/// size. A shorter file is empty or no database, and a byte copy of it is
/// as good as any.
pub const MIN_SIZE: u64 = 512;

/// How long a database may stay locked against reading (a writer's
/// exclusive lock, in rollback-journal mode) before it is copied as bytes.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The files SQLite keeps beside a database `NAME`: `NAME-journal`,
/// `NAME-wal`, `NAME-shm`.
const SIDECARS: [&str; 3] = ["-journal", "-wal", "-shm"];

/// Whether `head` (a file's first bytes) is SQLite's header.
pub fn is_header(head: &[u8]) -> bool {
    head.starts_with(HEADER)
}

/// The database whose journal, WAL or shared-memory file `name` would be.
pub fn sidecar_of(name: &OsStr) -> Option<&OsStr> {
    let bytes = name.as_bytes();
    SIDECARS.iter().find_map(|s| {
        bytes
            .strip_suffix(s.as_bytes())
            .filter(|base| !base.is_empty())
            .map(OsStr::from_bytes)
    })
}

/// The sidecars that a byte copy of a database takes with it: what SQLite
/// needs to roll back or replay an unfinished transaction. The shared
/// memory file is rebuilt by whoever opens the database first.
pub fn recovery_sidecars(name: &OsStr) -> [std::ffi::OsString; 2] {
    ["-journal", "-wal"].map(|s| {
        let mut n = name.to_owned();
        n.push(s);
        n
    })
}

/// Why a database could not be taken with SQLite's backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Locked against reading for longer than [`LOCK_WAIT`].
    Locked,
    /// SQLite found it corrupt (or not a database after all).
    Corrupt(String),
    /// Any other reason SQLite gave: unreadable, a path longer than SQLite
    /// takes, a symlink in the path, an unfinished transaction of a writer
    /// that died (a hot journal, which a read-only reader cannot roll back).
    Unreadable(String),
}

impl Failure {
    /// What the log and `status --check` say of the database `path`.
    pub fn warning(&self, path: &Path) -> String {
        let why = match self {
            Failure::Locked => format!(
                "was locked by another process for more than {} s",
                LOCK_WAIT.as_secs()
            ),
            Failure::Corrupt(e) => format!("is corrupt ({e})"),
            Failure::Unreadable(e) => format!("could not be read by SQLite ({e})"),
        };
        format!(
            "the SQLite database {} {why}: copied as bytes with its journal instead, \
             which may restore inconsistent",
            path.display()
        )
    }
}

/// How often a reader tries again for its lock.
const RETRY_EVERY: Duration = Duration::from_micros(500);

thread_local! {
    /// Until when [`retry_soon`] tries, on the thread that runs [`take`]
    /// (SQLite calls its busy handler on the thread that waits).
    static DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// SQLite's busy handler for the source. In rollback-journal mode a reader
/// gets its lock only between a writer's commits, or while the writer has
/// not begun to commit: a window of a fraction of a millisecond when
/// writers commit back to back. SQLite's own handler sleeps up to 100 ms
/// between tries and can miss every window for minutes; trying every half
/// millisecond meets one within a few.
fn retry_soon(_count: i32) -> bool {
    std::thread::sleep(RETRY_EVERY);
    DEADLINE.get().is_some_and(|d| Instant::now() < d)
}

fn failure(e: rusqlite::Error) -> Failure {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Failure::Locked,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            Failure::Corrupt(e.to_string())
        }
        _ => Failure::Unreadable(e.to_string()),
    }
}

/// Copies the database `src` to the new file `dst` with SQLite's online
/// backup: one committed state, read in one go under a read lock (so that
/// no commit restarts it), in rollback-journal and WAL mode alike. The
/// source is opened read-only, never through a symlink. The copy is then
/// checked (`PRAGMA quick_check`), which finds a source corrupt beyond its
/// first page. Returns the pages copied, times their size.
pub fn take(src: &Path, dst: &Path, wait: Duration) -> Result<u64, Failure> {
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failure)?;
    let deadline = Instant::now() + wait;
    DEADLINE.set(Some(deadline));
    source.busy_handler(Some(retry_soon)).map_err(failure)?;
    let mut copy = Connection::open_with_flags(
        dst,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failure)?;
    // A scratch copy: if this crashes, the snapshot is thrown away.
    copy.pragma_update(None, "journal_mode", "OFF")
        .map_err(failure)?;
    copy.pragma_update(None, "synchronous", "OFF")
        .map_err(failure)?;
    {
        let backup = Backup::new(&source, &mut copy).map_err(failure)?;
        loop {
            match backup.step(-1).map_err(failure)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if Instant::now() >= deadline => return Err(Failure::Locked),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    // The copy's header counts its own writes, and the backup API gives it a
    // schema cookie of its own (its old one plus one: always 1 for a new
    // file). The source's, read after the copy, make a database that nobody
    // changed meanwhile come out byte for byte as it is (a live verify and
    // the drill compare bytes). They come from one read, so the copy's
    // header stays consistent.
    let counters = source_counters(src);
    drop(source);
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(failure)?;
    if check != "ok" {
        return Err(Failure::Corrupt(check));
    }
    let bytes: i64 = copy
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get(0),
        )
        .map_err(failure)?;
    copy.close().map_err(|(_, e)| failure(e))?;
    if let Some(counters) = counters {
        set_counters(dst, &counters).map_err(|e| Failure::Unreadable(e.to_string()))?;
    }
    Ok(bytes.max(0) as u64)
}

/// The header fields that count writes rather than describe the data, by
/// offset and length: the change counter, the schema cookie, and
/// version-valid-for with the SQLite version that wrote the file.
pub const COUNTERS: [(usize, usize); 3] = [(24, 4), (40, 4), (92, 8)];

/// The [`COUNTERS`] of the database at `path`, in their order.
fn source_counters(path: &Path) -> Option<[u8; 16]> {
    use std::io::Read;
    let mut header = [0u8; 100];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .ok()?;
    // Only a consistent header: version-valid-for equals the change counter.
    if header[24..28] != header[92..96] {
        return None;
    }
    let mut counters = [0u8; 16];
    let mut at = 0;
    for (offset, len) in COUNTERS {
        counters[at..at + len].copy_from_slice(&header[offset..offset + len]);
        at += len;
    }
    Some(counters)
}

fn set_counters(path: &Path, counters: &[u8; 16]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut at = 0;
    for (offset, len) in COUNTERS {
        file.write_all_at(&counters[at..at + len], offset as u64)?;
        at += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn sidecars_name_their_database() {
        assert_eq!(
            sidecar_of(os("owncloud.db-journal")),
            Some(os("owncloud.db"))
        );
        assert_eq!(sidecar_of(os("users.sqlite-wal")), Some(os("users.sqlite")));
        assert_eq!(sidecar_of(os("users.sqlite-shm")), Some(os("users.sqlite")));
        assert_eq!(sidecar_of(os("-wal")), None);
        assert_eq!(sidecar_of(os("users.sqlite")), None);
        assert_eq!(
            recovery_sidecars(os("a.db")),
            [os("a.db-journal").to_owned(), os("a.db-wal").to_owned()]
        );
    }

    #[test]
    fn the_header_tells_a_database() {
        assert!(is_header(b"SQLite format 3\0\x10\x00\x01\x01"));
        assert!(!is_header(b"SQLite format 3"));
        assert!(!is_header(b"SQLite format 2\0\x10\x00"));
        assert!(!is_header(b""));
    }

    fn make(path: &Path, wal: bool) -> Connection {
        let db = Connection::open(path).unwrap();
        if wal {
            db.pragma_update(None, "journal_mode", "WAL").unwrap();
        }
        db.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO t (v) SELECT hex(randomblob(100)) FROM n;",
        )
        .unwrap();
        db
    }

    /// A database nobody changed comes out byte for byte as it is: a live
    /// `verify` after a snapshot backup compares bytes. This one's schema
    /// changed several times, as a real box's has: its schema cookie is not
    /// the 1 that the backup API gives a new copy.
    #[test]
    fn an_unchanged_database_is_copied_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("users.sqlite");
        let db = make(&src, false);
        db.execute_batch(
            "CREATE TABLE aliases (source TEXT, destination TEXT);
             CREATE INDEX by_source ON aliases (source);
             ALTER TABLE t ADD COLUMN quota TEXT NOT NULL DEFAULT '0';",
        )
        .unwrap();
        let cookie: i64 = db
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .unwrap();
        assert!(cookie > 1);
        drop(db);
        let dst = dir.path().join("copy.sqlite");
        take(&src, &dst, LOCK_WAIT).unwrap();
        assert!(std::fs::read(&src).unwrap() == std::fs::read(&dst).unwrap());
    }

    fn rows(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_wal_database_is_taken_with_what_is_only_in_its_wal() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("w.db");
        // Held open: the WAL is not checkpointed into the file.
        let writer = make(&src, true);
        assert!(dir.path().join("w.db-wal").exists());
        let dst = dir.path().join("copy.db");
        assert!(take(&src, &dst, LOCK_WAIT).unwrap() > 0);
        assert_eq!(rows(&dst), 500);
        let mode: String = Connection::open(&dst)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal", "the copy keeps the journal mode");
        drop(writer);
    }

    #[test]
    fn a_database_locked_past_the_bound_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("r.db");
        drop(make(&src, false));
        let holder = Connection::open(&src).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let started = Instant::now();
        let e = take(&src, &dir.path().join("c.db"), Duration::from_millis(300)).unwrap_err();
        assert_eq!(e, Failure::Locked);
        assert!(started.elapsed() < Duration::from_secs(5));
        holder.execute_batch("COMMIT").unwrap();
        take(&src, &dir.path().join("c2.db"), Duration::from_millis(300)).unwrap();
        assert_eq!(rows(&dir.path().join("c2.db")), 500);
    }

    /// A writer committing back to back, in rollback-journal mode, leaves
    /// the database unlocked only for instants: the backup still gets in.
    #[test]
    fn a_database_written_back_to_back_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("busy.db");
        drop(make(&src, false));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = {
            let (src, stop, commits) = (src.clone(), stop.clone(), commits.clone());
            std::thread::spawn(move || {
                let db = Connection::open(&src).unwrap();
                db.busy_timeout(Duration::from_secs(60)).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    db.execute_batch(
                        "BEGIN IMMEDIATE; UPDATE t SET v = hex(randomblob(100)) WHERE id = 7; COMMIT;",
                    )
                    .unwrap();
                    commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        // The writer is well under way (however loaded the machine).
        while commits.load(std::sync::atomic::Ordering::Relaxed) < 10 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let started = Instant::now();
        let taken = take(&src, &dir.path().join("c.db"), LOCK_WAIT);
        let took = started.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        assert!(taken.is_ok(), "{taken:?} after {took:?}");
        assert_eq!(rows(&dir.path().join("c.db")), 500);
    }

    #[test]
    fn garbage_after_the_header_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("bad.db");
        drop(make(&src, false));
        let mut bytes = std::fs::read(&src).unwrap();
        // Past the first page: the b-tree pages of the table.
        let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
        for b in &mut bytes[page + 8..] {
            *b = 0x5a;
        }
        std::fs::write(&src, &bytes).unwrap();
        let e = take(&src, &dir.path().join("c.db"), LOCK_WAIT).unwrap_err();
        assert!(matches!(e, Failure::Corrupt(_)), "{e:?}");
        // And within the first page, right after the 100-byte header.
        for b in &mut bytes[100..page] {
            *b = 0xa5;
        }
        std::fs::write(&src, &bytes).unwrap();
        let e = take(&src, &dir.path().join("c2.db"), LOCK_WAIT).unwrap_err();
        assert!(matches!(e, Failure::Corrupt(_)), "{e:?}");
        let text = e.warning(Path::new("/data/bad.db"));
        assert!(text.contains("/data/bad.db is corrupt"), "{text}");
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("real.db");
        drop(make(&src, false));
        std::os::unix::fs::symlink(&src, dir.path().join("link.db")).unwrap();
        let e = take(
            &dir.path().join("link.db"),
            &dir.path().join("c.db"),
            LOCK_WAIT,
        );
        assert!(matches!(e, Err(Failure::Unreadable(_))), "{e:?}");
    }
}
