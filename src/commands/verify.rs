//! `mailbackup verify`: does the latest backup hold exactly the data?

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::config::{Config, Layout};
use crate::duplicity::{self, Duplicity, Outcome, Source};
use crate::status::history::Operation;
use crate::status::publish::{self, Timed};
use crate::systemd;
use crate::systemd::units::SERVICE;

/// How many differences the summary names.
const SHOWN: usize = 50;

/// Compare the latest backup, file contents included, with STORAGE_ROOT.
///
/// Decrypts and reads the whole latest chain and compares every file with
/// the live data (without backup/). Exits 0 when they match; otherwise names
/// what differs and exits 1. On a running mail server new, flagged or deleted
/// messages differ from the last backup.
///
/// With --from-snapshot it compares with the snapshot the backup was made
/// from instead: mailbackup.service does this after its backup when
/// mailbackup-verify.service asked for it (--if-requested), while the mail
/// runs. --with-backup is that request: it asks, starts mailbackup.service
/// (or joins the backup running), and reports what the comparison found.
///
/// Examples:
///   mailbackup verify
///   systemctl start mailbackup-verify.service
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    /// Compare with the snapshot in STORAGE_ROOT/backup/snapshot.
    #[arg(long, conflicts_with = "with_backup")]
    pub from_snapshot: bool,

    /// With --from-snapshot: only when mailbackup-verify.service asked, and
    /// leave the outcome for it to report.
    #[arg(long, requires = "from_snapshot")]
    pub if_requested: bool,

    /// Have the next run of mailbackup.service compare its backup with its
    /// snapshot, start it, and report.
    #[arg(long)]
    pub with_backup: bool,
}

pub fn run(config_path: &Path, args: &VerifyArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let layout = config.layout();
    if args.with_backup {
        return with_backup(&layout);
    }
    if args.if_requested && !layout.verify_request.exists() {
        return Ok(0);
    }
    let source = if args.from_snapshot {
        if !layout.snapshot_dir.is_dir() {
            bail!(
                "there is no snapshot in {} to compare the backup with",
                layout.snapshot_dir.display()
            );
        }
        Source::Snapshot
    } else {
        Source::Live { include: vec![] }
    };
    let target = super::load_settings(&config)?.active_target()?;
    let timed = Timed::start(Operation::Verify);
    let key = super::load_key(&config);
    let outcome = key.and_then(|key| {
        Duplicity::locate(&layout, &key.passphrase, &target)?.run_in(
            duplicity::source_cwd(&layout, &source),
            &duplicity::verify_args(&layout, &target, &source),
        )
    });
    let code = outcome.as_ref().map_or(1, |o| summary(o, "").0);
    publish::finished(&layout, Some(&target), &timed, code, |_| {});
    let outcome = outcome?;
    let compared = match source {
        Source::Snapshot => layout.snapshot_dir.display().to_string(),
        Source::Live { .. } => layout.storage_root.display().to_string(),
    };
    let (code, lines) = summary(&outcome, &compared);
    for line in &lines {
        eprintln!("{line}");
    }
    if args.if_requested {
        // mailbackup-verify.service reports it; the backup itself is fine.
        let text = format!("{code}\n{}\n", lines.join("\n"));
        write_atomically(&layout.verify_result, &text)?;
        let _ = std::fs::remove_file(&layout.verify_request);
        return Ok(0);
    }
    Ok(code)
}

/// The exit code of a comparison and what to say of it.
fn summary(outcome: &Outcome, compared: &str) -> (u8, Vec<String>) {
    if outcome.code == 0 && outcome.differences.is_empty() {
        return (
            0,
            vec![format!("mailbackup: the latest backup matches {compared}")],
        );
    }
    if outcome.differences.is_empty() {
        return (
            outcome.code,
            vec![format!(
                "mailbackup: verify failed (duplicity exit code {})",
                outcome.code
            )],
        );
    }
    let n = outcome.differences.len();
    let mut lines = vec![format!(
        "mailbackup: the latest backup differs from {compared} in {n} place{}:",
        if n == 1 { "" } else { "s" }
    )];
    lines.extend(
        outcome
            .differences
            .iter()
            .take(SHOWN)
            .map(|d| format!("  {d}")),
    );
    if n > SHOWN {
        lines.push(format!("  ... and {} more", n - SHOWN));
    }
    (1, lines)
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("Failed to write {}", path.display()))
}

/// Asks mailbackup.service to compare its backup with its snapshot, runs
/// it, and reports. A backup already running may have passed that step:
/// then one more runs.
fn with_backup(layout: &Layout) -> Result<u8> {
    let _ = std::fs::remove_file(&layout.verify_result);
    write_atomically(
        &layout.verify_request,
        &format!("requested at {}\n", chrono::Utc::now().to_rfc3339()),
    )?;
    for attempt in 0..2 {
        if let Err(e) = systemd::systemctl(&["start", SERVICE]) {
            let _ = std::fs::remove_file(&layout.verify_request);
            return Err(e).context(format!(
                "The backup that was to be verified failed: see `journalctl -u {SERVICE}`"
            ));
        }
        if !layout.verify_request.exists() {
            break;
        }
        if attempt == 0 {
            eprintln!("mailbackup: the backup that was running had passed its comparison: starting another");
        }
    }
    let result = std::fs::read_to_string(&layout.verify_result).with_context(|| {
        format!(
            "{SERVICE} ran but left no comparison in {} (installed with --downtime full? then \
             mailbackup-verify.service stops the mail and runs `mailbackup verify`): see `journalctl -u {SERVICE}`",
            layout.verify_result.display()
        )
    })?;
    let (code, lines) = result.split_once('\n').unwrap_or((&result, ""));
    eprint!("{lines}");
    Ok(code.trim().parse().unwrap_or(1))
}
