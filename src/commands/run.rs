//! `mailbackup run`: one duplicity backup, nothing else.

use std::path::Path;

use anyhow::{bail, Result};

use crate::backend::Target;
use crate::config::{Config, Layout};
use crate::duplicity::inventory::Backup;
use crate::duplicity::migration;
use crate::duplicity::{self, BackupMode, Duplicity, Source, EXIT_USER_ERROR};
use crate::status::history::{BackedUp, History, Operation};
use crate::status::publish::{self, Timed};
use crate::status::report::should_force_full;

/// Back up STORAGE_ROOT (without its backup/ directory) with duplicity.
///
/// Makes a full backup when there is none yet, when --full is given, or when
/// the increments since the last full backup add up to more than half of it;
/// an incremental one otherwise. Exits with duplicity's exit code. It does not
/// stop the mail services, prune or run the after-backup hook: the systemd
/// units do that.
///
/// With --from-snapshot it backs up the snapshot that `mailbackup snapshot`
/// took while the mail services were stopped, in the place of STORAGE_ROOT.
///
/// Example: mailbackup run --full
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Make a full backup even if an incremental one would do.
    #[arg(long)]
    pub full: bool,

    /// Back up the snapshot in STORAGE_ROOT/backup/snapshot instead of the live data.
    #[arg(long)]
    pub from_snapshot: bool,
}

/// Which kind of backup to make, and why, for the log.
pub fn choose_mode(force_full: bool, backups: &[Backup]) -> (BackupMode, &'static str) {
    if force_full {
        (BackupMode::Full, "--full was given")
    } else if !backups.iter().any(|b| b.full && b.complete) {
        // An interrupted full backup is no base for an increment: duplicity
        // restarts it, and would refuse an incremental one (exit 17).
        (BackupMode::Full, "there is no complete full backup yet")
    } else if should_force_full(backups) {
        (
            BackupMode::Full,
            "the increments since the last full backup exceed half of it",
        )
    } else {
        (BackupMode::Incremental, "a full backup exists")
    }
}

pub fn run(config_path: &Path, args: &RunArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    if let Some(note) = config.symlink_note() {
        eprintln!("{note}");
    }
    let layout = config.layout();
    let settings = super::load_settings(&config)?;
    let Some(target) = &settings.target else {
        eprintln!("mailbackup: {}: nothing backed up", settings.off());
        return Ok(0);
    };
    let timed = Timed::start(Operation::Backup);
    let result = back_up(&config, &layout, target, args);
    let code = *result.as_ref().unwrap_or(&1);
    // Under systemd without a snapshot, the unit stopped the mail services
    // for the whole run (--downtime full).
    let stopped_for_run = !args.from_snapshot && std::env::var_os("INVOCATION_ID").is_some();
    publish::finished(&layout, Some(target), &timed, code, |h| {
        if stopped_for_run {
            h.mail_downtime_seconds = Some(timed.elapsed_seconds());
        }
        if code == 0 {
            note_backed_up(h, &timed, args.from_snapshot);
        }
    });
    result
}

/// Notes when the data of the backup just made was taken.
fn note_backed_up(h: &mut History, timed: &Timed, from_snapshot: bool) {
    let run_started = timed.started_unix();
    let data_as_of = match (from_snapshot, h.snapshot_taken) {
        (true, Some(taken)) if taken <= timed.started_exact() => taken,
        // Unknown: the earliest it can be is not known, so nothing
        // unchanged since can be told apart.
        (true, _) => 0.0,
        (false, _) => timed.started_exact(),
    };
    h.backed_up = Some(BackedUp {
        run_started,
        run_ended: run_started + timed.elapsed_seconds().ceil() as i64,
        data_as_of,
    });
}

fn back_up(config: &Config, layout: &Layout, target: &Target, args: &RunArgs) -> Result<u8> {
    let layout = layout.clone();
    super::refuse_during_restore(&layout)?;
    let inventory = target.inventory()?;
    let key = super::load_key(config)?;
    let duplicity = Duplicity::locate(&layout, &key.passphrase, target)?;
    if args.from_snapshot && !layout.snapshot_dir.is_dir() {
        bail!(
            "there is no snapshot in {}: `mailbackup snapshot` takes one while the mail services are stopped",
            layout.snapshot_dir.display()
        );
    }

    migration::finish_interrupted(&layout)?;
    let legacy = migration::legacy_dir(&layout);
    if let Some(dir) = &legacy {
        eprintln!(
            "mailbackup: {} holds backups of the old unencrypted layout: this backup includes them",
            dir.display()
        );
        // Not parsed as backups, so the inventory stays as it is.
        migration::remove_openssl_copies(&layout)?;
    }

    let (mode, reason) = choose_mode(args.full, &inventory.backups);
    eprintln!(
        "mailbackup: {} backup of {} to {} ({reason})",
        if mode == BackupMode::Full {
            "full"
        } else {
            "incremental"
        },
        layout.storage_root.display(),
        target.describe()
    );
    let source = if args.from_snapshot {
        eprintln!(
            "mailbackup: from the snapshot in {}",
            layout.snapshot_dir.display()
        );
        Source::Snapshot
    } else {
        Source::Live {
            include: legacy.iter().cloned().collect(),
        }
    };
    let outcome = duplicity.run_in(
        duplicity::source_cwd(&layout, &source),
        &duplicity::backup_args(&layout, target, mode, &source),
    )?;
    if outcome.code == EXIT_USER_ERROR && outcome.locked_out {
        eprintln!(
            "mailbackup: another backup is already running (duplicity holds the lock in {}); this run did nothing",
            layout.cache_dir.display()
        );
        return Ok(outcome.code);
    }
    if outcome.code != 0 {
        eprintln!(
            "mailbackup: duplicity failed with exit code {}: the backup is not complete",
            outcome.code
        );
        return Ok(outcome.code);
    }
    let legacy_backed_up = match source {
        Source::Live { .. } => legacy.is_some(),
        Source::Snapshot => {
            legacy.is_some() && layout.snapshot_dir.join("backup/duplicity").is_dir()
        }
    };
    if legacy_backed_up {
        migration::complete(&layout)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duplicity::backup_set::Stamp;

    fn backup(date: &str, full: bool, size: u64) -> Backup {
        Backup {
            date: Stamp::parse(date.as_bytes()).unwrap(),
            full,
            previous: (!full).then(|| Stamp::parse(b"20261101T000000Z").unwrap()),
            size,
            complete: true,
        }
    }

    #[test]
    fn modes() {
        assert_eq!(choose_mode(false, &[]).0, BackupMode::Full);
        let full = backup("20261101T000000Z", true, 100);
        assert_eq!(
            choose_mode(false, std::slice::from_ref(&full)).0,
            BackupMode::Incremental
        );
        assert_eq!(
            choose_mode(true, std::slice::from_ref(&full)).0,
            BackupMode::Full
        );
        let big = backup("20261102T000000Z", false, 51);
        assert_eq!(choose_mode(false, &[big, full]).0, BackupMode::Full);
        assert_eq!(
            choose_mode(false, &[backup("20261102T000000Z", false, 1)]).0,
            BackupMode::Full
        );
        let interrupted = Backup {
            complete: false,
            ..backup("20261101T000000Z", true, 100)
        };
        assert_eq!(choose_mode(false, &[interrupted]).0, BackupMode::Full);
    }
}
