//! `mailbackup install`: the systemd units that run the backup.
//!
//! In steps, each one testable alone: [`resolve`] layers the options given,
//! those the earlier install saved and the defaults into one
//! [`InstallSettings`]; [`plan`] compares what these settings render with
//! what is on disk; [`Plan::print`] is the dry run, [`Plan::apply`] writes.

mod apply;
mod plan;
mod resolve;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use plan::{change_for, plan, read_unit, Change, OnDisk, Plan, Step, Why};
pub use resolve::{resolve, Choices, Found, InstallSettings};

use crate::backend::Settings;
use crate::config::Config;
use crate::sys::CgroupHierarchy;
use crate::systemd::units::{self, Downtime, SERVICE};
use crate::systemd::{self, SYSTEM_UNIT_DIR};

/// Install the systemd units that run the backup, and enable its timers.
///
/// Writes mailbackup.service (stops or pauses the mail services for the
/// moment mailbackup-snapshot.service takes a snapshot of the data, backs
/// the snapshot up while they run again, prunes; with --downtime full,
/// stops them for the whole backup), mailbackup-snapshot.service,
/// mailbackup.timer,
/// mailbackup-before-backup.service and mailbackup-after-backup.service
/// (the before-backup and after-backup hooks, as STORAGE_USER),
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

    #[command(flatten)]
    pub choices: Choices,

    /// Print every file it would write, and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Write the units but do not reload systemd or enable the timers.
    #[arg(long)]
    pub no_enable: bool,

    /// Render anew the units an earlier install wrote, from this version's
    /// templates, with the options and the configuration file (not
    /// --config) recorded in them; reload systemd. Enables, starts or stops
    /// no timer, leaves drop-ins alone, creates no key. Does nothing where
    /// mailbackup's units are not installed.
    #[arg(long, conflicts_with_all = ["choices", "no_enable"])]
    pub refresh: bool,
}

pub fn run(config_path: &Path, args: &InstallArgs) -> Result<u8> {
    if !args.dry_run && !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "mailbackup install must be run as root: it writes the units to {}, the key to \
             STORAGE_ROOT/backup and enables the timers (try `sudo mailbackup install`, or \
             `mailbackup install --dry-run` to see what it would do)",
            args.unit_dir.display()
        );
    }
    if !args.unit_dir.is_dir() {
        anyhow::bail!(
            "the unit directory {} does not exist: give one that does with --unit-dir (the \
             system's is {})",
            args.unit_dir.display(),
            SYSTEM_UNIT_DIR
        );
    }
    let installed =
        read_unit(&args.unit_dir.join(SERVICE))?.filter(|u| u.starts_with(units::GENERATED_MARK));
    let Some(config_path) = config_to_use(config_path, args, installed.as_deref())? else {
        println!(
            "mailbackup's units are not installed in {}: nothing to refresh",
            args.unit_dir.display()
        );
        return Ok(0);
    };
    let config = Config::load(&config_path)?;
    if let Some(note) = config.symlink_note() {
        eprintln!("{note}");
    }
    let config_path = std::path::absolute(&config_path)
        .with_context(|| format!("Failed to make {} an absolute path", config_path.display()))?;
    let target = Settings::load(&config.layout(), None, &super::ssh_files())?;
    for warning in &target.warnings {
        eprintln!("mailbackup: warning: {warning}");
    }
    let saved = installed
        .as_deref()
        .and_then(Choices::recorded_in)
        .unwrap_or_default();
    let found = Found {
        config: &config,
        config_path,
        target: target.unit_needs(),
        bin: this_binary(args)?,
    };
    let mut settings = resolve(args, saved, found)?;
    check_with_the_system(&settings)?;
    find_frozen_units(&mut settings, installed.as_deref())?;
    let ssh_key = target.target.as_ref().and_then(|t| t.ssh_key());
    let disk = OnDisk::read(&settings, ssh_key, &target.path)?;
    let plan = plan(&settings, &disk)?;
    if settings.kept != Choices::default() {
        println!(
            "keeping the options of the earlier install: {}",
            settings.kept.describe()
        );
    }
    if args.dry_run {
        plan.print();
        return Ok(0);
    }
    plan.apply(&settings, &target)
}

/// The configuration file: `--config`, but on a refresh the one the
/// installed service unit runs with (None: no unit, nothing to refresh).
fn config_to_use(
    config_path: &Path,
    args: &InstallArgs,
    installed: Option<&str>,
) -> Result<Option<PathBuf>> {
    if !args.refresh {
        return Ok(Some(config_path.to_owned()));
    }
    let Some(unit) = installed else {
        return Ok(None);
    };
    let path = units::config_in(unit).with_context(|| {
        format!(
            "{} names no configuration file (`--config FILE` in ExecStart=): run `mailbackup install` to write it anew",
            args.unit_dir.join(SERVICE).display()
        )
    })?;
    Ok(Some(path))
}

