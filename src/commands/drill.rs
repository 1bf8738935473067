//! `mailbackup drill`: restore a sample of the latest backup from the
//! target alone, as a new box would, and compare it with the live files.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::backend::Target;
use crate::commands::restore_space::{largest_volume_mib, DuplicityTemp};
use crate::config::{Config, Layout};
use crate::drill::compare::{compare, Comparison};
use crate::drill::{bytes_read, next_mailbox};
use crate::duplicity::backup_set::{parse_set_name, Part, Stamp};
use crate::duplicity::manifest::{self, VolumeRange};
use crate::duplicity::{self, Duplicity, EXIT_NOT_IN_BACKUP};
use crate::status::history::{DrillFindings, History, Operation};
use crate::status::publish::{self, Timed};

/// The database of users and aliases, restored by every drill.
const USERS_DB: &str = "mail/users.sqlite";

/// Mailboxes tried, when the chosen ones are newer than the backup.
const TRIES: usize = 3;

/// Restore one mailbox and the users' database from the target, and compare.
///
/// Restores, from the target alone (a new, empty archive directory and
/// GnuPG home: no cache), the latest backup's copy of one mailbox, a
/// different one each time (in turn; the history records which), and of
/// mail/users.sqlite, as a new box with only the key and custom.yaml
/// would. Each restored file must match the live one byte for byte where
/// the live file has not changed since the backup's data was taken (its
/// inode's change time is older); the others are counted. It reads the
/// manifests and signatures of the latest chain and the volumes that hold
/// the sample: at most one or two volumes (250 MB each) per backup in the
/// chain. Exits 0 when all matched, 1 when something differs, or
/// duplicity's exit code when the restore failed.
///
/// Examples:
///   mailbackup drill
///   mailbackup drill --mailbox example.com/alice
///   systemctl start mailbackup-drill.service
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct DrillArgs {
    /// The mailbox to restore, DOMAIN/USER under mail/mailboxes [default: the next in turn]
    #[arg(long, value_name = "DOMAIN/USER")]
    pub mailbox: Option<String>,
}

/// What a drill found.
struct Drilled {
    code: u8,
    findings: DrillFindings,
}

pub fn run(config_path: &Path, args: &DrillArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let layout = config.layout();
    let target = super::load_settings(&config)?.active_target()?;
    let timed = Timed::start(Operation::Drill);
    let result = drill(&config, &layout, &target, args);
    if let Err(e) = std::fs::remove_dir_all(&layout.drill_dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!(
                "mailbackup: warning: could not remove {}: {e}",
                layout.drill_dir.display()
            );
        }
    }
    let (code, findings) = match &result {
        Ok(d) => (d.code, d.findings.clone()),
        Err(e) => (
            1,
            DrillFindings {
                summary: format!("the drill failed: {e:#}"),
                ..Default::default()
            },
        ),
    };
    publish::finished(&layout, Some(&target), &timed, code, |h| {
        h.drill_findings = Some(findings);
    });
    let drilled = result?;
    eprintln!("mailbackup: {}", drilled.findings.summary);
    Ok(drilled.code)
}

fn drill(config: &Config, layout: &Layout, target: &Target, args: &DrillArgs) -> Result<Drilled> {
    let inventory = target.inventory()?;
    let volume_mib = largest_volume_mib(inventory.newest_chain(), &inventory.files);
    let Some(newest) = inventory.newest_chain().first().map(|b| b.date) else {
        bail!(
            "there is no complete backup in {} to drill",
            target.describe()
        );
    };
    let history = History::load(&layout.history)?;
    let cutoff = cutoff(&history, newest);
    let key = super::load_key(config)?;
    let work = fresh_work_dir(layout)?;
    let mut duplicity = Duplicity::locate(layout, &key.passphrase, target)?;
    duplicity.gnupg_home = work.join("gnupg");
    duplicity.cache_dir = work.join("archive");
    let restored = work.join("restored");
    let candidates = mailbox_candidates(layout, args, &history)?;
    let mut mailbox = None;
    for candidate in candidates.iter().take(TRIES) {
        match restore(&duplicity, target, volume_mib, &restored, candidate)? {
            0 => {
                mailbox = Some(candidate.clone());
                break;
            }
            EXIT_NOT_IN_BACKUP if args.mailbox.is_none() => eprintln!(
                "mailbackup: {} is newer than the backup: taking the next mailbox",
                candidate.display()
            ),
            code => return Ok(restore_failed(candidate, code)),
        }
    }
    let code = restore(
        &duplicity,
        target,
        volume_mib,
        &restored,
        Path::new(USERS_DB),
    )?;
    if code != 0 {
        return Ok(restore_failed(Path::new(USERS_DB), code));
    }
    let mut sample: Vec<&Path> = vec![Path::new(USERS_DB)];
    sample.extend(mailbox.as_deref());
    let read = bytes_read(&inventory, &sample, |t| {
        local_manifest(&duplicity.cache_dir, t)
    });
    judge(
        layout,
        &restored,
        &sample,
        cutoff,
        read,
        mailbox.clone(),
        newest,
    )
}

/// When the newest backup's data was taken: as the history says when the
/// backup was made from this box, else the set's own time.
fn cutoff(history: &History, newest: Stamp) -> f64 {
    let set_time = newest.datetime().and_utc().timestamp();
    match history.backed_up {
        Some(b) if b.run_started - 1 <= set_time && set_time <= b.run_ended + 1 => b.data_as_of,
        _ => set_time as f64,
    }
}

