//! `mailbackup restore --mailbox`: one mailbox, or one folder of it, back
//! into the live mail store while dovecot and postfix run. duplicity
//! restores only the mailbox's directory (`-r`) into a scratch directory
//! beside it (same filesystem); the folders are then renamed into the live
//! Maildir under a new folder, each in one step, with the mailbox's owner.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{Datelike, Local, Offset, TimeZone};

use crate::backend::Target;
use crate::commands::restore_space::{self, DuplicityTemp};
use crate::config::{Config, Layout};
use crate::duplicity::inventory::Backup;
use crate::duplicity::{self, when, Duplicity};
use crate::maildir::{self, Address};
use crate::suggest;
use crate::sys::fs::rename_noreplace;

/// duplicity's exit code when the path given with `-r` is not in the backup.
const EXIT_PATH_NOT_FOUND: u8 = 19;

/// What a restore needs to know of the live mailbox.
struct Live {
    address: Address,
    /// `STORAGE_ROOT/mail/mailboxes/DOMAIN/USER`.
    dir: PathBuf,
    exists: bool,
    owner: Owner,
}

/// The owner and modes that restored files get: the live mailbox's.
#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
    dir_mode: u32,
    file_mode: u32,
}

pub fn run(
    config: &Config,
    layout: &Layout,
    target: &Target,
    address: &str,
    time: Option<&str>,
    folder: Option<&str>,
) -> Result<u8> {
    let address = Address::parse(address)?;
    let wanted = folder.map(maildir::folder_dir).transpose()?;
    let scope = wanted.clone().unwrap_or_else(|| "*".to_owned());
    let backup = choose_backup(target, time)?;
    let when = local_minute(&backup);
    let live = Live::find(layout, address)?;
    if let Some(into) = restored_already(&live, &backup, &scope) {
        eprintln!(
            "mailbackup: the backup of {when} was already restored into {} ({}): nothing done; \
             delete that folder to restore it again",
            live.address,
            if into.is_empty() {
                "the mailbox itself".to_owned()
            } else {
                format!("the folder {into:?}")
            }
        );
        return Ok(0);
    }
    let key = super::load_key(config)?;
    let duplicity = Duplicity::locate(layout, &key.passphrase, target)?;
    let scratch = Scratch::make(&live)?;
    let restored = scratch.path.join("mailbox");
    let code = restore_mailbox_dir(layout, target, &duplicity, &backup, &live, &restored)?;
    if code != 0 {
        return Ok(code);
    }
    let found = folders_in(&restored)?;
    let chosen = maildir::select_folders(&found, wanted.as_deref());
    if chosen.is_empty() {
        return Err(no_such_folder(
            folder.unwrap_or_default(),
            &found,
            &live.address,
            &when,
        ));
    }
    let placed = if live.exists {
        into_new_folder(&live, &restored, &scratch.path, &chosen, &backup)?
    } else {
        recreate(&live, &restored, &found, &chosen)?
    };
    note_restore(&live, &backup, &scope, &placed)?;
    tell_dovecot(&live.address, &placed);
    let messages: usize = chosen
        .iter()
        .map(|f| placed_count(&live.dir, &placed, f))
        .sum();
    eprintln!(
        "mailbackup: restored {} as of {when}: {} folder(s), {messages} message(s), {}",
        live.address,
        chosen.len(),
        if placed.is_empty() {
            "as the mailbox (it was not there)".to_owned()
        } else {
            format!("into the new folder {placed:?}; nothing that was there changed")
        }
    );
    Ok(0)
}

