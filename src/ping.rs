//! The dead-man's switch: pings to the `ping_url` of `custom.yaml` with
//! the healthchecks.io protocol. `URL/start` when a run starts, `URL` when
//! it succeeded, `URL/fail` or `URL/EXITCODE` when it failed, each with a
//! few lines of the run's log as the body. A plain URL of another service
//! (an Uptime Kuma push URL, say) works as the success ping.
//!
//! A ping never fails a run and never holds it up for long: each attempt
//! has a short timeout, a few are made, and a failure is only logged. The
//! URL is a secret (anyone who has it can mark the box healthy): it is
//! never logged, only its host.

use std::fmt;
use std::time::Duration;

use crate::backend::Secret;

/// The most bytes of log a ping carries (healthchecks.io keeps 100 kB).
pub const MAX_BODY: usize = 10_000;

/// A `ping_url`: an http:// or https:// URL. `Debug` shows only its host.
#[derive(Clone, PartialEq, Eq)]
pub struct PingUrl(Secret);

impl fmt::Debug for PingUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PingUrl({}/<redacted>)", self.host())
    }
}

impl PingUrl {
    /// Checks a `ping_url` value. The message never repeats the value.
    pub fn parse(value: &str) -> Result<PingUrl, String> {
        let value = value.trim();
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        match host {
            None => Err("ping_url must be an http:// or https:// URL".to_owned()),
            Some("") => Err("ping_url must be an http:// or https:// URL with a host".to_owned()),
            Some(_) if value.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                Err("ping_url must be an http:// or https:// URL without spaces".to_owned())
            }
            Some(_) => Ok(PingUrl(Secret::new(value.to_owned()))),
        }
    }

    /// The URL as a secret, to blank it out of text.
    pub fn secret(&self) -> &Secret {
        &self.0
    }

    /// The host (and port), which the log may name.
    pub fn host(&self) -> &str {
        let url = self.0.expose();
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        // user:password@host
        host.rsplit_once('@').map_or(host, |(_, h)| h)
    }

    /// The URL of one signal: `/start`, `/fail` or `/N` appended to the
    /// path, before a query.
    fn url_of(&self, signal: Signal) -> String {
        let url = self.0.expose();
        let suffix = match signal {
            Signal::Success => return url.to_owned(),
            Signal::Start => "start".to_owned(),
            Signal::Fail => "fail".to_owned(),
            Signal::ExitCode(code) => code.to_string(),
        };
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let mut out = format!("{}/{suffix}", base.trim_end_matches('/'));
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Start,
    Success,
    Fail,
    /// A failure with the run's exit code (1–255).
    ExitCode(u8),
}

impl Signal {
    /// How a systemd unit's run ended, from what systemd gives its
    /// `ExecStopPost=` commands (`$SERVICE_RESULT`, `$EXIT_CODE`,
    /// `$EXIT_STATUS`): a success only when systemd says so and the main
    /// process exited 0; an operator's `systemctl stop` (killed, result
    /// success) is a failure, since the run did not finish.
    pub fn of_run(service_result: &str, exit_code: &str, exit_status: &str) -> Signal {
        match (service_result, exit_code, exit_status.parse::<u8>()) {
            ("success", "exited", Ok(0)) => Signal::Success,
            ("exit-code", "exited", Ok(n)) if n != 0 => Signal::ExitCode(n),
            _ => Signal::Fail,
        }
    }

    fn name(self) -> String {
        match self {
            Signal::Start => "start".to_owned(),
            Signal::Success => "success".to_owned(),
            Signal::Fail => "fail".to_owned(),
            Signal::ExitCode(n) => format!("exit code {n}"),
        }
    }
}

/// How hard a ping tries: `attempts` requests of at most `timeout` each,
/// `pause` apart (doubled after each).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub attempts: u32,
    pub timeout: Duration,
    pub pause: Duration,
}

