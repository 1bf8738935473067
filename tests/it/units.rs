//! The rendered units without installing them: golden files
//! (`tests/golden/`, rewritten with UPDATE_GOLDEN=1) and what
//! `systemd-analyze security --offline` scores them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::describe;
use mailbackup::backend::{Settings, SshFiles, UnitNeeds};
use mailbackup::config::Layout;
use mailbackup::systemd::units::{self, UnitSettings};

fn golden_dir(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(set)
}

/// Compares rendered units with `tests/golden/SET/`; with UPDATE_GOLDEN=1,
/// rewrites them instead (review the diff).
fn check_golden(set: &str, settings: &UnitSettings) {
    let dir = golden_dir(set);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for unit in units::render(settings).unwrap() {
        let path = dir.join(unit.name);
        if update {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &unit.content).unwrap();
        }
        let want = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            unit.content,
            want,
            "{} differs from the golden file; UPDATE_GOLDEN=1 rewrites it",
            path.display()
        );
    }
}

pub(crate) fn default_settings() -> UnitSettings {
    UnitSettings {
        config: "/etc/mailinabox.conf".into(),
        layout: Layout::new(Path::new("/home/user-data")),
        storage_user: "user-data".into(),
        bin: "/usr/bin/mailbackup".into(),
        on_calendar: "daily".into(),
        services: vec!["dovecot.service".into(), "postfix.service".into()],
        downtime: units::Downtime::Snapshot,
        verify_calendar: Some("monthly".into()),
        drill_calendar: Some("*-*-15 04:00:00".into()),
        metrics_dir: Some("/var/lib/prometheus/node-exporter".into()),
        mail_to: "administrator@box.example.com".into(),
        choices: "{}".into(),
        target: UnitNeeds::default(),
        postdrop: true,
        frozen: None,
    }
}

#[test]
fn golden_units_default() {
    check_golden("default", &default_settings());
}

#[test]
fn golden_units_customised() {
    check_golden(
        "custom",
        &UnitSettings {
            config: "/srv/box/mailinabox.conf".into(),
            layout: Layout::new(Path::new("/srv/box/data")),
            storage_user: "mail-data".into(),
            bin: "/usr/local/bin/mailbackup".into(),
            on_calendar: "*-*-* 03:30:00".into(),
            services: vec![
                "dovecot".into(),
                "postfix@-.service".into(),
                "nginx.service".into(),
            ],
            downtime: units::Downtime::Full,
            verify_calendar: None,
            drill_calendar: Some("*-*-20 02:00:00".into()),
            metrics_dir: None,
            mail_to: "ops+backup@example.org".into(),
            choices: r#"{"on_calendar":"*-*-* 03:30:00","downtime":"full"}"#.into(),
            target: UnitNeeds::default(),
            // A box without postfix: the failure mail has no queue to wait in.
            postdrop: false,
            frozen: None,
        },
    );
}

#[test]
fn golden_units_pause() {
    check_golden(
        "pause",
        &UnitSettings {
            downtime: units::Downtime::Pause,
            choices: r#"{"downtime":"pause"}"#.into(),
            ..default_settings()
        },
    );
}

/// The units of a box whose backups go to an S3 bucket (network, the
/// settings as a credential) or an ssh server (network, a state directory).
fn remote_settings(s3: bool) -> UnitSettings {
    UnitSettings {
        target: UnitNeeds {
            network: true,
            state_directory: !s3,
            credentials: if s3 {
                vec![("custom.yaml", "/home/user-data/backup/custom.yaml".into())]
            } else {
                Vec::new()
            },
            ping: false,
        },
        ..default_settings()
    }
}

/// A box on a local target with a `ping_url`: the pings open the network.
#[test]
fn golden_units_ping() {
    check_golden(
        "ping",
        &UnitSettings {
            target: UnitNeeds {
                ping: true,
                ..UnitNeeds::default()
            },
            ..default_settings()
        },
    );
}

#[test]
fn golden_units_remote_s3() {
    check_golden("remote-s3", &remote_settings(true));
}

