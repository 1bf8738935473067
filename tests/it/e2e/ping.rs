//! End to end, in a booted Debian 12 with real postfix: the units ping
//! `ping_url` for the start, the success and the failure of a backup, a
//! ping server that hangs does not hold the backup up for long, the URL is
//! in no unit, argv, `systemctl show` or journal, and a failure mail sent
//! while postfix is stopped arrives once it runs again.

use crate::common::container::Container;
use crate::common::describe;
use crate::common::needs_root;

const UUID: &str = "0d6c5a1e-77b2-4f0e-9c3d-pingsecret42";

/// A healthchecks-like server: each request as one line
/// `METHOD PATH BODY` (newlines in the body as `|`) in LOG.
const PING_SERVER: &str = r#"
import http.server, sys
port, log = int(sys.argv[1]), sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n).decode('utf-8', 'replace').replace('\n', '|')
        with open(log, 'a') as f:
            f.write('%s %s %s\n' % (self.command, self.path, body))
        self.send_response(200)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'OK')
    do_GET = do_POST = answer
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', port), Handler).serve_forever()
"#;

/// Accepts connections into its queue and never answers.
const HANGING_SERVER: &str = r#"
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1])))
s.listen(64)
time.sleep(10**6)
"#;

/// A box whose custom.yaml pings 127.0.0.1:PORT, with the units installed.
fn pinging_box(c: &Container, port: u16, install_args: &str) {
    c.prepare_box(4);
    std::fs::write(c.share().join("ping-server.py"), PING_SERVER).unwrap();
    std::fs::write(c.share().join("hanging-server.py"), HANGING_SERVER).unwrap();
    c.ok(&format!(
        "printf 'target: local\\nping_url: http://127.0.0.1:{port}/{UUID}\\n' > /home/user-data/backup/custom.yaml"
    ));
    let out = c.ok(&format!("mailbackup install {install_args}"));
    assert!(!out.contains(UUID), "{out}");
}

