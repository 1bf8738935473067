//! The room a restore needs, and where duplicity keeps its temporary
//! files meanwhile: on the disk the restore writes to, beside the restored
//! tree.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::backend::Target;
use crate::config::Layout;
use crate::duplicity::backup_set::Part;
use crate::duplicity::inventory::{Backup, TargetFile};
use crate::duplicity::{when, TempSpace};
use crate::status::report::human_size;
use crate::sys::free_bytes;

/// Refuses a restore that would fill a disk: duplicity can hang when it
/// runs out of space half way. What it needs, the restored files at `dest`
/// and its temporary files in `temp` (on the same disk, unless `dest` is a
/// mount point), is estimated by [`Need::estimate`] from the chain the
/// restore reads: the newest, or the one of `time`.
pub fn check_space(
    layout: &Layout,
    target: &Target,
    path: Option<&Path>,
    time: Option<&str>,
    dest: &Path,
    temp: &Path,
) -> Result<Need> {
    let source = path.map_or_else(
        || layout.storage_root.clone(),
        |p| layout.storage_root.join(p),
    );
    let inventory = target.inventory()?;
    let now = chrono::Utc::now().timestamp();
    let chain = match time.and_then(|t| when::resolve_time(t, now, 0)) {
        Some(at) => inventory.chain_at(at),
        None => inventory.newest_chain(),
    };
    // A file older than the chain's full backup has no increments to apply.
    let full_time = chain
        .last()
        .map_or(0, |b| b.date.datetime().and_utc().timestamp());
    let live = disk_usage(&source, &layout.backup_dir, full_time);
    let need = Need::estimate(live, chain, &inventory.files, path.is_none());
    let (dest_disk, dest_free) = disk_of(dest)?;
    let (temp_disk, temp_free) = disk_of(temp)?;
    let dev = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.dev())
            .with_context(|| format!("Failed to read {}", p.display()))
    };
    let temp_elsewhere = (dev(dest_disk)? != dev(temp_disk)?).then_some((temp_disk, temp_free));
    match refusal(&need, (dest_disk, dest_free), temp_elsewhere) {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(need),
    }
}

/// Why a restore that needs `need` does not fit: on `dest`'s disk (a
/// directory and its free bytes), which also takes the temporary files
/// unless they go to `temp_elsewhere` (TMPDIR, for a mount point).
fn refusal(
    need: &Need,
    dest: (&Path, u64),
    temp_elsewhere: Option<(&Path, u64)>,
) -> Option<String> {
    let short = |need: u64, free: u64| {
        format!(
            "{} has {} free, {} too little",
            dest.0.display(),
            human_size(free),
            human_size(need - free)
        )
    };
    let (dest_disk, dest_free) = dest;
    let advice = "make room there, or restore onto a disk with more room (--to DIR)";
    match temp_elsewhere {
        None if dest_free < need.total() => Some(format!(
            "the restore needs about {} ({} for the files, {} for duplicity's temporary files, \
             {}), and {}: {advice}",
            human_size(need.total()),
            human_size(need.files),
            human_size(need.temp),
            need.temp_why(),
            short(need.total(), dest_free)
        )),
        Some(_) if dest_free < need.files => Some(format!(
            "the restore needs about {} for the files, and {}: {advice}",
            human_size(need.files),
            short(need.files, dest_free)
        )),
        Some((temp_disk, temp_free)) if temp_free < need.temp => Some(format!(
            "duplicity's temporary files for this restore ({}) need about {} in TMPDIR ({}: the \
             restore goes into a mount point, {}), which has {} free, {} too little: set TMPDIR \
             to a directory on a disk with more room",
            need.temp_why(),
            human_size(need.temp),
            temp_disk.display(),
            dest_disk.display(),
            human_size(temp_free),
            human_size(need.temp - temp_free)
        )),
        _ => None,
    }
}

/// The nearest directory of `path` that exists, and its free space.
fn disk_of(path: &Path) -> Result<(&Path, u64)> {
    let existing = path
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let free = free_bytes(existing)
        .with_context(|| format!("Failed to find the free space of {}", existing.display()))?;
    Ok((existing, free))
}

/// The room a restore takes on the disk it writes to.
#[derive(Debug, PartialEq, Eq)]
pub struct Need {
    /// The restored files.
    files: u64,
    /// duplicity's temporary files.
    temp: u64,
    /// The largest volume to read, in MiB, rounded up.
    volume_mib: u64,
}

