//! A Mail-in-a-Box mailbox on disk, as its dovecot sets it up
//! (`mail_location = maildir:STORAGE_ROOT/mail/mailboxes/%d/%n`): the
//! directory of an address, Maildir++ folder names (`.Parent.Child`, in
//! IMAP's modified UTF-7), the `subscriptions` file, and which folders of a
//! restored mailbox go where. Pure: no disk, no clock.

use std::path::PathBuf;

use anyhow::{bail, Result};

/// Where the mailboxes live, relative to `STORAGE_ROOT`.
pub const MAILBOXES: &str = "mail/mailboxes";

/// The file in a mailbox's directory where `restore --mailbox` notes what
/// it restored: a second restore of the same backup finds it there.
pub const RESTORES_FILE: &str = "mailbackup-restores";

/// An address with a mailbox: `user@domain`, lower case, as Mail-in-a-Box
/// stores it and dovecot's `%n` and `%d` split it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub user: String,
    pub domain: String,
}

impl Address {
    pub fn parse(text: &str) -> Result<Address> {
        let lower = text.trim().to_lowercase();
        let Some((user, domain)) = lower.rsplit_once('@') else {
            bail!("--mailbox {text:?} is not an email address: give one like alice@example.com");
        };
        let bad = |part: &str| {
            part.is_empty() || part == "." || part == ".." || part.contains(['/', '\0', '@'])
        };
        if bad(user) || bad(domain) {
            bail!("--mailbox {text:?} is not an email address: give one like alice@example.com");
        }
        Ok(Address {
            user: user.to_owned(),
            domain: domain.to_owned(),
        })
    }

