//! `mailbackup install`: the systemd units that run the backup.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::backend::{Settings, UnitNeeds};
use crate::config::Config;
use crate::key;
use crate::sys::CgroupHierarchy;
use crate::systemd::units::{
    self, Downtime, UnitFile, UnitSettings, CHOICES_MARK, DEFAULT_CALENDAR, DEFAULT_SERVICES,
    DEFAULT_VERIFY_CALENDAR, GENERATED_MARK, OPTIONAL_UNITS, SERVICE, VERIFY_TIMER,
};
use crate::systemd::{self, SYSTEM_UNIT_DIR};

/// Install the systemd units that run the backup, and enable its timers.
///
/// Writes mailbackup.service (stops or pauses the mail services for the
/// moment mailbackup-snapshot.service takes a snapshot of the data, backs
/// the snapshot up while they run again, prunes; with --downtime full,
/// stops them for the whole backup), mailbackup-snapshot.service,
/// mailbackup.timer,
/// mailbackup-after-backup.service (the after-backup hook, as STORAGE_USER),
/// mailbackup-verify.service and .timer (a monthly verification), and
/// mailbackup-failure@.service (mails the administrator when one of them
/// fails); creates STORAGE_ROOT/backup and a new key if there is none; and
/// enables the timers. Run it again after any change (also of
/// STORAGE_ROOT/backup/custom.yaml, the backup target): what is unchanged
/// stays as it is.
///
/// The options given are kept (in a comment of mailbackup.service): a later
/// `mailbackup install` without them, as box setup runs it on every upgrade,
/// keeps the operator's choices. Give an option again to change it.
///
/// With --refresh, as the Debian package runs it on upgrade, only units
/// that are installed already are rendered anew, from this version's
/// templates; no timer is enabled, started or stopped.
///
/// For an off-site target it creates the ssh key ~/.ssh/id_rsa_miab if there
/// is none and prints its public key, and checks the target first
/// (`mailbackup check-target`): a timer is not enabled for a target that
/// cannot work.
///
/// Example: mailbackup install --on-calendar '*-*-* 03:00'
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Where to write the units; only in the system's directory are they enabled.
    #[arg(long, value_name = "DIR", default_value = SYSTEM_UNIT_DIR)]
    pub unit_dir: PathBuf,

    /// The mailbackup binary the units run [default: this binary]
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,

    /// When to back up (systemd's OnCalendar= syntax, `man systemd.time`) [default: daily]
    #[arg(long, value_name = "SPEC")]
    pub on_calendar: Option<String>,

    /// The services stopped during the backup, in this order [default: dovecot.service postfix.service]
    #[arg(long, value_name = "UNITS", value_delimiter = ' ', num_args = 1..)]
    pub services: Option<Vec<String>>,

    /// How the mail services make way for the backup: stopped for the
    /// seconds a snapshot of the data takes, frozen for that moment (pause:
    /// connections wait, none is refused; needs cgroup v2), or stopped for
    /// the whole backup [default: snapshot]
    #[arg(long, value_enum)]
    pub downtime: Option<Downtime>,

    /// When to verify the backup (OnCalendar= syntax), or `never` [default: monthly]
    #[arg(long, value_name = "SPEC")]
    pub verify_calendar: Option<String>,

    /// Who is mailed when a backup, the hook or a verification fails [default: administrator@PRIMARY_HOSTNAME]
    #[arg(long, value_name = "ADDRESS")]
    pub mail_to: Option<String>,

    /// Print every file it would write, and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Write the units but do not reload systemd or enable the timer.
    #[arg(long)]
    pub no_enable: bool,

    /// Render anew the units an earlier install wrote, from this version's
    /// templates, with the options and the configuration file (not
    /// --config) recorded in them; reload systemd. Enables, starts or stops
    /// no timer, leaves drop-ins alone, creates no key. Does nothing where
    /// mailbackup's units are not installed.
    #[arg(long, conflicts_with_all = ["on_calendar", "services", "downtime", "verify_calendar", "mail_to", "no_enable"])]
    pub refresh: bool,
}

