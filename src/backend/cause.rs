//! Why a target could not be used, as data. Every kind of target names its
//! failures with one `Cause`, built from what is typed: HTTP status codes
//! and S3 error codes, `std::io::ErrorKind`s and errno values, the concrete
//! error types of ureq and rustls, the exit codes of rsync and ssh. A caller
//! that decides on a failure (`status --check` and its exit code) matches
//! the cause, never the words of the message, which are for people.
//!
//! A new kind of target builds its causes from its own codes in its own
//! module; a cause that no kind had before is one more variant here, and
//! the compiler then asks `status --check` what it means.

use std::fmt;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a target could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The server refused the key: the ssh key, or the S3 key id or secret.
    BadCredentials,
    /// The key is good but may not do this, or a file or directory may not
    /// be read or written.
    AccessDenied,
    /// The host name does not resolve.
    NameNotResolved,
    /// No connection, or no answer.
    Unreachable,
    /// The units were installed for a target on this box: no network.
    NoNetwork,
    /// The ssh server shows another host key than the one pinned.
    HostKeyChanged,
    /// TLS failed, such as https to a plain-http endpoint.
    TlsFailure,
    /// The bucket is in another region than the one requests are signed for.
    WrongRegion,
    /// The ssh login works, but the shell does not let rsync start.
    NoUsableShell,
    /// The server answered that the bucket does not exist.
    NoSuchBucket,
    /// The server answered that the directory does not exist.
    NoSuchPath,
    /// Anything else; the message says what.
    Other,
}

impl Cause {
    /// The cause of an I/O error, by its kind and errno, and by the
    /// concrete error it wraps (rustls wraps its own in an `io::Error`).
    pub fn of_io(e: &std::io::Error) -> Cause {
        use std::io::ErrorKind as K;
        if e.raw_os_error() == Some(libc::EAFNOSUPPORT) {
            return Cause::NoNetwork;
        }
        if e.get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return Cause::TlsFailure;
        }
        match e.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::TimedOut
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::AddrNotAvailable => Cause::Unreachable,
            K::NotFound => Cause::NoSuchPath,
            K::PermissionDenied | K::ReadOnlyFilesystem => Cause::AccessDenied,
            _ => Cause::Other,
        }
    }

    /// The cause of a failed HTTP exchange, by ureq's error variant.
    pub fn of_transport(e: &ureq::Error) -> Cause {
        match e {
            ureq::Error::HostNotFound => Cause::NameNotResolved,
            ureq::Error::Io(io) => Cause::of_io(io),
            ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed => Cause::Unreachable,
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => Cause::TlsFailure,
            _ => Cause::Other,
        }
    }

    /// The cause of the first error in an anyhow chain that has one: an
    /// `Unusable` or an I/O error.
    pub fn of_chain(e: &anyhow::Error) -> Cause {
        e.chain()
            .find_map(|c| {
                c.downcast_ref::<Unusable>()
                    .map(|u| u.cause)
                    .or_else(|| c.downcast_ref::<std::io::Error>().map(Cause::of_io))
            })
            .unwrap_or(Cause::Other)
    }
}

/// Why `probe` found no way to a server.
#[derive(Debug)]
pub enum Unreached {
    /// The name does not resolve.
    Name,
    /// No address took a connection: the last error.
    Connect(std::io::Error),
}

impl Unreached {
    pub fn cause(&self) -> Cause {
        match self {
            Unreached::Name => Cause::NameNotResolved,
            Unreached::Connect(e) => match Cause::of_io(e) {
                Cause::NoNetwork => Cause::NoNetwork,
                _ => Cause::Unreachable,
            },
        }
    }
}

/// Looks at `host` (a name or an address, IPv6 in brackets or not) and
/// `port` the way a connection would: whether the name resolves and
/// whether any of its addresses takes a TCP connection. For the failures
/// whose cause only a connection can tell (ssh says them all with exit
/// code 255; std's failed name lookup has no `ErrorKind` of its own).
pub fn probe(host: &str, port: u16) -> Result<(), Unreached> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    // `(name, port)` fails only in the name lookup.
    let addresses: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|_| Unreached::Name)?
        .collect();
    let mut last = Unreached::Name;
    for address in addresses {
        match TcpStream::connect_timeout(&address, Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Unreached::Connect(e),
        }
    }
    Err(last)
}

