//! End to end on Debian 13 (trixie): the booted root of
//! `tests/e2e/make-root.sh trixie`, with its own systemd 257, duplicity 3.0,
//! postfix run by postfix.service itself and a STORAGE_ROOT that useradd
//! made 0700. The package installs; a backup in snapshot mode and in pause
//! mode (which freezes postfix.service, the unit that runs postfix there)
//! restores byte for byte; the failure mail names a missing key it may not
//! see; the units score as on Debian 12; and the package's upgrade and
//! purge, and an ssh target with the disaster restore, as on Debian 12.

use crate::common::container::{Boot, Container, Suite};
use crate::common::*;

fn journal(c: &Container, unit: &str) -> String {
    c.ok(&format!(
        "journalctl -u '{unit}' -o cat --no-pager | tail -80"
    ))
}

/// The score of `systemd-analyze security` (systemd 257's) for an
/// installed unit.
fn exposure(c: &Container, unit: &str) -> f64 {
    let text = c.ok(&format!("systemd-analyze security --no-pager {unit}"));
    text.lines()
        .find_map(|l| {
            l.split(&format!("Overall exposure level for {unit}: "))
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score for {unit} in {text}"))
}

#[test]
fn snapshot_backup_failure_mail_restore_and_scores_on_debian_13() {
    needs_root!();
    let c = Boot::new().suite(Suite::Trixie).start();
    // What this root is: Debian 13's systemd and duplicity, and a
    // STORAGE_ROOT made by useradd, 0700.
    assert!(c.ok("cat /etc/debian_version").starts_with("13."));
    assert!(c.ok("systemctl --version").starts_with("systemd 257"));
    assert!(c.ok("duplicity --version").starts_with("duplicity 3.0"));
    assert_eq!(c.ok("stat -c %a /home/user-data"), "700\n");

    c.set_up_box(4, "");
    let (rc, during) = c.start_backup_watching();
    assert_eq!(rc, 0, "{}", journal(&c, "mailbackup*"));
    assert!(
        !during.is_empty() && during.iter().all(|d| d == "active active"),
        "{during:?}"
    );
    c.mail_is_up();
    assert!(c.hook_mark(20).is_some());
    c.assert_restore_equals_live();

    // The units are locked down as on Debian 12: the same bounds as the
    // offline scores of tests/it/units.rs, here by systemd 257 on the
    // installed units.
    assert!(exposure(&c, "mailbackup.service") <= 1.1);
    for unit in [
        "mailbackup-verify.service",
        "mailbackup-snapshot.service",
        "mailbackup-failure@mailbackup.service.service",
    ] {
        let score = exposure(&c, unit);
        assert!(score <= 1.5, "{unit}: exposure {score} > 1.5");
    }

    // The key gone: the failure unit, root without capabilities, may not
    // look into the 0700 STORAGE_ROOT, and still names the missing key.
    c.ok("mv /home/user-data/backup/secret_key.txt /root/key.saved");
    let (rc, _) = c.start_backup_watching();
    assert_ne!(rc, 0);
    c.mail_is_up();
    let mail = c.ok("i=0; until grep -q '^Subject: .*mailbackup.service failed' /var/mail/root 2>/dev/null; do sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || break; done; cat /var/mail/root");
    assert!(
        mail.contains("Cause: the backup key /home/user-data/backup/secret_key.txt is missing"),
        "{mail}\n{}",
        journal(&c, "mailbackup-failure*")
    );
    c.ok("mv /root/key.saved /home/user-data/backup/secret_key.txt");
}

#[test]
fn pause_mode_freezes_the_unit_that_runs_postfix_on_debian_13() {
    needs_root!();
    let c = Boot::new().suite(Suite::Trixie).unified_cgroups().start();
    // postfix.service runs the master; postfix@-.service is not active.
    assert_ne!(
        c.ok("systemctl show -p MainPID --value postfix.service"),
        "0\n"
    );
    assert_eq!(
        c.sh("systemctl is-active postfix@-.service").status.code(),
        Some(3)
    );
    c.set_up_box(4, "--downtime pause");
    let service = c.ok("cat /etc/systemd/system/mailbackup.service");
    assert!(
        service
            .contains("ExecStartPre=/usr/bin/systemctl freeze dovecot.service postfix.service\n"),
        "{service}"
    );
    let since = c.ok("date +%s").trim().to_owned();
    let out = c.sh(r#"systemctl start mailbackup.service & s=$!
        while kill -0 $s 2>/dev/null; do
            echo "$(systemctl show -p FreezerState --value postfix.service)"; sleep 0.02
        done > /tmp/freezer.log
        wait $s; echo "rc=$?""#);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rc=0"),
        "{}\n{}",
        describe(&out),
        journal(&c, "mailbackup*")
    );
    let freezer = c.ok("cat /tmp/freezer.log");
    assert!(
        freezer.contains("frozen"),
        "postfix was never frozen: {freezer}"
    );
    let stops = c.count(&format!(
        "journalctl -u dovecot.service -u postfix.service --since @{since} -o cat --no-pager | grep -c '^Stopp' || true"
    ));
    assert_eq!(stops, 0, "the mail services were stopped");
    c.mail_is_up();
    for unit in ["postfix.service", "dovecot.service"] {
        assert_eq!(
            c.ok(&format!("systemctl show -p FreezerState --value {unit}")),
            "running\n",
            "{unit}"
        );
    }
    c.assert_restore_equals_live();

    // A unit to freeze that runs nothing is refused at install, clearly.
    c.ok("systemctl stop postfix.service");
    let out = c.sh("mailbackup install --downtime pause 2>&1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("freezes the unit that runs postfix.service, and none runs it now")
            && text.contains("systemctl start postfix.service"),
        "{text}"
    );
    // The installed service is left as it was.
    assert_eq!(c.ok("cat /etc/systemd/system/mailbackup.service"), service);
    c.ok("systemctl start postfix.service");
}

#[test]
fn package_upgrade_remove_and_purge_on_debian_13() {
    needs_root!();
    super::package::upgrade_remove_and_purge(Suite::Trixie);
}

#[test]
fn an_ssh_target_and_the_disaster_restore_on_debian_13() {
    needs_root!();
    super::remote::ssh_target_and_disaster_restore(Suite::Trixie);
}
