//! Snapshot mode with real duplicity: the snapshot holds the data as it was
//! when the services stopped, later changes do not leak into that backup nor
//! break the next, leftovers are cleaned up and never backed up.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::common::mount::Mount;
use crate::common::*;

#[test]
fn a_snapshot_backup_holds_the_data_as_it_was_when_taken() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        make_mail_store(&mailbox.root, 300);
        let at_stop = live_state(&mailbox.root);

        let out = mailbox.ok(&["snapshot"]);
        assert!(stderr(&out).contains("files linked"), "{}", stderr(&out));
        let snap = mailbox.root.join("backup/snapshot");
        // The snapshot is the data, owners, modes and times included.
        assert_same_tree(&at_stop, &snapshot(&snap, &[]));
        // Messages are hard links; everything else is a copy.
        let message = "mail/mailboxes/example.com/bob/cur";
        let first = fs::read_dir(snap.join(message))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let original = mailbox.root.join(message).join(first.file_name());
        assert_eq!(
            first.metadata().unwrap().ino(),
            fs::metadata(&original).unwrap().ino()
        );
        let index = "mail/mailboxes/example.com/bob/dovecot.index";
        assert_ne!(
            fs::metadata(snap.join(index)).unwrap().ino(),
            fs::metadata(mailbox.root.join(index)).unwrap().ino()
        );

        // The services run again and change things; the backup does not see
        // it. (A second later: duplicity tells changes by size and mtime, in
        // whole seconds.)
        next_second();
        a_day_of_mail(&mailbox.root);
        mailbox.ok(&["run", "--from-snapshot"]);
        mailbox.ok(&["snapshot", "--remove"]);
        assert!(!snap.exists());
        let restored = plain_restore(&mailbox, &flavor, None);
        assert_same_tree(&at_stop, &snapshot(&restored, &[]));

        // The next snapshot backup is an increment with the changes.
        next_second();
        let now = live_state(&mailbox.root);
        mailbox.ok(&["snapshot"]);
        mailbox.ok(&["run", "--from-snapshot"]);
        mailbox.ok(&["snapshot", "--remove"]);
        assert_eq!(mailbox.kinds(), ["inc", "full"]);
        let restored = plain_restore(&mailbox, &flavor, None);
        assert_same_tree(&now, &snapshot(&restored, &[]));

        // And a live backup after that continues the same chain.
        next_second();
        mailbox.ok(&["run"]);
        assert_eq!(mailbox.kinds(), ["inc", "inc", "full"]);
        let restored = plain_restore(&mailbox, &flavor, None);
        assert_same_tree(&now, &snapshot(&restored, &[]));
    }
}

#[test]
fn a_leftover_snapshot_is_replaced_and_never_backed_up() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 30);
    // What a killed run left: a half-built and a complete, stale snapshot.
    fs::create_dir_all(mailbox.root.join("backup/snapshot.partial/mail")).unwrap();
    fs::create_dir_all(mailbox.root.join("backup/snapshot/stale")).unwrap();
    fs::write(mailbox.root.join("backup/snapshot/stale/old.txt"), "old").unwrap();

    // A live backup never holds them.
    mailbox.ok(&["run"]);
    let restored = plain_restore(&mailbox, flavor, None);
    assert!(!restored.join("backup").exists());
    assert_same_tree(&live_state(&mailbox.root), &snapshot(&restored, &[]));

    // The next snapshot sets them aside (removing them could take minutes,
    // which the mail must not wait for) and replaces them; removing the
    // snapshot after the backup removes them too.
    mailbox.ok(&["snapshot"]);
    assert!(!mailbox.root.join("backup/snapshot.partial").exists());
    assert!(!mailbox.root.join("backup/snapshot/stale").exists());
    assert!(mailbox
        .root
        .join("backup/snapshot.leftover-1/stale/old.txt")
        .exists());
    assert!(mailbox
        .root
        .join("backup/snapshot.leftover-2/mail")
        .exists());
    assert_same_tree(
        &live_state(&mailbox.root),
        &snapshot(&mailbox.root.join("backup/snapshot"), &[]),
    );
    mailbox.ok(&["snapshot", "--remove"]);
    assert_eq!(
        fs::read_dir(mailbox.root.join("backup"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("snapshot"))
            .count(),
        0
    );
    mailbox.ok(&["snapshot"]);

    // run --from-snapshot without a snapshot refuses rather than back up
    // the live data behind the operator's back.
    mailbox.ok(&["snapshot", "--remove"]);
    let out = mailbox.run(&["run", "--from-snapshot"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no snapshot"), "{}", stderr(&out));
}

#[test]
fn without_hard_links_messages_are_copied_and_it_says_so() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 60);
    // backup/ on another filesystem.
    let backup = mailbox.root.join("backup");
    let key = fs::read(mailbox.key_file()).unwrap();
    let _other_filesystem = Mount::tmpfs(&backup, "");
    {
        fs::write(mailbox.key_file(), &key).unwrap();
        let out = mailbox.ok(&["snapshot"]);
        assert!(
            stderr(&out).contains("cannot be hard-linked into the snapshot: copied instead"),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(" 0 files linked"), "{}", stderr(&out));
        assert_same_tree(
            &live_state(&mailbox.root),
            &snapshot(&backup.join("snapshot"), &[]),
        );
        mailbox.ok(&["run", "--from-snapshot"]);
        let restored = plain_restore(&mailbox, flavor, None);
        assert_same_tree(&live_state(&mailbox.root), &snapshot(&restored, &[]));
    }
}

