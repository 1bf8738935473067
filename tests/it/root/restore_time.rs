//! `--time` before every backup: duplicity would restore the oldest one
//! instead; mailbackup says there is none that old, and restores nothing.

use crate::common::*;

#[test]
fn a_time_before_every_backup_restores_nothing_and_says_so() {
    needs_root!();
    let mailbox = MailBox::new();
    make_mail_store(&mailbox.root, 2);
    mailbox.ok(&["run"]);
    let dest = mailbox.dir.path().join("restored");
    let out = mailbox.run(&[
        "restore",
        "--to",
        dest.to_str().unwrap(),
        "--time",
        "2020-01-01",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let said = stderr(&out);
    assert!(
        said.contains("was made at or before 2020-01-01 (2020-01-01 00:00): the oldest is of"),
        "{said}"
    );
    assert!(!dest.exists());
    // A time after the backup restores it.
    let out = mailbox.run(&["restore", "--to", dest.to_str().unwrap(), "--time", "now"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(dest.join("mail").is_dir());
}
