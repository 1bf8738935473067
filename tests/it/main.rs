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
    mod install_messages;
    mod install_steps;
    mod mailinabox;
    mod operate;
    mod ping;
    mod restore_time;
    mod snapshot;
    mod sqlite_snapshot;
    mod tiers;
    mod v75;
}

mod servers {
    mod b2;
    mod causes;
    mod drill;
    mod install;
    mod remote;
    mod restore_mailbox;
}

mod e2e {
    mod b2;
    mod backup;
    mod before_backup;
    mod drill;
    mod fidelity;
    pub mod package;
    mod pause;
    mod ping;
    pub mod remote;
    mod restore_mailbox;
    mod trixie;
}
