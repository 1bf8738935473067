//! Off-site targets against real servers on loopback: a private sshd for
//! `rsync://` and moto for `s3+http://`, with real duplicity 0.8 and 3.x.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use crate::common::listing::*;
use crate::common::servers::{Moto, Sshd};
use crate::common::*;

/// A box whose target is the sshd's backup directory, reached with the
/// sshd's client key (HOME) and pinning its host key in its state directory.
fn box_for_sshd(sshd: &Sshd, flavor: &Flavor) -> MailBox {
    // duplicity's rsync backend cannot take an archive dir with a space.
    let mailbox = MailBox::named("user-data")
        .with_flavor(flavor)
        .with_env("HOME", &sshd.home)
        .with_env("STATE_DIRECTORY", &sshd.state);
    mailbox.set_target(&format!("target: {}\n", sshd.target()));
    mailbox
}

fn box_for_moto(moto: &Moto, flavor: &Flavor, bucket_and_prefix: &str) -> MailBox {
    let mut mailbox = MailBox::new().with_flavor(flavor);
    mailbox.secrets.push(moto.secret.clone());
    mailbox.set_target(&moto.custom_yaml(bucket_and_prefix));
    mailbox
}

fn ssh_options(sshd: &Sshd) -> String {
    format!(
        "--ssh-options=-oIdentityFile={} -oBatchMode=yes -oStrictHostKeyChecking=yes -oUserKnownHostsFile={}",
        sshd.home.join(".ssh/id_rsa_miab").display(),
        sshd.state.join("known_hosts").display()
    )
}

