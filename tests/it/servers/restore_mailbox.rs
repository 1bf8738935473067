//! `restore --mailbox`: one mailbox, or a folder of it, back into the live
//! Maildir from a real duplicity backup, beside the mail that is there.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::servers::Moto;
use crate::common::*;

const ALICE: &str = "mail/mailboxes/example.com/alice";

/// A folder's messages: "cur/NAME" or "new/NAME" (flags in the name) → content.
type Messages = BTreeMap<String, Vec<u8>>;
/// A mailbox's folders by directory ("" for INBOX) → their messages.
type Folders = BTreeMap<String, Messages>;

fn mail_user() -> (u32, u32) {
    let u = nix::unistd::User::from_name("mail").unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw())
}

/// alice's Maildir++ as dovecot keeps it: INBOX with seen, flagged and new
/// messages, Invoices with a subfolder, a folder with a UTF-8 name
/// (modified UTF-7 on disk), index files, subscriptions; owned by `mail`.
fn make_alice(root: &Path) -> PathBuf {
    let m = root.join(ALICE);
    let msg = |dir: &str, name: &str, body: &str| {
        let d = m.join(dir);
        fs::create_dir_all(&d).unwrap();
        let text = format!("Message-ID: <{name}@example.com>\r\nSubject: {body}\r\n\r\n{body}\r\n");
        fs::write(d.join(name), text).unwrap();
    };
    msg("cur", "1790000001.M1P1.box,S=90:2,S", "seen");
    msg("cur", "1790000002.M2P1.box,S=90:2,FRS", "flagged answered");
    msg("new", "1790000003.M3P1.box,S=90", "unread");
    msg(".Invoices/cur", "1790000004.M4P1.box,S=90:2,S", "invoice 1");
    msg(
        ".Invoices/cur",
        "1790000005.M5P1.box,S=90:2,a",
        "invoice keyword",
    );
    msg(
        ".Invoices.2025/cur",
        "1790000006.M6P1.box,S=90:2,RS",
        "invoice 2025",
    );
    msg(
        ".Entw&APw-rfe/cur",
        "1790000007.M7P1.box,S=90:2,D",
        "entwurf",
    );
    for dir in ["", ".Invoices", ".Invoices.2025", ".Entw&APw-rfe"] {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(m.join(dir).join(sub)).unwrap();
        }
        fs::write(m.join(dir).join("dovecot-uidlist"), "3 V1790000000 N9\n").unwrap();
        fs::write(m.join(dir).join("dovecot.index.log"), [7u8; 300]).unwrap();
    }
    fs::write(m.join(".Invoices/dovecot-keywords"), "0 $Paid\n").unwrap();
    fs::write(
        m.join("subscriptions"),
        "Invoices\nInvoices.2025\nEntw&APw-rfe\n",
    )
    .unwrap();
    let (uid, gid) = mail_user();
    chown_tree(&root.join("mail"), uid, gid);
    for e in walk(&root.join("mail")) {
        let mode = if e.is_dir() { 0o700 } else { 0o600 };
        fs::set_permissions(&e, fs::Permissions::from_mode(mode)).unwrap();
    }
    m
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_owned()];
    if dir.is_dir() {
        for e in fs::read_dir(dir).unwrap() {
            all.extend(walk(&e.unwrap().path()));
        }
    }
    all
}

/// The messages of every folder of the Maildir `m`.
fn folders(m: &Path) -> Folders {
    let mut found = Folders::new();
    for e in fs::read_dir(m).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && m.join(&name).is_dir() {
            found.insert(name.clone(), messages(&m.join(&name)));
        }
    }
    found.insert(String::new(), messages(m));
    found
}

fn messages(folder: &Path) -> Messages {
    let mut found = Messages::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            found.insert(
                format!("{sub}/{}", e.file_name().to_string_lossy()),
                fs::read(e.path()).unwrap(),
            );
        }
    }
    found
}

/// The folders under the restored folder `into`, by the backup's name.
fn restored_under(live: &Folders, into: &str) -> Folders {
    let prefix = format!(".{into}");
    live.iter()
        .filter_map(|(dir, msgs)| {
            let rest = dir.strip_prefix(&prefix)?;
            match rest {
                "" => None,
                ".INBOX" => Some((String::new(), msgs.clone())),
                other if other.starts_with('.') => Some((other.to_owned(), msgs.clone())),
                _ => None,
            }
        })
        .collect()
}

