//! End to end in a booted systemd: a Debian 12 root (tests/e2e/make-root.sh)
//! booted with systemd-nspawn, with real postfix, dovecot and duplicity, and
//! the mailbackup Debian package installed in it.

use crate::common::container::Container;
use crate::common::describe;
use crate::common::needs_root;

const DUPLICITY_RUNS: &str = "journalctl -u mailbackup.service -o cat --no-pager | grep -c 'running /usr/bin/duplicity \\(full\\|incr\\)' || true";

#[test]
fn install_back_up_join_and_uninstall() {
    needs_root!();
    let c = Container::boot();
    // The reference's shape: mail down for the whole duplicity run.
    let out = c.set_up_box(40, "--downtime full");
    assert!(
        out.contains("created /etc/systemd/system/mailbackup.service"),
        "{out}"
    );
    assert!(
        out.contains("enabled and started mailbackup.timer"),
        "{out}"
    );
    assert_eq!(c.ok("systemctl is-enabled mailbackup.timer"), "enabled\n");
    let timers = c.ok("systemctl list-timers --no-pager");
    assert!(
        timers.contains("mailbackup.timer") && timers.contains("mailbackup-verify.timer"),
        "{timers}"
    );
    assert_eq!(
        c.ok("mailbackup install --downtime full").trim(),
        "mailbackup is installed already: nothing changed"
    );
    // A service that is no unit here (a typo) would fail every backup at
    // its stop: refused, and nothing written.
    let units = "cat /etc/systemd/system/mailbackup*";
    let before = c.ok(units);
    let out = c.sh("mailbackup install --services dovecot.service postfx.service");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("postfx.service"),
        "{}",
        describe(&out)
    );
    assert_eq!(c.ok(units), before);

    // The backup: mail down while duplicity runs, up after, hook as the user.
    let (rc, during) = c.start_backup_watching();
    assert_eq!(
        rc,
        0,
        "{}",
        c.ok("journalctl -u mailbackup.service --no-pager | tail -80")
    );
    assert!(!during.is_empty(), "duplicity was never seen running");
    assert!(
        during.iter().all(|d| d == "inactive inactive"),
        "{during:?}"
    );
    c.mail_is_up();
    assert_eq!(c.result(), "success");
    assert_eq!(
        c.hook_mark(20).as_deref(),
        Some("user-data\n/home/user-data box.example.com\n")
    );
    c.assert_restore_equals_live();
    assert_eq!(
        c.count("ls /home/user-data/backup/encrypted | grep -c manifest"),
        1
    );

    // The verification: mail stopped, an increment, the whole backup compared.
    let out = c.sh("systemctl start mailbackup-verify.service");
    assert!(
        out.status.success(),
        "{}",
        c.ok("journalctl -u mailbackup-verify.service --no-pager | tail -30")
    );
    assert!(c
        .ok("journalctl -u mailbackup-verify.service -o cat --no-pager")
        .contains("the latest backup matches"));
    c.mail_is_up();
    c.ok("mailbackup key confirm < /home/user-data/backup/secret_key.txt");
    assert_eq!(c.sh("mailbackup status --check").status.code(), Some(0));

    // Two starts at once: one backup.
    let runs = c.count(DUPLICITY_RUNS);
    c.ok("echo more > /home/user-data/mail/later.txt");
    c.ok("systemctl start mailbackup.service & a=$!; sleep 0.2; systemctl start mailbackup.service; b=$?; wait $a && [ $b = 0 ]");
    assert_eq!(c.count(DUPLICITY_RUNS), runs + 1);
    assert_eq!(
        c.count("ls /home/user-data/backup/encrypted | grep -c manifest"),
        3
    );
    c.mail_is_up();

    // Uninstall: the units go, the backups, key and config stay.
    let keep = "sha256sum /etc/mailinabox.conf /home/user-data/backup/secret_key.txt /home/user-data/backup/encrypted/*";
    let before = c.ok(keep);
    let out = c.ok("mailbackup uninstall");
    assert!(
        out.contains("stopped and disabled mailbackup.timer"),
        "{out}"
    );
    assert_eq!(
        c.ok("ls /etc/systemd/system | grep -c '^mailbackup' || true")
            .trim(),
        "0"
    );
    assert!(!c
        .ok("systemctl list-timers --all --no-pager")
        .contains("mailbackup"));
    assert_eq!(c.ok(keep), before);
    c.mail_is_up();
}

