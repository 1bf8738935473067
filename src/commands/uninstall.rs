//! `mailbackup uninstall`: remove the units, keep the backups.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::install::read_unit;
use crate::systemd::units::{self, GENERATED_MARK};
use crate::systemd::{self, SYSTEM_UNIT_DIR};

/// Stop and disable the timers and remove mailbackup's units.
///
/// Never touches the backups, the key or the configuration. Drop-ins made
/// with `systemctl edit` stay where they are. With --keep-units, as the
/// Debian package runs it on removal, only the timers are stopped and
/// disabled.
///
/// Example: mailbackup uninstall
#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// Where the units are; only in the system's directory is systemd told.
    #[arg(long, value_name = "DIR", default_value = SYSTEM_UNIT_DIR)]
    pub unit_dir: PathBuf,

    /// Only stop and disable the timers; leave the units in place.
    #[arg(long)]
    pub keep_units: bool,
}

pub fn run(_config_path: &Path, args: &UninstallArgs) -> Result<u8> {
    let dir = &args.unit_dir;
    let manage_systemd = systemd::is_system_unit_dir(dir);
    let mut disabled = 0;
    for timer in units::ALL.into_iter().filter(|n| n.ends_with(".timer")) {
        if manage_systemd && dir.join(timer).exists() {
            // Where systemd does not run (a chroot) there is nothing to stop.
            if systemd::is_booted() {
                systemd::systemctl(&["disable", "--now", timer])?;
                println!("stopped and disabled {timer}");
            } else {
                systemd::systemctl(&["disable", timer])?;
                println!("disabled {timer}");
            }
            disabled += 1;
        }
    }
    // A run that failed would stay listed as failed, and once the units are
    // gone (a purge) as failed and not found: the system "degraded".
    if manage_systemd && systemd::is_booted() {
        let _ = systemd::systemctl(&["reset-failed", "mailbackup*"]);
    }
    if args.keep_units {
        if disabled == 0 {
            println!("no mailbackup timers in {}: nothing to stop", dir.display());
        }
        return Ok(0);
    }
    let mut removed = 0;
    for name in units::ALL {
        let path = dir.join(name);
        let Some(content) = read_unit(&path)? else {
            continue;
        };
        if !content.starts_with(GENERATED_MARK) {
            println!(
                "left {} in place: mailbackup did not write it",
                path.display()
            );
            continue;
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("Failed to remove {}", path.display()))?;
        println!("removed {}", path.display());
        removed += 1;
    }
    if manage_systemd && removed > 0 {
        systemd::systemctl(&["daemon-reload"])?;
    }
    if removed == 0 {
        println!(
            "no mailbackup units in {}: nothing to remove",
            dir.display()
        );
    }
    Ok(0)
}
