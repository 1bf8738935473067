//! `mailbackup run`: one duplicity backup, nothing else.

use std::path::Path;

use anyhow::{bail, Result};
use chrono::Datelike;

use crate::backend::Target;
use crate::config::{Config, Layout};
use crate::duplicity::inventory::{Backup, Inventory};
use crate::duplicity::migration;
use crate::duplicity::{self, BackupMode, Duplicity, Source, EXIT_USER_ERROR};
use crate::status::history::{BackedUp, History, Operation};
use crate::status::publish::{self, Timed};
use crate::status::report::{full_reason, FullReason};

/// Back up STORAGE_ROOT (without its backup/ directory) with duplicity.
///
/// Makes a full backup when there is none yet or when --full is given; on a
/// Saturday or Sunday (local time) also when the increments since the last
/// full backup add up to more than half of it, or when that full backup is
/// older than min_age_in_days x 10 + 1 days (Mail-in-a-Box v75's rule); an
/// incremental one otherwise. Exits with duplicity's exit code. It does not
/// stop the mail services, run the hooks or prune: the systemd units do that.
///
/// With --from-snapshot it backs up the snapshot that `mailbackup snapshot`
/// took while the mail services were stopped, in the place of STORAGE_ROOT,
/// as mailbackup.service does. Without it, it reads the live files while
/// the mail runs (Mail-in-a-Box's backup.py stopped the mail first): a
/// message or a SQLite database written meanwhile may be read half written.
/// For a backup as the units make it, use `systemctl start
/// mailbackup.service`.
///
/// Example, a full backup by hand with the mail stopped:
///   systemctl stop dovecot postfix; mailbackup run --full; systemctl start dovecot postfix
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Make a full backup even if an incremental one would do.
    #[arg(long)]
    pub full: bool,

    /// Back up the snapshot in STORAGE_ROOT/backup/snapshot instead of the live data.
    #[arg(long)]
    pub from_snapshot: bool,
}

/// When a backup runs: the Unix time in microseconds, and whether it is a
/// Saturday or Sunday in the local zone.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now_us: i64,
    pub weekend: bool,
}

impl Clock {
    pub fn system() -> Clock {
        let now = chrono::Local::now();
        Clock {
            now_us: now.timestamp_micros(),
            weekend: now.weekday().number_from_monday() >= 6,
        }
    }
}

/// Which kind of backup to make, and why, for the log: Mail-in-a-Box v75's
/// rule on the backups `collection-status` lists (newest first).
pub fn choose_mode(
    force_full: bool,
    backups: &[&Backup],
    min_age_days: u32,
    clock: Clock,
) -> (BackupMode, &'static str) {
    if force_full {
        return (BackupMode::Full, "--full was given");
    }
    match full_reason(backups, min_age_days, clock.now_us, clock.weekend) {
        // An interrupted full backup is no base for an increment: duplicity
        // restarts it, and would refuse an incremental one (exit 17).
        Some(FullReason::NoFull) => (BackupMode::Full, "there is no complete full backup yet"),
        Some(FullReason::Increments) => (
            BackupMode::Full,
            "it is the weekend, and the increments since the last full backup exceed half of it",
        ),
        Some(FullReason::Age) => (
            BackupMode::Full,
            "it is the weekend, and the last full backup is older than min_age_in_days x 10 + 1 days",
        ),
        None if clock.weekend => (
            BackupMode::Incremental,
            "the last full backup is recent, and the increments since are small",
        ),
        None => (
            BackupMode::Incremental,
            "a full backup exists; new full backups are made on Saturdays and Sundays",
        ),
    }
}

