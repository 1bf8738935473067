//! Advisory locks (`flock`) that say who holds them: the holder writes a
//! line into the file, and the kernel lets the lock go when the holder dies,
//! so a killed process never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// An exclusive lock, held until dropped. The file goes first, then the
/// lock: nothing is left behind, and whoever looks meanwhile finds either
/// the held lock or no file.
pub struct Held {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes the exclusive lock on `path` (created 0600 if missing) and writes
/// `holder` into it. `Ok(Err(line))` when another process holds it: the
/// line it wrote.
pub fn try_hold(path: &Path, holder: &str) -> Result<std::result::Result<Held, String>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("Failed to open the lock file {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0)
                .and_then(|()| lock.write_all(holder.as_bytes()))
                .with_context(|| format!("Failed to write the lock file {}", path.display()))?;
            Ok(Ok(Held {
                path: path.to_owned(),
                _lock: lock,
            }))
        }
        Err((mut file, Errno::EWOULDBLOCK)) => Ok(Err(read_holder(&mut file))),
        Err((_, e)) => Err(e).with_context(|| format!("Failed to lock {}", path.display())),
    }
}

/// Who holds the lock on `path`, if anyone: the line the holder wrote.
/// Needs only read access: a missing file is a free lock.
pub fn holder(path: &Path) -> Result<Option<String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("Failed to open the lock file {}", path.display()))
        }
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_free) => Ok(None),
        Err((mut file, Errno::EWOULDBLOCK)) => Ok(Some(read_holder(&mut file))),
        Err((_, e)) => Err(e).with_context(|| format!("Failed to lock {}", path.display())),
    }
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim() {
        "" => "another process".to_owned(),
        line => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_names_its_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restore.lock");
        assert_eq!(holder(&path).unwrap(), None);
        let held = try_hold(&path, "a restore (pid 42)").unwrap().ok().unwrap();
        assert_eq!(
            holder(&path).unwrap().as_deref(),
            Some("a restore (pid 42)")
        );
        let again = try_hold(&path, "another").unwrap();
        assert_eq!(again.err().as_deref(), Some("a restore (pid 42)"));
        drop(held);
        assert!(!path.exists(), "the lock file is left behind");
        assert_eq!(holder(&path).unwrap(), None);
        let held = try_hold(&path, "short").unwrap().ok().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short");
        drop(held);
    }
}
