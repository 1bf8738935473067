//! The move from the pre-2015 layout: unencrypted duplicity backups in
//! `backup/duplicity`, with openssl-encrypted copies (`*.enc`) in
//! `backup/encrypted`.
//!
//! The reference moved `backup/duplicity` out of `backup/` so that the next
//! backup would contain it. The service may write only under `backup/`, so
//! instead the next backup includes `backup/duplicity` where it is. The
//! openssl copies go first, as in the reference: duplicity takes their names
//! for sets of its own and fails on them; the originals they copy stay in
//! `backup/duplicity`. Only after the backup succeeded is that deleted, so
//! every step can be interrupted and the next run picks up from there.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::Layout;

/// The legacy directory to include in the next backup, if there is one.
pub fn legacy_dir(layout: &Layout) -> Option<PathBuf> {
    layout
        .legacy_dir
        .is_dir()
        .then(|| layout.legacy_dir.clone())
}

/// Finishes the deletion of legacy backups that an earlier run had already
/// backed up and begun to delete.
pub fn finish_interrupted(layout: &Layout) -> Result<()> {
    remove_tree(&layout.legacy_trash)
}

/// Before a backup that includes the legacy directory: deletes the openssl
/// copies of its files from the target.
pub fn remove_openssl_copies(layout: &Layout) -> Result<()> {
    let mut removed = 0;
    let dir = &layout.encrypted_dir;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("Failed to list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("Failed to list {}", dir.display()))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && is_legacy_copy(entry.file_name().as_encoded_bytes()) {
            let path = entry.path();
            std::fs::remove_file(&path)
                .with_context(|| format!("Failed to delete {}", path.display()))?;
            removed += 1;
        }
    }
    if removed > 0 {
        eprintln!(
            "mailbackup: deleted {removed} openssl-encrypted copies of the old backups in {} from {}",
            layout.legacy_dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// After a backup that contains the legacy directory succeeded: deletes it.
pub fn complete(layout: &Layout) -> Result<()> {
    // Renamed first, so that a half-deleted tree is never backed up again.
    std::fs::rename(&layout.legacy_dir, &layout.legacy_trash).with_context(|| {
        format!(
            "Failed to move {} to {} for deletion",
            layout.legacy_dir.display(),
            layout.legacy_trash.display()
        )
    })?;
    remove_tree(&layout.legacy_trash)?;
    eprintln!(
        "mailbackup: the old unencrypted backups of {} are now inside the encrypted backup, and deleted",
        layout.legacy_dir.display()
    );
    Ok(())
}

/// An openssl copy of a duplicity file: `duplicity-….enc`.
fn is_legacy_copy(name: &[u8]) -> bool {
    name.starts_with(b"duplicity-") && name.ends_with(b".enc")
}

fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("Failed to delete {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_openssl_copies_are_legacy() {
        assert!(is_legacy_copy(
            b"duplicity-full.20150101T000000Z.vol1.difftar.gz.enc"
        ));
        assert!(is_legacy_copy(
            b"duplicity-full-signatures.20150101T000000Z.sigtar.gz.enc"
        ));
        assert!(!is_legacy_copy(
            b"duplicity-full.20150101T000000Z.vol1.difftar.gpg"
        ));
        assert!(!is_legacy_copy(b"notes.enc"));
    }
}
