//! The backup passphrase: where it is read from and how it is kept secret.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Layout;

/// The name of the systemd credential (`LoadCredential=passphrase:…`).
pub const CREDENTIAL_NAME: &str = "passphrase";

/// A passphrase. It is never printed: `Debug` says `<redacted>`, and the only
/// way out is into a child's environment.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(Vec<u8>);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// Takes the first line of a key file. gpg reads only up to the first
    /// newline of a passphrase, so backups that the reference made with the
    /// whole multi-line file as `PASSPHRASE` restore with this, and the reverse.
    pub fn from_key_file_bytes(bytes: &[u8]) -> Option<Passphrase> {
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        if line.is_empty() || line.contains(&0) {
            return None;
        }
        Some(Passphrase(line.to_vec()))
    }

    /// The value for the child's `PASSPHRASE` variable.
    pub fn to_env_value(&self) -> OsString {
        OsString::from_vec(self.0.clone())
    }

    /// Whether `haystack` contains the passphrase, for tests and leak checks.
    pub fn occurs_in(&self, haystack: &[u8]) -> bool {
        haystack.windows(self.0.len()).any(|w| w == self.0)
    }
}

/// Where the passphrase comes from: the systemd credential when the service
/// runs with `LoadCredential=`, the key file otherwise.
pub fn key_path(layout: &Layout, credentials_directory: Option<&Path>) -> PathBuf {
    match credentials_directory {
        Some(dir) => dir.join(CREDENTIAL_NAME),
        None => layout.key_file.clone(),
    }
}

/// What to tell the operator when the key file is gone (not merely
/// unreadable to the caller): no backup runs, and none restores, without it.
pub fn missing(path: &Path) -> Option<String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(missing_message(path)),
        _ => None,
    }
}

/// Whether the caller may not look for the key file at all: a directory
/// on its way is closed to it (Debian 13's useradd makes home directories,
/// and so a STORAGE_ROOT, 0700).
pub fn hidden(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// What [`missing`] says of the key file at `path`.
pub fn missing_message(path: &Path) -> String {
    format!(
        "the backup key {} is missing: no backup can run, and no backup can be restored \
         without it; put your copy of the key back there",
        path.display()
    )
}

/// The key's cause of a failure, told from what systemd logged for the run
/// (`journal`) where the failure unit may not look for the key itself
/// ([`hidden`]): systemd could not load the unit's credentials (exit status
/// 243/CREDENTIALS), which are the key and `others` (None: not known). The
/// other credential files that are there are no cause.
pub fn missing_by_journal(key: &Path, journal: &str, others: Option<&[PathBuf]>) -> Option<String> {
    if !journal.contains("status=243/CREDENTIALS") {
        return None;
    }
    let suspects: Vec<String> = match others {
        Some(others) => others
            .iter()
            .filter(|p| std::fs::symlink_metadata(p).is_err())
            .map(|p| p.display().to_string())
            .collect(),
        None => vec!["another file it loads as a credential".to_owned()],
    };
    if suspects.is_empty() {
        return Some(missing_message(key));
    }
    Some(format!(
        "systemd could not load the unit's credentials (status 243/CREDENTIALS): \
         the backup key {} is missing, or {} is; put your copy of the key back there",
        key.display(),
        suspects.join(", or ")
    ))
}

/// A loaded key, with a warning for the operator when its file is too open.
pub struct LoadedKey {
    pub passphrase: Passphrase,
    pub warning: Option<String>,
}

/// Reads the passphrase from `path`.
pub fn load(path: &Path) -> Result<LoadedKey> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "Failed to read the backup key {}: restore it from your copy of the key, \
             or run `mailbackup install` to create a new one for a new backup",
            path.display()
        )
    })?;
    let Some(passphrase) = Passphrase::from_key_file_bytes(&bytes) else {
        bail!(
            "The backup key {} is empty (its first line holds no passphrase, or it contains a NUL byte): \
             restore it from your copy of the key",
            path.display()
        );
    };
    let mode = std::fs::metadata(path)
        .with_context(|| format!("Failed to read the permissions of {}", path.display()))?
        .permissions()
        .mode();
    let warning = (mode & 0o044 != 0).then(|| {
        format!(
            "the backup key {} can be read by other users (mode {:04o}): run `chmod 600 {}`",
            path.display(),
            mode & 0o7777,
            path.display()
        )
    });
    Ok(LoadedKey {
        passphrase,
        warning,
    })
}

/// How many random bytes a new key holds.
pub const NEW_KEY_BYTES: usize = 48;

/// The text of a new key file: one line of base64, without a newline, so
/// that reading the whole file, its first line or `$(cat FILE)` all give the
/// same passphrase.
pub fn new_key_text(random: &[u8; NEW_KEY_BYTES]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    // 48 bytes are 16 groups of three: no padding.
    random
        .chunks(3)
        .flat_map(|c| {
            let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
            [18, 12, 6, 0].map(|shift| char::from(ALPHABET[(n >> shift & 63) as usize]))
        })
        .collect()
}

