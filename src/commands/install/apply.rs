//! Carrying out a plan: a dry run prints it, `apply` writes it, enables the
//! timers and says what it did.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::plan::{Change, Plan, Step, Why};
use super::resolve::InstallSettings;
use crate::backend::Settings;
use crate::systemd::units::{SERVICE, VERIFY_TIMER};
use crate::systemd::{self, SYSTEM_UNIT_DIR};
use crate::{key, mailinabox};

impl Plan {
    /// The dry run: every file it would write, and what else it would do.
    pub fn print(&self) {
        for step in &self.units {
            match step.change {
                Change::Keep => println!("{} is up to date", step.path.display()),
                _ => print!(
                    "would write {}:\n{}\n",
                    step.path.display(),
                    step.unit.content
                ),
            }
        }
        for path in &self.retired {
            println!("would remove {}", path.display());
        }
        if let Some(key) = &self.new_key {
            println!("would create a new backup key {}", key.display());
        }
        if let Some(key) = &self.new_ssh_key {
            println!("would create the ssh key {}", key.display());
        }
        if let Some(path) = &self.make_private {
            println!("would make {} readable by root only", path.display());
        }
        if let Some(line) = self.root_owned_line("would make") {
            println!("{line}");
        }
    }

    /// Writes the units (all or none), makes the keys, removes the units
    /// no longer called for, enables the timers and says what it did.
    /// Exit code 1 when the target does not work: the units are written,
    /// but no timer is enabled.
    pub fn apply(&self, s: &InstallSettings, target: &Settings) -> Result<u8> {
        let holds_secret = target
            .target
            .as_ref()
            .is_some_and(|t| !t.secrets().is_empty());
        self.make_root_owned()?;
        self.prepare_target(holds_secret)?;
        // A target that cannot work gets units, but no timer.
        let target_failure = check_target(s, target);
        let created_key = self.commit()?;
        let mut changed = self.report(s, &target.path) || !self.make_root_owned.is_empty();
        if let Some(key) = self.new_key.as_ref().filter(|_| created_key) {
            changed = true;
            println!(
                "created a new backup key {}: keep a copy of it away from this box, without it the backups cannot be restored; \
                 `mailbackup key show` prints it, `mailbackup key confirm` records that you keep it",
                key.display()
            );
        }
        // A package may be upgraded where systemd does not run (a chroot).
        let manage_systemd = !s.no_enable
            && systemd::is_system_unit_dir(&s.unit_dir)
            && (!s.refresh || systemd::is_booted());
        changed |= self.retire(manage_systemd)?;
        // Once, with what an install changed (a re-run that changes nothing is quiet).
        if changed && !created_key && !s.refresh {
            if let Some(warning) = crate::key::custody(&s.units.layout).warning() {
                println!("{warning}");
            }
        }
        if manage_systemd && changed {
            systemd::systemctl(&["daemon-reload"])?;
        }
        changed |= self.timers(s, manage_systemd, target_failure.is_none())?;
        if manage_systemd && target_failure.is_none() {
            // mailbackup backs up now: Mail-in-a-Box's own nightly backup stops.
            let (cron, tmpfiles) = (mailinabox::CRON, mailinabox::TMPFILES);
            mailinabox::hold_nightly_backup(Path::new(cron), Path::new(tmpfiles))?;
        }
        if !manage_systemd && !s.no_enable && changed && !s.refresh {
            println!(
                "{} is not {SYSTEM_UNIT_DIR}: the units are not enabled; start a backup with `systemctl start {SERVICE}` once they are installed there",
                s.unit_dir.display()
            );
        }
        if let Some(failure) = target_failure {
            self.report_target_failure(s, target, manage_systemd, &failure)?;
            return Ok(1);
        }
        if !changed && s.refresh {
            println!("mailbackup's units are up to date: nothing changed");
        } else if !changed {
            println!("mailbackup is installed already: nothing changed");
        }
        Ok(0)
    }

    /// What is made root's in the backup directory, and why, in one line.
    fn root_owned_line(&self, verb: &str) -> Option<String> {
        let (first, uid) = self.make_root_owned.first()?;
        let owner = nix::unistd::User::from_uid((*uid).into())
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {uid}"), |u| u.name);
        let n = self.make_root_owned.len();
        let what = if n == 1 {
            first.display().to_string()
        } else {
            format!("{} and {} more file(s) in it", first.display(), n - 1)
        };
        Some(format!(
            "{verb} {what} root's (owned by {owner}): the backup runs as root without the right \
             to write where another user owns, and Mail-in-a-Box keeps its backup directory root's"
        ))
    }

