//! `mailbackup status --json` against the 2015 reference program: the keys
//! that Mail-in-a-Box v75 dropped and mailbackup keeps (directory, encpwfile,
//! tz, previous) and the backups themselves, on generated targets, in several
//! time zones and at moments near daylight saving changes. The keys v75 kept
//! follow v75 (tests/v75.rs).

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::oracle::*;
use crate::common::*;
use serde_json::Value;

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kathmandu",
    "America/St_Johns",
];

/// Local wall-clock times for faketime (frozen), some on DST change days.
const NOWS: [&str; 5] = [
    "2026-03-29 12:00:00",
    "2026-11-01 23:30:00",
    "2026-10-04 12:00:00",
    "2026-01-31 23:59:00",
    "2026-07-15 04:07:00",
];

/// Chains of backups ending around `now`: fulls with increments at random
/// intervals, files of random sizes, sometimes a backup in the future.
fn generate_target(dir: &Path, now: i64, rng: &mut Rng) {
    fs::create_dir_all(dir).unwrap();
    let chains = 1 + rng.below(4);
    let span = [8, 30, 200][rng.below(3) as usize];
    let mut t = now - 86_400 - rng.below(86_400 * span) as i64;
    for _ in 0..chains {
        let full = t;
        let files = [
            format!("duplicity-full.{}.vol1.difftar.gpg", stamp(full)),
            format!("duplicity-full.{}.manifest.gpg", stamp(full)),
            format!("duplicity-full-signatures.{}.sigtar.gpg", stamp(full)),
        ];
        let full_size = 1000 + rng.below(50_000_000);
        for f in &files {
            sized(&dir.join(f), 1 + full_size / 3);
        }
        let mut prev = full;
        for _ in 0..rng.below(9) {
            t += 600 + rng.below(2 * 86_400) as i64;
            for f in [
                format!(
                    "duplicity-inc.{}.to.{}.vol1.difftar.gpg",
                    stamp(prev),
                    stamp(t)
                ),
                format!("duplicity-inc.{}.to.{}.manifest.gpg", stamp(prev), stamp(t)),
                format!(
                    "duplicity-new-signatures.{}.to.{}.sigtar.gpg",
                    stamp(prev),
                    stamp(t)
                ),
            ] {
                sized(&dir.join(f), 1 + rng.below(full_size / 2));
            }
            prev = t;
        }
        t += 600 + rng.below(3 * 86_400) as i64;
    }
    if rng.below(4) == 0 {
        let future = now + 3600 + rng.below(86_400) as i64;
        sized(
            &dir.join(format!("duplicity-full.{}.manifest.gpg", stamp(future))),
            5,
        );
    }
}

/// The keys of the 2015 dict that v75 did not change.
fn kept_2015_keys(v: &Value) -> Value {
    let backups: Vec<Value> = v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            serde_json::json!({
                "date": b["date"], "full": b["full"], "previous": b["previous"], "size": b["size"],
            })
        })
        .collect();
    serde_json::json!({
        "directory": v["directory"], "encpwfile": v["encpwfile"], "tz": v["tz"], "backups": backups,
    })
}

#[test]
fn status_json_equals_the_reference() {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/status.py");
    let mut rng = Rng(0x5eed_1234_abcd);
    let mut compared = 0;
    for zone in ZONES {
        for now in NOWS.iter().chain(NOWS.iter()) {
            let mailbox = MailBox::new();
            generate_target(&mailbox.target(), epoch(zone, now), &mut rng);
            let want = kept_2015_keys(&json_of(faked(
                zone,
                now,
                false,
                Path::new("/usr/bin/python3"),
                &[reference.as_os_str(), mailbox.root.as_os_str()],
            )));
            let mut got = json_of(faked(
                zone,
                now,
                false,
                Path::new(BIN),
                &[
                    "--config".as_ref(),
                    mailbox.conf.as_os_str(),
                    "status".as_ref(),
                    "--json".as_ref(),
                ],
            ));
            let extra = got.as_object_mut().unwrap();
            assert_eq!(extra.remove("unknown_files"), Some(Value::from(0)));
            assert_eq!(extra.remove("unknown_size"), Some(Value::from(0)));
            assert_eq!(extra.remove("unmatched_file_size"), Some(Value::from(0)));
            let got = kept_2015_keys(&got);
            assert_eq!(got, want, "TZ={zone} now={now}");
            compared += want["backups"].as_array().unwrap().len();
        }
    }
    assert!(compared > 100, "only {compared} backups compared");
}

#[test]
fn status_counts_what_it_does_not_know_where_the_reference_crashes() {
    let mailbox = MailBox::new();
    generate_target(
        &mailbox.target(),
        epoch("UTC", "2026-11-21 12:00:00"),
        &mut Rng(7),
    );
    let known = mailbox.status()["backups"].as_array().unwrap().len();
    fs::write(mailbox.target().join("notes.txt"), "12345").unwrap();
    fs::create_dir(mailbox.target().join("old")).unwrap();
    fs::write(
        mailbox.target().join("df.20150101T000000Z.manifest.gpg"),
        "1",
    )
    .unwrap();
    let status = mailbox.status();
    assert_eq!(status["backups"].as_array().unwrap().len(), known);
    assert_eq!(status["unknown_files"], 3);
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/status.py");
    let out = Command::new("/usr/bin/python3")
        .arg(reference)
        .arg(&mailbox.root)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the reference accepts stray files now?"
    );
}

#[test]
fn increments_of_size_zero_predict_nothing() {
    let mailbox = MailBox::new();
    let t = mailbox.target();
    fs::create_dir_all(&t).unwrap();
    sized(
        &t.join("duplicity-full.20261120T010000Z.manifest.gpg"),
        1000,
    );
    sized(
        &t.join("duplicity-inc.20261120T010000Z.to.20261121T010000Z.manifest.gpg"),
        0,
    );
    // A set without its manifest is what an interrupted backup left: not a
    // backup, its files counted apart.
    sized(
        &t.join("duplicity-inc.20261121T010000Z.to.20261122T010000Z.vol1.difftar.gpg"),
        77,
    );
    let status = mailbox.status();
    assert_eq!(status["backups"].as_array().unwrap().len(), 2);
    assert_eq!(status["backups"][0]["deleted_in"], Value::Null);
    assert_eq!(status["backups"][1]["deleted_in"], Value::Null);
    assert_eq!(status["unmatched_file_size"], 77);
}

#[test]
fn ages_over_a_year_count_years() {
    let mailbox = MailBox::new();
    let t = mailbox.target();
    fs::create_dir_all(&t).unwrap();
    sized(&t.join("duplicity-full.20241120T010000Z.manifest.gpg"), 10);
    let out = clean_command("faketime", &mailbox.path_var)
        .env("TZ", "UTC")
        .args(["2026-01-25 01:00:00", BIN, "--config"])
        .arg(&mailbox.conf)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["backups"][0]["date_delta"], "1 year, 2 months");
}