/// Chooses full or incremental and says which, and why, on stderr.
fn announce_mode(
    args: &RunArgs,
    inventory: &Inventory,
    min_age_days: u32,
    layout: &Layout,
    target: &Target,
) -> BackupMode {
    let (mode, reason) = choose_mode(
        args.full,
        &inventory.chained(),
        min_age_days,
        Clock::system(),
    );
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
    mode
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
    let result = back_up(&config, &layout, target, settings.min_age_in_days, args);
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

fn back_up(
    config: &Config,
    layout: &Layout,
    target: &Target,
    min_age_in_days: u32,
    args: &RunArgs,
) -> Result<u8> {
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

    let mode = announce_mode(args, &inventory, min_age_in_days, &layout, target);
    let source = if args.from_snapshot {
        eprintln!(
            "mailbackup: from the snapshot in {}",
            layout.snapshot_dir.display()
        );
        Source::Snapshot
    } else {
        // What a snapshot warned of says nothing of a live backup.
        crate::snapshot::record_warnings(&layout, &[])?;
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
    use crate::duplicity::inventory::examples::{at, backup};

    fn mode(backups: &[&Backup], min_age: u32, now: &str, weekend: bool) -> BackupMode {
        let clock = Clock {
            now_us: at(now),
            weekend,
        };
        choose_mode(false, backups, min_age, clock).0
    }

    #[test]
    fn the_first_backup_is_full_any_day() {
        assert_eq!(mode(&[], 3, "2026-11-25 01:00:00", false), BackupMode::Full);
        let orphan = backup("20261121T010000Z", Some("20261120T010000Z"), 5);
        assert_eq!(
            mode(&[&orphan], 3, "2026-11-25 01:00:00", false),
            BackupMode::Full
        );
    }

    #[test]
    fn full_is_full_any_day() {
        let full = backup("20261124T010000Z", None, 100);
        let clock = Clock {
            now_us: at("2026-11-25 01:00:00"),
            weekend: false,
        };
        assert_eq!(choose_mode(true, &[&full], 3, clock).0, BackupMode::Full);
    }

    #[test]
    fn big_increments_force_a_full_backup_on_the_weekend_only() {
        let full = backup("20261120T010000Z", None, 100);
        let inc = backup("20261121T010000Z", Some("20261120T010000Z"), 51);
        let now = "2026-11-22 01:00:00";
        assert_eq!(mode(&[&inc, &full], 3, now, false), BackupMode::Incremental);
        assert_eq!(mode(&[&inc, &full], 3, now, true), BackupMode::Full);
        let half = backup("20261121T010000Z", Some("20261120T010000Z"), 50);
        assert_eq!(mode(&[&half, &full], 3, now, true), BackupMode::Incremental);
    }

    #[test]
    fn an_old_full_backup_is_replaced_on_the_weekend_only() {
        // min_age_in_days 3: a full backup is replaced when older than 31 days.
        let full = backup("20261020T010000Z", None, 100);
        let inc = backup("20261021T010000Z", Some("20261020T010000Z"), 1);
        let backups = [&inc, &full];
        assert_eq!(
            mode(&backups, 3, "2026-11-20 01:00:00", true),
            BackupMode::Incremental
        );
        assert_eq!(
            mode(&backups, 3, "2026-11-20 01:00:01", true),
            BackupMode::Full
        );
        assert_eq!(
            mode(&backups, 3, "2027-11-20 01:00:01", false),
            BackupMode::Incremental
        );
        // min_age_in_days 0: after a day.
        assert_eq!(
            mode(&backups, 0, "2026-10-21 01:00:00", true),
            BackupMode::Incremental
        );
        assert_eq!(
            mode(&backups, 0, "2026-10-21 01:00:01", true),
            BackupMode::Full
        );
    }

    #[test]
    fn only_the_increments_since_the_newest_full_count() {
        let older = backup("20261101T010000Z", None, 10);
        let inc = backup("20261102T010000Z", Some("20261101T010000Z"), 9999);
        let full = backup("20261120T010000Z", None, 1000);
        let now = "2026-11-21 01:00:00";
        assert_eq!(
            mode(&[&full, &inc, &older], 3, now, true),
            BackupMode::Incremental
        );
    }
}