/// A target that could not be used: the message for people, in one line,
/// and its cause for programs.
#[derive(Debug)]
pub struct Unusable {
    pub message: String,
    pub cause: Cause,
}

impl Unusable {
    pub fn error(cause: Cause, message: String) -> anyhow::Error {
        anyhow::Error::new(Unusable { message, cause })
    }
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unusable {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn io_errors_by_kind_and_errno() {
        for (kind, cause) in [
            (ErrorKind::ConnectionRefused, Cause::Unreachable),
            (ErrorKind::TimedOut, Cause::Unreachable),
            (ErrorKind::HostUnreachable, Cause::Unreachable),
            (ErrorKind::NetworkUnreachable, Cause::Unreachable),
            (ErrorKind::NotFound, Cause::NoSuchPath),
            (ErrorKind::PermissionDenied, Cause::AccessDenied),
            (ErrorKind::InvalidInput, Cause::Other),
        ] {
            assert_eq!(Cause::of_io(&Error::from(kind)), cause, "{kind:?}");
        }
        for (errno, cause) in [
            (libc::EAFNOSUPPORT, Cause::NoNetwork),
            (libc::ECONNREFUSED, Cause::Unreachable),
            (libc::ENETUNREACH, Cause::Unreachable),
            (libc::ENOENT, Cause::NoSuchPath),
            (libc::EACCES, Cause::AccessDenied),
        ] {
            assert_eq!(
                Cause::of_io(&Error::from_raw_os_error(errno)),
                cause,
                "{errno}"
            );
        }
    }

    #[test]
    fn rustls_errors_inside_io_errors_are_tls_failures() {
        // As rustls's stream hands a plain-http answer to its hello on.
        let tls = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let io = Error::new(ErrorKind::InvalidData, tls);
        assert_eq!(Cause::of_io(&io), Cause::TlsFailure);
        assert_eq!(Cause::of_transport(&ureq::Error::Io(io)), Cause::TlsFailure);
        // The same kind without rustls inside is not TLS.
        let io = Error::new(ErrorKind::InvalidData, "corrupt message");
        assert_eq!(Cause::of_io(&io), Cause::Other);
    }

    #[test]
    fn ureq_errors_by_variant() {
        assert_eq!(
            Cause::of_transport(&ureq::Error::HostNotFound),
            Cause::NameNotResolved
        );
        assert_eq!(
            Cause::of_transport(&ureq::Error::ConnectionFailed),
            Cause::Unreachable
        );
        assert_eq!(
            Cause::of_transport(&ureq::Error::Timeout(ureq::Timeout::Connect)),
            Cause::Unreachable
        );
        assert_eq!(
            Cause::of_transport(&ureq::Error::Io(Error::from(ErrorKind::ConnectionRefused))),
            Cause::Unreachable
        );
        assert_eq!(
            Cause::of_transport(&ureq::Error::BadUri("x".into())),
            Cause::Other
        );
    }

    #[test]
    fn causes_are_found_in_chains_and_messages_kept() {
        let e = anyhow::Error::new(Error::from(ErrorKind::PermissionDenied))
            .context("Failed to write /srv/b/x");
        assert_eq!(Cause::of_chain(&e), Cause::AccessDenied);
        let e = Unusable::error(Cause::NoSuchBucket, "no such bucket: b".into())
            .context("while listing");
        assert_eq!(Cause::of_chain(&e), Cause::NoSuchBucket);
        assert_eq!(Cause::of_chain(&anyhow::anyhow!("plain")), Cause::Other);
    }

    #[test]
    fn a_port_nobody_listens_on_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(probe("127.0.0.1", port).is_ok());
        drop(listener);
        let e = probe("127.0.0.1", port).unwrap_err();
        assert_eq!(e.cause(), Cause::Unreachable);
        assert!(matches!(&e, Unreached::Connect(io) if io.kind() == ErrorKind::ConnectionRefused));
        assert_eq!(Unreached::Name.cause(), Cause::NameNotResolved);
        let no_network = Unreached::Connect(Error::from_raw_os_error(libc::EAFNOSUPPORT));
        assert_eq!(no_network.cause(), Cause::NoNetwork);
    }
}
