//! duplicity: its command lines, built from the layout, and running them;
//! its file names on the target (`backup_set`), what a target holds
//! (`inventory`), and the move from the pre-2015 layout (`migration`).

pub mod backup_set;
pub mod inventory;
pub mod manifest;
pub mod migration;
pub mod watch;
pub mod when;

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};

use crate::backend::Target;
use crate::config::Layout;
use crate::key::Passphrase;

/// The volume size of the reference, in MB.
pub const VOLSIZE_MB: u32 = 250;

/// duplicity's exit code when another instance holds the archive dir's lock
/// (and for other user errors).
pub const EXIT_USER_ERROR: u8 = 23;

/// duplicity's exit code when the path to restore is not in the backup.
pub const EXIT_NOT_IN_BACKUP: u8 = 19;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupMode {
    Full,
    Incremental,
}

impl BackupMode {
    pub fn action(self) -> &'static str {
        match self {
            BackupMode::Full => "full",
            BackupMode::Incremental => "incr",
        }
    }
}

/// The target's options, then its URL: the last arguments of a command
/// that names the target last.
fn target_last(target: &Target) -> Vec<OsString> {
    let mut args = target.duplicity_options();
    args.push(target.url());
    args
}

fn archive_dir(layout: &Layout) -> [OsString; 2] {
    ["--archive-dir".into(), layout.cache_dir.clone().into()]
}

/// What a backup reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `STORAGE_ROOT` without its `backup/` directory, except for the
    /// directories in `include` (which lie inside it).
    Live { include: Vec<PathBuf> },
    /// A snapshot of `STORAGE_ROOT` (see `crate::snapshot`), backed up in its
    /// place: the paths in the backup are the same. duplicity runs inside
    /// it and backs up `.`, so that no path it opens is longer than in a
    /// live backup (the kernel refuses paths past 4,096 bytes).
    Snapshot,
}

/// The directory duplicity must run in for `source`.
pub fn source_cwd<'a>(layout: &'a Layout, source: &Source) -> Option<&'a Path> {
    match source {
        Source::Live { .. } => None,
        Source::Snapshot => Some(&layout.snapshot_dir),
    }
}

/// The arguments of one backup; run them in `source_cwd`.
pub fn backup_args(
    layout: &Layout,
    target: &Target,
    mode: BackupMode,
    source: &Source,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![mode.action().into()];
    args.extend(archive_dir(layout));
    let dir = match source {
        Source::Live { include } => {
            for dir in include {
                args.extend(["--include".into(), dir.clone().into_os_string()]);
            }
            args.extend([
                "--exclude".into(),
                layout.backup_dir.clone().into_os_string(),
            ]);
            layout.storage_root.as_path()
        }
        Source::Snapshot => Path::new("."),
    };
    args.extend([
        "--volsize".into(),
        VOLSIZE_MB.to_string().into(),
        // A box whose hostname changed, or a snapshot in the place of the
        // live data, must keep backing up.
        "--allow-source-mismatch".into(),
    ]);
    args.extend(target.duplicity_options());
    args.extend([dir.as_os_str().to_owned(), target.url()]);
    args
}

/// The time (Unix seconds) before which `prune` lets duplicity delete
/// chains: `keep_days` before `now_us`, but never after the newest backup
/// (`newest_us`). duplicity 0.8.22 given a later time deletes, with an older
/// chain, the signatures of the chain still in use, and the next
/// incremental backup fails (exit 17); `min_age_in_days: 0` would always do
/// that.
pub fn prune_cutoff(keep_days: u32, now_us: i64, newest_us: Option<i64>) -> i64 {
    let wanted = now_us.div_euclid(1_000_000) - i64::from(keep_days) * 86_400;
    newest_us.map_or(wanted, |n| wanted.min(n.div_euclid(1_000_000)))
}

/// The arguments that delete the backups no longer needed to restore any
/// state since `cutoff` (Unix seconds, see [`prune_cutoff`]).
pub fn remove_older_than_args(layout: &Layout, target: &Target, cutoff: i64) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["remove-older-than".into(), cutoff.to_string().into()];
    args.extend(archive_dir(layout));
    args.push("--force".into());
    args.extend(target_last(target));
    args
}