/// Restores the mailbox's directory of `backup` into `restored` (in the
/// scratch directory). Returns duplicity's exit code when it failed.
fn restore_mailbox_dir(
    layout: &Layout,
    target: &Target,
    duplicity: &Duplicity,
    backup: &Backup,
    live: &Live,
    restored: &Path,
) -> Result<u8> {
    let rel = live.address.relative_dir();
    let scratch = restored.parent().unwrap_or(restored);
    let time = Some(backup.date.as_str());
    // Named by the domain's directory: the scratch one is gone after.
    let domain = scratch.parent().unwrap_or(scratch);
    let need = restore_space::check_space(layout, target, Some(&rel), time, domain, scratch)?;
    let temp = DuplicityTemp::for_need(scratch, &need)?;
    let outcome = duplicity.run(&duplicity::restore_args(
        layout,
        target,
        Some(backup.date.as_str()),
        Some(&rel),
        restored,
        &temp.space(),
    ))?;
    drop(temp);
    if outcome.code == EXIT_PATH_NOT_FOUND {
        return Err(no_such_mailbox(
            layout,
            target,
            duplicity,
            backup,
            &live.address,
        ));
    }
    if outcome.locked_out {
        bail!(
            "duplicity's cache {} is in use (a backup is running): wait for it to finish, then restore again",
            layout.cache_dir.display()
        );
    }
    if outcome.code != 0 {
        eprintln!(
            "mailbackup: the restore failed ({}); {} is untouched",
            super::restore::why_it_failed(&outcome),
            live.dir.display()
        );
        return Ok(super::restore::exit_code(&outcome).max(1));
    }
    if !outcome.not_restored.is_empty() {
        eprintln!(
            "mailbackup: the restore failed ({} files not restored); {} is untouched",
            outcome.not_restored.len(),
            live.dir.display()
        );
        return Ok(1);
    }
    Ok(0)
}

impl Live {
    fn find(layout: &Layout, address: Address) -> Result<Live> {
        let dir = layout.storage_root.join(address.relative_dir());
        let (exists, owner) = match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => (true, Owner::of(&m)),
            Ok(_) => bail!(
                "{} is not a directory: move it away, then restore",
                dir.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A mailbox deleted since: it comes back with the owner of
                // the directories above it (dovecot's user, `mail`).
                let above = dir
                    .ancestors()
                    .skip(1)
                    .find_map(|a| fs::metadata(a).ok())
                    .with_context(|| {
                        format!("Failed to read the directories above {}", dir.display())
                    })?;
                let mut owner = Owner::of(&above);
                (owner.dir_mode, owner.file_mode) = (0o700, 0o600);
                (false, owner)
            }
            Err(e) => return Err(e).with_context(|| format!("Failed to read {}", dir.display())),
        };
        Ok(Live {
            address,
            dir,
            exists,
            owner,
        })
    }
}

impl Owner {
    fn of(meta: &fs::Metadata) -> Owner {
        let dir_mode = meta.mode() & 0o7777;
        Owner {
            uid: meta.uid(),
            gid: meta.gid(),
            dir_mode,
            file_mode: dir_mode & 0o666,
        }
    }

    /// Gives `path` and everything under it this owner and these modes.
    fn apply_tree(&self, path: &Path) -> Result<()> {
        let meta = fs::symlink_metadata(path)
            .with_context(|| format!("Failed to read {}", path.display()))?;
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("Failed to change the owner of {}", path.display()))?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = if meta.is_dir() {
            self.dir_mode
        } else {
            self.file_mode
        };
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("Failed to set the mode of {}", path.display()))?;
        if meta.is_dir() {
            for entry in
                fs::read_dir(path).with_context(|| format!("Failed to read {}", path.display()))?
            {
                self.apply_tree(&entry?.path())?;
            }
        }
        Ok(())
    }

    /// Only the owner, modes as they are: a mailbox recreated as it was.
    fn chown_tree(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("Failed to change the owner of {}", path.display()))?;
        if fs::symlink_metadata(path)?.is_dir() {
            for entry in
                fs::read_dir(path).with_context(|| format!("Failed to read {}", path.display()))?
            {
                self.chown_tree(&entry?.path())?;
            }
        }
        Ok(())
    }
}

/// The scratch directory, in the mailbox's domain directory: on the same
/// filesystem as the mailbox, so that folders move in by renaming, and
/// out of dovecot's sight. Removed when dropped.
struct Scratch {
    path: PathBuf,
    made_domain: Option<PathBuf>,
}

impl Scratch {
    fn make(live: &Live) -> Result<Scratch> {
        let domain = live
            .dir
            .parent()
            .context("the mailbox has no parent directory")?;
        let made_domain = if domain.exists() {
            None
        } else {
            fs::create_dir_all(domain)
                .with_context(|| format!("Failed to create {}", domain.display()))?;
            let mut owner = live.owner;
            owner.dir_mode = 0o700;
            owner.apply_tree(domain)?;
            Some(domain.to_owned())
        };
        let path = domain.join(format!(".mailbackup-restoring-{}", live.address.user));
        // What a killed restore left.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).with_context(|| format!("Failed to create {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("Failed to make {} private", path.display()))?;
        Ok(Scratch { path, made_domain })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        if let Some(domain) = &self.made_domain {
            // Only when nothing went in.
            let _ = fs::remove_dir(domain);
        }
    }
}

