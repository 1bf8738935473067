//! Mail-in-a-Box v75's `backup_status()` and `should_force_full()` as the
//! oracle (tests/reference/v75): `status --json` against it on generated
//! targets and on chains real duplicity wrote, the full-or-incremental choice
//! against it day by day, and `prune` with `min_age_in_days: 0`.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::oracle::*;
use crate::common::*;
use serde_json::{Map, Value};

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kathmandu",
];

/// Local wall-clock times (frozen by faketime), some on DST change days,
/// weekdays and weekends.
const NOWS: [&str; 5] = [
    "2026-03-29 12:00:00",
    "2026-11-01 23:30:00",
    "2026-10-04 12:00:00",
    "2026-01-31 23:59:00",
    "2026-07-15 04:07:00",
];

fn reference(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference/v75")
        .join(name)
}

/// The files of one set: `volumes` volumes, a manifest unless interrupted,
/// signatures; `base` for an increment.
fn write_set(dir: &Path, base: Option<i64>, t: i64, volumes: u64, manifest: bool, size: u64) {
    let (set, sigs) = match base {
        None => (
            format!("duplicity-full.{}", stamp(t)),
            format!("duplicity-full-signatures.{}.sigtar.gpg", stamp(t)),
        ),
        Some(b) => (
            format!("duplicity-inc.{}.to.{}", stamp(b), stamp(t)),
            format!(
                "duplicity-new-signatures.{}.to.{}.sigtar.gpg",
                stamp(b),
                stamp(t)
            ),
        ),
    };
    for v in 1..=volumes {
        sized(
            &dir.join(format!("{set}.vol{v}.difftar.gpg")),
            size / volumes + v,
        );
    }
    if manifest {
        sized(&dir.join(format!("{set}.manifest.gpg")), 1 + size / 100);
    }
    sized(&dir.join(sigs), 1 + size / 10);
}

/// Chains of backups ending around `now`: fulls with increments at random
/// intervals and sizes, several volumes, sometimes an interrupted set, an
/// increment whose base is gone, a stray signature file, or a set in the
/// future.
fn generate_target(dir: &Path, now: i64, rng: &mut Rng) {
    fs::create_dir_all(dir).unwrap();
    let span = [8, 30, 200, 500][rng.below(4) as usize];
    let mut t = now - 86_400 - rng.below(86_400 * span) as i64;
    for _ in 0..1 + rng.below(4) {
        let full_size = 1000 + rng.below(50_000_000);
        write_set(dir, None, t, 1 + rng.below(3), true, full_size);
        let mut prev = t;
        for _ in 0..rng.below(9) {
            t += 600 + rng.below(2 * 86_400) as i64;
            let interrupted = rng.below(12) == 0;
            let size = full_size / 200 + rng.below(full_size / 2);
            write_set(dir, Some(prev), t, 1 + rng.below(2), !interrupted, size);
            prev = t;
        }
        t += 600 + rng.below(3 * 86_400) as i64;
    }
    if rng.below(5) == 0 {
        // An increment on a set that is not there.
        write_set(dir, Some(t - 86_400), t, 1, true, 5000);
    }
    if rng.below(5) == 0 {
        let stray = format!("duplicity-full-signatures.{}.sigtar.gpg", stamp(t + 7));
        sized(&dir.join(stray), 777);
    }
    if rng.below(5) == 0 {
        write_set(
            dir,
            None,
            now + 3600 + rng.below(86_400) as i64,
            1,
            true,
            50,
        );
    }
}

/// v75's `backup_status()` under faketime; sets from duplicity, or from
/// the file names (`listed`) on generated targets.
fn oracle(mailbox: &MailBox, zone: &str, now: &str, listed: bool) -> Value {
    let mut args = vec![
        reference("status.py").into_os_string(),
        mailbox.root.clone().into_os_string(),
    ];
    if listed {
        args.push("--listed-sets".into());
    }
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    json_of(faked(zone, now, true, Path::new("/usr/bin/python3"), &args))
}

fn ours(mailbox: &MailBox, zone: &str, now: &str) -> Value {
    let args = [
        "--config".as_ref(),
        mailbox.conf.as_os_str(),
        "status".as_ref(),
        "--json".as_ref(),
    ];
    json_of(faked(zone, now, true, Path::new(BIN), &args))
}

/// Our JSON cut down to v75's keys, a `deleted_in` of null left out as
/// v75 leaves it out.
fn v75_view(ours: &Value) -> Value {
    let keys = [
        "date",
        "date_str",
        "date_delta",
        "full",
        "size",
        "volumes",
        "deleted_in",
    ];
    let backups: Vec<Value> = ours["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let row: Map<String, Value> = keys
                .iter()
                .filter(|k| !b[**k].is_null())
                .map(|k| (k.to_string(), b[*k].clone()))
                .collect();
            Value::Object(row)
        })
        .collect();
    serde_json::json!({
        "backups": backups,
        "unmatched_file_size": ours["unmatched_file_size"],
    })
}

