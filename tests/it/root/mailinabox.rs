//! Switching a Mail-in-a-Box over to mailbackup: what `install` writes to
//! /etc/tmpfiles.d keeps Mail-in-a-Box v75's own nightly backup.py (with the
//! real `exclusiveprocess` it locks with) from backing up a second time,
//! and `uninstall` lets it run again.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;
use mailbackup::mailinabox;

/// Runs v75's `perform_backup()` as the nightly job does, from the checkout,
/// on a box whose custom.yaml says `target: off` (it returns right after
/// taking its lock, having done nothing).
fn nightly_backup_py(checkout: &Path, storage_root: &Path) -> Output {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/v75");
    let path = [
        checkout.join("management"),
        reference.join("exclusiveprocess-0.9.4"),
        reference.join("stubs"),
    ]
    .map(|p| p.display().to_string())
    .join(":");
    let driver = format!(
        "import utils, backup\n\
         backup.load_environment = lambda: {{'STORAGE_ROOT': '{}', 'STORAGE_USER': 'user-data'}}\n\
         backup.perform_backup(False)\n\
         print('backup.py ran')\n",
        storage_root.display()
    );
    Command::new("/usr/bin/python3")
        .args(["-c", &driver])
        .env("PYTHONPATH", path)
        .current_dir(checkout)
        .output()
        .unwrap()
}

#[test]
fn the_tmpfiles_line_keeps_mail_in_a_boxs_nightly_backup_from_running() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("mailinabox");
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/v75");
    fs::create_dir_all(checkout.join("management")).unwrap();
    for file in ["backup.py", "utils.py"] {
        fs::copy(reference.join(file), checkout.join("management").join(file)).unwrap();
    }
    let storage_root = dir.path().join("user-data");
    fs::create_dir_all(storage_root.join("backup")).unwrap();
    fs::write(storage_root.join("backup/custom.yaml"), "target: 'off'\n").unwrap();

    // Before: backup.py takes its lock and goes on.
    let out = nightly_backup_py(&checkout, &storage_root);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup.py ran"));

    // The cron job as Mail-in-a-Box's setup writes it; install's step.
    let cron = dir.path().join("mailinabox-nightly");
    fs::write(
        &cron,
        format!(
            "# Mail-in-a-Box --- Do not edit / will be overwritten on update.\n\
             12 1 * * *\troot\t(cd {} && management/daily_tasks.sh)\n",
            checkout.display()
        ),
    )
    .unwrap();
    let tmpfiles = dir.path().join("mailbackup-mailinabox.conf");
    mailinabox::hold_nightly_backup(&cron, &tmpfiles).unwrap();
    let lock = mailinabox::lock_file(&checkout);
    assert_eq!(fs::read_to_string(&lock).unwrap(), "1");

    let out = nightly_backup_py(&checkout, &storage_root);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is already running (pid 1)"), "{said}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("backup.py ran"));
    // backup.py does not take a held lock over, and a boot writes it again.
    assert_eq!(fs::read_to_string(&lock).unwrap(), "1");
    fs::remove_file(&lock).unwrap();
    let out = Command::new("systemd-tmpfiles")
        .arg("--create")
        .arg(&tmpfiles)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        nightly_backup_py(&checkout, &storage_root).status.code(),
        Some(1)
    );

    // uninstall's step: backup.py runs again.
    mailinabox::release_nightly_backup(&tmpfiles).unwrap();
    assert!(!tmpfiles.exists() && !lock.exists());
    let out = nightly_backup_py(&checkout, &storage_root);
    assert!(out.status.success(), "{}", describe(&out));
}
