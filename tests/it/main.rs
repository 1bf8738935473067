//! The integration tests: one binary, so the helpers in `common` compile
//! once. A test's path says what it needs (see `common::tier`):
//!
//! - top level: nothing a normal user lacks (the Debian packages of
//!   `tests/setup.sh`);
//! - `root::`: root (chown, mount, useradd) and real duplicity 0.8 and 3.x;
//! - `servers::`: root and real servers on 127.0.0.1 (sshd, moto);
//! - `e2e::`: root and a booted systemd in systemd-nspawn;
//! - `package::`: the Debian package, built with cargo-deb.
//!
//! As a normal user the tests that need root return at once and one line
//! says how many and how to run them (`sudo bash tests/run-all.sh`).

mod common;

mod docs;
mod errors;
mod status;
mod tiers;
mod units;

mod package;

mod root {
    mod backup;
    pub mod install;
    mod install_steps;
    mod operate;
    mod snapshot;
    mod sqlite_snapshot;
    mod tiers;
    mod v75;
}

mod servers {
    mod causes;
    mod install;
    mod remote;
    mod restore_mailbox;
}

mod e2e {
    mod backup;
    mod before_backup;
    mod fidelity;
    pub mod package;
    mod pause;
    pub mod remote;
    mod restore_mailbox;
    mod trixie;
}
