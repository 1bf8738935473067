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
//! - Everything else (Nextcloud's files, web sites, certificates, DNS) is
//!   written by services that the backup never stopped: Mail-in-a-Box's
//!   backup.py read them live, while those services ran. A link gives the
//!   backup that same view, at no cost. Linked.
//!
//! Copies keep owners, modes (set-id bits included), times and holes, so the
//! snapshot backs up exactly as `STORAGE_ROOT` would have. The tree is
//! walked relative to open directories, on all CPUs, so that no path is
//! longer than the kernel's limit for one name.

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::Layout;
use crate::migration;
use crate::sys::fs::{raise_open_files_limit, too_many_links, DirFd, Kind, Stat};

/// The directory of `STORAGE_ROOT` that the mail services write.
pub const MAIL_DIR: &str = "mail";

/// What taking a snapshot did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SnapshotStats {
    pub linked: u64,
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
}

impl SnapshotStats {
    fn add(&mut self, other: SnapshotStats) {
        self.linked += other.linked;
        self.copied += other.copied;
        self.copied_bytes += other.copied_bytes;
        self.directories += other.directories;
        self.skipped += other.skipped;
        self.no_links_because.extend(other.no_links_because);
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
/// run again only once the clock has passed that second, with a margin for
/// the coarse clock of file times.
pub fn safe_restart_at(newest_copied_mtime: i64) -> Duration {
    Duration::from_secs(newest_copied_mtime.max(0) as u64 + 1) + Duration::from_millis(20)
}

/// The present time in whole seconds since the epoch.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Where in `STORAGE_ROOT` a directory lies, which decides what is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// `STORAGE_ROOT` itself.
    Root,
    /// Under `mail/`, outside the Maildir message folders.
    Mail,
    /// A Maildir's `cur/`, `new/` or `tmp/`, anywhere.
    Messages,
    /// Anywhere else.
    Other,
}

impl Region {
    /// The region of the subdirectory `name`; `is_maildir` tells whether
    /// this directory is a Maildir (has `cur/` and `tmp/`).
    pub fn child(self, name: &OsStr, is_maildir: impl FnOnce() -> bool) -> Region {
        let name = name.as_bytes();
        match self {
            Region::Messages => Region::Messages,
            _ if matches!(name, b"cur" | b"new" | b"tmp") && is_maildir() => Region::Messages,
            Region::Root if name == MAIL_DIR.as_bytes() => Region::Mail,
            Region::Root => Region::Other,
            region => region,
        }
    }