impl Need {
    /// Estimated generously from the `live` files the restore puts back and
    /// the `chain` of backups it reads (newest first). The files: what the
    /// live ones take, or for a `whole` restore the chain's size if that is
    /// larger (the live data may have shrunk). The temporary files, as
    /// duplicity makes them: it holds one volume of each backup of the chain
    /// at a time (the largest of each, from the target's `files`), and
    /// rebuilds a file that increments changed from a copy, which it copies
    /// again for the next increment: one copy of the largest
    /// file changed since the full backup after one increment, two at once
    /// after more; a tenth more for what else it keeps there. And at least
    /// what duplicity's own check of its temporary directory asks for
    /// ([`guard`]).
    fn estimate(live: Usage, chain: &[Backup], files: &[TargetFile], whole: bool) -> Need {
        let chain_size: u64 = chain.iter().map(|b| b.size).sum();
        let restored = if whole {
            live.bytes.max(chain_size)
        } else {
            live.bytes
        };
        let volumes: u64 = chain.iter().map(|b| largest_volume(b, files)).sum();
        let increments = chain.len().saturating_sub(1).min(2) as u64;
        let temp = volumes + increments * live.largest_changed;
        let volume_mib = largest_volume_mib(chain, files);
        Need {
            files: restored + restored / 20 + (1 << 20),
            temp: (temp + temp / 10).max(guard(volume_mib)),
            volume_mib,
        }
    }

    fn total(&self) -> u64 {
        self.files + self.temp
    }

    /// What the room for the temporary files is for, in a message.
    fn temp_why(&self) -> String {
        if self.temp == guard(self.volume_mib) {
            format!(
                "which duplicity wants free before it starts: 2.3 times the largest volume, {} MiB",
                self.volume_mib
            )
        } else {
            "where it fetches volumes and rebuilds the files that changed".to_owned()
        }
    }
}

/// The largest volume of `backup`, from the target's `files`.
fn largest_volume(backup: &Backup, files: &[TargetFile]) -> u64 {
    files
        .iter()
        .filter(|f| f.file.time == backup.date && matches!(f.file.part, Part::Volume(_)))
        .map(|f| f.size)
        .max()
        .unwrap_or(0)
}

/// The largest volume of the `chain`, in MiB, rounded up, at least 1: the
/// volume size a restore gives duplicity (see [`DuplicityTemp`]).
pub fn largest_volume_mib(chain: &[Backup], files: &[TargetFile]) -> u64 {
    let largest = chain.iter().map(|b| largest_volume(b, files)).max();
    largest.unwrap_or(0).div_ceil(1 << 20).max(1)
}

/// What duplicity's own check wants free in its temporary directory before
/// a restore, for volumes of `volume_mib`: 2.3 volumes (duplicity 3; 1.3
/// for 0.8).
fn guard(volume_mib: u64) -> u64 {
    (volume_mib << 20) * 23 / 10
}

/// What files take on disk once restored, and the largest of them that
/// changed since a time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Usage {
    bytes: u64,
    largest_changed: u64,
}

/// The space the files under `dir` take on disk once restored, without
/// `skip`, and the largest file modified at or after `since` (Unix time).
/// duplicity restores a sparse file in full: its length counts.
fn disk_usage(dir: &Path, skip: &Path, since: i64) -> Usage {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Usage::default();
    };
    if dir == skip {
        return Usage::default();
    }
    let on_disk = meta.blocks() * 512;
    if meta.is_file() {
        return Usage {
            bytes: on_disk.max(meta.len()),
            largest_changed: if meta.mtime() >= since { meta.len() } else { 0 },
        };
    }
    let mut usage = Usage {
        bytes: on_disk,
        largest_changed: 0,
    };
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let child = disk_usage(&entry.path(), skip, since);
            usage.bytes += child.bytes;
            usage.largest_changed = usage.largest_changed.max(child.largest_changed);
        }
    }
    usage
}

