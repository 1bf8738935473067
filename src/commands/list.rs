//! `mailbackup list`: the files in a backup.

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use crate::duplicity::{self, Duplicity};

/// List the files of the latest backup, or of the one at --time.
///
/// Use it to pick what to restore with `mailbackup restore --path`.
///
/// Example: mailbackup list --time 3D | grep alice
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The backup to list: any time duplicity takes (3D, 2026-11-20, ...), or a minute as `status` shows it ('2026-11-20 03:00') [default: the latest]
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
}

pub fn run(config_path: &Path, args: &ListArgs) -> Result<u8> {
    super::check_time_arg(args.time.as_deref())?;
    let config = Config::load(config_path)?;
    let layout = config.layout();
    let target = super::load_settings(&config)?.active_target()?;
    let key = super::load_key(&config)?;
    let outcome = Duplicity::locate(&layout, &key.passphrase, &target)?.run(
        &duplicity::list_args(&layout, &target, args.time.as_deref()),
    )?;
    Ok(outcome.code)
}
