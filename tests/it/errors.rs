//! Bad input and duplicity's exit codes: clear errors, the right exit status,
//! nothing written, and the passphrase nowhere but duplicity's environment.
//! duplicity is faked here only to reach exit codes and argv cases; the
//! backups themselves are proven in `root/backup.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::*;

/// A `duplicity` that records its argv and PASSPHRASE, then does what
/// `behaviour` says (shell code).
fn fake_duplicity(mailbox: &mut MailBox, behaviour: &str) -> PathBuf {
    let bin = mailbox.dir.path().join("fake-bin");
    fs::create_dir_all(&bin).unwrap();
    let script = bin.join("duplicity");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nd=$(dirname \"$0\")\nprintf '%s\\n' \"$@\" >> \"$d/argv\"\necho -- >> \"$d/argv\"\nprintf '%s' \"$PASSPHRASE\" > \"$d/passphrase\"\nprintf '%s' \"$GNUPGHOME\" > \"$d/gnupghome\"\n{behaviour}\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = bin.clone().into_os_string();
    path.push(":/usr/bin:/bin");
    mailbox.path_var = path;
    bin
}

/// Every file under `dir`, to show that a failed command wrote nothing.
fn listing(dir: &Path) -> Vec<String> {
    snapshot(dir, &[]).into_keys().collect()
}

fn assert_one_line_error(out: &std::process::Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("mailbackup: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

#[test]
fn missing_config_file() {
    let mailbox = MailBox::new();
    let before = listing(mailbox.dir.path());
    for cmd in ["run", "prune", "status"] {
        let out = clean_command(BIN, &mailbox.path_var)
            .args(["--config", "/nonexistent/mailinabox.conf", cmd])
            .output()
            .unwrap();
        assert_one_line_error(&out, &["/nonexistent/mailinabox.conf", "No such file"]);
    }
    assert_eq!(before, listing(mailbox.dir.path()));
}

#[test]
fn config_without_storage_root() {
    let mailbox = MailBox::new();
    fs::write(&mailbox.conf, "STORAGE_USER=user-data\n").unwrap();
    let before = listing(mailbox.dir.path());
    for cmd in ["run", "prune", "status"] {
        let out = mailbox.run(&[cmd]);
        assert_one_line_error(&out, &[mailbox.conf.to_str().unwrap(), "STORAGE_ROOT"]);
    }
    assert_eq!(before, listing(mailbox.dir.path()));
}

#[test]
fn storage_root_that_is_not_a_directory() {
    let mailbox = MailBox::new();
    let file = mailbox.dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    for (root, why) in [
        (file.clone(), "not a directory"),
        (mailbox.dir.path().join("missing"), "No such file"),
    ] {
        fs::write(&mailbox.conf, format!("STORAGE_ROOT={}\n", root.display())).unwrap();
        let out = mailbox.run(&["run"]);
        assert_one_line_error(&out, &[mailbox.conf.to_str().unwrap(), "STORAGE_ROOT", why]);
    }
}

#[test]
fn missing_or_empty_key_starts_no_duplicity() {
    let mut mailbox = MailBox::new();
    let bin = fake_duplicity(&mut mailbox, "exit 0");
    let key = mailbox.key_file();
    fs::remove_file(&key).unwrap();
    let out = mailbox.cmd(&["run"]).output().unwrap();
    assert_one_line_error(&out, &[key.to_str().unwrap()]);
    for empty in ["", "\n", "\nsecond line\n"] {
        fs::write(&key, empty).unwrap();
        let out = mailbox.cmd(&["run"]).output().unwrap();
        assert_one_line_error(&out, &[key.to_str().unwrap(), "empty"]);
        let out = mailbox.cmd(&["prune"]).output().unwrap();
        assert!(!out.status.success() || stderr(&out).contains("nothing to prune"));
    }
    assert!(!bin.join("argv").exists(), "duplicity was started");

    // A new box where backup/ itself is missing: the restore names the key.
    fs::remove_dir_all(mailbox.root.join("backup")).unwrap();
    let dest = mailbox.dir.path().join("restored");
    let out = mailbox
        .cmd(&["restore", "--to", dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert_one_line_error(&out, &[key.to_str().unwrap(), "your copy of the key"]);
    assert!(!dest.exists() && !mailbox.root.join("backup").exists());
}

#[test]
fn a_key_others_can_read_gets_a_warning() {
    let mut mailbox = MailBox::new();
    fake_duplicity(&mut mailbox, "exit 0");
    fs::set_permissions(mailbox.key_file(), fs::Permissions::from_mode(0o644)).unwrap();
    let out = mailbox.run(&["run"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("chmod 600"),
        "{}",
        stderr(&out)
    );
    fs::set_permissions(mailbox.key_file(), fs::Permissions::from_mode(0o600)).unwrap();
    let out = mailbox.run(&["run"]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn the_passphrase_goes_to_the_environment_only() {
    let mut mailbox = MailBox::new();
    let bin = fake_duplicity(&mut mailbox, "exit 0");
    let out = mailbox.run(&["run"]);
    assert!(out.status.success(), "{}", describe(&out));
    let secret = mailbox.passphrase();
    assert_eq!(
        fs::read_to_string(bin.join("passphrase")).unwrap(),
        secret,
        "the first line of the key"
    );
    let argv = fs::read_to_string(bin.join("argv")).unwrap();
    assert!(!argv.contains(&secret));
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "full",
            "--archive-dir",
            mailbox.root.join("backup/cache").to_str().unwrap(),
            "--exclude",
            mailbox.root.join("backup").to_str().unwrap(),
            "--volsize",
            "250",
            "--allow-source-mismatch",
            mailbox.root.to_str().unwrap(),
            &format!("file://{}", mailbox.target().display()),
            "--",
        ]
    );
    let gnupg = PathBuf::from(fs::read_to_string(bin.join("gnupghome")).unwrap());
    assert_eq!(gnupg, mailbox.root.join("backup/gnupg"));
    assert_eq!(
        fs::metadata(&gnupg).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn the_systemd_credential_wins_over_the_key_file() {
    let mut mailbox = MailBox::new();
    let bin = fake_duplicity(&mut mailbox, "exit 0");
    let creds = mailbox.dir.path().join("credentials");
    fs::create_dir(&creds).unwrap();
    fs::write(creds.join("passphrase"), "from-the-credential\nrest").unwrap();
    fs::remove_file(mailbox.key_file()).unwrap();
    let out = mailbox
        .cmd(&["run"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        fs::read_to_string(bin.join("passphrase")).unwrap(),
        "from-the-credential"
    );
}

#[test]
fn duplicity_exit_codes_pass_through() {
    for (behaviour, code) in [
        ("exit 42", 42),
        ("exit 31", 31),
        ("kill -TERM $$", 128 + 15),
        ("kill -KILL $$", 128 + 9),
    ] {
        let mut mailbox = MailBox::new();
        fake_duplicity(&mut mailbox, behaviour);
        let out = mailbox.run(&["run"]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{behaviour}: {}",
            describe(&out)
        );
        assert!(stderr(&out).contains("not complete"), "{}", stderr(&out));
    }
}

#[test]
fn duplicitys_lock_message_becomes_a_plain_one() {
    let mut mailbox = MailBox::new();
    fake_duplicity(
        &mut mailbox,
        "echo 'Another duplicity instance is already running with this archive directory' >&2; exit 23",
    );
    let out = mailbox.run(&["run"]);
    assert_eq!(out.status.code(), Some(23));
    assert!(
        stderr(&out).contains("another backup is already running"),
        "{}",
        stderr(&out)
    );
    // prune too says why, rather than only an exit code.
    fs::create_dir_all(mailbox.target()).unwrap();
    fs::write(
        mailbox
            .target()
            .join("duplicity-full.20261120T010000Z.manifest.gpg"),
        "m",
    )
    .unwrap();
    let out = mailbox.run(&["prune"]);
    assert_eq!(out.status.code(), Some(23));
    assert!(
        stderr(&out).contains("a backup is running") && stderr(&out).contains("prune again"),
        "{}",
        stderr(&out)
    );
    // Exit 23 for another reason is not reported as a lock.
    let mut mailbox = MailBox::new();
    fake_duplicity(&mut mailbox, "echo 'some other user error' >&2; exit 23");
    let out = mailbox.run(&["run"]);
    assert_eq!(out.status.code(), Some(23));
    assert!(!stderr(&out).contains("another backup"), "{}", stderr(&out));
}

#[test]
fn prune_passes_the_reference_command_lines() {
    let mut mailbox = MailBox::new();
    let bin = fake_duplicity(&mut mailbox, "exit 0");
    fs::create_dir_all(mailbox.target()).unwrap();
    fs::write(
        mailbox
            .target()
            .join("duplicity-full.20261120T010000Z.manifest.gpg"),
        "x",
    )
    .unwrap();
    let out = mailbox.run(&["prune", "--keep-days", "7"]);
    assert!(out.status.success(), "{}", describe(&out));
    let argv = fs::read_to_string(bin.join("argv")).unwrap();
    let calls: Vec<&str> = argv.split("--\n").filter(|c| !c.is_empty()).collect();
    assert_eq!(calls.len(), 2, "{argv}");
    assert!(
        calls[0].starts_with("remove-older-than\n7D\n--archive-dir\n"),
        "{argv}"
    );
    assert!(calls[0].contains("--force\n"));
    assert!(
        calls[1].starts_with("cleanup\n--archive-dir\n") && calls[1].contains("--force\n"),
        "{argv}"
    );

    // A failing remove-older-than stops before cleanup, with its exit code.
    let mut mailbox2 = MailBox::new();
    let bin = fake_duplicity(&mut mailbox2, "exit 50");
    fs::create_dir_all(mailbox2.target()).unwrap();
    fs::write(
        mailbox2
            .target()
            .join("duplicity-full.20261120T010000Z.manifest.gpg"),
        "x",
    )
    .unwrap();
    let out = mailbox2.run(&["prune"]);
    assert_eq!(out.status.code(), Some(50));
    let argv = fs::read_to_string(bin.join("argv")).unwrap();
    assert!(
        argv.starts_with("remove-older-than\n3D\n") && !argv.contains("cleanup"),
        "{argv}"
    );

    let out = mailbox.run(&["prune", "--keep-days", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn duplicity_not_installed_names_the_package() {
    let mut mailbox = MailBox::new();
    mailbox.path_var = mailbox.dir.path().join("empty-bin").into_os_string();
    let out = mailbox.run(&["run"]);
    assert_one_line_error(
        &out,
        &["duplicity is not installed", "apt-get install duplicity"],
    );
}

#[test]
fn a_target_that_is_a_file() {
    let mut mailbox = MailBox::new();
    let bin = fake_duplicity(&mut mailbox, "exit 0");
    fs::write(mailbox.target(), "not a directory").unwrap();
    for cmd in ["run", "status", "prune"] {
        let out = mailbox.run(&[cmd]);
        assert_one_line_error(
            &out,
            &[mailbox.target().to_str().unwrap(), "not a directory"],
        );
    }
    assert!(!bin.join("argv").exists());
    assert_eq!(
        fs::read_to_string(mailbox.target()).unwrap(),
        "not a directory"
    );
}

#[test]
fn status_of_a_box_without_backups_writes_nothing() {
    let mailbox = MailBox::new();
    let before = listing(mailbox.dir.path());
    let out = mailbox.ok(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("No backups yet"));
    let json = mailbox.status();
    assert_eq!(json["backups"], serde_json::json!([]));
    assert_eq!(
        before,
        listing(mailbox.dir.path()),
        "status wrote something"
    );
}

#[test]
fn a_restore_that_fails_half_way_leaves_the_live_data_untouched() {
    let mut mailbox = MailBox::new();
    write_file(
        &mailbox.root.join("mail/a.eml"),
        b"live",
        0o600,
        std::time::SystemTime::now(),
    );
    // duplicity writes part of the tree, then fails.
    fake_duplicity(
        &mut mailbox,
        r#"for dest; do :; done; mkdir -p "$dest/mail"; echo partial > "$dest/mail/a.eml"; exit 50"#,
    );
    // duplicity's cache and GnuPG home may appear; nothing else may change.
    let skip = [
        "fake-bin",
        "user data ü/backup/cache",
        "user data ü/backup/gnupg",
    ];
    // A directory's time changes with what is made and removed in it (the
    // cache above, the restore's work beside STORAGE_ROOT) whenever the
    // clock has passed a second meanwhile: its entries are compared instead.
    let state = || {
        let mut tree = snapshot(mailbox.dir.path(), &skip);
        for file in tree.values_mut().filter(|f| f.kind == "dir") {
            file.mtime = None;
        }
        tree
    };
    let before = state();
    let out = mailbox.run(&["restore", "--in-place", "--yes", "--services", ""]);
    assert_eq!(out.status.code(), Some(50), "{}", describe(&out));
    assert!(stderr(&out).contains("is untouched"), "{}", stderr(&out));
    assert_same_tree(&before, &state());
}

/// A failed restore into a directory the operator made (or mounted) leaves
/// that directory where it was, empty, with its mode.
#[test]
fn a_failed_restore_keeps_the_empty_directory_it_was_given() {
    let mut mailbox = MailBox::new();
    let dir = mailbox.dir.path().join("mounted");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
    fake_duplicity(
        &mut mailbox,
        r#"for dest; do :; done; mkdir -p "$dest/mail"; echo partial > "$dest/mail/a.eml"; chmod 755 "$dest"; exit 50"#,
    );
    let out = mailbox.run(&["restore", "--to", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(50), "{}", describe(&out));
    assert!(stderr(&out).contains("is empty again"), "{}", stderr(&out));
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
        0o750
    );
    let argv = fs::read_to_string(mailbox.dir.path().join("fake-bin/argv")).unwrap();
    assert!(argv.lines().any(|l| l == "--force"), "{argv}");

    // A directory that did not exist is not left behind half written.
    let new = mailbox.dir.path().join("new");
    let out = mailbox.run(&["restore", "--to", new.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(50), "{}", describe(&out));
    assert!(!new.exists());
}
