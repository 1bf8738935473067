//! Operating backups with real duplicity: `restore` (to a directory, with
//! `--time`, with `--path`, in place), `list`, `verify` and `status --check`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::mount::Mount;
use crate::common::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A box with two backups: the state after the first, and the live state
/// (equal to the second).
fn box_with_two_backups(flavor: &Flavor) -> (MailBox, Tree) {
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 90);
    mailbox.ok(&["run"]);
    let first = live_state(&mailbox.root);
    next_second();
    let inbox = mailbox.root.join("mail/mailboxes/example.com/alice/new");
    fs::write(
        inbox.join("1800000000.M9.box.example.com"),
        "Subject: later\r\n\r\nlater\r\n",
    )
    .unwrap();
    fs::remove_file(mailbox.root.join("ssl/ssl_private_key.pem")).unwrap();
    mailbox.ok(&["run"]);
    (mailbox, first)
}

#[test]
fn restore_to_a_directory_whole_at_a_time_and_in_part() {
    needs_root!();
    for flavor in flavors() {
        let (mailbox, first) = box_with_two_backups(&flavor);
        let live = live_state(&mailbox.root);
        let out_dir = mailbox.dir.path().join("out");

        // The latest backup, whole, into a new directory.
        let latest = out_dir.join("latest");
        mailbox.ok(&["restore", "--to", latest.to_str().unwrap()]);
        assert_same_tree(&live, &snapshot(&latest, &[]));

        // The first backup, by time, into an empty directory.
        let older = out_dir.join("older");
        fs::create_dir_all(&older).unwrap();
        let first_time = mailbox.status()["backups"][1]["date"]
            .as_str()
            .unwrap()
            .to_owned();
        let t = chrono::NaiveDateTime::parse_from_str(&first_time, "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        mailbox.ok(&["restore", "--to", older.to_str().unwrap(), "--time", &t]);
        assert_same_tree(&first, &snapshot(&older, &[]));

        // One mailbox, and one file, to the same place under the directory.
        let part = out_dir.join("part");
        let rel = "mail/mailboxes/example.com/zoë";
        mailbox.ok(&["restore", "--to", part.to_str().unwrap(), "--path", rel]);
        let want: Tree = snapshot(&mailbox.root.join(rel), &[]);
        assert_same_tree(&want, &snapshot(&part.join(rel), &[]));
        assert_eq!(
            fs::read_dir(part.join("mail/mailboxes/example.com"))
                .unwrap()
                .count(),
            1,
            "only zoë"
        );

        // Given absolute, inside STORAGE_ROOT, as an operator may paste it.
        let one = out_dir.join("one");
        mailbox.ok(&[
            "restore",
            "--to",
            one.to_str().unwrap(),
            "--path",
            mailbox.root.join("mail/users.sqlite").to_str().unwrap(),
        ]);
        assert_eq!(
            fs::read(one.join("mail/users.sqlite")).unwrap(),
            fs::read(mailbox.root.join("mail/users.sqlite")).unwrap()
        );
    }
}

#[test]
fn restore_refuses_what_would_lose_data() {
    needs_root!();
    let (mailbox, _) = box_with_two_backups(&flavors()[0]);
    let full = mailbox.dir.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("precious"), "keep me").unwrap();
    let out = mailbox.run(&["restore", "--to", full.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(full.join("precious")).unwrap(),
        "keep me"
    );

    for bad in ["../etc", "/etc/passwd"] {
        let out = mailbox.run(&["restore", "--to", "/tmp/x-never", "--path", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(stderr(&out).contains("relative"), "{}", stderr(&out));
    }
    let out = mailbox.run(&["restore"]);
    assert_eq!(out.status.code(), Some(2), "--to or --in-place is required");

    // In place without --yes and without a terminal to ask on: nothing happens.
    let before = live_state(&mailbox.root);
    let out = mailbox.run(&["restore", "--in-place", "--services", ""]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(live_state(&mailbox.root), before);
}

#[test]
fn restore_in_place_keeps_the_previous_tree() {
    needs_root!();
    let (mailbox, first) = box_with_two_backups(&flavors()[0]);
    let backed_up = live_state(&mailbox.root);
    // Damage after the backup: this is what the restore undoes.
    fs::remove_dir_all(mailbox.root.join("mail/mailboxes/example.com/bob")).unwrap();
    fs::write(mailbox.root.join("mail/users.sqlite"), "garbage").unwrap();
    let damaged = live_state(&mailbox.root);
    let backup_dir_before = snapshot(&mailbox.root.join("backup"), &["cache", "gnupg"]);

    let out = mailbox.ok(&["restore", "--in-place", "--yes", "--services", ""]);
    assert_same_tree(&backed_up, &live_state(&mailbox.root));
    assert_ne!(backed_up, first);
    // The backups, key and cache moved into the restored tree.
    assert_eq!(
        snapshot(&mailbox.root.join("backup"), &["cache", "gnupg"]),
        backup_dir_before
    );
    // The damaged tree is kept beside it.
    let kept: Vec<_> = fs::read_dir(mailbox.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "{}", stderr(&out));
    assert_same_tree(&damaged, &snapshot(&kept[0], &["backup"]));
    assert!(
        stderr(&out).contains(kept[0].to_str().unwrap()),
        "{}",
        stderr(&out)
    );
    // And mailbackup goes on backing up the restored tree.
    next_second();
    mailbox.ok(&["run"]);
}

#[test]
fn a_restore_that_would_fill_the_disk_is_refused_and_changes_nothing() {
    needs_root!();
    a_restore_into_a_small_disk_is_refused(2_600_000, 0);
}

/// duplicity restores a sparse file in full: 8 MB that take no room now
/// do not fit.
#[test]
fn a_sparse_file_counts_in_full_for_the_room_a_restore_needs() {
    needs_root!();
    a_restore_into_a_small_disk_is_refused(1_000_000, 8_000_000);
}

/// A box on a 7 MB disk with `random_bytes` of data and a sparse file of
/// `sparse_bytes`, backed up: an in-place restore is refused up front.
fn a_restore_into_a_small_disk_is_refused(random_bytes: usize, sparse_bytes: u64) {
    let flavor = &flavors()[0];
    let outer = tempfile::tempdir().unwrap();
    let mount = outer.path().join("small");
    fs::create_dir(&mount).unwrap();
    // Room for the data and its backup, not for a second copy of the data.
    let _small = Mount::tmpfs(&mount, "size=7m");
    {
        let mailbox = mailbox_on(&mount, flavor);
        let root = mailbox.root.clone();
        fs::create_dir(root.join("mail")).unwrap();
        random_file(&root.join("mail/big.bin"), random_bytes);
        if sparse_bytes > 0 {
            fs::File::create(root.join("mail/sparse.img"))
                .unwrap()
                .set_len(sparse_bytes)
                .unwrap();
        }
        mailbox.ok(&["run"]);
        let before = live_state(&root);
        let out = mailbox.run(&["restore", "--in-place", "--yes", "--services", ""]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(
            stderr(&out).contains("too little: make room there"),
            "{}",
            stderr(&out)
        );
        assert_eq!(live_state(&root), before);
        let leftovers: Vec<_> = fs::read_dir(&mount)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            ["user-data"],
            "the partial restore was left behind"
        );
    }
}

/// A box whose STORAGE_ROOT (and so its backups) is `disk/user-data`.
fn mailbox_on(disk: &Path, flavor: &Flavor) -> MailBox {
    let mut mailbox = MailBox::new().with_flavor(flavor);
    let root = disk.join("user-data");
    fs::create_dir(&root).unwrap();
    fs::rename(mailbox.root.join("backup"), root.join("backup")).unwrap_or_else(|_| {
        copy_dir(&mailbox.root.join("backup"), &root.join("backup"));
    });
    fs::write(
        &mailbox.conf,
        format!("STORAGE_ROOT={}\nSTORAGE_USER=user-data\n", root.display()),
    )
    .unwrap();
    mailbox.root = root;
    mailbox
}

fn copy_dir(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn list_shows_the_files_of_a_backup() {
    needs_root!();
    let (mailbox, _) = box_with_two_backups(&flavors()[0]);
    let out = mailbox.ok(&["list"]);
    let text = stdout(&out);
    assert!(text.contains("mail/users.sqlite"), "{text}");
    assert!(
        !text.contains("ssl_private_key.pem"),
        "deleted before the latest backup: {text}"
    );
    let first = mailbox.status()["backups"][1]["date"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = chrono::NaiveDateTime::parse_from_str(&first, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc()
        .timestamp()
        .to_string();
    let text = stdout(&mailbox.ok(&["list", "--time", &t]));
    assert!(text.contains("ssl/ssl_private_key.pem"), "{text}");
}

#[test]
fn verify_passes_unchanged_and_names_a_changed_message() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        make_mail_store(&mailbox.root, 60);
        mailbox.ok(&["run"]);
        let out = mailbox.ok(&["verify"]);
        assert!(stderr(&out).contains("matches"), "{}", stderr(&out));

        // One message changes behind the backup's back, its time kept.
        let cur = mailbox.root.join("mail/mailboxes/example.com/bob/cur");
        let message = fs::read_dir(&cur).unwrap().next().unwrap().unwrap().path();
        let mtime = fs::metadata(&message).unwrap().modified().unwrap();
        let mut body = fs::read(&message).unwrap();
        body[0] ^= 0x20;
        fs::write(&message, body).unwrap();
        set_mtime(&message, mtime);
        let out = mailbox.run(&["verify"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let err = stderr(&out);
        let name = message.file_name().unwrap().to_str().unwrap();
        assert!(
            err.contains("differs from") && err.contains("1 place"),
            "{err}"
        );
        assert!(
            err.lines().any(|l| l.starts_with("  ") && l.contains(name)),
            "{err}"
        );
    }
}

fn check(mailbox: &MailBox, faketime: Option<&str>) -> (i32, String) {
    let mut c = match faketime {
        Some(offset) => {
            let mut c = clean_command("faketime", &mailbox.path_var);
            c.args(["-f", offset, BIN]);
            c
        }
        None => clean_command(BIN, &mailbox.path_var),
    };
    let out = c
        .arg("--config")
        .arg(&mailbox.conf)
        .args(["status", "--check"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one line: {}", describe(&out));
    (out.status.code().unwrap(), text)
}

#[test]
fn status_check_exit_codes() {
    needs_root!();
    let mailbox = MailBox::new();
    let (code, line) = check(&mailbox, None);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("MAILBACKUP CRITICAL - no complete backup"),
        "{line}"
    );

    make_mail_store(&mailbox.root, 30);
    mailbox.ok(&["run"]);
    let (code, line) = check(&mailbox, None);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("the backup key has not been confirmed"),
        "{line}"
    );
    let confirmed = mailbox
        .cmd(&["key", "confirm"])
        .stdin(fs::File::open(mailbox.key_file()).unwrap())
        .output()
        .unwrap();
    assert!(confirmed.status.success(), "{}", describe(&confirmed));
    let (code, line) = check(&mailbox, None);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("MAILBACKUP OK - newest backup 0.0 hours ago (full"),
        "{line}"
    );

    let (code, line) = check(&mailbox, Some("+2d"));
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("48 hours old, more than 36"), "{line}");
    let out = clean_command(BIN, &mailbox.path_var)
        .arg("--config")
        .arg(&mailbox.conf)
        .args(["status", "--check", "--max-age", "72"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    fs::write(mailbox.target().join("stray.txt"), "x").unwrap();
    let (code, line) = check(&mailbox, None);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("1 entries") && line.contains("did not write"),
        "{line}"
    );
    fs::remove_file(mailbox.target().join("stray.txt")).unwrap();

    // An interrupted newest set: volumes without a manifest.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let stamp = later.format("%Y%m%dT%H%M%SZ");
    let full = mailbox.status()["backups"][0]["date"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::write(
        mailbox
            .target()
            .join(format!("duplicity-inc.{full}.to.{stamp}.vol1.difftar.gpg")),
        "partial",
    )
    .unwrap();
    let interrupted = mailbox
        .target()
        .join(format!("duplicity-inc.{full}.to.{stamp}.vol1.difftar.gpg"));
    let (code, line) = check(&mailbox, None);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("is incomplete"), "{line}");
    fs::remove_file(interrupted).unwrap();

    // A complete set dated in the future (a clock that was wrong once)
    // neither hides that the real newest backup is old nor goes unnamed.
    for part in ["manifest.gpg", "vol1.difftar.gpg"] {
        fs::write(
            mailbox
                .target()
                .join(format!("duplicity-full.20300101T000000Z.{part}")),
            "x",
        )
        .unwrap();
    }
    let (code, line) = check(&mailbox, Some("+2d"));
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("48 hours old, more than 36"), "{line}");
    assert!(
        line.contains("the backup 20300101T000000Z is dated")
            && line.contains("in the future: check the system clock"),
        "{line}"
    );
    let (code, line) = check(&mailbox, None);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("in the future"), "{line}");

    // It cannot tell: UNKNOWN, not a false warning.
    fs::write(&mailbox.conf, "nothing useful\n").unwrap();
    let (code, line) = check(&mailbox, None);
    assert_eq!(code, 3, "{line}");
    assert!(line.starts_with("MAILBACKUP UNKNOWN - "), "{line}");
}

/// duplicity restores a file changed since the full backup by patching it
/// in its temporary directory; when that fails (full), it says so, leaves
/// the file out and exits 0. The restore says it is incomplete, and an
/// in-place restore changes nothing.
/// A box with a 700 MB sparse file (quick to back up), backed up, then
/// changed and backed up again: restoring it rebuilds the file from the
/// increment in duplicity's temporary files.
fn box_with_a_big_changed_file(mailbox: &MailBox) -> std::path::PathBuf {
    box_with_a_changed_sparse_file(mailbox, 700_000_000)
}

/// Backs up a box with a sparse file of `len` bytes, then appends to it
/// and backs up again. Returns the file.
fn box_with_a_changed_sparse_file(mailbox: &MailBox, len: u64) -> std::path::PathBuf {
    make_mail_store(&mailbox.root, 3);
    let big = mailbox.root.join("mail/big.bin");
    fs::File::create(&big).unwrap().set_len(len).unwrap();
    mailbox.ok(&["run"]);
    next_second();
    use std::io::Write;
    fs::File::options()
        .append(true)
        .open(&big)
        .unwrap()
        .write_all(b"changed")
        .unwrap();
    mailbox.ok(&["run"]);
    big
}

/// What the restore left beside or inside a directory of duplicity's.
fn temporary_leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.contains(".restoring-")
                || n.contains(".before-restore-")
                || n.contains(".mailbackup-tmp")
        })
        .collect()
}

/// The big file as restored: its length and how it ends.
fn assert_big_file_restored(big: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = fs::File::open(big).unwrap();
    assert_eq!(file.metadata().unwrap().len(), 700_000_007);
    file.seek(SeekFrom::End(-8)).unwrap();
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, b"\0changed");
}