#[test]
fn a_full_target_fails_the_unit_and_the_mail_comes_back() {
    needs_root!();
    let c = Container::boot();
    c.set_up_box(4, "--downtime full");
    c.ok("mkdir -p /home/user-data/backup/encrypted && mount -t tmpfs -o size=256k tmpfs /home/user-data/backup/encrypted");
    // A drop-in that leaks the passphrase into the journal, as a careless
    // hook or option might: the mail must blank it out.
    c.ok("mkdir -p /etc/systemd/system/mailbackup.service.d && \
          printf '[Service]\nExecStartPre=/bin/sh -c \"head -n1 /home/user-data/backup/secret_key.txt\"\n' \
            > /etc/systemd/system/mailbackup.service.d/leak.conf && systemctl daemon-reload");
    let (rc, during) = c.start_backup_watching();
    c.ok("rm /etc/systemd/system/mailbackup.service.d/leak.conf && systemctl daemon-reload");
    assert_ne!(rc, 0);
    assert!(
        during.iter().all(|d| d == "inactive inactive"),
        "{during:?}"
    );
    c.mail_is_up();
    assert_ne!(c.result(), "success");
    assert_eq!(c.hook_mark(3), None, "the hook ran after a failed backup");

    // The administrator hears of it: real postfix delivers to root's mailbox.
    let mail = c.failure_mail();
    assert!(
        mail.contains("Subject: [box.example.com] mailbackup.service failed (exit-code)"),
        "{mail}"
    );
    assert!(mail.contains("To: administrator@box.example.com"), "{mail}");
    assert!(
        mail.contains("No space left on device"),
        "no journal in: {mail}"
    );
    let key = c.ok("head -n1 /home/user-data/backup/secret_key.txt");
    assert!(
        c.ok("journalctl -u mailbackup.service -o cat --no-pager")
            .contains(key.trim()),
        "the drop-in did not leak the passphrase"
    );
    assert!(!mail.contains(key.trim()), "the passphrase is in the mail");
    assert!(mail.contains("<redacted>"), "{mail}");
    let out = c.sh("mailbackup status --check");
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(
        line.contains(
            "the last backup run failed: see systemctl status mailbackup.service (exit-code)"
        ),
        "{line}"
    );

    c.ok("mount -o remount,size=64m /home/user-data/backup/encrypted");
    let (rc, _) = c.start_backup_watching();
    assert_eq!(
        rc,
        0,
        "{}",
        c.ok("journalctl -u mailbackup.service --no-pager | tail -80")
    );
    c.mail_is_up();
    assert!(c.hook_mark(20).is_some());
    c.assert_restore_equals_live();

    // The key file gone: the backup fails, and the mail that says so names
    // the missing file (the failure unit must not need the key to start).
    c.ok("mv /home/user-data/backup/secret_key.txt /root/key.saved");
    let (rc, _) = c.start_backup_watching();
    assert_ne!(rc, 0);
    c.mail_is_up();
    let mail = c.ok("i=0; until [ \"$(grep -c '^Subject: .*mailbackup.service failed' /var/mail/root)\" -ge 2 ]; do sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || break; done; cat /var/mail/root");
    assert!(
        mail.matches("mailbackup.service failed").count() >= 2,
        "{mail}\n{}",
        c.ok("journalctl -u 'mailbackup-failure*' --no-pager | tail -30")
    );
    assert!(
        mail.contains("/home/user-data/backup/secret_key.txt is missing"),
        "{mail}"
    );
    let out = c.sh("mailbackup status --check");
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(line.contains("secret_key.txt is missing"), "{line}");
}

