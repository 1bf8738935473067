//! `STORAGE_ROOT/backup/custom.yaml`, with Mail-in-a-Box's keys and
//! spellings, parsed into typed settings. An error names the file and the
//! line, and nothing runs: Mail-in-a-Box falls back to defaults instead,
//! and backs up to the wrong place.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_norway::Value;

use super::{
    b2::B2, local::Local, rsync::Rsync, s3::S3, Kind, Secret, SshFiles, Target, UnitNeeds,
};
use crate::config::Layout;
use crate::ping::PingUrl;
use crate::status::report::KEEP_BACKUPS_FOR_DAYS;

/// The settings file's name in `STORAGE_ROOT/backup/`.
pub const SETTINGS_FILE: &str = "custom.yaml";

/// The name of the systemd credential that holds the settings file.
pub const SETTINGS_CREDENTIAL: &str = "custom.yaml";

/// The most days `min_age_in_days` may say: ten years.
const MAX_AGE_IN_DAYS: i64 = 3650;

/// `min_age_in_days` as Mail-in-a-Box's control panel stores it (`int(...)`,
/// so 0 is allowed: keep only what the newest chain needs), or as typed by
/// hand (a quoted number).
fn parse_min_age(v: &Value) -> Result<u32> {
    let days = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match days {
        Some(d) if d < 0 => bail!(
            "min_age_in_days is {d}: a number of days cannot be negative (0 keeps only what the newest backup needs; the default is {KEEP_BACKUPS_FOR_DAYS})"
        ),
        Some(d) if d <= MAX_AGE_IN_DAYS => Ok(d as u32),
        _ => bail!("min_age_in_days must be a whole number of days from 0 to {MAX_AGE_IN_DAYS}"),
    }
}

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
    /// The dead-man's switch (`ping_url`): told when a backup starts and
    /// how it ended. A secret: anyone who has it can mark the box healthy.
    pub ping_url: Option<PingUrl>,
    /// What is odd but not wrong in the file (a key mailbackup does not
    /// know), for the log and `status --check`.
    pub warnings: Vec<String>,
}

/// The keys mailbackup reads. Mail-in-a-Box may write others, which are
/// ignored with a warning: one unknown key must not stop every backup.
pub const KNOWN_KEYS: [&str; 5] = [
    "target",
    "target_user",
    "target_pass",
    "min_age_in_days",
    "ping_url",
];

