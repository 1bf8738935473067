//! A point-in-time view of `STORAGE_ROOT`, made while the mail services are
//! stopped (or frozen), so that they can run again while duplicity backs it
//! up.
//!
//! The rule: a file is hard-linked unless a mail service may change it in
//! place once it runs again; only those are copied. A hard link holds a file
//! as it was for as long as nobody writes into it, at no cost in time or
//! space:
//!
//! - Maildir messages (`cur/`, `new/`, `tmp/`) are never changed in place:
//!   Dovecot renames a message to change its flags and unlinks it to expunge
//!   it. Linked.
//! - The rest of `mail/` is what the mail services write in place: Dovecot's
//!   indexes, caches, transaction logs and uid lists, quota files, sieve
//!   scripts, the spam filter's database, `users.sqlite`. Copied, and so is
//!   any Dovecot file (`dovecot*`, `maildirsize`, `subscriptions`) elsewhere.
//! - SQLite databases, wherever they are (`users.sqlite`, Roundcube's,
//!   Nextcloud's `owncloud.db`), are written by services the backup never
//!   stops: each is taken with SQLite's online backup (`database.rs`), one
//!   committed state without its journal, in the first step.
//! - Everything else (Nextcloud's files, web sites, certificates, DNS) is
//!   written by services that the backup never stopped: Mail-in-a-Box's
//!   backup.py read them live, while those services ran. A link gives the
//!   backup that same view, at no cost. Linked.
//!
//! It is taken in two steps, so that the mail waits for little more than a
//! directory listing per mailbox:
//!
//! 1. `prepare`, while the mail runs: the whole tree, every link, every
//!    copy but those of `mail/`. Most of the work.
//! 2. `complete`, while the mail is stopped or frozen: `mail/` and every
//!    Maildir elsewhere are brought up to date. A message is linked again
//!    only if its name or inode changed since; the copies of `mail/` are
//!    made now.
//!
//! Copies keep owners, modes (set-id bits included), times and holes, so the
//! snapshot backs up exactly as `STORAGE_ROOT` would have. The tree is
//! walked relative to open directories, on many threads, so that no path is
//! longer than the kernel's limit for one name.

mod database;
mod policy;
mod walk;

pub use database::COUNTERS as SQLITE_HEADER_COUNTERS;

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::Layout;
use crate::duplicity::migration;
use crate::sys::fs::{raise_open_files_limit, DirFd, Stat};

pub use policy::{Region, MAIL_DIR};
use walk::{open_path, Job, Node, Step, Walk};

/// What taking a snapshot did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SnapshotStats {
    pub linked: u64,
    /// Links and directories that a completing snapshot found up to date.
    pub kept: u64,
    /// Entries of the prepared snapshot gone from the data since.
    pub removed: u64,
    pub copied: u64,
    /// The bytes of data copied (holes are not).
    pub copied_bytes: u64,
    pub directories: u64,
    /// Sockets: duplicity leaves them out of a live backup too.
    pub skipped: u64,
    /// Why hard links were impossible, where they were: then files were
    /// copied instead.
    pub no_links_because: Vec<String>,
    /// The newest modification time of a copied file, in whole seconds,
    /// not counting times in the future.
    pub newest_copied_mtime: i64,
    /// SQLite databases taken with SQLite's online backup, and their bytes.
    pub databases: u64,
    pub database_bytes: u64,
    /// Files and directories gone between the listing of their directory
    /// and their link or copy: left out, as a live backup leaves them out.
    pub vanished: u64,
    /// What could not be taken as it should: databases copied as bytes.
    pub warnings: Vec<String>,
}

impl SnapshotStats {
    fn add(&mut self, other: SnapshotStats) {
        self.linked += other.linked;
        self.kept += other.kept;
        self.removed += other.removed;
        self.copied += other.copied;
        self.copied_bytes += other.copied_bytes;
        self.directories += other.directories;
        self.skipped += other.skipped;
        self.no_links_because.extend(other.no_links_because);
        self.newest_copied_mtime = self.newest_copied_mtime.max(other.newest_copied_mtime);
        self.databases += other.databases;
        self.database_bytes += other.database_bytes;
        self.vanished += other.vanished;
        self.warnings.extend(other.warnings);
    }
}

/// When the mail services may run again after a snapshot whose newest
/// copied file was modified in the second `newest_copied_mtime`.
///
/// duplicity tells a changed file by its size and its modification time in
/// whole seconds. Were a service to rewrite a file (an index of the same
/// size, say) in the same second as the snapshot copied it, the next backup
/// would take the file for unchanged and keep the old copy. So the services
/// run again only once the clock has passed that second, with a margin for
/// the coarse clock of file times.
pub fn safe_restart_at(newest_copied_mtime: i64) -> Duration {
    Duration::from_secs(newest_copied_mtime.max(0) as u64 + 1) + Duration::from_millis(20)
}

