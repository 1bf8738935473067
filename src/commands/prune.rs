//! `mailbackup prune`: delete the backups that are no longer needed.

use std::path::Path;

use anyhow::Result;

use crate::backend::Target;
use crate::config::Config;
use crate::duplicity::{self, Duplicity, EXIT_USER_ERROR};
use crate::status::history::Operation;
use crate::status::publish::{self, Timed};

/// Delete backups no longer needed, then what interrupted backups left.
///
/// Runs `duplicity remove-older-than TIME --force`, which never deletes the
/// newest chain nor a backup that a kept one depends on, then
/// `duplicity cleanup --force`. TIME is N days ago, N being min_age_in_days
/// from STORAGE_ROOT/backup/custom.yaml (3 without it) unless --keep-days
/// says, but never later than the newest backup: with N = 0 the newest
/// chain stays, and everything older goes.
///
/// Example: mailbackup prune --keep-days 7
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Keep every backup needed to restore any state of this many days [default: min_age_in_days in STORAGE_ROOT/backup/custom.yaml, else 3]
    #[arg(long, value_name = "DAYS")]
    pub keep_days: Option<u32>,
}

pub fn run(config_path: &Path, args: &PruneArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let settings = super::load_settings(&config)?;
    let Some(target) = &settings.target else {
        eprintln!("mailbackup: {}: nothing to prune", settings.off());
        return Ok(0);
    };
    let timed = Timed::start(Operation::Prune);
    let keep_days = args.keep_days.unwrap_or(settings.min_age_in_days);
    let result = prune(&config, target, keep_days);
    publish::finished(
        &config.layout(),
        Some(target),
        &timed,
        *result.as_ref().unwrap_or(&1),
        |_| {},
    );
    result
}

fn prune(config: &Config, target: &Target, keep_days: u32) -> Result<u8> {
    let layout = config.layout();
    let inventory = target.inventory()?;
    if inventory.backups.is_empty() {
        eprintln!(
            "mailbackup: no backups in {}, nothing to prune",
            target.describe()
        );
        return Ok(0);
    }
    let newest_us = inventory
        .chained()
        .first()
        .map(|b| b.date.datetime().and_utc().timestamp_micros());
    let now_us = chrono::Utc::now().timestamp_micros();
    let cutoff = duplicity::prune_cutoff(keep_days, now_us, newest_us);
    let key = super::load_key(config)?;
    let duplicity = Duplicity::locate(&layout, &key.passphrase, target)?;
    for args in [
        duplicity::remove_older_than_args(&layout, target, cutoff),
        duplicity::cleanup_args(&layout, target),
    ] {
        let outcome = duplicity.run(&args)?;
        if outcome.code == EXIT_USER_ERROR && outcome.locked_out {
            eprintln!(
                "mailbackup: a backup is running (duplicity holds the lock in {}): prune again once it is done",
                layout.cache_dir.display()
            );
            return Ok(outcome.code);
        }
        if outcome.code != 0 {
            eprintln!(
                "mailbackup: duplicity failed with exit code {}: pruning stopped",
                outcome.code
            );
            return Ok(outcome.code);
        }
    }
    Ok(0)
}
