//! What a drill restored against the live files: every file whose contents
//! have not changed since the backup's data was taken (its mtime is older)
//! must have come back byte for byte, and with its mode when its inode has
//! not changed either (its ctime is older); the others changed since and
//! are only counted. Not the ctime alone: the snapshot links every file
//! and unlinks it after the backup, which sets the ctime of each. A SQLite
//! database comes back as the snapshot's online backup wrote it: the same
//! pages, with the header's change counters (bytes 24-27 and 92-99) its own.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::snapshot::SQLITE_HEADER_COUNTERS as COUNTERS;

/// How many differences are kept to be named.
const KEPT: usize = 20;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Files compared with the restored ones.
    pub compared: u64,
    /// Files changed, added or removed since the backup: not compared.
    pub changed_since: u64,
    /// What differs, one line each (the first few).
    pub differences: Vec<String>,
    pub difference_count: u64,
}

impl Comparison {
    fn differ(&mut self, what: String) {
        self.difference_count += 1;
        if self.differences.len() < KEPT {
            self.differences.push(what);
        }
    }
}

/// Compares `rel` under `restored` with `rel` under `live`: files (and
/// symlinks) of the live tree unchanged since the Unix time `cutoff` must
/// be in the restored tree as they are.
pub fn compare(live: &Path, restored: &Path, rel: &Path, cutoff: f64) -> Result<Comparison> {
    let mut c = Comparison::default();
    let mut pending: Vec<PathBuf> = vec![rel.to_owned()];
    while let Some(p) = pending.pop() {
        let live_path = live.join(&p);
        let meta = match std::fs::symlink_metadata(&live_path) {
            Ok(m) => m,
            // Removed since (or meanwhile): nothing to compare.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("Failed to read {}", live_path.display()))
            }
        };
        if meta.is_dir() {
            let entries = std::fs::read_dir(&live_path)
                .with_context(|| format!("Failed to list {}", live_path.display()))?;
            for entry in entries {
                let entry =
                    entry.with_context(|| format!("Failed to list {}", live_path.display()))?;
                pending.push(p.join(entry.file_name()));
            }
            continue;
        }
        let at = |secs: i64, nsec: i64| secs as f64 + nsec as f64 * 1e-9;
        if at(meta.mtime(), meta.mtime_nsec()) >= cutoff {
            c.changed_since += 1;
            continue;
        }
        let inode_unchanged = at(meta.ctime(), meta.ctime_nsec()) < cutoff;
        let back = restored.join(&p);
        if !inode_unchanged && std::fs::symlink_metadata(&back).is_err() {
            // Renamed or moved here since (a message read, flagged, or
            // moved to another folder keeps its mtime): not in the backup
            // under this name.
            c.changed_since += 1;
            continue;
        }
        c.compared += 1;
        if let Some(what) = same_file(&live_path, &meta, &back, inode_unchanged)? {
            c.differ(format!("{}: {what}", p.display()));
        }
    }
    c.changed_since += only_restored(live, restored, rel)?;
    Ok(c)
}

/// Why the restored file differs from the live one, or None.
fn same_file(
    live: &Path,
    meta: &std::fs::Metadata,
    restored: &Path,
    check_mode: bool,
) -> Result<Option<&'static str>> {
    let Ok(back) = std::fs::symlink_metadata(restored) else {
        return Ok(Some("not in the restored backup"));
    };
    if meta.file_type().is_symlink() {
        let same = back.file_type().is_symlink()
            && std::fs::read_link(live).ok() == std::fs::read_link(restored).ok();
        return Ok((!same).then_some("the symlink differs"));
    }
    if !meta.is_file() {
        return Ok((back.file_type() != meta.file_type()).then_some("another kind of file"));
    }
    if !back.is_file() {
        return Ok(Some("another kind of file"));
    }
    if back.len() != meta.len() {
        return Ok(Some("another size"));
    }
    if check_mode && meta.mode() & 0o7777 != back.mode() & 0o7777 {
        return Ok(Some("another mode"));
    }
    if is_database(live) {
        return Ok((!same_database(live, restored)?).then_some("other contents"));
    }
    Ok((!same_bytes(live, restored)?).then_some("other contents"))
}

fn is_database(path: &Path) -> bool {
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"SQLite format 3\0")
}

