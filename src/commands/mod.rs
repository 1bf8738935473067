//! One module per subcommand: its arguments (whose doc comments are its
//! `--help`) and the function that does its I/O around the pure cores.

pub mod docs;
pub mod install;
pub mod list;
pub mod notify_failure;
pub mod prune;
pub mod restore;
pub mod run;
pub mod snapshot;
pub mod status;
pub mod uninstall;
pub mod verify;

use std::path::PathBuf;

use anyhow::Result;

use crate::config::Config;
use crate::key::{self, LoadedKey};

/// Loads the passphrase the way every duplicity command needs it: from the
/// systemd credential when there is one, else from the key file, warning
/// when the file is readable by others.
fn load_key(config: &Config) -> Result<LoadedKey> {
    // systemd 252 does not always give ExecStartPost= the credentials it
    // promises; the key file, readable in the sandbox, is as good.
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(PathBuf::from)
        .filter(|dir| dir.join(key::CREDENTIAL_NAME).exists());
    let path = key::key_path(&config.layout(), credentials.as_deref());
    let key = key::load(&path)?;
    if let Some(warning) = &key.warning {
        eprintln!("mailbackup: warning: {warning}");
    }
    Ok(key)
}
