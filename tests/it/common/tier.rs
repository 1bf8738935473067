//! Tiers: what a test needs beyond the binary is the first part of its
//! path. Tests at the top level need nothing a normal user lacks; the
//! others need root. As a normal user they return at once, and
//! `tiers::what_was_left_out_is_said_in_one_line` says so in one line.

/// The modules whose tests need root, and what else each needs.
pub const TIERS: [(&str, &str); 4] = [
    ("root", "root: chown, mount, useradd"),
    ("servers", "root, a private sshd and moto on 127.0.0.1"),
    ("e2e", "root and a booted systemd in systemd-nspawn"),
    (
        "package",
        "cargo-deb and lintian as tests/setup.sh installs them",
    ),
];

/// How to run every tier.
pub const RUN_ALL: &str = "sudo bash tests/run-all.sh";

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The tier of a test's path (`root::backup::...`), if it is in one.
pub fn tier_of(test: &str) -> Option<&'static str> {
    let first = test.split("::").next()?;
    TIERS.iter().map(|(t, _)| *t).find(|t| *t == first)
}

/// Whether the running test, which needs root, is to return at once: it
/// is not root. Panics if the test is not in a tier, so that names and
/// needs stay in step.
pub fn skip_without_root() -> bool {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("");
    assert!(
        tier_of(test).is_some(),
        "{test} needs root but is not in a tier that says so: move it under one of {:?}",
        TIERS.map(|(t, _)| t)
    );
    !is_root()
}

/// The first line of every test in a tier: returns from it unless root.
macro_rules! needs_root {
    () => {
        if $crate::common::tier::skip_without_root() {
            return;
        }
    };
}
pub(crate) use needs_root;
