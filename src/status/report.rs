//! The status report of Mail-in-a-Box's `backup_status()` (v75), and the
//! full-versus-incremental rule that depends on it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::backend::Cause;
use crate::config::Layout;
use crate::duplicity::inventory::{Backup, Inventory};
use crate::status::history::Run;
use crate::status::pytime::{
    in_datetime_range, iso_date_time, py_round, reldate, timedelta_days_us, LocalZone, Moment,
};

/// Backups are deleted when the newest increment of their chain is this old.
pub const KEEP_BACKUPS_FOR_DAYS: u32 = 3;

const DAY_US: i64 = 86_400_000_000;

/// v75's dict (`backups`, `unmatched_file_size`), the keys of the 2015 dict
/// it dropped (`directory`, `encpwfile`, `tz`, `previous`), and the stray
/// files Mail-in-a-Box skips.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusReport {
    pub directory: String,
    pub encpwfile: String,
    pub tz: String,
    pub backups: Vec<BackupStatus>,
    pub unmatched_file_size: u64,
    pub unknown_files: u64,
    pub unknown_size: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackupStatus {
    pub date: String,
    pub date_str: String,
    pub date_delta: String,
    pub full: bool,
    pub previous: Option<String>,
    pub size: u64,
    pub volumes: u32,
    pub deleted_in: Option<String>,
}

/// The Unix time of a backup, in microseconds.
fn date_us(b: &Backup) -> i64 {
    b.date.datetime().and_utc().timestamp_micros()
}

/// After how many days a full backup is replaced by a new one at the latest
/// (v75: `min_age_in_days * 10 + 1`).
pub fn full_age_cap_days(min_age_days: u32) -> i64 {
    i64::from(min_age_days) * 10 + 1
}

/// Why a backup must be full, by Mail-in-a-Box v75's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullReason {
    /// No full backup yet.
    NoFull,
    /// The increments since the newest full backup exceed half of it.
    Increments,
    /// The newest full backup is older than `min_age_in_days` x 10 + 1 days.
    Age,
}

/// Mail-in-a-Box v75's `should_force_full()`, with its reason: a full backup
/// when there is none yet; on a Saturday or Sunday (`weekend`, local time)
/// also when the increments since the newest full backup add up to more
/// than half of it, or when that full backup is older than `min_age_days`
/// x 10 + 1 days. On weekdays never otherwise. `backups` are the listed
/// ones, newest first.
pub fn full_reason(
    backups: &[&Backup],
    min_age_days: u32,
    now_us: i64,
    weekend: bool,
) -> Option<FullReason> {
    let mut inc_size = 0u64;
    for b in backups {
        if !b.full {
            inc_size += b.size;
            continue;
        }
        if weekend {
            if inc_size as f64 > 0.5 * b.size as f64 {
                return Some(FullReason::Increments);
            }
            if date_us(b) + full_age_cap_days(min_age_days) * DAY_US < now_us {
                return Some(FullReason::Age);
            }
        }
        return None;
    }
    Some(FullReason::NoFull)
}

/// v75's guess of when the newest chain is deleted, in days from now (can
/// be negative), or `None` when there is no increment to go by.
///
/// The next full backup comes when the increments reach half the full
/// backup at their average size, or at the age cap, whichever is first;
/// the chain goes when that full backup is made and its newest backup is
/// `min_age_days` old. Where v75 overflows a date (a tiny average
/// increment puts the size rule past the year 9999) and crashes, the age cap
/// decides.
fn newest_chain_deleted_in(backups: &[&Backup], min_age_days: u32, now_us: i64) -> Option<i64> {
    let first_date = date_us(backups.first()?);
    let full = backups.iter().find(|b| b.full)?;
    let increments: Vec<&&Backup> = backups.iter().take_while(|b| !b.full).collect();
    let count = increments.len() as f64;
    let size: u64 = increments.iter().map(|b| b.size).sum();
    if increments.is_empty() || size == 0 {
        return None;
    }
    let size = size as f64;
    let est_days = (0.5 * full.size as f64 - size) / (size / count);
    let cap = date_us(full) + full_age_cap_days(min_age_days) * DAY_US;
    let next_full = timedelta_days_us(est_days)
        .and_then(|d| first_date.checked_add(d))
        .filter(|&t| in_datetime_range(t))
        .map_or(cap, |t| t.min(cap));
    let deleted_on = next_full.max(first_date + i64::from(min_age_days) * DAY_US);
    let days = (deleted_on - now_us) as f64 / 1e6 / 60.0 / 60.0 / 24.0;
    Some(py_round(days + 0.5))
}

