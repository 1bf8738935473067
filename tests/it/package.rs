//! The Debian package that `packaging/build-deb.sh` builds with cargo-deb:
//! what it ships, what lintian says of it, and what can be set at build
//! time. Installing, upgrading and removing it are tested in a booted
//! systemd in `e2e/package.rs`.

use std::path::Path;
use std::process::Command;

use crate::common::container::debian_package;
use crate::common::describe;
use crate::common::needs_root;
use crate::common::package::{build_deb, field, QUICK_PROFILE};

fn control_listing(deb: &Path, flag: &str) -> String {
    let out = Command::new("dpkg-deb")
        .arg(flag)
        .arg(deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_package_ships_the_binary_docs_completions_and_maintainer_scripts() {
    needs_root!();
    let deb = debian_package();
    let listing = control_listing(&deb, "-c");
    for file in [
        "./usr/bin/mailbackup",
        "./usr/share/man/man1/mailbackup.1.gz",
        "./usr/share/man/man1/mailbackup-restore.1.gz",
        "./usr/share/bash-completion/completions/mailbackup",
        "./usr/share/zsh/vendor-completions/_mailbackup",
        "./usr/share/fish/vendor_completions.d/mailbackup.fish",
        "./usr/share/doc/mailbackup/copyright",
        "./usr/share/doc/mailbackup/changelog.Debian.gz",
    ] {
        assert!(
            listing.contains(file),
            "{file} missing from the package:\n{listing}"
        );
    }
    assert!(field(&deb, "Depends").contains("duplicity"));
    // Upgrade (postinst), removal (prerm) and purge (postrm) reach the
    // units; nothing runs before unpacking.
    let info = control_listing(&deb, "-I");
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "the package has no {script}: {info}");
    }
    assert!(!info.contains("preinst"), "{info}");
    // What the units do today: the mail stops for a snapshot, not the backup.
    let description = field(&deb, "Description");
    assert!(description.contains("snapshot"), "{description}");
    assert!(
        !description.contains("stop the mail services during the backup"),
        "{description}"
    );
}

/// The postrm removes the units whose first line is the mark that
/// `mailbackup install` writes, without the binary: the two must agree.
#[test]
fn the_purge_script_knows_the_units_by_the_mark_install_writes() {
    needs_root!();
    let postrm = include_str!("../../packaging/scripts/postrm");
    let mark = mailbackup::systemd::units::GENERATED_MARK;
    assert!(
        postrm.contains(&format!("'{mark}'*)")),
        "packaging/scripts/postrm does not match units by {mark:?}"
    );
}

/// Debian's own linter finds no error and no warning; overrides are for
/// tags that are wrong for this package, never for a stripped binary, a
/// changelog or the copyright.
#[test]
fn lintian_finds_no_error_or_warning() {
    needs_root!();
    let deb = debian_package();
    let out = Command::new("lintian")
        .args(["--fail-on", "error,warning", "--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .expect("lintian is missing: run tests/setup.sh first");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let complaints: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "lintian on {}:\n{}",
        deb.display(),
        describe(&out)
    );
    let overrides = include_str!("../../packaging/lintian-overrides");
    let mut reason = false;
    for line in overrides.lines() {
        if line.starts_with('#') {
            reason = true;
            continue;
        }
        assert!(reason, "the override {line:?} gives no reason");
        for tag in ["unstripped-binary", "no-changelog", "copyright"] {
            assert!(!line.contains(tag), "{tag} is overridden");
        }
        reason = false;
    }
}

#[test]
fn the_maintainer_is_set_at_build_time_and_is_a_real_address_by_default() {
    needs_root!();
    let deb = debian_package();
    let default = field(&deb, "Maintainer");
    assert!(
        !default.contains("localhost") && default.contains('@'),
        "{default}"
    );
    let out = tempfile::tempdir().unwrap();
    let other = out.path().join("mailbackup.deb");
    let deb = build_deb(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &[
            (
                "MAILBACKUP_MAINTAINER",
                "Box Admins <admins@box.example.net>",
            ),
            ("MAILBACKUP_DEB_OUTPUT", other.to_str().unwrap()),
            QUICK_PROFILE,
        ],
    );
    assert_eq!(deb, other);
    assert_eq!(
        field(&deb, "Maintainer"),
        "Box Admins <admins@box.example.net>"
    );
}