/// The arguments that delete what an interrupted backup left behind.
pub fn cleanup_args(layout: &Layout, target: &Target) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["cleanup".into()];
    args.extend(archive_dir(layout));
    args.push("--force".into());
    args.extend(target_last(target));
    args
}

/// A `--time` for duplicity. A time to the minute, as `mailbackup status`
/// shows one (`2026-11-20 03:00`, or `2026-11-20T03:00`), means the end of
/// that minute, so that it picks the backup listed at that minute; duplicity
/// itself rejects both forms, and `03:00:00` would pick the one before a
/// backup made at 03:00:39. Anything else goes to duplicity as it is.
pub fn time_arg(time: &str) -> String {
    let b = time.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let to_the_minute = b.len() == 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16);
    if to_the_minute {
        format!("{}T{}:59", &time[..10], &time[11..])
    } else {
        time.to_owned()
    }
}

/// Where a restore keeps duplicity's temporary files (the volumes it
/// fetches, the files it rebuilds from increments), and the volume size
/// that duplicity's check of the room there counts.
pub struct TempSpace<'a> {
    pub dir: &'a Path,
    pub volsize_mib: u64,
}

impl TempSpace<'_> {
    fn args(&self) -> [OsString; 4] {
        [
            "--tempdir".into(),
            self.dir.as_os_str().to_owned(),
            "--volsize".into(),
            self.volsize_mib.to_string().into(),
        ]
    }
}

/// The arguments that restore the backup as of `time` (latest without),
/// or only `path` (relative to `STORAGE_ROOT`) of it, to `dest`, with
/// duplicity's temporary files in `temp`.
pub fn restore_args(
    layout: &Layout,
    target: &Target,
    time: Option<&str>,
    path: Option<&Path>,
    dest: &Path,
    temp: &TempSpace,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["restore".into()];
    args.extend(archive_dir(layout));
    args.extend(temp.args());
    if let Some(t) = time {
        args.extend(["--time".into(), time_arg(t).into()]);
    }
    if let Some(p) = path {
        // `-r`: duplicity 0.8 calls it --file-to-restore, 3.x --path-to-restore.
        args.extend(["-r".into(), p.as_os_str().to_owned()]);
    }
    args.extend(target.duplicity_options());
    args.extend([target.url(), dest.as_os_str().to_owned()]);
    args
}

/// The arguments that restore `path` (relative to `STORAGE_ROOT`) of the
/// latest backup to `dest` with the archive dir `archive`: a drill's, new
/// and empty, so that everything comes from the target. Temporary files go
/// to `temp`.
pub fn drill_restore_args(
    archive: &Path,
    target: &Target,
    path: &Path,
    dest: &Path,
    temp: &TempSpace,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "restore".into(),
        "--archive-dir".into(),
        archive.as_os_str().to_owned(),
    ];
    args.extend(temp.args());
    args.extend(["-r".into(), path.as_os_str().to_owned()]);
    args.extend(target.duplicity_options());
    args.extend([target.url(), dest.as_os_str().to_owned()]);
    args
}

/// The arguments that list the files of the backup as of `time`.
pub fn list_args(layout: &Layout, target: &Target, time: Option<&str>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["list-current-files".into()];
    args.extend(archive_dir(layout));
    if let Some(t) = time {
        args.extend(["--time".into(), time_arg(t).into()]);
    }
    args.extend(target_last(target));
    args
}

/// The arguments that compare the latest backup, file data included, with
/// `STORAGE_ROOT` without its `backup/` directory, or with the snapshot (run
/// them in `source_cwd`).
pub fn verify_args(layout: &Layout, target: &Target, source: &Source) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["verify".into(), "--compare-data".into()];
    args.extend(archive_dir(layout));
    if let Source::Live { .. } = source {
        args.extend([
            "--exclude".into(),
            layout.backup_dir.clone().into_os_string(),
        ]);
    }
    args.extend(target.duplicity_options());
    args.push(target.url());
    match source {
        Source::Live { .. } => args.push(layout.storage_root.clone().into_os_string()),
        Source::Snapshot => args.push(".".into()),
    }
    args
}

