//! A point-in-time copy of `STORAGE_ROOT`, made while the mail services are
//! stopped, so that they can run again while duplicity backs it up.
//!
//! Maildir message files (in `cur/` and `new/`) are never changed in place:
//! Dovecot renames a message to change its flags and unlinks it to expunge
//! it. A hard link therefore holds a message as it was, at no cost in time
//! or space. Every other file (indexes, sqlite, certificates, the rest of
//! the box) is copied — `copy_file_range`, which shares blocks where the
//! filesystem can. Owners, modes and times are kept, so the snapshot backs
//! up exactly as `STORAGE_ROOT` would have.

use std::fs::{self, FileTimes, Metadata};
use std::io::ErrorKind;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::config::Layout;
use crate::migration;
use crate::sys::set_symlink_times;

/// What taking a snapshot did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SnapshotStats {
    pub linked: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    pub directories: u64,
    /// Sockets, FIFOs and devices: not data, left out.
    pub skipped: u64,
    /// Why hard links were impossible (another filesystem), when they were:
    /// then messages were copied.
    pub no_links_because: Option<String>,
    /// The newest modification time of a copied file, in whole seconds.
    pub newest_copied_mtime: i64,
}

impl SnapshotStats {
    fn add(&mut self, other: SnapshotStats) {
        self.linked += other.linked;
        self.copied += other.copied;
        self.copied_bytes += other.copied_bytes;
        self.directories += other.directories;
        self.skipped += other.skipped;
        self.no_links_because = self.no_links_because.take().or(other.no_links_because);
        self.newest_copied_mtime = self.newest_copied_mtime.max(other.newest_copied_mtime);
    }
}

/// When the mail services may run again after a snapshot whose newest
/// copied file was modified in the second `newest_copied_mtime`.
///
/// duplicity tells a changed file by its size and its modification time in
/// whole seconds. Were a service to rewrite a file (an index of the same
/// size, say) in the same second as the snapshot copied it, the next backup
/// would take the file for unchanged and keep the old copy. So the services
/// start again only once the clock has passed that second, with a margin
/// for the coarse clock of file times.
pub fn safe_restart_at(newest_copied_mtime: i64) -> Duration {
    Duration::from_secs(newest_copied_mtime.max(0) as u64 + 1) + Duration::from_millis(20)
}

/// Whether the files of a directory called `name` are Maildir messages:
/// `cur` or `new`, beside a `tmp` (which `has_tmp_sibling` tells).
pub fn holds_messages(name: &str, has_tmp_sibling: impl FnOnce() -> bool) -> bool {
    (name == "cur" || name == "new") && has_tmp_sibling()
}

/// Takes a snapshot of `STORAGE_ROOT` (without `backup/`, but with the
/// legacy `backup/duplicity` of the 2014 layout) into `backup/snapshot`.
/// A snapshot left by an earlier run is removed first. The snapshot is
/// built beside its place and renamed into it when complete.
///
/// The tree and the files that are copied come first; the message
/// directories, most of the files, are then linked on all CPUs.
pub fn take(layout: &Layout) -> Result<SnapshotStats> {
    remove(layout)?;
    let partial = &layout.snapshot_partial;
    let mut stats = SnapshotStats::default();
    let mut to_link = Vec::new();
    copy_dir(
        &layout.storage_root,
        partial,
        &layout.backup_dir,
        &mut to_link,
        &mut stats,
    )?;
    let legacy_parent = partial.join("backup");
    let legacy = migration::legacy_dir(layout);
    if let Some(dir) = &legacy {
        fs::create_dir(&legacy_parent)
            .with_context(|| format!("Failed to create {}", legacy_parent.display()))?;
        let into = legacy_parent.join("duplicity");
        fs::create_dir(&into).with_context(|| format!("Failed to create {}", into.display()))?;
        to_link.push((dir.clone(), into));
    }
    stats.add(link_in_parallel(&to_link)?);
    if let Some(why) = &stats.no_links_because {
        eprintln!("mailbackup: cannot hard-link into the snapshot ({why}): copying messages instead, which takes longer");
    }
    if legacy.is_some() {
        set_attributes(&legacy_parent, &metadata(&layout.backup_dir)?)?;
    }
    set_attributes(partial, &metadata(&layout.storage_root)?)?;
    fs::rename(partial, &layout.snapshot_dir).with_context(|| {
        format!(
            "Failed to move the snapshot {} into place",
            partial.display()
        )
    })?;
    Ok(stats)
}

