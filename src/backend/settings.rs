//! `STORAGE_ROOT/backup/custom.yaml`, with Mail-in-a-Box's keys and
//! spellings, parsed into typed settings. An error names the file and the
//! line, and nothing runs: Mail-in-a-Box falls back to defaults instead,
//! and backs up to the wrong place.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_norway::Value;

use super::{b2::B2, local::Local, rsync::Rsync, s3::S3, Kind, Secret, SshFiles, Target};
use crate::config::Layout;
use crate::status::report::KEEP_BACKUPS_FOR_DAYS;

/// The settings file's name in `STORAGE_ROOT/backup/`.
pub const SETTINGS_FILE: &str = "custom.yaml";

/// The name of the systemd credential that holds the settings file.
pub const SETTINGS_CREDENTIAL: &str = "custom.yaml";

/// The most days `min_age_in_days` may say: ten years.
const MAX_AGE_IN_DAYS: u64 = 3650;

/// Where backups go and how long they are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The file the settings come from (`backup/custom.yaml`).
    pub path: PathBuf,
    /// None when backups are off.
    pub target: Option<Target>,
    /// Backups are kept until they are this many days old (`prune`, and
    /// the deletion estimate in `status`).
    pub min_age_in_days: u32,
}

/// The file as written, keys as Mail-in-a-Box spells them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    target: Option<Value>,
    #[serde(default)]
    target_user: Option<Value>,
    #[serde(default)]
    target_pass: Option<Value>,
    #[serde(default)]
    min_age_in_days: Option<Value>,
}

impl Settings {
    /// The settings file of a box.
    pub fn file(layout: &Layout) -> PathBuf {
        layout.backup_dir.join(SETTINGS_FILE)
    }

    /// The settings of a box without a settings file: backups into
    /// `backup/encrypted`, kept 3 days.
    pub fn default_for(layout: &Layout) -> Settings {
        Settings {
            path: Settings::file(layout),
            target: Some(Target {
                kind: Kind::Local(Local::new(&layout.encrypted_dir)),
            }),
            min_age_in_days: KEEP_BACKUPS_FOR_DAYS,
        }
    }

    /// The target, for a command that needs one: an error when backups are off.
    pub fn active_target(self) -> Result<Target> {
        match self.target {
            Some(t) => Ok(t),
            None => bail!(
                "{}: there are no backups to use; set target in that file",
                self.off()
            ),
        }
    }

    /// What every command says when `target: off`: which file says so.
    pub fn off(&self) -> String {
        format!("backups are off (target: off in {})", self.path.display())
    }

    /// Reads the settings: from the systemd credential when the unit loaded
    /// one, else from the file; no file means the defaults.
    pub fn load(
        layout: &Layout,
        credentials_directory: Option<&Path>,
        ssh: &SshFiles,
    ) -> Result<Settings> {
        let path = Settings::file(layout);
        let from = credentials_directory
            .map(|dir| dir.join(SETTINGS_CREDENTIAL))
            .filter(|p| p.exists())
            .unwrap_or_else(|| path.clone());
        let text = match std::fs::read_to_string(&from) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Settings::default_for(layout))
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("Failed to read the backup settings {}", from.display())
                })
            }
        };
        Settings::parse(&path, &text, layout, ssh)
    }

    /// Parses the text of the settings file `path`. Pure.
    pub fn parse(path: &Path, text: &str, layout: &Layout, ssh: &SshFiles) -> Result<Settings> {
        let at = |key: &str| match line_of(text, key) {
            Some(n) => format!("{}, line {n}", path.display()),
            None => path.display().to_string(),
        };
        let raw: RawSettings = match serde_norway::from_str::<Option<RawSettings>>(text) {
            Ok(raw) => raw.unwrap_or_default(),
            Err(e) => {
                let place = match e.location() {
                    Some(l) => format!("{}, line {}", path.display(), l.line()),
                    None => path.display().to_string(),
                };
                // serde's message may quote a value: never a secret's.
                let message = e.to_string();
                let message = match raw_secret(text) {
                    Some(s) => s.redact(&message),
                    None => message,
                };
                bail!(
                    "{place}: not valid backup settings: {message} \
                     (the keys are target, target_user, target_pass and min_age_in_days)"
                );
            }
        };
        let min_age_in_days = match &raw.min_age_in_days {
            None | Some(Value::Null) => KEEP_BACKUPS_FOR_DAYS,
            Some(v) => {
                let days = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                match days {
                    Some(d) if (1..=MAX_AGE_IN_DAYS).contains(&d) => d as u32,
                    _ => bail!(
                        "{}: min_age_in_days must be a whole number of days from 1 to {MAX_AGE_IN_DAYS}",
                        at("min_age_in_days")
                    ),
                }
            }
        };
        let target = match &raw.target {
            None | Some(Value::Null) => "local".to_owned(),
            // YAML 1.1 reads an unquoted `off` as false.
            Some(Value::Bool(false)) => "off".to_owned(),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(_) => bail!(
                "{}: target must be local, off, or a URL (rsync://, s3://, s3+http://, b2://)",
                at("target")
            ),
        };
        let scalar = |key: &str, v: &Option<Value>| -> Result<Option<String>> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => bail!("{}: {key} must be a string", at(key)),
            }
        };
        let user = scalar("target_user", &raw.target_user)?;
        let pass = scalar("target_pass", &raw.target_pass)?.map(Secret::new);
        let kind = match parse_target(&target, layout, ssh, user, pass) {
            Ok(kind) => kind,
            Err(message) => bail!("{}: {message}", at("target")),
        };
        Ok(Settings {
            path: path.to_owned(),
            target: kind.map(|kind| Target { kind }),
            min_age_in_days,
        })
    }
}

