//! `mailbackup restore`: the backup back into a directory, or into place.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::backend::Target;
use crate::commands::install::Choices;
use crate::commands::restore_space::{check_space, temp_parent, DuplicityTemp, Need};
use crate::config::{Config, Layout};
use crate::duplicity::{self, Duplicity, Outcome};
use crate::systemd;
use crate::systemd::units::{self, DEFAULT_SERVICES, SERVICE};

/// Restore the backup, or part of it, into a directory or in place.
///
/// With --to, restores STORAGE_ROOT as of the latest backup (or --time) into
/// DIR, which must not exist or be empty; --path restores one file or
/// directory of it, to the same place under DIR. The key and the archive dir
/// are found as `run` finds them: you never type the passphrase.
///
/// With --in-place, restores into a new directory beside STORAGE_ROOT, then
/// stops the mail services, swaps the restored tree in (the current one is
/// kept, renamed STORAGE_ROOT.before-restore-TIME, and its backup/ moves to
/// the new tree), and starts the services again, also when a step fails.
///
/// With --mailbox, puts one mailbox (or, with --folder, one folder and its
/// subfolders) back into the live mail store while the mail runs: into a
/// new folder "Restored DATE" (the date of the backup) of that mailbox,
/// subscribed, with every message and its flags, owned like the mailbox.
/// Nothing that is in the mailbox now is changed. duplicity reads only the
/// mailbox's directory. A mailbox deleted since the backup is recreated as
/// it was. Restoring the same backup again says where it went and stops.
///
/// While a restore runs, a backup started by the timer refuses before it
/// stops the mail, and names the restore; so does a second restore.
///
/// A restore is refused up front when the disk it writes to lacks room for
/// the files and duplicity's temporary files (the volumes it fetches, the
/// changed files it rebuilds), which go beside the restored tree on that
/// disk rather than in /tmp; into a mount point, to TMPDIR. Ctrl-C ends
/// duplicity and removes what the restore wrote (a second Ctrl-C kills it).
///
/// Examples:
///   mailbackup restore --mailbox alice@example.com --time 1D
///   mailbackup restore --mailbox alice@example.com --folder Invoices --time 2026-12-02
///   mailbackup restore --to /root/restored --path mail/mailboxes/example.com/alice
///   mailbackup restore --to /root/yesterday --time 1D
///   mailbackup restore --in-place --time 2026-11-20
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct RestoreArgs {
    /// Restore into this directory (new or empty).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present_any = ["in_place", "mailbox"],
        conflicts_with_all = ["in_place", "mailbox"]
    )]
    pub to: Option<PathBuf>,

    /// Put this address's mailbox back into the live mail store, into a new
    /// folder "Restored DATE" of it.
    #[arg(long, value_name = "ADDRESS", conflicts_with_all = ["in_place", "path"])]
    pub mailbox: Option<String>,

    /// With --mailbox: only this folder and its subfolders (Invoices,
    /// Work/2024, INBOX).
    #[arg(
        long,
        value_name = "NAME",
        requires = "mailbox",
        conflicts_with_all = ["to", "in_place"]
    )]
    pub folder: Option<String>,

    /// Replace the live STORAGE_ROOT with the backup, keeping the current tree.
    #[arg(long)]
    pub in_place: bool,

    /// The backup to restore: any time duplicity takes (3D, 2026-11-20, ...), or a minute as `status` shows it ('2026-11-20 03:00') [default: the latest]
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,

    /// Only this file or directory: relative to STORAGE_ROOT, or absolute inside it.
    #[arg(long, value_name = "REL", conflicts_with = "in_place")]
    pub path: Option<PathBuf>,

    /// Do not ask before an in-place restore.
    #[arg(long, requires = "in_place")]
    pub yes: bool,

    /// With --in-place: the services stopped during the swap ("" for none)
    /// [default: those chosen with `mailbackup install --services`, else
    /// dovecot.service postfix.service]
    #[arg(long, value_name = "UNITS", value_delimiter = ' ', num_args = 0..)]
    pub services: Option<Vec<String>>,
}