/// The binary the units run: `--bin`, or this one.
fn this_binary(args: &InstallArgs) -> Result<PathBuf> {
    match &args.bin {
        Some(b) => Ok(b.clone()),
        None => std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .context("Failed to find the path of this mailbackup binary: give it with --bin"),
    }
}

/// What only the system can tell: STORAGE_USER is a user, systemd takes
/// the calendars, the cgroups can be frozen, the services exist.
fn check_with_the_system(s: &InstallSettings) -> Result<()> {
    let u = &s.units;
    if !crate::sys::user_exists(&u.storage_user) {
        bail!(
            "STORAGE_USER in {} is {:?}, which is not a user on this system: create it or fix the setting",
            u.config.display(),
            u.storage_user
        );
    }
    let calendars = [&u.verify_calendar, &u.drill_calendar];
    for spec in std::iter::once(&u.on_calendar).chain(calendars.into_iter().flatten()) {
        units::calendar_spec(spec)?;
        systemd::check_calendar(spec)?;
    }
    if u.downtime == Downtime::Pause {
        check_freezing(crate::sys::cgroup_hierarchy())?;
    }
    // Where systemd runs, a service it does not know (a typo) would fail
    // every backup at its stop. A package upgrade changes no choice.
    if !s.refresh && systemd::is_system_unit_dir(&s.unit_dir) && systemd::is_booted() {
        check_services(&u.services, |s| systemd::show(s, "LoadState"))?;
    }
    Ok(())
}

