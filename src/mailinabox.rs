//! Mail-in-a-Box's own nightly backup, kept from running beside mailbackup's.
//!
//! Mail-in-a-Box's cron job (`/etc/cron.d/mailinabox-nightly`, which its
//! setup rewrites on every run) runs `management/daily_tasks.sh` in its
//! checkout, and that runs `management/backup.py` unconditionally: left
//! alone, it would stop the mail and back up the same target a second time
//! every night. backup.py's first step is an `exclusiveprocess` lock: the
//! file `/var/lock/py_exclusivelock_<backup.py's absolute path, quoted as
//! a URL's query>.lock` holding a pid. When that process is alive,
//! backup.py prints "Another '…backup.py' process is already running (pid
//! 1)." and exits 1, before it stops a service, runs duplicity, prunes or
//! runs a hook. A tmpfiles.d line that writes pid 1 (always alive) into
//! that file holds the lock for good: systemd-tmpfiles writes it again at
//! every boot (`/run/lock` is a tmpfs), and Mail-in-a-Box's setup never
//! touches `/etc/tmpfiles.d`. No file of Mail-in-a-Box is edited; the cost
//! is that line in its nightly "Backup Status" mail.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Mail-in-a-Box's nightly cron job.
pub const CRON: &str = "/etc/cron.d/mailinabox-nightly";
/// The tmpfiles.d file that holds backup.py's lock.
pub const TMPFILES: &str = "/etc/tmpfiles.d/mailbackup-mailinabox.conf";

/// The checkout the cron job runs in: its line is
/// `M 1 * * * root (cd DIR && management/daily_tasks.sh)`.
pub fn checkout_of_cron(cron: &str) -> Option<PathBuf> {
    cron.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| {
            let (_, rest) = l.split_once("(cd ")?;
            let (dir, tail) = rest.split_once(" && ")?;
            tail.starts_with("management/daily_tasks.sh")
                .then(|| PathBuf::from(dir.trim()))
        })
}

/// Python's `urllib.parse.quote_plus`: letters, digits and `_.-~` stay,
/// a space is `+`, every other byte `%XX`.
fn quote_plus(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The lock file backup.py of the checkout takes.
pub fn lock_file(checkout: &Path) -> PathBuf {
    let script = checkout.join("management/backup.py");
    PathBuf::from(format!(
        "/run/lock/py_exclusivelock_{}.lock",
        quote_plus(&script.to_string_lossy())
    ))
}

/// The tmpfiles.d file: the lock file, written anew (`f+`) with pid 1.
pub fn tmpfiles_conf(checkout: &Path) -> String {
    format!(
        "# Written by `mailbackup install`: holds the lock of Mail-in-a-Box's backup.py\n\
         # in {}, so that its nightly job leaves the backups to mailbackup.\n\
         # `mailbackup uninstall` removes it.\n\
         f+ {} 0644 root root - 1\n",
        checkout.display(),
        lock_file(checkout).display().to_string().replace('%', "%%")
    )
}

/// On a Mail-in-a-Box, holds its backup.py's lock (now and at every boot);
/// says so when that is new. Nothing where there is no such cron job.
pub fn hold_nightly_backup(cron: &Path, tmpfiles: &Path) -> Result<()> {
    let text = match fs::read_to_string(cron) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("Failed to read {}", cron.display())),
    };
    let Some(checkout) = checkout_of_cron(&text) else {
        return Ok(());
    };
    let conf = tmpfiles_conf(&checkout);
    if fs::read_to_string(tmpfiles).ok().as_deref() != Some(conf.as_str()) {
        let aside = tmpfiles.with_extension("conf.new");
        fs::write(&aside, &conf)
            .and_then(|()| fs::rename(&aside, tmpfiles))
            .with_context(|| format!("Failed to write {}", tmpfiles.display()))?;
        println!(
            "wrote {}: Mail-in-a-Box's nightly backup.py ({}) no longer runs beside mailbackup (its nightly status mail says it is \"already running\")",
            tmpfiles.display(),
            checkout.join("management/backup.py").display()
        );
    }
    crate::systemd::run_tmpfiles_create(tmpfiles)
}

/// Lets Mail-in-a-Box's backup.py run again: removes the tmpfiles.d file
/// and the lock it wrote.
pub fn release_nightly_backup(tmpfiles: &Path) -> Result<()> {
    let conf = match fs::read_to_string(tmpfiles) {
        Ok(conf) => conf,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("Failed to read {}", tmpfiles.display())),
    };
    for line in conf.lines().filter(|l| l.starts_with("f+ ")) {
        if let Some(lock) = line.split_whitespace().nth(1) {
            let lock = lock.replace("%%", "%");
            match fs::remove_file(&lock) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("Failed to remove {lock}"))
                }
                _ => {}
            }
        }
    }
    fs::remove_file(tmpfiles)
        .with_context(|| format!("Failed to remove {}", tmpfiles.display()))?;
    println!(
        "removed {}: Mail-in-a-Box's nightly backup.py runs again",
        tmpfiles.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_is_read_from_the_cron_job_that_setup_writes() {
        let cron = "# Mail-in-a-Box --- Do not edit / will be overwritten on update.\n\
                    # Run nightly tasks: backup, status checks.\n\
                    37 1 * * *\troot\t(cd /root/mailinabox && management/daily_tasks.sh)\n";
        assert_eq!(
            checkout_of_cron(cron),
            Some(PathBuf::from("/root/mailinabox"))
        );
        assert_eq!(
            checkout_of_cron("# (cd /x && management/daily_tasks.sh)\n"),
            None
        );
        assert_eq!(checkout_of_cron("1 1 * * * root other.sh\n"), None);
    }

    #[test]
    fn the_lock_is_named_as_exclusiveprocess_names_it() {
        assert_eq!(
            lock_file(Path::new("/root/mailinabox")),
            Path::new(
                "/run/lock/py_exclusivelock_%2Froot%2Fmailinabox%2Fmanagement%2Fbackup.py.lock"
            )
        );
        assert_eq!(quote_plus("a b~c/ü"), "a+b~c%2F%C3%BC");
        let conf = tmpfiles_conf(Path::new("/root/mailinabox"));
        assert!(
            conf.ends_with("f+ /run/lock/py_exclusivelock_%%2Froot%%2Fmailinabox%%2Fmanagement%%2Fbackup.py.lock 0644 root root - 1\n"),
            "{conf}"
        );
    }
}
