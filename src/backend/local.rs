//! The box's own backup directory, `STORAGE_ROOT/backup/encrypted`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

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

    pub fn inventory(&self) -> Result<Inventory> {
        Inventory::scan(&self.dir)
    }

    pub fn check(&self) -> Result<String> {
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
