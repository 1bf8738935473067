//! `mailbackup verify`: does the latest backup hold exactly the data?

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use crate::duplicity::{self, Duplicity};

/// How many differences the summary names.
const SHOWN: usize = 50;

/// Compare the latest backup, file contents included, with STORAGE_ROOT.
///
/// Decrypts and reads the whole latest chain and compares every file with
/// the live data (without backup/). Exits 0 when they match; otherwise names
/// what differs and exits 1. On a running mail server new, flagged or deleted
/// messages differ from the last backup; mailbackup-verify.service therefore
/// stops the mail services and backs up first.
///
/// Example: mailbackup verify
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {}

pub fn run(config_path: &Path, _args: &VerifyArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let layout = config.layout();
    let key = super::load_key(&config)?;
    let outcome =
        Duplicity::locate(&layout, &key.passphrase)?.run(&duplicity::verify_args(&layout))?;
    let root = layout.storage_root.display();
    if outcome.code == 0 && outcome.differences.is_empty() {
        eprintln!("mailbackup: the latest backup matches {root}");
        return Ok(0);
    }
    if outcome.differences.is_empty() {
        eprintln!(
            "mailbackup: verify failed (duplicity exit code {})",
            outcome.code
        );
        return Ok(outcome.code);
    }
    eprintln!(
        "mailbackup: the latest backup differs from {root} in {} place{}:",
        outcome.differences.len(),
        if outcome.differences.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    for d in outcome.differences.iter().take(SHOWN) {
        eprintln!("  {d}");
    }
    if outcome.differences.len() > SHOWN {
        eprintln!("  ... and {} more", outcome.differences.len() - SHOWN);
    }
    Ok(1)
}
