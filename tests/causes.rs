//! Causes of target failures that tests/remote.rs does not reach, against
//! real servers on loopback (a private OpenSSH sshd, moto): what
//! `check-target` says, and the plugin exit code of `status --check`.
//! tests/remote.rs covers bad credentials, no such bucket, unreachable and
//! a name that does not resolve for S3, a changed host key and a missing
//! directory for ssh.

mod common;

use std::fs;

use common::servers::{Moto, Sshd};
use common::*;

fn box_for_sshd(sshd: &Sshd) -> MailBox {
    let mailbox = MailBox::named("user-data")
        .with_env("HOME", &sshd.home)
        .with_env("STATE_DIRECTORY", &sshd.state);
    mailbox.set_target(&format!("target: {}\n", sshd.target()));
    mailbox
}

/// `check-target` fails with `words` in its one line, and `status --check`
/// says `label` with `code` and the same words.
fn fails_with(mailbox: &MailBox, words: &str, label: &str, code: i32) {
    let out = mailbox.run(&["check-target"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(words), "{words:?} not in {text}");
    let out = mailbox.run(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        line.starts_with(&format!("MAILBACKUP {label} - ")) && line.contains(words),
        "{line}"
    );
}

#[test]
fn an_ssh_host_name_that_does_not_resolve_is_named() {
    let sshd = Sshd::start();
    let mailbox = box_for_sshd(&sshd);
    mailbox.set_target(&format!(
        "target: {}\n",
        sshd.target().replace("127.0.0.1", "no-such-host.invalid")
    ));
    fails_with(
        &mailbox,
        "name not resolved: no-such-host.invalid is not a known host name",
        "UNKNOWN",
        3,
    );
}

#[test]
fn a_refused_ssh_connection_says_so() {
    let sshd = Sshd::start();
    let mailbox = box_for_sshd(&sshd);
    let nobody = common::servers::free_port();
    mailbox.set_target(&format!(
        "target: {}\n",
        sshd.target()
            .replace(&format!(":{}/", sshd.port), &format!(":{nobody}/"))
    ));
    fails_with(
        &mailbox,
        &format!("unreachable: 127.0.0.1:{nobody} refused the connection"),
        "UNKNOWN",
        3,
    );
}

#[test]
fn a_shell_that_prints_text_is_no_usable_shell() {
    let sshd = Sshd::start();
    let mailbox = box_for_sshd(&sshd);
    mailbox.ok(&["check-target"]);
    // The key logs in, but what runs prints a line, as nologin does.
    let public = fs::read_to_string(sshd.home.join(".ssh/id_rsa_miab.pub")).unwrap();
    fs::write(
        sshd.dir.path().join("authorized_keys"),
        format!(
            "command=\"echo This account is currently not available.\" {}",
            public.trim()
        ),
    )
    .unwrap();
    fails_with(&mailbox, "no usable shell: root logs in", "UNKNOWN", 3);
}

#[test]
fn https_to_a_plain_http_endpoint_is_a_tls_failure() {
    let moto = Moto::start();
    moto.create_bucket("good");
    let mut mailbox = MailBox::new();
    mailbox.secrets.push(moto.secret.clone());
    mailbox.set_target(&moto.custom_yaml("good").replace("s3+http://", "s3://"));
    fails_with(
        &mailbox,
        &format!("TLS with {} failed", moto.endpoint()),
        "UNKNOWN",
        3,
    );
    // The same bucket over plain http works.
    mailbox.set_target(&moto.custom_yaml("good"));
    mailbox.ok(&["check-target"]);
}
