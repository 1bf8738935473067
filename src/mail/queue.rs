//! Handing a message to postfix's queue with its `sendmail`: postdrop
//! writes it into `/var/spool/postfix/maildrop`, where it waits while
//! postfix is stopped (through a reboot too), and postfix's pickup delivers
//! it once postfix runs. The sandboxed failure unit may not gain the
//! set-gid `postdrop` group on exec; it is given the group
//! (`SupplementaryGroups=postdrop`) and the maildrop directory
//! (`ReadWritePaths=`) instead.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// postfix's sendmail on Debian.
pub const SENDMAIL: &str = "/usr/sbin/sendmail";

/// The group whose members may write postfix's maildrop.
pub const POSTDROP_GROUP: &str = "postdrop";

/// postfix's maildrop directory, which the failure unit may write.
pub const MAILDROP: &str = "/var/spool/postfix/maildrop";

/// Hands `message` (with its `To:` header) to `sendmail -t -i`, with the
/// envelope sender `from`.
pub fn hand_to_sendmail(sendmail: &Path, from: &str, message: &str) -> Result<()> {
    let mut child = Command::new(sendmail)
        .args(["-t", "-i", "-f", from])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("Failed to run {}", sendmail.display()))?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(message.as_bytes()));
    let out = child
        .wait_with_output()
        .with_context(|| format!("Failed to run {}", sendmail.display()))?;
    if !out.status.success() || !matches!(written, Some(Ok(()))) {
        bail!(
            "{} did not queue the mail ({}): {}",
            sendmail.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