/// `backup/drill/`, new and private: the archive dir, GnuPG home and the
/// restored files. One left by an interrupted drill is removed first.
fn fresh_work_dir(layout: &Layout) -> Result<PathBuf> {
    let work = layout.drill_dir.clone();
    match std::fs::remove_dir_all(&work) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e)
                .with_context(|| format!("Failed to remove the drill's old {}", work.display()));
        }
        _ => {}
    }
    for dir in [
        &work,
        &work.join("archive"),
        &work.join("gnupg"),
        &work.join("restored"),
    ] {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    Ok(work)
}

/// The mailboxes to try, in order: the one asked for, or those of the
/// live store from the one after the last drill's.
fn mailbox_candidates(
    layout: &Layout,
    args: &DrillArgs,
    history: &History,
) -> Result<Vec<PathBuf>> {
    let root = PathBuf::from("mail/mailboxes");
    if let Some(m) = &args.mailbox {
        let rel = super::restore::relative_path(Path::new(m))?;
        return Ok(vec![root.join(rel)]);
    }
    let mut all = Vec::new();
    let dir = layout.storage_root.join(&root);
    for domain in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        for user in std::fs::read_dir(domain.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if user.file_type().is_ok_and(|t| t.is_dir()) {
                all.push(
                    root.join(domain.file_name())
                        .join(user.file_name())
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    all.sort();
    let previous = history.drill_findings.as_ref().map(|f| f.mailbox.as_str());
    let Some(first) = next_mailbox(&all, previous) else {
        return Ok(Vec::new());
    };
    let at = all.iter().position(|m| m == first).unwrap_or(0);
    Ok(all[at..]
        .iter()
        .chain(&all[..at])
        .map(PathBuf::from)
        .collect())
}

fn restore(
    duplicity: &Duplicity<'_>,
    target: &Target,
    volume_mib: u64,
    restored: &Path,
    rel: &Path,
) -> Result<u8> {
    let dest = restored.join(rel);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("Failed to create {}", parent.display()))?;
    }
    // In the drill's directory, not in /tmp (a small tmpfs on Debian 13).
    let temp = DuplicityTemp::make(restored.parent().unwrap_or(restored), volume_mib)?;
    let outcome = duplicity.run(&duplicity::drill_restore_args(
        &duplicity.cache_dir,
        target,
        rel,
        &dest,
        &temp.space(),
    ))?;
    if outcome.code == 0 && !outcome.not_restored.is_empty() {
        return Ok(1);
    }
    Ok(outcome.code)
}

fn restore_failed(what: &Path, code: u8) -> Drilled {
    Drilled {
        code: if code == 0 { 1 } else { code },
        findings: DrillFindings {
            mailbox: what.to_string_lossy().into_owned(),
            summary: format!(
                "the drill failed: {} did not restore from the target (duplicity exit code {code})",
                what.display()
            ),
            ..Default::default()
        },
    }
}

/// The volume ranges of the set at `time`, from the manifest duplicity
/// put in the drill's archive dir.
fn local_manifest(archive: &Path, time: Stamp) -> Option<Vec<VolumeRange>> {
    let mut pending = vec![archive.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(file) = parse_set_name(&name) else {
                continue;
            };
            if file.time == time && file.part == Part::Manifest && !file.encrypted && !file.partial
            {
                return Some(manifest::volume_ranges(&std::fs::read(&path).ok()?));
            }
        }
    }
    None
}

/// Compares what came back with the live files, and says what it found.
fn judge(
    layout: &Layout,
    restored: &Path,
    sample: &[&Path],
    cutoff: f64,
    bytes_read: u64,
    mailbox: Option<PathBuf>,
    newest: Stamp,
) -> Result<Drilled> {
    let mut total = Comparison::default();
    for rel in sample {
        let c = compare(&layout.storage_root, restored, rel, cutoff)?;
        total.compared += c.compared;
        total.changed_since += c.changed_since;
        total.difference_count += c.difference_count;
        total.differences.extend(c.differences);
    }
    for d in &total.differences {
        eprintln!("mailbackup: differs: {d}");
    }
    let what = match &mailbox {
        Some(m) => format!("{} and {USERS_DB}", m.display()),
        None => format!("{USERS_DB} (no mailbox in the backup)"),
    };
    let (code, verdict) = if total.difference_count > 0 {
        (
            1,
            format!(
                "the drill FAILED: {} file(s) differ from the live ones",
                total.difference_count
            ),
        )
    } else if total.compared == 0 {
        (1, "the drill FAILED: no file was left unchanged since the backup to compare with; run it again after the next backup".to_owned())
    } else {
        (0, "the drill passed".to_owned())
    };
    let summary = format!(
        "{verdict}: restored {what} of the backup {newest} from the target with an empty cache, \
         read {} ({bytes_read} bytes); {} file(s) compared byte for byte, {} changed since the backup",
        crate::status::report::human_size(bytes_read),
        total.compared,
        total.changed_since
    );
    Ok(Drilled {
        code,
        findings: DrillFindings {
            mailbox: mailbox
                .map(|m| m.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes_read,
            files_compared: total.compared,
            files_changed_since: total.changed_since,
            summary,
        },
    })
}