/// duplicity rebuilds a changed file in its temporary directory: the
/// restore puts that on the disk it restores to, so a TMPDIR smaller than
/// the file (/tmp is a tmpfs in RAM on Debian 13) does not matter.
#[test]
fn a_small_temporary_directory_does_not_stop_a_restore() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        box_with_a_big_changed_file(&mailbox);
        let live = live_state_without_big(&mailbox.root);
        let tmp = tempfile::tempdir().unwrap();
        let _small = Mount::tmpfs(tmp.path(), "size=300m");
        {
            let dest = mailbox.dir.path().join("restored");
            let out = mailbox
                .cmd(&["restore", "--to", dest.to_str().unwrap()])
                .env("TMPDIR", tmp.path())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
            assert_big_file_restored(&dest.join("mail/big.bin"));
            assert_same_tree(&live, &live_state_without_big(&dest));
            let left = temporary_leftovers(mailbox.dir.path());
            assert!(left.is_empty(), "{left:?}");

            let out = mailbox
                .cmd(&["restore", "--in-place", "--yes", "--services", ""])
                .env("TMPDIR", tmp.path())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
            assert_big_file_restored(&mailbox.root.join("mail/big.bin"));
            let parent = mailbox.root.parent().unwrap();
            let left = temporary_leftovers(parent);
            assert!(
                left.iter().all(|n| n.contains(".before-restore-")),
                "{left:?}"
            );
        }
    }
}