pub fn run(config_path: &Path, args: &RestoreArgs) -> Result<u8> {
    super::check_time_arg(args.time.as_deref())?;
    let config = Config::load(config_path)?;
    if let Some(note) = config.symlink_note() {
        eprintln!("{note}");
    }
    let layout = config.layout();
    let target = super::load_settings(&config)?.active_target()?;
    let what = if args.mailbox.is_some() {
        "mailbackup restore --mailbox"
    } else if args.in_place {
        "mailbackup restore --in-place"
    } else {
        "mailbackup restore --to"
    };
    let _held = super::hold_restore_lock(&layout, what)?;
    // Ctrl-C ends duplicity, and this cleans up after it.
    duplicity::watch::pass_signals_on()?;
    if let Some(address) = &args.mailbox {
        return super::restore_mailbox::run(
            &config,
            &layout,
            &target,
            address,
            args.time.as_deref(),
            args.folder.as_deref(),
        );
    }
    if args.time.is_some() {
        // duplicity would restore the oldest backup for a time before it.
        super::restore_mailbox::choose_backup(&target, args.time.as_deref())?;
    }
    match &args.to {
        Some(dir) => restore_to(&config, &layout, &target, dir, args),
        None => restore_in_place(&config, &layout, &target, args),
    }
}

/// A path inside STORAGE_ROOT, as duplicity names it: relative, no `..`.
/// (`restore --path` takes an absolute one inside STORAGE_ROOT too: it is
/// made relative first.)
pub fn relative_path(path: &Path) -> Result<PathBuf> {
    let clean: PathBuf = path
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    if clean.as_os_str().is_empty()
        || !clean
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        bail!(
            "--path {} must be a path inside STORAGE_ROOT, relative to it (like mail/mailboxes) or absolute",
            path.display()
        );
    }
    Ok(clean)
}

fn restore_to(
    config: &Config,
    layout: &Layout,
    target: &Target,
    dir: &Path,
    args: &RestoreArgs,
) -> Result<u8> {
    let path = args
        .path
        .as_deref()
        .map(|p| relative_path(p.strip_prefix(&layout.storage_root).unwrap_or(p)))
        .transpose()?;
    let empty_dir_exists = match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none())
    {
        Ok(false) => bail!(
            "{} is not empty: restore into a new or empty directory",
            dir.display()
        ),
        Ok(true) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(e).with_context(|| format!("{} cannot be restored into", dir.display()))
        }
    };
    let dest = match &path {
        Some(p) => dir.join(p),
        None => dir.to_owned(),
    };
    let temp_parent = temp_parent(dir)?;
    let need = check_space(
        layout,
        target,
        path.as_deref(),
        args.time.as_deref(),
        &dest,
        &temp_parent,
    )?;
    let dir_before = std::fs::metadata(dir).ok();
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("Failed to create {}", parent.display()))?;
    }
    let key = super::load_key(config)?;
    let temp = DuplicityTemp::for_need(&temp_parent, &need)?;
    let mut restore = duplicity::restore_args(
        layout,
        target,
        args.time.as_deref(),
        path.as_deref(),
        &dest,
        &temp.space(),
    );
    if empty_dir_exists && path.is_none() {
        // Into the directory the operator made (or mounted), which stays:
        // duplicity refuses an existing target without --force.
        restore.insert(1, "--force".into());
    }
    let outcome = Duplicity::locate(layout, &key.passphrase, target)?.run(&restore)?;
    drop(temp);
    if outcome.code != 0 {
        clean_after_failure(dir, dir_before.as_ref(), &outcome);
        return Ok(exit_code(&outcome));
    }
    if !outcome.not_restored.is_empty() {
        eprintln!(
            "mailbackup: the restore is incomplete: duplicity could not restore {} (see its errors \
             above; a full disk, or a full temporary directory, where it patches files); what it \
             did restore is in {}",
            list_files(&outcome.not_restored),
            dest.display()
        );
        return Ok(1);
    }
    eprintln!("mailbackup: restored into {}", dest.display());
    Ok(0)
}

/// After a failed restore into `dir`: empties it again when it was there
/// (`before`), else removes it; and says so.
fn clean_after_failure(dir: &Path, before: Option<&std::fs::Metadata>, outcome: &Outcome) {
    let cleaned = match before {
        Some(before) => empty_again(dir, before),
        None => match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    };
    eprintln!(
        "mailbackup: the restore failed ({}); {}",
        why_it_failed(outcome),
        match (cleaned, before) {
            (Ok(()), Some(_)) => format!("{} is empty again", dir.display()),
            (Ok(()), None) => format!("removed what it wrote, and {}", dir.display()),
            (Err(e), _) => format!("what it wrote is left in {} ({e})", dir.display()),
        }
    );
}

/// The exit code of a restore that duplicity failed: 130 when it was
/// interrupted (as a shell reports Ctrl-C), else duplicity's.
pub(super) fn exit_code(outcome: &Outcome) -> u8 {
    if duplicity::watch::interrupted() {
        130
    } else {
        outcome.code
    }
}