/// The kind of target a `target:` value names; None for `off`.
fn parse_target(
    target: &str,
    layout: &Layout,
    ssh: &SshFiles,
    user: Option<String>,
    pass: Option<Secret>,
) -> Result<Option<Kind>, String> {
    if target == "off" {
        return Ok(None);
    }
    if target == "local" {
        return Ok(Some(Kind::Local(Local::new(&layout.encrypted_dir))));
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err(format!(
            "target {target:?} is not one mailbackup knows: {KINDS}"
        ));
    };
    match scheme {
        "file" if Path::new(rest) == layout.encrypted_dir => {
            Ok(Some(Kind::Local(Local::new(&layout.encrypted_dir))))
        }
        "file" => Err(format!(
            "target file://{rest} is not the box's backup directory {}: \
             use `target: local`, or an off-site target",
            layout.encrypted_dir.display()
        )),
        "rsync" => Rsync::parse(rest, ssh, &layout.cache_dir).map(|t| Some(Kind::Rsync(t))),
        "s3" | "s3+http" => S3::parse(scheme == "s3", rest, user, pass).map(|t| Some(Kind::S3(t))),
        "b2" => B2::parse(rest).map(|t| Some(Kind::B2(t))),
        // Only the scheme: the rest may hold a password.
        _ => Err(format!(
            "target {scheme}:// is not a kind of target mailbackup knows: {KINDS}"
        )),
    }
}

const KINDS: &str = "use local, off, rsync://USER@HOST[:PORT]/PATH, \
                     s3://[REGION@]HOST[:PORT]/BUCKET[/PREFIX], s3+http://… \
                     or b2://KEYID:KEY@BUCKET[/PATH]";

/// The first line (1-based) where a top-level `key:` is written.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

