//! mailbackup: encrypted, incremental backups of a Mail-in-a-Box's
//! `STORAGE_ROOT` with duplicity, with scheduling, locking and service
//! restarts left to systemd.

pub mod backend;
pub mod cli;
pub mod commands;
pub mod config;
pub mod drill;
pub mod duplicity;
pub mod key;
pub mod mail;
pub mod maildir;
pub mod mailinabox;
pub mod ping;
pub mod snapshot;
pub mod status;
pub mod suggest;
pub mod sys;
pub mod systemd;

use anyhow::Result;

/// The version `--version` and the man pages give: the Debian package's
/// (`MAILBACKUP_VERSION`, set by `packaging/build-deb.sh` from
/// `MAILBACKUP_DEB_VERSION`) when it was built as one, else Cargo.toml's.
pub const VERSION: &str = match option_env!("MAILBACKUP_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

use cli::{Cli, Command};

/// Runs one command; the result is the process's exit code.
pub fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Run(args) => commands::run::run(&cli.config, args),
        Command::Snapshot(args) => commands::snapshot::run(&cli.config, args),
        Command::Prune(args) => commands::prune::run(&cli.config, args),
        Command::Status(args) => commands::status::run(&cli.config, args),
        Command::Restore(args) => commands::restore::run(&cli.config, args),
        Command::List(args) => commands::list::run(&cli.config, args),
        Command::Verify(args) => commands::verify::run(&cli.config, args),
        Command::Drill(args) => commands::drill::run(&cli.config, args),
        Command::CheckTarget(args) => commands::check_target::run(&cli.config, args),
        Command::Install(args) => commands::install::run(&cli.config, args),
        Command::Uninstall(args) => commands::uninstall::run(&cli.config, args),
        Command::NotifyFailure(args) => commands::notify_failure::run(&cli.config, args),
        Command::Ping(args) => commands::ping::run(&cli.config, args),
        Command::Key(args) => commands::key::run(&cli.config, args),
        Command::GenerateDocs(args) => commands::docs::run(&cli.config, args),
    }
}