/// The same database pages, the header's counters aside (a backup taken
/// before the snapshot kept them, or one taken live, may have others).
fn same_database(a: &Path, b: &Path) -> Result<bool> {
    let read =
        |p: &Path| std::fs::read(p).with_context(|| format!("Failed to read {}", p.display()));
    let (mut a, mut b) = (read(a)?, read(b)?);
    for bytes in [&mut a, &mut b] {
        for (offset, len) in COUNTERS {
            if let Some(field) = bytes.get_mut(offset..offset + len) {
                field.fill(0);
            }
        }
    }
    Ok(a == b)
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| {
        std::fs::File::open(p).with_context(|| format!("Failed to read {}", p.display()))
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = read_full(&mut fa, &mut ba)
            .with_context(|| format!("Failed to read {}", a.display()))?;
        let m = read_full(&mut fb, &mut bb)
            .with_context(|| format!("Failed to read {}", b.display()))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Files in the restored tree that are not live any more: removed or
/// renamed since the backup.
fn only_restored(live: &Path, restored: &Path, rel: &Path) -> Result<u64> {
    let mut count = 0;
    let mut pending: Vec<PathBuf> = vec![rel.to_owned()];
    while let Some(p) = pending.pop() {
        let path = restored.join(&p);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)
                .with_context(|| format!("Failed to list {}", path.display()))?
            {
                let entry = entry.with_context(|| format!("Failed to list {}", path.display()))?;
                pending.push(p.join(entry.file_name()));
            }
        } else if std::fs::symlink_metadata(live.join(&p)).is_err() {
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn unchanged_files_must_come_back_and_changed_ones_are_counted() {
        let live = tempfile::tempdir().unwrap();
        let back = tempfile::tempdir().unwrap();
        let rel = Path::new("mail/mailboxes/example.com/alice");
        for (name, content) in [
            ("cur/1:2,S", &b"one"[..]),
            ("cur/2:2,S", b"two"),
            ("dovecot.index", b"ix"),
        ] {
            write(live.path(), &format!("{}/{name}", rel.display()), content);
            write(back.path(), &format!("{}/{name}", rel.display()), content);
        }
        // Gone since the backup, and new since it.
        write(
            back.path(),
            &format!("{}/cur/0:2,S", rel.display()),
            b"zero",
        );
        let now = crate::status::publish::unix(std::time::SystemTime::now());
        let c = compare(live.path(), back.path(), rel, now as f64 + 10.0).unwrap();
        assert_eq!(
            (c.compared, c.changed_since, c.difference_count),
            (3, 1, 0),
            "{c:?}"
        );

        // Damaged in the backup, and missing from it.
        write(back.path(), &format!("{}/cur/1:2,S", rel.display()), b"onx");
        std::fs::remove_file(back.path().join(rel).join("dovecot.index")).unwrap();
        let c = compare(live.path(), back.path(), rel, now as f64 + 10.0).unwrap();
        assert_eq!(c.difference_count, 2, "{c:?}");
        assert!(
            c.differences
                .iter()
                .any(|d| d.ends_with("cur/1:2,S: other contents")),
            "{c:?}"
        );
        assert!(
            c.differences
                .iter()
                .any(|d| d.ends_with("dovecot.index: not in the restored backup")),
            "{c:?}"
        );

        // Everything changed since a backup of long ago: nothing compared.
        let c = compare(live.path(), back.path(), rel, 1.0).unwrap();
        assert_eq!((c.compared, c.changed_since), (0, 4));
    }

    /// A message read since the backup: dovecot renamed it to add a flag,
    /// which keeps its mtime and sets its ctime. Not a difference.
    #[test]
    fn a_message_renamed_since_the_backup_is_counted_as_changed() {
        let live = tempfile::tempdir().unwrap();
        let back = tempfile::tempdir().unwrap();
        let rel = Path::new("mail/mailboxes/example.com/alice");
        let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
        for dir in [live.path(), back.path()] {
            write(dir, &format!("{}/cur/1:2,", rel.display()), b"one");
            let file = std::fs::File::options()
                .write(true)
                .open(dir.join(rel).join("cur/1:2,"))
                .unwrap();
            file.set_modified(long_ago).unwrap();
        }
        let now = crate::status::publish::unix(std::time::SystemTime::now());
        let cutoff = now as f64 - 5.0;
        let cur = live.path().join(rel).join("cur");
        std::fs::rename(cur.join("1:2,"), cur.join("1:2,S")).unwrap();
        let c = compare(live.path(), back.path(), rel, cutoff).unwrap();
        assert_eq!((c.difference_count, c.changed_since), (0, 2), "{c:?}");
    }

    #[test]
    fn a_single_file() {
        let live = tempfile::tempdir().unwrap();
        let back = tempfile::tempdir().unwrap();
        write(live.path(), "mail/users.sqlite", b"db");
        write(back.path(), "mail/users.sqlite", b"db");
        let c = compare(
            live.path(),
            back.path(),
            Path::new("mail/users.sqlite"),
            f64::MAX,
        )
        .unwrap();
        assert_eq!((c.compared, c.difference_count), (1, 0));
    }

    /// Databases that differ only in the header's counters (the change
    /// counter, the schema cookie, version-valid-for) are the same; one
    /// changed byte in a page is not.
    #[test]
    fn databases_are_compared_without_their_header_counters() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = b"SQLite format 3\0".to_vec();
        db.resize(4096, 7);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, &db).unwrap();
        for offset in [24, 43, 92, 99] {
            let mut other = db.clone();
            other[offset] ^= 1;
            std::fs::write(&b, &other).unwrap();
            assert!(same_database(&a, &b).unwrap(), "byte {offset}");
        }
        let mut other = db.clone();
        other[2000] ^= 1;
        std::fs::write(&b, &other).unwrap();
        assert!(!same_database(&a, &b).unwrap());
    }
}