fn live_state_without_big(root: &Path) -> Tree {
    snapshot(root, &["backup", "mail/big.bin"])
}

/// A disk with room for the restored files but not for duplicity's copy
/// of the changed file: refused before anything is written, and the
/// message counts the temporary files. Restoring into a mount point, they
/// go to TMPDIR, whose room is checked and named.
#[test]
fn a_restore_counts_duplicitys_temporary_files_in_the_room_it_needs() {
    needs_root!();
    let mailbox = MailBox::new().with_flavor(&flavors()[0]);
    box_with_a_big_changed_file(&mailbox);
    let disk = tempfile::tempdir().unwrap();
    let _small = Mount::tmpfs(disk.path(), "size=1000m");
    {
        let dest = disk.path().join("restored");
        let out = mailbox.run(&["restore", "--to", dest.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("for duplicity's temporary files")
                && err.contains("too little: make room there"),
            "{err}"
        );
        assert!(fs::read_dir(disk.path()).unwrap().next().is_none());
    }

    let big_disk = tempfile::tempdir().unwrap();
    let _big = Mount::tmpfs(big_disk.path(), "size=2g");
    let tmp = tempfile::tempdir().unwrap();
    let _small = Mount::tmpfs(tmp.path(), "size=300m");
    {
        let out = mailbox
            .cmd(&["restore", "--to", big_disk.path().to_str().unwrap()])
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("in TMPDIR ({}: ", tmp.path().display()))
                && err.contains("set TMPDIR to a directory on a disk with more room"),
            "{err}"
        );
        assert!(fs::read_dir(big_disk.path()).unwrap().next().is_none());
        assert!(fs::read_dir(tmp.path()).unwrap().next().is_none());

        let missing = tmp.path().join("missing");
        let out = mailbox
            .cmd(&["restore", "--to", big_disk.path().to_str().unwrap()])
            .env("TMPDIR", &missing)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(
            stderr(&out).contains(&format!(
                "so duplicity's temporary files go to TMPDIR, {}, which is not a directory",
                missing.display()
            )),
            "{}",
            stderr(&out)
        );
        assert!(fs::read_dir(big_disk.path()).unwrap().next().is_none());
    }
}

