//! `mailbackup ping`: the dead-man's switch of `ping_url`, from the units.

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use crate::ping::{self, Signal};
use crate::systemd::units;

/// Ping the ping_url of custom.yaml (healthchecks.io's protocol).
///
/// Run by the units when custom.yaml has a ping_url: `ping start` before a
/// backup, `ping finish UNIT` as the unit's last ExecStopPost=, which
/// systemd runs after a success, a failure, a kill or a timeout alike, and
/// which tells from $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS how the
/// run ended. The body is the run's last journal lines, secrets blanked
/// out. A ping never fails (exit 0): a failure is only logged.
///
/// Example: mailbackup ping finish mailbackup.service
#[derive(Debug, clap::Args)]
pub struct PingArgs {
    #[command(subcommand)]
    pub what: PingWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum PingWhat {
    /// A run starts: URL/start.
    Start,
    /// A run of UNIT ended: URL on success, URL/EXITCODE or URL/fail otherwise.
    Finish {
        /// The unit whose run ended (`%n` in the unit).
        unit: String,
        /// Ping only when the run failed (verify and drill runs: their
        /// success says nothing about tonight's backup).
        #[arg(long)]
        failures_only: bool,
        /// How many journal lines the body holds.
        #[arg(long, default_value_t = 40)]
        lines: u32,
    },
}

pub fn run(config_path: &Path, args: &PingArgs) -> Result<u8> {
    // Nothing here may fail a backup.
    if let Err(e) = ping(config_path, args) {
        eprintln!("mailbackup: warning: no ping: {e:#}");
    }
    Ok(0)
}

fn ping(config_path: &Path, args: &PingArgs) -> Result<()> {
    let config = Config::load(config_path)?;
    let settings = super::load_settings(&config)?;
    let Some(url) = &settings.ping_url else {
        return Ok(());
    };
    match &args.what {
        PingWhat::Start => {
            let body = format!(
                "mailbackup: a run starts on {}\n",
                super::notify_failure::host_name(&config)
            );
            ping::start(url, &body);
        }
        PingWhat::Finish {
            unit,
            failures_only,
            lines,
        } => {
            let unit = units::unit_name(unit)?;
            let env = |name| std::env::var(name).unwrap_or_default();
            let signal = Signal::of_run(
                &env("SERVICE_RESULT"),
                &env("EXIT_CODE"),
                &env("EXIT_STATUS"),
            );
            if signal == Signal::Success && *failures_only {
                return Ok(());
            }
            let invocation = Some(env("INVOCATION_ID")).filter(|i| !i.is_empty());
            let log = super::notify_failure::run_journal(&config, &unit, invocation, *lines);
            ping::report(url, signal, &log);
        }
    }
    Ok(())
}