/// The options the operator chose at install, kept in the service unit so
/// that a bare re-install keeps them. Only options given are recorded: one
/// never chosen follows the default of the version installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choices {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_calendar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<Downtime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_calendar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_to: Option<String>,
}

impl Choices {
    /// The options given on the command line.
    pub fn given(args: &InstallArgs) -> Choices {
        Choices {
            on_calendar: args.on_calendar.clone(),
            services: args.services.clone(),
            downtime: args.downtime,
            verify_calendar: args.verify_calendar.clone(),
            mail_to: args.mail_to.clone(),
        }
    }

    /// These choices, and those of `earlier` that these do not change.
    pub fn over(self, earlier: Choices) -> Choices {
        Choices {
            on_calendar: self.on_calendar.or(earlier.on_calendar),
            services: self.services.or(earlier.services),
            downtime: self.downtime.or(earlier.downtime),
            verify_calendar: self.verify_calendar.or(earlier.verify_calendar),
            mail_to: self.mail_to.or(earlier.mail_to),
        }
    }

    /// These choices, but for those `given` replaces.
    pub fn unless(self, given: &Choices) -> Choices {
        fn keep<T>(earlier: Option<T>, given: &Option<T>) -> Option<T> {
            earlier.filter(|_| given.is_none())
        }
        Choices {
            on_calendar: keep(self.on_calendar, &given.on_calendar),
            services: keep(self.services, &given.services),
            downtime: keep(self.downtime, &given.downtime),
            verify_calendar: keep(self.verify_calendar, &given.verify_calendar),
            mail_to: keep(self.mail_to, &given.mail_to),
        }
    }

    /// The choices recorded in a service unit that mailbackup wrote, if any.
    /// A line that does not parse (a hand edit) counts as no choices.
    pub fn recorded_in(unit: &str) -> Option<Choices> {
        if !unit.starts_with(GENERATED_MARK) {
            return None;
        }
        unit.lines()
            .find_map(|l| l.strip_prefix(CHOICES_MARK))
            .and_then(|json| serde_json::from_str(json).ok())
    }

    /// The line recorded in the unit: JSON, which escapes every control
    /// character, so it stays one comment line whatever the values.
    pub fn to_record(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The options as the operator would type them, for the log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let quote = |s: &str| {
            if s.contains(|c: char| c.is_whitespace() || c == '*' || c == '\'') {
                format!("'{s}'")
            } else {
                s.to_owned()
            }
        };
        if let Some(v) = &self.on_calendar {
            parts.push(format!("--on-calendar {}", quote(v)));
        }
        if let Some(v) = &self.services {
            parts.push(format!("--services {}", quote(&v.join(" "))));
        }
        if let Some(v) = self.downtime {
            parts.push(format!("--downtime {}", v.name()));
        }
        if let Some(v) = &self.verify_calendar {
            parts.push(format!("--verify-calendar {}", quote(v)));
        }
        if let Some(v) = &self.mail_to {
            parts.push(format!("--mail-to {v}"));
        }
        parts.join(" ")
    }
}

/// What installing a unit does to the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    /// The file is what mailbackup rendered before, with other options or
    /// for another kind of target: they changed.
    Update(Why),
    /// The file is neither what these settings nor what earlier ones
    /// render: edited by hand, or written by another version.
    Replace,
    Keep,
}

/// What changed since a unit was rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The options given to `install`.
    Options,
    /// The kind of backup target in custom.yaml.
    Target,
    /// Both.
    OptionsAndTarget,
}

/// Compares a rendered unit with the file that is there now, and with
/// what earlier settings rendered (each with what differs since).
pub fn change_for(unit: &UnitFile, current: Option<&str>, earlier: &[(&str, Why)]) -> Change {
    match current {
        None => Change::Create,
        Some(c) if c == unit.content => Change::Keep,
        Some(c) => earlier
            .iter()
            .find(|(e, _)| *e == c)
            .map_or(Change::Replace, |&(_, why)| Change::Update(why)),
    }
}

