//! End to end, in a booted systemd: the default (snapshot) mode backs up a
//! tree shaped like a real box exactly as a live backup does, and a
//! symlinked STORAGE_ROOT is backed up, restored and verified as the
//! directory it names.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::common::container::Container;
use crate::common::*;

/// Restores the newest backup in the container with plain duplicity into
/// `dest` (which must not exist).
fn restore(c: &Container, dest: &str) {
    c.ok(&format!(
        r#"set -e
        w=$(mktemp -d); mkdir -m 700 $w/gnupg
        PASSPHRASE="$(head -n1 /home/user-data/backup/secret_key.txt)" GNUPGHOME=$w/gnupg \
            duplicity restore --archive-dir $w/cache file:///home/user-data/backup/encrypted {dest} >/dev/null
        rm -rf $w"#
    ));
}

fn journal(c: &Container, unit: &str) -> String {
    c.ok(&format!("journalctl -u {unit} -o cat --no-pager"))
}

#[test]
fn the_default_mode_restores_what_a_live_backup_does_on_a_real_box() {
    needs_root!();
    let c = Container::boot();
    c.set_up_box(1, "");
    c.ok("rm /home/user-data/backup/after-backup && mkdir -m 700 /r");
    let root = c.path("/home/user-data");
    make_mail_store(&root, 60);
    make_odd_tree(&root);
    let live = live_state(&root);

    // The snapshot keeps sparse files sparse.
    c.ok("systemctl start mailbackup-snapshot.service && systemctl reload mailbackup-snapshot.service");
    let copy = fs::metadata(c.path("/home/user-data/backup/snapshot/mail/spamassassin/bayes_toks"))
        .unwrap();
    assert_eq!(copy.len(), 100 << 20);
    assert!(
        copy.blocks() * 512 < 1 << 20,
        "{} bytes on disk",
        copy.blocks() * 512
    );
    c.ok("systemctl stop mailbackup-snapshot.service");
    assert!(!c.path("/home/user-data/backup/snapshot").exists());

    // The default mode, run by systemd, in its sandbox.
    let out = c.sh("systemctl start mailbackup.service");
    assert!(
        out.status.success(),
        "{}\n{}",
        describe(&out),
        journal(&c, "mailbackup*")
    );
    c.mail_is_up();
    restore(&c, "/r/s");
    let from_snapshot = snapshot(&c.path("/r/s"), &[]);
    assert_same_tree(&live, &from_snapshot);

    // The same tree backed up live, with the mail stopped throughout.
    c.ok("mailbackup install --downtime full && mv /home/user-data/backup/encrypted /r/first && rm -rf /home/user-data/backup/cache");
    c.ok("systemctl start mailbackup.service");
    restore(&c, "/r/l");
    assert_same_tree(&from_snapshot, &snapshot(&c.path("/r/l"), &[]));
}

#[test]
fn a_symlinked_storage_root_is_the_directory_it_names() {
    needs_root!();
    let c = Container::boot();
    // The data moved to a bigger disk, a symlink left in its place.
    c.ok("mkdir -p /srv/disk && mv /home/user-data /srv/disk/ && ln -s /srv/disk/user-data /home/user-data");
    c.set_up_box(1, "");
    c.ok("rm /home/user-data/backup/after-backup && chmod 751 /srv/disk/user-data");
    let unit = c.ok("cat /etc/systemd/system/mailbackup.service");
    assert!(
        unit.contains("ReadWritePaths=/srv/disk/user-data/backup\n"),
        "{unit}"
    );
    let out = c.sh("systemctl start mailbackup.service");
    assert!(
        out.status.success(),
        "{}\n{}",
        describe(&out),
        journal(&c, "mailbackup*")
    );
    assert!(
        journal(&c, "mailbackup.service").contains(
            "STORAGE_ROOT /home/user-data leads through a symlink to /srv/disk/user-data"
        ),
        "{}",
        journal(&c, "mailbackup.service")
    );

    // The backup holds the data and the directory's own mode.
    restore(&c, "/srv/restored");
    assert_eq!(c.ok("stat -c %a /srv/restored").trim(), "751");
    assert_same_tree(
        &live_state(&c.path("/srv/disk/user-data")),
        &snapshot(&c.path("/srv/restored"), &[]),
    );

    // verify compares the data, and finds a change in it.
    let out = c.sh("mailbackup verify");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stderr(&out).contains("the latest backup matches /srv/disk/user-data"));
    c.ok("echo changed > /home/user-data/mail/mailboxes/example.com/alice/new/1790001000.M1.box");
    let out = c.sh("mailbackup verify");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("mail/mailboxes/example.com/alice/new/1790001000.M1.box"),
        "{}",
        describe(&out)
    );
}