/// `--downtime pause`: the unit that runs each mail service, asked of
/// systemd (Debian 12 runs postfix in postfix@-.service, Debian 13 in
/// postfix.service itself), so that the backup freezes the processes that
/// are there; a service none runs is refused. On `--refresh` (a package
/// upgrade, perhaps while the mail is stopped) such a service keeps the
/// unit the installed service freezes, with a warning.
fn find_frozen_units(s: &mut InstallSettings, installed: Option<&str>) -> Result<()> {
    let u = &s.units;
    if u.downtime != Downtime::Pause
        || !systemd::is_system_unit_dir(&s.unit_dir)
        || !systemd::is_booted()
    {
        return Ok(());
    }
    let before = installed.and_then(units::frozen_in).unwrap_or_default();
    let mut frozen = Vec::new();
    for (i, service) in u.services.iter().enumerate() {
        let service = units::service_name(service)?;
        match units::pick_frozen(&service, systemd::active_and_sub_state) {
            Ok(unit) => frozen.push(unit),
            Err(e) if s.refresh => {
                let keep = before
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| units::frozen_unit(&service));
                eprintln!("mailbackup: warning: {e:#}; the backup freezes {keep} as before");
                frozen.push(keep);
            }
            Err(e) => return Err(e),
        }
    }
    s.units.frozen = Some(frozen);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::UnitNeeds;
    use crate::systemd::units::{CHOICES_MARK, GENERATED_MARK};

    /// What an install on a Mail-in-a-Box finds, with these options given.
    fn resolved(given: &[&str], saved: Choices, target: UnitNeeds) -> InstallSettings {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            install: InstallArgs,
        }
        let args = Cli::parse_from(std::iter::once("install").chain(given.iter().copied())).install;
        let config = Config::parse(
            Path::new("/etc/mailinabox.conf"),
            "STORAGE_ROOT=/home/user-data\nSTORAGE_USER=user-data\nPRIMARY_HOSTNAME=box.example.com\n",
        )
        .unwrap();
        let found = Found {
            config: &config,
            config_path: "/etc/mailinabox.conf".into(),
            target,
            bin: "/usr/bin/mailbackup".into(),
        };
        resolve(&args, saved, found).unwrap()
    }

    /// The units `s` renders, as on disk.
    fn on_disk(s: &InstallSettings) -> OnDisk {
        OnDisk {
            units: units::render(&s.units)
                .unwrap()
                .into_iter()
                .map(|u| (u.name, u.content))
                .collect(),
            key: true,
            ..OnDisk::default()
        }
    }

    fn changes_of(plan: &Plan) -> Vec<(&'static str, Change)> {
        plan.units
            .iter()
            .filter(|s| s.change != Change::Keep)
            .map(|s| (s.unit.name, s.change))
            .collect()
    }

    #[test]
    fn an_option_is_given_saved_or_its_default() {
        let s = resolved(&[], Choices::default(), UnitNeeds::default());
        assert_eq!(s.units.on_calendar, "daily");
        assert_eq!(s.units.verify_calendar.as_deref(), Some("monthly"));
        assert_eq!(s.units.services, ["dovecot.service", "postfix.service"]);
        assert_eq!(s.units.mail_to, "administrator@box.example.com");
        assert_eq!(s.units.choices, "{}");

        let saved = Choices {
            on_calendar: Some("*-*-* 04:00:00".into()),
            verify_calendar: Some("never".into()),
            ..Choices::default()
        };
        let s = resolved(
            &["--on-calendar", "hourly", "--mail-to", "ops@example.org"],
            saved.clone(),
            UnitNeeds::default(),
        );
        assert_eq!(s.units.on_calendar, "hourly");
        assert_eq!(s.units.verify_calendar, None, "never");
        assert_eq!(s.units.mail_to, "ops@example.org");
        assert_eq!(s.kept.describe(), "--verify-calendar never");
        assert_eq!(
            s.units.choices,
            r#"{"on_calendar":"hourly","verify_calendar":"never","mail_to":"ops@example.org"}"#
        );
        assert_eq!(s.saved, saved);
    }

    #[test]
    fn refresh_takes_no_option() {
        use clap::Parser;
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            install: InstallArgs,
        }
        for option in [
            "--on-calendar",
            "--services",
            "--downtime",
            "--verify-calendar",
            "--mail-to",
        ] {
            let value = if option == "--downtime" { "full" } else { "x" };
            let e = Cli::try_parse_from(["install", "--refresh", option, value]).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{option}"
            );
        }
        assert!(Cli::try_parse_from(["install", "--refresh", "--no-enable"]).is_err());
        assert!(Cli::try_parse_from(["install", "--refresh", "--dry-run"]).is_ok());
    }

    #[test]
    fn a_plan_tells_options_and_target_from_hand_edits() {
        let local = UnitNeeds::default();
        let [_, rsync, _] =
            UnitNeeds::of_every_kind(Path::new("/home/user-data/backup/custom.yaml"));
        let before = resolved(&[], Choices::default(), local.clone());
        let disk = on_disk(&before);
        assert_eq!(changes_of(&plan(&before, &disk).unwrap()), []);

        let s = resolved(
            &["--on-calendar", "hourly"],
            before.choices.clone(),
            local.clone(),
        );
        assert_eq!(
            changes_of(&plan(&s, &disk).unwrap()),
            [
                (SERVICE, Change::Update(Why::Options)),
                (units::TIMER, Change::Update(Why::Options))
            ]
        );
        let s = resolved(&[], before.choices.clone(), rsync.clone());
        assert_eq!(
            changes_of(&plan(&s, &disk).unwrap()),
            [
                (SERVICE, Change::Update(Why::Target)),
                (units::DRILL_SERVICE, Change::Update(Why::Target))
            ]
        );
        let s = resolved(&["--downtime", "full"], before.choices.clone(), rsync);
        let p = plan(&s, &disk).unwrap();
        assert_eq!(
            changes_of(&p),
            [
                (SERVICE, Change::Update(Why::OptionsAndTarget)),
                (units::VERIFY_SERVICE, Change::Update(Why::OptionsAndTarget)),
                (units::DRILL_SERVICE, Change::Update(Why::OptionsAndTarget))
            ]
        );
        assert_eq!(
            p.retired,
            [Path::new(SYSTEM_UNIT_DIR).join(units::SNAPSHOT_SERVICE)]
        );

        // A hand edit, and a file that is not mailbackup's.
        let mut edited = disk.clone();
        edited.units.insert(
            units::TIMER,
            disk.units[units::TIMER].replace("daily", "hourly"),
        );
        edited.units.insert(units::HOOK_SERVICE, "[Unit]\n".into());
        let s = resolved(&["--on-calendar", "weekly"], before.choices.clone(), local);
        assert_eq!(
            changes_of(&plan(&s, &edited).unwrap()),
            [
                (SERVICE, Change::Update(Why::Options)),
                (units::TIMER, Change::Replace),
                (units::HOOK_SERVICE, Change::Replace),
            ]
        );
    }

    #[test]
    fn a_unit_without_a_hash_in_its_header_is_ours_if_its_body_is() {
        let s = resolved(&[], Choices::default(), UnitNeeds::default());
        let rendered = units::render(&s.units).unwrap();
        let timer = rendered.iter().find(|u| u.name == units::TIMER).unwrap();
        let (header, body) = timer.content.split_once('\n').unwrap();
        let (old_header, stamp) = header.split_once(" body-sha256=").unwrap();
        assert!(!stamp.is_empty());
        let old = format!("{old_header}\n{body}");
        assert_eq!(
            change_for(timer, Some(&old), Why::Options),
            Change::Update(Why::Rendering)
        );
        let old_other = old.replace("daily", "hourly");
        assert_eq!(
            change_for(timer, Some(&old_other), Why::Options),
            Change::Replace
        );
        assert_eq!(change_for(timer, None, Why::Options), Change::Create);
        assert_eq!(
            change_for(timer, Some(&timer.content), Why::Options),
            Change::Keep
        );
        let mine = format!("{}# mine\n", timer.content);
        assert_eq!(
            change_for(timer, Some(&mine), Why::Options),
            Change::Replace
        );
    }

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
}