/// A file deleted since the backup is not in the estimate of the room a
/// restore needs: when duplicity then runs out of room rebuilding it, the
/// restore says it is incomplete and names it, and an in-place restore
/// leaves the live data as it was.
#[test]
fn a_restore_that_duplicity_could_not_complete_says_so() {
    needs_root!();
    for flavor in flavors() {
        let outer = tempfile::tempdir().unwrap();
        let disk = outer.path().join("disk");
        fs::create_dir(&disk).unwrap();
        let _small = Mount::tmpfs(&disk, "size=600m");
        {
            let mailbox = mailbox_on(&disk, &flavor);
            let big = box_with_a_big_changed_file(&mailbox);
            fs::remove_file(&big).unwrap();

            let dest = disk.join("restored");
            let out = mailbox.run(&["restore", "--to", dest.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
            assert!(
                stderr(&out).contains("the restore is incomplete")
                    && stderr(&out).contains("mail/big.bin"),
                "{}",
                stderr(&out)
            );
            assert!(temporary_leftovers(&dest).is_empty());
            fs::remove_dir_all(&dest).unwrap();

            let before = live_state(&mailbox.root);
            let out = mailbox.run(&["restore", "--in-place", "--yes", "--services", ""]);
            assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
            assert!(stderr(&out).contains("is untouched"), "{}", stderr(&out));
            assert_eq!(live_state(&mailbox.root), before);
            let left = temporary_leftovers(&disk);
            assert!(left.is_empty(), "{left:?}");
        }
    }
}

/// A restore holds `backup/restore.lock` while it runs: a backup started
/// meanwhile refuses and names it (in the units, before the mail stops),
/// a second restore is refused, and both work again once it is done.
#[test]
fn a_backup_or_restore_during_a_restore_is_refused_and_says_why() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 20);
    mailbox.ok(&["run"]);

    // The real duplicity, started 3 s late, with a mark when it is called.
    let wrapper = tempfile::tempdir().unwrap();
    let mark = wrapper.path().join("called");
    let script = wrapper.path().join("duplicity");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\nsleep 3\nexec {}/duplicity \"$@\"\n",
            mark.display(),
            flavor.bin_dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut path = std::ffi::OsString::from(wrapper.path());
    path.push(":");
    path.push(&mailbox.path_var);

    let dest = mailbox.dir.path().join("restored");
    let restore = mailbox
        .cmd(&["restore", "--to", dest.to_str().unwrap()])
        .env("PATH", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(30, || mark.exists()),
        "the restore never ran duplicity"
    );

    let kinds = mailbox.kinds();
    for args in [
        &["run"][..],
        &["snapshot", "--prepare"][..],
        &["snapshot"][..],
    ] {
        let out = mailbox.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("a restore is running (mailbackup restore --to, pid ")
                && err.contains("no backup now"),
            "{args:?}: {err}"
        );
    }
    assert!(!mailbox.root.join("backup/snapshot").exists());
    assert!(!mailbox.root.join("backup/snapshot.partial").exists());
    let other = mailbox.dir.path().join("other");
    let out = mailbox.run(&["restore", "--to", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("another restore is running (mailbackup restore --to, pid "),
        "{}",
        describe(&out)
    );
    assert!(!other.exists());

    let out = restore.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_same_tree(&live_state(&mailbox.root), &snapshot(&dest, &[]));
    assert_eq!(mailbox.kinds(), kinds);
    next_second();
    mailbox.ok(&["run"]);
    assert_eq!(mailbox.kinds().len(), kinds.len() + 1);
}