/// The folder a restore went into, from its report.
fn into_folder(out: &std::process::Output) -> String {
    let text = stderr(out);
    let at = text
        .find("into the new folder \"")
        .unwrap_or_else(|| panic!("{}", describe(out)));
    let rest = &text[at + "into the new folder \"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The UTC day of the newest backup on the box's local target.
fn backup_day(mailbox: &MailBox) -> String {
    let mut stamps: Vec<String> = fs::read_dir(mailbox.target())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.ends_with(".manifest.gpg")
                .then(|| name.rsplit('.').nth(2).unwrap().to_owned())
        })
        .collect();
    stamps.sort();
    let s = stamps.last().unwrap();
    format!("{}-{}-{}", &s[0..4], &s[4..6], &s[6..8])
}

fn without(mut f: Folders, prefix: &str) -> Folders {
    f.retain(|k, _| !k.starts_with(prefix));
    f
}

#[test]
fn a_deleted_folder_comes_back_beside_new_mail_with_flags_owner_and_subscription() {
    needs_root!();
    for flavor in flavors() {
        let mailbox = MailBox::new().with_flavor(&flavor);
        let m = make_alice(&mailbox.root);
        let at_backup = folders(&m);
        mailbox.ok(&["run"]);
        // Since the backup: Invoices deleted, new mail, a message read.
        fs::remove_dir_all(m.join(".Invoices")).unwrap();
        fs::write(
            m.join("new/1790000100.M9P1.box,S=20"),
            "Subject: new\r\n\r\nnew\r\n",
        )
        .unwrap();
        fs::rename(
            m.join("new/1790000003.M3P1.box,S=90"),
            m.join("cur/1790000003.M3P1.box,S=90:2,S"),
        )
        .unwrap();
        let before = folders(&m);
        let subscriptions_before = fs::read_to_string(m.join("subscriptions")).unwrap();

        let out = mailbox.ok(&["restore", "--mailbox", "Alice@Example.com"]);
        let into = into_folder(&out);
        assert_eq!(
            into,
            format!("Restored {}", backup_day(&mailbox)),
            "{flavor:?}"
        );
        let after = folders(&m);
        // Nothing that was there changed.
        assert_eq!(without(after.clone(), &format!(".{into}")), before);
        // Every folder of the backup, every message with its flags.
        assert_eq!(restored_under(&after, &into), at_backup);
        assert_eq!(after[&format!(".{into}")], Messages::new());
        // Keywords kept; dovecot's indexes and UID lists not copied.
        assert_eq!(
            fs::read_to_string(m.join(format!(".{into}.Invoices/dovecot-keywords"))).unwrap(),
            "0 $Paid\n"
        );
        assert!(!m.join(format!(".{into}.Invoices/dovecot-uidlist")).exists());
        assert!(m.join(format!(".{into}.Invoices/maildirfolder")).exists());
        // Owned and moded as the live mailbox.
        let (uid, gid) = mail_user();
        let restored = walk(&m).into_iter().filter(|p| {
            let top = p.strip_prefix(&m).unwrap().components().next();
            top.is_some_and(|c| {
                let c = c.as_os_str().to_string_lossy();
                c.starts_with(&format!(".{into}"))
                    || c == "subscriptions"
                    || c == "mailbackup-restores"
            })
        });
        for p in restored {
            let meta = fs::symlink_metadata(&p).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", p.display());
            let want = if meta.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(meta.mode() & 0o7777, want, "{}", p.display());
        }
        // Subscribed, the old subscriptions kept.
        let subscriptions = fs::read_to_string(m.join("subscriptions")).unwrap();
        assert!(subscriptions.starts_with(&subscriptions_before));
        for name in ["", ".INBOX", ".Invoices", ".Invoices.2025", ".Entw&APw-rfe"] {
            let line = format!("{into}{name}");
            assert!(
                subscriptions.lines().any(|l| l == line),
                "{line}: {subscriptions}"
            );
        }
        // The scratch directory is gone.
        let domain: Vec<_> = fs::read_dir(m.parent().unwrap()).unwrap().collect();
        assert_eq!(domain.len(), 1, "{domain:?}");
    }
}