pub fn run(config_path: &Path, args: &InstallArgs) -> Result<u8> {
    let dir = &args.unit_dir;
    let installed = read_unit(&dir.join(SERVICE))?.filter(|u| u.starts_with(GENERATED_MARK));
    let config_path = if args.refresh {
        let Some(unit) = &installed else {
            println!(
                "mailbackup's units are not installed in {}: nothing to refresh",
                dir.display()
            );
            return Ok(0);
        };
        units::config_in(unit).with_context(|| {
            format!(
                "{} names no configuration file (`--config FILE` in ExecStart=): run `mailbackup install` to write it anew",
                dir.join(SERVICE).display()
            )
        })?
    } else {
        config_path.to_owned()
    };
    let config = Config::load(&config_path)?;
    if let Some(note) = config.symlink_note() {
        eprintln!("{note}");
    }
    let config_path = std::path::absolute(&config_path)
        .with_context(|| format!("Failed to make {} an absolute path", config_path.display()))?;
    let Some(user) = config.get("STORAGE_USER") else {
        bail!(
            "{} has no STORAGE_USER setting, the user the after-backup hook runs as: add one",
            config_path.display()
        );
    };
    if !crate::sys::user_exists(user) {
        bail!(
            "STORAGE_USER in {} is {user:?}, which is not a user on this system: create it or fix the setting",
            config_path.display()
        );
    }
    let earlier = installed
        .as_deref()
        .and_then(Choices::recorded_in)
        .unwrap_or_default();
    let given = Choices::given(args);
    let kept = earlier.clone().unless(&given);
    let choices = given.over(earlier.clone());
    let mail_to = match (&choices.mail_to, config.get("PRIMARY_HOSTNAME")) {
        (Some(to), _) => to.clone(),
        (None, Some(host)) if !host.is_empty() => format!("administrator@{host}"),
        (None, _) => bail!(
            "{} has no PRIMARY_HOSTNAME to mail failures to administrator@ it: add it, or give --mail-to",
            config_path.display()
        ),
    };
    let target_settings = Settings::load(&config.layout(), None, &super::ssh_files())?;
    let target_needs = target_settings.unit_needs();
    let settings_for = |choices: &Choices, mail_to: String, target: &UnitNeeds| UnitSettings {
        config: config_path.clone(),
        layout: config.layout(),
        storage_user: user.to_owned(),
        bin: PathBuf::new(),
        on_calendar: choices
            .on_calendar
            .clone()
            .unwrap_or_else(|| DEFAULT_CALENDAR.to_owned()),
        services: choices
            .services
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect()),
        downtime: choices.downtime.unwrap_or_default(),
        verify_calendar: Some(
            choices
                .verify_calendar
                .clone()
                .unwrap_or_else(|| DEFAULT_VERIFY_CALENDAR.to_owned()),
        )
        .filter(|c| c != "never"),
        mail_to,
        choices: choices.to_record(),
        target: target.clone(),
        postdrop: crate::sys::group_exists(crate::mail::queue::POSTDROP_GROUP),
    };
    let mut settings = settings_for(&choices, mail_to, &target_needs);
    for spec in std::iter::once(&settings.on_calendar).chain(settings.verify_calendar.as_ref()) {
        units::calendar_spec(spec)?;
        systemd::check_calendar(spec)?;
    }
    if settings.downtime == Downtime::Pause {
        check_freezing(crate::sys::cgroup_hierarchy())?;
    }
    settings.bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .context("Failed to find the path of this mailbackup binary: give it with --bin")?,
    };
    let layout = settings.layout.clone();
    let rendered = units::render(&settings)?;
    // Where systemd runs, a service it does not know (a typo) would fail
    // every backup at its stop. A package upgrade changes no choice.
    if !args.refresh && systemd::is_system_unit_dir(dir) && systemd::is_booted() {
        check_services(&settings.services, |s| systemd::show(s, "LoadState"))?;
    }
    // What the earlier options, or these, rendered for another kind of
    // target, to tell a change of options or of target from a hand edit.
    let earlier_mail_to = earlier
        .mail_to
        .clone()
        .or_else(|| {
            config
                .get("PRIMARY_HOSTNAME")
                .map(|h| format!("administrator@{h}"))
        })
        .unwrap_or_default();
    let mut earlier_rendered = Vec::new();
    for needs in UnitNeeds::of_every_kind(&target_settings.path) {
        let other_target = needs != target_needs;
        let mut variants = Vec::new();
        if earlier != choices {
            let why = if other_target {
                Why::OptionsAndTarget
            } else {
                Why::Options
            };
            variants.push((settings_for(&earlier, earlier_mail_to.clone(), &needs), why));
        }
        if other_target {
            variants.push((
                settings_for(&choices, settings.mail_to.clone(), &needs),
                Why::Target,
            ));
        }
        for (variant, why) in variants {
            let units = units::render(&UnitSettings {
                bin: settings.bin.clone(),
                ..variant
            })
            .unwrap_or_default();
            earlier_rendered.extend(units.into_iter().map(|u| (u, why)));
        }
    }
    if kept != Choices::default() {
        println!(
            "keeping the options of the earlier install: {}",
            kept.describe()
        );
    }

    let mut plan = Vec::new();
    for unit in &rendered {
        let path = dir.join(unit.name);
        let before: Vec<(&str, Why)> = earlier_rendered
            .iter()
            .filter(|(u, _)| u.name == unit.name)
            .map(|(u, why)| (u.content.as_str(), *why))
            .collect();
        plan.push((
            unit,
            change_for(unit, read_unit(&path)?.as_deref(), &before),
            path,
        ));
    }
    // Units of an earlier install that these settings no longer call for.
    let mut retired = Vec::new();
    for name in OPTIONAL_UNITS {
        let path = dir.join(name);
        if !rendered.iter().any(|u| u.name == name)
            && read_unit(&path)?.is_some_and(|c| c.starts_with(GENERATED_MARK))
        {
            retired.push(path);
        }
    }
    let needs_key = !args.refresh && !layout.key_file.exists();
    if needs_key {
        refuse_a_new_key_for_old_backups(&layout)?;
    }
    // A package may be upgraded where systemd does not run (a chroot).
    let manage_systemd = !args.no_enable
        && !args.dry_run
        && systemd::is_system_unit_dir(dir)
        && (!args.refresh || systemd::is_booted());
    let ssh_key = target_settings.target.as_ref().and_then(|t| t.ssh_key());
    // A package upgrade reaches no server and makes no key.
    let needs_ssh_key = !args.refresh && ssh_key.is_some_and(|k| !k.exists());
    let settings_too_open = !args.refresh && settings_file_too_open(&target_settings.path)?;

    if args.dry_run {
        for (unit, change, path) in &plan {
            match change {
                Change::Keep => println!("{} is up to date", path.display()),
                _ => print!("would write {}:\n{}\n", path.display(), unit.content),
            }
        }
        for path in &retired {
            println!("would remove {}", path.display());
        }
        if needs_key {
            println!(
                "would create a new backup key {}",
                layout.key_file.display()
            );
        }
        if let Some(key) = ssh_key.filter(|_| needs_ssh_key) {
            println!("would create the ssh key {}", key.display());
        }
        if settings_too_open {
            println!(
                "would make {} readable by root only",
                target_settings.path.display()
            );
        }
        return Ok(0);
    }

    if settings_too_open {
        make_private(&target_settings.path)?;
        println!(
            "made {} readable by root only (mode 0600): it holds the target's secret, and other users could read it",
            target_settings.path.display()
        );
    }
    if let Some(key) = ssh_key {
        if needs_ssh_key {
            create_ssh_key(key)?;
            println!(
                "created the ssh key {}; put its public key in ~USER/.ssh/authorized_keys on the backup server:\n{}",
                key.display(),
                public_key(key)?
            );
        }
    }
    // A target that cannot work gets units, but no timer.
    let target_failure = match &target_settings.target {
        Some(t) if t.is_remote() && !args.refresh => match t.check() {
            Ok(found) => {
                println!("checked {}: {found}", t.describe());
                None
            }
            Err(e) => Some(format!("{e:#}")),
        },
        _ => None,
    };

    // Units go to temporary files first: an unwritable unit directory fails
    // here, before anything is written.
    let staged = stage(&plan)?;
    let committed = (|| {
        if !args.refresh {
            std::fs::create_dir_all(&layout.backup_dir).with_context(|| {
                format!(
                    "Failed to create the backup directory {}",
                    layout.backup_dir.display()
                )
            })?;
        }
        let created_key = needs_key && key::create_key_file(&layout.key_file)?;
        for (tmp, path) in &staged {
            std::fs::rename(tmp, path)
                .with_context(|| format!("Failed to write {}", path.display()))?;
        }
        Ok::<_, anyhow::Error>(created_key)
    })();
    for (tmp, _) in &staged {
        let _ = std::fs::remove_file(tmp);
    }
    let created_key = committed?;

    let mut changed = false;
    for (_, change, path) in &plan {
        match change {
            Change::Create => println!("created {}", path.display()),
            Change::Update(Why::Options) => {
                println!("updated {} for the options given", path.display())
            }
            Change::Update(Why::Target) => println!(
                "updated {} for the backup target in {}",
                path.display(),
                target_settings.path.display()
            ),
            Change::Update(Why::OptionsAndTarget) => println!(
                "updated {} for the options given and the backup target in {}",
                path.display(),
                target_settings.path.display()
            ),
            // A refresh runs on a package upgrade: the new version's
            // templates are why, as a rule, not a hand edit.
            Change::Replace if args.refresh => println!(
                "replaced {} with what this version of mailbackup renders (a hand edit in it, if any, \
                 is gone: local changes belong in a drop-in, `systemctl edit {}`)",
                path.display(),
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            Change::Replace => println!(
                "replaced {}: it differed from what mailbackup renders (edited by hand, or written by another \
                 version); local changes belong in a drop-in, `systemctl edit {}`",
                path.display(),
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            Change::Keep => continue,
        }
        changed = true;
    }
    if created_key {
        changed = true;
        println!(
            "created a new backup key {}: keep a copy of it away from this box, without it the backups cannot be restored; \
             `mailbackup key show` prints it, `mailbackup key confirm` records that you keep it",
            layout.key_file.display()
        );
    }
    for path in &retired {
        if manage_systemd && path.ends_with(VERIFY_TIMER) {
            systemd::systemctl(&["disable", "--now", VERIFY_TIMER])?;
        }
        std::fs::remove_file(path)
            .with_context(|| format!("Failed to remove {}", path.display()))?;
        println!("removed {}: these settings do not use it", path.display());
        changed = true;
    }
    // Once, with what an install changed (a re-run that changes nothing is quiet).
    if changed && !created_key && !args.refresh {
        if let Some(warning) = key::custody(&layout).warning() {
            println!("{warning}");
        }
    }
    if manage_systemd && changed {
        systemd::systemctl(&["daemon-reload"])?;
    }
    let timers = plan.iter().filter(|(u, _, _)| u.name.ends_with(".timer"));
    if args.refresh {
        // Each timer stays as the operator left it.
        for (unit, change, _) in timers {
            if *change == Change::Create {
                println!(
                    "{} is new and not enabled: `mailbackup install` enables and starts it",
                    unit.name
                );
            } else if manage_systemd && !systemd::systemctl_says("is-enabled", unit.name) {
                println!("left {} disabled, as it was", unit.name);
            }
        }
    } else if manage_systemd && target_failure.is_none() {
        for (unit, _, _) in timers {
            let timer = unit.name;
            if !systemd::systemctl_says("is-enabled", timer)
                || !systemd::systemctl_says("is-active", timer)
            {
                systemd::systemctl(&["enable", "--now", timer])?;
                println!("enabled and started {timer}");
                changed = true;
            }
        }
    } else if !manage_systemd && !args.no_enable && changed {
        println!(
            "{} is not {SYSTEM_UNIT_DIR}: the units are not enabled; start a backup with `systemctl start {SERVICE}` once they are installed there",
            dir.display()
        );
    }
    if let Some(failure) = target_failure {
        eprintln!("mailbackup: the backup target does not work: {failure}");
        if let Some(key) = ssh_key {
            eprintln!(
                "mailbackup: the public key of {} is: {}",
                key.display(),
                public_key(key)?
            );
        }
        // Timers that an earlier install enabled stay so: a server that is
        // down while box setup re-runs install must not end the backups.
        let enabled: Vec<&str> = plan
            .iter()
            .map(|(u, _, _)| u.name)
            .filter(|name| name.ends_with(".timer"))
            .filter(|name| manage_systemd && systemd::systemctl_says("is-enabled", name))
            .collect();
        if enabled.is_empty() {
            eprintln!(
                "mailbackup: no timer was enabled: fix the target (see `mailbackup check-target`), then run `mailbackup install` again"
            );
        } else {
            eprintln!(
                "mailbackup: {} {} enabled from the earlier install: backups to this target fail, and mail {}, until it works; fix it (see `mailbackup check-target`), then run `mailbackup install` again",
                enabled.join(" and "),
                if enabled.len() == 1 { "stays" } else { "stay" },
                settings.mail_to
            );
        }
        return Ok(1);
    }
    if !changed && args.refresh {
        println!("mailbackup's units are up to date: nothing changed");
    } else if !changed {
        println!("mailbackup is installed already: nothing changed");
    }
    Ok(0)
}

/// A new key beside backups made with a lost one would go on with their
/// chain: duplicity reads the old signatures from its local cache, so the
/// next backups succeed, encrypted with the new key, and the newest state
/// then restores with neither key. Only a box without backups gets a new key.
fn refuse_a_new_key_for_old_backups(layout: &crate::config::Layout) -> Result<()> {
    let held = crate::duplicity::inventory::Inventory::scan(&layout.encrypted_dir)?;
    if held.backups.is_empty() {
        return Ok(());
    }
    bail!(
        "the backup key {key} is missing, and {dir} holds {n} backups made with it: put your copy of \
         the key back at {key}. If it is lost, those backups cannot be restored: move {dir} and {cache} \
         out of the way, then run `mailbackup install` again for a new key and a new full backup",
        key = layout.key_file.display(),
        dir = layout.encrypted_dir.display(),
        cache = layout.cache_dir.display(),
        n = held.backups.len(),
    )
}

/// Every service to stop is a unit systemd can load (`LoadState=loaded`:
/// not `not-found`, `masked` or broken); `load_state` asks systemd.
pub fn check_services(
    services: &[String],
    load_state: impl Fn(&str) -> Option<String>,
) -> Result<()> {
    for service in services {
        match load_state(service).as_deref() {
            Some("loaded") => {}
            // systemd cannot be asked: nothing to go by.
            None => {}
            Some(state) => bail!(
                "--services: {service} is not a unit systemd can start here (it is {state}): \
                 every backup would fail stopping it; name the mail services installed \
                 (`systemctl list-units --type=service`)"
            ),
        }
    }
    Ok(())
}

/// `--downtime pause` freezes the mail services' cgroups, which systemd can
/// do only on the unified (v2) hierarchy.
pub fn check_freezing(hierarchy: CgroupHierarchy) -> Result<()> {
    let why = match hierarchy {
        CgroupHierarchy::Unified => return Ok(()),
        CgroupHierarchy::Hybrid => "this system runs the hybrid cgroup hierarchy (v1 controllers, /sys/fs/cgroup is not cgroup2)",
        CgroupHierarchy::Legacy => "this system runs the legacy cgroup v1 hierarchy",
    };
    bail!(
        "--downtime pause freezes the mail services, which systemd can do only on the unified cgroup v2 \
         hierarchy, and {why}: boot with systemd.unified_cgroup_hierarchy=1, or choose --downtime snapshot"
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

fn make_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(0), Some(0))
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .with_context(|| format!("Failed to make {} readable by root only", path.display()))
}

/// A new ssh key without a passphrase, as Mail-in-a-Box makes it.
fn create_ssh_key(key: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = key.parent() {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                })
                .with_context(|| format!("Failed to create {}", dir.display()))?;
        }
    }
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "rsa",
            "-b",
            "3072",
            "-N",
            "",
            "-C",
            "mailbackup",
            "-f",
        ])
        .arg(key)
        .stdin(std::process::Stdio::null())
        .output()
        .context("Failed to run ssh-keygen: install openssh-client")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed to create {}: {}",
            key.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn public_key(key: &Path) -> Result<String> {
    let path = key.with_extension("pub");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("Failed to read the public key {}", path.display()))?
        .trim()
        .to_owned())
}

