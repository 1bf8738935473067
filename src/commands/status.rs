//! `mailbackup status`: the backups on the target, for people and programs.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use chrono::TimeZone;

use crate::backend::Unusable;
use crate::config::Config;
use crate::duplicity::backup_set::Stamp;
use crate::duplicity::inventory::Inventory;
use crate::key;
use crate::snapshot;
use crate::status::history::History;
use crate::status::report::{
    add_problems, backup_status, check_health, drill_check, render_table, snapshot_warning, Health,
};
use crate::sys::python_local_zone;
use crate::systemd;
use crate::systemd::units::{BEFORE_HOOK_SERVICE, SERVICE, SNAPSHOT_SERVICE};

/// Show the backups: when, how old, full or incremental, size, and when they
/// will be deleted. Never writes anything.
///
/// With --json, prints the dictionary of Mail-in-a-Box's `backup_status()`
/// (backups with their volumes, unmatched_file_size) for the control panel,
/// with the keys of its 2015 version (directory, encpwfile, tz, previous).
///
/// With --check, prints one line and exits like a Nagios/Icinga plugin,
/// naming every problem: 0 when all is well; 2 (critical) when no backup is
/// younger than --max-age, the last run failed (and which step), the key
/// file is missing, the last restore drill failed, or the bucket or
/// directory of an off-site target does not exist; 1 (warning) for what
/// wants a look: a key not yet confirmed (`mailbackup key confirm`), no
/// drill passed for a long time, an interrupted newest set, files in the
/// target that duplicity did not write, what the last snapshot warned of,
/// unknown settings in custom.yaml; 3 when it cannot tell (a target it
/// cannot reach).
///
/// Examples:
///   mailbackup status --json
///   mailbackup status --check --max-age 26
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct StatusArgs {
    /// Print JSON for programs instead of a table.
    #[arg(long, conflicts_with = "check")]
    pub json: bool,

    /// Check the backups for monitoring: one line, plugin exit codes.
    #[arg(long)]
    pub check: bool,

    /// With --check: the age in hours past which the newest backup is too old.
    #[arg(long, value_name = "HOURS", default_value_t = 36, requires = "check")]
    pub max_age: u32,
}

pub fn run(config_path: &Path, args: &StatusArgs) -> Result<u8> {
    if !args.check {
        return report(config_path, args);
    }
    match check(config_path, args) {
        Ok(code) => Ok(code),
        Err(e) => {
            // A target that could not be used says why; anything else
            // (the settings, the clock) leaves the state of the backups
            // unknown.
            let health = e
                .downcast_ref::<Unusable>()
                .map_or(Health::Unknown, |u| Health::of_unusable_target(u.cause));
            println!("MAILBACKUP {} - {e:#}", health.label());
            Ok(health.exit_code())
        }
    }
}

fn now_us() -> Result<i64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("The system clock is before 1970")?
        .as_micros() as i64)
}

fn check(config_path: &Path, args: &StatusArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let settings = super::load_settings(&config)?;
    let Some(target) = &settings.target else {
        let health = Health::Critical;
        println!(
            "MAILBACKUP {} - {}|backups=0",
            health.label(),
            settings.off()
        );
        return Ok(health.exit_code());
    };
    let inventory = target.inventory()?;
    let failed = last_run_failure();
    let layout = config.layout();
    let key_missing = key::missing(&layout.key_file);
    let mut warnings = settings.warnings.clone();
    warnings.extend(snapshot_warning(&snapshot::last_warnings(&layout)));
    if key_missing.is_none() {
        warnings.extend(key::custody(&layout).warning());
    }
    let now_us = now_us()?;
    let checked = check_health(
        &inventory,
        &target.describe(),
        now_us,
        args.max_age,
        failed.as_deref(),
        key_missing.as_deref(),
        &warnings,
    );
    let (health, line) = add_problems(checked, &drill_problems(&config, &inventory, now_us));
    println!("{line}");
    Ok(health.exit_code())
}

/// Why the last backup run failed, if systemd says it did: the step that
/// failed during it (the before-backup hook, the snapshot), or how it ended.
fn last_run_failure() -> Option<String> {
    if systemd::active_state(SERVICE)? != "failed" {
        return None;
    }
    let monotonic = |unit: &str, property: &str| {
        systemd::show(unit, property).and_then(|t| t.parse::<u64>().ok())
    };
    let started = monotonic(SERVICE, "InactiveExitTimestampMonotonic");
    for (unit, step) in [
        (BEFORE_HOOK_SERVICE, "the before-backup hook"),
        (SNAPSHOT_SERVICE, "the snapshot"),
    ] {
        let failed = systemd::active_state(unit).is_some_and(|s| s == "failed");
        if failed && monotonic(unit, "StateChangeTimestampMonotonic") >= started {
            return Some(format!("{step} failed: see journalctl -u {unit}"));
        }
    }
    let how = systemd::show(SERVICE, "Result").map_or_else(String::new, |r| format!(" ({r})"));
    Some(format!("see systemctl status {SERVICE}{how}"))
}

/// What the restore drills recorded: a failed one, or none for too long.
fn drill_problems(config: &Config, inventory: &Inventory, now_us: i64) -> Vec<(Health, String)> {
    let history = match History::load(&config.layout().history) {
        Ok(h) => h,
        Err(e) => return vec![(Health::Warning, format!("{e:#}"))],
    };
    let oldest_us = inventory
        .backups
        .iter()
        .filter(|b| b.complete)
        .map(|b| b.date.datetime().and_utc().timestamp_micros())
        .min();
    let summary = history.drill_findings.as_ref().map(|f| f.summary.as_str());
    drill_check(history.drill.as_ref(), summary, oldest_us, now_us)
        .into_iter()
        .collect()
}

fn report(config_path: &Path, args: &StatusArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let layout = config.layout();
    let settings = super::load_settings(&config)?;
    let (inventory, directory) = match &settings.target {
        Some(target) => (target.inventory()?, target.describe()),
        None => (Inventory::default(), "off".to_owned()),
    };
    let now_us = now_us()?;
    let zone = python_local_zone(now_us.div_euclid(1_000_000));
    let report = backup_status(
        &inventory,
        &layout,
        &directory,
        settings.min_age_in_days,
        now_us,
        &zone,
    );
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if settings.target.is_none() && !args.json {
        writeln!(
            out,
            "Backups are off (target: off in {}).",
            settings.path.display()
        )
        .context("Failed to write the status")?;
    } else if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("Failed to write the status")?;
        writeln!(out).context("Failed to write the status")?;
    } else {
        out.write_all(render_table(&report, local_time).as_bytes())
            .context("Failed to write the status")?;
        if let Some(why) = last_run_failure() {
            writeln!(out, "The last backup run failed: {why}")
                .context("Failed to write the status")?;
        }
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
