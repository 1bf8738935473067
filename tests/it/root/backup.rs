//! `mailbackup run` and `prune` against real duplicity (Debian's 0.8 and
//! 3.x from PyPI), proven by restoring with plain duplicity and comparing
//! the trees byte for byte.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

/// The Unix time of backup `index` (newest first) in `status --json`, as
/// duplicity's `--time` takes it.
fn backup_time(mailbox: &MailBox, index: usize) -> String {
    let status = mailbox.status();
    let date = status["backups"][index]["date"]
        .as_str()
        .unwrap()
        .to_owned();
    chrono::NaiveDateTime::parse_from_str(&date, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc()
        .timestamp()
        .to_string()
}

#[test]
fn full_then_incremental_restore_byte_for_byte() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        make_mail_store(&mailbox.root, 1500);
        let first = live_state(&mailbox.root);

        mailbox.ok(&["run"]);
        assert_eq!(mailbox.kinds(), ["full"], "{}", flavor.name);
        let restored = plain_restore(&mailbox, &flavor, None);
        assert_same_tree(&first, &snapshot(&restored, &[]));

        next_second();
        a_day_of_mail(&mailbox.root);
        let second = live_state(&mailbox.root);
        assert_ne!(first, second);
        mailbox.ok(&["run"]);
        assert_eq!(mailbox.kinds(), ["inc", "full"], "{}", flavor.name);

        let restored = plain_restore(&mailbox, &flavor, None);
        assert_same_tree(&second, &snapshot(&restored, &[]));
        let restored = plain_restore(&mailbox, &flavor, Some(&backup_time(&mailbox, 1)));
        assert_same_tree(&first, &snapshot(&restored, &[]));
    }
}

#[test]
fn increments_past_half_the_full_make_a_full() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        make_mail_store(&mailbox.root, 300);
        random_file(&mailbox.root.join("mail/attachment.bin"), 200_000);
        mailbox.ok(&["run"]);
        let full_size = mailbox.status()["backups"][0]["size"].as_u64().unwrap();

        // An increment just under half of the full: the next run is incremental.
        next_second();
        random_file(
            &mailbox.root.join("mail/more.bin"),
            full_size as usize * 2 / 5,
        );
        mailbox.ok(&["run"]);
        assert_eq!(mailbox.kinds(), ["inc", "full"], "{}", flavor.name);

        next_second();
        mailbox.ok(&["run"]);
        assert_eq!(mailbox.kinds(), ["inc", "inc", "full"], "{}", flavor.name);

        // Now the increments pass half of the full.
        next_second();
        random_file(
            &mailbox.root.join("mail/even-more.bin"),
            full_size as usize / 5,
        );
        mailbox.ok(&["run"]);
        let status = mailbox.status();
        let sizes: u64 = status["backups"].as_array().unwrap()[..3]
            .iter()
            .map(|b| b["size"].as_u64().unwrap())
            .sum();
        assert!(sizes as f64 > 0.5 * full_size as f64, "{status}");
        next_second();
        mailbox.ok(&["run"]);
        assert_eq!(
            mailbox.kinds(),
            ["full", "inc", "inc", "inc", "full"],
            "{}",
            flavor.name
        );
        let restored = plain_restore(&mailbox, &flavor, None);
        assert_same_tree(&live_state(&mailbox.root), &snapshot(&restored, &[]));
    }
}

#[test]
fn run_full_forces_a_full_backup() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 30);
    mailbox.ok(&["run"]);
    next_second();
    mailbox.ok(&["run", "--full"]);
    assert_eq!(mailbox.kinds(), ["full", "full"]);
}

#[test]
fn prune_ten_days_later_removes_the_older_chain() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        make_mail_store(&mailbox.root, 150);
        mailbox.ok(&["run"]);
        next_second();
        a_day_of_mail(&mailbox.root);
        mailbox.ok(&["run"]);
        let old_chain = mailbox.status()["backups"][1]["date"]
            .as_str()
            .unwrap()
            .to_owned();
        next_second();
        fs::write(mailbox.root.join("mail/late.txt"), "late").unwrap();
        mailbox.ok(&["run", "--full"]);
        next_second();
        mailbox.ok(&["run"]);
        assert_eq!(mailbox.kinds(), ["inc", "full", "inc", "full"]);

        // Today nothing is old enough to go.
        mailbox.ok(&["prune"]);
        assert_eq!(mailbox.kinds(), ["inc", "full", "inc", "full"]);

        let mut c = clean_command("faketime", &mailbox.path_var);
        c.args(["-f", "+10d", BIN, "--config"])
            .arg(&mailbox.conf)
            .arg("prune");
        let out = c.output().unwrap();
        mailbox.assert_no_secret(&out);
        assert!(out.status.success(), "{}", describe(&out));
        assert_eq!(mailbox.kinds(), ["inc", "full"], "{}", flavor.name);
        let names: Vec<String> = fs::read_dir(mailbox.target())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains(&old_chain)), "{names:?}");

        let restored = plain_restore(&mailbox, &flavor, None);
        assert_same_tree(&live_state(&mailbox.root), &snapshot(&restored, &[]));
    }
}

