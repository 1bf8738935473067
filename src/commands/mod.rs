//! One module per subcommand: its arguments (whose doc comments are its
//! `--help`) and the function that does its I/O around the pure cores.

pub mod check_target;
pub mod docs;
pub mod drill;
pub mod install;
pub mod key;
pub mod list;
pub mod notify_failure;
pub mod ping;
pub mod prune;
pub mod restore;
pub mod restore_mailbox;
pub mod restore_space;
pub mod run;
pub mod snapshot;
pub mod status;
pub mod uninstall;
pub mod verify;

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::backend::{Settings, SshFiles, STATE_DIRECTORY};
use crate::config::{Config, Layout};
use crate::key::LoadedKey;
use crate::sys::lock;

/// Loads the passphrase the way every duplicity command needs it: from the
/// systemd credential when there is one, else from the key file, warning
/// when the file is readable by others.
fn load_key(config: &Config) -> Result<LoadedKey> {
    // systemd 252 does not always give ExecStartPost= the credentials it
    // promises; the key file, readable in the sandbox, is as good.
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(PathBuf::from)
        .filter(|dir| dir.join(crate::key::CREDENTIAL_NAME).exists());
    let path = crate::key::key_path(&config.layout(), credentials.as_deref());
    let key = crate::key::load(&path)?;
    if let Some(warning) = &key.warning {
        eprintln!("mailbackup: warning: {warning}");
    }
    Ok(key)
}

/// The backup settings (`backup/custom.yaml`): from the systemd credential
/// when the unit loaded one, else from the file.
fn load_settings(config: &Config) -> Result<Settings> {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let settings = Settings::load(&config.layout(), credentials.as_deref(), &ssh_files())?;
    for warning in &settings.warnings {
        eprintln!("mailbackup: warning: {warning}");
    }
    Ok(settings)
}

/// The ssh key in the home directory (`/root` for the units), and the
/// pinned host keys in the state directory that systemd gives the units
/// (`$STATE_DIRECTORY`), or mailbackup's own outside them.
pub fn ssh_files() -> SshFiles {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(crate::sys::effective_user_home)
        .unwrap_or_else(|| "/root".into());
    let state = std::env::var_os("STATE_DIRECTORY")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| STATE_DIRECTORY.into());
    SshFiles::new(&home, &state)
}

/// A backup (or snapshot for one) does not start while a restore runs: the
/// restore holds duplicity's cache and, in place, swaps the tree under it.
fn refuse_during_restore(layout: &Layout) -> Result<()> {
    if let Some(holder) = lock::holder(&layout.restore_lock)? {
        anyhow::bail!(
            "a restore is running ({holder}): no backup now; the next one runs at its time, \
             or start it once the restore is done"
        );
    }
    Ok(())
}

/// Held by a restore for its whole run: a backup started meanwhile refuses
/// before it stops the mail. A second restore is refused.
/// Without `backup/` there is no key either, which the restore then says.
fn hold_restore_lock(layout: &Layout, what: &str) -> Result<Option<lock::Held>> {
    if !layout.backup_dir.is_dir() {
        return Ok(None);
    }
    let holder = format!(
        "{what}, pid {}, since {}",
        std::process::id(),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
    );
    match lock::try_hold(&layout.restore_lock, &holder)? {
        Ok(held) => Ok(Some(held)),
        Err(other) => anyhow::bail!("another restore is running ({other}): wait for it to finish"),
    }
}

/// Refuses a `--time` that duplicity would not take, before anything runs,
/// with examples of what it takes.
pub(crate) fn check_time_arg(time: Option<&str>) -> Result<()> {
    let Some(text) = time else {
        return Ok(());
    };
    if crate::duplicity::when::resolve_time(text, chrono::Utc::now().timestamp(), 0).is_none() {
        bail!(
            "--time {text:?} is not a time duplicity takes: give a day (2026-12-02), a minute as \
             `mailbackup status` shows it ('2026-12-02 03:00'), an age (3D, 1h30m) or a date-time \
             (2026-12-02T03:00:00)"
        );
    }
    Ok(())
}