#[test]
fn a_killed_backup_brings_the_mail_back() {
    needs_root!();
    let c = Container::boot();
    c.set_up_box(80, "--downtime full");
    let out = c.sh(r#"systemctl start mailbackup.service & s=$!
        i=0; until pgrep -f 'bin/duplicit[y] full' >/dev/null; do
            kill -0 $s 2>/dev/null || { wait $s; echo "ended before duplicity ran: rc=$?"; exit 8; }
            sleep 0.1; i=$((i+1)); [ $i -lt 600 ] || exit 9
        done
        sleep 1
        systemctl is-active postfix.service dovecot.service | tr '\n' ' '; echo
        systemctl kill --signal=KILL mailbackup.service
        wait $s; echo "rc=$?""#);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("inactive inactive"),
        "{}\n{}",
        describe(&out),
        c.ok("journalctl -u mailbackup.service --no-pager | tail -40")
    );
    assert!(!text.contains("rc=0"), "{}", describe(&out));
    c.mail_is_up();
    assert_eq!(c.result(), "signal");
    assert_eq!(c.hook_mark(2), None);

    // The operator stops a running backup: the stop does not wait on the
    // mail services' start, and they run.
    c.stop_a_running_backup();
    c.mail_is_up();

    let (rc, _) = c.start_backup_watching();
    assert_eq!(
        rc,
        0,
        "{}",
        c.ok("journalctl -u mailbackup.service --no-pager | tail -80")
    );
    c.mail_is_up();
    c.assert_restore_equals_live();
}

#[test]
fn restore_in_place_stops_and_starts_the_mail_and_refuses_to_fill_the_disk() {
    needs_root!();
    let c = Container::boot_with_root("/srv/box/user-data");
    c.ok("mkdir -p /srv/box && mount -t tmpfs -o size=40m tmpfs /srv/box");
    c.set_up_box(6, "");
    let (rc, _) = c.start_backup_watching();
    assert_eq!(
        rc,
        0,
        "{}",
        c.ok("journalctl -u mailbackup.service --no-pager | tail -80")
    );
    c.hook_mark(20);
    let tree = "cd /srv/box/user-data && find . -path ./backup -prune -o -path ./hook-ran -prune -o -print | sort";
    let backed_up = c.ok(tree);

    // Not while a backup runs.
    let out = c.sh(
        "systemctl start mailbackup.service & s=$!; \
         until systemctl is-active -q mailbackup.service || [ \"$(systemctl show -p ActiveState --value mailbackup.service)\" = activating ]; do sleep 0.05; done; \
         mailbackup restore --in-place --yes; echo \"rc=$?\"; wait $s",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rc=1"), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a backup is running"),
        "{}",
        describe(&out)
    );
    c.mail_is_up();

    // Damage, then put the backup back in place.
    c.ok("rm -rf /srv/box/user-data/mail/mailboxes && echo broken > /srv/box/user-data/mail/users.sqlite");
    let since = c.ok("date +%s").trim().to_owned();
    let out = c.ok("mailbackup restore --in-place --yes 2>&1");
    c.mail_is_up();
    let stops = format!(
        "journalctl -u postfix.service -u dovecot.service --since @{since} -o cat --no-pager | grep -c '^Stopped' || true"
    );
    assert_eq!(c.count(&stops), 2, "{out}");
    assert_eq!(c.ok(tree), backed_up);
    assert_eq!(c.ok("ls /srv/box | grep -c before-restore"), "1\n", "{out}");
    assert!(c
        .ok("cat /srv/box/user-data.before-restore-*/mail/users.sqlite")
        .contains("broken"));
    c.assert_restore_equals_live();

    // No room for another copy: refused before the mail is touched.
    let since = c.ok("sleep 1; date +%s").trim().to_owned();
    let before = c.ok("cd /srv/box && find . | sort | md5sum");
    let out = c.sh("mailbackup restore --in-place --yes");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("free"),
        "{}",
        describe(&out)
    );
    c.mail_is_up();
    let stops = format!(
        "journalctl -u postfix.service -u dovecot.service --since @{since} -o cat --no-pager | grep -c '^Stopp' || true"
    );
    assert_eq!(c.count(&stops), 0);
    assert_eq!(c.ok("cd /srv/box && find . | sort | md5sum"), before);

    // The services chosen at install are the ones an in-place restore
    // stops: here dovecot alone, postfix runs on.
    c.ok("rm -rf /srv/box/user-data.before-restore-* && mailbackup install --services dovecot.service");
    let since = c.ok("sleep 1; date +%s").trim().to_owned();
    let out = c.ok("mailbackup restore --in-place --yes 2>&1");
    c.mail_is_up();
    let stopped = |unit: &str, since: &str| {
        c.count(&format!(
            "journalctl -u {unit} --since @{since} -o cat --no-pager | grep -c '^Stopped' || true"
        ))
    };
    assert_eq!(stopped("dovecot.service", &since), 1, "{out}");
    assert_eq!(stopped("postfix.service", &since), 0, "{out}");
    assert_eq!(c.ok(tree), backed_up);

    // A backup started while a restore holds its lock fails before the
    // mail is touched, and says why in the journal.
    let since = c.ok("sleep 1; date +%s").trim().to_owned();
    c.ok(
        "cd /srv/box/user-data/backup && echo 'mailbackup restore --to, pid 4242' > restore.lock \
          && (flock restore.lock sleep 30 >/dev/null 2>&1 &) && sleep 0.5",
    );
    let out = c.sh("systemctl start mailbackup.service");
    assert!(!out.status.success(), "{}", describe(&out));
    c.mail_is_up();
    assert_eq!(stopped("dovecot.service", &since), 0);
    let journal = c.ok("journalctl -u 'mailbackup*' --no-pager -o cat");
    assert!(
        journal.contains("a restore is running (mailbackup restore --to, pid 4242)"),
        "{journal}"
    );
    // So does the mail: the snapshot unit's journal, where the cause is,
    // and only this run's lines, not those of the backup that succeeded.
    let mail = c.failure_mail();
    assert!(
        mail.contains("a restore is running (mailbackup restore --to, pid 4242)"),
        "{mail}"
    );
    assert!(!mail.contains("Backup Statistics"), "{mail}");
    assert!(!c.ok("ls /srv/box/user-data/backup").contains("snapshot"));
}

