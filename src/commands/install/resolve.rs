//! The one place where an install option, its default and the value an
//! earlier install saved meet.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use super::InstallArgs;
use crate::backend::UnitNeeds;
use crate::config::Config;
use crate::status::metrics::chosen_metrics_dir;
use crate::systemd::units::{
    Downtime, UnitSettings, CHOICES_MARK, DEFAULT_CALENDAR, DEFAULT_DRILL_CALENDAR,
    DEFAULT_SERVICES, DEFAULT_VERIFY_CALENDAR, GENERATED_MARK,
};

/// The options the operator chooses at install. Each one given is kept
/// (as JSON in mailbackup.service) so that a bare re-install keeps it; one
/// never chosen follows the default of the version installed.
///
/// To add an option: a field here (its `///` comment is its `--help`, its
/// default in brackets), and one line in [`resolve`] that gives its default
/// and puts it into the units' settings. Recording, merging, `--refresh`
/// refusing it and the log of kept options follow from the field.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize, serde::Deserialize,
)]
#[group(id = "choices", multiple = true)]
#[serde(deny_unknown_fields)]
pub struct Choices {
    /// When to back up (systemd's OnCalendar= syntax, `man systemd.time`) [default: daily]
    #[arg(long, value_name = "SPEC")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_calendar: Option<String>,

    /// The services stopped during the backup, in this order [default: dovecot.service postfix.service]
    #[arg(long, value_name = "UNITS", value_delimiter = ' ', num_args = 1..)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,

    /// How the mail services make way for the backup: stopped for the
    /// seconds a snapshot of the data takes, frozen for that moment (pause:
    /// connections wait, none is refused; needs cgroup v2), or stopped for
    /// the whole backup [default: snapshot]
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<Downtime>,

    /// When to verify the backup (OnCalendar= syntax), or `never` [default: monthly]
    #[arg(long, value_name = "SPEC")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_calendar: Option<String>,

    /// When to run the restore drill (OnCalendar= syntax), or `never` [default: *-*-15 04:00:00, monthly, away from the verify]
    #[arg(long, value_name = "SPEC")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill_calendar: Option<String>,

    /// Where to write mailbackup.prom for node_exporter's textfile collector, '' for nowhere [default: /var/lib/prometheus/node-exporter]
    #[arg(long, value_name = "DIR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_dir: Option<String>,

    /// Who is mailed when a backup, the hook or a verification fails [default: administrator@PRIMARY_HOSTNAME]
    #[arg(long, value_name = "ADDRESS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_to: Option<String>,
}

/// The settings `install` runs on, resolved once from the options given,
/// those an earlier install saved, the defaults and the box.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    /// What goes into the units.
    pub units: UnitSettings,
    /// The options in effect: those given, over those saved.
    pub choices: Choices,
    /// The options the earlier install saved.
    pub saved: Choices,
    /// The saved options that were not given again: kept, and said so.
    pub kept: Choices,
    /// Where the units go.
    pub unit_dir: PathBuf,
    /// `--refresh`: a package upgrade, which changes no choice, reaches no
    /// server, makes no key and enables no timer.
    pub refresh: bool,
    /// `--no-enable`.
    pub no_enable: bool,
}

/// What `install` found on the box, besides the options: the configuration
/// file (its absolute path), what the backup target needs of the units,
/// and the mailbackup binary the units run.
pub struct Found<'a> {
    pub config: &'a Config,
    pub config_path: PathBuf,
    pub target: UnitNeeds,
    pub bin: PathBuf,
}

