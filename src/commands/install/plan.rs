//! What `install` is to do, decided from the resolved settings and what is
//! on disk, before anything is written.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::resolve::InstallSettings;
use crate::config::Layout;
use crate::systemd::units::{self, Stamp, UnitFile, ALL, GENERATED_MARK, OPTIONAL_UNITS, SERVICE};

/// What install finds on disk: the units there, the key, what a new key
/// would put at risk, the ssh key and the target's settings file.
#[derive(Debug, Clone, Default)]
pub struct OnDisk {
    /// The content of each of mailbackup's units that is there.
    pub units: BTreeMap<&'static str, String>,
    /// The backup key exists.
    pub key: bool,
    /// The backups there are beside a missing key (counted only then).
    pub backups_without_key: usize,
    /// The target's ssh key, if it uses one, and whether it exists.
    pub ssh_key: Option<(PathBuf, bool)>,
    /// The target's settings file, when other users than root may read it.
    pub settings_too_open: Option<PathBuf>,
    /// What another user than root owns in the backup directory, with its
    /// owner: the backup, root without CAP_DAC_OVERRIDE, cannot write there.
    pub not_roots: Vec<(PathBuf, u32)>,
}

impl OnDisk {
    /// The units in `dir`, and the key files and settings of `layout`.
    pub fn read(
        s: &InstallSettings,
        ssh_key: Option<&Path>,
        settings_file: &Path,
    ) -> Result<OnDisk> {
        let mut units = BTreeMap::new();
        for name in ALL {
            if let Some(content) = read_unit(&s.unit_dir.join(name))? {
                units.insert(name, content);
            }
        }
        let layout = &s.units.layout;
        let key = layout.key_file.exists();
        let backups_without_key = if key || s.refresh {
            0
        } else {
            crate::duplicity::inventory::Inventory::scan(&layout.encrypted_dir)?
                .backups
                .len()
        };
        // A package upgrade makes no key and changes no mode or owner.
        let settings_too_open = !s.refresh && settings_file_too_open(settings_file)?;
        let not_roots = if s.refresh {
            Vec::new()
        } else {
            not_root_owned(layout)?
        };
        Ok(OnDisk {
            units,
            key,
            backups_without_key,
            ssh_key: ssh_key.map(|k| (k.to_owned(), k.exists())),
            settings_too_open: settings_too_open.then(|| settings_file.to_owned()),
            not_roots,
        })
    }
}

/// What installing a unit does to the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    /// The file is one mailbackup rendered, unedited, for other settings.
    Update(Why),
    /// The file is not what mailbackup rendered: edited by hand (its body
    /// no longer matches the hash in its header), or not recognised.
    Replace,
    Keep,
}

/// What changed since mailbackup rendered a unit that is not edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The options given to `install`.
    Options,
    /// The kind of backup target in custom.yaml.
    Target,
    /// Both.
    OptionsAndTarget,
    /// Neither: the templates of another version of mailbackup, the
    /// configuration file or the binary.
    Rendering,
}

impl Why {
    fn of(options: bool, target: bool) -> Why {
        match (options, target) {
            (true, true) => Why::OptionsAndTarget,
            (true, false) => Why::Options,
            (false, true) => Why::Target,
            (false, false) => Why::Rendering,
        }
    }
}

/// One unit to install.
#[derive(Debug, Clone)]
pub struct Step {
    pub unit: UnitFile,
    pub change: Change,
    pub path: PathBuf,
}

/// What install is to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub units: Vec<Step>,
    /// Units of an earlier install that these settings no longer call for.
    pub retired: Vec<PathBuf>,
    /// The backup key to create, if there is none.
    pub new_key: Option<PathBuf>,
    /// The backup directory to create (not on a refresh).
    pub backup_dir: Option<PathBuf>,
    /// The ssh key to create, if the target needs one and there is none.
    pub new_ssh_key: Option<PathBuf>,
    /// The target's settings file to make readable by root only.
    pub make_private: Option<PathBuf>,
    /// What to make root's in the backup directory, with its owner now.
    pub make_root_owned: Vec<(PathBuf, u32)>,
}

