//! systemd: the units mailbackup writes (`units`), and the calls to
//! `systemctl`, `systemd-analyze` and `journalctl` that install, restore,
//! status and the failure mail make.

pub mod units;

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The directory of the system's own units.
pub const SYSTEM_UNIT_DIR: &str = "/etc/systemd/system";

/// Runs `systemctl ARGS`, failing with its error output.
pub fn systemctl(args: &[&str]) -> Result<()> {
    let out = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("Failed to run systemctl {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `systemd-tmpfiles --create FILE`: what FILE says is made now, as
/// at every boot.
pub fn run_tmpfiles_create(file: &Path) -> Result<()> {
    let out = Command::new("systemd-tmpfiles")
        .arg("--create")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("Failed to run systemd-tmpfiles --create {}", file.display()))?;
    if !out.status.success() {
        bail!(
            "systemd-tmpfiles --create {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether `systemctl QUERY UNIT` says yes (`is-enabled`, `is-active`).
pub fn systemctl_says(query: &str, unit: &str) -> bool {
    Command::new("systemctl")
        .args([query, "--quiet", unit])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Checks an OnCalendar= value with `systemd-analyze calendar` where that
/// is installed.
pub fn check_calendar(spec: &str) -> Result<()> {
    let out = match Command::new("systemd-analyze")
        .args(["calendar", spec])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context("Failed to run systemd-analyze calendar"),
    };
    if !out.status.success() {
        bail!(
            "--on-calendar {spec:?} is not a valid calendar specification ({}); see `man systemd.time`",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether `dir` is the system's unit directory, where units are enabled.
pub fn is_system_unit_dir(dir: &Path) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    canonical(dir) == canonical(Path::new(SYSTEM_UNIT_DIR))
}

/// A unit's ActiveState (`active`, `activating`, `failed`, …), or None when
/// systemd cannot be asked.
pub fn active_state(unit: &str) -> Option<String> {
    show(unit, "ActiveState")
}

/// A unit's ActiveState and SubState (`active`, `running`), or None when
/// systemd cannot be asked.
pub fn active_and_sub_state(unit: &str) -> Option<(String, String)> {
    Some((show(unit, "ActiveState")?, show(unit, "SubState")?))
}

/// One property of a unit, from `systemctl show`.
pub fn show(unit: &str, property: &str) -> Option<String> {
    let out = Command::new("systemctl")
        .args(["show", "--value", "-p", property, unit])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !value.is_empty()).then_some(value)
}

/// The last `lines` lines of the journal of `units`, interleaved in time;
/// with `since` (a time `journalctl --since` takes), only those from then on.
pub fn journal_tail(units: &[&str], lines: u32, since: Option<&str>) -> String {
    let mut cmd = Command::new("journalctl");
    cmd.args(["--no-pager", "-o", "short-iso", "-n", &lines.to_string()]);
    for unit in units {
        cmd.args(["-u", unit]);
    }
    if let Some(since) = since {
        cmd.args(["--since", since]);
    }
    cmd.stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// When a unit's run (its invocation ID, 32 hex digits) began: the time of
/// its first journal entry (systemd's "Starting …"), as `@SECONDS` for
/// `journalctl --since`; None when the journal has none.
pub fn invocation_start(invocation: &str) -> Option<String> {
    if invocation.len() != 32 || !invocation.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let out = Command::new("journalctl")
        .args(["--no-pager", "-q", "-o", "short-unix"])
        .arg(format!("INVOCATION_ID={invocation}"))
        .arg("+")
        .arg(format!("_SYSTEMD_INVOCATION_ID={invocation}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let stamp = text.lines().next()?.split_whitespace().next()?;
    stamp.parse::<f64>().is_ok().then(|| format!("@{stamp}"))
}

/// Whether this system runs systemd (sd_booted): a package may be upgraded
/// in a chroot or a container without it.
pub fn is_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}