/// Where duplicity's temporary files go for a restore into `dir`: beside
/// it, on the disk the restore writes to, rather than in /tmp (a tmpfs in
/// RAM on Debian 13, often smaller than a file duplicity rebuilds); in
/// TMPDIR when `dir` is a mount point. Not inside `dir`: duplicity 3
/// restores only into an empty directory.
pub fn temp_parent(dir: &Path) -> Result<PathBuf> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        Some(_) => Path::new("."),
        None => Path::new("/"),
    };
    match (std::fs::metadata(dir), std::fs::metadata(parent)) {
        (Ok(d), Ok(p)) if d.dev() != p.dev() => {
            let tmp = std::env::temp_dir();
            if !tmp.is_dir() {
                bail!(
                    "{} is a mount point, so duplicity's temporary files go to TMPDIR, {}, which \
                     is not a directory: create it, or set TMPDIR to a directory on a disk with room",
                    dir.display(),
                    tmp.display()
                );
            }
            Ok(tmp)
        }
        _ => Ok(parent.to_owned()),
    }
}

/// duplicity's temporary directory for one restore, private to root and
/// removed when dropped, and the volume size to give duplicity with it.
/// On a restore, `--volsize` only sizes duplicity's own check of the room
/// there, which asks for 2.3 volumes of it (200 MiB each by default, 460
/// MiB in all, whatever the backup's volumes are): the largest volume to
/// be read makes that check count what it should.
pub struct DuplicityTemp {
    dir: tempfile::TempDir,
    volume_mib: u64,
}

impl DuplicityTemp {
    /// In `parent` (see [`temp_parent`]), for volumes of `volume_mib`.
    pub fn make(parent: &Path, volume_mib: u64) -> Result<DuplicityTemp> {
        let dir = tempfile::Builder::new()
            .prefix(".mailbackup-tmp-")
            .tempdir_in(parent)
            .with_context(|| {
                format!(
                    "Failed to create a directory for duplicity's temporary files in {}",
                    parent.display()
                )
            })?;
        Ok(DuplicityTemp { dir, volume_mib })
    }

    /// For a restore that [`check_space`] measured.
    pub fn for_need(parent: &Path, need: &Need) -> Result<DuplicityTemp> {
        DuplicityTemp::make(parent, need.volume_mib)
    }