/// The unit file at `path`, if there is one.
pub fn read_unit(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
    }
}

/// Writes each unit to be created or replaced to a temporary file beside
/// it. On error, removes what it wrote.
fn stage(plan: &[(&UnitFile, Change, PathBuf)]) -> Result<Vec<(PathBuf, PathBuf)>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (unit, change, path) in plan {
        if *change == Change::Keep {
            continue;
        }
        let tmp = path.with_file_name(format!(".{}.mailbackup-tmp", unit.name));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(unit.content.as_bytes())
                    .and_then(|()| f.sync_all())
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            for (t, _) in &staged {
                let _ = std::fs::remove_file(t);
            }
            return Err(e).with_context(|| {
                format!(
                    "Failed to write {}: is the unit directory writable?",
                    path.display()
                )
            });
        }
        staged.push((tmp, path.clone()));
    }
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_given_win_and_the_rest_are_kept() {
        let earlier = Choices {
            on_calendar: Some("*-*-* 04:00:00".into()),
            downtime: Some(Downtime::Full),
            ..Choices::default()
        };
        let unit = format!(
            "{GENERATED_MARK}: x\n{CHOICES_MARK}{}\n[Unit]\n",
            earlier.to_record()
        );
        assert_eq!(Choices::recorded_in(&unit), Some(earlier.clone()));
        assert_eq!(Choices::recorded_in(&unit[1..]), None, "not ours");
        assert_eq!(
            Choices::recorded_in(&format!("{GENERATED_MARK}\n{CHOICES_MARK}{{oops\n")),
            None
        );
        let now = Choices {
            downtime: Some(Downtime::Snapshot),
            ..Choices::default()
        };
        let merged = now.over(earlier);
        assert_eq!(merged.on_calendar.as_deref(), Some("*-*-* 04:00:00"));
        assert_eq!(merged.downtime, Some(Downtime::Snapshot));
        assert_eq!(
            merged.describe(),
            "--on-calendar '*-*-* 04:00:00' --downtime snapshot"
        );
        let odd = Choices {
            on_calendar: Some("daily\nExecStart=/bin/evil".into()),
            ..Choices::default()
        };
        assert!(!odd.to_record().contains('\n'));
    }

    #[test]
    fn pausing_needs_cgroup_v2() {
        assert!(check_freezing(CgroupHierarchy::Unified).is_ok());
        for h in [CgroupHierarchy::Hybrid, CgroupHierarchy::Legacy] {
            let e = check_freezing(h).unwrap_err().to_string();
            assert!(
                e.contains("cgroup v2") && e.contains("--downtime snapshot"),
                "{e}"
            );
        }
    }

    #[test]
    fn services_systemd_cannot_load_are_refused() {
        let services = vec!["dovecot.service".to_owned(), "postfx.service".to_owned()];
        let state = |s: &str| {
            Some(
                if s == "dovecot.service" {
                    "loaded"
                } else {
                    "not-found"
                }
                .to_owned(),
            )
        };
        let e = check_services(&services, state).unwrap_err().to_string();
        assert!(
            e.contains("postfx.service") && e.contains("not-found"),
            "{e}"
        );
        assert!(check_services(&services[..1], state).is_ok());
        assert!(check_services(&services, |_| None).is_ok());
    }

    #[test]
    fn changes() {
        let unit = UnitFile {
            name: "x.service",
            content: "a\n".into(),
        };
        assert_eq!(change_for(&unit, None, &[]), Change::Create);
        assert_eq!(change_for(&unit, Some("a\n"), &[]), Change::Keep);
        assert_eq!(change_for(&unit, Some("a\n# mine\n"), &[]), Change::Replace);
        let earlier = [("b\n", Why::Options), ("c\n", Why::Target)];
        assert_eq!(
            change_for(&unit, Some("b\n"), &earlier),
            Change::Update(Why::Options)
        );
        assert_eq!(
            change_for(&unit, Some("c\n"), &earlier),
            Change::Update(Why::Target)
        );
        assert_eq!(
            change_for(&unit, Some("b\n# mine\n"), &earlier),
            Change::Replace
        );
    }
}