/// A B2 bucket, as Mail-in-a-Box writes it: the key is in the settings, so
/// the units load them as a credential, and reach the network.
#[test]
fn golden_units_remote_b2() {
    let layout = Layout::new(Path::new("/home/user-data"));
    let path = layout.backup_dir.join("custom.yaml");
    let ssh = SshFiles::new(Path::new("/root"), Path::new("/var/lib/mailbackup"));
    let settings = Settings::parse(
        &path,
        "target: b2://0012ab:K001a%2Fb@my-bucket/box\n",
        &layout,
        &ssh,
    )
    .unwrap();
    let needs = settings.target.unwrap().unit_needs(&path);
    assert!(needs.network && !needs.state_directory);
    check_golden(
        "remote-b2",
        &UnitSettings {
            target: needs,
            ..default_settings()
        },
    );
}

#[test]
fn golden_units_remote_rsync() {
    check_golden("remote-rsync", &remote_settings(false));
}

/// `systemd-analyze security --offline` of one rendered service.
fn exposure(settings: &UnitSettings, name: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let rendered = units::render(settings).unwrap();
    let service = rendered.iter().find(|u| u.name == name).unwrap();
    fs::write(dir.path().join(name), &service.content).unwrap();
    let out = Command::new("systemd-analyze")
        .current_dir(dir.path())
        .args(["security", "--offline=yes", "--no-pager", name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.split(&format!("Overall exposure level for {name}: "))
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {}", describe(&out)))
}

#[test]
fn remote_targets_open_the_network_and_stay_locked_down() {
    let full = |s: UnitSettings| UnitSettings {
        downtime: units::Downtime::Full,
        ..s
    };
    for s3 in [true, false] {
        for (name, remote, local) in [
            (units::SERVICE, remote_settings(s3), default_settings()),
            // It runs duplicity itself only with the full downtime.
            (
                units::VERIFY_SERVICE,
                full(remote_settings(s3)),
                full(default_settings()),
            ),
            (
                units::DRILL_SERVICE,
                remote_settings(s3),
                default_settings(),
            ),
        ] {
            let (remote, local) = (exposure(&remote, name), exposure(&local, name));
            // The drill restores files with their owners: CAP_CHOWN and
            // CAP_FOWNER besides reading.
            let bound = if name == units::DRILL_SERVICE {
                2.5
            } else {
                2.0
            };
            assert!(remote <= bound, "{name}: exposure {remote} > {bound}");
            assert!(
                remote > local,
                "{name}: the network costs nothing? {remote}"
            );
        }
        // The snapshot never needs the network.
        assert_eq!(
            exposure(&remote_settings(s3), units::SNAPSHOT_SERVICE),
            exposure(&default_settings(), units::SNAPSHOT_SERVICE)
        );
    }
    assert!(exposure(&default_settings(), units::SERVICE) <= 1.1);
}

#[test]
fn the_services_are_locked_down() {
    for (name, downtime) in [
        (units::SERVICE, units::Downtime::Snapshot),
        (units::SERVICE, units::Downtime::Pause),
        (units::SERVICE, units::Downtime::Full),
        (units::VERIFY_SERVICE, units::Downtime::Snapshot),
        (units::VERIFY_SERVICE, units::Downtime::Full),
        (units::SNAPSHOT_SERVICE, units::Downtime::Snapshot),
        (units::DRILL_SERVICE, units::Downtime::Snapshot),
        (units::FAILURE_SERVICE, units::Downtime::Snapshot),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let rendered = units::render(&UnitSettings {
            downtime,
            ..default_settings()
        })
        .unwrap();
        let service = rendered.iter().find(|u| u.name == name).unwrap();
        fs::write(dir.path().join(name), &service.content).unwrap();
        let out = Command::new("systemd-analyze")
            .current_dir(dir.path())
            .args(["security", "--offline=yes", "--no-pager", name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| {
                // A template is scored as an instance, `@i`.
                l.split(&format!(
                    "Overall exposure level for {}: ",
                    name.replace("@.", "@i.")
                ))
                .nth(1)
            })
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no score in {}", describe(&out)));
        assert!(score <= 1.5, "{name}: exposure {score} > 1.5:\n{text}");
    }
}
