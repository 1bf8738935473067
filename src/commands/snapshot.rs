//! `mailbackup snapshot`: the data as it is now, for the backup to read
//! while the mail services run again.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::config::Config;
use crate::report::human_size;
use crate::snapshot;

/// Take a snapshot of STORAGE_ROOT for the backup, or remove it.
///
/// mailbackup.service runs it while the mail services are stopped, starts
/// them again, and backs up the snapshot (`mailbackup run --from-snapshot`).
/// Files are hard-linked into STORAGE_ROOT/backup/snapshot, but for those the
/// mail services change in place (the rest of mail/ but the messages, and
/// Dovecot's files anywhere), which are copied. A snapshot an earlier run
/// left is removed first.
///
/// Example: mailbackup snapshot --remove
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// Remove the snapshot instead.
    #[arg(long)]
    pub remove: bool,
}

pub fn run(config_path: &Path, args: &SnapshotArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let layout = config.layout();
    if args.remove {
        if snapshot::remove(&layout)? {
            eprintln!(
                "mailbackup: removed the snapshot {}",
                layout.snapshot_dir.display()
            );
        }
        return Ok(0);
    }
    let started = Instant::now();
    let stats = snapshot::take(&layout)?;
    let took = started.elapsed();
    let restart_at = snapshot::safe_restart_at(stats.newest_copied_mtime);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if let Some(wait) = restart_at.checked_sub(now) {
        std::thread::sleep(wait);
    }
    eprintln!(
        "mailbackup: snapshot of {} in {:.2} s (and {:.2} s for the clock to pass the newest copied file): \
         {} files linked, {} copied ({}), {} directories{}",
        layout.storage_root.display(),
        took.as_secs_f64(),
        (started.elapsed() - took).as_secs_f64(),
        stats.linked,
        stats.copied,
        human_size(stats.copied_bytes),
        stats.directories,
        if stats.skipped > 0 {
            format!(", {} sockets left out (as duplicity leaves them out)", stats.skipped)
        } else {
            String::new()
        }
    );
    Ok(0)
}
