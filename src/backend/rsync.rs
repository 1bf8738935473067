//! A directory on an ssh server, reached with rsync and Mail-in-a-Box's
//! key: `rsync://USER@HOST[:PORT]/PATH` (`//PATH` is absolute, else it is
//! relative to the remote user's home).
//!
//! duplicity pastes `--ssh-options` into `rsync -e 'ssh …'` and splits that
//! line itself: every option is one word without quotes (Mail-in-a-Box's
//! inner quotes once made rsync upload the private key). Never a prompt
//! (BatchMode); the host key is pinned on first contact in mailbackup's own
//! known_hosts file, and a changed one is refused.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::cause::{probe, Unreached};
use super::{plain_word, Cause, SshFiles, Unusable};
use crate::duplicity::inventory::{Entry, Inventory, InventoryBuilder};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rsync {
    user: String,
    /// As written, IPv6 addresses in brackets.
    host: String,
    port: Option<u16>,
    /// As rsync takes it: `/abs/path` or `relative/path`, no trailing `/`.
    path: String,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Rsync {
    /// Parses what follows `rsync://`. duplicity's rsync backend also
    /// pastes the files of its archive dir `cache_dir` into a command line.
    pub fn parse(rest: &str, ssh: &SshFiles, cache_dir: &Path) -> Result<Rsync, String> {
        let form = "rsync://USER@HOST[:PORT]/PATH (//PATH for an absolute path)";
        let (authority, url_path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let Some((user, host_port)) = authority.rsplit_once('@') else {
            return Err(format!(
                "target rsync://{authority}… names no user: write {form}"
            ));
        };
        if user.contains(':') {
            return Err(
                "target rsync:// holds a password: mailbackup logs in with its ssh key only, \
                 write rsync://USER@HOST[:PORT]/PATH"
                    .to_owned(),
            );
        }
        let (host, port) = split_host_port(host_port).ok_or_else(|| {
            format!("target rsync://{user}@{host_port}… has no valid host or port: write {form}")
        })?;
        let path = match url_path.strip_prefix("//") {
            Some(abs) => format!("/{}", abs.trim_end_matches('/')),
            None => url_path.trim_matches('/').to_owned(),
        };
        if path.is_empty() || path == "/" {
            return Err(format!(
                "target rsync://{authority} names no directory: write {form}"
            ));
        }
        for (what, value) in [("user", user), ("host", host.as_str()), ("path", &path)] {
            if !plain_word(OsStr::new(value)) {
                return Err(format!(
                    "the {what} of target rsync://{authority}{url_path} holds a space, a quote or a \
                     backslash, which duplicity's rsync backend cannot pass on"
                ));
            }
        }
        for (what, file) in [
            ("ssh key", ssh.key.as_path()),
            ("known_hosts file", &ssh.known_hosts),
            ("archive directory", cache_dir),
        ] {
            if !plain_word(file.as_os_str()) {
                return Err(format!(
                    "the {what} {} holds a space or a quote, which duplicity's rsync backend \
                     cannot pass on to rsync",
                    file.display()
                ));
            }
        }
        Ok(Rsync {
            user: user.to_owned(),
            host,
            port,
            path,
            key: ssh.key.clone(),
            known_hosts: ssh.known_hosts.clone(),
        })
    }

    fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}@{}:{p}", self.user, self.host),
            None => format!("{}@{}", self.user, self.host),
        }
    }

    pub fn url(&self) -> OsString {
        // duplicity reads `//abs` as absolute, `/rel` as relative.
        format!("rsync://{}/{}", self.authority(), self.path).into()
    }

    pub fn describe(&self) -> String {
        self.url().to_string_lossy().into_owned()
    }

    pub fn key(&self) -> &Path {
        &self.key
    }

    /// ssh's options, each one word.
    fn ssh_options(&self) -> Vec<String> {
        vec![
            format!("-oIdentityFile={}", self.key.display()),
            "-oIdentitiesOnly=yes".to_owned(),
            "-oBatchMode=yes".to_owned(),
            "-oStrictHostKeyChecking=accept-new".to_owned(),
            format!("-oUserKnownHostsFile={}", self.known_hosts.display()),
            "-oGlobalKnownHostsFile=/dev/null".to_owned(),
            "-oUpdateHostKeys=no".to_owned(),
            "-oHashKnownHosts=no".to_owned(),
            "-oConnectTimeout=30".to_owned(),
            "-oServerAliveInterval=60".to_owned(),
        ]
    }

    pub fn duplicity_options(&self) -> Vec<OsString> {
        // One argv element; duplicity adds the port from the URL.
        vec![format!("--ssh-options={}", self.ssh_options().join(" ")).into()]
    }

    /// rsync's `-e`: ssh with the port and the options.
    fn remote_shell(&self) -> String {
        let mut shell = vec!["ssh".to_owned()];
        if let Some(p) = self.port {
            shell.push(format!("-p{p}"));
        }
        shell.extend(self.ssh_options());
        shell.join(" ")
    }

    /// `USER@HOST:PATH/` as rsync takes it.
    fn remote_dir(&self) -> String {
        format!("{}@{}:{}/", self.user, self.host, self.path)
    }

    /// The known_hosts file's directory must exist, or ssh pins nothing.
    fn prepare_known_hosts(&self) -> Result<()> {
        let Some(dir) = self.known_hosts.parent() else {
            return Ok(());
        };
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("Failed to create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("Failed to make {} private", dir.display()))?;
        }
        Ok(())
    }

    /// Runs rsync with the remote shell; its output, or the cause of its failure.
    fn rsync(&self, args: &[&OsStr], doing: &str) -> Result<Vec<u8>> {
        self.prepare_known_hosts()?;
        let out = Command::new("rsync")
            .arg("-e")
            .arg(self.remote_shell())
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .context("Failed to run rsync: install it with `apt-get install rsync`")?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let code = out.status.code();
        // ssh's own failures, passed on by rsync: what a connection tells.
        let probed = match code {
            Some(c) if SSH_FAILED.contains(&c) => probe(&self.host, self.port.unwrap_or(22)),
            _ => Ok(()),
        };
        let (cause, text) = diagnose(&String::from_utf8_lossy(&out.stderr), code, probed, self);
        Err(Unusable::error(
            cause,
            format!("{} {doing}: {text}", self.describe()),
        ))
    }

    pub fn inventory(&self) -> Result<Inventory> {
        let listing = self.rsync(
            &[
                OsStr::new("--list-only"),
                OsStr::new("--no-h"),
                OsStr::new(&self.remote_dir()),
            ],
            "cannot be listed",
        )?;
        let mut builder = InventoryBuilder::default();
        for entry in parse_list_only(&listing) {
            builder.add(entry);
        }
        Ok(builder.finish())
    }

    pub fn check(&self) -> Result<String> {
        let inventory = self.inventory()?;
        let name = super::check_file_name();
        let work = std::env::temp_dir().join(&name);
        std::fs::create_dir(&work)
            .with_context(|| format!("Failed to create {}", work.display()))?;
        let result = (|| {
            let probe = work.join(&name);
            std::fs::write(&probe, b"mailbackup check\n")
                .with_context(|| format!("Failed to write {}", probe.display()))?;
            let remote_probe = format!("{}{name}", self.remote_dir());
            self.rsync(
                &[probe.as_os_str(), OsStr::new(&remote_probe)],
                "cannot be written",
            )?;
            // What duplicity does to delete: an empty directory synced over
            // it, with everything but the file excluded.
            std::fs::remove_file(&probe)
                .with_context(|| format!("Failed to remove {}", probe.display()))?;
            let include = format!("--include=/{name}");
            let mut source = work.clone().into_os_string();
            source.push("/");
            self.rsync(
                &[
                    OsStr::new("--recursive"),
                    OsStr::new("--delete"),
                    OsStr::new(&include),
                    OsStr::new("--exclude=*"),
                    &source,
                    OsStr::new(&self.remote_dir()),
                ],
                "does not let a file be deleted",
            )?;
            Ok::<_, anyhow::Error>(())
        })();
        let _ = std::fs::remove_dir_all(&work);
        result?;
        let after = self.inventory()?;
        if after.unknown_files > inventory.unknown_files {
            bail!(
                "{}: the test file {name} was written but is still there after deleting it",
                self.describe()
            );
        }
        Ok(format!(
            "{} backups; a test file was written and deleted",
            inventory.backups.len()
        ))
    }
}

