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

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use crate::key::{self, LoadedKey};

/// Loads the passphrase the way every duplicity command needs it: from the
/// systemd credential when there is one, else from the key file, warning
/// when the file is readable by others.
fn load_key(config: &Config) -> Result<LoadedKey> {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY");
    let path = key::key_path(&config.layout(), credentials.as_deref().map(Path::new));
    let key = key::load(&path)?;
    if let Some(warning) = &key.warning {
        eprintln!("mailbackup: warning: {warning}");
    }
    Ok(key)
}
