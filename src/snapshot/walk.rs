//! The parallel walk that builds a snapshot: directories relative to open
//! descriptors, on many threads, each entry linked or copied as the policy
//! (`policy.rs`) says.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use anyhow::{bail, Context, Result};

use super::database::{self, Failure};
use super::policy::Region;
use super::{file_name, safe_restart_at, stat_of, SnapshotStats};
use crate::config::Layout;
use crate::sys::fs::{too_many_links, DirFd, Entry, Kind, Stat};

/// The present time in whole seconds since the epoch.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Opens the directory `rel` below `dir`, one name at a time.
pub(super) fn open_path(dir: &DirFd, rel: &Path) -> std::io::Result<DirFd> {
    let mut names = rel.components().map(|c| c.as_os_str());
    let Some(first) = names.next() else {
        return dir.open_dir(OsStr::new("."));
    };
    let mut at = dir.open_dir(first)?;
    for name in names {
        at = at.open_dir(name)?;
    }
    Ok(at)
}

/// A directory being copied: its source and its copy, open, and how many
/// parts of it are still to do (its own entries, and each subdirectory).
/// When none is left, the copy gets its attributes and the parent is told.
pub(super) struct Node {
    pub(super) src: DirFd,
    pub(super) dst: DirFd,
    pub(super) meta: Stat,
    /// Relative to `STORAGE_ROOT`, for messages.
    pub(super) rel: PathBuf,
    pub(super) region: Region,
    /// The copy may hold entries already (a prepared snapshot): compare.
    pub(super) existing: bool,
    /// Nothing here can be hard-linked (another filesystem): copy all.
    pub(super) copy_all: AtomicBool,
    pub(super) parent: Option<Arc<Node>>,
    pub(super) pending: AtomicUsize,
}

pub(super) enum Job {
    /// Go through the entries of an open directory.
    Fill(Arc<Node>),
    /// Open the subdirectory `name` of `parent` and its copy (created
    /// unless `existing`), and fill it.
    Open {
        parent: Arc<Node>,
        name: OsString,
        existing: bool,
    },
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    busy: usize,
    failed: bool,
}

/// Which step of a snapshot a walk makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// While the mail runs: all but the copies of `mail/`.
    Prepare,
    /// While the mail waits: `mail/` and the Maildirs, up to date.
    Complete,
}