/// Three attempts of 5 s, 1 s and 2 s apart: a ping server that is down
/// or hangs holds a run up for 18 s at most.
pub const POLICY: Policy = Policy {
    attempts: 3,
    timeout: Duration::from_secs(5),
    pause: Duration::from_secs(1),
};

/// Tells the switch that a run starts.
pub fn start(url: &PingUrl, body: &str) -> bool {
    report(url, Signal::Start, body)
}

/// Tells the switch that a run succeeded.
pub fn success(url: &PingUrl, body: &str) -> bool {
    report(url, Signal::Success, body)
}

/// Tells the switch that a run failed.
pub fn fail(url: &PingUrl, body: &str) -> bool {
    report(url, Signal::Fail, body)
}

/// Sends one signal with the default policy and logs how it went; whether
/// the service took it.
pub fn report(url: &PingUrl, signal: Signal, body: &str) -> bool {
    match send(url, signal, body, &POLICY) {
        Ok(()) => {
            eprintln!("mailbackup: pinged {} ({})", url.host(), signal.name());
            true
        }
        Err(e) => {
            eprintln!(
                "mailbackup: warning: the ping to {} ({}) failed: {}; the run goes on",
                url.host(),
                signal.name(),
                url.secret().redact(&e)
            );
            false
        }
    }
}

/// The last `MAX_BODY` bytes of `log`, at a line start where possible.
pub fn body_of(log: &str) -> &str {
    if log.len() <= MAX_BODY {
        return log;
    }
    let mut cut = log.len() - MAX_BODY;
    while !log.is_char_boundary(cut) {
        cut += 1;
    }
    let tail = &log[cut..];
    tail.find('\n').map_or(tail, |i| &tail[i + 1..])
}

/// Sends `signal` with `body`, retrying as `policy` says. A POST, as
/// healthchecks.io keeps its body; a service that refuses a POST (4xx)
/// gets one GET without a body instead, and is not retried after that.
pub fn send(url: &PingUrl, signal: Signal, body: &str, policy: &Policy) -> Result<(), String> {
    let target = url.url_of(signal);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(policy.timeout))
        .user_agent(concat!("mailbackup/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let body = body_of(body);
    let mut pause = policy.pause;
    let mut last = String::from("no attempt");
    for attempt in 1..=policy.attempts.max(1) {
        if attempt > 1 {
            std::thread::sleep(pause);
            pause *= 2;
        }
        let answer = agent
            .post(&target)
            .header("Content-Type", "text/plain; charset=utf-8")
            .send(body);
        let status = match answer {
            Ok(r) => r.status().as_u16(),
            Err(e) => {
                last = format!("attempt {attempt}: {}", transport_failure(&e));
                continue;
            }
        };
        match status {
            200..=299 => return Ok(()),
            400..=499 => {
                return match agent.get(&target).call() {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!(
                        "the service answered HTTP {status}, and {} to a GET",
                        r.status().as_u16()
                    )),
                    Err(e) => Err(transport_failure(&e)),
                }
            }
            _ => last = format!("attempt {attempt}: the service answered HTTP {status}"),
        }
    }
    Err(format!("{} attempts; the last, {last}", policy.attempts))
}

