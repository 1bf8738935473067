//! `mailbackup status`: the backups on the target, for people and programs.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use chrono::TimeZone;

use crate::backup_set::Stamp;
use crate::config::Config;
use crate::inventory::Inventory;
use crate::report::{backup_status, render_table};
use crate::sys::python_local_zone;

/// Show the backups: when, how old, full or incremental, size, and when they
/// will be deleted. Never writes anything.
///
/// With --json, prints the dictionary of Mail-in-a-Box's `backup_status()`
/// (directory, encpwfile, tz, backups) for the control panel.
///
/// Example: mailbackup status --json
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON for programs instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config_path: &Path, args: &StatusArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let layout = config.layout();
    let inventory = Inventory::scan(&layout.encrypted_dir)?;
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("The system clock is before 1970")?
        .as_micros() as i64;
    let zone = python_local_zone(now_us.div_euclid(1_000_000));
    let report = backup_status(&inventory, &layout, now_us, &zone);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("Failed to write the status")?;
        writeln!(out).context("Failed to write the status")?;
    } else {
        out.write_all(render_table(&report, local_time).as_bytes())
            .context("Failed to write the status")?;
    }
    out.flush().context("Failed to write the status")?;
    Ok(0)
}

/// A backup's time in the local zone, to the minute.
fn local_time(date: &str) -> String {
    Stamp::parse(date.as_bytes())
        .map(|s| {
            chrono::Local
                .from_utc_datetime(&s.datetime())
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| date.to_owned())
}