/// The downtime of the last run of mailbackup.service: from the first stop
/// of dovecot or postfix to the moment both run again, from the journal.
fn downtime_seconds(c: &Container, since: &str) -> f64 {
    let out = c.ok(&format!(
        "journalctl -u dovecot.service -u postfix@-.service --since @{since} -o short-unix --no-pager"
    ));
    let stamp = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(|t| t.parse::<f64>().ok())
    };
    let first_stop = out
        .lines()
        .find(|l| l.contains("Stopping"))
        .and_then(stamp)
        .unwrap_or_else(|| panic!("no stop in the journal:\n{out}"));
    let last_start = out
        .lines()
        .filter(|l| l.contains("Started"))
        .filter_map(stamp)
        .fold(f64::NAN, f64::max);
    assert!(last_start > first_stop, "{out}");
    last_start - first_stop
}

#[test]
fn snapshot_mode_keeps_mail_flowing_and_loses_none() {
    needs_root!();
    let c = Container::boot();
    let out = c.set_up_box(60, "");
    assert!(
        out.contains("created /etc/systemd/system/mailbackup.service"),
        "{out}"
    );
    c.add_maildir_user();
    let since = c.ok("date +%s.%N").trim().to_owned();
    // Mail keeps coming while the backup runs: 60 messages, 0.1 s apart.
    let (rc, during, out) =
        c.start_while_mail_flows("mailbackup.service", 60, "flow", "(full|incr)");
    assert_eq!(
        rc,
        0,
        "{}\n{}",
        describe(&out),
        c.ok("journalctl -u mailbackup.service --no-pager | tail -60")
    );
    assert!(!during.is_empty(), "duplicity was never seen running");
    assert!(
        during.iter().all(|d| d.trim() == "active active"),
        "mail was down while duplicity ran: {during:?}"
    );
    // Seconds, not the whole run (benches/downtime.sh measures it).
    let downtime = downtime_seconds(&c, &since);
    assert!(downtime <= 10.0, "the mail was down {downtime:.2} s");
    assert!(
        !c.ok("ls /home/user-data/backup").contains("snapshot"),
        "the snapshot was left behind"
    );

    // None lost: every message is delivered; those not in the backup came after it.
    c.ok("i=0; until [ \"$(postqueue -p)\" = 'Mail queue is empty' ]; do sleep 0.2; i=$((i+1)); [ $i -lt 300 ] || exit 1; done");
    let delivered =
        c.count("grep -l '^Subject: flow-' /home/user-data/carol/Maildir/new/* | wc -l");
    assert_eq!(delivered, 60, "messages were lost");
    c.ok(
        r#"set -e
        rm -rf /tmp/r && mkdir -m 700 /tmp/r /tmp/r/gnupg
        PASSPHRASE="$(head -n1 /home/user-data/backup/secret_key.txt)" GNUPGHOME=/tmp/r/gnupg \
            duplicity restore --archive-dir /tmp/r/cache file:///home/user-data/backup/encrypted /tmp/r/data >/dev/null"#,
    );
    let in_backup = c.count(
        "cat /tmp/r/data/carol/Maildir/new/* 2>/dev/null | grep -c '^Subject: flow-' || true",
    );
    assert!(
        in_backup > 0 && in_backup < 60,
        "{in_backup} of 60 in the backup: the backup did not run while mail came"
    );
    // Every message in the backup is a message delivered, byte for byte.
    c.ok("cd /tmp/r/data/carol/Maildir/new && for f in *; do cmp \"$f\" \"/home/user-data/carol/Maildir/new/$f\"; done");

    // The next backup takes the rest.
    c.ok("systemctl start mailbackup.service");
    c.assert_restore_equals_live();
}