/// Layers the options: given, saved by the earlier install, default.
/// Pure: reads no file and asks no one.
pub fn resolve(args: &InstallArgs, saved: Choices, found: Found) -> Result<InstallSettings> {
    let given = args.choices.clone();
    let kept = saved.clone().unless(&given);
    let choices = given.over(saved.clone());
    let config = found.config;
    let Some(storage_user) = config.get("STORAGE_USER") else {
        bail!(
            "{} has no STORAGE_USER setting, the user the after-backup hook runs as: add one",
            found.config_path.display()
        );
    };
    let mail_to = match (&choices.mail_to, config.get("PRIMARY_HOSTNAME")) {
        (Some(to), _) => to.clone(),
        (None, Some(host)) if !host.is_empty() => format!("administrator@{host}"),
        (None, _) => bail!(
            "{} has no PRIMARY_HOSTNAME to mail failures to administrator@ it: add it, or give --mail-to",
            found.config_path.display()
        ),
    };
    let c = choices.clone();
    let units = UnitSettings {
        config: found.config_path,
        layout: config.layout(),
        storage_user: storage_user.to_owned(),
        bin: found.bin,
        on_calendar: c.on_calendar.unwrap_or_else(|| DEFAULT_CALENDAR.to_owned()),
        services: c
            .services
            .unwrap_or_else(|| DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect()),
        downtime: c.downtime.unwrap_or_default(),
        verify_calendar: Some(
            c.verify_calendar
                .unwrap_or_else(|| DEFAULT_VERIFY_CALENDAR.to_owned()),
        )
        .filter(|c| c != "never"),
        drill_calendar: Some(
            c.drill_calendar
                .unwrap_or_else(|| DEFAULT_DRILL_CALENDAR.to_owned()),
        )
        .filter(|c| c != "never"),
        metrics_dir: chosen_metrics_dir(c.metrics_dir.as_deref()),
        mail_to,
        choices: choices.to_record(),
        target: found.target,
        postdrop: crate::sys::group_exists(crate::mail::queue::POSTDROP_GROUP),
        frozen: None,
    };
    Ok(InstallSettings {
        units,
        choices,
        saved,
        kept,
        unit_dir: args.unit_dir.clone(),
        refresh: args.refresh,
        no_enable: args.no_enable,
    })
}

impl Choices {
    /// These choices, and those of `earlier` that these do not change.
    pub fn over(self, earlier: Choices) -> Choices {
        let mut merged = earlier.fields();
        merged.extend(self.fields());
        Choices::from_fields(merged)
    }

    /// These choices, but for those `given` replaces.
    pub fn unless(self, given: &Choices) -> Choices {
        let given = given.fields();
        let mut left = self.fields();
        left.retain(|name, _| !given.contains_key(name));
        Choices::from_fields(left)
    }

    /// The choices recorded in a service unit that mailbackup wrote, if any.
    /// A line that does not parse (a hand edit) counts as no choices.
    pub fn recorded_in(unit: &str) -> Option<Choices> {
        if !unit.starts_with(GENERATED_MARK) {
            return None;
        }
        unit.lines()
            .find_map(|l| l.strip_prefix(CHOICES_MARK))
            .and_then(|json| serde_json::from_str(json).ok())
    }

    /// The line recorded in the unit: JSON, which escapes every control
    /// character, so it stays one comment line whatever the values.
    pub fn to_record(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The options as the operator would type them, for the log, in the
    /// order of `--help`.
    pub fn describe(&self) -> String {
        let quote = |s: &str| {
            if s.contains(|c: char| c.is_whitespace() || c == '*' || c == '\'') {
                format!("'{s}'")
            } else {
                s.to_owned()
            }
        };
        let fields = self.fields();
        let command = <Choices as clap::Args>::augment_args(clap::Command::new("install"));
        let mut parts = Vec::new();
        for arg in command.get_arguments() {
            let (Some(value), Some(long)) = (fields.get(arg.get_id().as_str()), arg.get_long())
            else {
                continue;
            };
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Array(words) => words
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            parts.push(format!("--{long} {}", quote(&value)));
        }
        parts.join(" ")
    }

    /// The options given, by their field names (those not given are left
    /// out).
    fn fields(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        }
    }

    fn from_fields(fields: Map<String, Value>) -> Choices {
        // The fields of a Choices: they always make one again.
        serde_json::from_value(Value::Object(fields)).unwrap_or_default()
    }
}