/// A box whose restore takes a while: a 3 GB sparse file, changed once.
fn box_with_a_slow_restore(flavor: &Flavor) -> MailBox {
    let mailbox = MailBox::new().with_flavor(flavor);
    box_with_a_changed_sparse_file(&mailbox, 3_000_000_000);
    mailbox
}

/// The duplicity processes whose command line names `path`.
fn duplicities_naming(path: &Path) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f"])
        .arg(format!("duplicity.*{}", path.display()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Ctrl-C in the middle of a restore (SIGINT to the terminal's process
/// group), or SIGINT/SIGTERM to mailbackup alone: duplicity ends too, and
/// mailbackup says so and removes what the restore wrote and duplicity's
/// temporary directory.
#[test]
fn an_interrupted_restore_stops_duplicity_and_leaves_nothing_behind() {
    needs_root!();
    use std::os::unix::process::CommandExt;
    for (flavor, to_group, signal) in [
        (&flavors()[0], true, libc::SIGINT),
        (&flavors()[1], true, libc::SIGINT),
        (&flavors()[0], false, libc::SIGINT),
        (&flavors()[1], false, libc::SIGINT),
        (&flavors()[0], false, libc::SIGTERM),
    ] {
        let mailbox = box_with_a_slow_restore(flavor);
        let outer = mailbox.dir.path().join("out");
        fs::create_dir(&outer).unwrap();
        let dest = outer.join("restored");
        let child = mailbox
            .cmd(&["restore", "--to", dest.to_str().unwrap()])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // duplicity is at work once its own temporary directory is there.
        assert!(wait_for(60, || {
            fs::read_dir(&outer).unwrap().flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".mailbackup-tmp-")
                    && fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_some())
            })
        }));
        std::thread::sleep(std::time::Duration::from_millis(500));
        let pid = child.id() as i32;
        unsafe { libc::kill(if to_group { -pid } else { pid }, signal) };
        // A restore that hangs fails the test rather than hanging it.
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watchdog = {
            let finished = finished.clone();
            std::thread::spawn(move || {
                if !wait_for(120, || finished.load(std::sync::atomic::Ordering::SeqCst)) {
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
            })
        };
        let out = child.wait_with_output().unwrap();
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        watchdog.join().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(130), "{err}");
        assert!(
            err.contains("the restore failed (interrupted); removed what it wrote"),
            "{err}"
        );
        assert!(
            fs::read_dir(&outer).unwrap().next().is_none(),
            "{:?}",
            fs::read_dir(&outer).unwrap().collect::<Vec<_>>()
        );
        assert!(wait_for(10, || duplicities_naming(&dest).is_empty()));
    }
}

/// A file deleted since the backup is not in the estimate of the room: its
/// restore runs out of room writing it, and duplicity 0.8 then hangs after
/// its traceback. mailbackup ends it and says why.
#[test]
fn a_restore_that_runs_out_of_room_and_hangs_is_ended() {
    needs_root!();
    let mailbox = MailBox::new().with_flavor(&flavors()[0]);
    let big = box_with_a_big_changed_file(&mailbox);
    fs::remove_file(&big).unwrap();
    let disk = tempfile::tempdir().unwrap();
    let _small = Mount::tmpfs(disk.path(), "size=1000m");
    {
        let dest = disk.path().join("restored");
        let started = std::time::Instant::now();
        let out = mailbox.run(&[
            "restore",
            "--to",
            dest.to_str().unwrap(),
            "--path",
            "mail/big.bin",
        ]);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "{err}"
        );
        assert!(
            err.contains("No space left on device")
                && err.contains("the restore failed (duplicity ran out of room and hung"),
            "{err}"
        );
        assert!(duplicities_naming(&dest).is_empty());
        let left = temporary_leftovers(disk.path());
        assert!(left.is_empty(), "{left:?}");
    }
}