    /// Gives root what another user owns in the backup directory.
    fn make_root_owned(&self) -> Result<()> {
        for (path, _) in &self.make_root_owned {
            std::os::unix::fs::lchown(path, Some(0), Some(0)).with_context(|| {
                format!(
                    "Failed to make {0} root's: the backup, which runs as root without the right \
                     to write where another user owns, could not write there; make it root's \
                     (chown root:root {0}) and run install again",
                    path.display()
                )
            })?;
        }
        if let Some(line) = self.root_owned_line("made") {
            println!("{line}");
        }
        Ok(())
    }

    /// Locks up the target's settings file and makes its ssh key.
    fn prepare_target(&self, holds_secret: bool) -> Result<()> {
        if let Some(path) = &self.make_private {
            make_private(path)?;
            if holds_secret {
                println!(
                    "made {} readable by root only (mode 0600): it holds the target's secret, and other users could read it",
                    path.display()
                );
            } else {
                println!(
                    "made {} readable by root only (mode 0600), as a file that may hold the target's secret",
                    path.display()
                );
            }
        }
        if let Some(key) = &self.new_ssh_key {
            create_ssh_key(key)?;
            println!(
                "created the ssh key {}; put its public key in ~USER/.ssh/authorized_keys on the backup server:\n{}",
                key.display(),
                public_key(key)?
            );
        }
        Ok(())
    }

