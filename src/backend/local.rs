//! The box's own backup directory, `STORAGE_ROOT/backup/encrypted`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Cause, Unusable};
use crate::duplicity::inventory::Inventory;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    dir: PathBuf,
}

impl Local {
    pub fn new(dir: &Path) -> Local {
        Local {
            dir: dir.to_owned(),
        }
    }

    pub fn url(&self) -> OsString {
        let mut url = OsString::from("file://");
        url.push(&self.dir);
        url
    }

    pub fn describe(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Its failures are named by the I/O errors in them.
    pub fn inventory(&self) -> Result<Inventory> {
        Inventory::scan(&self.dir).map_err(local_failure)
    }

    pub fn check(&self) -> Result<String> {
        self.try_check().map_err(local_failure)
    }

    fn try_check(&self) -> Result<String> {
        let inventory = self.inventory()?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("Failed to create {}", self.dir.display()))?;
        let probe = self.dir.join(super::check_file_name());
        std::fs::write(&probe, b"mailbackup check\n")
            .with_context(|| format!("Failed to write {}", probe.display()))?;
        std::fs::remove_file(&probe)
            .with_context(|| format!("Failed to delete {}", probe.display()))?;
        Ok(format!(
            "{} backups; a test file was written and deleted",
            inventory.backups.len()
        ))
    }
}

/// A failure on this box's own directory, named by the I/O error in it,
/// its message as before. A directory that is not there holds no backup
/// yet (`Inventory::scan` lists it as empty): a file not found is one that
/// went away while it was listed, which says nothing of the backups.
fn local_failure(e: anyhow::Error) -> anyhow::Error {
    let cause = match Cause::of_chain(&e) {
        Cause::NoSuchPath => Cause::Other,
        cause => cause,
    };
    Unusable::error(cause, format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_their_message_and_name_their_cause() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = Local::new(&file).inventory().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "The backup target {} is not a directory: move it out of the way",
                file.display()
            )
        );
        assert_eq!(Cause::of_chain(&e), Cause::Other);
        let e = local_failure(
            anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
                .context("Failed to write /b/x"),
        );
        assert_eq!(format!("{e:#}"), "Failed to write /b/x: permission denied");
        assert_eq!(Cause::of_chain(&e), Cause::AccessDenied);
        let e = local_failure(anyhow::Error::new(std::io::Error::from(
            std::io::ErrorKind::NotFound,
        )));
        assert_eq!(Cause::of_chain(&e), Cause::Other);
    }
}
