//! The status report of the reference's `backup_status()`, and the
//! full-versus-incremental rule that depends on it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::backend::Cause;
use crate::config::Layout;
use crate::duplicity::inventory::{Backup, Inventory};
use crate::status::history::Run;
use crate::status::pytime::{c_locale_date_time, py_round, reldate, LocalZone, Moment};

/// Backups are deleted when the newest increment of their chain is this old.
pub const KEEP_BACKUPS_FOR_DAYS: u32 = 3;

/// The reference's dict, key for key, plus the stray files it would have
/// crashed on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusReport {
    pub directory: String,
    pub encpwfile: String,
    pub tz: String,
    pub backups: Vec<BackupStatus>,
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
    pub deleted_in: Option<String>,
    /// Not in the reference: false for what an interrupted backup left.
    pub complete: bool,
}

/// The reference's `should_force_full()`: a full backup when there is none
/// yet, or when the increments since the newest full backup add up to more
/// than half of it. `backups` is newest first.
pub fn should_force_full(backups: &[Backup]) -> bool {
    let mut inc_size = 0u64;
    for b in backups {
        if b.full {
            return inc_size as f64 > 0.5 * b.size as f64;
        }
        inc_size += b.size;
    }
    true
}

/// The reference's `backup_status()` for the inventory of the target
/// `directory` of the box `layout`, whose backups are kept `keep_days`
/// days, at the Unix time `now_us` in the local `zone`.
pub fn backup_status(
    inventory: &Inventory,
    layout: &Layout,
    directory: &str,
    keep_days: u32,
    now_us: i64,
    zone: &LocalZone,
) -> StatusReport {
    let now = zone.now(now_us);
    let keep_days = i64::from(keep_days);
    let mut rows: Vec<BackupStatus> = inventory
        .backups
        .iter()
        .map(|b| {
            let date = b.date.datetime();
            BackupStatus {
                date: b.date.to_string(),
                date_str: c_locale_date_time(date),
                date_delta: reldate(&Moment::utc(date), &now, "the future?"),
                full: b.full,
                previous: b.previous.map(|p| p.to_string()),
                size: b.size,
                deleted_in: None,
                complete: b.complete,
            }
        })
        .collect();

    // The size of the newest full backup and of the increments since.
    let mut incremental_count = 0u64;
    let mut incremental_size = 0u64;
    let mut first_full_size = None;
    for b in &rows {
        if b.full {
            first_full_size = Some(b.size);
            break;
        }
        incremental_count += 1;
        incremental_size += b.size;
    }

    // Predict how many more increments there will be before the next full
    // backup, plus the days backups are kept. The reference divides by the
    // average increment and crashes when it is zero; then we cannot predict.
    let mut deleted_in = match first_full_size {
        Some(full) if incremental_count > 0 && incremental_size > 0 => {
            let average = incremental_size as f64 / incremental_count as f64;
            let days =
                keep_days as f64 + (0.5 * full as f64 - incremental_size as f64) / average + 0.5;
            Some(format!("approx. {} days", py_round(days)))
        }
        _ => None,
    };

    // Older chains are deleted when their newest increment is old enough.
    let mut saw_full = false;
    let days_ago = now.minus_days(keep_days);
    for (b, backup) in rows.iter_mut().zip(&inventory.backups) {
        if deleted_in.is_some() {
            b.deleted_in.clone_from(&deleted_in);
        }
        if b.full {
            saw_full = true;
            deleted_in = None;
        } else if saw_full && deleted_in.is_none() {
            let date = Moment::utc(backup.date.datetime());
            deleted_in = Some(reldate(&days_ago, &date, "on next daily backup"));
            b.deleted_in.clone_from(&deleted_in);
        }
    }

    StatusReport {
        directory: directory.to_owned(),
        encpwfile: layout.key_file.to_string_lossy().into_owned(),
        tz: zone.name_at(&now).to_owned(),
        backups: rows,
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

/// The one line of `status --check`, plugin style (`MAILBACKUP OK - …|perfdata`),
/// and its health: critical with no complete backup, when the newest is older
/// than `max_age_hours`, the last run failed or the key is missing; warning
/// with stray files in
/// the target or an interrupted newest set.
pub fn check_health(
    inventory: &Inventory,
    dir: &str,
    now_us: i64,
    max_age_hours: u32,
    last_run_failed: bool,
    key_missing: Option<&str>,
) -> (Health, String) {
    let mut problems: Vec<(Health, String)> = Vec::new();
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
    if last_run_failed {
        problems.push((
            Health::Critical,
            "the last backup run failed: see systemctl status mailbackup.service".to_owned(),
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
                match (b.full, b.complete) {
                    (true, true) => "full",
                    (false, true) => "incremental",
                    (true, false) => "full, partial",
                    (false, false) => "incr., partial",
                },
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
    use crate::duplicity::backup_set::Stamp;
    use std::path::Path;

    fn backup(date: &str, previous: Option<&str>, size: u64) -> Backup {
        Backup {
            date: Stamp::parse(date.as_bytes()).unwrap(),
            full: previous.is_none(),
            previous: previous.map(|p| Stamp::parse(p.as_bytes()).unwrap()),
            size,
            complete: true,
        }
    }

    #[test]
    fn full_when_there_is_no_full_backup() {
        assert!(should_force_full(&[]));
        assert!(should_force_full(&[backup(
            "20261121T010000Z",
            Some("20261120T010000Z"),
            5
        )]));
    }

    #[test]
    fn full_when_increments_pass_half_of_the_full() {
        let full = backup("20261120T010000Z", None, 1000);
        let inc = |d, s| backup(d, Some("20261120T010000Z"), s);
        assert!(!should_force_full(std::slice::from_ref(&full)));
        assert!(!should_force_full(&[
            inc("20261122T010000Z", 250),
            inc("20261121T010000Z", 250),
            full.clone()
        ]));
        assert!(should_force_full(&[
            inc("20261122T010000Z", 251),
            inc("20261121T010000Z", 250),
            full.clone()
        ]));
        // Only the increments since the newest full backup count.
        let older = backup("20261101T010000Z", None, 10);
        assert!(!should_force_full(&[
            full,
            inc("20261102T010000Z", 9999),
            older
        ]));
    }

    fn at(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

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
        // 3 + (500 - 100) / 100 + 0.5 = 7.5, rounded to even.
        assert_eq!(
            got,
            vec![
                (
                    "11/24/26 01:00:00",
                    "12 hours, 30 minutes",
                    Some("approx. 8 days")
                ),
                (
                    "11/23/26 01:00:00",
                    "1 day, 12 hours",
                    Some("approx. 8 days")
                ),
                (
                    "11/22/26 01:00:00",
                    "2 days, 12 hours",
                    Some("11 hours, 30 minutes")
                ),
                (
                    "11/21/26 01:00:00",
                    "3 days, 12 hours",
                    Some("11 hours, 30 minutes")
                ),
            ]
        );
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
    fn health_checks() {
        let now = at("2026-11-24 13:00:00");
        let check = |backups: Vec<Backup>, unknown, failed| {
            let inv = Inventory {
                backups,
                unknown_files: unknown,
                unknown_size: 0,
                files: vec![],
            };
            check_health(&inv, "/d", now, 36, failed, None)
        };
        let young = backup("20261124T010000Z", None, 2048);
        let old = backup("20261122T010000Z", None, 2048);
        let (h, line) = check(vec![young.clone()], 0, false);
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
        let (h, line) = check(vec![], 0, false);
        assert_eq!((h, h.exit_code()), (Health::Critical, 2));
        assert!(line.contains("no complete backup"), "{line}");
        let (h, line) = check(vec![old.clone()], 0, false);
        assert_eq!(h, Health::Critical);
        assert!(line.contains("60 hours old, more than 36"), "{line}");
        let (h, line) = check(vec![young.clone()], 0, true);
        assert_eq!(h, Health::Critical);
        assert!(line.contains("last backup run failed"), "{line}");
        let inv = Inventory {
            backups: vec![young.clone()],
            unknown_files: 0,
            unknown_size: 0,
            files: vec![],
        };
        let (h, line) = check_health(&inv, "/d", now, 36, false, Some("the key is missing"));
        assert_eq!(h, Health::Critical);
        assert!(
            line.starts_with("MAILBACKUP CRITICAL - the key is missing|"),
            "{line}"
        );
        let (h, line) = check(vec![young.clone()], 2, false);
        assert_eq!((h, h.exit_code()), (Health::Warning, 1));
        assert!(
            line.contains("2 entries in /d that duplicity did not write"),
            "{line}"
        );
        let interrupted = Backup {
            complete: false,
            ..backup("20261124T020000Z", Some("20261124T010000Z"), 10)
        };
        let (h, line) = check(vec![interrupted, young], 0, false);
        assert_eq!(h, Health::Warning);
        assert!(line.contains("20261124T020000Z, is incomplete"), "{line}");
        // A backup dated in the future: a warning that names it; the age
        // comes from the newest backup that is not.
        let future = backup("20291124T010000Z", None, 2048);
        let (h, line) = check(vec![future.clone(), old.clone()], 0, false);
        assert_eq!(h, Health::Critical, "{line}");
        assert!(line.contains("60 hours old"), "{line}");
        assert!(
            line.contains("the backup 20291124T010000Z is dated 26292.0 hours in the future: check the system clock"),
            "{line}"
        );
        let (h, line) = check(
            vec![future, backup("20261124T010000Z", None, 2048)],
            0,
            false,
        );
        assert_eq!(h, Health::Warning, "{line}");
        assert!(line.contains("age_hours=12.0"), "{line}");
        // The worst problem decides; all are named.
        let (h, line) = check(vec![old], 1, false);
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