#[test]
fn status_json_equals_v75_on_generated_targets() {
    needs_root!();
    let mut rng = Rng(0x7575_1234_abcd);
    let (mut compared, mut unmatched, mut past) = (0, 0, 0);
    for zone in ZONES {
        for now in NOWS.iter().chain(NOWS.iter()) {
            let mailbox = MailBox::new();
            let min_age = [0, 1, 3, 7, 30][rng.below(5) as usize];
            mailbox.set_target(&format!("target: local\nmin_age_in_days: {min_age}\n"));
            generate_target(&mailbox.target(), epoch(zone, now), &mut rng);
            let want = oracle(&mailbox, zone, now, true);
            let got = ours(&mailbox, zone, now);
            assert_eq!(
                v75_view(&got),
                want,
                "TZ={zone} now={now} min_age={min_age}"
            );
            compared += want["backups"].as_array().unwrap().len();
            unmatched += usize::from(want["unmatched_file_size"] != 0);
            past += usize::from(want.to_string().contains("approx. -"));
        }
    }
    assert!(compared > 100, "only {compared} backups compared");
    assert!(
        unmatched > 5 && past > 3,
        "{unmatched} with unmatched files, {past} estimates past"
    );
}

/// Backs up once under faketime at `day` (local, clock running).
fn run_at(mailbox: &MailBox, zone: &str, day: &str) -> String {
    let args = [
        "--config".as_ref(),
        mailbox.conf.as_os_str(),
        "run".as_ref(),
    ];
    let out = faked(zone, day, false, Path::new(BIN), &args)
        .output()
        .unwrap();
    assert!(out.status.success(), "run at {day}: {}", describe(&out));
    stderr(&out)
}

/// v75's `should_force_full()` at `day`, sets from real duplicity.
fn v75_would_force_full(mailbox: &MailBox, zone: &str, day: &str) -> bool {
    let args = [
        reference("should_force_full.py").into_os_string(),
        mailbox.root.clone().into_os_string(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    json_of(faked(zone, day, true, Path::new("/usr/bin/python3"), &args)) == Value::Bool(true)
}

/// A mailbox with some mail, its target directory made (v75 lists it).
fn mailbox_with_mail(custom_yaml: &str) -> MailBox {
    let mailbox = MailBox::new();
    mailbox.set_target(custom_yaml);
    make_mail_store(&mailbox.root, 300);
    fs::create_dir_all(mailbox.target()).unwrap();
    mailbox
}

/// The days of the week from Wednesday 2026-11-18 on, at times that move
/// (so no run sits on a boundary of the age rule).
fn days(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "2026-11-{} {:02}:{:02}:00",
                18 + i,
                3 + i / 2,
                (i * 37) % 60
            )
        })
        .collect()
}

#[test]
fn the_choice_of_full_follows_v75_day_by_day_with_real_duplicity() {
    needs_root!();
    let zone = "Europe/Berlin";
    let mailbox = mailbox_with_mail("target: local\nmin_age_in_days: 3\n");
    // Wed first (full), Thu, Fri big increment, Sat (size rule: full),
    // Sun, Mon big increment, Tue (weekday: incremental all the same).
    let big = [2, 5];
    let mut kinds = Vec::new();
    for (i, day) in days(7).iter().enumerate() {
        if big.contains(&i) {
            random_file(&mailbox.root.join(format!("mail/big{i}")), 400_000);
        } else {
            a_day_of_mail(&mailbox.root);
        }
        let want_full = i == 0 || v75_would_force_full(&mailbox, zone, day);
        let log = run_at(&mailbox, zone, day);
        let newest_full = mailbox.status()["backups"][0]["full"].as_bool().unwrap();
        assert_eq!(newest_full, want_full, "{day}: {log}");
        kinds.push(if newest_full { "full" } else { "inc" });
    }
    assert_eq!(kinds, ["full", "inc", "inc", "full", "inc", "inc", "inc"]);
}