/// Back up, a day of mail, an incremental backup: both restore with plain
/// duplicity, byte for byte, from the target alone.
fn round_trip(
    mailbox: &MailBox,
    flavor: &Flavor,
    restore: impl Fn(Option<&str>) -> std::path::PathBuf,
) {
    make_mail_store(&mailbox.root, 30);
    let first = live_state(&mailbox.root);
    let out = mailbox.ok(&["run"]);
    assert!(stderr(&out).contains("full backup"), "{}", describe(&out));
    assert_eq!(mailbox.kinds(), ["full"]);
    assert!(
        !mailbox.target().exists(),
        "the backup went to the local directory"
    );
    next_second();
    a_day_of_mail(&mailbox.root);
    let second = live_state(&mailbox.root);
    let out = mailbox.ok(&["run"]);
    assert!(
        stderr(&out).contains("incremental backup"),
        "{}",
        describe(&out)
    );
    assert_eq!(mailbox.kinds(), ["inc", "full"]);
    let status = mailbox.status();
    assert!(status["backups"][1]["size"].as_u64().unwrap() > 1000);

    assert_same_tree(&second, &snapshot(&restore(None), &[]));
    let full_date = status["backups"][1]["date"].as_str().unwrap().to_owned();
    assert_same_tree(&first, &snapshot(&restore(Some(&full_date)), &[]));

    // mailbackup's own restore, list and verify reach it too.
    let out = mailbox.ok(&["list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("mail/users.sqlite"),
        "{}",
        describe(&out)
    );
    let dest = mailbox
        .dir
        .path()
        .join(format!("own-restore-{}", flavor.name));
    mailbox.ok(&[
        "restore",
        "--to",
        dest.to_str().unwrap(),
        "--path",
        "mail/mailboxes",
    ]);
    assert_eq!(
        snapshot(&dest.join("mail/mailboxes"), &[]),
        snapshot(&mailbox.root.join("mail/mailboxes"), &[])
    );
    let out = mailbox.ok(&["verify"]);
    assert!(stderr(&out).contains("matches"), "{}", describe(&out));
    let out = mailbox.ok(&["prune"]);
    assert_eq!(mailbox.kinds(), ["inc", "full"], "{}", describe(&out));
}

#[test]
fn rsync_target_backs_up_and_restores_with_both_duplicity_versions() {
    needs_root!();
    for flavor in flavors() {
        let sshd = Sshd::start();
        let mailbox = box_for_sshd(&sshd, &flavor);
        let url = OsString::from(format!(
            "rsync://root@127.0.0.1:{}/{}",
            sshd.port,
            sshd.remote.display()
        ));
        round_trip(&mailbox, &flavor, |time| {
            plain_restore_from(&mailbox, &flavor, &url, &[&ssh_options(&sshd)], &[], time)
        });
        // Only duplicity's files on the server: never the private key.
        let files = sshd.remote_files();
        assert!(files.len() >= 6, "{files:?}");
        assert!(
            files.iter().all(|f| f.starts_with("duplicity-")),
            "{files:?}"
        );
        let pinned = fs::read_to_string(sshd.state.join("known_hosts")).unwrap();
        assert!(
            pinned.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
            "{pinned}"
        );
    }
}

#[test]
fn s3_target_backs_up_and_restores_with_both_duplicity_versions() {
    needs_root!();
    let moto = Moto::start();
    for (flavor, bucket_and_prefix) in flavors().iter().zip(["bucket-one/box/a", "bucket-two"]) {
        let bucket = bucket_and_prefix.split('/').next().unwrap();
        moto.create_bucket(bucket);
        let mailbox = box_for_moto(&moto, flavor, bucket_and_prefix);
        let url = OsString::from(format!("boto3+s3://{bucket_and_prefix}"));
        let endpoint = format!("--s3-endpoint-url=http://{}", moto.endpoint());
        let env = [
            ("AWS_ACCESS_KEY_ID", moto.key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", moto.secret.as_str()),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ];
        round_trip(&mailbox, flavor, |time| {
            plain_restore_from(&mailbox, flavor, &url, &[&endpoint], &env, time)
        });
        let keys = moto.keys(bucket);
        let prefix = match bucket_and_prefix.split_once('/') {
            Some((_, p)) => format!("{p}/"),
            None => String::new(),
        };
        assert!(keys.len() >= 6, "{keys:?}");
        assert!(
            keys.iter()
                .all(|k| k.starts_with(&format!("{prefix}duplicity-"))),
            "{keys:?}"
        );
        let out = mailbox.ok(&["check-target"]);
        let line = String::from_utf8_lossy(&out.stdout);
        assert!(line.contains("works: 2 backups"), "{line}");
        assert_eq!(moto.keys(bucket), keys, "the check left its test file");
    }
}

#[test]
fn status_of_a_bucket_with_thousands_of_files_equals_status_of_the_same_files_at_home() {
    needs_root!();
    let files = many_backup_files(700);
    assert!(files.len() > 3000);
    let local = MailBox::new();
    write_sparse_files(&local.target(), &files);
    let want = status_without_directory(&local);
    assert_eq!(want["backups"].as_array().unwrap().len(), 700);
    assert_eq!(want["unknown_files"], 1);

    let moto = Moto::start();
    moto.create_bucket("prefixed");
    moto.create_bucket("top");
    let prefixed: Vec<_> = files
        .iter()
        .map(|(n, s)| (format!("mail/box/{n}"), *s))
        .collect();
    moto.put("prefixed", &prefixed);
    moto.put("top", &files);
    // Another box's backups beside them do not count.
    moto.put(
        "prefixed",
        &[(
            "mail/other/duplicity-full.20260101T000000Z.manifest.gpg".into(),
            9,
        )],
    );
    for target in ["prefixed/mail/box", "top"] {
        let mailbox = box_for_moto(&moto, &flavors()[0], target);
        let got = status_without_directory(&mailbox);
        assert_same_status(&got, &want, target);
        assert_eq!(
            mailbox.status()["directory"],
            format!("s3+http://{}/{target}", moto.endpoint())
        );
    }

    // The same files on the ssh server, and two of more than 1 GB that
    // Mail-in-a-Box's listing lost (sparse: they take no room).
    let sshd = Sshd::start();
    let mut big = files.clone();
    big.push((
        "duplicity-full.20270101T000000Z.vol1.difftar.gpg".into(),
        3 << 30,
    ));
    big.push((
        "duplicity-full.20270101T000000Z.manifest.gpg".into(),
        1_234_567_890,
    ));
    for dir in [&sshd.remote, &local.target()] {
        write_sparse_files(dir, &big);
    }
    let want = status_without_directory(&local);
    assert_eq!(want["backups"][0]["size"], (3u64 << 30) + 1_234_567_890);
    let mailbox = box_for_sshd(&sshd, &flavors()[0]);
    assert_same_status(&status_without_directory(&mailbox), &want, "rsync");
}

#[test]
fn the_retention_of_custom_yaml_drives_prune_and_the_estimate() {
    needs_root!();
    let mailbox = MailBox::new();
    fs::create_dir_all(mailbox.target()).unwrap();
    let names = [
        ("duplicity-full.20260101T000000Z.manifest.gpg", 1000),
        (
            "duplicity-inc.20260101T000000Z.to.20260102T000000Z.manifest.gpg",
            100,
        ),
        ("duplicity-full.20260103T000000Z.manifest.gpg", 1000),
    ];
    for (n, size) in names {
        fs::File::create(mailbox.target().join(n))
            .unwrap()
            .set_len(size)
            .unwrap();
    }
    let deleted_in = |m: &MailBox| {
        m.status()["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["deleted_in"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    let three = deleted_in(&mailbox);
    mailbox.set_target("target: local\nmin_age_in_days: 4000\n");
    let out = mailbox.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("custom.yaml, line 2"),
        "{}",
        describe(&out)
    );
    mailbox.set_target("target: local\nmin_age_in_days: 3000\n");
    let long = deleted_in(&mailbox);
    assert_ne!(three, long);
    assert_eq!(three[2], "on next daily backup", "{three:?}");
    assert_ne!(long[2], "on next daily backup", "{long:?}");
}

#[test]
fn targets_that_cannot_work_fail_with_their_cause_and_show_no_secret() {
    needs_root!();
    let moto = Moto::start();
    moto.create_bucket("good");
    let flavor = &flavors()[0];
    let fails = |mailbox: &MailBox, needle: &str| {
        // Whether there may be backups there: UNKNOWN; certainly none
        // (no bucket, no directory): CRITICAL.
        let check_code = if needle.starts_with("no such") { 2 } else { 3 };
        let out = mailbox.run(&["check-target"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(needle), "{needle:?} not in {text}");
        let out = mailbox.run(&["run"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(
            stderr(&out).contains(needle),
            "{needle:?} not in {}",
            describe(&out)
        );
        assert!(
            !stderr(&out).contains("running"),
            "duplicity ran: {}",
            describe(&out)
        );
        let out = mailbox.run(&["status", "--check"]);
        assert_eq!(out.status.code(), Some(check_code), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(needle));
    };

    // A wrong secret: the server checks signatures.
    let mut mailbox = box_for_moto(&moto, flavor, "good/box");
    mailbox.set_target(&format!(
        "target: s3+http://{}/good/box\ntarget_user: {}\ntarget_pass: not-the-secret-8d1f\n",
        moto.endpoint(),
        moto.key_id
    ));
    mailbox.secrets.push("not-the-secret-8d1f".into());
    fails(&mailbox, "bad credentials");
    // A bucket that is not there.
    let mailbox = box_for_moto(&moto, flavor, "missing/box");
    fails(&mailbox, "no such bucket");
    // Nobody listening.
    let nobody = crate::common::servers::free_port();
    let mailbox = box_for_moto(&moto, flavor, "good");
    mailbox.set_target(
        &moto
            .custom_yaml("good")
            .replace(&moto.endpoint(), &format!("127.0.0.1:{nobody}")),
    );
    fails(&mailbox, "unreachable");
    // A name that does not resolve.
    mailbox.set_target(
        &moto
            .custom_yaml("good")
            .replace(&moto.endpoint(), "no-such-host.invalid"),
    );
    fails(&mailbox, "name not resolved");

    // ssh: a key the server does not know.
    let mut sshd = Sshd::start();
    let mailbox = box_for_sshd(&sshd, flavor);
    mailbox.ok(&["check-target"]);
    fs::write(sshd.dir.path().join("authorized_keys"), "").unwrap();
    fails(&mailbox, "bad credentials");
    sshd.authorize(&fs::read_to_string(sshd.home.join(".ssh/id_rsa_miab.pub")).unwrap());
    mailbox.ok(&["check-target"]);
    // The server's host key changed since it was pinned.
    sshd.change_host_key();
    fails(&mailbox, "host key changed");
    let out = mailbox.run(&["check-target"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fix = format!(
        "ssh-keygen -R '[127.0.0.1]:{}' -f {}",
        sshd.port,
        sshd.state.join("known_hosts").display()
    );
    assert!(text.contains(&fix), "{text}");
    // Doing what the message says makes it work again.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&fix)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    mailbox.ok(&["check-target"]);
    // A wrong port, a directory that is not there.
    mailbox.set_target(&format!(
        "target: rsync://root@127.0.0.1:{nobody}/{}\n",
        sshd.remote.display()
    ));
    fails(&mailbox, "unreachable");
    mailbox.set_target(&format!("target: {}/not-there\n", sshd.target()));
    fails(&mailbox, "no such path");
}

#[test]
fn off_b2_and_broken_settings() {
    needs_root!();
    let mailbox = MailBox::new();
    make_mail_store(&mailbox.root, 3);
    mailbox.set_target("target: off\n");
    let out = mailbox.ok(&["run"]);
    assert!(
        stderr(&out).contains("backups are off"),
        "{}",
        describe(&out)
    );
    assert!(!mailbox.target().exists());
    let out = mailbox.run(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("MAILBACKUP CRITICAL - backups are off")
    );
    assert_eq!(mailbox.status()["backups"].as_array().unwrap().len(), 0);

    for (yaml, needles) in [
        (
            "target: b2://00a1b2:K00secretpart@bkt/box\n",
            vec!["line 1", "is not a B2 bucket name"],
        ),
        (
            "min_age_in_days: 3\ntarget: sftp://u@h/x\n",
            vec!["line 2", "sftp://"],
        ),
        ("target: local\n  bad: [\n", vec!["custom.yaml, line"]),
        (
            "target: s3://s3.example.com/bucket\n",
            vec!["line 1", "target_user"],
        ),
    ] {
        mailbox.set_target(yaml);
        let out = mailbox.run(&["run"]);
        assert_eq!(out.status.code(), Some(1), "{yaml}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains(
                &mailbox
                    .root
                    .join("backup/custom.yaml")
                    .display()
                    .to_string()
            ),
            "{err}"
        );
        for n in needles {
            assert!(err.contains(n), "{n:?} not in {err}");
        }
        assert!(!err.contains("K00secretpart"), "{err}");
        assert!(!mailbox.target().exists(), "{yaml}: something ran");
    }
}

#[test]
fn the_private_key_and_secrets_stay_off_argv() {
    needs_root!();
    // What duplicity is started with, from mailbackup's own log line.
    let sshd = Sshd::start();
    let flavor = &flavors()[0];
    let mailbox = box_for_sshd(&sshd, flavor);
    make_mail_store(&mailbox.root, 3);
    let out = mailbox.ok(&["run"]);
    let err = stderr(&out);
    let line = err.lines().find(|l| l.contains("running ")).unwrap();
    // One argv element, which the log quotes whole; no quotes inside.
    let element = format!(
        "'--ssh-options=-oIdentityFile={} -oIdentitiesOnly=yes -oBatchMode=yes \
         -oStrictHostKeyChecking=accept-new -oUserKnownHostsFile={} ",
        sshd.home.join(".ssh/id_rsa_miab").display(),
        sshd.state.join("known_hosts").display()
    );
    assert!(line.contains(&element), "{line}");
    assert!(!line.contains('"'), "{line}");
    let private = fs::read_to_string(sshd.home.join(".ssh/id_rsa_miab")).unwrap();
    for f in sshd.remote_files() {
        let content = fs::read(sshd.remote.join(&f)).unwrap();
        assert!(!String::from_utf8_lossy(&content).contains(private.lines().nth(1).unwrap()));
    }

    let moto = Moto::start();
    moto.create_bucket("argv");
    let mailbox = box_for_moto(&moto, flavor, "argv");
    make_mail_store(&mailbox.root, 3);
    let out = mailbox.ok(&["run"]);
    let line = stderr(&out)
        .lines()
        .find(|l| l.contains("running "))
        .unwrap()
        .to_owned();
    assert!(
        line.contains("boto3+s3://argv") && !line.contains(&moto.secret),
        "{line}"
    );
    assert!(!Path::new(&mailbox.target()).exists());
}
