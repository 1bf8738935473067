//! Which backup a `--time` names, read the way duplicity reads it
//! (`dup_time.genstrtotime`), so that a command can say which backup it
//! restores, and name what it makes after it, before duplicity runs.

use chrono::{NaiveDate, NaiveDateTime};
use regex::Regex;

use crate::duplicity::inventory::Backup;

/// The Unix time that duplicity takes `text` for, at `now`, where the
/// local zone's standard (not summer) offset is `std_offset` seconds east
/// of UTC: `now`, seconds since 1970, a W3 date-time (`2026-12-02T03:00:00`,
/// with a zone or in standard local time), `YYYYMMDDTHHMMSSZ`, an age
/// (`3D`, `1h30m`: s m h D W M Y), or a day at midnight (`2026-12-02`,
/// `2026/12/2`, `12/2/2026`). Also a minute as `status` shows it. `None`
/// when it is none of these.
pub fn resolve_time(text: &str, now: i64, std_offset: i64) -> Option<i64> {
    let text = super::time_arg(text);
    if text == "now" {
        return Some(now);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    w3_time(&text, std_offset)
        .or_else(|| interval(&text).map(|secs| now - secs))
        .or_else(|| Some(day(&text)?.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - std_offset))
}

fn w3_time(text: &str, std_offset: i64) -> Option<i64> {
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ") {
        return (text.len() == 16).then(|| t.and_utc().timestamp());
    }
    let re =
        Regex::new(r"^(\d{4}-\d{1,2}-\d{1,2}T\d{1,2}:\d{1,2}:\d{1,2})(Z|[+-]\d\d:\d\d)?$").ok()?;
    let caps = re.captures(text)?;
    let wall = NaiveDateTime::parse_from_str(&caps[1], "%Y-%m-%dT%H:%M:%S").ok()?;
    let offset = match caps.get(2).map(|m| m.as_str()) {
        None => std_offset,
        Some("Z") => 0,
        Some(zone) => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let hours: i64 = zone[1..3].parse().ok()?;
            let minutes: i64 = zone[4..6].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    Some(wall.and_utc().timestamp() - offset)
}

fn interval(text: &str) -> Option<i64> {
    let re = Regex::new(r"^(?:\d+[smhDWMY])+$").ok()?;
    if text.len() < 2 || !re.is_match(text) {
        return None;
    }
    let part = Regex::new(r"(\d+)([smhDWMY])").ok()?;
    let total = part
        .captures_iter(text)
        .map(|c| {
            let n: i64 = c[1].parse().ok()?;
            let unit = match &c[2] {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "D" => 86_400,
                "W" => 7 * 86_400,
                "M" => 30 * 86_400,
                _ => 365 * 86_400,
            };
            n.checked_mul(unit)
        })
        .try_fold(0i64, |sum, secs| sum.checked_add(secs?));
    total
}

fn day(text: &str) -> Option<NaiveDate> {
    let ymd = Regex::new(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$").ok()?;
    let mdy = Regex::new(r"^(\d{1,2})[-/](\d{1,2})[-/](\d{4})$").ok()?;
    let compact = Regex::new(r"^(\d{4})(\d{2})(\d{2})Z$").ok()?;
    let num = |s: &str| s.parse::<u32>().ok();
    if let Some(c) = ymd.captures(text).or_else(|| compact.captures(text)) {
        return NaiveDate::from_ymd_opt(c[1].parse().ok()?, num(&c[2])?, num(&c[3])?);
    }
    let c = mdy.captures(text)?;
    NaiveDate::from_ymd_opt(c[3].parse().ok()?, num(&c[1])?, num(&c[2])?)
}

/// The backup a restore at `time` reads: the newest complete one made at
/// or before it. `backups` are newest first, as an inventory holds them.
pub fn backup_at(backups: &[Backup], time: i64) -> Option<&Backup> {
    backups
        .iter()
        .filter(|b| b.complete)
        .find(|b| b.date.datetime().and_utc().timestamp() <= time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duplicity::backup_set::Stamp;

    const NOW: i64 = 1_796_270_400; // 2026-12-03T04:00:00Z

    fn at(text: &str) -> Option<i64> {
        resolve_time(text, NOW, 3600)
    }

    #[test]
    fn times_read_as_duplicity_reads_them() {
        assert_eq!(at("now"), Some(NOW));
        assert_eq!(at("1796270000"), Some(1_796_270_000));
        assert_eq!(at("20261202T030000Z"), Some(NOW - 86_400 - 3600));
        assert_eq!(at("2026-12-02T03:00:00Z"), Some(NOW - 86_400 - 3600));
        assert_eq!(
            at("2026-12-02T03:00:00+02:00"),
            Some(NOW - 86_400 - 3 * 3600)
        );
        // No zone: the standard local offset, here +01:00.
        assert_eq!(at("2026-12-02T04:00:00"), Some(NOW - 86_400 - 3600));
        assert_eq!(at("2026-12-02 04:00"), Some(NOW - 86_400 - 3600 + 59));
        assert_eq!(at("3D"), Some(NOW - 3 * 86_400));
        assert_eq!(at("1h30m"), Some(NOW - 5400));
        let midnight = NOW - 86_400 - 4 * 3600 - 3600;
        assert_eq!(at("2026-12-02"), Some(midnight));
        assert_eq!(at("2026/12/2"), Some(midnight));
        assert_eq!(at("12/02/2026"), Some(midnight));
        for bad in ["yesterday", "D", "2026-13-01", "3X", ""] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_backup_at_a_time_is_the_newest_complete_one_before_it() {
        let backup = |stamp: &str, complete| Backup {
            date: Stamp::parse(stamp.as_bytes()).unwrap(),
            full: false,
            previous: None,
            size: 0,
            complete,
            volumes: 1,
        };
        let backups = [
            backup("20261203T030000Z", false),
            backup("20261202T030000Z", true),
            backup("20261201T030000Z", true),
        ];
        let t = |s: &str| at(s).unwrap();
        assert_eq!(
            backup_at(&backups, t("now")).unwrap().date.as_str(),
            "20261202T030000Z"
        );
        assert_eq!(
            backup_at(&backups, t("20261202T025959Z"))
                .unwrap()
                .date
                .as_str(),
            "20261201T030000Z"
        );
        assert!(backup_at(&backups, t("20261130T000000Z")).is_none());
    }
}
