//! The dead-man's switch (`ping_url`), unknown settings as warnings, the
//! key's custody (`key show`, `key confirm`) and the failure mail that
//! waits for the mail server, through the real binary. What needs a booted
//! systemd and postfix is in `e2e::ping`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::needs_root;
use crate::common::*;

/// An HTTP server on 127.0.0.1 that records each request as
/// `METHOD PATH BODY` and answers 200, in a thread for the test's life.
struct PingServer {
    port: u16,
    got: Arc<Mutex<Vec<String>>>,
}

impl PingServer {
    fn start() -> PingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let record = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let mut words = line.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                record.lock().unwrap().push(format!(
                    "{method} {path} {}",
                    String::from_utf8_lossy(&body)
                ));
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                );
            }
        });
        PingServer { port, got }
    }

    fn requests(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

const UUID: &str = "5e1f7c2a-93d4-4b8e-a1f0-secretpinguuid";

fn pinging_box(port: u16) -> MailBox {
    let mailbox = MailBox::new();
    mailbox.set_target(&format!("ping_url: http://127.0.0.1:{port}/{UUID}\n"));
    mailbox
}

#[test]
fn pings_for_the_start_a_success_and_a_failure() {
    needs_root!();
    let server = PingServer::start();
    let mailbox = pinging_box(server.port);
    let out = mailbox.ok(&["ping", "start"]);
    let log = stderr(&out);
    assert!(
        log.contains(&format!("pinged 127.0.0.1:{} (start)", server.port)) && !log.contains(UUID),
        "{log}"
    );
    let finish = |result: &str, code: &str, status: &str, extra: &[&str]| {
        let mut args = vec!["ping", "finish", "mailbackup.service"];
        args.extend(extra);
        let out = mailbox
            .cmd(&args)
            .env("SERVICE_RESULT", result)
            .env("EXIT_CODE", code)
            .env("EXIT_STATUS", status)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        assert!(!stderr(&out).contains(UUID), "{}", describe(&out));
    };
    finish("success", "exited", "0", &[]);
    finish("exit-code", "exited", "23", &[]);
    finish("signal", "killed", "KILL", &[]);
    // A verify or drill run tells only of its failures.
    finish("success", "exited", "0", &["--failures-only"]);
    finish("timeout", "killed", "TERM", &["--failures-only"]);
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        paths,
        [
            format!("POST /{UUID}/start"),
            format!("POST /{UUID}"),
            format!("POST /{UUID}/23"),
            format!("POST /{UUID}/fail"),
            format!("POST /{UUID}/fail"),
        ]
    );
    assert!(
        server.requests()[0].contains("a run starts on box.example.com"),
        "{:?}",
        server.requests()
    );
}