/// `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{v6}]"), port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (s.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
    };
    Some((host, port))
}

/// The entries of `rsync --list-only --no-h`, parsed by fields:
/// `PERMS SIZE DATE TIME NAME`; the name is the rest of the line.
pub fn parse_list_only(listing: &[u8]) -> Vec<Entry<'_>> {
    let mut entries = Vec::new();
    for line in listing.split(|&b| b == b'\n') {
        let mut rest = line;
        let mut fields: [&[u8]; 4] = [&[]; 4];
        let mut complete = true;
        for field in &mut fields {
            let start = rest
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            rest = &rest[start..];
            let end = rest
                .iter()
                .position(|b| b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            if end == 0 {
                complete = false;
                break;
            }
            *field = &rest[..end];
            rest = &rest[end..];
        }
        // One separator before the name, which may itself hold spaces.
        let Some(name) = rest.strip_prefix(b" ") else {
            continue;
        };
        if !complete || name.is_empty() || name == b"." {
            continue;
        }
        let digits: Vec<u8> = fields[1]
            .iter()
            .copied()
            .filter(|b| !matches!(b, b',' | b'.' | b'\''))
            .collect();
        let Some(size) = std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        entries.push(Entry {
            name,
            size,
            is_file: fields[0].first() == Some(&b'-'),
        });
    }
    entries
}