/// Decides what to write, replace, keep and remove. Pure.
pub fn plan(s: &InstallSettings, disk: &OnDisk) -> Result<Plan> {
    let rendered = units::render(&s.units)?;
    let service = disk.units.get(SERVICE).and_then(|u| Stamp::of(u));
    let target_changed = service
        .and_then(|stamp| stamp.target)
        .is_some_and(|t| t != units::target_tag(&s.units.target));
    let why = Why::of(s.choices != s.saved, target_changed);
    let mut steps = Vec::new();
    for unit in rendered {
        let current = disk.units.get(unit.name).map(String::as_str);
        steps.push(Step {
            change: change_for(&unit, current, why),
            path: s.unit_dir.join(unit.name),
            unit,
        });
    }
    let retired = OPTIONAL_UNITS
        .into_iter()
        .filter(|name| !steps.iter().any(|step| step.unit.name == *name))
        .filter(|name| {
            disk.units
                .get(name)
                .is_some_and(|u| u.starts_with(GENERATED_MARK))
        })
        .map(|name| s.unit_dir.join(name))
        .collect();
    let layout = &s.units.layout;
    let new_key = !s.refresh && !disk.key;
    if new_key && disk.backups_without_key > 0 {
        refuse_a_new_key_for_old_backups(layout, disk.backups_without_key)?;
    }
    Ok(Plan {
        units: steps,
        retired,
        new_key: new_key.then(|| layout.key_file.clone()),
        backup_dir: (!s.refresh).then(|| layout.backup_dir.clone()),
        // A package upgrade reaches no server and makes no key.
        new_ssh_key: disk
            .ssh_key
            .clone()
            .filter(|(_, exists)| !s.refresh && !exists)
            .map(|(key, _)| key),
        make_private: disk.settings_too_open.clone(),
        make_root_owned: disk.not_roots.clone(),
    })
}

/// Compares a rendered unit with the file that is there now. A file whose
/// body matches the hash in its header is mailbackup's own, rendered for
/// other settings (`why`): it is updated. One that does not was edited.
///
/// A unit written before the header held a hash is mailbackup's own when
/// its body is what these settings render (only the header is new); else
/// it counts as edited, as units of other versions always did.
pub fn change_for(unit: &UnitFile, current: Option<&str>, why: Why) -> Change {
    let Some(current) = current else {
        return Change::Create;
    };
    if current == unit.content {
        return Change::Keep;
    }
    match Stamp::of(current) {
        Some(stamp) if stamp.intact() => Change::Update(why),
        Some(stamp)
            if stamp.body_sha256.is_none()
                && Stamp::of(&unit.content).is_some_and(|new| new.body == stamp.body) =>
        {
            Change::Update(Why::Rendering)
        }
        _ => Change::Replace,
    }
}

/// A new key beside backups made with a lost one would go on with their
/// chain: duplicity reads the old signatures from its local cache, so the
/// next backups succeed, encrypted with the new key, and the newest state
/// then restores with neither key. Only a box without backups gets a new key.
fn refuse_a_new_key_for_old_backups(layout: &Layout, backups: usize) -> Result<()> {
    bail!(
        "the backup key {key} is missing, and {dir} holds {backups} backups made with it: put your copy of \
         the key back at {key}. If it is lost, those backups cannot be restored: move {dir} and {cache} \
         out of the way, then run `mailbackup install` again for a new key and a new full backup",
        key = layout.key_file.display(),
        dir = layout.encrypted_dir.display(),
        cache = layout.cache_dir.display(),
    )
}

/// Whether the settings file, which may hold a secret, is readable by
/// other users than root or owned by another.
fn settings_file_too_open(path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.mode() & 0o077 != 0 || m.uid() != 0),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
    }
}

/// What the backup writes into but another user than root owns, with its
/// owner: the backup directory, the files in it (the hooks aside: they run
/// as STORAGE_USER, and one only they may read stays theirs), duplicity's
/// cache and gpg's home with all in them, and the directory of a local
/// target. Mail-in-a-Box keeps them root's; made or copied in as
/// STORAGE_USER, they are not. Nothing else is looked into: a snapshot or
/// a drill holds the mail's own files (hard links), and their owners.
fn not_root_owned(layout: &Layout) -> Result<Vec<(PathBuf, u32)>> {
    use std::os::unix::fs::MetadataExt;
    let stat = |path: &Path| match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
    };
    let list = |dir: &Path| -> Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)
            .and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect())
            .with_context(|| format!("Failed to list {}", dir.display()))
    };
    let Some(top) = stat(&layout.backup_dir)? else {
        return Ok(Vec::new());
    };
    let mut todo = vec![(layout.backup_dir.clone(), top)];
    if todo[0].1.is_dir() {
        for path in list(&layout.backup_dir)? {
            if path == layout.hook || path == layout.before_hook {
                continue;
            }
            if let Some(meta) = stat(&path)?.filter(|m| m.is_file()) {
                todo.push((path, meta));
            }
        }
        let mut trees = vec![layout.cache_dir.clone(), layout.gnupg_home.clone()];
        while let Some(path) = trees.pop() {
            if let Some(meta) = stat(&path)? {
                if meta.is_dir() {
                    trees.extend(list(&path)?);
                }
                todo.push((path, meta));
            }
        }
        if let Some(meta) = stat(&layout.encrypted_dir)? {
            todo.push((layout.encrypted_dir.clone(), meta));
        }
    }
    let mut found: Vec<_> = todo
        .into_iter()
        .filter(|(_, meta)| meta.uid() != 0)
        .map(|(path, meta)| (path, meta.uid()))
        .collect();
    found.sort();
    Ok(found)
}

/// The unit file at `path`, if there is one.
pub fn read_unit(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
    }
}
