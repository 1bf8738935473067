//! What the snapshot copies and what it links: the policy, apart from the
//! walk that carries it out (`walk.rs`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// The directory of `STORAGE_ROOT` that the mail services write.
pub const MAIL_DIR: &str = "mail";

/// Where in `STORAGE_ROOT` a directory lies, which decides what is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// `STORAGE_ROOT` itself.
    Root,
    /// Under `mail/`, outside the Maildir message folders.
    Mail,
    /// A Maildir's `cur/`, `new/` or `tmp/`, anywhere.
    Messages,
    /// Anywhere else.
    Other,
}

impl Region {
    /// The region of the subdirectory `name`; `is_maildir` tells whether
    /// this directory is a Maildir (has `cur/` and `tmp/`).
    pub fn child(self, name: &OsStr, is_maildir: impl FnOnce() -> bool) -> Region {
        let name = name.as_bytes();
        match self {
            Region::Messages => Region::Messages,
            _ if matches!(name, b"cur" | b"new" | b"tmp") && is_maildir() => Region::Messages,
            Region::Root if name == MAIL_DIR.as_bytes() => Region::Mail,
            Region::Root => Region::Other,
            region => region,
        }
    }

    /// Whether a file called `name` here is copied rather than linked: the
    /// mail services may change it in place.
    pub fn copies(self, name: &OsStr) -> bool {
        match self {
            Region::Messages => false,
            Region::Mail => true,
            Region::Root | Region::Other => is_dovecot_file(name.as_bytes()),
        }
    }
}

/// The endings of the names SQLite databases are given (case aside).
const DATABASE_ENDINGS: [&str; 8] = [
    ".db", ".db3", ".sqlite", ".sqlite3", ".sq3", ".s3db", ".sl3", ".sdb",
];

impl Region {
    /// Whether a regular file called `name`, in a directory `depth` levels
    /// below `STORAGE_ROOT` (0 for the root itself), is opened to see whether
    /// it is a SQLite database. Reading a header costs a disk seek where the
    /// file is not cached, so not every file is read:
    ///
    /// - in `mail/` outside the Maildir message folders, every file: there
    ///   are a few per mail folder, and they are copied anyway
    ///   (`users.sqlite`, `roundcube/roundcube.sqlite`);
    /// - directly in `STORAGE_ROOT` or in one of its directories, every file:
    ///   where services keep their state (`owncloud/owncloud.db`);
    /// - anywhere else (Nextcloud's files, web sites), names with an ending
    ///   that SQLite databases have (`.db`, `.sqlite`, …);
    /// - never a Maildir message.
    pub fn may_hold_database(self, depth: usize, name: &OsStr) -> bool {
        match self {
            Region::Messages => false,
            Region::Mail => true,
            Region::Root | Region::Other => depth <= 1 || has_database_ending(name.as_bytes()),
        }
    }
}

fn has_database_ending(name: &[u8]) -> bool {
    let name = name.to_ascii_lowercase();
    DATABASE_ENDINGS
        .iter()
        .any(|e| name.len() > e.len() && name.ends_with(e.as_bytes()))
}

/// The files Dovecot rewrites in place, wherever a mailbox lies.
fn is_dovecot_file(name: &[u8]) -> bool {
    name.starts_with(b"dovecot")
        || name.starts_with(b".dovecot")
        || name == b"maildirsize"
        || name == b"subscriptions"
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn regions() {
        let root = Region::Root;
        assert_eq!(root.child(os("mail"), || false), Region::Mail);
        assert_eq!(root.child(os("owncloud"), || false), Region::Other);
        let mail = Region::Mail;
        assert_eq!(mail.child(os("mailboxes"), || false), Region::Mail);
        assert_eq!(mail.child(os("cur"), || true), Region::Messages);
        assert_eq!(mail.child(os("tmp"), || true), Region::Messages);
        assert_eq!(
            mail.child(os("cur"), || false),
            Region::Mail,
            "a cur without tmp is no Maildir"
        );
        assert_eq!(
            mail.child(os("sieve"), || panic!(
                "only cur, new and tmp are looked at"
            )),
            Region::Mail
        );
        assert_eq!(Region::Other.child(os("new"), || true), Region::Messages);
        assert_eq!(Region::Messages.child(os("x"), || false), Region::Messages);
    }

    #[test]
    fn where_databases_are_looked_for() {
        // Every database a Mail-in-a-Box keeps.
        assert!(Region::Mail.may_hold_database(1, os("users.sqlite")));
        assert!(Region::Mail.may_hold_database(2, os("roundcube.sqlite")));
        assert!(Region::Other.may_hold_database(1, os("owncloud.db")));
        // Whatever a service keeps at the top of its directory.
        assert!(Region::Other.may_hold_database(1, os("state")));
        assert!(Region::Root.may_hold_database(0, os("anything")));
        // Deeper, by name only.
        assert!(Region::Other.may_hold_database(5, os("Notes.SQLite3")));
        assert!(Region::Other.may_hold_database(4, os("x.db")));
        assert!(!Region::Other.may_hold_database(2, os("photo.jpg")));
        assert!(!Region::Other.may_hold_database(4, os(".db")));
        assert!(!Region::Messages.may_hold_database(1, os("x.db")));
        assert!(Region::Mail.may_hold_database(4, os("dovecot.index")));
    }

    #[test]
    fn what_is_copied() {
        assert!(!Region::Messages.copies(os("1790000000.M1P1.box,S=300:2,S")));
        assert!(!Region::Messages.copies(os("dovecot.index")));
        assert!(Region::Mail.copies(os("users.sqlite")));
        assert!(Region::Mail.copies(os("dovecot.index.log")));
        assert!(!Region::Other.copies(os("photo.jpg")));
        assert!(!Region::Root.copies(os("owncloud.db")));
        for name in [
            "dovecot.index.cache",
            "dovecot-uidlist",
            ".dovecot.lda-dupes",
            "maildirsize",
            "subscriptions",
        ] {
            assert!(Region::Other.copies(os(name)), "{name}");
        }
    }
}