pub(super) struct Walk<'a> {
    layout: &'a Layout,
    step: Step,
    /// The filesystem of the snapshot: links reach only into it.
    pub(super) dst_dev: u64,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Why hard links are impossible at all (fs.protected_hardlinks without
    /// the capability), once found.
    no_links: OnceLock<String>,
    error: Mutex<Option<anyhow::Error>>,
    /// Maildirs outside `mail/`, relative to `STORAGE_ROOT`.
    pub(super) maildirs: Mutex<BTreeSet<PathBuf>>,
    /// The SQLite databases this walk took (or copied as bytes), relative
    /// to `STORAGE_ROOT`.
    pub(super) databases: Mutex<BTreeSet<PathBuf>>,
    /// Those a prepared snapshot took: its completion leaves them, and
    /// their journals, as they are.
    taken: HashSet<PathBuf>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(
        layout: &'a Layout,
        snapshot: &DirFd,
        step: Step,
        taken: HashSet<PathBuf>,
    ) -> Result<Walk<'a>> {
        let dst_dev = stat_of(snapshot, &layout.snapshot_partial)?.dev;
        Ok(Walk {
            layout,
            step,
            dst_dev,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            no_links: OnceLock::new(),
            error: Mutex::new(None),
            maildirs: Mutex::new(BTreeSet::new()),
            databases: Mutex::new(BTreeSet::new()),
            taken,
        })
    }

    /// A top node, which no parent waits for.
    pub(super) fn top(
        &self,
        src: DirFd,
        dst: DirFd,
        meta: Stat,
        rel: PathBuf,
        region: Region,
        existing: bool,
    ) -> Node {
        Node {
            copy_all: AtomicBool::new(meta.dev != self.dst_dev),
            src,
            dst,
            meta,
            rel,
            region,
            existing,
            parent: None,
            pending: AtomicUsize::new(1),
        }
    }

    /// Queues the directory `rel` of `STORAGE_ROOT` to be brought up to
    /// date in the snapshot `dst`: created there when new, removed there
    /// when gone.
    pub(super) fn sync_root(&self, root: &DirFd, dst: &DirFd, rel: &Path) -> Result<()> {
        let path = self.layout.storage_root.join(rel);
        let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
            return Ok(());
        };
        let src_parent = match open_path(root, parent) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("Failed to open {}", path.display())),
        };
        let Ok(dst_parent) = open_path(dst, parent) else {
            // Its parent is gone from the snapshot: so was it, then.
            return Ok(());
        };
        let src = match src_parent.open_dir(name) {
            Ok(d) => Some(d),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => None,
            Err(e) => return Err(e).with_context(|| format!("Failed to open {}", path.display())),
        };
        let had = dst_parent.stat_at(name).is_ok();
        let Some(src) = src else {
            if had {
                dst_parent.remove(name).with_context(|| {
                    format!("Failed to remove the snapshot's copy of {}", path.display())
                })?;
            }
            return Ok(());
        };
        let existing = dst_parent.stat_at(name).is_ok_and(|s| s.kind == Kind::Dir);
        if had && !existing {
            dst_parent.remove(name)?;
        }
        let dst = if existing {
            dst_parent.open_dir(name)
        } else {
            dst_parent.make_dir(name)
        }
        .with_context(|| format!("Failed to open the snapshot's copy of {}", path.display()))?;
        let meta = stat_of(&src, &path)?;
        let region = rel
            .components()
            .fold(Region::Root, |r, c| r.child(c.as_os_str(), || false));
        let top = self.top(src, dst, meta, rel.to_owned(), region, existing);
        self.push(Job::Fill(Arc::new(top)));
        Ok(())
    }

    pub(super) fn push(&self, job: Job) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .jobs
            .push(job);
        self.wake.notify_one();
    }

    /// Runs the queue until every directory is done, on more threads than
    /// CPUs: a link waits on the filesystem's journal and locks as much as
    /// it computes (8 threads on 2 CPUs link 50,000 files in three quarters
    /// of the time 2 threads take, on ext4).
    pub(super) fn run(&self) -> Result<SnapshotStats> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cpus * 4).clamp(4, 16);
        let results: Vec<SnapshotStats> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads).map(|_| s.spawn(|| self.work())).collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        if let Some(e) = self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        let mut total = SnapshotStats::default();
        for r in results {
            total.add(r);
        }
        if let Some(why) = self.no_links.get() {
            total.no_links_because.insert(0, why.clone());
        }
        Ok(total)
    }

    fn work(&self) -> SnapshotStats {
        let mut stats = SnapshotStats::default();
        loop {
            let job = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if q.failed {
                        return stats;
                    }
                    if let Some(job) = q.jobs.pop() {
                        q.busy += 1;
                        break job;
                    }
                    if q.busy == 0 {
                        return stats;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            let result = match job {
                Job::Fill(node) => self.fill(node, &mut stats),
                Job::Open {
                    parent,
                    name,
                    existing,
                } => match self.open(&parent, &name, existing, &mut stats) {
                    Ok(Some(node)) => self.fill(node, &mut stats),
                    Ok(None) => self.finish(&parent),
                    Err(e) => Err(e),
                },
            };
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.busy -= 1;
            if let Err(e) = result {
                q.failed = true;
                self.error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
            drop(q);
            self.wake.notify_all();
        }
    }

    /// The path of `name` in `node`, for messages.
    fn source(&self, node: &Node, name: &OsStr) -> PathBuf {
        self.layout.storage_root.join(&node.rel).join(name)
    }

    fn open(
        &self,
        parent: &Arc<Node>,
        name: &OsStr,
        existing: bool,
        stats: &mut SnapshotStats,
    ) -> Result<Option<Arc<Node>>> {
        let path = || self.source(parent, name);
        let src = match parent.src.open_dir(name) {
            Ok(src) => src,
            // Removed since it was listed: what is gone is not backed up.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                stats.vanished += 1;
                if existing {
                    self.replace(parent, name, stats)?;
                }
                return Ok(None);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("Failed to open {}", path().display()))
            }
        };
        let meta = src
            .stat()
            .with_context(|| format!("Failed to read {}", path().display()))?;
        let dst = if existing {
            stats.kept += 1;
            parent.dst.open_dir(name)
        } else {
            stats.directories += 1;
            parent.dst.make_dir(name)
        }
        .with_context(|| {
            format!(
                "Failed to create the snapshot's copy of {}",
                path().display()
            )
        })?;
        let elsewhere = meta.dev != self.dst_dev;
        if elsewhere && !parent.copy_all.load(Ordering::Relaxed) {
            stats.no_links_because.push(format!(
                "{} is on another filesystem than {}: its files cannot be hard-linked",
                path().display(),
                self.layout.backup_dir.display()
            ));
        }
        let region = parent.region.child(name, || {
            parent.src.has_dir("cur") && parent.src.has_dir("tmp")
        });
        if region == Region::Messages && matches!(parent.region, Region::Root | Region::Other) {
            // A Maildir outside mail/: the second step brings it up to date.
            self.maildirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(parent.rel.clone());
        }
        Ok(Some(Arc::new(Node {
            src,
            dst,
            meta,
            rel: parent.rel.join(name),
            region,
            existing,
            copy_all: AtomicBool::new(elsewhere || parent.copy_all.load(Ordering::Relaxed)),
            parent: Some(parent.clone()),
            pending: AtomicUsize::new(1),
        })))
    }

    /// Links or copies the entries of `node`, queues its subdirectories.
    /// Where the copy holds entries already, those still right are kept,
    /// the rest replaced or removed.
    fn fill(&self, node: Arc<Node>, stats: &mut SnapshotStats) -> Result<()> {
        let here = || self.source(&node, "".as_ref());
        let entries = node
            .src
            .entries()
            .with_context(|| format!("Failed to list {}", here().display()))?;
        let mut old: HashMap<OsString, Entry> = if node.existing {
            node.dst
                .entries()
                .with_context(|| {
                    format!("Failed to list the snapshot's copy of {}", here().display())
                })?
                .into_iter()
                .map(|e| (e.name.clone(), e))
                .collect()
        } else {
            HashMap::new()
        };
        let databases = self.databases_in(&node, &entries, stats)?;
        // Never among the messages: no lookup per message while the mail waits.
        let any =
            node.region != Region::Messages && !(databases.is_empty() && self.taken.is_empty());
        let of_a_database = |name: &OsStr| {
            let known = |n: &OsStr| databases.contains(n) || self.taken.contains(&node.rel.join(n));
            any && (known(name) || database::sidecar_of(name).is_some_and(known))
        };
        // A database and its journals: taken, or kept as the first step took them.
        old.retain(|name, _| !of_a_database(name));
        for entry in entries {
            if of_a_database(&entry.name) {
                continue;
            }
            let Some(kind) = self.kind_of(&node, &entry, stats)? else {
                continue;
            };
            let was = old.remove(&entry.name);
            if kind == Kind::Dir {
                self.subdir(&node, entry.name, was, stats)?;
            } else {
                self.file(&node, &entry, kind, was, stats)?;
            }
        }
        for name in old.into_keys() {
            self.replace(&node, &name, stats)?;
        }
        self.finish(&node)
    }

    /// What `entry` is; `None` when it is gone already.
    fn kind_of(
        &self,
        node: &Node,
        entry: &Entry,
        stats: &mut SnapshotStats,
    ) -> Result<Option<Kind>> {
        if let Some(kind) = entry.kind {
            return Ok(Some(kind));
        }
        match node.src.stat_at(&entry.name) {
            Ok(meta) => Ok(Some(meta.kind)),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                stats.vanished += 1;
                Ok(None)
            }
            Err(e) => Err(e).with_context(|| {
                format!(
                    "Failed to read {}",
                    self.source(node, &entry.name).display()
                )
            }),
        }
    }

    /// Queues the subdirectory `name` of `node`; `was` is what the copy
    /// holds under that name.
    fn subdir(
        &self,
        node: &Arc<Node>,
        name: OsString,
        was: Option<Entry>,
        stats: &mut SnapshotStats,
    ) -> Result<()> {
        if node.region == Region::Root && name == file_name(&self.layout.backup_dir)? {
            return Ok(());
        }
        let existing = match &was {
            None => false,
            Some(w) => {
                let is_dir = match w.kind {
                    Some(k) => k == Kind::Dir,
                    None => node.dst.stat_at(&name).is_ok_and(|s| s.kind == Kind::Dir),
                };
                if !is_dir {
                    self.replace(node, &name, stats)?;
                }
                is_dir
            }
        };
        node.pending.fetch_add(1, Ordering::SeqCst);
        self.push(Job::Open {
            parent: node.clone(),
            name,
            existing,
        });
        Ok(())
    }

    /// One entry that is not a directory nor a database; `was` is what the
    /// copy holds under its name.
    fn file(
        &self,
        node: &Node,
        entry: &Entry,
        kind: Kind,
        was: Option<Entry>,
        stats: &mut SnapshotStats,
    ) -> Result<()> {
        let name = entry.name.as_os_str();
        let copy =
            node.region.copies(name) && !matches!(kind, Kind::CharDevice | Kind::BlockDevice);
        if copy && node.region == Region::Mail && self.step == Step::Prepare {
            // Made while the mail waits, in the second step.
            return Ok(());
        }
        if let Some(w) = &was {
            if !copy && w.ino == entry.ino {
                stats.kept += 1;
                return Ok(());
            }
            self.replace(node, name, stats)?;
        }
        self.entry(node, name, kind, copy, stats)
    }

    /// The SQLite databases among `entries`, by name. The first step finds
    /// them by their header (where the policy says to look) and takes them;
    /// the second leaves them as the first took them.
    fn databases_in(
        &self,
        node: &Node,
        entries: &[Entry],
        stats: &mut SnapshotStats,
    ) -> Result<HashSet<OsString>> {
        let mut found = HashSet::new();
        if self.step != Step::Prepare {
            return Ok(found);
        }
        let depth = node.rel.components().count();
        for entry in entries {
            if !matches!(entry.kind, None | Some(Kind::File))
                || !node.region.may_hold_database(depth, &entry.name)
            {
                continue;
            }
            let head = || -> std::io::Result<Option<Stat>> {
                let meta = node.src.stat_at(&entry.name)?;
                if meta.kind != Kind::File || meta.size < database::MIN_SIZE {
                    return Ok(None);
                }
                let head = node.src.read_head(&entry.name, database::HEADER.len())?;
                Ok(database::is_header(&head).then_some(meta))
            };
            let meta = match head() {
                Ok(Some(meta)) => meta,
                Ok(None) => continue,
                // Gone: the walk counts it when it gets to it.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "Failed to read {}",
                            self.source(node, &entry.name).display()
                        )
                    })
                }
            };
            if self.database(node, &entry.name, &meta, stats)? {
                found.insert(entry.name.clone());
            }
        }
        Ok(found)
    }

    /// Takes the database `name` with SQLite's online backup; where SQLite
    /// cannot (locked past the bound, corrupt), copies it as bytes with its
    /// journal and says so. Returns false when it is gone.
    fn database(
        &self,
        node: &Node,
        name: &OsStr,
        meta: &Stat,
        stats: &mut SnapshotStats,
    ) -> Result<bool> {
        let src = self.source(node, name);
        let dst = self.layout.snapshot_partial.join(&node.rel).join(name);
        // The copy gets the time of `meta`: a commit in that same second
        // after the copy would leave the time as it is, and the next backup
        // would take the database for unchanged. So read once it has passed.
        if meta.mtime.0 == now_secs() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            if let Some(wait) = safe_restart_at(meta.mtime.0).checked_sub(now) {
                std::thread::sleep(wait);
            }
        }
        let failure = match database::take(&src, &dst, database::LOCK_WAIT) {
            Ok(bytes) => {
                node.dst.set_attributes_at(name, meta).with_context(|| {
                    format!(
                        "Failed to give the snapshot's copy of {} its owner, mode and times",
                        src.display()
                    )
                })?;
                stats.databases += 1;
                stats.database_bytes += bytes;
                self.record_database(node, name);
                return Ok(true);
            }
            Err(failure) => failure,
        };
        match node.dst.remove(name) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("Failed to remove {}", dst.display())),
        }
        if let Err(e) = node.src.stat_at(name) {
            if e.kind() == ErrorKind::NotFound {
                stats.vanished += 1;
                return Ok(false);
            }
        }
        self.copied_database(node, name, failure, stats)?;
        Ok(true)
    }

    /// The byte copy of a database SQLite could not take, with the journal
    /// or WAL that SQLite needs to open it consistently.
    fn copied_database(
        &self,
        node: &Node,
        name: &OsStr,
        failure: Failure,
        stats: &mut SnapshotStats,
    ) -> Result<()> {
        let warning = failure.warning(&self.source(node, name));
        eprintln!("mailbackup: WARNING: {warning}");
        stats.warnings.push(warning);
        self.entry(node, name, Kind::File, true, stats)?;
        for sidecar in database::recovery_sidecars(name) {
            if node.src.stat_at(&sidecar).is_ok() {
                self.entry(node, &sidecar, Kind::File, true, stats)?;
            }
        }
        self.record_database(node, name);
        Ok(())
    }

    fn record_database(&self, node: &Node, name: &OsStr) {
        self.databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.rel.join(name));
    }

    /// Removes `name` from the copy of `node`: gone from the data, or to be
    /// made anew.
    fn replace(&self, node: &Node, name: &OsStr, stats: &mut SnapshotStats) -> Result<()> {
        stats.removed += 1;
        node.dst.remove(name).with_context(|| {
            format!(
                "Failed to remove the snapshot's copy of {}",
                self.source(node, name).display()
            )
        })
    }

    /// One entry that is not a directory: a link where it can be, else a copy.
    fn entry(
        &self,
        node: &Node,
        name: &OsStr,
        kind: Kind,
        copy: bool,
        stats: &mut SnapshotStats,
    ) -> Result<()> {
        let copy = copy || node.copy_all.load(Ordering::Relaxed) || self.no_links.get().is_some();
        if !copy {
            match node.src.link_to(name, &node.dst) {
                Ok(()) => {
                    stats.linked += 1;
                    return Ok(());
                }
                // Removed since it was listed (an expunged message, a
                // journal SQLite deleted): nothing to back up.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    stats.vanished += 1;
                    return Ok(());
                }
                // Too many links to this one inode: copy it alone.
                Err(e) if too_many_links(&e) => {}
                // A mount point in between (a bind mount): copy this directory.
                Err(e) if e.kind() == ErrorKind::CrossesDevices => {
                    if !node.copy_all.swap(true, Ordering::Relaxed) {
                        stats.no_links_because.push(format!(
                            "cannot hard-link the files of {} ({e})",
                            self.source(node, "".as_ref()).display()
                        ));
                    }
                }
                // fs.protected_hardlinks, and no CAP_FOWNER.
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    let _ = self
                        .no_links
                        .set(format!("cannot hard-link into the snapshot ({e})"));
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "Failed to link {} into the snapshot",
                            self.source(node, name).display()
                        )
                    })
                }
            }
        }
        let copied = self.copy(node, name, kind, stats);
        if let Err(e) = &copied {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == ErrorKind::NotFound)
            {
                stats.vanished += 1;
                return Ok(());
            }
        }
        copied.with_context(|| {
            format!(
                "Failed to copy {} into the snapshot {}",
                self.source(node, name).display(),
                self.layout.snapshot_partial.display()
            )
        })
    }

    fn copy(&self, node: &Node, name: &OsStr, kind: Kind, stats: &mut SnapshotStats) -> Result<()> {
        let meta = node.src.stat_at(name)?;
        match meta.kind {
            Kind::File => {
                stats.copied_bytes += node.src.copy_file_to(name, &node.dst, &meta)?;
                stats.copied += 1;
                // A time in the future (a clock once ahead, a file touched
                // so) cannot be met by a rewrite now, which gets the present
                // time: only times up to now count.
                if meta.mtime.0 <= now_secs() {
                    stats.newest_copied_mtime = stats.newest_copied_mtime.max(meta.mtime.0);
                }
            }
            Kind::Symlink => {
                node.src.copy_symlink_to(name, &node.dst, &meta)?;
                stats.copied += 1;
            }
            Kind::Fifo => {
                node.src.copy_fifo_to(name, &node.dst, &meta)?;
                stats.copied += 1;
            }
            Kind::Socket => stats.skipped += 1,
            Kind::CharDevice | Kind::BlockDevice => bail!(
                "it is a device node, which the snapshot can only hard-link, and cannot here: \
                 move it out of {}",
                self.layout.storage_root.display()
            ),
            Kind::Dir => bail!("it became a directory while being copied (it was {kind:?})"),
        }
        Ok(())
    }

    /// One part of `node` is done; when it was the last, the copy gets its
    /// attributes (after its entries: adding one changes a directory's
    /// time) and its parent is told.
    pub(super) fn finish(&self, node: &Arc<Node>) -> Result<()> {
        let mut node = node.clone();
        loop {
            if node.pending.fetch_sub(1, Ordering::SeqCst) != 1 {
                return Ok(());
            }
            node.dst.set_attributes(&node.meta).with_context(|| {
                format!(
                    "Failed to give the snapshot's copy of {} its owner, mode and times",
                    self.source(&node, "".as_ref()).display()
                )
            })?;
            match &node.parent {
                Some(parent) => node = parent.clone(),
                None => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries listed, then deleted before the walk gets to them (an
    /// expunged message, a journal SQLite removed): counted, not fatal.
    #[test]
    fn what_is_gone_before_its_link_or_copy_is_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(&layout.snapshot_partial).unwrap();
        let root = DirFd::open(dir.path()).unwrap();
        let snap = DirFd::open(&layout.snapshot_partial).unwrap();
        let walk = Walk::new(&layout, &snap, Step::Prepare, HashSet::new()).unwrap();
        let meta = root.stat().unwrap();
        let node = Arc::new(walk.top(root, snap, meta, PathBuf::new(), Region::Other, false));
        let mut stats = SnapshotStats::default();
        let gone = |name: &str| Entry {
            name: name.into(),
            kind: None,
            ino: 1,
        };
        // Linked, copied, and one whose kind needed a stat.
        walk.entry(
            &node,
            OsStr::new("1.M1.box:2,S"),
            Kind::File,
            false,
            &mut stats,
        )
        .unwrap();
        walk.entry(
            &node,
            OsStr::new("dovecot.index"),
            Kind::File,
            true,
            &mut stats,
        )
        .unwrap();
        assert_eq!(walk.kind_of(&node, &gone("x"), &mut stats).unwrap(), None);
        // A directory removed before it was opened.
        node.pending.fetch_add(1, Ordering::SeqCst);
        let sub = walk.open(&node, OsStr::new(".Trash"), false, &mut stats);
        assert!(sub.unwrap().is_none());
        assert_eq!(stats.vanished, 4);
        assert_eq!(stats.linked + stats.copied, 0);
        // What is there still fails as it should: a directory in the way.
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let e = walk.entry(&node, OsStr::new("d"), Kind::File, true, &mut stats);
        assert!(e.is_err());
    }
}
