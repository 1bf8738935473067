//! `mailbackup check-target`: can backups reach the target?

use std::path::Path;

use anyhow::Result;

use crate::config::Config;

/// Check that the backup target works: connect, list, write and delete a
/// small file.
///
/// Reads the target from STORAGE_ROOT/backup/custom.yaml. Prints one line:
/// what it found, or what is wrong (bad credentials, unreachable, name not
/// resolved, no such bucket or path, host key changed), and exits 0 when the
/// target works, 1 when it does not. `mailbackup install` runs it for an
/// off-site target. On first contact with an ssh server it pins the
/// server's host key.
///
/// Example: mailbackup check-target
#[derive(Debug, clap::Args)]
pub struct CheckTargetArgs {}

pub fn run(config_path: &Path, _args: &CheckTargetArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let settings = super::load_settings(&config)?;
    let Some(target) = &settings.target else {
        println!(
            "mailbackup: {}: there is no target to check",
            settings.off()
        );
        return Ok(0);
    };
    if let Some(key) = target.ssh_key().filter(|key| !key.exists()) {
        println!(
            "mailbackup: {}: the ssh key {} is missing: `mailbackup install` makes it and prints \
             its public key for the server's authorized_keys (on a new box, put back your copy of it)",
            target.describe(),
            key.display()
        );
        return Ok(1);
    }
    match target.check() {
        Ok(found) => {
            println!("mailbackup: {} works: {found}", target.describe());
            Ok(0)
        }
        Err(e) => {
            println!("mailbackup: {e:#}");
            Ok(1)
        }
    }
}