#[test]
fn status_json_equals_v75_on_real_chains() {
    needs_root!();
    let zone = "America/New_York";
    let mailbox = mailbox_with_mail("target: local\nmin_age_in_days: 0\n");
    // min_age 0: a full backup older than a day is replaced on Saturday and
    // on Sunday.
    for day in days(5) {
        a_day_of_mail(&mailbox.root);
        run_at(&mailbox, zone, &day);
    }
    assert_eq!(mailbox.kinds(), ["full", "full", "inc", "inc", "full"]);
    // An interrupted increment: its manifest never written.
    a_day_of_mail(&mailbox.root);
    run_at(&mailbox, zone, "2026-11-23 08:00:00");
    for dir in [mailbox.target(), mailbox.root.join("backup/cache")] {
        for entry in walk_files(&dir) {
            if entry.to_string_lossy().contains("20261123T130")
                && entry.to_string_lossy().contains("manifest")
            {
                fs::remove_file(&entry).unwrap();
            }
        }
    }
    let mut compared = 0;
    for zone in ZONES {
        for now in [
            "2026-11-23 12:00:00",
            "2026-11-25 01:00:00",
            "2027-03-01 12:00:00",
        ] {
            let want = oracle(&mailbox, zone, now, false);
            assert_eq!(
                v75_view(&ours(&mailbox, zone, now)),
                want,
                "TZ={zone} now={now}"
            );
            assert_ne!(want["unmatched_file_size"], 0);
            compared += want["backups"].as_array().unwrap().len();
        }
    }
    assert_eq!(compared, 5 * 3 * 5);
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// duplicity's own arguments on a copy of the box's target and cache.
fn duplicity(
    mailbox: &MailBox,
    target: &Path,
    cache: &Path,
    args: &[&str],
) -> std::process::Output {
    let mut c = clean_command("/usr/bin/duplicity", &SYSTEM_PATH.into());
    c.env("PASSPHRASE", mailbox.passphrase())
        .env("HOME", mailbox.dir.path())
        .args(args)
        .arg("--archive-dir")
        .arg(cache)
        .arg(format!("file://{}", target.display()));
    c.output().unwrap()
}

#[test]
fn prune_with_min_age_0_keeps_the_chain_in_use() {
    needs_root!();
    let zone = "UTC";
    let mailbox = mailbox_with_mail("target: local\nmin_age_in_days: 0\n");
    // Wed full, Thu inc, then a new chain: --full on Friday.
    run_at(&mailbox, zone, "2026-11-18 03:00:00");
    a_day_of_mail(&mailbox.root);
    run_at(&mailbox, zone, "2026-11-19 03:00:00");
    let args = [
        "--config".as_ref(),
        mailbox.conf.as_os_str(),
        "run".as_ref(),
        "--full".as_ref(),
    ];
    let out = faked(zone, "2026-11-20 03:00:00", false, Path::new(BIN), &args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    a_day_of_mail(&mailbox.root);
    run_at(&mailbox, zone, "2026-11-20 05:00:00");
    assert_eq!(mailbox.kinds(), ["inc", "full", "inc", "full"]);

    // What plain duplicity 0.8.22 does with 0 days, on a copy: the old chain
    // goes, and with it the signature files of the chain in use.
    let copy = tempfile::tempdir().unwrap();
    let (target, cache) = (copy.path().join("encrypted"), copy.path().join("cache"));
    let cp = |from: &Path, to: &Path| {
        assert!(Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
            .success())
    };
    cp(&mailbox.target(), &target);
    cp(&mailbox.root.join("backup/cache"), &cache);
    let out = duplicity(
        &mailbox,
        &target,
        &cache,
        &["remove-older-than", "0D", "--force"],
    );
    assert!(out.status.success(), "{}", describe(&out));

    // mailbackup prune with 0 days: the old chain goes, the new one stays
    // whole and usable.
    let args = [
        "--config".as_ref(),
        mailbox.conf.as_os_str(),
        "prune".as_ref(),
    ];
    let out = faked(zone, "2026-11-20 09:00:00", false, Path::new(BIN), &args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(mailbox.kinds(), ["inc", "full"]);
    let sigs = fs::read_dir(mailbox.target())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("signatures")
        })
        .count();
    assert_eq!(sigs, 2);
    a_day_of_mail(&mailbox.root);
    run_at(&mailbox, zone, "2026-11-20 10:00:00");
    assert_eq!(mailbox.kinds(), ["inc", "inc", "full"]);
    let want = live_state(&mailbox.root);
    let restored = plain_restore(&mailbox, &flavors()[0], None);
    assert_same_tree(&want, &live_state(&restored));
}

#[test]
fn min_age_in_days_0_is_accepted_and_a_negative_one_refused() {
    needs_root!();
    let mailbox = MailBox::new();
    mailbox.set_target("target: local\nmin_age_in_days: 0\n");
    fs::create_dir_all(mailbox.target()).unwrap();
    let t = epoch("UTC", "2026-11-20 01:00:00");
    write_set(&mailbox.target(), None, t, 1, true, 1000);
    write_set(&mailbox.target(), Some(t), t + 3600, 1, true, 100);
    write_set(
        &mailbox.target(),
        None,
        epoch("UTC", "2026-11-22 01:00:00"),
        1,
        true,
        1000,
    );
    let got = ours(&mailbox, "UTC", "2026-11-22 12:00:00");
    // With 0 days an older chain goes on the next backup.
    assert_eq!(
        got["backups"][1]["deleted_in"], "on next daily backup",
        "{got}"
    );
    mailbox.set_target("target: local\nmin_age_in_days: -2\n");
    let out = mailbox.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("custom.yaml, line 2") && err.contains("cannot be negative"),
        "{err}"
    );
    let out = mailbox.run(&["prune", "--keep-days", "-1"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