/// Unencrypted duplicity files and their openssl copies, as the 2014 layout
/// left them.
fn make_legacy_layout(mailbox: &MailBox, flavor: &Flavor) {
    let source = mailbox.dir.path().join("legacy-source");
    fs::create_dir(&source).unwrap();
    fs::write(
        source.join("old mail.eml"),
        "Subject: from 2014\r\n\r\nold\r\n",
    )
    .unwrap();
    let mut url = std::ffi::OsString::from("file://");
    url.push(mailbox.root.join("backup/duplicity"));
    let out = clean_command("duplicity", &flavor.path_var())
        .args(["full", "--no-encryption", "--archive-dir"])
        .arg(mailbox.dir.path().join("legacy-cache"))
        .arg(&source)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    fs::create_dir_all(mailbox.target()).unwrap();
    for e in fs::read_dir(mailbox.root.join("backup/duplicity")).unwrap() {
        let e = e.unwrap();
        let mut name = e.file_name();
        name.push(".enc");
        fs::write(mailbox.target().join(name), "U2FsdGVkX1...").unwrap();
    }
    next_second();
}

#[test]
fn legacy_backups_end_up_in_the_encrypted_backup_then_go() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        make_mail_store(&mailbox.root, 60);
        make_legacy_layout(&mailbox, &flavor);
        let legacy = snapshot(&mailbox.root.join("backup/duplicity"), &[]);
        assert!(legacy.len() > 2);
        assert!(mailbox.status()["unknown_files"].as_u64().unwrap() >= 3);

        mailbox.ok(&["run"]);
        assert!(!mailbox.root.join("backup/duplicity").exists());
        assert!(!mailbox.root.join("backup/duplicity.migrated").exists());
        let status = mailbox.status();
        assert_eq!(
            status["unknown_files"], 0,
            "the .enc copies must be gone: {status}"
        );
        assert_eq!(mailbox.kinds(), ["full"]);

        let restored = plain_restore(&mailbox, &flavor, None);
        assert_same_tree(&legacy, &snapshot(&restored.join("backup/duplicity"), &[]));
        let mut want = live_state(&mailbox.root);
        want.remove("");
        let mut got = snapshot(&restored, &["backup"]);
        got.remove("");
        assert_same_tree(&want, &got);

        // That backup restores in place: the live backup/ (key, backups)
        // comes over, and the backup's own backup/ goes beside the data
        // it replaced.
        let live = live_state(&mailbox.root);
        let backup_dir = snapshot(&mailbox.root.join("backup"), &["cache", "gnupg"]);
        let out = mailbox.ok(&["restore", "--in-place", "--yes", "--services", ""]);
        assert_same_tree(&live, &live_state(&mailbox.root));
        assert_eq!(
            snapshot(&mailbox.root.join("backup"), &["cache", "gnupg"]),
            backup_dir
        );
        let kept = fs::read_dir(mailbox.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(".before-restore-"))
            .unwrap();
        assert_same_tree(
            &legacy,
            &snapshot(&kept.join("backup.restored/duplicity"), &[]),
        );
        assert!(stderr(&out).contains("backup.restored"), "{}", stderr(&out));
    }
}

#[test]
fn an_interrupted_migration_completes_on_the_next_run() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 30);
    random_file(&mailbox.root.join("mail/big.bin"), 60_000_000);
    make_legacy_layout(&mailbox, flavor);
    let legacy = snapshot(&mailbox.root.join("backup/duplicity"), &[]);

    // Killed, with duplicity, in the middle of the backup.
    let mut child = mailbox
        .cmd(&["run"])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(60, || lockfile_exists(&mailbox)),
        "the backup did not start"
    );
    std::thread::sleep(Duration::from_millis(700));
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert!(
        mailbox.root.join("backup/duplicity").is_dir(),
        "legacy data deleted before a backup held it"
    );

    // Killed after the backup, half way through deleting the legacy files.
    mailbox.ok(&["run"]);
    assert!(!mailbox.root.join("backup/duplicity").exists());
    let restored = plain_restore(&mailbox, flavor, None);
    assert_same_tree(&legacy, &snapshot(&restored.join("backup/duplicity"), &[]));
    fs::create_dir_all(mailbox.root.join("backup/duplicity.migrated/half")).unwrap();
    next_second();
    mailbox.ok(&["run"]);
    assert!(!mailbox.root.join("backup/duplicity.migrated").exists());
    let restored = plain_restore(&mailbox, flavor, None);
    assert!(
        !restored.join("backup").exists(),
        "the next backup holds no legacy data"
    );
}