/// A file the services rewrite right after the snapshot, same size, is not
/// taken for unchanged by the next backup: they start again only once the
/// clock has passed the second of the newest copied file.
#[test]
fn a_rewrite_right_after_the_snapshot_is_in_the_next_backup() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 30);
    let index = mailbox
        .root
        .join("mail/mailboxes/example.com/alice/dovecot.index");
    fs::write(&index, [1u8; 4096]).unwrap();
    mailbox.ok(&["snapshot"]);
    // The services are back: Dovecot rewrites its index at once.
    fs::write(&index, [2u8; 4096]).unwrap();
    let copied = fs::metadata(
        mailbox
            .root
            .join("backup/snapshot/mail/mailboxes/example.com/alice/dovecot.index"),
    )
    .unwrap();
    assert!(
        fs::metadata(&index).unwrap().mtime() > copied.mtime(),
        "the rewrite has the snapshot's mtime"
    );
    mailbox.ok(&["run", "--from-snapshot"]);
    mailbox.ok(&["snapshot"]);
    mailbox.ok(&["run", "--from-snapshot"]);
    let restored = plain_restore(&mailbox, flavor, None);
    assert_eq!(
        fs::read(restored.join("mail/mailboxes/example.com/alice/dovecot.index")).unwrap(),
        [2u8; 4096]
    );
}

/// A copied file dated in the future (a clock that was once ahead) does not
/// keep the mail services waiting for the clock to reach that date: a
/// rewrite now gets the present time, which differs from it anyway.
#[test]
fn a_copied_file_dated_in_the_future_does_not_hold_the_mail_up() {
    needs_root!();
    let mailbox = MailBox::new().with_flavor(&flavors()[0]);
    make_mail_store(&mailbox.root, 3);
    let index = mailbox
        .root
        .join("mail/mailboxes/example.com/alice/dovecot.index");
    fs::write(&index, [1u8; 4096]).unwrap();
    let in_2099 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(4_070_908_800);
    fs::File::options()
        .write(true)
        .open(&index)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(in_2099))
        .unwrap();
    let started = std::time::Instant::now();
    let child = mailbox
        .cmd(&["snapshot"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let waited = std::thread::spawn(move || child.wait_with_output());
    while !waited.is_finished() && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !waited.is_finished() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let out = waited.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        started.elapsed().as_secs() < 10,
        "the snapshot waited {:?} for a file dated 2099",
        started.elapsed()
    );
    assert_eq!(
        fs::metadata(
            mailbox
                .root
                .join("backup/snapshot/mail/mailboxes/example.com/alice/dovecot.index")
        )
        .unwrap()
        .modified()
        .unwrap(),
        in_2099
    );
}