/// The key of a `b2://` target, or else the value of a `target_pass:`
/// line, to keep it out of error messages when the file does not parse.
fn raw_secret(text: &str) -> Option<Secret> {
    if let Some(key) = text
        .split_once("b2://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(credentials, _)| credentials.split_once(':'))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty())
    {
        return Some(Secret::new(key.to_owned()));
    }
    let line = text.lines().find(|l| l.starts_with("target_pass"))?;
    let value = line.split_once(':')?.1.trim().trim_matches(['"', '\'']);
    (!value.is_empty()).then(|| Secret::new(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(Path::new("/home/user-data"))
    }

    fn ssh() -> SshFiles {
        SshFiles::new(Path::new("/root"), Path::new("/var/lib/mailbackup"))
    }

    fn parse(text: &str) -> Result<Settings> {
        Settings::parse(
            Path::new("/home/user-data/backup/custom.yaml"),
            text,
            &layout(),
            &ssh(),
        )
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn no_settings_mean_local_and_three_days() {
        for text in [
            "",
            "# nothing\n",
            "target: local\n",
            "target:\nmin_age_in_days:\n",
        ] {
            let s = parse(text).unwrap();
            assert_eq!(s, Settings::default_for(&layout()), "{text:?}");
            let t = s.target.unwrap();
            assert_eq!(t.url(), "file:///home/user-data/backup/encrypted");
            assert_eq!(t.describe(), "/home/user-data/backup/encrypted");
            assert!(!t.is_remote());
        }
        let s = parse("target: file:///home/user-data/backup/encrypted\n").unwrap();
        assert_eq!(s, Settings::default_for(&layout()));
    }

    #[test]
    fn off_in_every_spelling() {
        for text in ["target: off\n", "target: 'off'\n", "target: false\n"] {
            assert_eq!(parse(text).unwrap().target, None, "{text}");
        }
    }

    #[test]
    fn mail_in_a_box_files_parse() {
        // As Mail-in-a-Box's control panel writes them (rtyaml).
        let s = parse(
            "min_age_in_days: 7\ntarget: s3://s3.eu-central-1.amazonaws.com/my-bucket/box\n\
             target_pass: 'abc/def+ghi'\ntarget_user: AKIAEXAMPLE\n",
        )
        .unwrap();
        assert_eq!(s.min_age_in_days, 7);
        let t = s.target.unwrap();
        assert_eq!(t.url(), "boto3+s3://my-bucket/box");
        assert!(t.is_remote());
        let s = parse(
            "min_age_in_days: '14'\ntarget: rsync://backup@example.org//srv/backups/box\n\
             target_user: ''\ntarget_pass: null\n",
        )
        .unwrap();
        assert_eq!(s.min_age_in_days, 14);
        assert_eq!(
            s.target.unwrap().url(),
            "rsync://backup@example.org//srv/backups/box"
        );
    }

    #[test]
    fn errors_name_the_file_and_the_line() {
        let e = err("min_age_in_days: 3\ntarget: ftp://user:hunter2@host/x\n");
        assert!(
            e.contains("/home/user-data/backup/custom.yaml, line 2")
                && e.contains("ftp://")
                && !e.contains("hunter2"),
            "{e}"
        );
        let e = err("target: [local\n");
        assert!(
            e.contains("custom.yaml, line ") && e.contains("not valid"),
            "{e}"
        );
        let e = err("target: local\ntarget_usr: x\n");
        assert!(e.contains("target_usr"), "{e}");
        let e = err("target: local\nmin_age_in_days: 0\n");
        assert!(e.contains("line 2") && e.contains("min_age_in_days"), "{e}");
        let e = err("min_age_in_days: three\n");
        assert!(e.contains("line 1"), "{e}");
        let e = err("target: nowhere\n");
        assert!(
            e.contains("line 1") && e.contains("rsync://USER@HOST"),
            "{e}"
        );
        let e = err("target: file:///elsewhere\n");
        assert!(e.contains("not the box's backup directory"), "{e}");
        let e = err("- a\n- b\n");
        assert!(e.contains("not valid"), "{e}");
        let e = err("target: local\ntarget_pass: 'sec ret\n");
        assert!(!e.contains("sec ret"), "{e}");
    }

    #[test]
    fn b2_as_mail_in_a_box_writes_it() {
        let s =
            parse("min_age_in_days: 3\ntarget: b2://0012ab:K001se%2Fcret@my-bucket/box\n").unwrap();
        let t = s.target.unwrap();
        assert_eq!(t.url(), "b2://0012ab@my-bucket/box");
        assert!(t.is_remote());
        assert!(t.secrets()[0].occurs_in("K001se/cret"));
        let e = err("target: b2://0012ab:K001secret@bkt/box\n");
        assert!(e.contains("line 1") && !e.contains("K001secret"), "{e}");
        let e = err("target: [b2://0012ab:K001secret@my-bucket\n");
        assert!(!e.contains("K001secret"), "{e}");
    }
}
