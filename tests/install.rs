//! `mailbackup install` and `uninstall` outside a booted systemd: golden
//! files for the rendered units, `systemd-analyze verify` and `security` on
//! them, idempotence, the key, and bad input. The units at work are tested
//! in a booted systemd in `e2e.rs`.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mailbackup::backend::UnitNeeds;
use mailbackup::config::Layout;
use mailbackup::systemd::units::{self, UnitSettings};

fn golden_dir(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(set)
}

/// Compares rendered units with `tests/golden/SET/`; with UPDATE_GOLDEN=1,
/// rewrites them instead (review the diff).
fn check_golden(set: &str, settings: &UnitSettings) {
    let dir = golden_dir(set);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for unit in units::render(settings).unwrap() {
        let path = dir.join(unit.name);
        if update {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &unit.content).unwrap();
        }
        let want = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            unit.content,
            want,
            "{} differs from the golden file; UPDATE_GOLDEN=1 rewrites it",
            path.display()
        );
    }
}

fn default_settings() -> UnitSettings {
    UnitSettings {
        config: "/etc/mailinabox.conf".into(),
        layout: Layout::new(Path::new("/home/user-data")),
        storage_user: "user-data".into(),
        bin: "/usr/bin/mailbackup".into(),
        on_calendar: "daily".into(),
        services: vec!["dovecot.service".into(), "postfix.service".into()],
        downtime: units::Downtime::Snapshot,
        verify_calendar: Some("monthly".into()),
        drill_calendar: Some("*-*-15 04:00:00".into()),
        metrics_dir: Some("/var/lib/prometheus/node-exporter".into()),
        mail_to: "administrator@box.example.com".into(),
        choices: "{}".into(),
        target: UnitNeeds::default(),
    }
}

#[test]
fn golden_units_default() {
    check_golden("default", &default_settings());
}

#[test]
fn golden_units_customised() {
    check_golden(
        "custom",
        &UnitSettings {
            config: "/srv/box/mailinabox.conf".into(),
            layout: Layout::new(Path::new("/srv/box/data")),
            storage_user: "mail-data".into(),
            bin: "/usr/local/bin/mailbackup".into(),
            on_calendar: "*-*-* 03:30:00".into(),
            services: vec![
                "dovecot".into(),
                "postfix@-.service".into(),
                "nginx.service".into(),
            ],
            downtime: units::Downtime::Full,
            verify_calendar: None,
            drill_calendar: Some("*-*-20 02:00:00".into()),
            metrics_dir: None,
            mail_to: "ops+backup@example.org".into(),
            choices: r#"{"on_calendar":"*-*-* 03:30:00","downtime":"full"}"#.into(),
            target: UnitNeeds::default(),
        },
    );
}

#[test]
fn golden_units_pause() {
    check_golden(
        "pause",
        &UnitSettings {
            downtime: units::Downtime::Pause,
            choices: r#"{"downtime":"pause"}"#.into(),
            ..default_settings()
        },
    );
}

/// The units of a box whose backups go to an S3 bucket (network, the
/// settings as a credential) or an ssh server (network, a state directory).
fn remote_settings(s3: bool) -> UnitSettings {
    UnitSettings {
        target: UnitNeeds {
            network: true,
            state_directory: !s3,
            credentials: if s3 {
                vec![("custom.yaml", "/home/user-data/backup/custom.yaml".into())]
            } else {
                Vec::new()
            },
        },
        ..default_settings()
    }
}

#[test]
fn golden_units_remote_s3() {
    check_golden("remote-s3", &remote_settings(true));
}

#[test]
fn golden_units_remote_rsync() {
    check_golden("remote-rsync", &remote_settings(false));
}

/// A box for install tests: a config whose STORAGE_USER exists, and a
/// STORAGE_ROOT a unit can name (no spaces), without backup/.
fn install_box() -> MailBox {
    let mailbox = MailBox::named("user-data");
    ensure_user("user-data");
    fs::remove_file(mailbox.key_file()).unwrap();
    fs::remove_dir(mailbox.root.join("backup")).unwrap();
    mailbox
}