/// One row of the report: v75's fields (the date in the local zone, named
/// by the zone's name now) and the 2015 `previous`.
fn status_row(b: &Backup, zone: &LocalZone, now: &Moment<'_>) -> BackupStatus {
    let local = zone.now(date_us(b));
    BackupStatus {
        date: b.date.to_string(),
        date_str: format!("{} {}", iso_date_time(local.wall()), zone.name_at(now)),
        date_delta: reldate(&local, now, "the future?"),
        full: b.full,
        previous: b.previous.map(|p| p.to_string()),
        size: b.size,
        volumes: b.volumes,
        deleted_in: None,
    }
}

/// Mail-in-a-Box v75's `backup_status()` for the inventory of the target
/// `directory` of the box `layout`, whose backups are kept `min_age_days`
/// days, at the Unix time `now_us` in the local `zone`.
pub fn backup_status(
    inventory: &Inventory,
    layout: &Layout,
    directory: &str,
    min_age_days: u32,
    now_us: i64,
    zone: &LocalZone,
) -> StatusReport {
    let now = zone.now(now_us);
    let listed = inventory.chained();
    let mut rows: Vec<BackupStatus> = listed.iter().map(|b| status_row(b, zone, &now)).collect();

    let mut deleted_in = newest_chain_deleted_in(&listed, min_age_days, now_us)
        .map(|days| format!("approx. {days} days"));
    // An older chain goes once its newest increment is min_age_days old.
    let mut saw_full = false;
    for (row, b) in rows.iter_mut().zip(&listed) {
        if deleted_in.is_some() {
            row.deleted_in.clone_from(&deleted_in);
        }
        if b.full {
            saw_full = true;
            deleted_in = None;
        } else if saw_full && deleted_in.is_none() {
            let kept_until = Moment::utc_us(date_us(b) + i64::from(min_age_days) * DAY_US);
            deleted_in = Some(reldate(&now, &kept_until, "on next daily backup"));
            row.deleted_in.clone_from(&deleted_in);
        }
    }

    StatusReport {
        directory: directory.to_owned(),
        encpwfile: layout.key_file.to_string_lossy().into_owned(),
        tz: zone.name_at(&now).to_owned(),
        backups: rows,
        unmatched_file_size: inventory.unmatched_size(),
        unknown_files: inventory.unknown_files,
        unknown_size: inventory.unknown_size,
    }
}

/// How a monitoring system should take the state of the backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    Warning,
    Critical,
    /// It cannot tell: the target could not be asked.
    Unknown,
}

impl Health {
    /// The exit code of a Nagios/Icinga plugin.
    pub fn exit_code(self) -> u8 {
        match self {
            Health::Ok => 0,
            Health::Warning => 1,
            Health::Critical => 2,
            Health::Unknown => 3,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Health::Ok => "OK",
            Health::Warning => "WARNING",
            Health::Critical => "CRITICAL",
            Health::Unknown => "UNKNOWN",
        }
    }

    /// The health of backups on a target that could not be used. Critical
    /// when the server answered that the bucket or directory is not there:
    /// then neither is any backup. Unknown when there may be backups that
    /// could not be seen.
    pub fn of_unusable_target(cause: Cause) -> Health {
        match cause {
            Cause::NoSuchBucket | Cause::NoSuchPath => Health::Critical,
            Cause::BadCredentials
            | Cause::AccessDenied
            | Cause::NameNotResolved
            | Cause::Unreachable
            | Cause::NoNetwork
            | Cause::HostKeyChanged
            | Cause::TlsFailure
            | Cause::WrongRegion
            | Cause::NoUsableShell
            | Cause::Other => Health::Unknown,
        }
    }
}