/// Creates a new key file at `path` (mode 0600, owner root) unless one
/// exists. Returns whether it created one. An existing key is never touched.
pub fn create_key_file(path: &Path) -> Result<bool> {
    use std::io::{ErrorKind, Read, Write};
    use std::os::unix::fs::OpenOptionsExt;

    let mut random = [0u8; NEW_KEY_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .context("Failed to read random bytes from /dev/urandom for a new backup key")?;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("Failed to create the backup key {}", path.display()))
        }
    };
    let written = file
        .write_all(new_key_text(&random).as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::os::unix::fs::fchown(&file, Some(0), Some(0)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(e)
            .with_context(|| format!("Failed to write the backup key {}", path.display()));
    }
    Ok(true)
}

/// The file beside the key that records its confirmation: the key's
/// fingerprint and the date, never the key. Beside the key (in `backup/`,
/// which no backup includes) so that it goes wherever the key goes, and a
/// box with another STORAGE_ROOT has its own.
pub const CONFIRMATION_FILE: &str = "key-confirmed";

/// The SHA-256 of the passphrase (the key file's first line, all that a
/// restore needs), as `sha256:HEX`. It does not reveal the key: a new key
/// holds 288 random bits.
pub fn fingerprint(passphrase: &Passphrase) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&passphrase.0);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Whether `pasted` is the key: the whole key file, or its first line
/// alone, with whitespace around the lines and blank lines at the ends
/// ignored (a paste adds a newline, a password manager may drop one).
pub fn matches(key_file: &[u8], pasted: &[u8]) -> bool {
    fn lines(bytes: &[u8]) -> Vec<&[u8]> {
        let mut lines: Vec<&[u8]> = bytes
            .split(|&b| b == b'\n')
            .map(|l| l.trim_ascii())
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        while lines.first().is_some_and(|l| l.is_empty()) {
            lines.remove(0);
        }
        lines
    }
    let (key, pasted) = (lines(key_file), lines(pasted));
    !key.is_empty() && !key[0].is_empty() && (pasted == key || pasted == key[..1])
}

/// The confirmation file's text.
pub fn confirmation_text(fingerprint: &str, date: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "fingerprint={fingerprint}\nconfirmed={}\n",
        date.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// Whether the key is kept off the box, as far as mailbackup knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Custody {
    /// `key confirm` was given this key on this date.
    Confirmed { date: String },
    /// Never confirmed.
    Unconfirmed,
    /// A key with another fingerprint was confirmed on this date.
    Changed { date: String },
}

impl Custody {
    /// Pure: from the confirmation file's text (None: no file) and the
    /// key's fingerprint (None: the key cannot be read here, and is taken
    /// as the one confirmed).
    pub fn of(record: Option<&str>, fingerprint: Option<&str>) -> Custody {
        let Some(record) = record else {
            return Custody::Unconfirmed;
        };
        let field = |name: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::trim)
        };
        let date = field("confirmed").unwrap_or("an unknown date").to_owned();
        match (field("fingerprint"), fingerprint) {
            (None, _) => Custody::Unconfirmed,
            (Some(recorded), Some(now)) if recorded != now => Custody::Changed { date },
            _ => Custody::Confirmed { date },
        }
    }

    /// What `status --check` warns of; None when confirmed.
    pub fn warning(&self) -> Option<String> {
        const WHAT: &str = "the backup key has not been confirmed as kept off this box";
        const DO: &str =
            "`mailbackup key show` prints it; keep it elsewhere, then run `mailbackup key confirm`";
        match self {
            Custody::Confirmed { .. } => None,
            Custody::Unconfirmed => Some(format!("{WHAT}: {DO}")),
            Custody::Changed { date } => Some(format!(
                "{WHAT} (it changed since the key confirmed on {date}): {DO}"
            )),
        }
    }
}