/// The standard (winter) offset of the local zone, in seconds east of
/// UTC: what duplicity assumes for a time without a zone.
fn standard_offset(now: i64) -> i64 {
    let year = Local
        .timestamp_opt(now, 0)
        .single()
        .map_or(2000, |d| d.year());
    [1, 7]
        .iter()
        .filter_map(|m| Local.with_ymd_and_hms(year, *m, 1, 0, 0, 0).earliest())
        .map(|d| i64::from(d.offset().fix().local_minus_utc()))
        .min()
        .unwrap_or(0)
}

/// The backup that `--time` names (the latest without), from the target's
/// listing: the folder is named after its date before duplicity runs.
pub(super) fn choose_backup(target: &Target, time: Option<&str>) -> Result<Backup> {
    let inventory = target.inventory()?;
    let now = chrono::Utc::now().timestamp();
    let at = match time {
        None => i64::MAX,
        Some(text) => match when::resolve_time(text, now, standard_offset(now)) {
            Some(at) => at,
            // The message every restore gives for it.
            None => {
                super::check_time_arg(time)?;
                bail!("--time {text:?} is not a time duplicity takes")
            }
        },
    };
    match when::backup_at(&inventory.backups, at) {
        Some(b) => Ok(b.clone()),
        None if inventory.backups.iter().any(|b| b.complete) => bail!(
            "no backup on {} was made at or before {}: the oldest is of {}",
            target.describe(),
            match time {
                // A day is its first minute, an age a time: say which.
                Some(text) => format!("{text} ({})", local_minute_at(at)),
                None => "now".to_owned(),
            },
            local_minute(
                inventory
                    .backups
                    .iter()
                    .rev()
                    .find(|b| b.complete)
                    .unwrap_or(&inventory.backups[0])
            )
        ),
        None => bail!(
            "{} holds no complete backup to restore from",
            target.describe()
        ),
    }
}