/// A failure to reach the service, in a few words, without the URL.
fn transport_failure(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "no answer in time".to_owned(),
        ureq::Error::HostNotFound => "the host name is not known".to_owned(),
        ureq::Error::ConnectionFailed => "no connection".to_owned(),
        ureq::Error::Io(io) if io.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            "no network in this unit: run `mailbackup install` after setting ping_url".to_owned()
        }
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    fn url(s: &str) -> PingUrl {
        PingUrl::parse(s).unwrap()
    }

    #[test]
    fn urls_of_the_signals() {
        let u = url("https://hc-ping.com/abc-def/");
        assert_eq!(u.url_of(Signal::Start), "https://hc-ping.com/abc-def/start");
        assert_eq!(u.url_of(Signal::Success), "https://hc-ping.com/abc-def/");
        assert_eq!(u.url_of(Signal::Fail), "https://hc-ping.com/abc-def/fail");
        assert_eq!(
            u.url_of(Signal::ExitCode(23)),
            "https://hc-ping.com/abc-def/23"
        );
        let u = url("http://kuma.example:3001/api/push/T0k?status=up&msg=OK");
        assert_eq!(
            u.url_of(Signal::Fail),
            "http://kuma.example:3001/api/push/T0k/fail?status=up&msg=OK"
        );
        assert_eq!(u.host(), "kuma.example:3001");
        assert_eq!(url("https://u:p@h.example/x").host(), "h.example");
        assert!(!format!("{u:?}").contains("T0k"));
        for bad in [
            "",
            "hc-ping.com/x",
            "https://",
            "https:///x",
            "https://a b/c",
        ] {
            assert!(PingUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn how_runs_end() {
        assert_eq!(Signal::of_run("success", "exited", "0"), Signal::Success);
        assert_eq!(
            Signal::of_run("exit-code", "exited", "23"),
            Signal::ExitCode(23)
        );
        // A step after the main one failed: never "exit code 0".
        assert_eq!(Signal::of_run("exit-code", "exited", "0"), Signal::Fail);
        assert_eq!(Signal::of_run("exit-code", "", ""), Signal::Fail);
        assert_eq!(Signal::of_run("signal", "killed", "KILL"), Signal::Fail);
        assert_eq!(Signal::of_run("timeout", "killed", "TERM"), Signal::Fail);
        // Stopped by an operator: systemd calls it a success.
        assert_eq!(Signal::of_run("success", "killed", "TERM"), Signal::Fail);
    }

    #[test]
    fn bodies_are_bounded() {
        assert_eq!(body_of("a\nb\n"), "a\nb\n");
        let long = "line é\n".repeat(5000);
        let b = body_of(&long);
        assert!(
            b.len() <= MAX_BODY && b.starts_with("line é\n"),
            "{}",
            b.len()
        );
    }

    /// A server that answers each request with `status`; what it got.
    fn server(statuses: Vec<u16>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let mut got = Vec::new();
            for status in statuses {
                let (mut s, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if h.trim().is_empty() {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                got.push(format!("{}{}", line.trim(), String::from_utf8_lossy(&body)));
                write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
            }
            got
        });
        (addr, handle)
    }

    const QUICK: Policy = Policy {
        attempts: 3,
        timeout: Duration::from_millis(500),
        pause: Duration::from_millis(10),
    };

    #[test]
    fn retries_server_errors_and_falls_back_to_get() {
        let (addr, got) = server(vec![503, 200]);
        let u = url(&format!("http://{addr}/uuid"));
        send(&u, Signal::Fail, "the log", &QUICK).unwrap();
        assert_eq!(
            got.join().unwrap(),
            [
                "POST /uuid/fail HTTP/1.1the log",
                "POST /uuid/fail HTTP/1.1the log"
            ]
        );
        let (addr, got) = server(vec![404, 200]);
        let u = url(&format!("http://{addr}/push/T?status=up"));
        send(&u, Signal::Success, "x", &QUICK).unwrap();
        assert_eq!(
            got.join().unwrap(),
            [
                "POST /push/T?status=up HTTP/1.1x",
                "GET /push/T?status=up HTTP/1.1"
            ]
        );
    }

    #[test]
    fn a_hanging_or_absent_server_costs_a_bounded_time() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let u = url(&format!("http://{}/uuid", listener.local_addr().unwrap()));
        let began = Instant::now();
        let e = send(&u, Signal::Start, "", &QUICK).unwrap_err();
        assert!(began.elapsed() < Duration::from_secs(3), "{e}");
        assert!(e.contains("3 attempts") && !e.contains("uuid"), "{e}");
        drop(listener);
        let e = send(&u, Signal::Start, "", &QUICK).unwrap_err();
        assert!(!e.contains("uuid"), "{e}");
    }
}