/// Takes a snapshot of `STORAGE_ROOT` in one go: `prepare`, then
/// `complete`.
pub fn take(layout: &Layout) -> Result<SnapshotStats> {
    let mut stats = prepare(layout)?;
    stats.add(complete(layout)?);
    Ok(stats)
}

/// The first step, while the mail runs: the snapshot of `STORAGE_ROOT`
/// (without `backup/`, but with the legacy `backup/duplicity` of the 2014
/// layout) in `backup/snapshot.partial`, but for the copies of `mail/`. A
/// snapshot left by an interrupted run is set aside, to be removed with
/// this one after the backup: removing a million links takes minutes.
pub fn prepare(layout: &Layout) -> Result<SnapshotStats> {
    set_aside(layout)?;
    raise_open_files_limit();
    let root = open_root(layout)?;
    let backup = DirFd::open(&layout.backup_dir)
        .with_context(|| format!("Failed to open {}", layout.backup_dir.display()))?;
    let partial = backup
        .make_dir(file_name(&layout.snapshot_partial)?)
        .with_context(|| format!("Failed to create {}", layout.snapshot_partial.display()))?;
    let walk = Walk::new(layout, &partial, Step::Prepare, HashSet::new())?;
    let meta = stat_of(&root, &layout.storage_root)?;
    let top = Arc::new(walk.top(root, partial, meta, PathBuf::new(), Region::Root, false));
    walk.push(Job::Fill(top.clone()));
    if let Some(legacy) = migration::legacy_dir(layout) {
        // backup/duplicity, under a backup/ of its own.
        let meta = stat_of(&backup, &layout.backup_dir)?;
        let name = file_name(&layout.backup_dir)?;
        let dst = top
            .dst
            .make_dir(name)
            .with_context(|| format!("Failed to create the snapshot's {}", legacy.display()))?;
        top.pending.fetch_add(1, Ordering::SeqCst);
        let node = Arc::new(Node {
            pending: AtomicUsize::new(2),
            parent: Some(top.clone()),
            ..walk.top(backup, dst, meta, PathBuf::from(name), Region::Other, false)
        });
        walk.push(Job::Open {
            parent: node.clone(),
            name: file_name(&legacy)?.to_owned(),
            existing: false,
        });
        walk.finish(&node)?;
    }
    drop(top);
    let mut stats = walk.run()?;
    if meta.dev != walk.dst_dev {
        stats.no_links_because.insert(
            0,
            format!(
                "{} is on another filesystem than {}: files cannot be hard-linked into the snapshot",
                layout.backup_dir.display(),
                layout.storage_root.display()
            ),
        );
    }
    // Where Maildirs lie and which databases were taken, for the second step.
    let maildirs = walk
        .maildirs
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    write_list(&layout.snapshot_maildirs, &maildirs)?;
    let databases = walk
        .databases
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    write_list(&layout.snapshot_databases, &databases)?;
    record_warnings(layout, &stats.warnings)?;
    Ok(stats)
}

/// Writes relative paths to `path`, each ended by a NUL.
fn write_list(path: &Path, list: &BTreeSet<PathBuf>) -> Result<()> {
    let mut bytes = Vec::new();
    for p in list {
        bytes.extend_from_slice(p.as_os_str().as_bytes());
        bytes.push(0);
    }
    std::fs::write(path, bytes).with_context(|| format!("Failed to write {}", path.display()))
}

/// The relative paths in `list`, as `write_list` wrote them.
fn parse_list(list: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    list.split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(OsStr::from_bytes(p)))
}