/// What the last snapshot warned of, as one line of `status --check`.
pub fn snapshot_warning(warnings: &[String]) -> Option<String> {
    let first = warnings.first()?;
    let more = match warnings.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more: see the log of mailbackup-snapshot.service)"),
    };
    Some(format!("the last snapshot: {first}{more}"))
}

/// The one line of `status --check`, plugin style (`MAILBACKUP OK - …|perfdata`),
/// and its health: critical with no complete backup, when the newest is older
/// than `max_age_hours`, the last run failed or the key is missing; warning
/// with stray files in
/// the target or an interrupted newest set, and with each of `warnings`
/// (found elsewhere: an unconfirmed key, an unknown setting).
pub fn check_health(
    inventory: &Inventory,
    dir: &str,
    now_us: i64,
    max_age_hours: u32,
    last_run_failed: Option<&str>,
    key_missing: Option<&str>,
    warnings: &[String],
) -> (Health, String) {
    let mut problems: Vec<(Health, String)> = warnings
        .iter()
        .map(|w| (Health::Warning, w.clone()))
        .collect();
    if let Some(text) = key_missing {
        problems.push((Health::Critical, text.to_owned()));
    }
    let date_us = |b: &Backup| b.date.datetime().and_utc().timestamp_micros();
    // A backup dated in the future (a clock that was wrong once) says
    // nothing of how old the backups are: the age comes from the others.
    if let Some(b) = inventory.backups.iter().find(|b| date_us(b) > now_us) {
        problems.push((
            Health::Warning,
            format!(
                "the backup {} is dated {:.1} hours in the future: check the system clock (timedatectl)",
                b.date,
                (date_us(b) - now_us) as f64 / 3.6e9
            ),
        ));
    }
    let newest = inventory
        .backups
        .iter()
        .find(|b| b.complete && date_us(b) <= now_us);
    let age_hours = newest.map(|b| (now_us - date_us(b)) as f64 / 3.6e9);
    match age_hours {
        None => problems.push((Health::Critical, format!("no complete backup in {dir}"))),
        Some(age) if age > f64::from(max_age_hours) => problems.push((
            Health::Critical,
            format!("the newest backup is {age:.0} hours old, more than {max_age_hours}"),
        )),
        _ => {}
    }
    problems.extend(target_problems(inventory, dir, last_run_failed));
    health_line(inventory, problems, newest, age_hours, max_age_hours)
}

/// What the last run and the target's listing say is wrong.
fn target_problems(
    inventory: &Inventory,
    dir: &str,
    last_run_failed: Option<&str>,
) -> Vec<(Health, String)> {
    let mut problems = Vec::new();
    if let Some(why) = last_run_failed {
        problems.push((
            Health::Critical,
            format!("the last backup run failed: {why}"),
        ));
    }
    if let Some(b) = inventory.backups.first().filter(|b| !b.complete) {
        problems.push((
            Health::Warning,
            format!(
                "the newest backup set, {}, is incomplete: an interrupted run",
                b.date
            ),
        ));
    }
    if inventory.unknown_files > 0 {
        problems.push((
            Health::Warning,
            format!(
                "{} entries in {dir} that duplicity did not write",
                inventory.unknown_files
            ),
        ));
    }
    problems
}

