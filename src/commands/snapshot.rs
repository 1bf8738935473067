//! `mailbackup snapshot`: the data as it is now, for the backup to read
//! while the mail services run again.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::config::Config;
use crate::snapshot::{self, SnapshotStats};
use crate::status::report::human_size;

/// Take a snapshot of STORAGE_ROOT for the backup, or remove it.
///
/// Files are hard-linked into STORAGE_ROOT/backup/snapshot, but for those the
/// mail services change in place (the rest of mail/ but the messages, and
/// Dovecot's files anywhere), which are copied. It is taken in two steps:
/// --prepare while the mail runs (most of the work), --complete while the
/// mail services are stopped or frozen (brings mail/ and every Maildir up
/// to date, and makes the copies). mailbackup.service runs them through
/// mailbackup-snapshot.service, then backs the snapshot up
/// (`mailbackup run --from-snapshot`). Without an option, both at once.
/// A snapshot an interrupted run left is set aside and removed with --remove.
///
/// SQLite databases are taken with SQLite's online backup in --prepare: one
/// committed state each, without their journals. One locked for more than
/// 10 s or corrupt is copied as bytes, and the log and `status --check`
/// warn of it. A file deleted while the snapshot is taken is left out.
///
/// Example: mailbackup snapshot --remove
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// Only the first step, while the mail runs.
    #[arg(long, conflicts_with_all = ["complete", "remove"])]
    pub prepare: bool,

    /// Only the second step, while the mail waits.
    #[arg(long, conflicts_with = "remove")]
    pub complete: bool,

    /// Remove the snapshot instead.
    #[arg(long)]
    pub remove: bool,
}

pub fn run(config_path: &Path, args: &SnapshotArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let layout = config.layout();
    let root = layout.storage_root.display();
    if args.remove {
        if snapshot::remove(&layout)? {
            eprintln!(
                "mailbackup: removed the snapshot {}",
                layout.snapshot_dir.display()
            );
        }
        return Ok(0);
    }
    if !args.complete {
        super::refuse_during_restore(&layout)?;
    }
    let started = Instant::now();
    if args.prepare {
        let stats = snapshot::prepare(&layout)?;
        eprintln!(
            "mailbackup: prepared a snapshot of {root} in {:.2} s: {}",
            started.elapsed().as_secs_f64(),
            counts(&stats)
        );
        return Ok(0);
    }
    let stats = if args.complete {
        snapshot::complete(&layout)?
    } else {
        snapshot::take(&layout)?
    };
    let took = started.elapsed();
    let taken = crate::status::publish::exact(SystemTime::now() - took);
    // The mail services run again only once the clock has passed the
    // newest copied file (see `safe_restart_at`).
    let restart_at = snapshot::safe_restart_at(stats.newest_copied_mtime);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if let Some(wait) = restart_at.checked_sub(now) {
        std::thread::sleep(wait);
    }
    eprintln!(
        "mailbackup: snapshot of {root} {} in {:.2} s (and {:.2} s for the clock to pass the newest copied file): {}",
        if args.complete { "completed" } else { "taken" },
        took.as_secs_f64(),
        (started.elapsed() - took).as_secs_f64(),
        counts(&stats)
    );
    // With --complete, the unit holds the mail services stopped or frozen
    // for this step (and the moments systemctl takes around it).
    let downtime = args.complete.then(|| started.elapsed().as_secs_f64());
    crate::status::publish::note(&layout, |h| {
        h.snapshot_taken = Some(taken);
        if downtime.is_some() {
            h.mail_downtime_seconds = downtime;
        }
    });
    Ok(0)
}

/// What a step did, for the log; first, where it could not link.
fn counts(stats: &SnapshotStats) -> String {
    let mut why = stats.no_links_because.clone();
    why.dedup();
    for why in why {
        eprintln!("mailbackup: {why}: copied instead, which takes longer and more room");
    }
    let mut text = format!(
        "{} files linked, {} copied ({}), {} directories",
        stats.linked,
        stats.copied,
        human_size(stats.copied_bytes),
        stats.directories
    );
    if stats.kept > 0 || stats.removed > 0 {
        text += &format!(
            ", {} up to date, {} removed or replaced",
            stats.kept, stats.removed
        );
    }
    if stats.databases > 0 {
        text += &format!(
            ", {} SQLite databases taken with SQLite's backup ({})",
            stats.databases,
            human_size(stats.database_bytes)
        );
    }
    if !stats.warnings.is_empty() {
        text += &format!(
            ", {} WARNINGS (above; also in status --check)",
            stats.warnings.len()
        );
    }
    if stats.vanished > 0 {
        text += &format!(
            ", {} files gone before they could be taken (deleted meanwhile: left out)",
            stats.vanished
        );
    }
    if stats.skipped > 0 {
        text += &format!(
            ", {} sockets left out (as duplicity leaves them out)",
            stats.skipped
        );
    }
    text
}