/// Keeps what the last snapshot warned of for `status --check`, one line
/// each; none, no file.
pub fn record_warnings(layout: &Layout, warnings: &[String]) -> Result<()> {
    let path = &layout.snapshot_warnings;
    if warnings.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("Failed to remove {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    let text: String = warnings
        .iter()
        .map(|w| w.replace('\n', " ") + "\n")
        .collect();
    // Aside, then renamed: `status --check` never reads half of it.
    let aside = path.with_extension("partial");
    std::fs::write(&aside, text)
        .and_then(|()| std::fs::rename(&aside, path))
        .with_context(|| format!("Failed to write {}", path.display()))
}

/// What the last snapshot warned of (see `record_warnings`).
pub fn last_warnings(layout: &Layout) -> Vec<String> {
    std::fs::read_to_string(&layout.snapshot_warnings)
        .map(|t| {
            t.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The second step, while the mail is stopped or frozen: brings `mail/` and
/// the Maildirs elsewhere up to date in the prepared snapshot, and moves it
/// into place. Without a prepared snapshot, takes a whole one.
pub fn complete(layout: &Layout) -> Result<SnapshotStats> {
    let Ok(list) = std::fs::read(&layout.snapshot_maildirs) else {
        remove(layout)?;
        return take(layout);
    };
    if !layout.snapshot_partial.is_dir() {
        remove(layout)?;
        return take(layout);
    }
    raise_open_files_limit();
    let root = open_root(layout)?;
    let partial = DirFd::open(&layout.snapshot_partial)
        .with_context(|| format!("Failed to open {}", layout.snapshot_partial.display()))?;
    let mut roots: BTreeSet<PathBuf> = parse_list(&list).collect();
    roots.insert(PathBuf::from(MAIL_DIR));
    // A snapshot prepared by an earlier version has no list: none taken.
    let databases = std::fs::read(&layout.snapshot_databases).unwrap_or_default();
    let taken: HashSet<PathBuf> = parse_list(&databases).collect();
    let walk = Walk::new(layout, &partial, Step::Complete, taken)?;
    for rel in &roots {
        walk.sync_root(&root, &partial, rel)?;
    }
    let mut stats = walk.run()?;
    stats.no_links_because.dedup();
    // A Maildir made or removed since the first step changed the time of
    // the directory that holds it.
    for rel in roots
        .iter()
        .filter_map(|r| r.parent())
        .filter(|p| !p.as_os_str().is_empty())
    {
        if let (Ok(src), Ok(dst)) = (open_path(&root, rel), open_path(&partial, rel)) {
            let path = layout.storage_root.join(rel);
            dst.set_attributes(&stat_of(&src, &path)?)
                .with_context(|| {
                    format!(
                        "Failed to give the snapshot's copy of {} its times",
                        path.display()
                    )
                })?;
        }
    }
    let meta = stat_of(&root, &layout.storage_root)?;
    partial.set_attributes(&meta).with_context(|| {
        format!(
            "Failed to give {} the owner, mode and times of {}",
            layout.snapshot_partial.display(),
            layout.storage_root.display()
        )
    })?;
    std::fs::rename(&layout.snapshot_partial, &layout.snapshot_dir).with_context(|| {
        format!(
            "Failed to move the snapshot {} into place",
            layout.snapshot_partial.display()
        )
    })?;
    let _ = std::fs::remove_file(&layout.snapshot_maildirs);
    let _ = std::fs::remove_file(&layout.snapshot_databases);
    Ok(stats)
}

fn open_root(layout: &Layout) -> Result<DirFd> {
    DirFd::open(&layout.storage_root)
        .with_context(|| format!("Failed to open {}", layout.storage_root.display()))
}

fn stat_of(dir: &DirFd, path: &Path) -> Result<Stat> {
    dir.stat()
        .with_context(|| format!("Failed to read {}", path.display()))
}

/// Renames what an interrupted run left (a snapshot, complete or not) to
/// `snapshot.leftover-N`: one rename, whatever its size.
fn set_aside(layout: &Layout) -> Result<()> {
    for dir in [&layout.snapshot_dir, &layout.snapshot_partial] {
        if std::fs::symlink_metadata(dir).is_err() {
            continue;
        }
        let aside = (1..)
            .map(|n| {
                let mut name = layout.snapshot_leftover.clone().into_os_string();
                name.push(format!("-{n}"));
                PathBuf::from(name)
            })
            .find(|p| std::fs::symlink_metadata(p).is_err())
            .unwrap_or_else(|| layout.snapshot_leftover.clone());
        std::fs::rename(dir, &aside).with_context(|| {
            format!(
                "Failed to move the snapshot {} that an earlier run left aside",
                dir.display()
            )
        })?;
    }
    Ok(())
}

/// The snapshot, complete or not, and those set aside.
fn snapshot_dirs(layout: &Layout) -> Vec<PathBuf> {
    let mut dirs = vec![layout.snapshot_dir.clone(), layout.snapshot_partial.clone()];
    let prefix = layout
        .snapshot_leftover
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir(&layout.backup_dir) {
        dirs.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().as_bytes().starts_with(&prefix))
                .map(|e| e.path()),
        );
    }
    dirs
}

/// Removes the snapshot, complete or not, and any set aside. Returns
/// whether there was one.
pub fn remove(layout: &Layout) -> Result<bool> {
    let _ = std::fs::remove_file(&layout.snapshot_maildirs);
    let _ = std::fs::remove_file(&layout.snapshot_databases);
    let mut removed = false;
    for dir in snapshot_dirs(layout) {
        // std removes a tree relative to open directories: any depth.
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("Failed to remove the snapshot {}", dir.display()))
            }
        }
    }
    Ok(removed)
}

fn file_name(path: &Path) -> Result<&OsStr> {
    path.file_name()
        .with_context(|| format!("{} has no file name", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_wait_for_the_next_second() {
        assert_eq!(
            safe_restart_at(1_800_000_000),
            Duration::from_millis(1_800_000_001_020)
        );
        assert_eq!(safe_restart_at(0), Duration::from_millis(1_020));
    }
}
