//! What the last backup, prune, verify and drill did, kept in
//! `STORAGE_ROOT/backup/history.json`: the metrics are rendered from it, and
//! `status --check` reads the drill's result from it.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// What mailbackup does, each recorded on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Backup,
    Prune,
    Verify,
    Drill,
}

impl Operation {
    pub const ALL: [Operation; 4] = [
        Operation::Backup,
        Operation::Prune,
        Operation::Verify,
        Operation::Drill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Prune => "prune",
            Operation::Verify => "verify",
            Operation::Drill => "drill",
        }
    }
}

/// One run of an operation. Times are Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub started: i64,
    pub duration_seconds: f64,
    pub exit_code: u8,
    /// When a run of this operation last succeeded (this one or before).
    pub last_success: Option<i64>,
}

/// What the last drill found besides its exit code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillFindings {
    /// The mailbox it restored, relative to STORAGE_ROOT.
    pub mailbox: String,
    /// What it read from the target, in bytes.
    pub bytes_read: u64,
    /// Files compared byte for byte with the live ones.
    pub files_compared: u64,
    /// Files left out of the comparison: changed since the backup.
    pub files_changed_since: u64,
    /// What it found, one line.
    pub summary: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub backup: Option<Run>,
    pub prune: Option<Run>,
    pub verify: Option<Run>,
    pub drill: Option<Run>,
    pub drill_findings: Option<DrillFindings>,
    /// How long the mail was stopped or frozen for the last backup.
    pub mail_downtime_seconds: Option<f64>,
    /// When the last snapshot's completion started (the mail services were
    /// stopped or frozen): the data of the backup made from it is as of then.
    pub snapshot_taken: Option<f64>,
    /// The last backup that succeeded, and when the data it holds was
    /// taken.
    pub backed_up: Option<BackedUp>,
}

/// A successful backup run: the set it wrote is dated within the run, and
/// a file whose inode has not changed since `data_as_of` is in it as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BackedUp {
    pub run_started: i64,
    pub run_ended: i64,
    /// Unix seconds, to the nanosecond as file times are.
    pub data_as_of: f64,
}

impl History {
    pub fn run(&self, op: Operation) -> Option<&Run> {
        match op {
            Operation::Backup => self.backup.as_ref(),
            Operation::Prune => self.prune.as_ref(),
            Operation::Verify => self.verify.as_ref(),
            Operation::Drill => self.drill.as_ref(),
        }
    }

    fn run_mut(&mut self, op: Operation) -> &mut Option<Run> {
        match op {
            Operation::Backup => &mut self.backup,
            Operation::Prune => &mut self.prune,
            Operation::Verify => &mut self.verify,
            Operation::Drill => &mut self.drill,
        }
    }

    /// Records a run that started at `started` and ended `duration` later
    /// with `exit_code`.
    pub fn record(&mut self, op: Operation, started: i64, duration_seconds: f64, exit_code: u8) {
        let slot = self.run_mut(op);
        let earlier = slot.as_ref().and_then(|r| r.last_success);
        *slot = Some(Run {
            started,
            duration_seconds,
            exit_code,
            last_success: if exit_code == 0 {
                Some(started + duration_seconds.round() as i64)
            } else {
                earlier
            },
        });
    }

    /// The history in `path`; empty when there is none yet.
    pub fn load(path: &Path) -> Result<History> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not mailbackup's history: remove it, the next runs write it anew",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
        }
    }

    /// Changes the history in `path` under a lock (a drill and a backup may
    /// end together), writing it aside and renaming it into place.
    /// Returns the history as changed.
    pub fn update(path: &Path, change: impl FnOnce(&mut History)) -> Result<History> {
        let lock_path = path.with_extension("lock");
        let lock_file = File::create(&lock_path)
            .with_context(|| format!("Failed to open {}", lock_path.display()))?;
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("Failed to lock {}", lock_path.display()))?;
        // A history that cannot be read is started anew rather than
        // stopping every backup.
        let mut history = History::load(path).unwrap_or_default();
        change(&mut history);
        let text =
            serde_json::to_string_pretty(&history).context("Failed to encode the history")?;
        crate::sys::write_aside_and_rename(path, text.as_bytes())?;
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_last_success() {
        let mut h = History::default();
        h.record(Operation::Backup, 100, 9.6, 0);
        assert_eq!(h.run(Operation::Backup).unwrap().last_success, Some(110));
        h.record(Operation::Backup, 200, 1.0, 31);
        let r = h.run(Operation::Backup).unwrap();
        assert_eq!(
            (r.started, r.exit_code, r.last_success),
            (200, 31, Some(110))
        );
        assert!(h.run(Operation::Drill).is_none());
    }

    #[test]
    fn updates_survive_a_reload_and_bad_files_start_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        assert_eq!(History::load(&path).unwrap(), History::default());
        History::update(&path, |h| h.record(Operation::Drill, 5, 1.0, 1)).unwrap();
        assert_eq!(History::load(&path).unwrap().drill.unwrap().exit_code, 1);
        std::fs::write(&path, "{").unwrap();
        assert!(format!("{:#}", History::load(&path).unwrap_err()).contains("remove it"));
        let h = History::update(&path, |h| h.record(Operation::Prune, 5, 1.0, 0)).unwrap();
        assert!(h.drill.is_none() && h.prune.is_some());
    }
}