    /// Whether a file called `name` here is copied rather than linked: the
    /// mail services may change it in place.
    pub fn copies(self, name: &OsStr) -> bool {
        match self {
            Region::Messages => false,
            Region::Mail => true,
            Region::Root | Region::Other => is_dovecot_file(name.as_bytes()),
        }
    }
}

/// The files Dovecot rewrites in place, wherever a mailbox lies.
fn is_dovecot_file(name: &[u8]) -> bool {
    name.starts_with(b"dovecot")
        || name.starts_with(b".dovecot")
        || name == b"maildirsize"
        || name == b"subscriptions"
}

/// Takes a snapshot of `STORAGE_ROOT` (without `backup/`, but with the
/// legacy `backup/duplicity` of the 2014 layout) into `backup/snapshot`.
/// A snapshot left by an interrupted run is set aside, to be removed with
/// this one after the backup: removing a million links takes minutes, which
/// the waiting mail must not. The snapshot is built beside its place and
/// renamed into it when complete.
pub fn take(layout: &Layout) -> Result<SnapshotStats> {
    set_aside(layout)?;
    raise_open_files_limit();
    let root_path = &layout.storage_root;
    let root = DirFd::open(root_path)
        .with_context(|| format!("Failed to open {}", root_path.display()))?;
    let backup = DirFd::open(&layout.backup_dir)
        .with_context(|| format!("Failed to open {}", layout.backup_dir.display()))?;
    let partial_name = file_name(&layout.snapshot_partial)?;
    let partial = backup
        .make_dir(partial_name)
        .with_context(|| format!("Failed to create {}", layout.snapshot_partial.display()))?;
    let dst_dev = partial
        .stat()
        .with_context(|| format!("Failed to read {}", layout.snapshot_partial.display()))?
        .dev;
    let meta = root
        .stat()
        .with_context(|| format!("Failed to read {}", root_path.display()))?;
    let walk = Walk {
        layout,
        dst_dev,
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
        no_links: OnceLock::new(),
        error: Mutex::new(None),
    };
    let top = Arc::new(Node {
        copy_all: AtomicBool::new(meta.dev != dst_dev),
        src: root,
        dst: partial,
        meta,
        rel: PathBuf::new(),
        region: Region::Root,
        parent: None,
        pending: AtomicUsize::new(1),
    });
    walk.push(Job::Fill(top.clone()));
    if let Some(legacy) = migration::legacy_dir(layout) {
        // backup/duplicity, under a backup/ of its own.
        let meta = backup
            .stat()
            .with_context(|| format!("Failed to read {}", layout.backup_dir.display()))?;
        let dst = top
            .dst
            .make_dir(file_name(&layout.backup_dir)?)
            .with_context(|| format!("Failed to create the snapshot's {}", legacy.display()))?;
        top.pending.fetch_add(1, Ordering::SeqCst);
        let node = Arc::new(Node {
            copy_all: AtomicBool::new(meta.dev != dst_dev),
            src: backup,
            dst,
            meta,
            rel: PathBuf::from(file_name(&layout.backup_dir)?),
            region: Region::Other,
            parent: Some(top.clone()),
            pending: AtomicUsize::new(2),
        });
        walk.push(Job::Open {
            parent: node.clone(),
            name: file_name(&legacy)?.to_owned(),
        });
        walk.finish(&node)?;
    }
    drop(top);
    let mut stats = walk.run()?;
    if meta.dev != dst_dev {
        stats.no_links_because.insert(
            0,
            format!(
                "{} is on another filesystem than {}: files cannot be hard-linked into the snapshot",
                layout.backup_dir.display(),
                root_path.display()
            ),
        );
    }
    for why in &stats.no_links_because {
        eprintln!("mailbackup: {why}: copied instead, which takes longer and more room");
    }
    std::fs::rename(&layout.snapshot_partial, &layout.snapshot_dir).with_context(|| {
        format!(
            "Failed to move the snapshot {} into place",
            layout.snapshot_partial.display()
        )
    })?;
    Ok(stats)
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

/// A directory being copied: its source and its copy, open, and how many
/// parts of it are still to do (its own entries, and each subdirectory).
/// When none is left, the copy gets its attributes and the parent is told.
struct Node {
    src: DirFd,
    dst: DirFd,
    meta: Stat,
    /// Relative to `STORAGE_ROOT`, for messages.
    rel: PathBuf,
    region: Region,
    /// Nothing here can be hard-linked (another filesystem): copy all.
    copy_all: AtomicBool,
    parent: Option<Arc<Node>>,
    pending: AtomicUsize,
}

enum Job {
    /// Go through the entries of an open directory.
    Fill(Arc<Node>),
    /// Open the subdirectory `name` of `parent`, create its copy, fill it.
    Open { parent: Arc<Node>, name: OsString },
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    busy: usize,
    failed: bool,
}

struct Walk<'a> {
    layout: &'a Layout,
    /// The filesystem of the snapshot: links reach only into it.
    dst_dev: u64,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Why hard links are impossible at all (fs.protected_hardlinks without
    /// the capability), once found.
    no_links: OnceLock<String>,
    error: Mutex<Option<anyhow::Error>>,
}

impl Walk<'_> {
    fn push(&self, job: Job) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .jobs
            .push(job);
        self.wake.notify_one();
    }