/// The file as written, keys as Mail-in-a-Box spells them.
#[derive(Debug, Default, Deserialize)]
struct RawSettings {
    #[serde(default)]
    target: Option<Value>,
    #[serde(default)]
    target_user: Option<Value>,
    #[serde(default)]
    target_pass: Option<Value>,
    #[serde(default)]
    min_age_in_days: Option<Value>,
    #[serde(default)]
    ping_url: Option<Value>,
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
            ping_url: None,
            warnings: Vec::new(),
        }
    }

    /// What the units need: the target's needs, and the network for the
    /// pings when there is a `ping_url`.
    pub fn unit_needs(&self) -> UnitNeeds {
        let mut needs = self
            .target
            .as_ref()
            .map_or_else(UnitNeeds::default, |t| t.unit_needs(&self.path));
        if self.ping_url.is_some() {
            needs.ping = true;
        }
        needs
    }

    /// Every secret of the settings, to blank them out of what is shown
    /// (the failure mail, the ping's log lines).
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut secrets: Vec<&Secret> = self.target.iter().flat_map(|t| t.secrets()).collect();
        secrets.extend(self.ping_url.as_ref().map(PingUrl::secret));
        secrets
    }

    /// `text` with every secret of the settings blanked out.
    pub fn redact(&self, text: &str) -> String {
        self.secrets()
            .iter()
            .fold(text.to_owned(), |t, s| s.redact(&t))
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
                let message = raw_secrets(text).iter().fold(message, |m, s| s.redact(&m));
                bail!(
                    "{place}: not valid backup settings: {message} \
                     (the keys are {})",
                    KNOWN_KEYS.join(", ")
                );
            }
        };
        let min_age_in_days = match &raw.min_age_in_days {
            None | Some(Value::Null) => KEEP_BACKUPS_FOR_DAYS,
            Some(v) => parse_min_age(v).with_context(|| at("min_age_in_days"))?,
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
        let ping_url = match scalar("ping_url", &raw.ping_url) {
            Ok(None) => None,
            Ok(Some(url)) => {
                Some(PingUrl::parse(&url).map_err(|m| anyhow!("{}: {m}", at("ping_url")))?)
            }
            // Never the value: it is a secret.
            Err(_) => bail!(
                "{}: ping_url must be an http:// or https:// URL",
                at("ping_url")
            ),
        };
        Ok(Settings {
            path: path.to_owned(),
            target: kind.map(|kind| Target { kind }),
            min_age_in_days,
            ping_url,
            warnings: unknown_keys(path, text),
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

/// The values of the `target_pass:` and `ping_url:` lines and a `b2://`
/// target's key, to keep them out of error messages when the file does not parse.
fn raw_secrets(text: &str) -> Vec<Secret> {
    let mut secrets: Vec<Secret> = text
        .lines()
        .filter(|l| l.starts_with("target_pass") || l.starts_with("ping_url"))
        .filter_map(|line| {
            let value = line.split_once(':')?.1.trim().trim_matches(['"', '\'']);
            (!value.is_empty()).then(|| Secret::new(value.to_owned()))
        })
        .collect();
    // And the key of a `b2://KEYID:KEY@BUCKET` target.
    if let Some(key) = text
        .split_once("b2://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(credentials, _)| credentials.split_once(':'))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty())
    {
        secrets.push(Secret::new(key.to_owned()));
    }
    secrets
}

/// A warning for each top-level key that mailbackup does not know, with
/// its line and the known key nearest to it. Never a value: it may be a
/// secret.
fn unknown_keys(path: &Path, text: &str) -> Vec<String> {
    let Ok(Value::Mapping(map)) = serde_norway::from_str::<Value>(text) else {
        return Vec::new();
    };
    map.keys()
        .filter_map(|key| {
            let name = match key {
                Value::String(s) => s.clone(),
                other => serde_norway::to_string(other).ok()?.trim().to_owned(),
            };
            if KNOWN_KEYS.contains(&name.as_str()) {
                return None;
            }
            let place = match line_of(text, &name) {
                Some(n) => format!("{}, line {n}", path.display()),
                None => path.display().to_string(),
            };
            Some(format!(
                "{place}: unknown key {name:?}, ignored (the nearest key mailbackup knows is {})",
                nearest_key(&name)
            ))
        })
        .collect()
}

/// The known key with the fewest edits from `name`.
fn nearest_key(name: &str) -> &'static str {
    KNOWN_KEYS
        .iter()
        .min_by_key(|k| crate::suggest::edit_distance(name, k))
        .copied()
        .unwrap_or(KNOWN_KEYS[0])
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
        // The control panel stores int(min_age): 0 is allowed.
        assert_eq!(parse("min_age_in_days: 0\n").unwrap().min_age_in_days, 0);
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
        let e = err("target: local\nmin_age_in_days: -1\n");
        assert!(
            e.contains("line 2") && e.contains("min_age_in_days is -1") && e.contains("negative"),
            "{e}"
        );
        let e = err("min_age_in_days: '-3'\n");
        assert!(e.contains("line 1") && e.contains("negative"), "{e}");
        let e = err("min_age_in_days: 3651\n");
        assert!(e.contains("line 1") && e.contains("from 0 to 3650"), "{e}");
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
    fn unknown_keys_are_warnings_that_name_the_nearest_key() {
        let s = parse("target: local\ntarget_usr: hunter2\nmin_age_days: 3\n").unwrap();
        assert_eq!(s.target, Settings::default_for(&layout()).target);
        assert_eq!(
            s.warnings,
            [
                "/home/user-data/backup/custom.yaml, line 2: unknown key \"target_usr\", ignored \
                 (the nearest key mailbackup knows is target_user)",
                "/home/user-data/backup/custom.yaml, line 3: unknown key \"min_age_days\", ignored \
                 (the nearest key mailbackup knows is min_age_in_days)",
            ]
        );
        assert!(!s.warnings.concat().contains("hunter2"));
        assert!(parse("target: local\n").unwrap().warnings.is_empty());
        // Bad values stay errors.
        let e = err("target: local\nmin_age_in_days: -2\nextra: 1\n");
        assert!(e.contains("min_age_in_days"), "{e}");
    }

    #[test]
    fn ping_urls() {
        let s = parse("ping_url: https://hc-ping.com/0b3a1f1e-secret\n").unwrap();
        let url = s.ping_url.clone().unwrap();
        assert!(!format!("{s:?}").contains("0b3a1f1e"), "{s:?}");
        assert_eq!(url.host(), "hc-ping.com");
        assert!(s.unit_needs().ping && !s.unit_needs().network);
        assert_eq!(
            s.redact("a https://hc-ping.com/0b3a1f1e-secret b"),
            "a <redacted> b"
        );
        for bad in [
            "ping_url: ftp://hc-ping.com/x-secret\n",
            "ping_url: hc-ping.com/x-secret\n",
            "ping_url: [https://x-secret]\n",
            "ping_url: 'https://a b/x-secret'\n",
        ] {
            let e = err(bad);
            assert!(
                e.contains("custom.yaml, line 1: ping_url must be") && !e.contains("x-secret"),
                "{e}"
            );
        }
        let e = err("ping_url: 'https://hc-ping.com/x-secret\n");
        assert!(!e.contains("x-secret"), "{e}");
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
