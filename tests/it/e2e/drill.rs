//! In a booted systemd: the metrics as Debian's prometheus-node-exporter
//! serves them, and the restore drill's unit, passing and failing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::container::Container;
use crate::common::{describe, needs_root};

/// A sample's value in node_exporter's /metrics, as served.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

const FETCH: &str = "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9100/metrics').read().decode())\"";

fn scrape(c: &Container) -> String {
    c.ok(FETCH)
}

/// Debian 12's prometheus-node-exporter package, fetched once with the
/// host's apt (the host is Debian 12 too; the container has no network).
fn node_exporter_deb() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debs");
    std::fs::create_dir_all(&dir).unwrap();
    let find = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains("prometheus-node-exporter_"))
    };
    if find().is_none() {
        let out = Command::new("apt-get")
            .args(["download", "prometheus-node-exporter"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
    }
    find().unwrap()
}

const BACKUP_OK: &str = "mailbackup_last_success{operation=\"backup\"}";
const DRILL_OK: &str = "mailbackup_last_success{operation=\"drill\"}";

#[test]
fn node_exporter_serves_the_metrics_and_a_damaged_volume_fails_the_drill() {
    needs_root!();
    let c = Container::boot();
    c.prepare_box(2);
    std::fs::copy(node_exporter_deb(), c.share().join("node-exporter.deb")).unwrap();
    c.ok("dpkg -i /srv/host/node-exporter.deb >/dev/null");
    c.ok(&format!(
        "i=0; until {FETCH} >/dev/null 2>&1; do sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || exit 1; done"
    ));
    assert!(c.ok("ls /var/lib/prometheus/node-exporter").is_empty());
    let out = c.ok("mailbackup install");
    assert!(out.contains("mailbackup-drill.timer"), "{out}");
    let timers = c.ok("systemctl list-timers --no-pager --all");
    assert!(timers.contains("mailbackup-drill.timer"), "{timers}");

    // A backup: every metric of it, read by node_exporter without error.
    c.ok("systemctl start mailbackup.service");
    let m = scrape(&c);
    assert_eq!(sample(&m, "node_textfile_scrape_error"), Some(0.0), "{m}");
    assert_eq!(sample(&m, BACKUP_OK), Some(1.0), "{m}");
    assert_eq!(
        sample(&m, "mailbackup_last_exit_code{operation=\"backup\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "mailbackup_last_success{operation=\"prune\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&m, "mailbackup_backups{type=\"full\"}"), Some(1.0));
    assert_eq!(
        sample(&m, "mailbackup_backups{type=\"incremental\"}"),
        Some(0.0)
    );
    assert!(sample(&m, "mailbackup_backups_size_bytes{type=\"full\"}").unwrap() > 2e6);
    let downtime = sample(&m, "mailbackup_last_mail_downtime_seconds").unwrap();
    assert!(downtime > 0.0 && downtime < 30.0, "{downtime}");
    let newest = sample(&m, "mailbackup_newest_backup_timestamp_seconds").unwrap();
    let success = sample(
        &m,
        "mailbackup_last_success_timestamp_seconds{operation=\"backup\"}",
    )
    .unwrap();
    assert!(
        newest <= success && success - newest < 120.0,
        "{newest} {success}"
    );
    assert!(sample(&m, "mailbackup_last_duration_seconds{operation=\"backup\"}").is_some());
    assert_eq!(sample(&m, "mailbackup_key_custody_confirmed"), Some(0.0));
    assert!(sample(&m, DRILL_OK).is_none(), "no drill yet");

    // The drill's unit passes, with the mail up.
    let out = c.sh("systemctl start mailbackup-drill.service");
    assert!(
        out.status.success(),
        "{}",
        c.ok("journalctl -u mailbackup-drill.service --no-pager | tail -40")
    );
    c.mail_is_up();
    let m = scrape(&c);
    assert_eq!(sample(&m, DRILL_OK), Some(1.0), "{m}");
    assert!(sample(&m, "mailbackup_drill_read_bytes").unwrap() > 0.0);
    assert!(sample(&m, "mailbackup_drill_compared_files").unwrap() > 300.0);
    let journal = c.ok("journalctl -u mailbackup-drill.service -o cat --no-pager");
    assert!(
        journal.contains("the drill passed: restored mail/mailboxes/example.com/alice"),
        "{journal}"
    );

    // A backup that fails: the metrics say so, the last success stays.
    c.ok("mv /home/user-data/backup/encrypted /home/user-data/backup/moved && touch /home/user-data/backup/encrypted");
    assert!(!c.sh("systemctl start mailbackup.service").status.success());
    let m = scrape(&c);
    assert_eq!(sample(&m, "node_textfile_scrape_error"), Some(0.0), "{m}");
    assert_eq!(sample(&m, BACKUP_OK), Some(0.0), "{m}");
    assert_eq!(
        sample(&m, "mailbackup_last_exit_code{operation=\"backup\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "mailbackup_last_success_timestamp_seconds{operation=\"backup\"}"
        ),
        Some(success)
    );
    c.ok("rm /home/user-data/backup/encrypted && mv /home/user-data/backup/moved /home/user-data/backup/encrypted && systemctl reset-failed mailbackup.service && : > /var/mail/root");

    // A damaged volume: the drill's unit fails, mails, sets the metric,
    // and status --check is CRITICAL.
    c.ok("for v in /home/user-data/backup/encrypted/duplicity-full.*.difftar.gpg; do truncate -s $(( $(stat -c %s \"$v\") / 2 )) \"$v\"; done");
    let out = c.sh("systemctl start mailbackup-drill.service");
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(
        c.ok("systemctl is-failed mailbackup-drill.service").trim(),
        "failed"
    );
    let mail = c.ok("i=0; until grep -q 'mailbackup-drill.service failed' /var/mail/root 2>/dev/null; do sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || break; done; cat /var/mail/root");
    assert!(mail.contains("mailbackup-drill.service failed"), "{mail}");
    assert!(mail.contains("did not restore from the target"), "{mail}");
    let m = scrape(&c);
    assert_eq!(sample(&m, DRILL_OK), Some(0.0), "{m}");
    assert_eq!(
        sample(&m, "mailbackup_last_exit_code{operation=\"drill\"}"),
        Some(21.0)
    );
    let out = c.sh("mailbackup status --check");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(line.contains("the last restore drill failed"), "{line}");
}