/// Records that the key with `fingerprint` was confirmed at `now`:
/// written aside (mode 0600) and renamed, so that a reader never sees half
/// a record. Returns the file.
pub fn record_confirmation(
    layout: &Layout,
    fingerprint: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let path = layout.backup_dir.join(CONFIRMATION_FILE);
    let tmp = layout.backup_dir.join(format!("{CONFIRMATION_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(confirmation_text(fingerprint, now).as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("Failed to record the confirmation in {}", path.display()))?;
    Ok(path)
}

/// Reads the custody of the key of `layout`.
pub fn custody(layout: &Layout) -> Custody {
    let record = std::fs::read_to_string(layout.backup_dir.join(CONFIRMATION_FILE)).ok();
    let fingerprint = load(&layout.key_file)
        .ok()
        .map(|k| fingerprint(&k.passphrase));
    Custody::of(record.as_deref(), fingerprint.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_only() {
        let p = Passphrase::from_key_file_bytes(b"abc\ndef\n").unwrap();
        assert_eq!(p.to_env_value(), "abc");
        let p = Passphrase::from_key_file_bytes(b"no-newline").unwrap();
        assert_eq!(p.to_env_value(), "no-newline");
    }

    #[test]
    fn empty_keys_are_refused() {
        assert!(Passphrase::from_key_file_bytes(b"").is_none());
        assert!(Passphrase::from_key_file_bytes(b"\nsecond line").is_none());
        assert!(Passphrase::from_key_file_bytes(b"a\0b").is_none());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let p = Passphrase::from_key_file_bytes(b"hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!format!("{:#?}", Some(&p)).contains("hunter2"));
    }

    #[test]
    fn new_keys_are_one_line_of_base64() {
        let text = new_key_text(&[0u8; NEW_KEY_BYTES]);
        assert_eq!(text, "A".repeat(64));
        let mut bytes = [0u8; NEW_KEY_BYTES];
        bytes[..6].copy_from_slice(b"Man\xff\xfe\xfd");
        let text = new_key_text(&bytes);
        assert!(text.starts_with("TWFu//79"), "{text}");
        assert_eq!(
            Passphrase::from_key_file_bytes(text.as_bytes())
                .unwrap()
                .to_env_value(),
            text.as_str()
        );
    }

    #[test]
    fn pasted_keys() {
        let key = b"Zm9vYmFy\nsecond\n";
        for pasted in [
            &b"Zm9vYmFy\nsecond\n"[..],
            b"Zm9vYmFy\nsecond",
            b"  Zm9vYmFy \r\nsecond\n\n",
            b"Zm9vYmFy\n",
            b"Zm9vYmFy",
        ] {
            assert!(matches(key, pasted), "{pasted:?}");
        }
        for pasted in [&b""[..], b"Zm9vYmF", b"Zm9vYmFy\nsecond\nthird", b"second"] {
            assert!(!matches(key, pasted), "{pasted:?}");
        }
        assert!(!matches(b"", b""));
    }

    #[test]
    fn custody_of_the_key() {
        let p = Passphrase::from_key_file_bytes(b"hunter2").unwrap();
        let f = fingerprint(&p);
        assert_eq!(
            f,
            "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"
        );
        let date = chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap();
        let text = confirmation_text(&f, date);
        assert_eq!(
            text,
            format!("fingerprint={f}\nconfirmed=2026-11-30T00:53:20Z\n")
        );
        assert!(!text.contains("hunter2"));
        let confirmed = Custody::of(Some(&text), Some(&f));
        assert_eq!(
            confirmed,
            Custody::Confirmed {
                date: "2026-11-30T00:53:20Z".into()
            }
        );
        assert_eq!(confirmed.warning(), None);
        assert_eq!(Custody::of(Some(&text), None), confirmed);
        let w = Custody::of(None, Some(&f)).warning().unwrap();
        assert!(
            w.starts_with("the backup key has not been confirmed as kept off this box: "),
            "{w}"
        );
        let changed = Custody::of(Some(&text), Some("sha256:00"));
        assert!(
            changed
                .warning()
                .unwrap()
                .contains("changed since the key confirmed on 2026-11-30"),
            "{changed:?}"
        );
        assert_eq!(Custody::of(Some("garbage"), Some(&f)), Custody::Unconfirmed);
    }

    #[test]
    fn credential_wins_over_key_file() {
        let l = Layout::new(Path::new("/srv/data"));
        assert_eq!(
            key_path(&l, None),
            Path::new("/srv/data/backup/secret_key.txt")
        );
        assert_eq!(
            key_path(&l, Some(Path::new("/run/credentials/mailbackup.service"))),
            Path::new("/run/credentials/mailbackup.service/passphrase")
        );
    }

    #[test]
    fn a_missing_key_is_told_from_the_journal_where_it_is_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secret_key.txt");
        let there = dir.path().join("custom.yaml");
        std::fs::write(&there, "target: s3://x\n").unwrap();
        let failed =
            "mailbackup.service: Control process exited, code=exited, status=243/CREDENTIALS\n";
        // Another failure: not the key's.
        assert_eq!(
            missing_by_journal(&key, "status=1/FAILURE", Some(&[])),
            None
        );
        // The key is the only credential not there: it is the missing one.
        let cause = missing_by_journal(&key, failed, Some(std::slice::from_ref(&there))).unwrap();
        assert_eq!(cause, missing_message(&key));
        assert!(cause.contains("secret_key.txt is missing"), "{cause}");
        // Another is gone too, or not known: both are named.
        let gone = dir.path().join("gone.yaml");
        let cause = missing_by_journal(&key, failed, Some(&[gone])).unwrap();
        assert!(cause.contains("secret_key.txt is missing, or "), "{cause}");
        assert!(cause.contains("gone.yaml is"), "{cause}");
        let cause = missing_by_journal(&key, failed, None).unwrap();
        assert!(
            cause.contains("secret_key.txt is missing, or another file"),
            "{cause}"
        );
    }
}