/// Removes the snapshot, complete or not. Returns whether there was one.
pub fn remove(layout: &Layout) -> Result<bool> {
    let mut removed = false;
    for dir in [&layout.snapshot_dir, &layout.snapshot_partial] {
        match fs::remove_dir_all(dir) {
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

fn metadata(path: &Path) -> Result<Metadata> {
    fs::symlink_metadata(path).with_context(|| format!("Failed to read {}", path.display()))
}

/// Copies the tree `src` to `dst` (which must not exist), leaving out
/// `skip`. Message directories are created empty and listed in `to_link`.
fn copy_dir(
    src: &Path,
    dst: &Path,
    skip: &Path,
    to_link: &mut Vec<(PathBuf, PathBuf)>,
    stats: &mut SnapshotStats,
) -> Result<()> {
    fs::create_dir(dst).with_context(|| format!("Failed to create {}", dst.display()))?;
    stats.directories += 1;
    let name = src.file_name().unwrap_or_default().to_string_lossy();
    if holds_messages(&name, || src.with_file_name("tmp").is_dir()) {
        to_link.push((src.to_owned(), dst.to_owned()));
        return Ok(());
    }
    for entry in fs::read_dir(src).with_context(|| format!("Failed to list {}", src.display()))? {
        let entry = entry.with_context(|| format!("Failed to list {}", src.display()))?;
        let from = entry.path();
        if from == skip {
            continue;
        }
        let to = dst.join(entry.file_name());
        let kind = entry
            .file_type()
            .with_context(|| format!("Failed to read {}", from.display()))?;
        if kind.is_dir() {
            copy_dir(&from, &to, skip, to_link, stats)?;
            set_attributes(&to, &metadata(&from)?)?;
        } else {
            copy_entry(&from, &to, kind, false, stats)?;
        }
    }
    Ok(())
}

/// Links the contents of each `(src, dst)` directory (`dst` exists) on all
/// CPUs; each thread takes the next directory.
fn link_in_parallel(dirs: &[(PathBuf, PathBuf)]) -> Result<SnapshotStats> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let next = AtomicUsize::new(0);
    let results: Vec<Result<SnapshotStats>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut stats = SnapshotStats::default();
                    while let Some((src, dst)) = dirs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        link_dir(src, dst, &mut stats)?;
                    }
                    Ok(stats)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut total = SnapshotStats::default();
    for r in results {
        total.add(r?);
    }
    Ok(total)
}

/// Hard-links everything in `src` into the existing `dst`, recursively.
fn link_dir(src: &Path, dst: &Path, stats: &mut SnapshotStats) -> Result<()> {
    for entry in fs::read_dir(src).with_context(|| format!("Failed to list {}", src.display()))? {
        let entry = entry.with_context(|| format!("Failed to list {}", src.display()))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry
            .file_type()
            .with_context(|| format!("Failed to read {}", from.display()))?;
        if kind.is_dir() {
            fs::create_dir(&to).with_context(|| format!("Failed to create {}", to.display()))?;
            stats.directories += 1;
            link_dir(&from, &to, stats)?;
        } else {
            copy_entry(&from, &to, kind, true, stats)?;
        }
    }
    set_attributes(dst, &metadata(src)?)
}

/// Links (with `link`, while links work) or copies one entry that is not a
/// directory.
fn copy_entry(
    from: &Path,
    to: &Path,
    kind: fs::FileType,
    link: bool,
    stats: &mut SnapshotStats,
) -> Result<()> {
    if kind.is_file() {
        if link && stats.no_links_because.is_none() {
            match fs::hard_link(from, to) {
                Ok(()) => {
                    stats.linked += 1;
                    return Ok(());
                }
                Err(e)
                    if e.kind() == ErrorKind::CrossesDevices
                        || e.raw_os_error() == Some(libc::EPERM) =>
                {
                    stats.no_links_because = Some(e.to_string());
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("Failed to link {} to {}", from.display(), to.display())
                    })
                }
            }
        }
        let meta = metadata(from)?;
        stats.copied_bytes += fs::copy(from, to)
            .with_context(|| format!("Failed to copy {} to {}", from.display(), to.display()))?;
        stats.copied += 1;
        stats.newest_copied_mtime = stats.newest_copied_mtime.max(meta.mtime());
        set_attributes(to, &meta)
    } else if kind.is_symlink() {
        let target =
            fs::read_link(from).with_context(|| format!("Failed to read {}", from.display()))?;
        std::os::unix::fs::symlink(&target, to)
            .with_context(|| format!("Failed to create {}", to.display()))?;
        let meta = metadata(from)?;
        lchown(to, Some(meta.uid()), Some(meta.gid()))
            .with_context(|| format!("Failed to set the owner of {}", to.display()))?;
        set_symlink_times(
            to,
            (meta.atime(), meta.atime_nsec()),
            (meta.mtime(), meta.mtime_nsec()),
        )
        .with_context(|| format!("Failed to set the times of {}", to.display()))
    } else {
        stats.skipped += 1;
        Ok(())
    }
}

/// Gives `path` the owner, mode and times of `meta` (in that order: a chown
/// clears set-id bits).
fn set_attributes(path: &Path, meta: &Metadata) -> Result<()> {
    lchown(path, Some(meta.uid()), Some(meta.gid()))
        .with_context(|| format!("Failed to set the owner of {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .with_context(|| format!("Failed to set the mode of {}", path.display()))?;
    let time = |secs: i64, nanos: i64| {
        let d = Duration::new(secs.unsigned_abs(), nanos as u32);
        if secs >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        }
    };
    let times = FileTimes::new()
        .set_accessed(time(meta.atime(), meta.atime_nsec()))
        .set_modified(time(meta.mtime(), meta.mtime_nsec()));
    fs::File::open(path)
        .and_then(|f| f.set_times(times))
        .with_context(|| format!("Failed to set the times of {}", path.display()))
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

    #[test]
    fn message_directories() {
        assert!(holds_messages("cur", || true));
        assert!(holds_messages("new", || true));
        assert!(
            !holds_messages("cur", || false),
            "a cur without tmp is no Maildir"
        );
        assert!(
            !holds_messages("tmp", || true),
            "tmp holds messages being written"
        );
        assert!(!holds_messages("sieve", || panic!(
            "only cur and new are looked at"
        )));
    }
}
