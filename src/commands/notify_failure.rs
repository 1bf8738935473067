//! `mailbackup notify-failure`: mail the administrator that a unit failed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::key;
use crate::notify::{failure_mail, redact, valid_address, FailureReport};
use crate::systemd;
use crate::units;

/// The sendmail of the box's own postfix.
pub const SENDMAIL: &str = "/usr/sbin/sendmail";

/// Mail the administrator that a unit failed, with its journal.
///
/// Run by mailbackup-failure@UNIT.service, which systemd starts when
/// mailbackup.service, the hook or the verify service fails. Sends through
/// /usr/sbin/sendmail.
///
/// Example: mailbackup notify-failure --to administrator@box.example.com mailbackup.service
#[derive(Debug, clap::Args)]
pub struct NotifyFailureArgs {
    /// The unit that failed.
    pub unit: String,

    /// Who gets the mail.
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,

    /// How many lines of the unit's journal to include.
    #[arg(long, default_value_t = 60)]
    pub lines: u32,
}

pub fn run(config_path: &Path, args: &NotifyFailureArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    if !valid_address(&args.to) {
        bail!("--to {:?} is not an email address", args.to);
    }
    let unit = units::unit_name(&args.unit)?;
    let host = config
        .get("PRIMARY_HOSTNAME")
        .map(str::to_owned)
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let result = systemd::show(&unit, "Result").unwrap_or_else(|| "unknown".to_owned());
    // The key only to blank it out, should it ever have reached the journal.
    let passphrase = key::load(&config.layout().key_file)
        .ok()
        .map(|k| k.passphrase);
    let journal = redact(
        &systemd::journal_tail(&unit, args.lines),
        passphrase.as_ref(),
    );
    let date = chrono::Local::now().to_rfc2822();
    let message = failure_mail(&FailureReport {
        host: &host,
        to: &args.to,
        unit: &unit,
        result: &result,
        journal: &journal,
        date: &date,
    });
    let mut child = Command::new(SENDMAIL)
        .args(["-i", "-t"])
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("Failed to run {SENDMAIL} to mail {}", args.to))?;
    child
        .stdin
        .take()
        .context("sendmail has no input")?
        .write_all(message.as_bytes())
        .with_context(|| format!("Failed to hand the mail to {SENDMAIL}"))?;
    let status = child.wait().context("Failed to wait for sendmail")?;
    if !status.success() {
        bail!("{SENDMAIL} failed ({status}): the administrator was not told that {unit} failed");
    }
    eprintln!("mailbackup: told {} that {unit} failed ({result})", args.to);
    Ok(0)
}