/// A backup directory that STORAGE_USER made or filled (as copying the key
/// back onto a new box as that user leaves it) is made root's by install:
/// the backup, root without CAP_DAC_OVERRIDE, could not write into it. The
/// hooks, which run as STORAGE_USER, stay theirs.
#[test]
fn install_makes_a_backup_directory_of_the_box_user_roots() {
    needs_root!();
    let c = Container::boot();
    c.prepare_box(1);
    let root = &c.root;
    c.ok(&format!(
        "mkdir -p {root}/backup/cache/old && echo x > {root}/backup/cache/old/lockfile \
         && chmod 700 {root}/backup/after-backup && chown -R user-data {root}/backup"
    ));
    // A snapshot an interrupted run left holds the mail's own files (hard
    // links): their owners are the mail's, and stay so.
    let message = format!("{root}/mail/mailboxes/example.com/alice/new/1790001000.M1.box");
    c.ok(&format!(
        "mkdir -p {root}/backup/snapshot.leftover-1 && ln {message} {root}/backup/snapshot.leftover-1/m"
    ));
    let out = c.ok("mailbackup install");
    assert!(
        out.contains(&format!(
            "made {root}/backup and 3 more file(s) in it root's (owned by user-data)"
        )),
        "{out}"
    );
    let again = c.ok("mailbackup install");
    assert!(!again.contains("root's"), "{again}");
    assert!(again.contains("nothing changed"), "{again}");

    let (rc, _) = c.start_backup_watching();
    assert_eq!(
        rc,
        0,
        "{}",
        c.ok("journalctl -u 'mailbackup*' --no-pager | tail -60")
    );
    assert!(
        c.hook_mark(20).is_some(),
        "the after-backup hook did not run"
    );
    assert_eq!(
        c.ok(&format!(
            "stat -c %U {root}/backup {root}/backup/cache/old/lockfile {root}/backup/after-backup"
        )),
        "root\nroot\nuser-data\n"
    );
    assert_eq!(c.ok(&format!("stat -c %u {message}")), "5000\n");
}