#[test]
fn a_second_run_while_one_runs_says_so_and_the_passphrase_is_in_no_argv() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        make_mail_store(&mailbox.root, 30);
        random_file(&mailbox.root.join("mail/big.bin"), 80_000_000);
        let secret = mailbox.passphrase();
        let mut first = mailbox
            .cmd(&["run"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_for(60, || lockfile_exists(&mailbox)),
            "the backup did not start"
        );

        let second = mailbox.run(&["run"]);
        assert_eq!(second.status.code(), Some(23), "{}", describe(&second));
        let err = String::from_utf8_lossy(&second.stderr);
        assert!(err.contains("another backup is already running"), "{err}");

        // While duplicity and gpg run, no process has the passphrase in argv.
        let mut scans = 0;
        while first.try_wait().unwrap().is_none() {
            for e in fs::read_dir("/proc").unwrap().flatten() {
                if let Ok(cmdline) = fs::read(e.path().join("cmdline")) {
                    assert!(
                        !String::from_utf8_lossy(&cmdline).contains(&secret),
                        "passphrase in an argv"
                    );
                }
            }
            scans += 1;
        }
        assert!(scans > 0);
        let out = first.wait_with_output().unwrap();
        mailbox.assert_no_secret(&out);
        assert!(out.status.success(), "{}", describe(&out));
        assert_eq!(mailbox.kinds(), ["full"]);
    }
}

#[test]
fn stray_entries_in_the_target_are_skipped_and_kept() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 30);
    fs::create_dir_all(mailbox.target().join("lost+found")).unwrap();
    fs::write(mailbox.target().join("README"), "copied by hand").unwrap();
    mailbox.ok(&["run"]);
    next_second();
    mailbox.ok(&["run"]);
    let status = mailbox.status();
    assert_eq!(mailbox.kinds(), ["inc", "full"]);
    assert_eq!(status["unknown_files"], 2);
    assert!(mailbox.target().join("README").exists());
    let table = String::from_utf8(mailbox.ok(&["status"]).stdout).unwrap();
    assert!(table.contains("Skipped 2 entries"), "{table}");
}

/// A backup the reference made (the whole multi-line key file as the
/// passphrase) continues with mailbackup, which uses the first line, even
/// when the local cache is gone and the signatures must be decrypted.
#[test]
fn backups_made_by_the_reference_continue() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        make_mail_store(&mailbox.root, 60);
        let whole_key = fs::read_to_string(mailbox.key_file()).unwrap();
        assert!(whole_key.lines().count() > 1);
        let gnupg = tempfile::tempdir().unwrap();
        let mut url = std::ffi::OsString::from("file://");
        url.push(mailbox.target());
        let out = clean_command("duplicity", &flavor.path_var())
            .arg("full")
            .arg("--archive-dir")
            .arg(mailbox.dir.path().join("reference-cache"))
            .arg("--exclude")
            .arg(mailbox.root.join("backup"))
            .args(["--volsize", "250"])
            .arg(&mailbox.root)
            .arg(url)
            .env("PASSPHRASE", &whole_key)
            .env("GNUPGHOME", gnupg.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));

        next_second();
        a_day_of_mail(&mailbox.root);
        mailbox.ok(&["run"]);
        assert_eq!(mailbox.kinds(), ["inc", "full"]);
        let restored = plain_restore(&mailbox, &flavor, None);
        assert_same_tree(&live_state(&mailbox.root), &snapshot(&restored, &[]));
    }
}

/// A STORAGE_ROOT reached through a symlink: `run` backs up the directory
/// and says which one it used; `status`, read by scripts, says nothing of it.
#[test]
fn a_symlinked_storage_root_is_named_by_run_and_not_by_status() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 5);
    let link = mailbox.dir.path().join("linked");
    std::os::unix::fs::symlink(&mailbox.root, &link).unwrap();
    fs::write(
        &mailbox.conf,
        format!(
            "STORAGE_USER=user-data\nSTORAGE_ROOT={}\nPRIMARY_HOSTNAME=box.example.com\n",
            link.display()
        ),
    )
    .unwrap();

    let out = mailbox.ok(&["run"]);
    let note = format!(
        "STORAGE_ROOT {} leads through a symlink to {}",
        link.display(),
        mailbox.root.display()
    );
    assert!(stderr(&out).contains(&note), "{}", describe(&out));
    let restored = plain_restore(&mailbox, flavor, None);
    assert_same_tree(&live_state(&mailbox.root), &snapshot(&restored, &[]));

    let out = mailbox.ok(&["status", "--json"]);
    assert_eq!(stderr(&out), "", "{}", describe(&out));
}
