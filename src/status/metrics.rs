//! `mailbackup.prom`: the state of the backups for node_exporter's textfile
//! collector, rendered from the history and the target's inventory.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::Layout;
use crate::duplicity::inventory::Inventory;
use crate::status::history::{History, Operation};

/// Where Debian's prometheus-node-exporter reads `*.prom`.
pub const DEFAULT_METRICS_DIR: &str = "/var/lib/prometheus/node-exporter";

/// The file mailbackup writes there.
pub const METRICS_FILE: &str = "mailbackup.prom";

/// Overrides the directory that `install --metrics-dir` chose (the empty
/// value turns the metrics off).
pub const METRICS_DIR_VARIABLE: &str = "MAILBACKUP_METRICS_DIR";

/// What the metrics are made of.
pub struct MetricsInput<'a> {
    pub history: &'a History,
    /// None when the target could not be listed: its metrics are left out.
    pub inventory: Option<&'a Inventory>,
    /// Whether the key is confirmed as kept off the box.
    pub key_confirmed: bool,
}

struct Writer(String);

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }
}

/// The text of `mailbackup.prom`. Pure: the same input gives the same bytes.
/// A metric of an operation that never ran is left out (`absent()` in an
/// alert rule finds it).
pub fn render_metrics(input: &MetricsInput<'_>) -> String {
    let mut w = Writer(String::new());
    render_runs(&mut w, input.history);
    render_drill(&mut w, input.history);
    if let Some(inventory) = input.inventory {
        render_inventory(&mut w, inventory);
    }
    w.family(
        "mailbackup_key_custody_confirmed",
        "gauge",
        "1 when the current backup key is confirmed as kept off this box (mailbackup key confirm), else 0.",
    );
    w.sample(
        "mailbackup_key_custody_confirmed",
        "",
        u8::from(input.key_confirmed),
    );
    w.0
}

fn render_runs(w: &mut Writer, history: &History) {
    type Field = fn(&crate::status::history::Run) -> Option<String>;
    let families: [(&str, &str, Field); 5] = [
        (
            "mailbackup_last_attempt_timestamp_seconds",
            "When the operation last started.",
            |r| Some(r.started.to_string()),
        ),
        (
            "mailbackup_last_success_timestamp_seconds",
            "When the operation last ended successfully.",
            |r| r.last_success.map(|t| t.to_string()),
        ),
        (
            "mailbackup_last_exit_code",
            "The exit code of the operation's last run (0 is success).",
            |r| Some(r.exit_code.to_string()),
        ),
        (
            "mailbackup_last_success",
            "1 when the operation's last run succeeded, else 0.",
            |r| Some(u8::from(r.exit_code == 0).to_string()),
        ),
        (
            "mailbackup_last_duration_seconds",
            "How long the operation's last run took.",
            |r| Some(format!("{:.3}", r.duration_seconds)),
        ),
    ];
    for (name, help, field) in families {
        let samples: Vec<(Operation, String)> = Operation::ALL
            .iter()
            .filter_map(|&op| Some((op, field(history.run(op)?)?)))
            .collect();
        if samples.is_empty() {
            continue;
        }
        w.family(name, "gauge", help);
        for (op, value) in samples {
            w.sample(name, &format!("operation=\"{}\"", op.name()), value);
        }
    }
    if let Some(downtime) = history.mail_downtime_seconds {
        w.family(
            "mailbackup_last_mail_downtime_seconds",
            "gauge",
            "How long the mail services were stopped or frozen for the last backup.",
        );
        w.sample(
            "mailbackup_last_mail_downtime_seconds",
            "",
            format!("{downtime:.3}"),
        );
    }
}

fn render_drill(w: &mut Writer, history: &History) {
    let Some(f) = &history.drill_findings else {
        return;
    };
    w.family(
        "mailbackup_drill_read_bytes",
        "gauge",
        "What the last restore drill read from the target.",
    );
    w.sample("mailbackup_drill_read_bytes", "", f.bytes_read);
    w.family(
        "mailbackup_drill_compared_files",
        "gauge",
        "Files the last restore drill compared byte for byte with the live ones.",
    );
    w.sample("mailbackup_drill_compared_files", "", f.files_compared);
}

