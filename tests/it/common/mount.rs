//! A tmpfs mounted on the host for one test: a small disk, a read-only
//! directory, another filesystem for `backup/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs at a path; unmounted when dropped, so also when the test panics.
/// Declare it after the temporary directory it lies in (which must outlive
/// it) and before what uses it.
pub struct Mount {
    path: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs with `options` (`-o`, e.g. `size=7m` or `ro`; empty
    /// for none) at `path`, which must exist.
    pub fn tmpfs(path: &Path, options: &str) -> Mount {
        let mut mount = Command::new("mount");
        mount.args(["-t", "tmpfs"]);
        if !options.is_empty() {
            mount.args(["-o", options]);
        }
        let status = mount.arg("tmpfs").arg(path).status().unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs at {} needs root",
            path.display()
        );
        Mount {
            path: path.to_owned(),
        }
    }
}

impl Drop for Mount {
    /// Lazily: a gpg-agent of the test may still be on its way out, and a
    /// busy mount would be left behind.
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
