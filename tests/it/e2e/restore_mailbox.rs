//! `restore --mailbox` end to end: the booted Debian 12 with real dovecot
//! serving the box's Maildirs as Mail-in-a-Box sets it up, an IMAP client
//! (Python's imaplib) logged in on 127.0.0.1:143 while the restore runs.

use crate::common::container::Container;
use crate::common::{describe, needs_root};

/// dovecot as Mail-in-a-Box has it (`mail_location`, mail owned by `mail`),
/// with a passwd-file passdb for alice in place of the box's SQL one.
fn serve_the_box_with_dovecot(c: &Container) {
    c.ok(&format!(
        r#"set -e
        R={root}
        sed -i 's/^!include auth-system.conf.ext/#&/' /etc/dovecot/conf.d/10-auth.conf
        cat > /etc/dovecot/conf.d/99-mailinabox.conf <<EOF
mail_location = maildir:$R/mail/mailboxes/%d/%n
mail_privileged_group = mail
first_valid_uid = 8
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u /etc/dovecot/users
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home=$R/mail/mailboxes/%d/%n
}}
EOF
        echo 'alice@example.com:{{PLAIN}}alice-secret' > /etc/dovecot/users
        chown -R mail:mail $R/mail
        systemctl restart dovecot
        i=0; until python3 -c 'import socket; socket.create_connection(("127.0.0.1", 143))' 2>/dev/null; do
            i=$((i+1)); [ $i -lt 100 ] || exit 9; sleep 0.1
        done"#,
        root = c.root
    ));
}

#[test]
fn a_folder_deleted_over_imap_comes_back_into_the_same_session() {
    needs_root!();
    let c = Container::boot();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/imap-restore.py"),
        c.share().join("imap-restore.py"),
    )
    .unwrap();
    c.set_up_box(1, "");
    serve_the_box_with_dovecot(&c);
    let made: serde_json::Value =
        serde_json::from_str(&c.ok("python3 /srv/host/imap-restore.py setup")).unwrap();
    c.ok("systemctl start mailbackup.service");
    let day = c.ok("date -u +%F").trim().to_owned();

    // One IMAP session: new mail in INBOX, Invoices deleted, and, while it
    // stays logged in, the restore.
    let out = c.sh(r#"rm -f /tmp/deleted /tmp/restored
        python3 /srv/host/imap-restore.py session > /tmp/session.json & p=$!
        i=0; until [ -e /tmp/deleted ]; do i=$((i+1)); [ $i -lt 300 ] || exit 9; sleep 0.1; done
        mailbackup restore --mailbox alice@example.com; echo "rc=$?"
        touch /tmp/restored; wait $p; echo "session=$?""#);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("rc=0") && text.contains("session=0"),
        "{}",
        describe(&out)
    );
    let restore_log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !restore_log.contains("warning: doveadm"),
        "doveadm force-resync failed: {restore_log}"
    );
    let seen: serde_json::Value = serde_json::from_str(&c.ok("cat /tmp/session.json")).unwrap();

    let into = format!("Restored {day}");
    let before: Vec<&str> = names(&seen["before"]);
    assert!(
        !before.iter().any(|n| n.starts_with("Invoices")),
        "{before:?}"
    );
    // The same session lists the restored tree, and it is subscribed.
    for key in ["list", "lsub"] {
        let listed = names(&seen[key]);
        for name in [
            into.clone(),
            format!("{into}.INBOX"),
            format!("{into}.Invoices"),
            format!("{into}.Invoices.2025"),
        ] {
            assert!(
                listed.contains(&name.as_str()),
                "{key}: {name} in {listed:?}"
            );
        }
    }
    // The same messages (Message-ID and body) with the same flags.
    for folder in ["Invoices", "Invoices.2025"] {
        assert_eq!(
            seen["restored"][format!("{into}.{folder}")],
            made[folder],
            "{folder}"
        );
    }
    // The mail that came after the backup is where it was.
    assert!(
        names(&seen["inbox"]).contains(&"after-the-backup"),
        "{}",
        seen["inbox"]
    );
    // dovecot can expunge what came back: the files are the mail user's.
    let owners = c.ok(&format!(
        "find '{}/mail/mailboxes/example.com/alice/.{into}.Invoices' -printf '%u:%g\\n' | sort -u",
        c.root
    ));
    assert_eq!(owners.trim(), "mail:mail");
}

fn names(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect()
}