    pub fn space(&self) -> TempSpace<'_> {
        TempSpace {
            dir: self.dir.path(),
            volsize_mib: self.volume_mib,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A backup of `volumes` (their sizes), ending at second `n` of a
    /// minute, with its target files.
    fn backup(n: u8, full: bool, volumes: &[u64]) -> (Backup, Vec<TargetFile>) {
        use crate::duplicity::backup_set::{SetFile, Stamp};
        let date = Stamp::parse(format!("20261201T0300{n:02}Z").as_bytes()).unwrap();
        let file = |part, size| TargetFile {
            name: String::new(),
            file: SetFile {
                time: date,
                previous: None,
                part,
                encrypted: true,
                partial: false,
            },
            size,
        };
        let mut files: Vec<_> = (1..)
            .zip(volumes)
            .map(|(i, &size)| file(Part::Volume(i), size))
            .collect();
        files.push(file(Part::Signatures, 9 * MIB));
        files.push(file(Part::Manifest, 1000));
        let size = files.iter().map(|f| f.size).sum();
        let backup = Backup {
            date,
            full,
            previous: None,
            size,
            complete: true,
            volumes: volumes.len() as u32,
        };
        (backup, files)
    }

    fn chain(sets: &[(bool, &[u64])]) -> (Vec<Backup>, Vec<TargetFile>) {
        let mut backups = Vec::new();
        let mut files = Vec::new();
        for (n, (full, volumes)) in (0..).zip(sets) {
            let (b, f) = backup(n, *full, volumes);
            backups.push(b);
            files.extend(f);
        }
        (backups, files)
    }

    fn with_a_tenth(bytes: u64) -> u64 {
        bytes + bytes / 10
    }

    #[test]
    fn a_restore_needs_room_for_duplicitys_temporary_files() {
        let live = Usage {
            bytes: 1000 * MIB,
            largest_changed: 700 * MIB,
        };
        // One full backup: nothing is rebuilt; its largest volume at a time.
        let (full, files) = chain(&[(true, &[250 * MIB, 250 * MIB, 90 * MIB])]);
        assert_eq!(
            Need::estimate(live, &full, &files, true),
            Need {
                files: 1050 * MIB + MIB,
                temp: 575 * MIB,
                volume_mib: 250,
            }
        );
        // One increment: one copy of the largest changed file, and a volume
        // of each backup.
        let (one, files) = chain(&[(false, &[5 * MIB]), (true, &[250 * MIB, 90 * MIB])]);
        assert_eq!(
            Need::estimate(live, &one, &files, true).temp,
            with_a_tenth(255 * MIB + 700 * MIB)
        );
        // More: two copies at once, however many increments there are.
        let (many, files) = chain(&[
            (false, &[5 * MIB]),
            (false, &[5 * MIB, MIB]),
            (false, &[5 * MIB]),
            (true, &[250 * MIB]),
        ]);
        assert_eq!(
            Need::estimate(live, &many, &files, true).temp,
            with_a_tenth(265 * MIB + 1400 * MIB)
        );
        // The files: the larger of the live data and the chain, for a
        // whole restore; the live files alone for a part of it.
        let small = Usage {
            bytes: 100 * MIB,
            largest_changed: MIB,
        };
        let (full, files) = chain(&[(true, &[250 * MIB, 250 * MIB, 90 * MIB])]);
        let chain_size = 590 * MIB + 9 * MIB + 1000;
        assert_eq!(
            Need::estimate(small, &full, &files, true).files,
            chain_size + chain_size / 20 + MIB
        );
        assert_eq!(
            Need::estimate(small, &full, &files, false).files,
            105 * MIB + MIB
        );
        assert_eq!(Need::estimate(small, &[], &[], true).temp, guard(1));
    }

    #[test]
    fn disk_usage_counts_sparse_files_in_full_and_finds_the_largest_changed() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, secs: u64| {
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(name))
                .unwrap()
                .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        };
        std::fs::create_dir(dir.path().join("backup")).unwrap();
        std::fs::write(dir.path().join("backup/huge"), vec![1; 50_000]).unwrap();
        std::fs::write(dir.path().join("small"), vec![1; 3000]).unwrap();
        std::fs::write(dir.path().join("old"), vec![1; 30_000]).unwrap();
        at("old", 1_000);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::File::create(dir.path().join("sub/sparse"))
            .unwrap()
            .set_len(20_000)
            .unwrap();
        at("sub/sparse", 2_000);
        let usage = |since| disk_usage(dir.path(), &dir.path().join("backup"), since);
        assert_eq!(usage(2_000).largest_changed, 20_000);
        assert_eq!(usage(2_001).largest_changed, 3000);
        assert_eq!(usage(0).largest_changed, 30_000);
        let bytes = usage(0).bytes;
        assert!((53_000..53_000 + 5 * 4096 * 2).contains(&bytes), "{bytes}");
    }

    #[test]
    fn a_refusal_gives_the_figures_and_where_to_make_room() {
        let need = Need {
            files: 100 * MIB,
            temp: 50 * MIB,
            volume_mib: 10,
        };
        let dest = Path::new("/srv");
        let tmp = Path::new("/tmp");
        assert_eq!(
            refusal(&need, (dest, 120 * MIB), None).unwrap(),
            "the restore needs about 150.0 MiB (100.0 MiB for the files, 50.0 MiB for \
             duplicity's temporary files, where it fetches volumes and rebuilds the files that \
             changed), and /srv has 120.0 MiB free, 30.0 MiB too little: make room there, or \
             restore onto a disk with more room (--to DIR)"
        );
        let small = Need {
            files: MIB,
            temp: guard(250),
            volume_mib: 250,
        };
        assert!(refusal(&small, (dest, 100 * MIB), None).unwrap().contains(
            "575.0 MiB for duplicity's temporary files, which duplicity wants free before it \
             starts: 2.3 times the largest volume, 250 MiB)"
        ));
        assert_eq!(refusal(&need, (dest, 150 * MIB), None), None);
        // The temporary files in TMPDIR: each disk for its own part.
        assert_eq!(
            refusal(&need, (dest, 120 * MIB), Some((tmp, 60 * MIB))),
            None
        );
        assert!(refusal(&need, (dest, 90 * MIB), Some((tmp, 60 * MIB)))
            .unwrap()
            .starts_with("the restore needs about 100.0 MiB for the files, and /srv has 90.0 MiB free, 10.0 MiB too little"));
        let tmpdir = refusal(&need, (dest, 120 * MIB), Some((tmp, 40 * MIB))).unwrap();
        assert!(
            tmpdir.contains("need about 50.0 MiB in TMPDIR (/tmp: the restore goes into a mount point, /srv), which has 40.0 MiB free, 10.0 MiB too little: set TMPDIR"),
            "{tmpdir}"
        );
    }
}
