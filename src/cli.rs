//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::{
    check_target::CheckTargetArgs, docs::GenerateDocsArgs, drill::DrillArgs, install::InstallArgs,
    key::KeyArgs, list::ListArgs, notify_failure::NotifyFailureArgs, ping::PingArgs,
    prune::PruneArgs, restore::RestoreArgs, run::RunArgs, snapshot::SnapshotArgs,
    status::StatusArgs, uninstall::UninstallArgs, verify::VerifyArgs,
};
use crate::config::DEFAULT_CONFIG;

/// Encrypted, incremental backups of a Mail-in-a-Box with duplicity.
///
/// systemd runs the backup from mailbackup.service: it stops (or pauses) the
/// mail services for the moment a snapshot of the data takes, backs up the
/// snapshot while the mail runs again, and prunes old backups. Set it up
/// with `mailbackup install`.
#[derive(Debug, Parser)]
#[command(
    name = "mailbackup",
    version = crate::VERSION,
    after_help = "Examples:\n  mailbackup install\n  systemctl start mailbackup.service\n  mailbackup status\n  mailbackup restore --to /root/restored --path mail/mailboxes"
)]
pub struct Cli {
    /// The box's settings: KEY=VALUE lines with STORAGE_ROOT and STORAGE_USER.
    #[arg(long, global = true, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(RunArgs),
    Snapshot(SnapshotArgs),
    Prune(PruneArgs),
    Status(StatusArgs),
    Restore(RestoreArgs),
    List(ListArgs),
    Verify(VerifyArgs),
    Drill(DrillArgs),
    CheckTarget(CheckTargetArgs),
    Install(InstallArgs),
    Uninstall(UninstallArgs),
    Key(KeyArgs),
    NotifyFailure(NotifyFailureArgs),
    Ping(PingArgs),
    #[command(hide = true)]
    GenerateDocs(GenerateDocsArgs),
}
