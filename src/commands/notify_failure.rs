//! `mailbackup notify-failure`: mail the administrator that a unit failed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::backend::Settings;
use crate::config::Config;
use crate::key;
use crate::mail::failure::{failure_mail, redact, valid_address, FailureReport};
use crate::mail::{queue, smtp};
use crate::systemd;
use crate::systemd::units;

/// The box's own mail server.
pub const LOCAL_SMTP: &str = "127.0.0.1:25";

/// Mail the administrator that a unit failed, with its journal.
///
/// Run by mailbackup-failure@UNIT.service, which systemd starts when
/// mailbackup.service, the hook or the verify service fails. Hands the mail
/// to the box's own mail server on 127.0.0.1:25 (the sandboxed unit may not
/// run the set-gid sendmail). When that server does not answer, the mail
/// goes to postfix's queue with postfix's sendmail (as a member of the
/// postdrop group), which postfix delivers once it runs again.
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

    /// The SMTP server that takes the mail.
    #[arg(long, value_name = "HOST:PORT", default_value = LOCAL_SMTP)]
    pub smtp: String,

    /// Where the mail waits when the SMTP server does not take it:
    /// postfix's sendmail, which leaves it in postfix's queue (maildrop)
    /// even while postfix is stopped.
    #[arg(long, value_name = "PATH", default_value = queue::SENDMAIL)]
    pub sendmail: PathBuf,
}

pub fn run(config_path: &Path, args: &NotifyFailureArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    if !valid_address(&args.to) {
        bail!("--to {:?} is not an email address", args.to);
    }
    let unit = units::unit_name(&args.unit)?;
    let host = host_name(&config);
    // systemd gives an OnFailure= unit the result of the unit that failed;
    // asking over D-Bus is the way when run by hand.
    let result = std::env::var("MONITOR_SERVICE_RESULT")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| systemd::show(&unit, "Result"))
        .unwrap_or_else(|| "unknown".to_owned());
    let layout = config.layout();
    let invocation = std::env::var("MONITOR_INVOCATION_ID")
        .ok()
        .filter(|i| !i.is_empty())
        .or_else(|| systemd::show(&unit, "InvocationID"));
    let journal = run_journal(&config, &unit, invocation, args.lines);
    // What systemd logged of the run tells a missing key where this unit
    // may not look (a STORAGE_ROOT closed to others).
    let settings = super::load_settings(&config).ok();
    let cause = key_cause(&layout.key_file, settings.as_ref(), &journal);
    let date = chrono::Local::now().to_rfc2822();
    let message = failure_mail(&FailureReport {
        host: &host,
        to: &args.to,
        unit: &unit,
        journal_units: &journal_units(&unit),
        result: &result,
        journal: &journal,
        cause: cause.as_deref(),
        date: &date,
    });
    let from = format!("root@{host}");
    if let Err(e) = smtp::send(&args.smtp, &host, &from, &args.to, &message) {
        // The mail server is down, restarting, or the very service the
        // backup could not start again: postfix's own queue keeps the mail
        // until it runs.
        eprintln!(
            "mailbackup: the mail server did not take the mail ({e:#}): handing it to {} to wait in \
             postfix's queue",
            args.sendmail.display()
        );
        if let Err(q) = queue::hand_to_sendmail(&args.sendmail, &from, &message) {
            bail!("{e:#}; {q:#}: the administrator was not told that {unit} failed");
        }
        eprintln!(
            "mailbackup: the mail that {unit} failed ({result}) waits in postfix's queue for {}: \
             postfix delivers it once it runs again",
            args.to
        );
        return Ok(0);
    }
    eprintln!("mailbackup: told {} that {unit} failed ({result})", args.to);
    Ok(0)
}

/// The name the box goes by in mail: PRIMARY_HOSTNAME, else /etc/hostname.
pub fn host_name(config: &Config) -> String {
    config
        .get("PRIMARY_HOSTNAME")
        .map(str::to_owned)
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The backup's snapshot is taken, and its before-backup hook run, by units
/// of their own, whose journals say why they failed (a restore running, the
/// hook's own words) where the backup's says only that they did.
fn journal_units(unit: &str) -> Vec<&str> {
    let mut journal_units = vec![unit];
    if unit == units::SERVICE {
        journal_units.push(units::SNAPSHOT_SERVICE);
        journal_units.push(units::BEFORE_HOOK_SERVICE);
    }
    journal_units
}

/// The last `lines` journal lines of the run `invocation` of `unit` (of
/// its last run without one), with every secret blanked out, should one
/// ever have reached the journal: the passphrase, the target's secret and
/// the ping URL. For the failure mail and the ping's body.
pub fn run_journal(config: &Config, unit: &str, invocation: Option<String>, lines: u32) -> String {
    let layout = config.layout();
    let passphrase = key::load(&layout.key_file).ok().map(|k| k.passphrase);
    // Only the lines of this run, not those of earlier runs.
    let since = invocation.and_then(|i| systemd::invocation_start(&i));
    let journal = redact(
        &systemd::journal_tail(&journal_units(unit), lines, since.as_deref()),
        passphrase.as_ref(),
    );
    // The settings may not parse: then there is no secret of theirs.
    match super::load_settings(config) {
        Ok(settings) => settings.redact(&journal),
        Err(_) => journal,
    }
}

/// The line naming a missing key, if the key is missing. This unit may not
/// look into a STORAGE_ROOT closed to others (0700): then what systemd
/// logged of the run (`journal`) tells it, with the other credential files
/// of the target's `settings`.
fn key_cause(key_file: &Path, settings: Option<&Settings>, journal: &str) -> Option<String> {
    key::missing(key_file).or_else(|| {
        let others = match settings {
            Some(s) => Some(
                s.target
                    .as_ref()
                    .map(|t| t.unit_needs(&s.path).credentials)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, path)| path)
                    .collect::<Vec<_>>(),
            ),
            None => installed_credentials(key_file),
        };
        key::hidden(key_file)
            .then(|| key::missing_by_journal(key_file, journal, others.as_deref()))
            .flatten()
    })
}

/// The credential files besides the key that the installed units load,
/// when the settings cannot be read: what the target needed when they were
/// rendered, as the service unit's header records it (only an S3 target
/// loads its settings file, beside the key). None when that is not known.
fn installed_credentials(key_file: &Path) -> Option<Vec<std::path::PathBuf>> {
    let unit =
        std::fs::read_to_string(Path::new(systemd::SYSTEM_UNIT_DIR).join(units::SERVICE)).ok()?;
    let tag = units::Stamp::of(&unit)?.target?;
    if !tag.contains("credentials") {
        return Some(Vec::new());
    }
    Some(vec![key_file.parent()?.join(crate::backend::SETTINGS_FILE)])
}
