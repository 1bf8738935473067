//! The Debian package in a booted systemd (see `common::container`): a first
//! install writes and starts nothing; an upgrade renders the installed units
//! anew from the new templates with the operator's options, and keeps the
//! timers as they were and the drop-ins; removal stops and disables the
//! timers; purge removes the units mailbackup wrote. None of them touches a
//! backup, the key or the settings.

use crate::common::container::{debian_package, Boot, Container, Suite};
use crate::common::needs_root;
use crate::common::package::{field, next_package, NEXT_TEMPLATE_LINE};

const UNITS: &str = "/etc/systemd/system";

/// What must outlive every step: the settings, the key, the backups.
const KEPT: &str = "sha256sum /etc/mailinabox.conf /home/user-data/backup/secret_key.txt /home/user-data/backup/encrypted/*";

/// The files in /etc/systemd/system whose names start with mailbackup.
fn unit_files(c: &Container) -> String {
    c.ok(&format!(
        "cd {UNITS} && ls -d mailbackup* 2>/dev/null || true"
    ))
}

/// `systemctl QUERY UNIT`'s answer, whatever its exit code.
fn says(c: &Container, query: &str, unit: &str) -> String {
    let out = c.sh(&format!("systemctl {query} {unit}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn upgrade_remove_and_purge_reach_the_units_and_never_the_backups() {
    needs_root!();
    upgrade_remove_and_purge(Suite::Bookworm);
}

/// The package's first install, upgrade, removal and purge on `suite`.
pub(crate) fn upgrade_remove_and_purge(suite: Suite) {
    let next = next_package(&field(&debian_package(), "Version"));
    let next_name = next.file_name().unwrap().to_str().unwrap().to_owned();
    let c = Boot::new()
        .suite(suite)
        .bind(next.parent().unwrap(), "/srv/next")
        .start();

    // A first install, on a box that has its settings: nothing written or started.
    c.ok("printf 'STORAGE_ROOT=/home/user-data\\nSTORAGE_USER=user-data\\nPRIMARY_HOSTNAME=box.example.com\\n' > /etc/mailinabox.conf");
    // The container has no network: of what the package recommends, what
    // the root lacks (python3-b2sdk) could not be fetched.
    c.ok("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /srv/host/mailbackup.deb");
    assert_eq!(unit_files(&c), "");
    assert_eq!(
        c.ok("systemctl list-units --all --no-legend 'mailbackup*'"),
        ""
    );
    assert!(c.sh("test -e /home/user-data/backup").status.code() == Some(1));

    // The operator's choices: a calendar, a drop-in, a timer disabled, a unit of their own.
    c.set_up_box(4, "--on-calendar '*-*-* 04:30:00'");
    c.ok(&format!(
        r#"set -e
        mkdir -p {UNITS}/mailbackup.service.d
        printf '[Service]\nEnvironment=MAILBACKUP_DROP_IN=kept\n' > {UNITS}/mailbackup.service.d/x.conf
        printf '[Service]\nExecStart=/bin/true\n' > {UNITS}/mailbackup-local.service
        systemctl daemon-reload
        systemctl disable --now mailbackup-verify.timer"#
    ));
    assert!(!c
        .ok(&format!("cat {UNITS}/mailbackup.service"))
        .contains(NEXT_TEMPLATE_LINE));

    // The upgrade.
    let out = c.ok(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /srv/next/{next_name} 2>&1"
    ));
    let next_version = field(&next, "Version");
    assert_eq!(
        c.ok("mailbackup --version").trim(),
        format!("mailbackup {next_version}")
    );
    let page = c.ok("zcat /usr/share/man/man1/mailbackup.1.gz");
    assert!(page.contains(&next_version), "{page}");
    assert!(
        out.contains("keeping the options of the earlier install: --on-calendar '*-*-* 04:30:00'"),
        "{out}"
    );
    assert!(
        out.contains(&format!("replaced {UNITS}/mailbackup.service")),
        "{out}"
    );
    assert!(
        out.contains("left mailbackup-verify.timer disabled, as it was"),
        "{out}"
    );
    assert_eq!(
        c.ok("dpkg-query -W -f '${Version}' mailbackup"),
        field(&next, "Version")
    );
    let service = c.ok(&format!("cat {UNITS}/mailbackup.service"));
    assert!(
        service.lines().any(|l| l == NEXT_TEMPLATE_LINE),
        "the unit was not rendered by the new templates:\n{service}"
    );
    assert!(
        service.contains(r#""on_calendar":"*-*-* 04:30:00""#),
        "{service}"
    );
    assert_eq!(
        says(&c, "show -p NeedDaemonReload --value", "mailbackup.service"),
        "no"
    );
    // The timers as the operator left them.
    assert_eq!(says(&c, "is-enabled", "mailbackup.timer"), "enabled");
    assert_eq!(says(&c, "is-active", "mailbackup.timer"), "active");
    let calendar = says(&c, "show -p TimersCalendar --value", "mailbackup.timer");
    assert!(calendar.contains("OnCalendar=*-*-* 04:30:00"), "{calendar}");
    assert_eq!(
        says(&c, "is-enabled", "mailbackup-verify.timer"),
        "disabled"
    );
    assert_eq!(says(&c, "is-active", "mailbackup-verify.timer"), "inactive");
    // The drop-in, still applied.
    let environment = says(&c, "show -p Environment --value", "mailbackup.service");
    assert!(
        environment.contains("MAILBACKUP_DROP_IN=kept"),
        "{environment}"
    );
    // A backup runs.
    let out = c.sh("systemctl start mailbackup.service");
    assert!(
        out.status.success(),
        "{}",
        c.ok("journalctl -u mailbackup.service --no-pager | tail -60")
    );
    assert_eq!(c.result(), "success");
    c.mail_is_up();
    assert_eq!(
        c.count("ls /home/user-data/backup/encrypted | grep -c manifest"),
        1
    );

    // A failed run before the removal: purge must not leave it behind as a
    // failed unit that is not found ("degraded").
    c.ok("mv /home/user-data/backup/secret_key.txt /root/key.saved");
    assert!(!c.sh("systemctl start mailbackup.service").status.success());
    c.ok("mv /root/key.saved /home/user-data/backup/secret_key.txt");
    assert!(c
        .ok("systemctl list-units --all --failed --no-legend 'mailbackup*'")
        .contains("mailbackup.service"));

    // Removal: the timers stop, the units and everything else stay.
    let kept = c.ok(KEPT);
    c.ok("DEBIAN_FRONTEND=noninteractive apt-get remove -y mailbackup");
    assert_eq!(says(&c, "is-enabled", "mailbackup.timer"), "disabled");
    assert_eq!(says(&c, "is-active", "mailbackup.timer"), "inactive");
    assert!(!c
        .ok("systemctl list-timers --all --no-pager")
        .contains("mailbackup"));
    assert!(c.sh("test -e /usr/bin/mailbackup").status.code() == Some(1));
    let files = unit_files(&c);
    assert!(files.contains("mailbackup.service\n"), "{files}");
    assert!(files.contains("mailbackup.timer\n"), "{files}");
    assert_eq!(c.ok(KEPT), kept);

    // Purge: the units mailbackup wrote go, and /var/lib/mailbackup; the
    // operator's stay, and so does the rest.
    c.ok("mkdir -p /var/lib/mailbackup && touch /var/lib/mailbackup/known_hosts");
    c.ok("DEBIAN_FRONTEND=noninteractive apt-get purge -y mailbackup");
    assert!(c.sh("test -e /var/lib/mailbackup").status.code() == Some(1));
    assert_eq!(
        unit_files(&c),
        "mailbackup-local.service\nmailbackup.service.d\n"
    );
    assert_eq!(
        says(&c, "show -p LoadState --value", "mailbackup.timer"),
        "not-found"
    );
    assert_eq!(
        c.ok(&format!("find -L {UNITS} -type l")),
        "",
        "links that lead nowhere"
    );
    assert_eq!(c.ok(KEPT), kept);
    assert_eq!(
        c.ok("systemctl list-units --all --failed --no-legend 'mailbackup*'"),
        ""
    );
    c.mail_is_up();

    // An upgrade where mailbackup install never ran writes nothing either.
    c.ok("dpkg -i /srv/host/mailbackup.deb");
    let out = c.ok(&format!("dpkg -i /srv/next/{next_name} 2>&1"));
    assert!(out.contains("nothing to refresh"), "{out}");
    assert_eq!(
        unit_files(&c),
        "mailbackup-local.service\nmailbackup.service.d\n"
    );
}