/// Why duplicity ended badly, for a message.
pub(super) fn why_it_failed(outcome: &Outcome) -> String {
    if outcome.hung_without_room {
        format!(
            "duplicity ran out of room and hung, and was stopped after {} s; a file deleted \
             since the backup is not counted in the room a restore checks for",
            duplicity::watch::GRACE.as_secs()
        )
    } else if duplicity::watch::interrupted() {
        "interrupted".to_owned()
    } else {
        format!("duplicity exit code {}", outcome.code)
    }
}

/// Files for a message: the first few, and how many more.
fn list_files(files: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = files
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > SHOWN {
        text.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    text
}

/// Removes what a failed restore wrote into the directory `dir`, which was
/// empty before, and gives it back the mode and owner it had.
fn empty_again(dir: &Path, before: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    std::os::unix::fs::chown(dir, Some(before.uid()), Some(before.gid()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(before.mode() & 0o7777))
}

/// The names beside STORAGE_ROOT that an in-place restore uses.
pub fn in_place_paths(root: &Path, stamp: &str) -> (PathBuf, PathBuf) {
    let name = root.file_name().unwrap_or_default().to_string_lossy();
    (
        root.with_file_name(format!("{name}.restoring-{stamp}")),
        root.with_file_name(format!("{name}.before-restore-{stamp}")),
    )
}

fn restore_in_place(
    config: &Config,
    layout: &Layout,
    target: &Target,
    args: &RestoreArgs,
) -> Result<u8> {
    let root = &layout.storage_root;
    let services = services_to_stop(args)?;
    refuse_while_a_backup_runs()?;
    refuse_a_mount_point(root)?;
    let key = super::load_key(config)?;
    let duplicity = Duplicity::locate(layout, &key.passphrase, target)?;
    let parent = root.parent().unwrap_or(Path::new("/"));
    let need = check_space(layout, target, None, args.time.as_deref(), root, parent)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let (restoring, previous) = in_place_paths(root, &stamp);
    if !args.yes && !confirm(root, args.time.as_deref(), &previous)? {
        eprintln!("mailbackup: nothing restored");
        return Ok(1);
    }
    // The restore itself, while the mail runs on: a failure here leaves the
    // live data untouched.
    let code = restore_beside(layout, target, &duplicity, args, &restoring, &need)?;
    if code != 0 {
        return Ok(code);
    }
    if duplicity::watch::interrupted() {
        let _ = std::fs::remove_dir_all(&restoring);
        eprintln!(
            "mailbackup: interrupted before the swap; {} is untouched",
            root.display()
        );
        return Ok(130);
    }
    let (swapped, started) = duplicity::watch::unbroken(|| {
        let stopped = stop_services(&services);
        let swapped = stopped.and_then(|()| swap(root, &restoring, &previous, &layout.backup_dir));
        (swapped, start_services(&services))
    });
    let aside =
        swapped.with_context(|| format!("The restored tree is kept in {}", restoring.display()))?;
    started?;
    if let Some(aside) = aside {
        eprintln!(
            "mailbackup: the backup held a backup/ directory of its own (the old unencrypted \
             backups of the 2014 layout, which the encrypted backup also holds): it is in {}",
            aside.display()
        );
    }
    eprintln!(
        "mailbackup: restored {} from the backup; the data it replaced is in {}",
        root.display(),
        previous.display()
    );
    Ok(0)
}

/// The units an in-place restore stops: --services, else those installed.
fn services_to_stop(args: &RestoreArgs) -> Result<Vec<String>> {
    args.services
        .clone()
        .unwrap_or_else(installed_services)
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| units::service_name(s))
        .collect()
}

fn refuse_while_a_backup_runs() -> Result<()> {
    if let Some(state) = systemd::active_state(SERVICE) {
        if matches!(
            state.as_str(),
            "active" | "activating" | "deactivating" | "reloading"
        ) {
            bail!(
                "a backup is running ({SERVICE} is {state}): wait for it to finish, then restore"
            );
        }
    }
    Ok(())
}

/// An in-place restore renames STORAGE_ROOT, which a mount point refuses.
fn refuse_a_mount_point(root: &Path) -> Result<()> {
    let parent = root
        .parent()
        .context("STORAGE_ROOT has no parent directory")?;
    let root_dev = std::fs::metadata(root)
        .with_context(|| format!("Failed to read {}", root.display()))?
        .dev();
    let parent_dev = std::fs::metadata(parent)
        .with_context(|| format!("Failed to read {}", parent.display()))?
        .dev();
    if root_dev != parent_dev {
        bail!(
            "{} is a mount point, which an in-place restore cannot swap: restore with --to and copy the files back",
            root.display()
        );
    }
    Ok(())
}

/// Restores the whole backup into `restoring`, beside STORAGE_ROOT. On a
/// failure, removes it and returns the exit code (0 when all went well).
fn restore_beside(
    layout: &Layout,
    target: &Target,
    duplicity: &Duplicity,
    args: &RestoreArgs,
    restoring: &Path,
    need: &Need,
) -> Result<u8> {
    let root = &layout.storage_root;
    let parent = restoring.parent().unwrap_or(Path::new("/"));
    let temp = DuplicityTemp::for_need(parent, need)?;
    let outcome = duplicity.run(&duplicity::restore_args(
        layout,
        target,
        args.time.as_deref(),
        None,
        restoring,
        &temp.space(),
    ))?;
    drop(temp);
    if outcome.code != 0 {
        let _ = std::fs::remove_dir_all(restoring);
        eprintln!(
            "mailbackup: the restore failed ({}); {} is untouched",
            why_it_failed(&outcome),
            root.display()
        );
        return Ok(exit_code(&outcome));
    }
    if !outcome.not_restored.is_empty() {
        let _ = std::fs::remove_dir_all(restoring);
        eprintln!(
            "mailbackup: the restore is incomplete: duplicity could not restore {} (see its errors \
             above; a full disk, or a full temporary directory, where it patches files); {} is untouched",
            list_files(&outcome.not_restored),
            root.display()
        );
        return Ok(1);
    }
    Ok(0)
}

fn confirm(root: &Path, time: Option<&str>, previous: &Path) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "an in-place restore replaces {}: confirm with --yes",
            root.display()
        );
    }
    eprint!(
        "Replace {} with the backup of {}? The current data is kept in {}. Type yes to go on: ",
        root.display(),
        time.unwrap_or("the latest backup"),
        previous.display()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("Failed to read the answer")?;
    Ok(answer.trim() == "yes")
}

