//! After every backup, prune, verify and drill: record the run in the
//! history and rewrite `mailbackup.prom`. Neither ever fails the run it
//! reports on: a failure to record is a warning in its log.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::backend::Target;
use crate::config::Layout;
use crate::status::history::{History, Operation};
use crate::status::metrics::{self, MetricsInput, DEFAULT_METRICS_DIR, METRICS_FILE};

/// A run being timed.
pub struct Timed {
    pub op: Operation,
    started: SystemTime,
}

impl Timed {
    pub fn start(op: Operation) -> Timed {
        Timed {
            op,
            started: SystemTime::now(),
        }
    }

    pub fn started_unix(&self) -> i64 {
        unix(self.started)
    }

    /// The start, to the nanosecond.
    pub fn started_exact(&self) -> f64 {
        exact(self.started)
    }

    pub fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().unwrap_or_default().as_secs_f64()
    }
}

/// Unix seconds with their fraction.
pub fn exact(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Records how `run` ended (with `also` for what only it knows), then
/// rewrites the metrics from the history and the target's inventory.
pub fn finished(
    layout: &Layout,
    target: Option<&Target>,
    run: &Timed,
    exit_code: u8,
    also: impl FnOnce(&mut History),
) {
    let (started, duration) = (run.started_unix(), run.elapsed_seconds());
    let history = History::update(&layout.history, |h| {
        h.record(run.op, started, duration, exit_code);
        also(h);
    });
    match history {
        Ok(history) => publish(layout, target, &history),
        Err(e) => eprintln!("mailbackup: warning: the run is not recorded: {e:#}"),
    }
}

/// Changes the history without a run of its own (the snapshot's time).
pub fn note(layout: &Layout, change: impl FnOnce(&mut History)) {
    if let Err(e) = History::update(&layout.history, change) {
        eprintln!("mailbackup: warning: {e:#}");
    }
}

/// Writes `mailbackup.prom` where the metrics go, if anywhere.
pub fn publish(layout: &Layout, target: Option<&Target>, history: &History) {
    let Some(dir) = metrics::metrics_dir(installed_metrics_dir().as_deref()) else {
        return;
    };
    if !dir.is_dir() {
        // No node_exporter on this box: nothing reads metrics.
        if dir != Path::new(DEFAULT_METRICS_DIR) {
            eprintln!(
                "mailbackup: warning: the metrics directory {} does not exist: no metrics written",
                dir.display()
            );
        }
        return;
    }
    let inventory = target.map(Target::inventory).transpose();
    let inventory = inventory.unwrap_or_else(|e| {
        eprintln!("mailbackup: warning: the metrics leave out the backups: {e:#}");
        None
    });
    let text = metrics::render_metrics(&MetricsInput {
        history,
        inventory: inventory.as_ref(),
        key_confirmed: metrics::key_custody_confirmed(layout),
    });
    if let Err(e) = write(&dir, &text) {
        eprintln!("mailbackup: warning: {e:#}");
    }
}

fn write(dir: &Path, text: &str) -> Result<()> {
    crate::sys::write_aside_and_rename(&dir.join(METRICS_FILE), text.as_bytes())
}

/// The metrics directory `install --metrics-dir` chose, as the installed
/// backup unit records it.
fn installed_metrics_dir() -> Option<String> {
    let unit = Path::new(crate::systemd::SYSTEM_UNIT_DIR).join(crate::systemd::units::SERVICE);
    std::fs::read_to_string(unit)
        .ok()
        .and_then(|text| crate::commands::install::Choices::recorded_in(&text))
        .and_then(|c| c.metrics_dir)
}