/// A snapshot backup restores exactly what a live backup of the same tree
/// restores, on a tree shaped like a real box: set-id bits, FIFOs, sparse
/// files, a path just under the kernel's limit, odd names, hard links.
#[test]
fn a_snapshot_backup_restores_exactly_what_a_live_backup_does() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        make_mail_store(&mailbox.root, 60);
        let long = make_odd_tree(&mailbox.root);
        let live = live_state(&mailbox.root);
        assert!(live.contains_key(long.to_str().unwrap()));

        mailbox.ok(&["snapshot"]);
        let snap = mailbox.root.join("backup/snapshot");
        assert_same_tree(&live, &snapshot(&snap, &[]));
        // Outside mail/ a link, inside a copy; both stay sparse.
        let ino = |p: &std::path::Path| fs::symlink_metadata(p).unwrap().ino();
        for (rel, linked) in [
            ("owncloud/data/disk.img", true),
            ("mail/spamassassin/bayes_toks", false),
            ("owncloud/data/pipe", true),
            ("mail/spool.fifo", false),
            ("www/cgi/setgid-tool", true),
            ("mail/setgid in mail", false),
        ] {
            assert_eq!(
                ino(&snap.join(rel)) == ino(&mailbox.root.join(rel)),
                linked,
                "{rel}"
            );
        }
        let copy = fs::metadata(snap.join("mail/spamassassin/bayes_toks")).unwrap();
        assert_eq!(copy.len(), 100 << 20);
        assert!(
            copy.blocks() * 512 < 1 << 20,
            "the copy of a sparse file takes {} bytes",
            copy.blocks() * 512
        );

        mailbox.ok(&["run", "--from-snapshot"]);
        mailbox.ok(&["snapshot", "--remove"]);
        // Restored beside STORAGE_ROOT under a shorter name, so that the
        // long path fits.
        let from_snapshot = mailbox.dir.path().join("s");
        plain_restore_to(&mailbox, &flavor, None, &from_snapshot);
        assert_same_tree(&live, &snapshot(&from_snapshot, &[]));

        // A live backup of the same tree restores the same.
        next_second();
        mailbox.ok(&["run", "--full"]);
        let from_live = mailbox.dir.path().join("l");
        plain_restore_to(&mailbox, &flavor, None, &from_live);
        assert_same_tree(&snapshot(&from_snapshot, &[]), &snapshot(&from_live, &[]));
    }
}

/// The snapshot's cost does not grow with data the mail services never
/// write: Nextcloud's and the web sites' files are hard links, while the
/// files Dovecot changes in place are copies that keep the moment of the
/// snapshot.
#[test]
fn non_mail_data_is_linked_and_what_dovecot_rewrites_is_copied() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 60);
    let video = mailbox.root.join("owncloud/alice/files/holiday.mp4");
    fs::create_dir_all(video.parent().unwrap()).unwrap();
    random_file(&video, 40_000_000);
    let log = mailbox
        .root
        .join("mail/mailboxes/example.com/alice/dovecot.index.log");
    let at_snapshot = live_state(&mailbox.root);

    let out = mailbox.ok(&["snapshot"]);
    let snap = mailbox.root.join("backup/snapshot");
    let ino = |p: &std::path::Path| fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&snap.join("owncloud/alice/files/holiday.mp4")),
        ino(&video),
        "a large file outside the mail is linked"
    );
    assert_ne!(
        ino(&snap.join("mail/mailboxes/example.com/alice/dovecot.index.log")),
        ino(&log),
        "Dovecot's log is copied"
    );
    assert!(stderr(&out).contains("files linked"), "{}", stderr(&out));

    // Dovecot runs again and writes into its files in place.
    let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"appended after the snapshot").unwrap();
    drop(f);
    let index = mailbox
        .root
        .join("mail/mailboxes/example.com/bob/dovecot.index");
    let f = fs::OpenOptions::new().write(true).open(&index).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"rewritten", 0).unwrap();
    drop(f);
    assert_same_tree(&at_snapshot, &snapshot(&snap, &[]));

    mailbox.ok(&["run", "--from-snapshot"]);
    mailbox.ok(&["snapshot", "--remove"]);
    let restored = plain_restore(&mailbox, flavor, None);
    assert_same_tree(&at_snapshot, &snapshot(&restored, &[]));
}

/// The backup is compared with the snapshot it was made from, while the
/// live data moves on; a difference is named; a requested comparison is
/// left for mailbackup-verify.service to report.
#[test]
fn verify_compares_the_backup_with_its_snapshot() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 60);
    mailbox.ok(&["snapshot"]);
    mailbox.ok(&["run", "--from-snapshot"]);
    next_second();
    a_day_of_mail(&mailbox.root);

    let out = mailbox.ok(&["verify", "--from-snapshot"]);
    assert!(
        stderr(&out).contains("the latest backup matches")
            && stderr(&out).contains("backup/snapshot"),
        "{}",
        stderr(&out)
    );
    // Not asked for: nothing runs.
    let out = mailbox.ok(&["verify", "--from-snapshot", "--if-requested"]);
    assert_eq!(stderr(&out), "");

    let sieve = "mail/sieve/global/spam with space.sieve";
    fs::write(
        mailbox.root.join("backup/snapshot").join(sieve),
        "altered\n",
    )
    .unwrap();
    let out = mailbox.run(&["verify", "--from-snapshot"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains(sieve), "{}", stderr(&out));

    // Asked for: the outcome is left for the verify unit, the backup is fine.
    let request = mailbox.root.join("backup/verify-requested");
    fs::write(&request, "requested\n").unwrap();
    mailbox.ok(&["verify", "--from-snapshot", "--if-requested"]);
    assert!(!request.exists());
    let result = fs::read_to_string(mailbox.root.join("backup/verify-result")).unwrap();
    assert!(
        result.starts_with("1\n") && result.contains(sieve),
        "{result}"
    );
}