fn ensure_user(name: &str) {
    if !mailbackup::sys::user_exists(name) {
        let out = Command::new("useradd")
            .args(["--system", "--no-create-home", name])
            .output()
            .unwrap();
        assert!(
            out.status.success() || mailbackup::sys::user_exists(name),
            "{}",
            describe(&out)
        );
    }
}

fn install(mailbox: &MailBox, unit_dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["install", "--unit-dir", unit_dir.to_str().unwrap()];
    if !extra.contains(&"--bin") {
        args.extend(["--bin", BIN]);
    }
    args.extend_from_slice(extra);
    mailbox.run(&args)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `systemd-analyze verify` prints nothing at all for the installed units
/// (it exits 0 on warnings, so its output is the test), with and without an
/// after-backup hook, in every downtime mode.
#[test]
fn installed_units_verify_cleanly() {
    for downtime in ["snapshot", "pause", "full"] {
        let mailbox = install_box();
        let units = mailbox.dir.path().join("units");
        fs::create_dir(&units).unwrap();
        if downtime == "pause" {
            // This host may lack cgroup v2, which install checks for: render.
            let settings = UnitSettings {
                config: mailbox.conf.clone(),
                layout: Layout::new(&mailbox.root),
                bin: BIN.into(),
                downtime: units::Downtime::Pause,
                ..default_settings()
            };
            for unit in units::render(&settings).unwrap() {
                fs::write(units.join(unit.name), unit.content).unwrap();
            }
        } else {
            let out = install(&mailbox, &units, &["--downtime", downtime]);
            assert!(out.status.success(), "{}", describe(&out));
        }
        for hook in [false, true] {
            if hook {
                write_file(
                    &mailbox.root.join("backup/after-backup"),
                    b"#!/bin/sh\n",
                    0o755,
                    std::time::SystemTime::now(),
                );
            }
            let mut unit_path = units.clone().into_os_string();
            unit_path.push(":");
            let names: Vec<String> = fs::read_dir(&units)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .map(|n| n.replace("@.service", "@mailbackup.service.service"))
                .collect();
            let out = Command::new("systemd-analyze")
                .current_dir(&units)
                .env("SYSTEMD_UNIT_PATH", &unit_path)
                .arg("verify")
                .args(&names)
                .output()
                .expect("systemd-analyze is missing: run tests/setup.sh first");
            assert!(out.status.success(), "{}", describe(&out));
            assert_eq!(
                (stdout(&out), stderr(&out)),
                (String::new(), String::new()),
                "{downtime}, hook {hook}: {names:?}"
            );
        }
    }
}

/// The content of each of mailbackup's units in `units`, None where missing.
fn unit_contents(units: &Path) -> Vec<Option<Vec<u8>>> {
    units::ALL
        .iter()
        .map(|n| fs::read(units.join(n)).ok())
        .collect()
}

/// `systemd-analyze security --offline` of one rendered service.
fn exposure(settings: &UnitSettings, name: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let rendered = units::render(settings).unwrap();
    let service = rendered.iter().find(|u| u.name == name).unwrap();
    fs::write(dir.path().join(name), &service.content).unwrap();
    let out = Command::new("systemd-analyze")
        .current_dir(dir.path())
        .args(["security", "--offline=yes", "--no-pager", name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.split(&format!("Overall exposure level for {name}: "))
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {}", describe(&out)))
}

#[test]
fn remote_targets_open_the_network_and_stay_locked_down() {
    let full = |s: UnitSettings| UnitSettings {
        downtime: units::Downtime::Full,
        ..s
    };
    for s3 in [true, false] {
        for (name, remote, local) in [
            (units::SERVICE, remote_settings(s3), default_settings()),
            // It runs duplicity itself only with the full downtime.
            (
                units::VERIFY_SERVICE,
                full(remote_settings(s3)),
                full(default_settings()),
            ),
            (
                units::DRILL_SERVICE,
                remote_settings(s3),
                default_settings(),
            ),
        ] {
            let (remote, local) = (exposure(&remote, name), exposure(&local, name));
            // The drill restores files with their owners: CAP_CHOWN and
            // CAP_FOWNER besides reading.
            let bound = if name == units::DRILL_SERVICE {
                2.5
            } else {
                2.0
            };
            assert!(remote <= bound, "{name}: exposure {remote} > {bound}");
            assert!(
                remote > local,
                "{name}: the network costs nothing? {remote}"
            );
        }
        // The snapshot never needs the network.
        assert_eq!(
            exposure(&remote_settings(s3), units::SNAPSHOT_SERVICE),
            exposure(&default_settings(), units::SNAPSHOT_SERVICE)
        );
    }
    assert!(exposure(&default_settings(), units::SERVICE) <= 1.1);
}

#[test]
fn the_services_are_locked_down() {
    for (name, downtime) in [
        (units::SERVICE, units::Downtime::Snapshot),
        (units::SERVICE, units::Downtime::Pause),
        (units::SERVICE, units::Downtime::Full),
        (units::VERIFY_SERVICE, units::Downtime::Snapshot),
        (units::VERIFY_SERVICE, units::Downtime::Full),
        (units::SNAPSHOT_SERVICE, units::Downtime::Snapshot),
        (units::DRILL_SERVICE, units::Downtime::Snapshot),
        (units::FAILURE_SERVICE, units::Downtime::Snapshot),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let rendered = units::render(&UnitSettings {
            downtime,
            ..default_settings()
        })
        .unwrap();
        let service = rendered.iter().find(|u| u.name == name).unwrap();
        fs::write(dir.path().join(name), &service.content).unwrap();
        let out = Command::new("systemd-analyze")
            .current_dir(dir.path())
            .args(["security", "--offline=yes", "--no-pager", name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| {
                // A template is scored as an instance, `@i`.
                l.split(&format!(
                    "Overall exposure level for {}: ",
                    name.replace("@.", "@i.")
                ))
                .nth(1)
            })
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no score in {}", describe(&out)));
        assert!(score <= 1.5, "{name}: exposure {score} > 1.5:\n{text}");
    }
}

/// A missing key beside backups made with it is not replaced by a new one:
/// the next backups would continue the old chain with the new key, and the
/// newest state would restore with neither.
#[test]
fn no_new_key_beside_backups_made_with_a_missing_one() {
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let encrypted = mailbox.root.join("backup/encrypted");
    fs::create_dir_all(&encrypted).unwrap();
    for name in [
        "duplicity-full.20261101T030000Z.manifest.gpg",
        "duplicity-full.20261101T030000Z.vol1.difftar.gpg",
        "duplicity-full-signatures.20261101T030000Z.sigtar.gpg",
    ] {
        fs::write(encrypted.join(name), "x").unwrap();
    }
    for extra in [&["--dry-run"][..], &[]] {
        let out = install(&mailbox, &units, extra);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("key") && err.contains("missing") && err.contains("put your copy"),
            "{err}"
        );
        assert!(!mailbox.key_file().exists(), "a new key was created");
        assert_eq!(fs::read_dir(&units).unwrap().count(), 0, "units written");
    }
    // Once the old backups are moved away, a new key is made.
    fs::rename(&encrypted, mailbox.root.join("backup/encrypted.lost-key")).unwrap();
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(mailbox.key_file().exists());
}

/// A change of options updates the units and says so; it is not taken for
/// a hand edit.
#[test]
fn a_new_option_updates_the_units_and_is_no_hand_edit() {
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = install(&mailbox, &units, &["--on-calendar", "*-*-* 04:00:00"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    for name in ["mailbackup.service", "mailbackup.timer"] {
        assert!(
            text.contains(&format!(
                "updated {} for the options given",
                units.join(name).display()
            )),
            "{text}"
        );
    }
    assert!(!text.contains("by hand"), "{text}");
    // A hand edit on top is still called one.
    let timer = units.join("mailbackup.timer");
    fs::write(&timer, fs::read_to_string(&timer).unwrap() + "# mine\n").unwrap();
    let out = install(&mailbox, &units, &["--on-calendar", "*-*-* 05:00:00"]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("replaced {}: it differed", timer.display())),
        "{text}"
    );
}

/// A new backup target in custom.yaml changes the units (the network, the
/// credential): `install` says the target changed, not that the units were
/// edited by hand.
#[test]
fn a_new_target_updates_the_units_and_is_no_hand_edit() {
    let moto = common::servers::Moto::start();
    moto.create_bucket("box-backups");
    let mut mailbox = install_box();
    mailbox.secrets.push(moto.secret.clone());
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let settings = mailbox.root.join("backup/custom.yaml");
    let service = units.join("mailbackup.service");
    let said =
        |text: &str, why: &str| text.contains(&format!("updated {} for {why}", service.display()));

    mailbox.set_target(&moto.custom_yaml("box-backups/mail"));
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        said(
            &text,
            &format!("the backup target in {}", settings.display())
        ) && !text.contains("by hand"),
        "{text}"
    );

    // Back to the box's own directory, with a new option at once.
    mailbox.set_target("target: local\n");
    let out = install(&mailbox, &units, &["--on-calendar", "*-*-* 04:00:00"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        said(
            &text,
            &format!(
                "the options given and the backup target in {}",
                settings.display()
            )
        ) && !text.contains("by hand"),
        "{text}"
    );
}

#[test]
fn install_twice_changes_nothing_and_replaces_hand_edits() {
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();

    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    for name in units::ALL {
        assert!(
            text.contains(&format!("created {}", units.join(name).display())),
            "{text}"
        );
    }
    assert!(text.contains("created a new backup key"), "{text}");

    // The key: one line of base64 from 48 random bytes, 0600, root's.
    let key = fs::read(mailbox.key_file()).unwrap();
    assert_eq!(key.len(), 64);
    assert!(key
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/'));
    let meta = fs::metadata(mailbox.key_file()).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid(), meta.gid()), (0o600, 0, 0));

    let before: Vec<_> = units::ALL
        .iter()
        .map(|n| fs::read(units.join(n)).unwrap())
        .collect();
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        stdout(&out).trim(),
        "mailbackup is installed already: nothing changed"
    );
    let after: Vec<_> = units::ALL
        .iter()
        .map(|n| fs::read(units.join(n)).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(
        fs::read(mailbox.key_file()).unwrap(),
        key,
        "an existing key is never touched"
    );

    // A hand edit is replaced, and the output says which file.
    let timer = units.join("mailbackup.timer");
    fs::write(
        &timer,
        fs::read_to_string(&timer)
            .unwrap()
            .replace("daily", "hourly"),
    )
    .unwrap();
    let out = install(&mailbox, &units, &[]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("replaced {}", timer.display())) && text.contains("drop-in"),
        "{text}"
    );
    assert_eq!(
        text.matches("replaced ").count(),
        1,
        "only the edited unit: {text}"
    );
    assert_eq!(fs::read(&timer).unwrap(), before[1]);

    // Options reach the units.
    let out = install(
        &mailbox,
        &units,
        &[
            "--on-calendar",
            "*-*-* 04:00:00",
            "--services",
            "dovecot postfix",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(fs::read_to_string(&timer)
        .unwrap()
        .contains("OnCalendar=*-*-* 04:00:00\n"));

    // Uninstall removes the units and nothing else.
    let backup_before = snapshot(&mailbox.root, &[]);
    let conf_before = fs::read(&mailbox.conf).unwrap();
    let out = mailbox.run(&["uninstall", "--unit-dir", units.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(fs::read_dir(&units).unwrap().count(), 0);
    assert_eq!(snapshot(&mailbox.root, &[]), backup_before);
    assert_eq!(fs::read(&mailbox.conf).unwrap(), conf_before);
}

/// Box setup re-runs a bare `mailbackup install` on every upgrade: the
/// options the operator gave before stay, and one given again changes.
#[test]
fn a_bare_reinstall_keeps_the_options_chosen_before() {
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let chosen = [
        "--on-calendar",
        "*-*-* 04:30:00",
        "--downtime",
        "full",
        "--services",
        "dovecot postfix nginx",
        "--verify-calendar",
        "never",
        "--mail-to",
        "ops@example.org",
    ];
    let out = install(&mailbox, &units, &chosen);
    assert!(out.status.success(), "{}", describe(&out));
    let written = unit_contents(&units);
    let service = fs::read_to_string(units.join(units::SERVICE)).unwrap();
    assert!(service.contains("ExecStartPre=/usr/bin/systemctl stop nginx.service"));

    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("keeping the options of the earlier install: --on-calendar '*-*-* 04:30:00' --services 'dovecot postfix nginx' --downtime full --verify-calendar never --mail-to ops@example.org"),
        "{text}"
    );
    assert!(text.contains("nothing changed"), "{text}");
    let again = unit_contents(&units);
    assert_eq!(written, again, "a bare install changed the units");

    // One option given again changes; the others stay.
    let out = install(&mailbox, &units, &["--downtime", "snapshot"]);
    assert!(out.status.success(), "{}", describe(&out));
    let service = fs::read_to_string(units.join(units::SERVICE)).unwrap();
    assert!(service.contains("run --from-snapshot"), "{service}");
    assert!(service.contains("nginx.service"), "{service}");
    assert!(fs::read_to_string(units.join(units::TIMER))
        .unwrap()
        .contains("OnCalendar=*-*-* 04:30:00\n"));
    assert!(!units.join(units::VERIFY_TIMER).exists());
    let out = install(&mailbox, &units, &[]);
    assert!(
        stdout(&out).contains("--downtime snapshot"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("nothing changed"), "{}", stdout(&out));

    // A unit edited by hand so that its record no longer parses: defaults.
    fs::write(units.join(units::SERVICE), service.replace("{\"", "{oops")).unwrap();
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(fs::read_to_string(units.join(units::TIMER))
        .unwrap()
        .contains("OnCalendar=daily\n"));
}

/// The Debian package runs `install --refresh` on upgrade: the units that
/// are installed are rendered anew, with the options and the configuration
/// file recorded in them (not --config); no key is made, no timer touched.
#[test]
fn refresh_renders_the_installed_units_anew_with_their_options_and_config() {
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let refresh = |extra: &[&str]| {
        let out = clean_command(BIN, &mailbox.path_var)
            .args([
                "--config",
                "/nonexistent/mailinabox.conf",
                "install",
                "--refresh",
            ])
            .args(["--unit-dir", units.to_str().unwrap(), "--bin", BIN])
            .args(extra)
            .output()
            .unwrap();
        mailbox.assert_no_secret(&out);
        out
    };

    // Nothing installed: nothing written, no key, no backup directory.
    let before = snapshot(mailbox.dir.path(), &[]);
    let out = refresh(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains("nothing to refresh"),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot(mailbox.dir.path(), &[]), before);

    let chosen = [
        "--on-calendar",
        "*-*-* 04:30:00",
        "--verify-calendar",
        "never",
    ];
    let out = install(&mailbox, &units, &chosen);
    assert!(out.status.success(), "{}", describe(&out));
    let written = unit_contents(&units);

    // What an older version's templates made: a line less, a line more.
    let service = units.join(units::SERVICE);
    let timer = units.join(units::TIMER);
    let old = fs::read_to_string(&service).unwrap();
    fs::write(&service, old.replace("Nice=10\n", "")).unwrap();
    fs::write(&timer, fs::read_to_string(&timer).unwrap() + "# older\n").unwrap();
    fs::remove_file(mailbox.key_file()).unwrap();

    let out = refresh(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    for path in [&service, &timer] {
        assert!(
            text.contains(&format!(
                "replaced {} with what this version of mailbackup renders",
                path.display()
            )),
            "{text}"
        );
    }
    assert!(!text.contains("edited by hand"), "{text}");
    assert!(
        text.contains("keeping the options of the earlier install: --on-calendar '*-*-* 04:30:00' --verify-calendar never"),
        "{text}"
    );
    assert!(!text.contains("enabled") && !text.contains("key"), "{text}");
    let again = unit_contents(&units);
    assert_eq!(written, again);
    assert!(!mailbox.key_file().exists(), "a refresh made a key");

    let out = refresh(&[]);
    assert_eq!(
        stdout(&out).trim(),
        "keeping the options of the earlier install: --on-calendar '*-*-* 04:30:00' --verify-calendar never\n\
         mailbackup's units are up to date: nothing changed"
    );
    // A refresh changes no option.
    let out = refresh(&["--on-calendar", "daily"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

/// `apt remove` runs `uninstall --keep-units`: the timers only.
#[test]
fn uninstall_keep_units_leaves_the_units() {
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let before = snapshot(mailbox.dir.path(), &[]);
    let out = mailbox.run(&[
        "uninstall",
        "--keep-units",
        "--unit-dir",
        units.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(snapshot(mailbox.dir.path(), &[]), before);
}

#[test]
fn dry_run_prints_and_writes_nothing() {
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let before = snapshot(mailbox.dir.path(), &[]);
    let out = install(&mailbox, &units, &["--dry-run"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    for name in units::ALL {
        assert!(
            text.contains(&format!(
                "would write {}:\n# Generated",
                units.join(name).display()
            )),
            "{text}"
        );
    }
    assert!(
        text.contains("ExecStart=") && text.contains("would create a new backup key"),
        "{text}"
    );
    assert_eq!(snapshot(mailbox.dir.path(), &[]), before);
}

/// Each bad input: exit 1, one clear line, nothing written anywhere.
fn assert_refused(mailbox: &MailBox, units: &Path, extra: &[&str], needles: &[&str]) {
    let before = snapshot(mailbox.dir.path(), &[]);
    let out = install(mailbox, units, extra);
    assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
    assert_eq!(
        snapshot(mailbox.dir.path(), &[]),
        before,
        "{extra:?} wrote something"
    );
}

#[test]
fn bad_input_is_refused_with_nothing_written() {
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();

    assert_refused(
        &mailbox,
        &units,
        &["--on-calendar", "every full moon"],
        &["every full moon", "calendar"],
    );
    assert_refused(
        &mailbox,
        &units,
        &["--on-calendar", "daily\nExecStartPre=/bin/sh"],
        &["calendar"],
    );
    assert_refused(
        &mailbox,
        &units,
        &["--bin", "/usr/bin/mail\nbackup"],
        &["binary", "'\\n'"],
    );
    assert_refused(
        &mailbox,
        &units,
        &["--bin", "relative/mailbackup"],
        &["absolute"],
    );
    assert_refused(
        &mailbox,
        &units,
        &["--services", "postfix.socket"],
        &["postfix.socket"],
    );

    // A config file whose name holds a newline.
    let odd = mailbox.dir.path().join("mail\ninabox.conf");
    fs::copy(&mailbox.conf, &odd).unwrap();
    let before = snapshot(mailbox.dir.path(), &[]);
    let out = clean_command(BIN, &mailbox.path_var)
        .arg("--config")
        .arg(&odd)
        .args([
            "install",
            "--unit-dir",
            units.to_str().unwrap(),
            "--bin",
            BIN,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("configuration file"),
        "{}",
        describe(&out)
    );
    assert_eq!(snapshot(mailbox.dir.path(), &[]), before);
    fs::remove_file(&odd).unwrap();

    // A STORAGE_USER that does not exist.
    let conf = fs::read_to_string(&mailbox.conf).unwrap();
    fs::write(
        &mailbox.conf,
        conf.replace("STORAGE_USER=user-data", "STORAGE_USER=no-such-user-xyz"),
    )
    .unwrap();
    assert_refused(
        &mailbox,
        &units,
        &[],
        &["STORAGE_USER", "no-such-user-xyz", "not a user"],
    );
    fs::write(&mailbox.conf, conf.replace("STORAGE_USER=user-data\n", "")).unwrap();
    assert_refused(&mailbox, &units, &[], &["STORAGE_USER"]);
    fs::write(&mailbox.conf, &conf).unwrap();

    // A unit directory that cannot be written: a read-only mount.
    let ro = mailbox.dir.path().join("read-only");
    fs::create_dir(&ro).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro", "tmpfs"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a read-only tmpfs needs root");
    let before = snapshot(mailbox.dir.path(), &["read-only"]);
    let out = install(&mailbox, &ro, &[]);
    let _ = Command::new("umount").arg(&ro).status();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(ro.to_str().unwrap()) && err.contains("Read-only"),
        "{err}"
    );
    assert_eq!(
        snapshot(mailbox.dir.path(), &["read-only"]),
        before,
        "the key or backup dir was written"
    );
    assert_eq!(fs::read_dir(&ro).unwrap().count(), 0);

    // A unit directory that does not exist.
    let missing = mailbox.dir.path().join("no-such-dir");
    assert_refused(&mailbox, &missing, &[], &["no-such-dir"]);
}

/// `systemd-analyze verify` of the units in `units`: nothing at all.
fn assert_units_verify(units: &Path) {
    let mut unit_path = units.to_owned().into_os_string();
    unit_path.push(":");
    let out = Command::new("systemd-analyze")
        .current_dir(units)
        .env("SYSTEMD_UNIT_PATH", &unit_path)
        .args([
            "verify",
            "mailbackup.service",
            "mailbackup-verify.service",
            "mailbackup-snapshot.service",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        (out.stdout.len(), out.stderr.len()),
        (0, 0),
        "{}",
        describe(&out)
    );
}

#[test]
fn install_checks_an_s3_target_locks_up_its_settings_and_loads_them_as_a_credential() {
    let moto = common::servers::Moto::start();
    moto.create_bucket("box-backups");
    let mut mailbox = install_box();
    mailbox.secrets.push(moto.secret.clone());
    fs::create_dir(mailbox.root.join("backup")).unwrap();
    let settings = mailbox.root.join("backup/custom.yaml");
    mailbox.set_target(&moto.custom_yaml("box-backups/mail"));
    fs::set_permissions(&settings, fs::Permissions::from_mode(0o644)).unwrap();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();

    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "made {} readable by root only",
            settings.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "checked s3+http://{}/box-backups/mail: 0 backups",
            moto.endpoint()
        )),
        "{text}"
    );
    assert_eq!(fs::metadata(&settings).unwrap().mode() & 0o777, 0o600);
    let service = fs::read_to_string(units.join("mailbackup.service")).unwrap();
    assert!(
        service.contains(&format!(
            "LoadCredential=custom.yaml:{}\n",
            settings.display()
        )) && service.contains("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n")
            && !service.contains("PrivateNetwork=yes"),
        "{service}"
    );
    for unit in fs::read_dir(&units).unwrap() {
        let content = fs::read_to_string(unit.unwrap().path()).unwrap();
        assert!(!content.contains(&moto.secret), "the secret is in a unit");
    }
    write_file(
        &mailbox.root.join("backup/after-backup"),
        b"#!/bin/sh\n",
        0o755,
        std::time::SystemTime::now(),
    );
    assert_units_verify(&units);
    let out = install(&mailbox, &units, &[]);
    assert!(
        !stdout(&out).contains("readable by root only"),
        "{}",
        describe(&out)
    );

    // A bucket that is not there: the units are written, no timer, exit 1.
    mailbox.set_target(&moto.custom_yaml("no-such-bucket"));
    let out = install(&mailbox, &units, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such bucket") && err.contains("no timer was enabled"),
        "{err}"
    );
}

#[test]
fn install_makes_the_ssh_key_prints_it_and_pins_the_host_key() {
    let sshd = common::servers::Sshd::start();
    let home = tempfile::tempdir().unwrap();
    let mailbox = install_box()
        .with_env("HOME", home.path())
        .with_env("STATE_DIRECTORY", &sshd.state);
    fs::create_dir(mailbox.root.join("backup")).unwrap();
    mailbox.set_target(&format!("target: {}\n", sshd.target()));
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();

    // No key yet: one is made, and the server does not know it.
    let out = install(&mailbox, &units, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let key = home.path().join(".ssh/id_rsa_miab");
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    assert!(public.starts_with("ssh-rsa "), "{public}");
    assert!(stdout(&out).contains(public.trim()), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad credentials") && err.contains(public.trim()),
        "{err}"
    );
    assert_eq!(
        fs::metadata(&key).unwrap().mode() & 0o777,
        0o600,
        "the private key"
    );
    let service = fs::read_to_string(units.join("mailbackup.service")).unwrap();
    assert!(service.contains("StateDirectory=mailbackup\n"), "{service}");
    write_file(
        &mailbox.root.join("backup/after-backup"),
        b"#!/bin/sh\n",
        0o755,
        std::time::SystemTime::now(),
    );
    assert_units_verify(&units);

    // The operator puts the key on the server: now it works, the key stays.
    sshd.authorize(&public);
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains("checked rsync://"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        fs::read_to_string(key.with_extension("pub")).unwrap(),
        public
    );
    let pinned = fs::read_to_string(sshd.state.join("known_hosts")).unwrap();
    assert!(
        pinned.contains(&format!("[127.0.0.1]:{}", sshd.port)),
        "{pinned}"
    );
}
