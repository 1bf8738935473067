//! The backends: where backups go. `STORAGE_ROOT/backup/custom.yaml`, Mail-in-a-Box's own
//! file, is parsed once (`settings.rs`) into a `Target`: a directory on this
//! box, an ssh server reached with rsync, or an S3 bucket. The target knows
//! its duplicity URL, the options and environment duplicity needs for it, how
//! to list itself with sizes, how to check that it works, and what its units
//! need. Nothing outside this module asks which kind it is.

mod cause;
mod local;
mod rsync;
mod s3;
mod settings;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::duplicity::inventory::Inventory;

pub use cause::{Cause, Unusable};
pub use settings::{Settings, SETTINGS_CREDENTIAL, SETTINGS_FILE};

/// A secret from the settings (the S3 secret key). It is never printed:
/// `Debug` says `<redacted>`, and the only way out is into a child's
/// environment or a request signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `haystack` contains the secret, for redaction and leak checks.
    pub fn occurs_in(&self, haystack: &str) -> bool {
        !self.0.is_empty() && haystack.contains(&self.0)
    }

    /// `text` with every occurrence of the secret blanked out.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "<redacted>")
        }
    }
}

/// The files that reaching an ssh server takes, outside the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshFiles {
    /// Mail-in-a-Box's key, `~root/.ssh/id_rsa_miab`.
    pub key: PathBuf,
    /// The server's host key, pinned on first contact, in a file that
    /// mailbackup owns and that its units may write.
    pub known_hosts: PathBuf,
}

/// The name of the ssh key, in root's `.ssh`.
pub const SSH_KEY_NAME: &str = "id_rsa_miab";

/// mailbackup's state directory outside systemd; the units give it
/// `StateDirectory=mailbackup`, and `$STATE_DIRECTORY` says where it is.
pub const STATE_DIRECTORY: &str = "/var/lib/mailbackup";

impl SshFiles {
    /// The files for a home directory and a state directory.
    pub fn new(home: &Path, state_directory: &Path) -> SshFiles {
        SshFiles {
            key: home.join(".ssh").join(SSH_KEY_NAME),
            known_hosts: state_directory.join("known_hosts"),
        }
    }
}

/// What the backup's units need for a target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitNeeds {
    /// The network: AF_INET, AF_INET6 and name resolution.
    pub network: bool,
    /// A state directory that the units may write (the pinned host keys).
    pub state_directory: bool,
    /// Files with secrets, loaded as systemd credentials: (name, path).
    pub credentials: Vec<(&'static str, PathBuf)>,
}

/// Where backups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Local(local::Local),
    Rsync(rsync::Rsync),
    S3(s3::S3),
}

impl Target {
    /// The target as duplicity takes it.
    pub fn url(&self) -> OsString {
        match &self.kind {
            Kind::Local(t) => t.url(),
            Kind::Rsync(t) => t.url(),
            Kind::S3(t) => t.url(),
        }
    }

    /// The target for people: a path or a URL, without secrets.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Local(t) => t.describe(),
            Kind::Rsync(t) => t.describe(),
            Kind::S3(t) => t.describe(),
        }
    }

    /// The options duplicity needs for this target, each one argv element.
    pub fn duplicity_options(&self) -> Vec<OsString> {
        match &self.kind {
            Kind::Local(_) => Vec::new(),
            Kind::Rsync(t) => t.duplicity_options(),
            Kind::S3(t) => t.duplicity_options(),
        }
    }

    /// The environment duplicity needs for this target. It holds secrets:
    /// it goes to `Command::env` and nowhere else.
    pub fn environment(&self) -> Vec<(&'static str, OsString)> {
        match &self.kind {
            Kind::Local(_) | Kind::Rsync(_) => Vec::new(),
            Kind::S3(t) => t.environment(),
        }
    }

    /// The secrets of the settings, to blank them out of what is shown.
    pub fn secrets(&self) -> Vec<&Secret> {
        match &self.kind {
            Kind::Local(_) | Kind::Rsync(_) => Vec::new(),
            Kind::S3(t) => vec![t.secret()],
        }
    }

    /// What is on the target, with sizes. Never writes. A failure names
    /// its cause: bad credentials, unreachable, no such bucket or path.
    pub fn inventory(&self) -> Result<Inventory> {
        match &self.kind {
            Kind::Local(t) => t.inventory(),
            Kind::Rsync(t) => t.inventory(),
            Kind::S3(t) => t.inventory(),
        }
    }

    /// Connects, lists, writes and deletes a small file. Returns what it
    /// found, in a few words; fails with the cause.
    pub fn check(&self) -> Result<String> {
        match &self.kind {
            Kind::Local(t) => t.check(),
            Kind::Rsync(t) => t.check(),
            Kind::S3(t) => t.check(),
        }
    }

    /// Whether the backup leaves the box.
    pub fn is_remote(&self) -> bool {
        !matches!(self.kind, Kind::Local(_))
    }

    /// The ssh key the target is reached with, which `install` creates.
    pub fn ssh_key(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Rsync(t) => Some(t.key()),
            Kind::Local(_) | Kind::S3(_) => None,
        }
    }

    /// What the units need for this target, given where the settings are.
    pub fn unit_needs(&self, settings_file: &Path) -> UnitNeeds {
        let [local, rsync, s3] = UnitNeeds::of_every_kind(settings_file);
        match &self.kind {
            Kind::Local(_) => local,
            Kind::Rsync(_) => rsync,
            Kind::S3(_) => s3,
        }
    }
}

impl UnitNeeds {
    /// What the units need for each kind of target (a local one, an ssh
    /// server, an S3 bucket), given where the settings are: `install` tells
    /// the units of an earlier target from units edited by hand.
    pub fn of_every_kind(settings_file: &Path) -> [UnitNeeds; 3] {
        [
            UnitNeeds::default(),
            UnitNeeds {
                network: true,
                state_directory: true,
                credentials: Vec::new(),
            },
            UnitNeeds {
                network: true,
                state_directory: false,
                credentials: vec![(SETTINGS_CREDENTIAL, settings_file.to_owned())],
            },
        ]
    }
}

/// What reaching a target off the box says in a unit installed for a
/// target on it, which has no network.
const NO_NETWORK: &str = "no network here: the units were installed for a target on this box; \
     run `mailbackup install` after changing custom.yaml";

/// A name for a file that `check` writes and deletes again.
fn check_file_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("mailbackup-check-{}-{nanos}", std::process::id())
}

/// A value that goes into an ssh or rsync option: one word, no quotes,
/// since duplicity pastes the options into a command line that it splits.
fn plain_word(value: &OsStr) -> bool {
    value.to_str().is_some_and(|s| {
        !s.is_empty()
            && !s
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "'\"\\`$".contains(c))
    })
}