#[test]
fn no_ping_url_no_ping_and_a_bad_one_fails_no_run() {
    needs_root!();
    let server = PingServer::start();
    let mailbox = MailBox::new();
    let out = mailbox.ok(&["ping", "start"]);
    assert_eq!(stderr(&out), "");
    // A bad value is an error for the commands that read the settings,
    // which names the line, never the value; the ping itself exits 0.
    mailbox.set_target("ping_url: hc-ping.com/secret-uuid-value\n");
    let out = mailbox.ok(&["ping", "start"]);
    assert!(stderr(&out).contains("no ping"), "{}", describe(&out));
    let out = mailbox.run(&["status", "--json"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("custom.yaml, line 1: ping_url must be an http:// or https:// URL")
            && !e.contains("secret-uuid-value"),
        "{e}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn a_ping_server_that_hangs_or_is_down_costs_a_bounded_time() {
    needs_root!();
    // Accepts connections (the kernel does) and never answers.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let mailbox = pinging_box(hanging.local_addr().unwrap().port());
    let began = Instant::now();
    let out = mailbox.ok(&["ping", "start"]);
    let took = began.elapsed();
    assert!(took < Duration::from_secs(25), "{took:?}");
    let log = stderr(&out);
    assert!(
        log.contains("the ping to 127.0.0.1:") && log.contains("3 attempts") && !log.contains(UUID),
        "{log}"
    );
    drop(hanging);
    let down = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = down.local_addr().unwrap().port();
    drop(down);
    let mailbox = pinging_box(port);
    let began = Instant::now();
    let out = mailbox.ok(&["ping", "start"]);
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(stderr(&out).contains("failed"), "{}", describe(&out));
}

/// `status --check` of a box with one backup: its code and line.
fn check(mailbox: &MailBox) -> (i32, String) {
    let out = mailbox.cmd(&["status", "--check"]).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn confirm(mailbox: &MailBox, pasted: &[u8]) -> std::process::Output {
    let mut child = mailbox
        .cmd(&["key", "confirm"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(pasted).unwrap();
    let out = child.wait_with_output().unwrap();
    mailbox.assert_no_secret(&out);
    out
}

#[test]
fn an_unknown_setting_is_a_warning_that_names_the_nearest_key() {
    needs_root!();
    let mailbox = MailBox::new();
    make_mail_store(&mailbox.root, 5);
    mailbox.set_target("target: local\ntarget_usr: someone\n");
    let out = mailbox.ok(&["run"]);
    let log = stderr(&out);
    assert!(
        log.contains(
            "mailbackup: warning: ",
        ) && log.contains("custom.yaml, line 2: unknown key \"target_usr\", ignored (the nearest key mailbackup knows is target_user)"),
        "{log}"
    );
    assert_eq!(log.matches("unknown key").count(), 1, "{log}");
    let key = fs::read(mailbox.key_file()).unwrap();
    assert!(confirm(&mailbox, &key).status.success());
    let (code, line) = check(&mailbox);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("MAILBACKUP WARNING - ") && line.contains("unknown key \"target_usr\""),
        "{line}"
    );
    mailbox.set_target("target: local\n");
    assert_eq!(check(&mailbox).0, 0);
    // A bad value stays an error.
    mailbox.set_target("target: local\nmin_age_in_days: -1\nextra: 1\n");
    assert!(!mailbox.run(&["run"]).status.success());
}

#[test]
fn the_key_is_shown_and_confirmed_and_a_changed_key_needs_a_new_confirmation() {
    needs_root!();
    let mailbox = MailBox::new();
    make_mail_store(&mailbox.root, 5);
    mailbox.ok(&["run"]);
    let (code, line) = check(&mailbox);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("the backup key has not been confirmed as kept off this box"),
        "{line}"
    );

    let shown = mailbox.cmd(&["key", "show"]).output().unwrap();
    assert!(shown.status.success(), "{}", describe(&shown));
    let key = fs::read(mailbox.key_file()).unwrap();
    assert_eq!(shown.stdout, key, "standard output holds the key alone");
    assert!(
        stderr(&shown).contains("password manager"),
        "{}",
        describe(&shown)
    );

    // A wrong key: refused, nothing recorded.
    let wrong = confirm(&mailbox, b"not the key\n");
    assert_eq!(wrong.status.code(), Some(1), "{}", describe(&wrong));
    assert!(
        stderr(&wrong).contains("is not the backup key"),
        "{}",
        describe(&wrong)
    );
    assert!(!mailbox.root.join("backup/key-confirmed").exists());
    assert_eq!(check(&mailbox).0, 1);
    // Nothing at all: said so.
    let empty = confirm(&mailbox, b"\n");
    assert_eq!(empty.status.code(), Some(1), "{}", describe(&empty));
    assert!(
        stderr(&empty).contains("nothing was read"),
        "{}",
        describe(&empty)
    );
    assert!(!mailbox.root.join("backup/key-confirmed").exists());

    // The right one, as a paste gives it: trailing whitespace, or its first line.
    let mut pasted = key.clone();
    pasted.extend_from_slice(b"  \n\n");
    let right = confirm(&mailbox, &pasted);
    assert!(right.status.success(), "{}", describe(&right));
    let record = fs::read_to_string(mailbox.root.join("backup/key-confirmed")).unwrap();
    assert!(record.starts_with("fingerprint=sha256:"), "{record}");
    assert!(!record.contains(&mailbox.passphrase()));
    let mode = fs::metadata(mailbox.root.join("backup/key-confirmed"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (code, line) = check(&mailbox);
    assert_eq!(code, 0, "{line}");
    let first_line = format!("{}\n", mailbox.passphrase());
    assert!(confirm(&mailbox, first_line.as_bytes()).status.success());

    // Another key: the confirmation no longer holds.
    fs::write(mailbox.key_file(), "an0therKey\n").unwrap();
    let (code, line) = check(&mailbox);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("has not been confirmed as kept off this box (it changed since"),
        "{line}"
    );
    assert!(confirm(&mailbox, b"an0therKey").status.success());
    assert_eq!(check(&mailbox).0, 0);
}

#[test]
fn the_failure_mail_waits_in_the_queue_when_the_mail_server_does_not_answer() {
    needs_root!();
    let mailbox = MailBox::new();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    // Stands in for postfix's sendmail: records its arguments and the mail.
    let queue = mailbox.dir.path().join("queued");
    let sendmail = mailbox.dir.path().join("sendmail");
    fs::write(
        &sendmail,
        format!(
            "#!/bin/sh\necho \"$@\" > {q}.args\ncat > {q}\n",
            q = queue.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&sendmail, fs::Permissions::from_mode(0o755)).unwrap();
    let smtp = format!("127.0.0.1:{port}");
    let out = mailbox.ok(&[
        "notify-failure",
        "--to",
        "administrator@box.example.com",
        "--smtp",
        &smtp,
        "--sendmail",
        sendmail.to_str().unwrap(),
        "mailbackup.service",
    ]);
    let log = stderr(&out);
    assert!(log.contains("waits in postfix's queue"), "{log}");
    let mail = fs::read_to_string(&queue).unwrap();
    assert!(
        mail.contains("To: administrator@box.example.com\n")
            && mail.contains("Subject: [box.example.com] mailbackup.service failed"),
        "{mail}"
    );
    assert_eq!(
        fs::read_to_string(queue.with_extension("args")).unwrap(),
        "-t -i -f root@box.example.com\n"
    );
    // Neither way works: an error that says the administrator was not told.
    let out = mailbox.run(&[
        "notify-failure",
        "--to",
        "administrator@box.example.com",
        "--smtp",
        &smtp,
        "--sendmail",
        "/nonexistent/sendmail",
        "mailbackup.service",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("was not told"), "{}", describe(&out));
}

#[test]
fn install_opens_the_network_for_pings_and_points_to_the_key() {
    needs_root!();
    if !mailbackup::sys::user_exists("user-data") {
        let _ = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "user-data"])
            .output();
    }
    let mailbox = MailBox::named("user-data");
    fs::remove_file(mailbox.key_file()).unwrap();
    mailbox.set_target(&format!("ping_url: https://hc-ping.com/{UUID}\n"));
    let units = mailbox.dir.path().join("units");
    fs::create_dir(&units).unwrap();
    let install = |extra: &[&str]| {
        let mut args = vec![
            "install",
            "--unit-dir",
            units.to_str().unwrap(),
            "--bin",
            BIN,
        ];
        args.extend(extra);
        let out = mailbox.run(&args);
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = install(&[]);
    assert!(
        first.contains("created a new backup key")
            && first.contains("`mailbackup key show` prints it"),
        "{first}"
    );
    let service = fs::read_to_string(units.join("mailbackup.service")).unwrap();
    assert!(
        service.contains(" ping start\n") && service.contains(" ping finish %n\n"),
        "{service}"
    );
    assert!(!service.contains("PrivateNetwork=yes"), "{service}");
    for entry in fs::read_dir(&units).unwrap() {
        let text = fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(UUID), "the ping URL is in a unit");
    }
    // A re-install that changes something says, once, that the key is
    // not confirmed; one that changes nothing is quiet.
    let again = install(&["--on-calendar", "*-*-* 04:00:00"]);
    assert_eq!(
        again
            .matches("the backup key has not been confirmed as kept off this box")
            .count(),
        1,
        "{again}"
    );
    let quiet = install(&[]);
    assert!(!quiet.contains("confirmed"), "{quiet}");
    // Without the ping, the units have no network again.
    mailbox.set_target("target: local\n");
    install(&[]);
    let service = fs::read_to_string(units.join("mailbackup.service")).unwrap();
    assert!(
        service.contains("PrivateNetwork=yes") && !service.contains(" ping "),
        "{service}"
    );
}
