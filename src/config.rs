//! `/etc/mailinabox.conf` and the paths derived from `STORAGE_ROOT`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The default configuration file of a Mail-in-a-Box.
pub const DEFAULT_CONFIG: &str = "/etc/mailinabox.conf";

/// The settings of a box: `KEY=VALUE` lines, the first occurrence of a key wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file the settings were read from, for error messages and for units.
    pub path: PathBuf,
    /// Every setting, in file order, without duplicates.
    pub vars: Vec<(String, String)>,
    /// Where the box keeps all of its data: the directory itself, once
    /// `load` has resolved the symlinks in the setting.
    pub storage_root: PathBuf,
    /// The setting as written, when it differs (a symlink to the data).
    pub linked_from: Option<PathBuf>,
}

impl Config {
    /// Parses the text of a configuration file like the reference's
    /// `load_env_vars_from_file`: each line is stripped and split at its first
    /// `=`; lines without one carry no value and are ignored.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let mut vars: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            if !vars.iter().any(|(k, _)| k == key) {
                vars.push((key.to_owned(), value.to_owned()));
            }
        }
        let root = match vars.iter().find(|(k, _)| k == "STORAGE_ROOT") {
            None => bail!(
                "{} has no STORAGE_ROOT setting: add a line STORAGE_ROOT=/home/user-data",
                path.display()
            ),
            Some((_, v)) if v.is_empty() => {
                bail!(
                    "STORAGE_ROOT is empty in {}: set it to the box's data directory",
                    path.display()
                )
            }
            Some((_, v)) => PathBuf::from(v),
        };
        if !root.is_absolute() {
            bail!(
                "STORAGE_ROOT in {} is {:?}, not an absolute path: set it to the box's data directory",
                path.display(),
                root
            );
        }
        Ok(Config {
            path: path.to_owned(),
            vars,
            storage_root: root,
            linked_from: None,
        })
    }

    /// Reads and parses `path`, checks that `STORAGE_ROOT` is a directory,
    /// and resolves it to that directory once, for every command and unit:
    /// a box whose data moved to a bigger disk, with a symlink left in its
    /// place, backs up the data, not the link.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Failed to read the configuration file {}", path.display()))?;
        let mut config = Config::parse(path, &text)?;
        let root = config.storage_root.clone();
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => {
                let resolved = std::fs::canonicalize(&root).with_context(|| {
                    format!("Failed to resolve STORAGE_ROOT {}", root.display())
                })?;
                if resolved != root {
                    config.storage_root = resolved;
                    config.linked_from = Some(root);
                }
                Ok(config)
            }
            Ok(_) => bail!(
                "STORAGE_ROOT in {} is {}, which is not a directory",
                path.display(),
                root.display()
            ),
            Err(e) => bail!(
                "STORAGE_ROOT in {} is {}, which cannot be used: {e}",
                path.display(),
                root.display()
            ),
        }
    }

    /// Where `STORAGE_ROOT` leads through a symlink: a line for the log of
    /// the commands that back up, restore or write units, so the operator
    /// sees which directory they act on.
    pub fn symlink_note(&self) -> Option<String> {
        self.linked_from.as_ref().map(|link| {
            format!(
                "mailbackup: STORAGE_ROOT {} leads through a symlink to {}: using {}",
                link.display(),
                self.storage_root.display(),
                self.storage_root.display()
            )
        })
    }

    /// The value of one setting.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The paths mailbackup uses under `STORAGE_ROOT`.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.storage_root)
    }
}