/// How a duplicity run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// duplicity's exit code, or 128 + N when it died of signal N.
    pub code: u8,
    /// It said another duplicity holds the archive dir's lock.
    pub locked_out: bool,
    /// What `verify` found different, one line each.
    pub differences: Vec<String>,
    /// The files it could not write or patch (a restore into a full disk,
    /// a full temporary directory): duplicity says so, and exits 0.
    pub not_restored: Vec<String>,
    /// It ran out of room for good and hung, and was killed.
    pub hung_without_room: bool,
}

/// Runs duplicity with the passphrase and the target's secrets in its
/// environment (and nowhere else).
pub struct Duplicity<'a> {
    pub program: OsString,
    pub passphrase: &'a Passphrase,
    pub gnupg_home: PathBuf,
    pub cache_dir: PathBuf,
    /// What the target needs in duplicity's environment.
    pub target_environment: Vec<(&'static str, OsString)>,
}

impl<'a> Duplicity<'a> {
    /// `duplicity` from `PATH`, with `GNUPGHOME` under `backup/`, which is
    /// writable even when the service's sandbox makes `/root` read-only.
    pub fn locate(
        layout: &Layout,
        passphrase: &'a Passphrase,
        target: &Target,
    ) -> Result<Duplicity<'a>> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let Some(program) = find_in_path("duplicity", &path) else {
            bail!("duplicity is not installed (no duplicity in PATH): install it with `apt-get install duplicity`");
        };
        Ok(Duplicity {
            program: program.into_os_string(),
            passphrase,
            gnupg_home: layout.gnupg_home.clone(),
            cache_dir: layout.cache_dir.clone(),
            target_environment: target.environment(),
        })
    }

    /// Makes the GnuPG home and the archive dir private: gpg insists, and the
    /// archive dir holds the backups' file lists unencrypted.
    fn prepare_private_dirs(&self) -> Result<()> {
        for dir in [&self.gnupg_home, &self.cache_dir] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("Failed to create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("Failed to make {} private", dir.display()))?;
        }
        Ok(())
    }

    /// Runs `duplicity ARGS`, passing its output through and watching it
    /// for the archive lock and for verify's differences.
    pub fn run(&self, args: &[OsString]) -> Result<Outcome> {
        self.run_in(None, args)
    }

    /// Runs `duplicity ARGS` in the directory `cwd`, if given.
    pub fn run_in(&self, cwd: Option<&Path>, args: &[OsString]) -> Result<Outcome> {
        self.run_with(cwd, args, None)
    }

    /// Runs `duplicity ARGS` and keeps what it writes on its standard
    /// output (a listing) instead of passing it through.
    pub fn run_capturing(&self, args: &[OsString]) -> Result<(Outcome, Vec<u8>)> {
        let mut captured = Vec::new();
        let outcome = self.run_with(None, args, Some(&mut captured))?;
        Ok((outcome, captured))
    }

    /// Starts `duplicity ARGS` (in `cwd`) with its secrets in its
    /// environment and its output piped, saying so.
    fn spawn(&self, cwd: Option<&Path>, args: &[OsString]) -> Result<std::process::Child> {
        if watch::interrupted() {
            bail!("interrupted: duplicity was not started");
        }
        self.prepare_private_dirs()?;
        match cwd {
            Some(dir) => eprintln!(
                "mailbackup: running in {}: {}",
                dir.display(),
                display_args(&self.program, args)
            ),
            None => eprintln!("mailbackup: running {}", display_args(&self.program, args)),
        }
        let mut command = Command::new(&self.program);
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        if watch::own_group() {
            command.process_group(0);
        }
        command
            .args(args)
            .env("PASSPHRASE", self.passphrase.to_env_value())
            .env("GNUPGHOME", &self.gnupg_home)
            // Its messages in English, which is what is looked for in them.
            .env("LANGUAGE", "C")
            .envs(self.target_environment.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("Failed to start {}", Path::new(&self.program).display()))
    }

    fn run_with(
        &self,
        cwd: Option<&Path>,
        args: &[OsString],
        capture: Option<&mut Vec<u8>>,
    ) -> Result<Outcome> {
        let mut child = self.spawn(cwd, args)?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let running = watch::Running::start(child.id());
        let (failed, done) = (AtomicBool::new(false), AtomicBool::new(false));
        let (from_stdout, from_stderr, hung) = std::thread::scope(|s| {
            let out = s.spawn(|| match capture {
                Some(buffer) => relay_all(stdout, buffer, &failed),
                None => relay_all(stdout, std::io::stdout(), &failed),
            });
            let watcher = s.spawn(|| watch::end_if_hung(child.id(), &failed, &done, watch::GRACE));
            let err = relay_all(stderr, std::io::stderr(), &failed);
            let out = out.join().unwrap_or_default();
            done.store(true, Ordering::SeqCst);
            (out, err, watcher.join().unwrap_or(false))
        });
        let status = child.wait().context("Failed to wait for duplicity")?;
        drop(running);
        let locked_out = from_stdout.locked_out || from_stderr.locked_out;
        // The agent in GNUPGHOME belongs to the duplicity that holds the
        // lock when this one was turned away: ending it would fail that one.
        if !locked_out {
            self.stop_gpg_agent();
        }
        let code = match (status.code(), status.signal()) {
            (Some(code), _) => code.clamp(0, 255) as u8,
            (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
            (None, None) => 1,
        };
        let mut differences = from_stdout.differences;
        differences.extend(from_stderr.differences);
        let mut not_restored = from_stdout.not_restored;
        not_restored.extend(from_stderr.not_restored);
        Ok(Outcome {
            code,
            locked_out,
            differences,
            not_restored,
            hung_without_room: hung,
        })
    }

    /// gpg starts an agent in GNUPGHOME that outlives duplicity; end it.
    fn stop_gpg_agent(&self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.gnupg_home)
            .args(["--kill", "gpg-agent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The first executable file called `name` in the directories of `path`.
pub fn find_in_path(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// What duplicity's output said that mailbackup acts on.
#[derive(Debug, Default)]
struct Heard {
    locked_out: bool,
    differences: Vec<String>,
    not_restored: Vec<String>,
}

fn relay_all(from: Option<impl Read>, to: impl Write, failed: &AtomicBool) -> Heard {
    from.map(|f| relay(f, to, failed)).unwrap_or_default()
}

/// Copies duplicity's output line by line, noting what matters; sets
/// `failed` when it says it failed for good for lack of room.
fn relay(from: impl Read, mut to: impl Write, failed: &AtomicBool) -> Heard {
    let mut heard = Heard::default();
    for line in BufReader::new(from).split(b'\n') {
        let Ok(line) = line else { break };
        if watch::fatal_no_room(&line) {
            failed.store(true, Ordering::SeqCst);
        }
        heard.locked_out |= contains(&line, b"Another duplicity instance is already running");
        if let Some(rest) = line.strip_prefix(b"Difference found: ") {
            heard
                .differences
                .push(String::from_utf8_lossy(rest).into_owned());
        }
        if let Some(file) = not_restored(&line) {
            heard.not_restored.push(file);
        }
        let _ = to.write_all(&line);
        let _ = to.write_all(b"\n");
    }
    heard
}

/// The file of a line where duplicity says it could not restore one:
/// `Error 'WHY' patching FILE` or `Error 'WHY' processing FILE`, the
/// warnings it gives (and goes on, and exits 0) when writing a file fails.
fn not_restored(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"Error '")?;
    [&b"' patching "[..], &b"' processing "[..]]
        .iter()
        .filter_map(|sep| {
            let at = rest.windows(sep.len()).position(|w| w == *sep)?;
            Some(at + sep.len())
        })
        .min()
        .map(|start| String::from_utf8_lossy(&rest[start..]).into_owned())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A command line for the log. Arguments hold paths and options, never a
/// secret: those are in the environment.
pub fn display_args(program: &OsStr, args: &[OsString]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(Path::new("/home/user data"))
    }

    fn local() -> Target {
        crate::backend::Settings::default_for(&layout())
            .target
            .unwrap()
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn backup_command_line_is_the_reference_one() {
        assert_eq!(
            strings(backup_args(
                &layout(),
                &local(),
                BackupMode::Incremental,
                &Source::Live { include: vec![] }
            )),
            [
                "incr",
                "--archive-dir",
                "/home/user data/backup/cache",
                "--exclude",
                "/home/user data/backup",
                "--volsize",
                "250",
                "--allow-source-mismatch",
                "/home/user data",
                "file:///home/user data/backup/encrypted",
            ]
        );
    }

    #[test]
    fn included_directories_come_before_the_exclusion() {
        let args = strings(backup_args(
            &layout(),
            &local(),
            BackupMode::Full,
            &Source::Live {
                include: vec![PathBuf::from("/home/user data/backup/duplicity")],
            },
        ));
        assert_eq!(args[0], "full");
        assert_eq!(
            &args[3..7],
            [
                "--include",
                "/home/user data/backup/duplicity",
                "--exclude",
                "/home/user data/backup"
            ]
        );
    }

    #[test]
    fn a_snapshot_is_backed_up_in_the_place_of_the_data() {
        assert_eq!(
            strings(backup_args(
                &layout(),
                &local(),
                BackupMode::Full,
                &Source::Snapshot
            )),
            [
                "full",
                "--archive-dir",
                "/home/user data/backup/cache",
                "--volsize",
                "250",
                "--allow-source-mismatch",
                ".",
                "file:///home/user data/backup/encrypted",
            ]
        );
        assert_eq!(
            source_cwd(&layout(), &Source::Snapshot),
            Some(Path::new("/home/user data/backup/snapshot"))
        );
    }

    #[test]
    fn prune_never_cuts_after_the_newest_backup() {
        let day = 86_400_000_000i64;
        let now = 1_795_000_000_000_000;
        // Three days back, when the newest backup is younger.
        assert_eq!(
            prune_cutoff(3, now, Some(now - day)),
            1_795_000_000 - 3 * 86_400
        );
        // With 0 days, or a newest backup older than the days kept: the
        // newest backup's time, so that its chain stays whole.
        assert_eq!(
            prune_cutoff(0, now, Some(now - day)),
            1_795_000_000 - 86_400
        );
        assert_eq!(
            prune_cutoff(3, now, Some(now - 5 * day)),
            1_795_000_000 - 5 * 86_400
        );
        assert_eq!(prune_cutoff(0, now, None), 1_795_000_000);
    }

    #[test]
    fn prune_command_lines() {
        assert_eq!(
            strings(remove_older_than_args(&layout(), &local(), 1_795_000_000)),
            [
                "remove-older-than",
                "1795000000",
                "--archive-dir",
                "/home/user data/backup/cache",
                "--force",
                "file:///home/user data/backup/encrypted",
            ]
        );
        assert_eq!(
            strings(cleanup_args(&layout(), &local())),
            [
                "cleanup",
                "--archive-dir",
                "/home/user data/backup/cache",
                "--force",
                "file:///home/user data/backup/encrypted",
            ]
        );
    }

    #[test]
    fn files_duplicity_could_not_restore() {
        assert_eq!(
            not_restored(b"Error '[Errno 28] No space left on device' patching mail/a b"),
            Some("mail/a b".to_owned())
        );
        assert_eq!(
            not_restored(b"Error '[Errno 2] No such file: '/tmp/a'' processing www/x' patching y"),
            Some("www/x' patching y".to_owned())
        );
        assert_eq!(not_restored(b"Errors 0"), None);
        assert_eq!(not_restored(b"Error 'x' reading y"), None);
        let failed = AtomicBool::new(false);
        let heard = relay(
            &b"Last full backup date: none\nError 'disk full' patching mail/users.sqlite\n"[..],
            std::io::sink(),
            &failed,
        );
        assert_eq!(heard.not_restored, ["mail/users.sqlite"]);
        assert!(!failed.load(Ordering::SeqCst));
        relay(
            &b"Traceback (most recent call last):\nOSError: [Errno 28] No space left on device\n"[..],
            std::io::sink(),
            &failed,
        );
        assert!(failed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_time_to_the_minute_means_the_end_of_that_minute() {
        assert_eq!(time_arg("2026-11-20T03:00"), "2026-11-20T03:00:59");
        assert_eq!(time_arg("2026-11-20 03:00"), "2026-11-20T03:00:59");
        for as_is in [
            "3D",
            "2026-11-20",
            "2026-11-20T03:00:00",
            "2026-11-20T03:00:00Z",
            "20261120T030000Z",
            "11/20/2026",
            "2026-11-20T03:0x",
            "2026-11-20Ä3:00",
        ] {
            assert_eq!(time_arg(as_is), as_is);
        }
        let l = layout();
        assert_eq!(
            strings(list_args(&l, &local(), Some("2026-11-20 03:00")))[4],
            "2026-11-20T03:00:59"
        );
    }

    fn temp() -> TempSpace<'static> {
        TempSpace {
            dir: Path::new("/t"),
            volsize_mib: 1,
        }
    }

    #[test]
    fn restore_list_and_verify_command_lines() {
        let l = layout();
        assert_eq!(
            strings(restore_args(
                &l,
                &local(),
                Some("3D"),
                Some(Path::new("mail/a b")),
                Path::new("/tmp/r/mail/a b"),
                &TempSpace {
                    dir: Path::new("/tmp/.mailbackup-tmp-1"),
                    volsize_mib: 7
                },
            )),
            [
                "restore",
                "--archive-dir",
                "/home/user data/backup/cache",
                "--tempdir",
                "/tmp/.mailbackup-tmp-1",
                "--volsize",
                "7",
                "--time",
                "3D",
                "-r",
                "mail/a b",
                "file:///home/user data/backup/encrypted",
                "/tmp/r/mail/a b",
            ]
        );
        assert_eq!(
            strings(restore_args(
                &l,
                &local(),
                None,
                None,
                Path::new("/r"),
                &temp()
            ))
            .len(),
            9
        );
        assert_eq!(
            strings(list_args(&l, &local(), None)),
            [
                "list-current-files",
                "--archive-dir",
                "/home/user data/backup/cache",
                "file:///home/user data/backup/encrypted"
            ]
        );
        assert_eq!(
            strings(verify_args(&l, &local(), &Source::Snapshot))[4..],
            ["file:///home/user data/backup/encrypted", "."]
        );
        assert_eq!(
            strings(verify_args(&l, &local(), &Source::Live { include: vec![] })),
            [
                "verify",
                "--compare-data",
                "--archive-dir",
                "/home/user data/backup/cache",
                "--exclude",
                "/home/user data/backup",
                "file:///home/user data/backup/encrypted",
                "/home/user data",
            ]
        );
    }

    #[test]
    fn programs_are_found_in_path() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("duplicity");
        std::fs::write(&exe, "").unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.path()]).unwrap();
        assert_eq!(find_in_path("duplicity", &path), None, "not executable");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_in_path("duplicity", &path), Some(exe));
        assert_eq!(find_in_path("duplicity", OsStr::new("")), None);
    }

    #[test]
    fn a_remote_target_puts_its_options_before_its_url() {
        let ssh =
            crate::backend::SshFiles::new(Path::new("/root"), Path::new("/var/lib/mailbackup"));
        let target = crate::backend::Settings::parse(
            Path::new("/srv/backup/custom.yaml"),
            "target: rsync://u@h:2222//srv/b\n",
            &Layout::new(Path::new("/srv")),
            &ssh,
        )
        .unwrap()
        .target
        .unwrap();
        let l = Layout::new(Path::new("/srv"));
        let backup = strings(backup_args(
            &l,
            &target,
            BackupMode::Full,
            &Source::Snapshot,
        ));
        let n = backup.len();
        assert!(backup[n - 3].starts_with("--ssh-options=-oIdentityFile=/root/.ssh/id_rsa_miab "));
        assert_eq!(&backup[n - 2..], [".", "rsync://u@h:2222//srv/b"]);
        for args in [
            remove_older_than_args(&l, &target, 0),
            cleanup_args(&l, &target),
            list_args(&l, &target, None),
        ] {
            let args = strings(args);
            let n = args.len();
            assert!(args[n - 2].starts_with("--ssh-options="), "{args:?}");
            assert_eq!(args[n - 1], "rsync://u@h:2222//srv/b");
        }
        let restore = strings(restore_args(
            &l,
            &target,
            None,
            None,
            Path::new("/r"),
            &temp(),
        ));
        assert_eq!(
            &restore[restore.len() - 2..],
            ["rsync://u@h:2222//srv/b", "/r"]
        );
        let verify = strings(verify_args(&l, &target, &Source::Live { include: vec![] }));
        assert_eq!(
            &verify[verify.len() - 2..],
            ["rsync://u@h:2222//srv/b", "/srv"]
        );
    }

    #[test]
    fn log_lines_quote_spaces() {
        let args: Vec<OsString> = vec!["full".into(), "/a b".into(), "it's".into()];
        assert_eq!(
            display_args(OsStr::new("duplicity"), &args),
            r"duplicity full '/a b' 'it'\''s'"
        );
    }
}
