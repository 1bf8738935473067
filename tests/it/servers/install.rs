//! `mailbackup install` for off-site targets on real servers: it checks an
//! S3 bucket on moto and an ssh target on a private sshd.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::common::*;
use crate::root::install::{assert_units_verify, install, install_box, stdout};

/// A new backup target in custom.yaml changes the units (the network, the
/// credential): `install` says the target changed, not that the units were
/// edited by hand.
#[test]
fn a_new_target_updates_the_units_and_is_no_hand_edit() {
    needs_root!();
    let moto = crate::common::servers::Moto::start();
    moto.create_bucket("box-backups");
    let mut mailbox = install_box();
    mailbox.secrets.push(moto.secret.clone());
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let settings = mailbox.root.join("backup/custom.yaml");
    let service = units.join("mailbackup.service");
    let said =
        |text: &str, why: &str| text.contains(&format!("updated {} for {why}", service.display()));

    mailbox.set_target(&moto.custom_yaml("box-backups/mail"));
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        said(
            &text,
            &format!("the backup target in {}", settings.display())
        ) && !text.contains("by hand"),
        "{text}"
    );

    // Back to the box's own directory, with a new option at once.
    mailbox.set_target("target: local\n");
    let out = install(&mailbox, &units, &["--on-calendar", "*-*-* 04:00:00"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        said(
            &text,
            &format!(
                "the options given and the backup target in {}",
                settings.display()
            )
        ) && !text.contains("by hand"),
        "{text}"
    );
}

#[test]
fn install_checks_an_s3_target_locks_up_its_settings_and_loads_them_as_a_credential() {
    needs_root!();
    let moto = crate::common::servers::Moto::start();
    moto.create_bucket("box-backups");
    let mut mailbox = install_box();
    mailbox.secrets.push(moto.secret.clone());
    fs::create_dir(mailbox.root.join("backup")).unwrap();
    let settings = mailbox.root.join("backup/custom.yaml");
    mailbox.set_target(&moto.custom_yaml("box-backups/mail"));
    fs::set_permissions(&settings, fs::Permissions::from_mode(0o644)).unwrap();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();

    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "made {} readable by root only",
            settings.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "checked s3+http://{}/box-backups/mail: 0 backups",
            moto.endpoint()
        )),
        "{text}"
    );
    assert_eq!(fs::metadata(&settings).unwrap().mode() & 0o777, 0o600);
    let service = fs::read_to_string(units.join("mailbackup.service")).unwrap();
    assert!(
        service.contains(&format!(
            "LoadCredential=custom.yaml:{}\n",
            settings.display()
        )) && service.contains("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n")
            && !service.contains("PrivateNetwork=yes"),
        "{service}"
    );
    for unit in fs::read_dir(&units).unwrap() {
        let content = fs::read_to_string(unit.unwrap().path()).unwrap();
        assert!(!content.contains(&moto.secret), "the secret is in a unit");
    }
    write_file(
        &mailbox.root.join("backup/after-backup"),
        b"#!/bin/sh\n",
        0o755,
        std::time::SystemTime::now(),
    );
    assert_units_verify(&units);
    let out = install(&mailbox, &units, &[]);
    assert!(
        !stdout(&out).contains("readable by root only"),
        "{}",
        describe(&out)
    );

    // A bucket that is not there: the units are written, no timer, exit 1.
    mailbox.set_target(&moto.custom_yaml("no-such-bucket"));
    let out = install(&mailbox, &units, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such bucket") && err.contains("no timer was enabled"),
        "{err}"
    );
}

#[test]
fn install_makes_the_ssh_key_prints_it_and_pins_the_host_key() {
    needs_root!();
    let sshd = crate::common::servers::Sshd::start();
    let home = tempfile::tempdir().unwrap();
    let mailbox = install_box()
        .with_env("HOME", home.path())
        .with_env("STATE_DIRECTORY", &sshd.state);
    fs::create_dir(mailbox.root.join("backup")).unwrap();
    mailbox.set_target(&format!("target: {}\n", sshd.target()));
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();

    // No key yet: one is made, and the server does not know it.
    let out = install(&mailbox, &units, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let key = home.path().join(".ssh/id_rsa_miab");
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    assert!(public.starts_with("ssh-rsa "), "{public}");
    assert!(stdout(&out).contains(public.trim()), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad credentials") && err.contains(public.trim()),
        "{err}"
    );
    assert_eq!(
        fs::metadata(&key).unwrap().mode() & 0o777,
        0o600,
        "the private key"
    );
    let service = fs::read_to_string(units.join("mailbackup.service")).unwrap();
    assert!(service.contains("StateDirectory=mailbackup\n"), "{service}");
    write_file(
        &mailbox.root.join("backup/after-backup"),
        b"#!/bin/sh\n",
        0o755,
        std::time::SystemTime::now(),
    );
    assert_units_verify(&units);

    // The operator puts the key on the server: now it works, the key stays.
    sshd.authorize(&public);
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains("checked rsync://"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        fs::read_to_string(key.with_extension("pub")).unwrap(),
        public
    );
    let pinned = fs::read_to_string(sshd.state.join("known_hosts")).unwrap();
    assert!(
        pinned.contains(&format!("[127.0.0.1]:{}", sshd.port)),
        "{pinned}"
    );
}