    /// Runs the queue on all CPUs until every directory is done.
    fn run(&self) -> Result<SnapshotStats> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
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
                Job::Open { parent, name } => self
                    .open(&parent, &name, &mut stats)
                    .and_then(|node| self.fill(node, &mut stats)),
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
        stats: &mut SnapshotStats,
    ) -> Result<Arc<Node>> {
        let path = || self.source(parent, name);
        let src = parent
            .src
            .open_dir(name)
            .with_context(|| format!("Failed to open {}", path().display()))?;
        let meta = src
            .stat()
            .with_context(|| format!("Failed to read {}", path().display()))?;
        let dst = parent.dst.make_dir(name).with_context(|| {
            format!(
                "Failed to create the snapshot's copy of {}",
                path().display()
            )
        })?;
        stats.directories += 1;
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
        Ok(Arc::new(Node {
            src,
            dst,
            meta,
            rel: parent.rel.join(name),
            region,
            copy_all: AtomicBool::new(elsewhere || parent.copy_all.load(Ordering::Relaxed)),
            parent: Some(parent.clone()),
            pending: AtomicUsize::new(1),
        }))
    }

    /// Links or copies the entries of `node`, queues its subdirectories.
    fn fill(&self, node: Arc<Node>, stats: &mut SnapshotStats) -> Result<()> {
        let entries = node.src.entries().with_context(|| {
            format!(
                "Failed to list {}",
                self.source(&node, "".as_ref()).display()
            )
        })?;
        for (name, kind) in entries {
            let kind = match kind {
                Some(k) => k,
                None => {
                    node.src
                        .stat_at(&name)
                        .with_context(|| {
                            format!("Failed to read {}", self.source(&node, &name).display())
                        })?
                        .kind
                }
            };
            if kind == Kind::Dir {
                if node.region == Region::Root && name == file_name(&self.layout.backup_dir)? {
                    continue;
                }
                node.pending.fetch_add(1, Ordering::SeqCst);
                self.push(Job::Open {
                    parent: node.clone(),
                    name,
                });
            } else {
                self.entry(&node, &name, kind, stats)?;
            }
        }
        self.finish(&node)
    }

    /// One entry that is not a directory: a link where it can be, else a copy.
    fn entry(
        &self,
        node: &Node,
        name: &OsStr,
        kind: Kind,
        stats: &mut SnapshotStats,
    ) -> Result<()> {
        // A device node is never written through; and only a link can keep it.
        let device = matches!(kind, Kind::CharDevice | Kind::BlockDevice);
        let copy = (node.region.copies(name) && !device)
            || node.copy_all.load(Ordering::Relaxed)
            || self.no_links.get().is_some();
        if !copy {
            match node.src.link_to(name, &node.dst) {
                Ok(()) => {
                    stats.linked += 1;
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
        self.copy(node, name, kind, stats).with_context(|| {
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
                // A time in the future (a clock that was once ahead, a
                // file touched so) cannot be met by a rewrite now, which
                // gets the present time: only the present second counts.
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
    fn finish(&self, node: &Arc<Node>) -> Result<()> {
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

    #[test]
    fn the_services_wait_for_the_next_second() {
        assert_eq!(
            safe_restart_at(1_800_000_000),
            Duration::from_millis(1_800_000_001_020)
        );
        assert_eq!(safe_restart_at(0), Duration::from_millis(1_020));
    }

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn regions() {
        let root = Region::Root;
        assert_eq!(root.child(os("mail"), || false), Region::Mail);
        assert_eq!(root.child(os("owncloud"), || false), Region::Other);
        let mail = Region::Mail;
        assert_eq!(mail.child(os("mailboxes"), || false), Region::Mail);
        assert_eq!(mail.child(os("cur"), || true), Region::Messages);
        assert_eq!(mail.child(os("tmp"), || true), Region::Messages);
        assert_eq!(
            mail.child(os("cur"), || false),
            Region::Mail,
            "a cur without tmp is no Maildir"
        );
        assert_eq!(
            mail.child(os("sieve"), || panic!(
                "only cur, new and tmp are looked at"
            )),
            Region::Mail
        );
        assert_eq!(Region::Other.child(os("new"), || true), Region::Messages);
        assert_eq!(Region::Messages.child(os("x"), || false), Region::Messages);
    }

    #[test]
    fn what_is_copied() {
        assert!(!Region::Messages.copies(os("1790000000.M1P1.box,S=300:2,S")));
        assert!(!Region::Messages.copies(os("dovecot.index")));
        assert!(Region::Mail.copies(os("users.sqlite")));
        assert!(Region::Mail.copies(os("dovecot.index.log")));
        assert!(!Region::Other.copies(os("photo.jpg")));
        assert!(!Region::Root.copies(os("owncloud.db")));
        for name in [
            "dovecot.index.cache",
            "dovecot-uidlist",
            ".dovecot.lda-dupes",
            "maildirsize",
            "subscriptions",
        ] {
            assert!(Region::Other.copies(os(name)), "{name}");
        }
    }
}
