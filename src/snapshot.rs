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
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::config::Layout;
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
    /// Hard links were impossible (another filesystem): messages were copied.
    pub fell_back_to_copying: bool,
    /// The newest modification time of a copied file, in whole seconds.
    pub newest_copied_mtime: i64,
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
pub fn take(layout: &Layout) -> Result<SnapshotStats> {
    remove(layout)?;
    let partial = &layout.snapshot_partial;
    let mut stats = SnapshotStats::default();
    copy_dir(
        &layout.storage_root,
        partial,
        Some(&layout.backup_dir),
        false,
        &mut stats,
    )?;
    if layout.legacy_dir.is_dir() {
        let into = partial.join("backup");
        let meta = fs::symlink_metadata(&layout.backup_dir)
            .with_context(|| format!("Failed to read {}", layout.backup_dir.display()))?;
        fs::create_dir(&into).with_context(|| format!("Failed to create {}", into.display()))?;
        copy_dir(
            &layout.legacy_dir,
            &into.join("duplicity"),
            None,
            true,
            &mut stats,
        )?;
        set_attributes(&into, &meta)?;
    }
    let root_meta = fs::symlink_metadata(&layout.storage_root)
        .with_context(|| format!("Failed to read {}", layout.storage_root.display()))?;
    set_attributes(partial, &root_meta)?;
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

/// Copies the tree `src` to `dst` (which must not exist), leaving out
/// `skip`. Files in message directories, or all files with `link_all`, are
/// hard-linked.
fn copy_dir(
    src: &Path,
    dst: &Path,
    skip: Option<&Path>,
    link_all: bool,
    stats: &mut SnapshotStats,
) -> Result<()> {
    fs::create_dir(dst).with_context(|| format!("Failed to create {}", dst.display()))?;
    stats.directories += 1;
    let name = src.file_name().unwrap_or_default().to_string_lossy();
    let link = link_all || holds_messages(&name, || src.with_file_name("tmp").is_dir());
    let entries = fs::read_dir(src).with_context(|| format!("Failed to list {}", src.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("Failed to list {}", src.display()))?;
        let from = entry.path();
        if Some(from.as_path()) == skip {
            continue;
        }
        let to = dst.join(entry.file_name());
        let kind = entry
            .file_type()
            .with_context(|| format!("Failed to read {}", from.display()))?;
        if kind.is_dir() {
            copy_dir(&from, &to, skip, link_all, stats)?;
            let meta = fs::symlink_metadata(&from)
                .with_context(|| format!("Failed to read {}", from.display()))?;
            set_attributes(&to, &meta)?;
        } else if kind.is_file() {
            if link && !stats.fell_back_to_copying {
                match fs::hard_link(&from, &to) {
                    Ok(()) => {
                        stats.linked += 1;
                        continue;
                    }
                    Err(e)
                        if e.kind() == ErrorKind::CrossesDevices
                            || e.raw_os_error() == Some(libc::EPERM) =>
                    {
                        eprintln!(
                            "mailbackup: cannot hard-link {} into the snapshot ({e}): copying messages instead, which takes longer",
                            from.display()
                        );
                        stats.fell_back_to_copying = true;
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("Failed to link {} to {}", from.display(), to.display())
                        })
                    }
                }
            }
            let meta = fs::symlink_metadata(&from)
                .with_context(|| format!("Failed to read {}", from.display()))?;
            stats.copied_bytes += fs::copy(&from, &to).with_context(|| {
                format!("Failed to copy {} to {}", from.display(), to.display())
            })?;
            stats.copied += 1;
            stats.newest_copied_mtime = stats.newest_copied_mtime.max(meta.mtime());
            set_attributes(&to, &meta)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&from)
                .with_context(|| format!("Failed to read {}", from.display()))?;
            std::os::unix::fs::symlink(&target, &to)
                .with_context(|| format!("Failed to create {}", to.display()))?;
            let meta = fs::symlink_metadata(&from)
                .with_context(|| format!("Failed to read {}", from.display()))?;
            lchown(&to, Some(meta.uid()), Some(meta.gid()))
                .with_context(|| format!("Failed to set the owner of {}", to.display()))?;
            set_symlink_times(
                &to,
                (meta.atime(), meta.atime_nsec()),
                (meta.mtime(), meta.mtime_nsec()),
            )
            .with_context(|| format!("Failed to set the times of {}", to.display()))?;
        } else {
            stats.skipped += 1;
        }
    }
    Ok(())
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