/// Every path under `STORAGE_ROOT` that a backup reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub storage_root: PathBuf,
    /// `backup/`: excluded from backups, the only place the service may write.
    pub backup_dir: PathBuf,
    /// `backup/encrypted/`: the duplicity target.
    pub encrypted_dir: PathBuf,
    /// `backup/cache/`: duplicity's archive dir (its local cache and lock).
    pub cache_dir: PathBuf,
    /// `backup/secret_key.txt`: the passphrase.
    pub key_file: PathBuf,
    /// `backup/gnupg/`: a writable GNUPGHOME for gpg.
    pub gnupg_home: PathBuf,
    /// `backup/duplicity/`: unencrypted backups of the pre-2015 layout.
    pub legacy_dir: PathBuf,
    /// Where `legacy_dir` goes once backed up, to be deleted.
    pub legacy_trash: PathBuf,
    /// `backup/after-backup`: the operator's hook.
    pub hook: PathBuf,
    /// `backup/before-backup`: the operator's hook run before the backup.
    pub before_hook: PathBuf,
    /// `backup/snapshot/`: the data as it was when the services stopped.
    pub snapshot_dir: PathBuf,
    /// Where a snapshot is built before it is complete.
    pub snapshot_partial: PathBuf,
    /// Where a snapshot that an interrupted run left goes, to be removed
    /// after the next backup rather than while the mail waits:
    /// `backup/snapshot.leftover-N`.
    pub snapshot_leftover: PathBuf,
    /// The Maildirs outside `mail/` that a prepared snapshot found, for its
    /// completion.
    pub snapshot_maildirs: PathBuf,
    /// The SQLite databases that a prepared snapshot took, for its
    /// completion to leave alone.
    pub snapshot_databases: PathBuf,
    /// `backup/snapshot-warnings`: what the last snapshot could not take as
    /// it should (a database locked or corrupt), for `status --check`.
    pub snapshot_warnings: PathBuf,
    /// `backup/verify-requested`: the next backup compares itself with its
    /// snapshot.
    pub verify_request: PathBuf,
    /// `backup/verify-result`: what that comparison found.
    pub verify_result: PathBuf,
    /// `backup/restore.lock`: held (flock) by a running restore, which a
    /// backup then waits for.
    pub restore_lock: PathBuf,
    /// `backup/history.json`: what the last backup, prune, verify and
    /// drill did, for the metrics and `status --check`.
    pub history: PathBuf,
    /// `backup/drill/`: where a drill restores, removed after it.
    pub drill_dir: PathBuf,
}

impl Layout {
    pub fn new(storage_root: &Path) -> Layout {
        let backup_dir = storage_root.join("backup");
        Layout {
            storage_root: storage_root.to_owned(),
            encrypted_dir: backup_dir.join("encrypted"),
            cache_dir: backup_dir.join("cache"),
            key_file: backup_dir.join("secret_key.txt"),
            gnupg_home: backup_dir.join("gnupg"),
            legacy_dir: backup_dir.join("duplicity"),
            legacy_trash: backup_dir.join("duplicity.migrated"),
            hook: backup_dir.join("after-backup"),
            before_hook: backup_dir.join("before-backup"),
            snapshot_dir: backup_dir.join("snapshot"),
            snapshot_partial: backup_dir.join("snapshot.partial"),
            snapshot_leftover: backup_dir.join("snapshot.leftover"),
            snapshot_maildirs: backup_dir.join("snapshot.maildirs"),
            snapshot_databases: backup_dir.join("snapshot.databases"),
            snapshot_warnings: backup_dir.join("snapshot-warnings"),
            verify_request: backup_dir.join("verify-requested"),
            verify_result: backup_dir.join("verify-result"),
            restore_lock: backup_dir.join("restore.lock"),
            history: backup_dir.join("history.json"),
            drill_dir: backup_dir.join("drill"),
            backup_dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/etc/mailinabox.conf"), text)
    }

    #[test]
    fn first_occurrence_wins_and_lines_are_stripped() {
        let c = parse("  STORAGE_ROOT=/home/user-data \nSTORAGE_USER=user-data\nSTORAGE_ROOT=/other\nnoequals\n\nPRIMARY_HOSTNAME=box.example.com\r\nX=a=b\n").unwrap();
        assert_eq!(c.storage_root, Path::new("/home/user-data"));
        assert_eq!(c.get("STORAGE_USER"), Some("user-data"));
        assert_eq!(c.get("PRIMARY_HOSTNAME"), Some("box.example.com"));
        assert_eq!(c.get("X"), Some("a=b"));
        assert_eq!(c.vars.len(), 4);
    }

    #[test]
    fn storage_root_is_required_and_absolute() {
        let e = format!("{:#}", parse("STORAGE_USER=x\n").unwrap_err());
        assert!(
            e.contains("/etc/mailinabox.conf") && e.contains("STORAGE_ROOT"),
            "{e}"
        );
        let e = format!("{:#}", parse("STORAGE_ROOT=\n").unwrap_err());
        assert!(e.contains("empty"), "{e}");
        let e = format!("{:#}", parse("STORAGE_ROOT=user-data\n").unwrap_err());
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn layout_matches_the_reference() {
        let l = Layout::new(Path::new("/home/user-data"));
        assert_eq!(
            l.encrypted_dir,
            Path::new("/home/user-data/backup/encrypted")
        );
        assert_eq!(l.cache_dir, Path::new("/home/user-data/backup/cache"));
        assert_eq!(
            l.key_file,
            Path::new("/home/user-data/backup/secret_key.txt")
        );
    }
}