/// A backup's time as `status` shows it, in local time.
fn local_minute(backup: &Backup) -> String {
    Local
        .from_utc_datetime(&backup.date.datetime())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// A Unix time as `status` shows times: the local minute.
fn local_minute_at(time: i64) -> String {
    Local.timestamp_opt(time, 0).single().map_or_else(
        || time.to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// Where this mailbox's restores file says the same backup went, when
/// that folder (or the recreated mailbox) is still there.
fn restored_already(live: &Live, backup: &Backup, scope: &str) -> Option<String> {
    let text = fs::read_to_string(live.dir.join(maildir::RESTORES_FILE)).ok()?;
    maildir::restored_before(&text, backup.date.as_str(), scope)
        .into_iter()
        .find(|into| {
            into.is_empty()
                || live
                    .dir
                    .join(format!(".{}", maildir::mutf7_encode(into)))
                    .is_dir()
        })
}

/// The error for an address without a mailbox in the backup, naming the
/// mailboxes nearest to it.
fn no_such_mailbox(
    layout: &Layout,
    target: &Target,
    duplicity: &Duplicity,
    backup: &Backup,
    address: &Address,
) -> anyhow::Error {
    let listing = duplicity
        .run_capturing(&duplicity::list_args(
            layout,
            target,
            Some(backup.date.as_str()),
        ))
        .map(|(_, out)| String::from_utf8_lossy(&out).into_owned())
        .unwrap_or_default();
    let mailboxes = maildir::mailboxes_in_listing(&listing);
    let wanted = address.to_string();
    let hint = match suggest::closest(&wanted, &mailboxes, 3)[..] {
        [] => "it holds no mailboxes".to_owned(),
        ref near => format!("the closest it holds: {}", near.join(", ")),
    };
    anyhow!(
        "the backup of {} has no mailbox {wanted} (no {} in it): {hint}",
        local_minute(backup),
        address.relative_dir().display()
    )
}

fn no_such_folder(folder: &str, found: &[String], address: &Address, when: &str) -> anyhow::Error {
    let names: Vec<String> = found.iter().map(|f| maildir::folder_display(f)).collect();
    anyhow!(
        "the backup of {when} has no folder {folder:?} in {address}; the closest it holds: {}",
        suggest::closest(folder, &names, 3).join(", ")
    )
}

/// The Maildir++ folders of a mailbox directory: "" for INBOX (when it has
/// `cur/`), and the `.Name` directories.
fn folders_in(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    if dir.join("cur").is_dir() {
        found.push(String::new());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("Failed to read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if maildir::is_folder_dir(&name) && entry.file_type()?.is_dir() {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

/// The folders of the backup under a new folder of the live mailbox.
/// Returns the new folder's name.
fn into_new_folder(
    live: &Live,
    restored: &Path,
    scratch: &Path,
    chosen: &[String],
    backup: &Backup,
) -> Result<String> {
    let names: Vec<String> = fs::read_dir(&live.dir)
        .with_context(|| format!("Failed to read {}", live.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let local = Local.from_utc_datetime(&backup.date.datetime());
    let name = maildir::restored_folder_name(
        &local.format("%Y-%m-%d").to_string(),
        &local.format("%H:%M").to_string(),
        |n| {
            let dir = format!(".{}", maildir::mutf7_encode(n));
            names
                .iter()
                .any(|e| *e == dir || e.starts_with(&format!("{dir}.")))
        },
    );
    let into = format!(".{}", maildir::mutf7_encode(&name));
    let staging = scratch.join("folders");
    fs::create_dir(&staging).with_context(|| format!("Failed to create {}", staging.display()))?;
    let mut dirs = vec![into.clone()];
    make_folder(&staging.join(&into))?;
    for folder in chosen {
        let dest = maildir::restored_dir(&into, folder);
        move_folder(&restored.join(folder), &staging.join(&dest))?;
        dirs.push(dest);
    }
    for dir in &dirs {
        live.owner.apply_tree(&staging.join(dir))?;
    }
    for dir in &dirs {
        let (from, to) = (staging.join(dir), live.dir.join(dir));
        rename_noreplace(&from, &to)
            .with_context(|| format!("Failed to move {} to {}", from.display(), to.display()))?;
    }
    subscribe(live, &dirs)?;
    Ok(name)
}

/// An empty Maildir++ folder.
fn make_folder(dir: &Path) -> Result<()> {
    for sub in ["", "cur", "new", "tmp"] {
        let d = dir.join(sub);
        fs::create_dir(&d).with_context(|| format!("Failed to create {}", d.display()))?;
    }
    // dovecot marks its folders so.
    fs::write(dir.join("maildirfolder"), b"")
        .with_context(|| format!("Failed to write {}/maildirfolder", dir.display()))
}

/// The messages (cur/, new/, with their flags in their names) and keyword
/// names of the folder `from` into a new folder `to`. dovecot's indexes and
/// UID list stay behind: it numbers the messages of a new folder afresh.
fn move_folder(from: &Path, to: &Path) -> Result<()> {
    make_folder(to)?;
    for sub in ["cur", "new"] {
        let (src, dst) = (from.join(sub), to.join(sub));
        if !src.is_dir() {
            continue;
        }
        for entry in
            fs::read_dir(&src).with_context(|| format!("Failed to read {}", src.display()))?
        {
            let entry = entry?;
            let target = dst.join(entry.file_name());
            fs::rename(entry.path(), &target).with_context(|| {
                format!(
                    "Failed to move {} to {}",
                    entry.path().display(),
                    target.display()
                )
            })?;
        }
    }
    let keywords = from.join("dovecot-keywords");
    if keywords.exists() {
        fs::rename(&keywords, to.join("dovecot-keywords"))
            .with_context(|| format!("Failed to move {}", keywords.display()))?;
    }
    Ok(())
}

/// The mailbox as it was, without the folders not asked for, in the place
/// of the deleted one. Returns "" (no new folder).
fn recreate(live: &Live, restored: &Path, found: &[String], chosen: &[String]) -> Result<String> {
    for folder in found.iter().filter(|f| !chosen.contains(f)) {
        if folder.is_empty() {
            for sub in ["cur", "new"] {
                let d = restored.join(sub);
                fs::remove_dir_all(&d)
                    .and_then(|()| fs::create_dir(&d))
                    .with_context(|| format!("Failed to empty {}", d.display()))?;
            }
        } else {
            let d = restored.join(folder);
            fs::remove_dir_all(&d).with_context(|| format!("Failed to remove {}", d.display()))?;
        }
    }
    // The folder list's index would name folders left out; dovecot
    // rebuilds it.
    for entry in
        fs::read_dir(restored).with_context(|| format!("Failed to read {}", restored.display()))?
    {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("dovecot.list.index")
        {
            fs::remove_file(entry.path())
                .with_context(|| format!("Failed to remove {}", entry.path().display()))?;
        }
    }
    live.owner.chown_tree(restored)?;
    rename_noreplace(restored, &live.dir).with_context(|| {
        format!(
            "Failed to move {} to {}",
            restored.display(),
            live.dir.display()
        )
    })?;
    Ok(String::new())
}

/// Adds the folders to the mailbox's `subscriptions`, under dovecot's own
/// lock protocol: write `subscriptions.lock` (created exclusively), then
/// rename it over the file.
fn subscribe(live: &Live, dirs: &[String]) -> Result<()> {
    let path = live.dir.join("subscriptions");
    let lock = live.dir.join("subscriptions.lock");
    let mut file = None;
    for _ in 0..100 {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(live.owner.file_mode)
            .open(&lock)
        {
            Ok(f) => {
                file = Some(f);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(e) => {
                return Err(e).with_context(|| format!("Failed to create {}", lock.display()))
            }
        }
    }
    let mut file = file.with_context(|| {
        format!(
            "{} stayed locked for 10 s: subscribe to the restored folders in the mail client",
            lock.display()
        )
    })?;
    let written = (|| {
        let existing = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("Failed to read {}", path.display())),
        };
        file.write_all(maildir::add_subscriptions(&existing, dirs).as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("Failed to write {}", lock.display()))?;
        std::os::unix::fs::fchown(&file, Some(live.owner.uid), Some(live.owner.gid))
            .with_context(|| format!("Failed to change the owner of {}", lock.display()))?;
        fs::rename(&lock, &path)
            .with_context(|| format!("Failed to rename {} to {}", lock.display(), path.display()))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&lock);
    }
    written
}

/// Notes the restore in the mailbox's restores file (see `restored_already`).
fn note_restore(live: &Live, backup: &Backup, scope: &str, into: &str) -> Result<()> {
    let path = live.dir.join(maildir::RESTORES_FILE);
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(live.owner.file_mode)
        .open(&path)
        .with_context(|| format!("Failed to open {}", path.display()))?;
    file.write_all(maildir::restores_line(backup.date.as_str(), scope, into).as_bytes())
        .with_context(|| format!("Failed to write {}", path.display()))?;
    std::os::unix::fs::fchown(&file, Some(live.owner.uid), Some(live.owner.gid))
        .with_context(|| format!("Failed to change the owner of {}", path.display()))
}

/// How many messages a restored folder holds now.
fn placed_count(mailbox: &Path, placed: &str, folder: &str) -> usize {
    let dir = if placed.is_empty() {
        mailbox.join(folder)
    } else {
        mailbox.join(maildir::restored_dir(
            &format!(".{}", maildir::mutf7_encode(placed)),
            folder,
        ))
    };
    ["cur", "new"]
        .iter()
        .filter_map(|s| fs::read_dir(dir.join(s)).ok())
        .map(|d| d.count())
        .sum()
}

/// dovecot finds new Maildir folders by itself; `doveadm force-resync`
/// makes sure that its indexes of them (and of the folder list) are
/// current for sessions that are logged in. Without doveadm (no dovecot
/// here), nothing to do; a failure is a warning: the mail is in place.
fn tell_dovecot(address: &Address, placed: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(doveadm) = duplicity::find_in_path("doveadm", &path) else {
        return;
    };
    let pattern = if placed.is_empty() {
        "*".to_owned()
    } else {
        format!("{placed}*")
    };
    let out = Command::new(&doveadm)
        .args(["force-resync", "-u"])
        .arg(address.to_string())
        .arg(&pattern)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "mailbackup: warning: doveadm force-resync -u {address} {pattern:?} failed ({}): {}; \
             the mail is in place, dovecot finds it at the next login",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!(
            "mailbackup: warning: could not run {}: {e}",
            doveadm.display()
        ),
    }
}
