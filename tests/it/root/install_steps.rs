//! How `install` tells a unit it rendered from one edited by hand: the
//! hash of the body in each unit's header line, and units written before
//! headers held one.

use std::fs;
use std::path::Path;

use crate::common::*;
use crate::root::install::install_box;
use mailbackup::systemd::units;

/// Installs into `units`; what it printed.
fn install(mailbox: &MailBox, units: &Path, extra: &[&str]) -> String {
    let out = crate::root::install::install(mailbox, units, extra);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The header line as a version with other templates would have stamped
/// the body `body`.
fn stamped(header: &str, body: &str) -> String {
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(body.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let (mark, _) = header.split_once(" body-sha256=").unwrap();
    format!("{mark} body-sha256={hash}\n{body}")
}

/// A unit that another version rendered (its body matches its hash) is
/// replaced as mailbackup's own; the same change without the hash is a
/// hand edit, and said to be one.
#[test]
fn a_unit_another_version_rendered_is_no_hand_edit() {
    needs_root!();
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    install(&mailbox, &units, &[]);
    let timer = units.join(units::TIMER);
    let ours = fs::read_to_string(&timer).unwrap();
    let (header, body) = ours.split_once('\n').unwrap();
    let older = body.replace("Persistent=true\n", "Persistent=true\nAccuracySec=1h\n");
    assert_ne!(older, body);

    fs::write(&timer, stamped(header, &older)).unwrap();
    let text = install(&mailbox, &units, &[]);
    assert!(
        text.contains(&format!(
            "replaced {} with what this version of mailbackup renders\n",
            timer.display()
        )) && !text.contains("by hand"),
        "{text}"
    );
    assert_eq!(fs::read_to_string(&timer).unwrap(), ours);

    fs::write(&timer, format!("{header}\n{older}")).unwrap();
    let text = install(&mailbox, &units, &[]);
    assert!(
        text.contains(&format!("replaced {}: it differed", timer.display()))
            && text.contains("edited by hand"),
        "{text}"
    );
    assert_eq!(fs::read_to_string(&timer).unwrap(), ours);
}

/// Units written before the header held a hash: those whose body is what
/// mailbackup renders get the new header, quietly as mailbackup's own;
/// one whose body differs counts as edited, as before.
#[test]
fn units_without_a_hash_in_their_header_are_read_as_before() {
    needs_root!();
    let mailbox = install_box();
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    install(&mailbox, &units, &[]);
    let ours: Vec<String> = units::ALL
        .iter()
        .map(|n| fs::read_to_string(units.join(n)).unwrap())
        .collect();
    for (name, content) in units::ALL.iter().zip(&ours) {
        let (header, body) = content.split_once('\n').unwrap();
        let (old_header, _) = header.split_once(" body-sha256=").unwrap();
        let body = if *name == units::TIMER {
            body.replace("daily", "hourly")
        } else {
            body.to_owned()
        };
        fs::write(units.join(name), format!("{old_header}\n{body}")).unwrap();
    }
    let text = install(&mailbox, &units, &[]);
    for name in units::ALL {
        let path = units.join(name).display().to_string();
        let said = if name == units::TIMER {
            format!("replaced {path}: it differed")
        } else {
            format!("replaced {path} with what this version of mailbackup renders\n")
        };
        assert!(text.contains(&said), "{name}: {text}");
    }
    assert_eq!(text.matches("by hand").count(), 1, "{text}");
    let now: Vec<String> = units::ALL
        .iter()
        .map(|n| fs::read_to_string(units.join(n)).unwrap())
        .collect();
    assert_eq!(now, ours);
}