/// The snapshot is prepared while the mail runs and completed while it
/// waits: whatever the mail services did in between (deliveries, flag
/// changes, expunges, folders made and removed, indexes rewritten in place,
/// a Maildir outside mail/) is in the completed snapshot exactly as at its
/// completion, messages still hard links.
#[test]
fn a_snapshot_prepared_early_is_completed_to_the_moment() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_mail_store(&mailbox.root, 90);
    let carol = mailbox.root.join("carol/Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(carol.join(sub)).unwrap();
    }
    fs::write(carol.join("new/1.M1.box"), "Subject: one\r\n\r\n1\r\n").unwrap();
    fs::write(carol.join("new/2.M2.box"), "Subject: two\r\n\r\n2\r\n").unwrap();
    fs::write(carol.join("dovecot-uidlist"), "3 V1 N3\n").unwrap();
    mailbox.ok(&["snapshot", "--prepare"]);
    assert!(
        !mailbox.root.join("backup/snapshot").exists(),
        "not complete yet"
    );

    // The mail runs on.
    next_second();
    a_day_of_mail(&mailbox.root);
    let alice = mailbox.root.join("mail/mailboxes/example.com/alice");
    fs::create_dir_all(alice.join(".Archive/cur")).unwrap();
    fs::create_dir_all(alice.join(".Archive/tmp")).unwrap();
    fs::write(alice.join(".Archive/cur/9.M9.box:2,S"), "archived").unwrap();
    fs::remove_dir_all(
        mailbox
            .root
            .join("mail/mailboxes/example.com/bob/.Sent Items"),
    )
    .unwrap();
    // A message replaced under the same name: another inode.
    let first = fs::read_dir(alice.join("cur"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::remove_file(&first).unwrap();
    fs::write(&first, "a new message under an old name").unwrap();
    let log = alice.join("dovecot.index.log");
    let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"appended").unwrap();
    drop(f);
    fs::rename(carol.join("new/1.M1.box"), carol.join("cur/1.M1.box:2,S")).unwrap();
    fs::remove_file(carol.join("new/2.M2.box")).unwrap();
    fs::write(carol.join("new/3.M3.box"), "Subject: three\r\n\r\n3\r\n").unwrap();
    fs::write(carol.join("dovecot-uidlist"), "4 V1 N4\n").unwrap();

    let out = mailbox.ok(&["snapshot", "--complete"]);
    assert!(stderr(&out).contains("completed"), "{}", stderr(&out));
    let at_completion = live_state(&mailbox.root);
    let snap = mailbox.root.join("backup/snapshot");
    assert_same_tree(&at_completion, &snapshot(&snap, &[]));
    let ino = |p: &std::path::Path| fs::metadata(p).unwrap().ino();
    for rel in [
        "carol/Maildir/cur/1.M1.box:2,S",
        "carol/Maildir/new/3.M3.box",
    ] {
        assert_eq!(ino(&snap.join(rel)), ino(&mailbox.root.join(rel)), "{rel}");
    }
    let rel = first.strip_prefix(&mailbox.root).unwrap();
    assert_eq!(ino(&snap.join(rel)), ino(&first));
    assert_ne!(
        ino(&snap.join("carol/Maildir/dovecot-uidlist")),
        ino(&carol.join("dovecot-uidlist"))
    );

    mailbox.ok(&["run", "--from-snapshot"]);
    mailbox.ok(&["snapshot", "--remove"]);
    let restored = plain_restore(&mailbox, flavor, None);
    assert_same_tree(&at_completion, &snapshot(&restored, &[]));

    // Completing without a prepared snapshot takes a whole one.
    mailbox.ok(&["snapshot", "--complete"]);
    assert_same_tree(&live_state(&mailbox.root), &snapshot(&snap, &[]));
}