/// rsync's exit codes when its remote shell ended before rsync's protocol
/// began: ssh's own 255 passed on, or RERR_STREAMIO (rsync 3.5 says so
/// for a host key that ssh refused).
const SSH_FAILED: [i32; 2] = [255, 12];
/// rsync's RERR_PROTOCOL: what came back was not rsync's protocol (a
/// shell, nologin or a startup file, printed text first).
const RSYNC_PROTOCOL: i32 = 2;

/// The cause of a failed rsync: from its exit code; for ssh's failures
/// from `probed` (a name lookup and a connection), then from ssh's words
/// where nothing else tells; for a failed file operation from its errno.
fn rsync_cause(code: Option<i32>, stderr: &str, probed: &Result<(), Unreached>) -> Cause {
    match (code, probed) {
        (_, Err(unreached)) => unreached.cause(),
        (Some(RSYNC_PROTOCOL), _) => Cause::NoUsableShell,
        (Some(c), Ok(())) if SSH_FAILED.contains(&c) => {
            openssh_failure(stderr).unwrap_or(Cause::Other)
        }
        _ => rsync_errno(stderr).map_or(Cause::Other, |errno| {
            Cause::of_io(&std::io::Error::from_raw_os_error(errno))
        }),
    }
}

/// The causes of an ssh failure (`SSH_FAILED`) that reach no further
/// than its messages: a connection was made, then ssh gave up. These are
/// OpenSSH's exact words (`ssh` 9.x, sshconnect.c and sshconnect2.c), with
/// `LC_ALL=C`; `tests/remote.rs` holds them to a real OpenSSH sshd
/// (`targets_that_cannot_work_fail_with_their_cause_and_show_no_secret`).
fn openssh_failure(stderr: &str) -> Option<Cause> {
    let has = |s: &str| stderr.contains(s);
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || has("Host key verification failed.") {
        Some(Cause::HostKeyChanged)
    } else if stderr
        .lines()
        .any(|l| l.contains(": Permission denied (") && l.ends_with(")."))
    {
        // `USER@HOST: Permission denied (publickey,password).`
        Some(Cause::BadCredentials)
    } else if has("Connection closed by") || has("Connection reset by") {
        Some(Cause::Unreachable)
    } else {
        None
    }
}

