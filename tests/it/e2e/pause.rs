//! End to end, in a booted systemd: `--downtime pause` freezes the mail
//! services for the snapshot (clients see a pause, never a refusal), thaws
//! them after a kill or a failed snapshot, and is refused without cgroup v2;
//! the monthly verification compares the backup with its snapshot while the
//! mail flows.

use std::fs;

use crate::common::container::{Boot, Container};
use crate::common::*;

fn journal(c: &Container, unit: &str) -> String {
    c.ok(&format!("journalctl -u '{unit}' -o cat --no-pager"))
}

/// The mail services are running and not frozen.
fn mail_runs_thawed(c: &Container) {
    c.mail_is_up();
    for unit in ["dovecot.service", "postfix@-.service"] {
        assert_eq!(
            c.ok(&format!("systemctl show -p FreezerState --value {unit}")),
            "running\n",
            "{unit}"
        );
    }
}

fn drop_in(c: &Container, unit: &str, text: &str) {
    let dir = c.path(&format!("/etc/systemd/system/{unit}.d"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("test.conf"), text).unwrap();
    c.ok("systemctl daemon-reload");
}

#[test]
fn pause_mode_refuses_no_connection_and_drops_no_session() {
    needs_root!();
    let c = Boot::new().unified_cgroups().start();
    // postfix set up at bootstrap time may listen on no TCP port.
    c.ok("postconf -e inet_protocols=ipv4 && systemctl restart postfix");
    let out = c.set_up_box(20, "--downtime pause");
    assert!(
        out.contains("created /etc/systemd/system/mailbackup-snapshot.service"),
        "{out}"
    );
    make_mail_store(&c.path("/home/user-data"), 3000);
    // The services stay frozen a second longer than the snapshot takes: a
    // long pause still loses no client, and the watch below sees it.
    drop_in(
        &c,
        "mailbackup-snapshot.service",
        "[Service]\nExecReload=\nExecReload=/bin/sh -c \"sleep 1; exec /usr/bin/mailbackup --config /etc/mailinabox.conf snapshot --complete\"\n",
    );
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/mail-clients.py"),
        c.share().join("mail-clients.py"),
    )
    .unwrap();
    let since = c.ok("date +%s").trim().to_owned();
    let out = c.ok(
        r#"rm -f /tmp/stop-clients
        python3 /srv/host/mail-clients.py > /tmp/clients.json & p=$!
        ( while [ ! -e /tmp/stop-clients ]; do
              echo "$(systemctl show -p FreezerState --value dovecot.service) $(systemctl show -p FreezerState --value postfix@-.service)"
              sleep 0.01
          done ) > /tmp/freezer.log &
        sleep 1
        systemctl start mailbackup.service; rc=$?
        sleep 1; touch /tmp/stop-clients; wait $p
        echo "rc=$rc"; cat /tmp/clients.json"#,
    );
    assert!(
        out.contains("rc=0"),
        "{out}\n{}",
        journal(&c, "mailbackup*")
    );
    let seen: serde_json::Value =
        serde_json::from_str(out.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(seen["refused"], 0, "{seen}");
    assert_eq!(seen["failed"], 0, "{seen}");
    assert_eq!(seen["imap_dropped"], false, "{seen}");
    assert!(seen["smtp"].as_u64().unwrap() > 20, "{seen}");
    assert!(seen["imap_noops"].as_u64().unwrap() > 10, "{seen}");
    // They were frozen, not stopped.
    let freezer = c.ok("cat /tmp/freezer.log");
    assert!(freezer.contains("frozen frozen"), "never frozen: {freezer}");
    let stops = c.count(&format!(
        "journalctl -u dovecot.service -u postfix@-.service --since @{since} -o cat --no-pager | grep -c '^Stopp' || true"
    ));
    assert_eq!(stops, 0, "the mail services were stopped");
    mail_runs_thawed(&c);
    c.assert_restore_equals_live();
}

#[test]
fn frozen_services_are_thawed_after_a_kill_and_a_failed_snapshot() {
    needs_root!();
    let c = Boot::new().unified_cgroups().start();
    c.set_up_box(1, "--downtime pause");
    // A slow completion, so that the services stay frozen long enough.
    drop_in(
        &c,
        "mailbackup-snapshot.service",
        "[Service]\nExecReload=\nExecReload=/bin/sh -c \"sleep 5; exec /usr/bin/mailbackup --config /etc/mailinabox.conf snapshot --complete\"\n",
    );
    let out = c.sh(r#"systemctl start mailbackup.service & s=$!
        # `systemctl freeze` freezes one unit after the other: wait for both.
        state() { systemctl show -p FreezerState --value "$1"; }
        i=0; until [ "$(state dovecot.service) $(state postfix@-.service)" = "frozen frozen" ]; do
            sleep 0.05; i=$((i+1)); [ $i -lt 400 ] || exit 9
        done
        echo "postfix $(systemctl show -p FreezerState --value postfix@-.service)"
        systemctl kill --signal=KILL mailbackup.service
        wait $s; echo "rc=$?""#);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("postfix frozen"), "{}", describe(&out));
    assert!(!text.contains("rc=0"), "{}", describe(&out));
    assert_eq!(c.result(), "signal");
    mail_runs_thawed(&c);

    // The operator stops a running backup: the stop does not wait on the
    // mail services' start, and they run.
    c.stop_a_running_backup();
    mail_runs_thawed(&c);

    // A snapshot that fails to complete, while the services are frozen;
    // and one that fails to be prepared.
    for failing in ["ExecReload", "ExecStart"] {
        drop_in(
            &c,
            "mailbackup-snapshot.service",
            &format!("[Service]\n{failing}=\n{failing}=/bin/false\n"),
        );
        let out = c.sh("systemctl start mailbackup.service");
        assert!(!out.status.success(), "{failing}");
        assert_eq!(c.result(), "exit-code", "{failing}");
        mail_runs_thawed(&c);
        assert!(
            !c.path("/home/user-data/backup/snapshot").exists()
                && !c.path("/home/user-data/backup/snapshot.partial").exists(),
            "{failing}"
        );
    }

    c.ok("rm -r /etc/systemd/system/mailbackup-snapshot.service.d && systemctl daemon-reload");
    c.ok("systemctl start mailbackup.service");
    mail_runs_thawed(&c);
    c.assert_restore_equals_live();
}

#[test]
fn pause_mode_is_refused_without_cgroup_v2() {
    needs_root!();
    let c = Boot::new().v1_cgroups().start();
    c.prepare_box(1);
    let out = c.sh("mailbackup install --downtime pause");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--downtime pause")
            && err.contains("cgroup v2")
            && err.contains("--downtime snapshot"),
        "{err}"
    );
    assert_eq!(
        c.ok("ls /etc/systemd/system | grep -c '^mailbackup' || true")
            .trim(),
        "0"
    );
    assert!(!c.path("/home/user-data/backup/secret_key.txt").exists());
}

#[test]
fn the_monthly_verify_compares_with_the_snapshot_while_mail_flows() {
    needs_root!();
    let c = Container::boot();
    c.set_up_box(20, "");
    c.ok("echo 'a file of root' > /home/user-data/mail/notes.txt");
    c.add_maildir_user();
    c.ok("systemctl start mailbackup.service");
    let since = c.ok("date +%s").trim().to_owned();
    let (rc, during, out) =
        c.start_while_mail_flows("mailbackup-verify.service", 50, "during", "verify");
    assert_eq!(rc, 0, "{}\n{}", describe(&out), journal(&c, "mailbackup*"));
    assert!(!during.is_empty(), "the comparison was never seen running");
    assert!(
        during.iter().all(|d| d.trim() == "active active"),
        "{during:?}"
    );
    // The only stop is the one of the backup's snapshot.
    let stops = c.count(&format!(
        "journalctl -u dovecot.service --since @{since} -o cat --no-pager | grep -c '^Stopping' || true"
    ));
    assert_eq!(stops, 1);
    assert!(
        journal(&c, "mailbackup.service")
            .contains("the latest backup matches /home/user-data/backup/snapshot"),
        "{}",
        journal(&c, "mailbackup.service")
    );
    assert!(journal(&c, "mailbackup-verify.service").contains("the latest backup matches"));

    // A backed-up file altered before the comparison: it fails, names the
    // file, mails the administrator, and the mail runs.
    drop_in(
        &c,
        "mailbackup.service",
        "[Service]\nExecStartPost=\nExecStartPost=/bin/sh -c \"echo altered >> /home/user-data/backup/snapshot/mail/notes.txt\"\nExecStartPost=/usr/bin/mailbackup --config /etc/mailinabox.conf verify --from-snapshot --if-requested\n",
    );
    let out = c.sh("systemctl start mailbackup-verify.service");
    assert!(!out.status.success(), "{}", describe(&out));
    let log = journal(&c, "mailbackup-verify.service");
    assert!(log.contains("mail/notes.txt"), "{log}");
    // Root's mail is in a Maildir now (home_mailbox above).
    let mail = c.ok("i=0; until grep -rqs 'mailbackup-verify.service failed' /root/Maildir/new; do sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || break; done; cat /root/Maildir/new/*");
    assert!(mail.contains("mailbackup-verify.service failed"), "{mail}");
    assert!(mail.contains("mail/notes.txt"), "{mail}");
    c.mail_is_up();
}