    /// The mailbox's directory, relative to `STORAGE_ROOT`.
    pub fn relative_dir(&self) -> PathBuf {
        PathBuf::from(MAILBOXES).join(&self.domain).join(&self.user)
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

/// The mailboxes a `list-current-files` listing holds, as addresses. Each
/// line is a date in asctime's 24 columns, a space and a path.
pub fn mailboxes_in_listing(listing: &str) -> Vec<String> {
    let prefix = format!("{MAILBOXES}/");
    let mut found: Vec<String> = listing
        .lines()
        .filter_map(|line| line.get(25..)?.strip_prefix(prefix.as_str()))
        .filter_map(|rest| match rest.split('/').collect::<Vec<_>>()[..] {
            [domain, user] => Some(format!("{user}@{domain}")),
            _ => None,
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// A name in IMAP's modified UTF-7 (RFC 3501 5.1.3), as dovecot stores
/// folder names on disk.
pub fn mutf7_encode(name: &str) -> String {
    let mut out = String::new();
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out.push('-');
        run.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            run.extend(c.encode_utf16(&mut [0; 2]).iter());
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A modified UTF-7 name as people read it; `None` when it is not valid.
pub fn mutf7_decode(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('-')? + at;
        let encoded = &rest[at + 1..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let (mut bits, mut n, mut units) = (0u32, 0u32, Vec::new());
            for c in encoded.bytes() {
                let v = BASE64.iter().position(|b| *b == c)? as u32;
                bits = bits << 6 | v;
                n += 6;
                if n >= 16 {
                    n -= 16;
                    units.push((bits >> n) as u16);
                    bits &= (1 << n) - 1;
                }
            }
            out.push_str(&String::from_utf16(&units).ok()?);
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// A folder name as people type it (`Work/2024`, or `Work.2024`) as a
/// directory of the mailbox: `.Work.2024`. `INBOX` is the mailbox itself: "".
pub fn folder_dir(name: &str) -> Result<String> {
    let trimmed = name.trim_matches('/');
    if trimmed.eq_ignore_ascii_case("inbox") {
        return Ok(String::new());
    }
    let parts: Vec<&str> = trimmed.split(['/', '.']).collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--folder {name:?} is not a folder name: give one like Invoices or Work/2024");
    }
    let encoded: Vec<String> = parts.iter().map(|p| mutf7_encode(p)).collect();
    Ok(format!(".{}", encoded.join(".")))
}

/// A folder directory as people read its name: `.Work.2024` → `Work/2024`.
pub fn folder_display(dir: &str) -> String {
    match dir.strip_prefix('.') {
        None => "INBOX".to_owned(),
        Some(name) => name
            .split('.')
            .map(|p| mutf7_decode(p).unwrap_or_else(|| p.to_owned()))
            .collect::<Vec<_>>()
            .join("/"),
    }
}

/// Whether a directory entry of a mailbox is a Maildir++ folder.
pub fn is_folder_dir(name: &str) -> bool {
    name.len() > 1 && name.starts_with('.') && name != ".."
}

/// The folders (directories, "" for INBOX) that a restore of `wanted` takes
/// from `found`: that folder and those below it, or all of them.
pub fn select_folders(found: &[String], wanted: Option<&str>) -> Vec<String> {
    let mut chosen: Vec<String> = found
        .iter()
        .filter(|f| match wanted {
            None => true,
            Some("") => f.is_empty(),
            Some(w) => *f == w || f.starts_with(&format!("{w}.")),
        })
        .cloned()
        .collect();
    chosen.sort();
    chosen
}

/// Where a restored folder goes under the folder `into` (a directory like
/// `.Restored 2026-12-02`): INBOX becomes `into.INBOX`, `.Work.2024`
/// becomes `into.Work.2024`.
pub fn restored_dir(into: &str, folder: &str) -> String {
    if folder.is_empty() {
        format!("{into}.INBOX")
    } else {
        format!("{into}{folder}")
    }
}

/// The name of the folder a restore goes into: `Restored DATE`; when that
/// is taken (by a restore of another backup of that day), with the time;
/// then with a number.
pub fn restored_folder_name(date: &str, time: &str, taken: impl Fn(&str) -> bool) -> String {
    let first = format!("Restored {date}");
    if !taken(&first) {
        return first;
    }
    let second = format!("{first} {time}");
    (1..)
        .map(|n| match n {
            1 => second.clone(),
            n => format!("{second} ({n})"),
        })
        .find(|name| !taken(name))
        .unwrap_or(second)
}

/// The `subscriptions` file with `dirs` (folder directories) added, in the
/// file's format: dovecot's version 2 (a `V\t2` header, levels apart by
/// tabs) or the plain one (names with the Maildir++ separator `.`).
pub fn add_subscriptions(existing: &str, dirs: &[String]) -> String {
    const V2: &str = "V\t2\n\n";
    let v2 = existing.starts_with(V2);
    let mut text = existing.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let present: Vec<&str> = existing.lines().collect();
    for dir in dirs {
        let name = dir.trim_start_matches('.');
        let line = if v2 {
            name.split('.')
                .map(tab_escape)
                .collect::<Vec<_>>()
                .join("\t")
        } else {
            name.to_owned()
        };
        if !present.contains(&line.as_str()) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// dovecot's `str_append_tabescaped`.
fn tab_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\r' => out.push_str("\x01r"),
            '\n' => out.push_str("\x01n"),
            c => out.push(c),
        }
    }
    out
}

/// A line of the restores file: which backup, which folder of it ("*" for
/// all), and where it went ("" when it recreated the mailbox).
pub fn restores_line(stamp: &str, scope: &str, into: &str) -> String {
    format!("{stamp}\t{scope}\t{into}\n")
}

/// Where the restores file says that backup `stamp`'s `scope` went.
pub fn restored_before(restores: &str, stamp: &str, scope: &str) -> Vec<String> {
    restores
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            (f.next()? == stamp && f.next()? == scope).then(|| f.next().unwrap_or("").to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_to_mail_in_a_box_directories() {
        let a = Address::parse(" Alice@Example.COM ").unwrap();
        assert_eq!(a.to_string(), "alice@example.com");
        assert_eq!(
            a.relative_dir(),
            PathBuf::from("mail/mailboxes/example.com/alice")
        );
        for bad in ["alice", "@example.com", "alice@", "../x@y", "a@..", "a/b@c"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modified_utf7_round_trips_as_dovecot_writes_it() {
        for (plain, encoded) in [
            ("Entwürfe", "Entw&APw-rfe"),
            ("A & B", "A &- B"),
            ("日本語", "&ZeVnLIqe-"),
            ("Sent Items", "Sent Items"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ] {
            assert_eq!(mutf7_encode(plain), encoded);
            assert_eq!(mutf7_decode(encoded).as_deref(), Some(plain));
        }
        assert_eq!(mutf7_decode("&ZeVn"), None);
    }

    #[test]
    fn folder_names_become_maildir_plus_plus_directories() {
        assert_eq!(folder_dir("INBOX").unwrap(), "");
        assert_eq!(folder_dir("Invoices").unwrap(), ".Invoices");
        assert_eq!(folder_dir("Work/2024").unwrap(), ".Work.2024");
        assert_eq!(folder_dir("Work.Entwürfe").unwrap(), ".Work.Entw&APw-rfe");
        assert!(folder_dir("Work//x").is_err());
        assert_eq!(folder_display(".Work.Entw&APw-rfe"), "Work/Entwürfe");
        assert_eq!(folder_display(""), "INBOX");
    }

    #[test]
    fn a_folder_is_restored_with_its_subfolders_only() {
        let found: Vec<String> = ["", ".Work", ".Work.2024", ".Workshop", ".Sent"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            select_folders(&found, Some(".Work")),
            [".Work", ".Work.2024"]
        );
        assert_eq!(select_folders(&found, Some("")), [""]);
        assert_eq!(select_folders(&found, None).len(), 5);
        assert_eq!(
            restored_dir(".Restored 2026-12-02", ""),
            ".Restored 2026-12-02.INBOX"
        );
        assert_eq!(
            restored_dir(".Restored 2026-12-02", ".Work.2024"),
            ".Restored 2026-12-02.Work.2024"
        );
    }

    #[test]
    fn a_taken_name_gets_the_time_then_a_number() {
        let taken = ["Restored 2026-12-02", "Restored 2026-12-02 03:00"];
        assert_eq!(
            restored_folder_name("2026-12-03", "03:00", |n| taken.contains(&n)),
            "Restored 2026-12-03"
        );
        assert_eq!(
            restored_folder_name("2026-12-02", "15:30", |n| taken.contains(&n)),
            "Restored 2026-12-02 15:30"
        );
        assert_eq!(
            restored_folder_name("2026-12-02", "03:00", |n| taken.contains(&n)),
            "Restored 2026-12-02 03:00 (2)"
        );
    }

    #[test]
    fn subscriptions_keep_their_format() {
        let dirs = vec![".Restored 1".to_owned(), ".Restored 1.Work".to_owned()];
        assert_eq!(
            add_subscriptions("Sent\nWork", &dirs),
            "Sent\nWork\nRestored 1\nRestored 1.Work\n"
        );
        assert_eq!(
            add_subscriptions("V\t2\n\nSent\n", &dirs),
            "V\t2\n\nSent\nRestored 1\nRestored 1\tWork\n"
        );
        assert_eq!(
            add_subscriptions("Restored 1\n", &dirs[..1]),
            "Restored 1\n"
        );
    }

    #[test]
    fn restores_are_found_again_by_backup_and_folder() {
        let text = restores_line("20261202T030000Z", "*", "Restored 2026-12-02")
            + &restores_line("20261202T030000Z", ".Work", "Restored 2026-12-02 03:00");
        assert_eq!(
            restored_before(&text, "20261202T030000Z", "*"),
            ["Restored 2026-12-02"]
        );
        assert!(restored_before(&text, "20261203T030000Z", "*").is_empty());
    }

    #[test]
    fn listings_give_mailboxes() {
        let listing = "Wed Dec  2 03:00:00 2026 mail/mailboxes/example.com\n\
                       Wed Dec  2 03:00:00 2026 mail/mailboxes/example.com/alice\n\
                       Wed Dec  2 03:00:00 2026 mail/mailboxes/example.com/alice/cur\n\
                       Wed Dec  2 03:00:00 2026 mail/mailboxes/example.org/bob\n";
        let found = mailboxes_in_listing(listing);
        assert_eq!(found, ["alice@example.com", "bob@example.org"]);
    }
}