/// The errno of rsync's first failed file operation: its messages end
/// with it, `rsync: [sender] change_dir "/srv/b" failed: No such file or
/// directory (2)`.
fn rsync_errno(stderr: &str) -> Option<i32> {
    stderr
        .lines()
        .filter(|l| l.starts_with("rsync: "))
        .find_map(|l| {
            let inner = l.trim_end().strip_suffix(')')?;
            let (_, number) = inner.rsplit_once(" (")?;
            number.parse().ok()
        })
}

/// What went wrong: the cause, and what to do in words.
fn diagnose(
    stderr: &str,
    code: Option<i32>,
    probed: Result<(), Unreached>,
    target: &Rsync,
) -> (Cause, String) {
    // sshd's note on a user whose home directory is missing, printed on
    // every login, names no cause of this failure.
    let stderr: String = stderr
        .lines()
        .filter(|l| !l.starts_with("Could not chdir to home directory"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cause = rsync_cause(code, &stderr, &probed);
    let host = &target.host;
    let host_port = match target.port {
        Some(p) => format!("{host}:{p}"),
        None => format!("{host}:22"),
    };
    let text = match cause {
        Cause::NoNetwork => super::NO_NETWORK.to_owned(),
        Cause::HostKeyChanged => host_key_changed(target, &host_port),
        Cause::BadCredentials => format!(
            "bad credentials: {host_port} refused the ssh key {key} for {user}: add the line of \
             {key}.pub to ~{user}/.ssh/authorized_keys on the server",
            key = target.key.display(),
            user = target.user
        ),
        Cause::NameNotResolved => {
            format!(
                "name not resolved: {host} is not a known host name (check the spelling and DNS)"
            )
        }
        Cause::Unreachable => match probed {
            Err(Unreached::Connect(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("unreachable: {host_port} refused the connection (is sshd listening on that port?)")
            }
            _ => format!("unreachable: no connection to {host_port}"),
        },
        // What nologin or a talkative shell startup file writes reaches
        // rsync in the place of its protocol.
        Cause::NoUsableShell => format!(
            "no usable shell: {user} logs in on {host} with the key, but its shell (nologin?) \
             or the shell's startup files print text, and rsync cannot start: give {user} a \
             shell such as /bin/sh, with startup files that print nothing",
            user = target.user
        ),
        Cause::NoSuchPath => format!(
            "no such path: {} does not exist on {host}: create it there (duplicity does not)",
            target.path
        ),
        Cause::AccessDenied => format!(
            "permission denied: {} on {host} cannot be read or written by {}",
            target.path, target.user
        ),
        _ => {
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            format!(
                "rsync failed (exit code {}): {last}",
                code.map_or_else(|| "none".to_owned(), |c| c.to_string())
            )
        }
    };
    (cause, text)
}

fn host_key_changed(target: &Rsync, host_port: &str) -> String {
    let host = target.host.trim_matches(['[', ']']);
    let known_hosts_name = match target.port {
        Some(p) if p != 22 => format!("[{host}]:{p}"),
        _ => host.to_owned(),
    };
    format!(
        "host key changed: the server at {host_port} shows another host key than the one \
         pinned in {kh}; if the server's key was changed on purpose, remove the old one with \
         `ssh-keygen -R '{known_hosts_name}' -f {kh}` and run `mailbackup check-target`",
        kh = target.known_hosts.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh() -> SshFiles {
        SshFiles::new(Path::new("/root"), Path::new("/var/lib/mailbackup"))
    }

    const CACHE: &str = "/home/user-data/backup/cache";

    impl Rsync {
        fn parse_test(rest: &str, ssh: &SshFiles) -> Result<Rsync, String> {
            Rsync::parse(rest, ssh, Path::new(CACHE))
        }
    }

    #[test]
    fn urls_as_mail_in_a_box_writes_them() {
        let t = Rsync::parse_test("backup@example.org//srv/backups/box/", &ssh()).unwrap();
        assert_eq!(t.url(), "rsync://backup@example.org//srv/backups/box");
        assert_eq!(t.remote_dir(), "backup@example.org:/srv/backups/box/");
        let t = Rsync::parse_test("me@10.0.0.2:2222/box", &ssh()).unwrap();
        assert_eq!(t.url(), "rsync://me@10.0.0.2:2222/box");
        assert_eq!(t.remote_dir(), "me@10.0.0.2:box/");
        assert!(t
            .remote_shell()
            .starts_with("ssh -p2222 -oIdentityFile=/root/.ssh/id_rsa_miab "));
        let t = Rsync::parse_test("me@[2001:db8::1]:23//b", &ssh()).unwrap();
        assert_eq!(t.url(), "rsync://me@[2001:db8::1]:23//b");
        assert_eq!(t.remote_dir(), "me@[2001:db8::1]:/b/");
    }

    #[test]
    fn ssh_options_are_one_argv_element_without_quotes() {
        let t = Rsync::parse_test("u@h:2200//d", &ssh()).unwrap();
        let opts = t.duplicity_options();
        assert_eq!(opts.len(), 1);
        let o = opts[0].to_str().unwrap();
        assert!(
            o.starts_with("--ssh-options=-oIdentityFile=/root/.ssh/id_rsa_miab "),
            "{o}"
        );
        assert!(!o.contains(['\'', '"']), "{o}");
        for want in [
            "-oBatchMode=yes",
            "-oStrictHostKeyChecking=accept-new",
            "-oUserKnownHostsFile=/var/lib/mailbackup/known_hosts",
            "-oIdentitiesOnly=yes",
        ] {
            assert!(o.split(' ').any(|w| w == want), "{want} not in {o}");
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "example.org//srv",
            "u:pw@h//srv",
            "u@h",
            "u@h/",
            "u@h//",
            "u@h:0//d",
            "u@h:99999//d",
            "u@h:x//d",
            "u@//d",
            "u@h//a b",
            "u@h//it's",
        ] {
            assert!(Rsync::parse_test(bad, &ssh()).is_err(), "{bad}");
        }
        let spaced = SshFiles::new(Path::new("/root"), Path::new("/var/lib/my state"));
        let e = Rsync::parse_test("u@h//d", &spaced).unwrap_err();
        assert!(e.contains("known_hosts"), "{e}");
        let e =
            Rsync::parse("u@h//d", &ssh(), Path::new("/home/user data/backup/cache")).unwrap_err();
        assert!(e.contains("archive directory"), "{e}");
        let e = Rsync::parse_test("u:secret@h//d", &ssh()).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn listings_are_parsed_by_fields() {
        let listing = b"drwxr-xr-x          4,096 2026/11/28 04:00:00 .\n\
            -rw-r--r--  2147483648 2026/11/28 04:00:01 duplicity-full.20261128T040000Z.vol1.difftar.gpg\n\
            -rw-r--r--     1,234,567 2026/11/28 04:00:02 duplicity-full.20261128T040000Z.manifest.gpg\n\
            -rw-r--r--          12 2026/11/28 04:00:03 a name with  spaces\n\
            drwxr-xr-x          4096 2026/11/28 04:00:04 subdir\n\
            lrwxrwxrwx           3 2026/11/28 04:00:05 link -> x\n\
            garbage\n\n";
        let e = parse_list_only(listing);
        let got: Vec<(String, u64, bool)> = e
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(e.name).into_owned(),
                    e.size,
                    e.is_file,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "duplicity-full.20261128T040000Z.vol1.difftar.gpg".into(),
                    2147483648,
                    true
                ),
                (
                    "duplicity-full.20261128T040000Z.manifest.gpg".into(),
                    1234567,
                    true
                ),
                ("a name with  spaces".into(), 12, true),
                ("subdir".into(), 4096, false),
                ("link -> x".into(), 3, false),
            ]
        );
    }

    #[test]
    fn failures_are_named_by_cause() {
        let t = Rsync::parse_test("u@h.example:2222//srv/b", &ssh()).unwrap();
        let refused = || {
            Err(Unreached::Connect(
                std::io::ErrorKind::ConnectionRefused.into(),
            ))
        };
        let d = |stderr: &str, code: i32, probed: Result<(), Unreached>| {
            diagnose(stderr, Some(code), probed, &t)
        };
        let no_home = "Could not chdir to home directory /home/u: No such file or directory\n";
        let closed = "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n\
            rsync error: unexplained error (code 255) at io.c(232) [Receiver=3.2.7]\n";
        for (stderr, code, probed, cause, words) in [
            (
                format!("@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n{closed}"),
                12, Ok(()), Cause::HostKeyChanged,
                "host key changed: the server at h.example:2222",
            ),
            (
                format!("u@h.example: Permission denied (publickey).\n{closed}"),
                255, Ok(()), Cause::BadCredentials, "bad credentials: h.example:2222 refused",
            ),
            (closed.to_owned(), 255, Err(Unreached::Name), Cause::NameNotResolved, "name not resolved"),
            (closed.to_owned(), 255, refused(), Cause::Unreachable, "unreachable: h.example:2222 refused"),
            (
                closed.to_owned(), 255,
                Err(Unreached::Connect(std::io::ErrorKind::TimedOut.into())),
                Cause::Unreachable, "unreachable: no connection to h.example:2222",
            ),
            (
                closed.to_owned(), 255,
                Err(Unreached::Connect(std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT))),
                Cause::NoNetwork, "no network here",
            ),
            (
                format!("{no_home}rsync: [sender] change_dir \"/srv/b\" failed: No such file or directory (2)\n"),
                23, Ok(()), Cause::NoSuchPath, "no such path: /srv/b",
            ),
            (
                format!("{no_home}rsync: [sender] change_dir \"/srv/b\" failed: Permission denied (13)\n"),
                23, Ok(()), Cause::AccessDenied, "permission denied: /srv/b",
            ),
            (
                format!("{no_home}protocol version mismatch -- is your shell clean?\n(see the rsync manpage for an explanation)\nrsync error: protocol incompatibility (code 2) at compat.c(625) [Receiver=3.5.0]\n"),
                2, Ok(()), Cause::NoUsableShell, "no usable shell",
            ),
            ("something else\n".to_owned(), 255, Ok(()), Cause::Other, "rsync failed (exit code 255): something else"),
            ("something else\n".to_owned(), 12, Ok(()), Cause::Other, "rsync failed (exit code 12): something else"),
        ] {
            let (got, text) = d(&stderr, code, probed);
            assert_eq!(got, cause, "{stderr}");
            assert!(text.starts_with(words), "{words:?}: {text}");
        }
        let (_, text) = d("Host key verification failed.\n", 255, Ok(()));
        assert!(
            text.contains("ssh-keygen -R '[h.example]:2222' -f /var/lib/mailbackup/known_hosts"),
            "{text}"
        );
    }

    #[test]
    fn errno_is_read_from_rsync_lines_only() {
        assert_eq!(
            rsync_errno("rsync: [Receiver] mkdir \"/x\" failed: Read-only file system (30)\n"),
            Some(30)
        );
        assert_eq!(rsync_errno("ssh: something (2)\n"), None);
        assert_eq!(
            rsync_errno(
                "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n"
            ),
            None
        );
    }
}
