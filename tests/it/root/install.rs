//! `mailbackup install` and `uninstall` outside a booted systemd:
//! `systemd-analyze verify` on the installed units, idempotence, the key,
//! and bad input. The rendered units are golden files in `units.rs`; the
//! units at work are tested in a booted systemd in `e2e/`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::common::mount::Mount;
use crate::common::*;
use crate::units::default_settings;
use mailbackup::config::Layout;
use mailbackup::systemd::units::{self, UnitSettings};

/// A box for install tests: a config whose STORAGE_USER exists, and a
/// STORAGE_ROOT a unit can name (no spaces), without backup/.
pub(crate) fn install_box() -> MailBox {
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

pub(crate) fn install(mailbox: &MailBox, unit_dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["install", "--unit-dir", unit_dir.to_str().unwrap()];
    if !extra.contains(&"--bin") {
        args.extend(["--bin", BIN]);
    }
    args.extend_from_slice(extra);
    mailbox.run(&args)
}

pub(crate) fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `systemd-analyze verify` prints nothing at all for the installed units
/// (it exits 0 on warnings, so its output is the test), with and without an
/// after-backup hook, in every downtime mode.
#[test]
fn installed_units_verify_cleanly() {
    needs_root!();
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

/// A missing key beside backups made with it is not replaced by a new one:
/// the next backups would continue the old chain with the new key, and the
/// newest state would restore with neither.
#[test]
fn no_new_key_beside_backups_made_with_a_missing_one() {
    needs_root!();
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
    needs_root!();
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

#[test]
fn install_twice_changes_nothing_and_replaces_hand_edits() {
    needs_root!();
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
    needs_root!();
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
    needs_root!();
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
    needs_root!();
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
    needs_root!();
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
    needs_root!();
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
    let read_only = Mount::tmpfs(&ro, "ro");
    let before = snapshot(mailbox.dir.path(), &["read-only"]);
    let out = install(&mailbox, &ro, &[]);
    drop(read_only);
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
pub(crate) fn assert_units_verify(units: &Path) {
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

/// An unknown key in custom.yaml: install says so once, like every other
/// command, and installs.
#[test]
fn install_warns_of_an_unknown_setting_once() {
    needs_root!();
    let mailbox = install_box();
    fs::create_dir(mailbox.root.join("backup")).unwrap();
    mailbox.set_target("target: local\ntarget_usr: someone\n");
    let units = tempfile::tempdir().unwrap();
    let out = install(&mailbox, units.path(), &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("line 2: unknown key \"target_usr\", ignored (the nearest key mailbackup knows is target_user)")
            .count(),
        1,
        "{err}"
    );
}
