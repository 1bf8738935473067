//! `mailbackup notify-failure`: mail the administrator that a unit failed.

use std::path::Path;

use anyhow::{bail, Result};

use crate::backend::Settings;
use crate::config::Config;
use crate::key;
use crate::mail::failure::{failure_mail, redact, valid_address, FailureReport};
use crate::mail::smtp;
use crate::systemd;
use crate::systemd::units;

/// The box's own mail server.
pub const LOCAL_SMTP: &str = "127.0.0.1:25";

/// Mail the administrator that a unit failed, with its journal.
///
/// Run by mailbackup-failure@UNIT.service, which systemd starts when
/// mailbackup.service, the hook or the verify service fails. Hands the mail
/// to the box's own mail server on 127.0.0.1:25 (the sandboxed unit may not
/// run the set-gid sendmail).
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
    // systemd gives an OnFailure= unit the result of the unit that failed;
    // asking over D-Bus is the way when run by hand.
    let result = std::env::var("MONITOR_SERVICE_RESULT")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| systemd::show(&unit, "Result"))
        .unwrap_or_else(|| "unknown".to_owned());
    // The key only to blank it out, should it ever have reached the journal.
    let layout = config.layout();
    let passphrase = key::load(&layout.key_file).ok().map(|k| k.passphrase);
    // The backup's snapshot is taken, and its before-backup hook run, by
    // units of their own, whose journals say why they failed (a restore
    // running, the hook's own words) where the backup's says only that
    // they did.
    let mut journal_units = vec![unit.as_str()];
    if unit == units::SERVICE {
        journal_units.push(units::SNAPSHOT_SERVICE);
        journal_units.push(units::BEFORE_HOOK_SERVICE);
    }
    // Only the lines of the run that failed, not those of earlier runs.
    let since = std::env::var("MONITOR_INVOCATION_ID")
        .ok()
        .filter(|i| !i.is_empty())
        .or_else(|| systemd::show(&unit, "InvocationID"))
        .and_then(|i| systemd::invocation_start(&i));
    let raw = systemd::journal_tail(&journal_units, args.lines, since.as_deref());
    let mut journal = redact(&raw, passphrase.as_ref());
    // And the target's secret: the settings may not parse, then there is none.
    let settings = super::load_settings(&config).ok();
    for secret in settings
        .iter()
        .flat_map(|s| s.target.iter())
        .flat_map(|t| t.secrets())
    {
        journal = secret.redact(&journal);
    }
    let cause = key_cause(&layout.key_file, settings.as_ref(), &raw);
    let date = chrono::Local::now().to_rfc2822();
    let message = failure_mail(&FailureReport {
        host: &host,
        to: &args.to,
        unit: &unit,
        journal_units: &journal_units,
        result: &result,
        journal: &journal,
        cause: cause.as_deref(),
        date: &date,
    });
    if let Err(e) = smtp::send(
        &args.smtp,
        &host,
        &format!("root@{host}"),
        &args.to,
        &message,
    ) {
        bail!("{e:#}: the administrator was not told that {unit} failed");
    }
    eprintln!("mailbackup: told {} that {unit} failed ({result})", args.to);
    Ok(0)
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