fn render_inventory(w: &mut Writer, inventory: &Inventory) {
    let complete = || inventory.backups.iter().filter(|b| b.complete);
    let of_type = |full: bool| complete().filter(move |b| b.full == full);
    w.family(
        "mailbackup_backups",
        "gauge",
        "Complete backups on the target.",
    );
    for (label, full) in [("full", true), ("incremental", false)] {
        w.sample(
            "mailbackup_backups",
            &format!("type=\"{label}\""),
            of_type(full).count(),
        );
    }
    w.family(
        "mailbackup_backups_size_bytes",
        "gauge",
        "The size of the complete backups on the target.",
    );
    for (label, full) in [("full", true), ("incremental", false)] {
        let size: u64 = of_type(full).map(|b| b.size).sum();
        w.sample(
            "mailbackup_backups_size_bytes",
            &format!("type=\"{label}\""),
            size,
        );
    }
    if let Some(newest) = complete().next() {
        w.family(
            "mailbackup_newest_backup_timestamp_seconds",
            "gauge",
            "When the newest complete backup on the target was made.",
        );
        w.sample(
            "mailbackup_newest_backup_timestamp_seconds",
            "",
            newest.date.datetime().and_utc().timestamp(),
        );
    }
}

/// Where `mailbackup.prom` goes: `MAILBACKUP_METRICS_DIR` when set (empty:
/// nowhere), else what `install --metrics-dir` chose (`installed`: `''` is
/// nowhere), else the default.
pub fn metrics_dir(installed: Option<&str>) -> Option<PathBuf> {
    let chosen = std::env::var(METRICS_DIR_VARIABLE).ok();
    chosen_metrics_dir(chosen.as_deref().or(installed))
}

/// The metrics directory chosen (`''` is none), or the default.
pub fn chosen_metrics_dir(chosen: Option<&str>) -> Option<PathBuf> {
    match chosen {
        None => Some(DEFAULT_METRICS_DIR.into()),
        Some("") => None,
        Some(dir) => Some(dir.into()),
    }
}

/// Whether the current key is confirmed as kept off the box: `mailbackup
/// key confirm` was given this very key (its fingerprint matches).
pub fn key_custody_confirmed(layout: &Layout) -> bool {
    matches!(
        crate::key::custody(layout),
        crate::key::Custody::Confirmed { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duplicity::backup_set::Stamp;
    use crate::duplicity::inventory::Backup;
    use crate::status::history::DrillFindings;

    fn backup(date: &str, full: bool, size: u64, complete: bool) -> Backup {
        Backup {
            date: Stamp::parse(date.as_bytes()).unwrap(),
            full,
            previous: (!full).then(|| Stamp::parse(b"20261201T030000Z").unwrap()),
            size,
            complete,
            volumes: 1,
        }
    }

    fn history() -> History {
        let mut h = History::default();
        h.record(Operation::Backup, 1_796_180_400, 61.25, 0);
        h.record(Operation::Backup, 1_796_266_800, 3.5, 31);
        h.record(Operation::Prune, 1_796_180_470, 2.0, 0);
        h.record(Operation::Drill, 1_796_200_000, 12.5, 0);
        h.mail_downtime_seconds = Some(1.75);
        h.drill_findings = Some(DrillFindings {
            mailbox: "mail/mailboxes/example.com/alice".into(),
            bytes_read: 123_456,
            files_compared: 40,
            files_changed_since: 2,
            summary: "ok".into(),
        });
        h
    }

    #[test]
    fn golden_metrics() {
        let inventory = Inventory {
            backups: vec![
                backup("20261203T030000Z", false, 700, false),
                backup("20261202T030000Z", false, 300, true),
                backup("20261201T030000Z", true, 5000, true),
            ],
            ..Default::default()
        };
        let text = render_metrics(&MetricsInput {
            history: &history(),
            inventory: Some(&inventory),
            key_confirmed: false,
        });
        let golden =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mailbackup.prom");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &text).unwrap();
        }
        assert_eq!(text, std::fs::read_to_string(&golden).unwrap());
    }

    #[test]
    fn every_family_has_help_and_type_and_prometheus_names() {
        let text = render_metrics(&MetricsInput {
            history: &history(),
            inventory: Some(&Inventory::default()),
            key_confirmed: true,
        });
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families.push(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(families.last().map(String::as_str), Some(name), "{line}");
            assert!(name.starts_with("mailbackup_"), "{name}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(text.contains("# HELP mailbackup_key_custody_confirmed "));
        assert!(text.ends_with("mailbackup_key_custody_confirmed 1\n"));
        // No backup yet: no newest time, zero counts.
        assert!(!text.contains("mailbackup_newest_backup_timestamp_seconds"));
        assert!(text.contains("mailbackup_backups{type=\"full\"} 0\n"));
    }

    #[test]
    fn nothing_recorded_yet_gives_only_the_key() {
        let text = render_metrics(&MetricsInput {
            history: &History::default(),
            inventory: None,
            key_confirmed: false,
        });
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 1);
    }
}