#[test]
fn a_folder_comes_back_with_its_subfolders_only() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    let m = make_alice(&mailbox.root);
    let at_backup = folders(&m);
    mailbox.ok(&["run"]);
    fs::remove_dir_all(m.join(".Invoices")).unwrap();
    fs::remove_dir_all(m.join(".Invoices.2025")).unwrap();
    let out = mailbox.ok(&[
        "restore",
        "--mailbox",
        "alice@example.com",
        "--folder",
        "Invoices",
    ]);
    let into = into_folder(&out);
    let restored = restored_under(&folders(&m), &into);
    let want: Folders = at_backup
        .into_iter()
        .filter(|(k, _)| k.starts_with(".Invoices"))
        .collect();
    assert_eq!(restored, want);
    // A folder the backup does not hold: the error names the closest.
    let out = mailbox.run(&[
        "restore",
        "--mailbox",
        "alice@example.com",
        "--folder",
        "Entwurfe",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("closest it holds: Entwürfe"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_second_restore_of_the_same_backup_duplicates_nothing() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    let m = make_alice(&mailbox.root);
    mailbox.ok(&["run"]);
    let first = into_folder(&mailbox.ok(&["restore", "--mailbox", "alice@example.com"]));
    let after_first = folders(&m);
    let out = mailbox.ok(&["restore", "--mailbox", "alice@example.com"]);
    assert!(
        stderr(&out).contains(&format!(
            "already restored into alice@example.com (the folder \"{first}\")"
        )),
        "{}",
        describe(&out)
    );
    assert_eq!(
        folders(&m),
        after_first,
        "the second restore changed the mailbox"
    );
    // Once the person deleted the restored folders, it restores again.
    for dir in after_first
        .keys()
        .filter(|k| k.starts_with(&format!(".{first}")))
    {
        fs::remove_dir_all(m.join(dir)).unwrap();
    }
    let again = into_folder(&mailbox.ok(&["restore", "--mailbox", "alice@example.com"]));
    assert_eq!(again, first);
}

#[test]
fn an_unknown_address_names_the_closest_mailboxes_and_leaves_nothing() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    make_alice(&mailbox.root);
    make_mail_store(&mailbox.root, 6);
    mailbox.ok(&["run"]);
    let before = live_state(&mailbox.root);
    for (address, closest) in [
        ("alise@example.com", "alice@example.com"),
        ("alice@example.org", "alice@example.com"),
        ("zoe@example.com", "zoë@example.com"),
    ] {
        let out = mailbox.run(&["restore", "--mailbox", address]);
        assert!(!out.status.success(), "{}", describe(&out));
        let text = stderr(&out);
        assert!(
            text.contains(&format!("has no mailbox {address}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("the closest it holds: {closest}")),
            "{text}"
        );
        // The scratch directory (and a domain directory for it) came and went.
        let mut after = live_state(&mailbox.root);
        for dir in ["mail/mailboxes", "mail/mailboxes/example.com"] {
            if let Some(state) = after.get_mut(dir) {
                state.mtime = before[dir].mtime;
            }
        }
        let new: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        assert!(after == before, "{address} left something: {new:?}");
    }
    let out = mailbox.run(&["restore", "--folder", "Invoices", "--to", "/tmp/x"]);
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        describe(&out)
    );
    let out = mailbox.run(&["restore", "--mailbox", "not an address"]);
    assert!(
        stderr(&out).contains("is not an email address"),
        "{}",
        describe(&out)
    );
    let out = mailbox.run(&[
        "restore",
        "--mailbox",
        "alice@example.com",
        "--time",
        "yesterday",
    ]);
    assert!(
        stderr(&out).contains("is not a time duplicity takes"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_mailbox_deleted_since_is_recreated_as_it_was_with_its_owner() {
    needs_root!();
    let flavor = &flavors()[1];
    let mailbox = MailBox::new().with_flavor(flavor);
    let m = make_alice(&mailbox.root);
    let at_backup = folders(&m);
    let subscriptions = fs::read(m.join("subscriptions")).unwrap();
    mailbox.ok(&["run"]);
    fs::remove_dir_all(mailbox.root.join("mail/mailboxes/example.com")).unwrap();
    let out = mailbox.ok(&["restore", "--mailbox", "alice@example.com"]);
    assert!(
        stderr(&out).contains("as the mailbox (it was not there)"),
        "{}",
        describe(&out)
    );
    assert_eq!(folders(&m), at_backup);
    assert_eq!(fs::read(m.join("subscriptions")).unwrap(), subscriptions);
    let (uid, gid) = mail_user();
    for p in walk(&mailbox.root.join("mail/mailboxes/example.com")) {
        let meta = fs::symlink_metadata(&p).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", p.display());
    }
    // Restored again: it says so, nothing doubles.
    let out = mailbox.ok(&["restore", "--mailbox", "alice@example.com"]);
    assert!(
        stderr(&out).contains("(the mailbox itself)"),
        "{}",
        describe(&out)
    );
    assert_eq!(folders(&m), at_backup);
}

#[test]
fn another_restore_holding_the_lock_is_named_and_nothing_changes() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    let m = make_alice(&mailbox.root);
    mailbox.ok(&["run"]);
    let before = folders(&m);
    let lock = mailbox.root.join("backup/restore.lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args([
            "sh",
            "-c",
            "echo 'mailbackup restore --to, pid 1' > \"$0\"; sleep 10",
        ])
        .arg(&lock)
        .spawn()
        .unwrap();
    assert!(wait_for(10, || fs::read_to_string(&lock)
        .is_ok_and(|t| !t.is_empty())));
    let out = mailbox.run(&["restore", "--mailbox", "alice@example.com"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("another restore is running (mailbackup restore --to, pid 1)"),
        "{}",
        describe(&out)
    );
    assert_eq!(folders(&m), before);
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One step of churn: mail comes and goes, flags change, a folder comes
/// and goes.
fn churn(m: &Path, step: usize) {
    for n in 0..2 {
        let name = format!("17901{step:02}{n}.M{step}{n}P2.box,S=50");
        fs::write(
            m.join("new").join(&name),
            format!("Subject: step {step} {n}\r\n\r\n{step}\r\n"),
        )
        .unwrap();
    }
    let mut cur: Vec<_> = fs::read_dir(m.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cur.sort();
    if step.is_multiple_of(3) {
        if let Some(first) = cur.first() {
            fs::remove_file(first).unwrap();
        }
    }
    let mut new: Vec<_> = fs::read_dir(m.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    new.sort();
    let read = new.first().unwrap();
    let name = read.file_name().unwrap().to_string_lossy().into_owned();
    fs::rename(read, m.join("cur").join(format!("{name}:2,S"))).unwrap();
    if let Some(last) = cur.last().filter(|p| p.to_string_lossy().ends_with(":2,S")) {
        fs::rename(last, format!("{}F", last.display())).unwrap();
    }
    let folder = m.join(format!(".Step{}", step % 4));
    if folder.exists() {
        fs::remove_dir_all(&folder).unwrap();
    } else {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(folder.join(sub)).unwrap();
        }
        fs::write(
            folder.join(format!("cur/17902{step:02}.M1.box:2,S")),
            format!("step {step}"),
        )
        .unwrap();
    }
}

#[test]
fn twenty_backups_with_churn_each_restores_exactly_its_own_state() {
    needs_root!();
    let flavor = &flavors()[0];
    let mailbox = MailBox::new().with_flavor(flavor);
    let m = make_alice(&mailbox.root);
    let mut states: Vec<(u64, Folders)> = Vec::new();
    for step in 0..20 {
        if step > 0 {
            churn(&m, step);
        }
        states.push((0, folders(&m)));
        mailbox.ok(&["run"]);
        next_second();
        states.last_mut().unwrap().0 = epoch_now();
        next_second();
    }
    let mut used = Vec::new();
    for pick in [2usize, 9, 19] {
        let (time, state) = &states[pick];
        let out = mailbox.ok(&[
            "restore",
            "--mailbox",
            "alice@example.com",
            "--time",
            &time.to_string(),
        ]);
        let into = into_folder(&out);
        assert!(!used.contains(&into), "{into} used twice");
        assert_eq!(
            restored_under(&folders(&m), &into),
            *state,
            "backup {pick} restored another state"
        );
        used.push(into);
    }
}

#[test]
fn a_mailbox_comes_back_from_an_s3_target() {
    needs_root!();
    let flavor = &flavors()[1];
    let moto = Moto::start();
    moto.create_bucket("mailboxes");
    let mut mailbox = MailBox::new().with_flavor(flavor);
    mailbox.secrets.push(moto.secret.clone());
    mailbox.set_target(&moto.custom_yaml("mailboxes/box"));
    let m = make_alice(&mailbox.root);
    let at_backup = folders(&m);
    mailbox.ok(&["run"]);
    assert!(
        !mailbox.target().exists(),
        "the backup went to the local directory"
    );
    fs::remove_dir_all(m.join(".Invoices.2025")).unwrap();
    // Without the local cache: what the mailbox needs comes from the bucket.
    fs::remove_dir_all(mailbox.root.join("backup/cache")).unwrap();
    let out = mailbox.ok(&[
        "restore",
        "--mailbox",
        "alice@example.com",
        "--folder",
        "Invoices/2025",
    ]);
    let into = into_folder(&out);
    let restored = restored_under(&folders(&m), &into);
    assert_eq!(restored.keys().collect::<Vec<_>>(), [".Invoices.2025"]);
    assert_eq!(restored[".Invoices.2025"], at_backup[".Invoices.2025"]);
}