fn pings(c: &Container) -> Vec<String> {
    c.ok("cat /root/pings.log 2>/dev/null || true")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until the server has `n` requests.
fn wait_for_pings(c: &Container, n: usize) -> Vec<String> {
    crate::common::wait_for(30, || pings(c).len() >= n);
    pings(c)
}

#[test]
fn the_units_ping_start_success_and_failure_and_keep_the_url_secret() {
    needs_root!();
    let c = Container::boot();
    pinging_box(&c, 8099, "");
    c.ok("systemd-run --unit=ping-server python3 /srv/host/ping-server.py 8099 /root/pings.log && sleep 1");
    let (rc, _) = c.start_backup_watching();
    let journal = || c.ok("journalctl -u mailbackup.service --no-pager | tail -60");
    assert_eq!(rc, 0, "{}", journal());
    c.mail_is_up();
    let got = wait_for_pings(&c, 2);
    assert_eq!(got.len(), 2, "{got:?}\n{}", journal());
    assert!(
        got[0].starts_with(&format!("POST /{UUID}/start ")),
        "{got:?}"
    );
    // The success, with the run's last lines.
    assert!(got[1].starts_with(&format!("POST /{UUID} ")), "{got:?}");
    assert!(got[1].contains("mailbackup"), "{got:?}");

    // A failed run: the key is gone, so that the unit fails before
    // duplicity runs. The end is a failure all the same.
    c.ok("mv /home/user-data/backup/secret_key.txt /root/key.saved");
    let out = c.sh("systemctl start mailbackup.service");
    assert!(!out.status.success());
    c.mail_is_up();
    let got = wait_for_pings(&c, 4);
    // URL/fail, or URL/EXITCODE (1-255).
    let signal = got
        .last()
        .and_then(|l| l.strip_prefix(&format!("POST /{UUID}/")))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_owned();
    assert!(
        signal == "fail" || signal.parse::<u8>().is_ok_and(|n| n > 0),
        "{got:?}\n{}",
        journal()
    );
    c.ok("mv /root/key.saved /home/user-data/backup/secret_key.txt");

    // Nowhere it must not be: unit files, systemd's view, the journal
    // (with every process's command line), the environment of processes.
    for place in [
        "cat /etc/systemd/system/mailbackup*",
        "systemctl show 'mailbackup*' 'mailbackup-failure@mailbackup.service.service'",
        "journalctl --no-pager -o verbose",
        "cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'",
    ] {
        let text = c.ok(place);
        assert!(!text.contains(UUID), "the ping URL is in `{place}`");
    }
    assert!(c
        .ok("journalctl -u mailbackup.service -o cat --no-pager")
        .contains("mailbackup: pinged 127.0.0.1:8099 (start)"));
}

#[test]
fn a_ping_server_that_hangs_or_is_down_does_not_hold_the_backup_up() {
    needs_root!();
    let c = Container::boot();
    pinging_box(&c, 8098, "--downtime full");
    // Down: nothing listens.
    let began = std::time::Instant::now();
    let (rc, _) = c.start_backup_watching();
    let journal = || c.ok("journalctl -u mailbackup.service -o cat --no-pager");
    assert_eq!(rc, 0, "{}", journal());
    let down = began.elapsed();
    c.mail_is_up();
    // Hangs: connections wait in its queue, no answer comes.
    c.ok("systemd-run --unit=hanging-server python3 /srv/host/hanging-server.py 8098 && sleep 1");
    c.ok("echo more > /home/user-data/mail/later.txt");
    let began = std::time::Instant::now();
    let (rc, _) = c.start_backup_watching();
    let hung = began.elapsed();
    assert_eq!(rc, 0, "{}", journal());
    c.mail_is_up();
    // Two pings of at most 3 attempts of 5 s, 1 s and 2 s apart, each.
    assert!(
        hung < down + std::time::Duration::from_secs(45),
        "down {down:?}, hanging {hung:?}"
    );
    let log = journal();
    for signal in ["start", "success"] {
        assert!(
            log.contains(&format!("the ping to 127.0.0.1:8098 ({signal}) failed")),
            "{log}"
        );
    }
    assert!(!log.contains(UUID), "{log}");
    assert_eq!(c.result(), "success");
}

#[test]
fn a_failure_mail_sent_while_postfix_is_stopped_arrives_once_it_runs() {
    needs_root!();
    let c = Container::boot();
    c.prepare_box(4);
    // The backup leaves postfix alone: it stays stopped.
    c.ok("mailbackup install --services dovecot.service");
    c.ok("systemctl stop postfix.service postfix@-.service");
    c.ok("mv /home/user-data/backup/secret_key.txt /root/key.saved");
    let out = c.sh("systemctl start mailbackup.service");
    assert!(!out.status.success());
    let unit = "mailbackup-failure@mailbackup.service.service";
    let done = crate::common::wait_for(60, || {
        c.ok(&format!("systemctl show -p ActiveState --value {unit}"))
            .trim()
            == "inactive"
            && c.ok(&format!("journalctl -u {unit} -o cat --no-pager"))
                .contains("waits in postfix's queue")
    });
    let log = c.ok(&format!("journalctl -u {unit} -o cat --no-pager"));
    assert!(done, "{log}");
    assert_eq!(
        c.ok(&format!("systemctl show -p Result --value {unit}"))
            .trim(),
        "success",
        "{log}"
    );
    assert!(
        !c.ok("cat /var/mail/root 2>/dev/null || true")
            .contains("mailbackup.service failed"),
        "delivered while postfix was stopped?"
    );
    assert_eq!(
        c.count("ls /var/spool/postfix/maildrop | wc -l"),
        1,
        "{log}"
    );

    c.ok("systemctl start postfix.service");
    let mail = c.failure_mail();
    assert!(
        mail.contains("Subject: [box.example.com] mailbackup.service failed"),
        "{mail}\n{}",
        describe(&c.sh("journalctl -u postfix@-.service --no-pager | tail -20"))
    );
    assert!(mail.contains("secret_key.txt is missing"), "{mail}");
}