/// The services that `mailbackup install --services` chose, as the
/// installed backup unit records them, or Mail-in-a-Box's two.
fn installed_services() -> Vec<String> {
    let unit = Path::new(systemd::SYSTEM_UNIT_DIR).join(SERVICE);
    std::fs::read_to_string(unit)
        .ok()
        .and_then(|text| Choices::recorded_in(&text))
        .and_then(|c| c.services)
        .unwrap_or_else(|| DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect())
}

fn stop_services(services: &[String]) -> Result<()> {
    for s in services {
        systemd::systemctl(&["stop", s])?;
    }
    Ok(())
}

fn start_services(services: &[String]) -> Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    let mut args = vec!["start"];
    args.extend(services.iter().map(String::as_str));
    systemd::systemctl(&args)
}

/// Puts `restoring` in the place of `root`, which becomes `previous`, and
/// moves the backup directory over. A backup made while the 2014 layout was
/// migrated holds a `backup/` of its own (the old unencrypted backups, also
/// inside the encrypted one): it goes to `previous` as `backup.restored`.
/// Undoes what it did when a step fails. Returns where that one went.
fn swap(
    root: &Path,
    restoring: &Path,
    previous: &Path,
    backup_dir: &Path,
) -> Result<Option<PathBuf>> {
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to)
            .with_context(|| format!("Failed to rename {} to {}", from.display(), to.display()))
    };
    let name = backup_dir.file_name().unwrap_or_default();
    let restored_backup = restoring.join(name);
    let aside = previous.join(format!("{}.restored", name.to_string_lossy()));
    let old_backup = previous.join(name);
    let mut done: Vec<(&Path, &Path)> = Vec::new();
    let mut step = |from, to| rename(from, to).map(|()| done.push((from, to)));
    let result = (|| {
        step(root, previous)?;
        let moved_aside = restored_backup.exists();
        if moved_aside {
            step(&restored_backup, &aside)?;
        }
        step(restoring, root)?;
        if old_backup.exists() {
            step(&old_backup, backup_dir)?;
        }
        Ok(moved_aside.then(|| aside.clone()))
    })();
    if result.is_err() {
        for (from, to) in done.iter().rev() {
            rename(to, from)?;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_storage_root() {
        assert_eq!(
            relative_path(Path::new("mail/x")).unwrap(),
            Path::new("mail/x")
        );
        assert_eq!(
            relative_path(Path::new("./mail/x/")).unwrap(),
            Path::new("mail/x")
        );
        for bad in ["/etc/passwd", "../x", "mail/../../x", ".", ""] {
            assert!(relative_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn in_place_names_sit_beside_the_root() {
        let (restoring, previous) =
            in_place_paths(Path::new("/home/user-data"), "20261126T070000Z");
        assert_eq!(
            restoring,
            Path::new("/home/user-data.restoring-20261126T070000Z")
        );
        assert_eq!(
            previous,
            Path::new("/home/user-data.before-restore-20261126T070000Z")
        );
    }
}
