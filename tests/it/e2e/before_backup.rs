//! `STORAGE_ROOT/backup/before-backup` in a booted systemd (Debian 12 root,
//! real postfix, dovecot and duplicity, the package installed): run as
//! STORAGE_USER with the box's settings, before the snapshot is taken (mail
//! up) or, with `--downtime full`, before duplicity (mail down); what it
//! writes is in the backup; its failure fails the backup, and its words are
//! in the failure mail.

use crate::common::container::Container;
use crate::common::needs_root;

/// A hook that says who, where and when it ran (is the snapshot taken, is
/// the mail up, is duplicity running) into STORAGE_ROOT/before-ran, and puts a "database dump"
/// into STORAGE_ROOT/dump.sql, which the backup must then hold.
const HOOK: &str = r#"#!/bin/sh
{
  id -un
  echo "$STORAGE_ROOT $PRIMARY_HOSTNAME"
  systemctl is-active mailbackup-snapshot.service
  systemctl is-active postfix.service
  if pgrep -f 'bin/duplicit[y]' >/dev/null; then echo duplicity; else echo no-duplicity; fi
} > "$STORAGE_ROOT/before-ran"
date +%s.%N > "$STORAGE_ROOT/dump.sql"
"#;

fn install_hook(c: &Container, script: &str) {
    std::fs::write(c.path(&format!("{}/backup/before-backup", c.root)), script).unwrap();
    c.ok(&format!("chmod 755 {}/backup/before-backup", c.root));
}

fn backup_of(c: &Container, file: &str) -> String {
    c.ok(&format!(
        r#"set -e
        rm -rf /tmp/r && mkdir -m 700 /tmp/r /tmp/r/gnupg
        PASSPHRASE="$(head -n1 {root}/backup/secret_key.txt)" GNUPGHOME=/tmp/r/gnupg \
            duplicity restore --archive-dir /tmp/r/cache --file-to-restore {file} \
            file://{root}/backup/encrypted /tmp/r/{file} >/dev/null
        cat /tmp/r/{file}"#,
        root = c.root
    ))
}

#[test]
fn the_hook_runs_as_the_box_user_before_the_snapshot_and_its_output_is_backed_up() {
    needs_root!();
    let c = Container::boot();
    c.set_up_box(4, "");
    install_hook(&c, HOOK);
    let (rc, _) = c.start_backup_watching();
    assert_eq!(
        rc,
        0,
        "{}",
        c.ok("journalctl -u 'mailbackup*' --no-pager | tail -60")
    );
    let ran = c.ok(&format!("cat {}/before-ran", c.root));
    assert_eq!(
        ran,
        format!(
            "user-data\n{} box.example.com\ninactive\nactive\nno-duplicity\n",
            c.root
        )
    );
    let dump = c.ok(&format!("cat {}/dump.sql", c.root));
    assert_eq!(
        backup_of(&c, "dump.sql"),
        dump,
        "the backup has another dump"
    );
    assert!(
        c.hook_mark(20).is_some(),
        "the after-backup hook did not run"
    );
}

#[test]
fn with_downtime_full_the_hook_runs_while_the_mail_is_down() {
    needs_root!();
    let c = Container::boot();
    c.set_up_box(4, "--downtime full");
    install_hook(&c, HOOK);
    let (rc, _) = c.start_backup_watching();
    assert_eq!(
        rc,
        0,
        "{}",
        c.ok("journalctl -u 'mailbackup*' --no-pager | tail -60")
    );
    let ran = c.ok(&format!("cat {}/before-ran", c.root));
    assert_eq!(
        ran,
        format!(
            "user-data\n{} box.example.com\ninactive\ninactive\nno-duplicity\n",
            c.root
        )
    );
    c.mail_is_up();
    let dump = c.ok(&format!("cat {}/dump.sql", c.root));
    assert_eq!(backup_of(&c, "dump.sql"), dump);
}

#[test]
fn a_failing_hook_fails_the_backup_and_the_mail_quotes_it() {
    needs_root!();
    let c = Container::boot();
    c.set_up_box(4, "");
    install_hook(
        &c,
        "#!/bin/sh\necho 'pg_dump: connection to the database refused' >&2\nexit 3\n",
    );
    let (rc, _) = c.start_backup_watching();
    assert_ne!(rc, 0);
    c.mail_is_up();
    assert_ne!(c.result(), "success");
    assert_eq!(
        c.hook_mark(3),
        None,
        "the after-backup hook ran after a failed backup"
    );
    assert_eq!(
        c.ok(&format!(
            "ls {}/backup/encrypted 2>/dev/null | wc -l",
            c.root
        ))
        .trim(),
        "0",
        "duplicity ran after the hook failed"
    );
    let mail = c.failure_mail();
    assert!(mail.contains("mailbackup.service failed"), "{mail}");
    assert!(
        mail.contains("pg_dump: connection to the database refused"),
        "the hook's words are not in the mail: {mail}"
    );
    // In the journal under the hook's name.
    let journal = c.ok("journalctl -u mailbackup-before-backup.service -o short --no-pager");
    assert!(
        journal.contains("before-backup[") && journal.contains("pg_dump: connection"),
        "{journal}"
    );
    // The monitoring check names the step that failed.
    let out = c.sh("mailbackup status --check");
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(
        line.contains("the last backup run failed: the before-backup hook failed: see journalctl -u mailbackup-before-backup.service"),
        "{line}"
    );
    let table = c.ok("mailbackup status");
    assert!(
        table.contains("The last backup run failed: the before-backup hook failed"),
        "{table}"
    );

    // The hook gone: the backup runs again, as it always did.
    c.ok(&format!("rm {}/backup/before-backup", c.root));
    let (rc, _) = c.start_backup_watching();
    assert_eq!(
        rc,
        0,
        "{}",
        c.ok("journalctl -u 'mailbackup*' --no-pager | tail -60")
    );
    assert!(c.hook_mark(20).is_some());
}