/// The plugin line: the worst health, the problems (or the newest backup
/// when there are none) and the performance data.
fn health_line(
    inventory: &Inventory,
    mut problems: Vec<(Health, String)>,
    newest: Option<&Backup>,
    age_hours: Option<f64>,
    max_age_hours: u32,
) -> (Health, String) {
    let total: u64 = inventory.backups.iter().map(|b| b.size).sum();
    let perfdata = format!(
        "age_hours={:.1};;{max_age_hours} backups={} size={total}B",
        age_hours.unwrap_or(0.0),
        inventory.backups.len()
    );
    problems.sort_by_key(|p| std::cmp::Reverse(p.0));
    let health = problems.first().map_or(Health::Ok, |p| p.0);
    let text = match (&problems[..], newest, age_hours) {
        ([], Some(b), Some(age)) => format!(
            "newest backup {age:.1} hours ago ({}, {}); {} backup{}, {}",
            if b.full { "full" } else { "incremental" },
            human_size(b.size),
            inventory.backups.len(),
            if inventory.backups.len() == 1 {
                ""
            } else {
                "s"
            },
            human_size(total)
        ),
        _ => problems
            .iter()
            .map(|p| p.1.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    };
    (
        health,
        format!("MAILBACKUP {} - {text}|{perfdata}", health.label()),
    )
}

/// How long a box may go without a restore drill that passed.
pub const DRILL_MAX_AGE_DAYS: i64 = 45;

/// The restore drill's part of `status --check`: CRITICAL while the last
/// drill failed (until one passes), WARNING when none passed in
/// `DRILL_MAX_AGE_DAYS` days; a box without a drill yet has that long from
/// its oldest backup (`since_us`).
pub fn drill_check(
    last: Option<&Run>,
    summary: Option<&str>,
    since_us: Option<i64>,
    now_us: i64,
) -> Option<(Health, String)> {
    let limit_us = DRILL_MAX_AGE_DAYS * 86_400 * 1_000_000;
    if let Some(run) = last.filter(|r| r.exit_code != 0) {
        return Some((
            Health::Critical,
            format!(
                "the last restore drill failed (exit code {}): {}; see journalctl -u mailbackup-drill.service",
                run.exit_code,
                summary.unwrap_or("no summary")
            ),
        ));
    }
    let passed_us = last.and_then(|r| r.last_success).map(|t| t * 1_000_000);
    match passed_us.or(since_us) {
        Some(t) if now_us - t > limit_us => Some((
            Health::Warning,
            format!(
                "no restore drill has passed in {DRILL_MAX_AGE_DAYS} days: run mailbackup drill"
            ),
        )),
        _ => None,
    }
}

/// Adds the problems of further checks to the line of `check_health`: the
/// worst health decides, every problem is named.
pub fn add_problems(checked: (Health, String), extra: &[(Health, String)]) -> (Health, String) {
    let (health, line) = checked;
    let Some(worst) = extra.iter().map(|p| p.0).max() else {
        return (health, line);
    };
    let (head, perfdata) = line.split_once('|').unwrap_or((&line, ""));
    let text = head.split_once(" - ").map_or("", |(_, t)| t);
    let mut texts: Vec<&str> = extra.iter().map(|p| p.1.as_str()).collect();
    if health != Health::Ok {
        // The worse problems first.
        if worst > health {
            texts.push(text);
        } else {
            texts.insert(0, text);
        }
    }
    let new = health.max(worst);
    (
        new,
        format!(
            "MAILBACKUP {} - {}|{perfdata}",
            new.label(),
            texts.join("; ")
        ),
    )
}

/// The report as a table for an operator.
pub fn render_table(report: &StatusReport, local_time: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    if report.backups.is_empty() {
        let _ = writeln!(out, "No backups yet in {}.", report.directory);
    } else {
        let _ = writeln!(out, "Backups in {}, newest first:", report.directory);
        // glibc keeps UTC, and names it nothing, when TZ names no zone.
        let tz = if report.tz.is_empty() {
            "UTC"
        } else {
            &report.tz
        };
        let _ = writeln!(
            out,
            "{:<22} {:<20} {:<12} {:>10}  DELETED IN",
            format!("WHEN ({tz})"),
            "AGE",
            "TYPE",
            "SIZE",
        );
        for b in &report.backups {
            let _ = writeln!(
                out,
                "{:<22} {:<20} {:<12} {:>10}  {}",
                local_time(&b.date),
                b.date_delta,
                if b.full { "full" } else { "incremental" },
                human_size(b.size),
                b.deleted_in.as_deref().unwrap_or("-")
            );
        }
        let total: u64 = report.backups.iter().map(|b| b.size).sum();
        let _ = writeln!(
            out,
            "Total: {} backup{}, {}.",
            report.backups.len(),
            if report.backups.len() == 1 { "" } else { "s" },
            human_size(total)
        );
    }
    if report.unmatched_file_size > 0 {
        let _ = writeln!(
            out,
            "Not in any backup: {} of duplicity files (an interrupted backup, or an increment whose base is gone).",
            human_size(report.unmatched_file_size)
        );
    }
    if report.unknown_files > 0 {
        let _ = writeln!(
            out,
            "Skipped {} entr{} that duplicity did not write ({}).",
            report.unknown_files,
            if report.unknown_files == 1 {
                "y"
            } else {
                "ies"
            },
            human_size(report.unknown_size)
        );
    }
    out
}

/// Bytes in binary units, one decimal: `0 B`, `1.5 KiB`, `2.0 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duplicity::inventory::examples::{at, backup};
    use std::path::Path;

    #[test]
    fn deleted_in_as_the_reference_computes_it() {
        let inventory = Inventory {
            backups: vec![
                backup("20261124T010000Z", Some("20261123T010000Z"), 100),
                backup("20261123T010000Z", None, 1000),
                backup("20261122T010000Z", Some("20261121T010000Z"), 100),
                backup("20261121T010000Z", None, 1000),
            ],
            ..Default::default()
        };
        let zone = LocalZone::fixed(0, "UTC");
        let layout = Layout::new(Path::new("/home/user-data"));
        let dir = layout.encrypted_dir.to_string_lossy().into_owned();
        let r = backup_status(
            &inventory,
            &layout,
            &dir,
            3,
            at("2026-11-24 13:30:00"),
            &zone,
        );
        assert_eq!(r.tz, "UTC");
        assert_eq!(r.directory, "/home/user-data/backup/encrypted");
        assert_eq!(r.encpwfile, "/home/user-data/backup/secret_key.txt");
        let got: Vec<_> = r
            .backups
            .iter()
            .map(|b| {
                (
                    b.date_str.as_str(),
                    b.date_delta.as_str(),
                    b.deleted_in.as_deref(),
                )
            })
            .collect();
        // The next full backup in (500 - 100) / 100 = 4 days, on 11-28
        // 01:00: 3.48 days from now, + 0.5, rounded.
        assert_eq!(
            got,
            vec![
                (
                    "2026-11-24 01:00:00 UTC",
                    "12 hours, 30 minutes",
                    Some("approx. 4 days")
                ),
                (
                    "2026-11-23 01:00:00 UTC",
                    "1 day, 12 hours",
                    Some("approx. 4 days")
                ),
                (
                    "2026-11-22 01:00:00 UTC",
                    "2 days, 12 hours",
                    Some("11 hours, 30 minutes")
                ),
                (
                    "2026-11-21 01:00:00 UTC",
                    "3 days, 12 hours",
                    Some("11 hours, 30 minutes")
                ),
            ]
        );
    }

    fn newest_deleted_in(backups: &[Backup], min_age: u32, now: &str) -> Option<String> {
        let inventory = Inventory {
            backups: backups.to_vec(),
            ..Default::default()
        };
        let zone = LocalZone::fixed(0, "UTC");
        let layout = Layout::new(Path::new("/d"));
        let r = backup_status(&inventory, &layout, "/d", min_age, at(now), &zone);
        r.backups[0].deleted_in.clone()
    }

    #[test]
    fn the_age_of_the_full_backup_caps_the_estimate() {
        let full = backup("20261101T010000Z", None, 1000);
        let inc = backup("20261102T010000Z", Some("20261101T010000Z"), 1);
        // The size rule says 499 days; 3 * 10 + 1 days after the full one,
        // on 12-02 01:00, it is replaced.
        let got = newest_deleted_in(&[inc.clone(), full.clone()], 3, "2026-11-02 13:00:00");
        assert_eq!(got.as_deref(), Some("approx. 30 days"));
        // A size rule beyond the year 9999 (where Mail-in-a-Box crashes).
        let huge = Backup {
            size: 1 << 50,
            ..full
        };
        let got = newest_deleted_in(&[inc.clone(), huge], 3, "2026-11-02 13:00:00");
        assert_eq!(got.as_deref(), Some("approx. 30 days"));
    }

    #[test]
    fn the_estimate_can_be_past() {
        // The increments already pass half of the full backup, min_age 0:
        // due (500 - 2000) / 2000 = -0.75 days after the newest backup.
        let full = backup("20261101T010000Z", None, 1000);
        let inc = backup("20261102T010000Z", Some("20261101T010000Z"), 2000);
        let got = newest_deleted_in(&[inc.clone(), full.clone()], 0, "2026-11-04 01:00:00");
        assert_eq!(got.as_deref(), Some("approx. -2 days"));
        // Never before the newest backup is min_age_in_days old.
        let got = newest_deleted_in(&[inc, full], 2, "2026-11-04 01:00:00");
        assert_eq!(got.as_deref(), Some("approx. 0 days"));
    }

    #[test]
    fn empty_increments_cannot_predict() {
        let inventory = Inventory {
            backups: vec![
                backup("20261124T010000Z", Some("20261123T010000Z"), 0),
                backup("20261123T010000Z", None, 1000),
            ],
            ..Default::default()
        };
        let zone = LocalZone::fixed(0, "UTC");
        let r = backup_status(
            &inventory,
            &Layout::new(Path::new("/d")),
            "/d/backup/encrypted",
            3,
            at("2026-11-24 13:30:00"),
            &zone,
        );
        assert!(r.backups.iter().all(|b| b.deleted_in.is_none()));
        assert_eq!(r.backups[0].date_delta, "12 hours, 30 minutes");
    }

    #[test]
    fn table_for_people() {
        let zone = LocalZone::fixed(0, "UTC");
        let layout = Layout::new(Path::new("/d"));
        let empty = backup_status(
            &Inventory::default(),
            &layout,
            "/d/backup/encrypted",
            3,
            at("2026-11-24 13:30:00"),
            &zone,
        );
        assert_eq!(
            render_table(&empty, |d| d.to_owned()),
            "No backups yet in /d/backup/encrypted.\n"
        );
        let inventory = Inventory {
            backups: vec![backup("20261123T010000Z", None, 1536)],
            unknown_files: 1,
            unknown_size: 3,
            files: vec![],
        };
        let r = backup_status(
            &inventory,
            &layout,
            "/d/backup/encrypted",
            3,
            at("2026-11-24 13:30:00"),
            &zone,
        );
        let t = render_table(&r, |_| "2026-11-23 01:00".to_owned());
        assert!(t.contains("2026-11-23 01:00"), "{t}");
        assert!(t.contains("WHEN (UTC)"), "{t}");
        let nameless = StatusReport {
            tz: String::new(),
            ..r.clone()
        };
        assert!(render_table(&nameless, |d| d.to_owned()).contains("WHEN (UTC)"));
        assert!(t.contains("1 day, 12 hours"), "{t}");
        assert!(t.contains("full") && t.contains("1.5 KiB"), "{t}");
        assert!(t.contains("Total: 1 backup, 1.5 KiB."), "{t}");
        assert!(t.contains("Skipped 1 entry"), "{t}");
    }

    #[test]
    fn causes_map_to_plugin_exit_codes() {
        for (cause, health, code) in [
            (Cause::NoSuchBucket, Health::Critical, 2),
            (Cause::NoSuchPath, Health::Critical, 2),
            (Cause::BadCredentials, Health::Unknown, 3),
            (Cause::AccessDenied, Health::Unknown, 3),
            (Cause::NameNotResolved, Health::Unknown, 3),
            (Cause::Unreachable, Health::Unknown, 3),
            (Cause::NoNetwork, Health::Unknown, 3),
            (Cause::HostKeyChanged, Health::Unknown, 3),
            (Cause::TlsFailure, Health::Unknown, 3),
            (Cause::WrongRegion, Health::Unknown, 3),
            (Cause::NoUsableShell, Health::Unknown, 3),
            (Cause::Other, Health::Unknown, 3),
        ] {
            let got = Health::of_unusable_target(cause);
            assert_eq!((got, got.exit_code()), (health, code), "{cause:?}");
        }
        assert_eq!(Health::Unknown.label(), "UNKNOWN");
    }

    #[test]
    fn what_the_last_snapshot_warned_of_is_a_warning() {
        let now = at("2026-11-24 13:00:00");
        let inv = Inventory {
            backups: vec![backup("20261124T010000Z", None, 2048)],
            unknown_files: 0,
            unknown_size: 0,
            files: Vec::new(),
        };
        let warned = |w: &[String]| {
            let w: Vec<String> = snapshot_warning(w).into_iter().collect();
            check_health(&inv, "/d", now, 36, None, None, &w)
        };
        let one = ["the SQLite database /d/a.db is corrupt: copied as bytes".to_owned()];
        let (h, line) = warned(&one);
        assert_eq!((h, h.exit_code()), (Health::Warning, 1));
        assert!(
            line.starts_with("MAILBACKUP WARNING - the last snapshot: the SQLite database /d/a.db is corrupt: copied as bytes|"),
            "{line}"
        );
        let (_, line) = warned(&[one[0].clone(), "b".to_owned(), "c".to_owned()]);
        assert!(line.contains("(and 2 more: see the log"), "{line}");
        assert_eq!(warned(&[]).0, Health::Ok);
    }

    /// `status --check` at `now` of these backups, with `unknown` stray
    /// files, after a run that `failed` or not.
    fn check_at(
        now: i64,
        backups: Vec<Backup>,
        unknown: u64,
        failed: Option<&str>,
    ) -> (Health, String) {
        let inv = Inventory {
            backups,
            unknown_files: unknown,
            unknown_size: 0,
            files: vec![],
        };
        check_health(&inv, "/d", now, 36, failed, None, &[])
    }

    #[test]
    fn health_checks() {
        let now = at("2026-11-24 13:00:00");
        let check = |backups, unknown, failed| check_at(now, backups, unknown, failed);
        let young = backup("20261124T010000Z", None, 2048);
        let old = backup("20261122T010000Z", None, 2048);
        let (h, line) = check(vec![young.clone()], 0, None);
        assert_eq!(h, Health::Ok);
        assert!(
            line.starts_with(
                "MAILBACKUP OK - newest backup 12.0 hours ago (full, 2.0 KiB); 1 backup, 2.0 KiB|"
            ),
            "{line}"
        );
        assert!(
            line.ends_with("|age_hours=12.0;;36 backups=1 size=2048B"),
            "{line}"
        );
        let (h, line) = check(vec![], 0, None);
        assert_eq!((h, h.exit_code()), (Health::Critical, 2));
        assert!(line.contains("no complete backup"), "{line}");
        let (h, line) = check(vec![old.clone()], 0, None);
        assert_eq!(h, Health::Critical);
        assert!(line.contains("60 hours old, more than 36"), "{line}");
        let hook =
            "the before-backup hook failed: see journalctl -u mailbackup-before-backup.service";
        let (h, line) = check(vec![young.clone()], 0, Some(hook));
        assert_eq!(h, Health::Critical);
        assert!(
            line.contains(&format!("the last backup run failed: {hook}")),
            "{line}"
        );
        let inv = Inventory {
            backups: vec![young.clone()],
            unknown_files: 0,
            unknown_size: 0,
            files: vec![],
        };
        let (h, line) = check_health(
            &inv,
            "/d",
            now,
            36,
            None,
            Some("the key is missing"),
            &["the key is not confirmed".to_owned()],
        );
        assert_eq!(h, Health::Critical);
        assert!(
            line.starts_with("MAILBACKUP CRITICAL - the key is missing; the key is not confirmed|"),
            "{line}"
        );
        let (h, line) = check_health(&inv, "/d", now, 36, None, None, &["odd".to_owned()]);
        assert_eq!(h, Health::Warning);
        assert!(line.starts_with("MAILBACKUP WARNING - odd|"), "{line}");
    }

    #[test]
    fn health_checks_of_stray_interrupted_and_future_sets() {
        let now = at("2026-11-24 13:00:00");
        let check = |backups, unknown, failed| check_at(now, backups, unknown, failed);
        let young = backup("20261124T010000Z", None, 2048);
        let old = backup("20261122T010000Z", None, 2048);
        let (h, line) = check(vec![young.clone()], 2, None);
        assert_eq!((h, h.exit_code()), (Health::Warning, 1));
        assert!(
            line.contains("2 entries in /d that duplicity did not write"),
            "{line}"
        );
        let interrupted = Backup {
            complete: false,
            ..backup("20261124T020000Z", Some("20261124T010000Z"), 10)
        };
        let (h, line) = check(vec![interrupted, young], 0, None);
        assert_eq!(h, Health::Warning);
        assert!(line.contains("20261124T020000Z, is incomplete"), "{line}");
        // A backup dated in the future: a warning that names it; the age
        // comes from the newest backup that is not.
        let future = backup("20291124T010000Z", None, 2048);
        let (h, line) = check(vec![future.clone(), old.clone()], 0, None);
        assert_eq!(h, Health::Critical, "{line}");
        assert!(line.contains("60 hours old"), "{line}");
        assert!(
            line.contains("the backup 20291124T010000Z is dated 26292.0 hours in the future: check the system clock"),
            "{line}"
        );
        let (h, line) = check(
            vec![future, backup("20261124T010000Z", None, 2048)],
            0,
            None,
        );
        assert_eq!(h, Health::Warning, "{line}");
        assert!(line.contains("age_hours=12.0"), "{line}");
        // The worst problem decides; all are named.
        let (h, line) = check(vec![old], 1, None);
        assert_eq!(h, Health::Critical);
        assert!(
            line.contains("hours old") && line.contains("did not write"),
            "{line}"
        );
    }

    #[test]
    fn drill_checks() {
        let now = at("2026-12-01 00:00:00");
        let day = 86_400;
        let run = |exit_code, last_success: Option<i64>| Run {
            started: now / 1_000_000 - day,
            duration_seconds: 1.0,
            exit_code,
            last_success,
        };
        let recent = Some(now / 1_000_000 - day);
        assert_eq!(drill_check(Some(&run(0, recent)), None, None, now), None);
        let (h, text) =
            drill_check(Some(&run(1, recent)), Some("3 files differ"), None, now).unwrap();
        assert_eq!(h, Health::Critical);
        assert!(
            text.contains("drill failed (exit code 1): 3 files differ"),
            "{text}"
        );
        let old = Some(now / 1_000_000 - 46 * day);
        let (h, text) = drill_check(Some(&run(0, old)), None, None, now).unwrap();
        assert_eq!(h, Health::Warning);
        assert!(
            text.contains("no restore drill has passed in 45 days"),
            "{text}"
        );
        // Never drilled: 45 days from the oldest backup.
        assert_eq!(
            drill_check(None, None, Some(now - 44 * day * 1_000_000), now),
            None
        );
        assert_eq!(drill_check(None, None, None, now), None);
        let (h, _) = drill_check(None, None, Some(now - 46 * day * 1_000_000), now).unwrap();
        assert_eq!(h, Health::Warning);
    }

    #[test]
    fn further_problems_join_the_line() {
        let ok = (
            Health::Ok,
            "MAILBACKUP OK - newest backup 1.0 hours ago|age_hours=1.0".to_owned(),
        );
        assert_eq!(add_problems(ok.clone(), &[]), ok);
        let drill = (Health::Critical, "the last restore drill failed".to_owned());
        assert_eq!(
            add_problems(ok, std::slice::from_ref(&drill)),
            (
                Health::Critical,
                "MAILBACKUP CRITICAL - the last restore drill failed|age_hours=1.0".to_owned()
            )
        );
        let warn = (
            Health::Warning,
            "MAILBACKUP WARNING - stray files|x=1".to_owned(),
        );
        assert_eq!(
            add_problems(warn, &[drill]).1,
            "MAILBACKUP CRITICAL - the last restore drill failed; stray files|x=1"
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
