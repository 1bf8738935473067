//! The restore drill and the metrics, with real duplicity against each kind
//! of target: a local directory, an ssh server (rsync://) and moto (S3).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::servers::{Moto, Sshd};
use crate::common::*;

/// The box's metrics directory, which MAILBACKUP_METRICS_DIR points to.
fn with_metrics(mailbox: MailBox) -> (MailBox, PathBuf) {
    let dir = mailbox.dir.path().join("node-exporter");
    fs::create_dir(&dir).unwrap();
    (mailbox.with_env("MAILBACKUP_METRICS_DIR", &dir), dir)
}

fn history(mailbox: &MailBox) -> serde_json::Value {
    serde_json::from_slice(&fs::read(mailbox.root.join("backup/history.json")).unwrap()).unwrap()
}

/// The value of one sample of `mailbackup.prom`.
fn metric(dir: &Path, sample: &str) -> Option<f64> {
    let text = fs::read_to_string(dir.join("mailbackup.prom")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// A store, a backup of it, and a second later (files written in the
/// second the backup started count as changed since).
fn backed_up(mailbox: &MailBox) {
    make_mail_store(&mailbox.root, 30);
    next_second();
    mailbox.ok(&["run"]);
}

fn drill_passes(mailbox: &MailBox, metrics: &Path) -> serde_json::Value {
    let out = mailbox.ok(&["drill"]);
    let err = stderr(&out);
    assert!(err.contains("the drill passed"), "{err}");
    let h = history(mailbox);
    let f = &h["drill_findings"];
    assert!(f["files_compared"].as_u64().unwrap() > 0, "{h}");
    assert!(f["bytes_read"].as_u64().unwrap() > 0, "{h}");
    assert_eq!(
        metric(metrics, "mailbackup_last_success{operation=\"drill\"}"),
        Some(1.0)
    );
    assert!(
        !mailbox.root.join("backup/drill").exists(),
        "the drill's files are removed"
    );
    h
}

#[test]
fn a_drill_restores_from_the_target_alone_in_turn_and_compares() {
    needs_root!();
    for flavor in flavors() {
        let (mailbox, metrics) = with_metrics(MailBox::new().with_flavor(&flavor));
        backed_up(&mailbox);
        // The cache proves nothing: the drill must do without it.
        fs::remove_dir_all(mailbox.root.join("backup/cache")).unwrap();
        let first = drill_passes(&mailbox, &metrics);
        assert!(
            !mailbox.root.join("backup/cache").exists(),
            "{}",
            flavor.name
        );
        let alice = "mail/mailboxes/example.com/alice";
        assert_eq!(first["drill_findings"]["mailbox"], alice);
        // A day of mail: what changed is counted, not compared.
        a_day_of_mail(&mailbox.root);
        let second = drill_passes(&mailbox, &metrics);
        assert_eq!(
            second["drill_findings"]["mailbox"],
            "mail/mailboxes/example.com/bob"
        );
        assert!(
            second["drill_findings"]["files_changed_since"]
                .as_u64()
                .unwrap()
                > 0
        );
        let third = drill_passes(&mailbox, &metrics);
        assert_eq!(
            third["drill_findings"]["mailbox"],
            "mail/mailboxes/example.com/zoë"
        );
        assert_eq!(
            drill_passes(&mailbox, &metrics)["drill_findings"]["mailbox"],
            alice
        );
        mailbox.confirm_key();
        let out = mailbox.run(&["status", "--check"]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    }
}

/// Truncates every volume of the newest full backup.
fn damage_volumes(target: &Path) {
    for e in fs::read_dir(target).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("duplicity-full.") && name.contains(".difftar.") {
            let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2).unwrap();
        }
    }
}

#[test]
fn a_damaged_volume_fails_the_drill_until_one_passes() {
    needs_root!();
    let flavor = &flavors()[0];
    let (mailbox, metrics) = with_metrics(MailBox::new().with_flavor(flavor));
    backed_up(&mailbox);
    damage_volumes(&mailbox.target());
    let out = mailbox.run(&["drill"]);
    // duplicity's "Invalid data - SHA1 hash mismatch".
    assert_eq!(out.status.code(), Some(21), "{}", describe(&out));
    assert!(
        stderr(&out).contains("did not restore from the target"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        metric(&metrics, "mailbackup_last_success{operation=\"drill\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics, "mailbackup_last_exit_code{operation=\"drill\"}"),
        Some(21.0)
    );
    let out = mailbox.run(&["status", "--check"]);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(
        line.starts_with("MAILBACKUP CRITICAL - the last restore drill failed"),
        "{line}"
    );

    // A new full backup, a drill that passes: the check is OK again.
    mailbox.ok(&["run", "--full"]);
    next_second();
    drill_passes(&mailbox, &metrics);
    mailbox.confirm_key();
    let out = mailbox.run(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn a_file_that_came_back_different_fails_the_drill() {
    needs_root!();
    let flavor = &flavors()[0];
    let (mailbox, metrics) = with_metrics(MailBox::new().with_flavor(flavor));
    backed_up(&mailbox);
    // Live data the backup should hold but does not: a message written
    // before the backup's time, as a broken backup would have missed it.
    let cur = mailbox.root.join("mail/mailboxes/example.com/alice/cur");
    let history = mailbox.root.join("backup/history.json");
    let mut h: serde_json::Value = serde_json::from_slice(&fs::read(&history).unwrap()).unwrap();
    fs::write(cur.join("1790000099.M1P1.box:2,S"), "Subject: lost\r\n\r\n").unwrap();
    next_second();
    let later = h["backed_up"]["run_started"].as_i64().unwrap() + 3600;
    h["backed_up"]["data_as_of"] = later.into();
    h["backed_up"]["run_ended"] = later.into();
    fs::write(&history, h.to_string()).unwrap();
    let out = mailbox.run(&["drill"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cur/1790000099.M1P1.box:2,S: not in the restored backup"),
        "{err}"
    );
    assert!(err.contains("the drill FAILED: 1 file(s) differ"), "{err}");
    assert_eq!(
        metric(&metrics, "mailbackup_last_success{operation=\"drill\"}"),
        Some(0.0)
    );
}

#[test]
fn metrics_after_a_backup_a_failure_and_a_prune() {
    needs_root!();
    let flavor = &flavors()[0];
    let (mailbox, metrics) = with_metrics(MailBox::new().with_flavor(flavor));
    backed_up(&mailbox);
    let prom = fs::read_to_string(metrics.join("mailbackup.prom")).unwrap();
    assert_eq!(
        metric(&metrics, "mailbackup_last_exit_code{operation=\"backup\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics, "mailbackup_backups{type=\"full\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "mailbackup_backups{type=\"incremental\"}"),
        Some(0.0)
    );
    let size: u64 = fs::read_dir(mailbox.target())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(
        metric(&metrics, "mailbackup_backups_size_bytes{type=\"full\"}"),
        Some(size as f64)
    );
    assert!(
        metric(&metrics, "mailbackup_newest_backup_timestamp_seconds").is_some(),
        "{prom}"
    );
    assert_eq!(
        metric(&metrics, "mailbackup_key_custody_confirmed"),
        Some(0.0)
    );
    let success = metric(
        &metrics,
        "mailbackup_last_success_timestamp_seconds{operation=\"backup\"}",
    )
    .unwrap();

    // A backup that fails: the key is gone.
    let key = fs::read(mailbox.key_file()).unwrap();
    fs::remove_file(mailbox.key_file()).unwrap();
    let out = mailbox.run(&["run"]);
    assert!(!out.status.success());
    fs::write(mailbox.key_file(), key).unwrap();
    let code = out.status.code().unwrap() as f64;
    assert_eq!(
        metric(&metrics, "mailbackup_last_exit_code{operation=\"backup\"}"),
        Some(code)
    );
    assert_eq!(
        metric(&metrics, "mailbackup_last_success{operation=\"backup\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "mailbackup_last_success_timestamp_seconds{operation=\"backup\"}"
        ),
        Some(success),
        "the last success stays"
    );
    let attempt = metric(
        &metrics,
        "mailbackup_last_attempt_timestamp_seconds{operation=\"backup\"}",
    )
    .unwrap();
    assert!(attempt >= success, "{attempt} {success}");

    // The key confirmed with `key confirm`: the next run's metrics say so.
    mailbox.confirm_key();
    mailbox.run(&["prune"]);
    assert!(metric(&metrics, "mailbackup_last_exit_code{operation=\"prune\"}").is_some());
    assert_eq!(
        metric(&metrics, "mailbackup_key_custody_confirmed"),
        Some(1.0)
    );
    // Written aside and renamed: nothing else is left in the directory.
    let names: Vec<_> = fs::read_dir(&metrics)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["mailbackup.prom"]);

    // Turned off: nothing written.
    fs::remove_file(metrics.join("mailbackup.prom")).unwrap();
    let out = mailbox
        .cmd(&["prune"])
        .env("MAILBACKUP_METRICS_DIR", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(fs::read_dir(&metrics).unwrap().count(), 0);
}

fn box_for_sshd(sshd: &Sshd, flavor: &Flavor) -> MailBox {
    let mailbox = MailBox::named("user-data")
        .with_flavor(flavor)
        .with_env("HOME", &sshd.home)
        .with_env("STATE_DIRECTORY", &sshd.state);
    mailbox.set_target(&format!("target: {}\n", sshd.target()));
    mailbox
}

#[test]
fn a_drill_passes_on_an_ssh_server() {
    needs_root!();
    for flavor in flavors() {
        // A server each: a new box has a new key.
        let sshd = Sshd::start();
        let (mailbox, metrics) = with_metrics(box_for_sshd(&sshd, &flavor));
        backed_up(&mailbox);
        let h = drill_passes(&mailbox, &metrics);
        let total = metric(&metrics, "mailbackup_backups_size_bytes{type=\"full\"}").unwrap();
        assert!(
            h["drill_findings"]["bytes_read"].as_f64().unwrap() <= 2.0 * total,
            "one volume here, read by both restores: {total} {h}"
        );
        fs::remove_dir_all(mailbox.root.join("backup/cache")).ok();
    }
}

#[test]
fn a_drill_passes_on_s3() {
    needs_root!();
    let moto = Moto::start();
    for (i, flavor) in flavors().iter().enumerate() {
        let bucket = format!("drill-{i}");
        moto.create_bucket(&bucket);
        let mut mailbox = MailBox::new().with_flavor(flavor);
        mailbox.secrets.push(moto.secret.clone());
        mailbox.set_target(&moto.custom_yaml(&format!("{bucket}/box")));
        let (mailbox, metrics) = with_metrics(mailbox);
        backed_up(&mailbox);
        let h = drill_passes(&mailbox, &metrics);
        let total = metric(&metrics, "mailbackup_backups_size_bytes{type=\"full\"}").unwrap();
        assert!(
            h["drill_findings"]["bytes_read"].as_f64().unwrap() <= 2.0 * total,
            "one volume here, read by both restores: {total} {h}"
        );
    }
}
