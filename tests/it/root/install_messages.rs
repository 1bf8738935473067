//! What `install` says in the cases a new user met: run as a normal user,
//! after custom.yaml was removed, and a settings file others could read,
//! with a secret in it or none.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::*;
use crate::root::install::{install, install_box, stdout};

#[test]
fn install_as_a_normal_user_says_it_must_be_run_as_root() {
    needs_root!();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["--config", "/nonexistent/mailinabox.conf", "install"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("mailbackup install must be run as root"),
        "{said}"
    );
}

#[test]
fn a_removed_custom_yaml_is_named_as_gone_and_a_secret_only_where_there_is_one() {
    needs_root!();
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    fs::create_dir_all(mailbox.root.join("backup")).unwrap();
    let settings = mailbox.root.join("backup/custom.yaml");

    // No secret in it: made private, without a word of a secret.
    fs::write(&settings, "target: local\nmin_age_in_days: 3\n").unwrap();
    fs::set_permissions(&settings, fs::Permissions::from_mode(0o644)).unwrap();
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let said = stdout(&out);
    assert!(said.contains("readable by root only (mode 0600)"), "{said}");
    assert!(!said.contains("holds the target's secret"), "{said}");

    // An S3 secret in it: said so. (The endpoint does not answer: the
    // units are written, no timer is enabled.)
    fs::write(
        &settings,
        "target: s3+http://127.0.0.1:9/bucket/box\ntarget_user: id\ntarget_pass: 'not shown'\n",
    )
    .unwrap();
    fs::set_permissions(&settings, fs::Permissions::from_mode(0o644)).unwrap();
    let out = install(&mailbox, &units, &[]);
    let said = stdout(&out);
    assert!(
        said.contains("it holds the target's secret"),
        "{}",
        describe(&out)
    );
    assert!(!said.contains("not shown"));

    // custom.yaml removed: the units go back to the local target, and
    // install does not send the reader to a file that is gone.
    fs::remove_file(&settings).unwrap();
    let out = install(&mailbox, &units, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let said = stdout(&out);
    assert!(
        said.contains(&format!(
            "for the local target: {} is gone",
            settings.display()
        )),
        "{said}"
    );
    assert!(!said.contains("for the backup target in"), "{said}");
}

/// A unit directory that does not exist is named as such, before anything
/// is changed (custom.yaml keeps its mode), in a dry run too.
#[test]
fn a_missing_unit_directory_is_refused_before_anything_changes() {
    needs_root!();
    let mailbox = install_box();
    fs::create_dir_all(mailbox.root.join("backup")).unwrap();
    let settings = mailbox.root.join("backup/custom.yaml");
    fs::write(&settings, "target: local\n").unwrap();
    fs::set_permissions(&settings, fs::Permissions::from_mode(0o644)).unwrap();
    let units = mailbox.dir.path().join("no-such-dir");
    for extra in [&[][..], &["--dry-run"]] {
        let out = install(&mailbox, &units, extra);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(&format!(
                "the unit directory {} does not exist",
                units.display()
            )),
            "{said}"
        );
    }
    let mode = fs::metadata(&settings).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    assert!(!mailbox.key_file().exists());
}