    /// Writes the units, the backup directory and the key. Units go to
    /// temporary files first: an unwritable unit directory fails there,
    /// before anything is written. Whether it created the key.
    fn commit(&self) -> Result<bool> {
        let staged = stage(&self.units)?;
        let committed = (|| {
            if let Some(dir) = &self.backup_dir {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("Failed to create the backup directory {}", dir.display())
                })?;
            }
            let created_key = match &self.new_key {
                Some(key) => key::create_key_file(key)?,
                None => false,
            };
            for (tmp, path) in &staged {
                std::fs::rename(tmp, path)
                    .with_context(|| format!("Failed to write {}", path.display()))?;
            }
            Ok::<_, anyhow::Error>(created_key)
        })();
        for (tmp, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
        committed
    }

    /// Says what changed in each unit; whether any did.
    fn report(&self, s: &InstallSettings, settings_file: &Path) -> bool {
        let mut changed = false;
        let gone = !settings_file.exists();
        for Step { change, path, .. } in &self.units {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let (path, settings_file) = (path.display(), settings_file.display());
            match change {
                Change::Create => println!("created {path}"),
                Change::Update(Why::Options) => {
                    println!("updated {path} for the options given")
                }
                Change::Update(Why::Target) if !gone => {
                    println!("updated {path} for the backup target in {settings_file}")
                }
                Change::Update(Why::Target) => println!(
                    "updated {path} for the local target: {settings_file} is gone, and with it the target it named"
                ),
                Change::Update(Why::OptionsAndTarget) => println!(
                    "updated {path} for the options given and the backup target in {settings_file}"
                ),
                Change::Update(Why::Rendering) => {
                    println!("replaced {path} with what this version of mailbackup renders")
                }
                // A refresh runs on a package upgrade: the new version's
                // templates are why, as a rule, not a hand edit.
                Change::Replace if s.refresh => println!(
                    "replaced {path} with what this version of mailbackup renders (a hand edit in it, if any, \
                     is gone: local changes belong in a drop-in, `systemctl edit {name}`)"
                ),
                Change::Replace => println!(
                    "replaced {path}: it differed from what mailbackup renders (edited by hand, or written by another \
                     version); local changes belong in a drop-in, `systemctl edit {name}`"
                ),
                Change::Keep => continue,
            }
            changed = true;
        }
        changed
    }

    /// Removes the units these settings no longer call for; whether any.
    fn retire(&self, manage_systemd: bool) -> Result<bool> {
        for path in &self.retired {
            if manage_systemd && path.ends_with(VERIFY_TIMER) {
                systemd::systemctl(&["disable", "--now", VERIFY_TIMER])?;
            }
            std::fs::remove_file(path)
                .with_context(|| format!("Failed to remove {}", path.display()))?;
            println!("removed {}: these settings do not use it", path.display());
        }
        Ok(!self.retired.is_empty())
    }

    /// Enables and starts the timers, but on a refresh, where each stays as
    /// the operator left it; whether it enabled any.
    fn timers(
        &self,
        s: &InstallSettings,
        manage_systemd: bool,
        target_works: bool,
    ) -> Result<bool> {
        let timers = self
            .units
            .iter()
            .filter(|u| u.unit.name.ends_with(".timer"));
        let mut changed = false;
        if s.refresh {
            for step in timers {
                let timer = step.unit.name;
                if step.change == Change::Create {
                    println!(
                        "{timer} is new and not enabled: `mailbackup install` enables and starts it"
                    );
                } else if manage_systemd && !systemd::systemctl_says("is-enabled", timer) {
                    println!("left {timer} disabled, as it was");
                }
            }
        } else if manage_systemd && target_works {
            for step in timers {
                let timer = step.unit.name;
                if !systemd::systemctl_says("is-enabled", timer)
                    || !systemd::systemctl_says("is-active", timer)
                {
                    systemd::systemctl(&["enable", "--now", timer])?;
                    println!("enabled and started {timer}");
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    fn report_target_failure(
        &self,
        s: &InstallSettings,
        target: &Settings,
        manage_systemd: bool,
        failure: &str,
    ) -> Result<()> {
        eprintln!("mailbackup: the backup target does not work: {failure}");
        if let Some(key) = target.target.as_ref().and_then(|t| t.ssh_key()) {
            eprintln!(
                "mailbackup: the public key of {} is: {}",
                key.display(),
                public_key(key)?
            );
        }
        // Timers that an earlier install enabled stay so: a server that is
        // down while box setup re-runs install must not end the backups.
        let enabled: Vec<&str> = self
            .units
            .iter()
            .map(|step| step.unit.name)
            .filter(|name| name.ends_with(".timer"))
            .filter(|name| manage_systemd && systemd::systemctl_says("is-enabled", name))
            .collect();
        if enabled.is_empty() {
            eprintln!(
                "mailbackup: no timer was enabled: fix the target (see `mailbackup check-target`), then run `mailbackup install` again"
            );
        } else {
            eprintln!(
                "mailbackup: {} {} enabled from the earlier install: backups to this target fail, and mail {}, until it works; fix it (see `mailbackup check-target`), then run `mailbackup install` again",
                match enabled.split_last() {
                    Some((last, rest)) if !rest.is_empty() =>
                        format!("{} and {last}", rest.join(", ")),
                    _ => enabled.join(""),
                },
                if enabled.len() == 1 { "stays" } else { "stay" },
                s.units.mail_to
            );
        }
        Ok(())
    }
}

/// `mailbackup check-target` for a remote target, but on a refresh: why it
/// does not work, if it does not.
fn check_target(s: &InstallSettings, target: &Settings) -> Option<String> {
    match &target.target {
        Some(t) if t.is_remote() && !s.refresh => match t.check() {
            Ok(found) => {
                println!("checked {}: {found}", t.describe());
                None
            }
            Err(e) => Some(format!("{e:#}")),
        },
        _ => None,
    }
}

fn make_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(0), Some(0))
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .with_context(|| format!("Failed to make {} readable by root only", path.display()))
}

/// A new ssh key without a passphrase, as Mail-in-a-Box makes it.
fn create_ssh_key(key: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = key.parent() {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                })
                .with_context(|| format!("Failed to create {}", dir.display()))?;
        }
    }
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "rsa",
            "-b",
            "3072",
            "-N",
            "",
            "-C",
            "mailbackup",
            "-f",
        ])
        .arg(key)
        .stdin(std::process::Stdio::null())
        .output()
        .context("Failed to run ssh-keygen: install openssh-client")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed to create {}: {}",
            key.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn public_key(key: &Path) -> Result<String> {
    let path = key.with_extension("pub");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("Failed to read the public key {}", path.display()))?
        .trim()
        .to_owned())
}

/// Writes each unit to be created or replaced to a temporary file beside
/// it. On error, removes what it wrote.
fn stage(steps: &[Step]) -> Result<Vec<(PathBuf, PathBuf)>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    for Step { unit, change, path } in steps {
        if *change == Change::Keep {
            continue;
        }
        let tmp = path.with_file_name(format!(".{}.mailbackup-tmp", unit.name));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(unit.content.as_bytes())
                    .and_then(|()| f.sync_all())
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            for (t, _) in &staged {
                let _ = std::fs::remove_file(t);
            }
            return Err(e).with_context(|| {
                format!(
                    "Failed to write {}: is the unit directory writable?",
                    path.display()
                )
            });
        }
        staged.push((tmp, path.clone()));
    }
    Ok(staged)
}
