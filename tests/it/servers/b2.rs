//! `b2://` targets, as Mail-in-a-Box writes them, against a local server
//! that speaks B2's native API (tests/tools/b2_server.py, itself held to
//! b2sdk by tests/tools/b2_server_check.py), with real duplicity 0.8 and
//! 3.x through their own b2 backend.
//!
//! duplicity's b2 backend authorizes at B2's production realm; the tests
//! point it at the local server with tests/tools/b2_realm/sitecustomize.py
//! (on PYTHONPATH), and mailbackup with `MAILBACKUP_B2_API_URL`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::listing::*;
use crate::common::servers::free_port;
use crate::common::*;

const KEY_ID: &str = "0012ab34cd";
/// An application key with the characters that B2's keys have and that
/// Mail-in-a-Box URL-quotes.
const KEY: &str = "K001x/yZ+w=Secret";
const QUOTED_KEY: &str = "K001x%2FyZ%2Bw%3DSecret";
/// A key restricted to one bucket, as B2's application keys can be.
const APP_KEY_ID: &str = "0012ab34ce";
const APP_KEY: &str = "K001AppOnly";

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// tests/tools/b2_server.py on 127.0.0.1, with a master key (which may
/// create buckets) and a key restricted to `app-bucket`.
struct B2Server {
    port: u16,
    child: Child,
}

impl B2Server {
    fn start(buckets: &[&str]) -> B2Server {
        B2Server::start_with(buckets, &[])
    }

    fn start_with(buckets: &[&str], options: &[&str]) -> B2Server {
        let port = free_port();
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(manifest("tests/tools/b2_server.py"))
            .args(["--port", &port.to_string()])
            .args(["--key", &format!("{KEY_ID}:{KEY}")])
            .args(["--key", &format!("{APP_KEY_ID}:{APP_KEY}:app-bucket")])
            .args(["--bucket", "app-bucket"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for b in buckets {
            cmd.args(["--bucket", b]);
        }
        cmd.args(options);
        let child = cmd.spawn().unwrap();
        let server = B2Server { port, child };
        assert!(
            wait_for(30, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "b2_server.py did not listen"
        );
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every bucket, with its files and their sizes.
    fn buckets(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let body = ureq::get(format!("{}/_test/buckets", self.url()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Puts files of zeros of the given sizes.
    fn put(&self, bucket: &str, files: &[(String, u64)]) {
        let files: BTreeMap<_, _> = files.iter().cloned().collect();
        let body = serde_json::json!({ bucket: files }).to_string();
        ureq::post(format!("{}/_test/put", self.url()))
            .send(body)
            .unwrap();
    }

    fn files(&self, bucket: &str) -> BTreeMap<String, u64> {
        self.buckets().remove(bucket).unwrap_or_default()
    }
}

impl Drop for B2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment that points duplicity's b2 backend (through b2sdk) and
/// mailbackup at `api_url`, and records the argv of every duplicity.
fn test_env(api_url: &str, argv_log: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("PYTHONPATH", manifest("tests/tools/b2_realm").into()),
        ("B2_TEST_REALM_URL", api_url.into()),
        ("B2_TEST_ARGV_LOG", argv_log.into()),
        ("MAILBACKUP_B2_API_URL", api_url.into()),
    ]
}

fn box_for_b2(api_url: &str, flavor: &Flavor, target: &str) -> MailBox {
    let probe = MailBox::new();
    let argv_log = probe.dir.path().join("argv.log");
    let mut mailbox = probe.with_flavor(flavor);
    for (k, v) in test_env(api_url, &argv_log) {
        mailbox = mailbox.with_env(k, v);
    }
    mailbox.secrets.extend([KEY.into(), QUOTED_KEY.into()]);
    mailbox.set_target(&format!("min_age_in_days: 3\ntarget: {target}\n"));
    mailbox
}

fn argv_log(mailbox: &MailBox) -> String {
    fs::read_to_string(mailbox.dir.path().join("argv.log")).unwrap_or_default()
}

/// The key never reaches duplicity's argv, and duplicity did run.
fn assert_key_not_in_argv(mailbox: &MailBox, url: &str) {
    let log = argv_log(mailbox);
    assert!(log.contains(url), "no duplicity ran with {url}: {log}");
    for secret in [KEY, QUOTED_KEY, "K001x"] {
        assert!(
            !log.contains(secret),
            "the key is in duplicity's argv: {log}"
        );
    }
}

/// Plain duplicity of `flavor` restores `url` (key in its environment).
fn plain_b2_restore(
    mailbox: &MailBox,
    flavor: &Flavor,
    api_url: &str,
    url: &str,
    time: Option<&str>,
) -> PathBuf {
    let log = mailbox.dir.path().join("plain-argv.log");
    let mut env: Vec<(&str, OsString)> = test_env(api_url, &log);
    env.push(("FTP_PASSWORD", KEY.into()));
    env.push(("BACKEND_PASSWORD", KEY.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.to_str().unwrap())).collect();
    plain_restore_from(mailbox, flavor, &url.into(), &[], &env, time)
}

#[test]
fn b2_target_backs_up_and_restores_with_both_duplicity_versions() {
    needs_root!();
    // Listings of at most 2 names a page, as B2 may answer: status must
    // follow nextFileName to count every file.
    let server = B2Server::start_with(&["bucket-debian", "bucket-pypi3"], &["--page-limit", "2"]);
    for (flavor, path) in flavors().iter().zip(["/box/mail", ""]) {
        let bucket = format!("bucket-{}", flavor.name);
        let target = format!("b2://{KEY_ID}:{QUOTED_KEY}@{bucket}{path}");
        let url = format!("b2://{KEY_ID}@{bucket}{path}");
        let mailbox = box_for_b2(&server.url(), flavor, &target);
        make_mail_store(&mailbox.root, 30);
        let first = live_state(&mailbox.root);
        let out = mailbox.ok(&["run"]);
        assert!(stderr(&out).contains("full backup"), "{}", describe(&out));
        assert!(!mailbox.target().exists(), "the backup stayed on the box");
        next_second();
        a_day_of_mail(&mailbox.root);
        let second = live_state(&mailbox.root);
        let out = mailbox.ok(&["run"]);
        assert!(stderr(&out).contains("incremental"), "{}", describe(&out));
        assert_key_not_in_argv(&mailbox, &url);

        // status counts what is in the bucket, as for a local target.
        let status = mailbox.status();
        assert_eq!(mailbox.kinds(), ["inc", "full"], "{status}");
        let files = server.files(&bucket);
        let prefix = path.trim_start_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        assert!(files.len() >= 6, "{files:?}");
        assert!(
            files
                .keys()
                .all(|f| f.starts_with(&format!("{prefix}duplicity-"))),
            "{files:?}"
        );
        let sizes: u64 = status["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["size"].as_u64().unwrap())
            .sum();
        assert_eq!(sizes, files.values().sum::<u64>(), "{status}");

        // Plain duplicity restores both states byte for byte.
        let restored = plain_b2_restore(&mailbox, flavor, &server.url(), &url, None);
        assert_same_tree(&second, &snapshot(&restored, &[]));
        let full_date = status["backups"][1]["date"].as_str().unwrap().to_owned();
        let restored = plain_b2_restore(&mailbox, flavor, &server.url(), &url, Some(&full_date));
        assert_same_tree(&first, &snapshot(&restored, &[]));

        // mailbackup's own list, restore, verify, prune and check-target.
        let out = mailbox.ok(&["list"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("mail/users.sqlite"));
        let dest = mailbox.dir.path().join("own-restore");
        mailbox.ok(&[
            "restore",
            "--to",
            dest.to_str().unwrap(),
            "--path",
            "mail/mailboxes",
        ]);
        assert_eq!(
            snapshot(&dest.join("mail/mailboxes"), &[]),
            snapshot(&mailbox.root.join("mail/mailboxes"), &[])
        );
        let out = mailbox.ok(&["verify"]);
        assert!(stderr(&out).contains("matches"), "{}", describe(&out));
        mailbox.ok(&["prune"]);
        assert_eq!(mailbox.kinds(), ["inc", "full"]);
        let out = mailbox.ok(&["check-target"]);
        let line = String::from_utf8_lossy(&out.stdout);
        assert!(line.contains("works: 2 backups"), "{line}");
        assert_eq!(server.files(&bucket), files, "the check left its test file");
        assert_key_not_in_argv(&mailbox, &url);
    }
}

#[test]
fn a_chain_that_mail_in_a_box_started_on_b2_continues() {
    needs_root!();
    let server = B2Server::start(&["miab-bucket"]);
    let flavor = &flavors()[0];
    let target = format!("b2://{KEY_ID}:{QUOTED_KEY}@miab-bucket/box");
    let mailbox = box_for_b2(&server.url(), flavor, &target);
    make_mail_store(&mailbox.root, 20);
    // As Mail-in-a-Box's backup.py runs it: the whole target URL, key and
    // all, in argv, and its own cache.
    let work = mailbox.dir.path().join("miab");
    let gnupg = work.join("gnupg");
    fs::create_dir_all(&gnupg).unwrap();
    fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = clean_command("duplicity", &flavor.path_var());
    c.arg("full")
        .arg("--archive-dir")
        .arg(work.join("cache"))
        .args(["--exclude", &mailbox.root.join("backup").to_string_lossy()])
        .arg(&mailbox.root)
        .arg(&target)
        .env("PASSPHRASE", mailbox.passphrase())
        .env("GNUPGHOME", &gnupg);
    for (k, v) in test_env(&server.url(), &work.join("argv.log")) {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let before = server.files("miab-bucket");
    assert!(
        before.keys().any(|f| f.starts_with("box/duplicity-full.")),
        "{before:?}"
    );
    assert_eq!(mailbox.kinds(), ["full"]);

    next_second();
    a_day_of_mail(&mailbox.root);
    let state = live_state(&mailbox.root);
    let out = mailbox.ok(&["run"]);
    assert!(stderr(&out).contains("incremental"), "{}", describe(&out));
    assert_eq!(mailbox.kinds(), ["inc", "full"]);
    let after = server.files("miab-bucket");
    assert!(
        before.iter().all(|(k, v)| after.get(k) == Some(v)),
        "the full changed"
    );
    let url = format!("b2://{KEY_ID}@miab-bucket/box");
    let restored = plain_b2_restore(&mailbox, flavor, &server.url(), &url, None);
    assert_same_tree(&state, &snapshot(&restored, &[]));
}

/// `check-target`, `run` and `status --check` for a target that cannot
/// work: the cause in one line, no duplicity for `run`, and the plugin
/// code: CRITICAL when the server says nothing is there, else UNKNOWN.
fn fails(mailbox: &MailBox, needle: &str) {
    let check_code = if needle.starts_with("no such") { 2 } else { 3 };
    let out = mailbox.run(&["check-target"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(needle), "{needle:?} not in {text}");
    let out = mailbox.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains(needle),
        "{needle:?} not in {}",
        describe(&out)
    );
    assert_eq!(argv_log(mailbox), "", "duplicity ran");
    let out = mailbox.run(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(check_code), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(needle),
        "{}",
        describe(&out)
    );
}

#[test]
fn b2_targets_that_cannot_work_fail_with_their_cause_and_show_no_secret() {
    needs_root!();
    let server = B2Server::start(&["good-bucket"]);
    let flavor = &flavors()[0];
    let url = server.url();

    let mut mailbox = box_for_b2(
        &url,
        flavor,
        &format!("b2://{KEY_ID}:K001wrong@good-bucket"),
    );
    mailbox.secrets.push("K001wrong".into());
    fails(&mailbox, "bad credentials");
    let mailbox = box_for_b2(
        &url,
        flavor,
        &format!("b2://nokey:{QUOTED_KEY}@good-bucket"),
    );
    fails(&mailbox, "bad credentials");

    // The master key may create buckets, and duplicity would: mailbackup
    // refuses first, and the bucket is not made.
    let mailbox = box_for_b2(
        &url,
        flavor,
        &format!("b2://{KEY_ID}:{QUOTED_KEY}@missing-bucket/box"),
    );
    fails(&mailbox, "no such bucket");
    assert!(
        !server.buckets().contains_key("missing-bucket"),
        "the bucket was created"
    );

    let mut mailbox = box_for_b2(
        &url,
        flavor,
        &format!("b2://{APP_KEY_ID}:{APP_KEY}@good-bucket"),
    );
    mailbox.secrets.push(APP_KEY.into());
    fails(&mailbox, "access denied");
    let out = mailbox.run(&["check-target"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("only bucket app-bucket"));

    let nobody = format!("http://127.0.0.1:{}", free_port());
    let mailbox = box_for_b2(
        &nobody,
        flavor,
        &format!("b2://{KEY_ID}:{QUOTED_KEY}@good-bucket"),
    );
    fails(&mailbox, "unreachable");
    assert!(server.files("good-bucket").is_empty());
    let mailbox = box_for_b2(
        "http://no-such-host.invalid",
        flavor,
        &format!("b2://{KEY_ID}:{QUOTED_KEY}@good-bucket"),
    );
    fails(&mailbox, "name not resolved");

    // The restricted key in its own bucket works.
    let mailbox = box_for_b2(
        &url,
        flavor,
        &format!("b2://{APP_KEY_ID}:{APP_KEY}@app-bucket/x"),
    );
    let out = mailbox.ok(&["check-target"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("works: 0 backups"));
}

#[test]
fn b2_key_is_refused_with_the_line_and_never_shown() {
    needs_root!();
    let flavor = &flavors()[0];
    for (target, needle) in [
        ("b2://0012ab:K001secret@bkt/box", "is not a B2 bucket name"),
        ("b2://0012ab@my-bucket", "no usable application key"),
        ("b2://K001secret@my-bucket", "no usable application key"),
        (
            "b2://0012-ab:K001secret@my-bucket",
            "not a B2 application key id",
        ),
    ] {
        let mut mailbox = box_for_b2("http://127.0.0.1:9", flavor, target);
        mailbox.secrets.push("K001secret".into());
        let out = mailbox.run(&["run"]);
        assert_eq!(out.status.code(), Some(1), "{target}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("custom.yaml, line 2") && err.contains(needle),
            "{target}: {err}"
        );
    }
}

/// The test server is held to the official client: b2sdk's upload,
/// listing (paged, with a prefix, by folder), download, hide and delete,
/// with Debian's b2sdk 1.17 (API v2) and b2sdk 2.x from PyPI (API v4).
#[test]
fn the_b2_test_server_works_with_b2sdk() {
    needs_root!();
    for python in [
        PathBuf::from("/usr/bin/python3"),
        manifest("target/test-tools/duplicity3/bin/python"),
    ] {
        let out = Command::new(&python)
            .arg(manifest("tests/tools/b2_server_check.py"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            python.display(),
            describe(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("upload, listing, download"),
            "{}",
            describe(&out)
        );
    }
}

#[test]
fn status_of_a_b2_bucket_equals_status_of_the_same_files_at_home() {
    needs_root!();
    let files = many_backup_files(200);
    let local = MailBox::new();
    write_sparse_files(&local.target(), &files);
    let want = status_without_directory(&local);
    assert_eq!(want["backups"].as_array().unwrap().len(), 200);
    assert_eq!(want["unknown_files"], 1);

    // Pages of at most 100 names, as B2 may answer.
    let server = B2Server::start_with(&["prefixed", "top-bucket"], &["--page-limit", "100"]);
    let prefixed: Vec<_> = files
        .iter()
        .map(|(n, s)| (format!("mail/box/{n}"), *s))
        .collect();
    server.put("prefixed", &prefixed);
    server.put("top-bucket", &files);
    // Another box's backups beside them do not count.
    let other = "mail/other/duplicity-full.20260101T000000Z.manifest.gpg";
    server.put("prefixed", &[(other.into(), 9)]);
    for target in ["prefixed/mail/box", "top-bucket"] {
        let mailbox = box_for_b2(
            &server.url(),
            &flavors()[0],
            &format!("b2://{KEY_ID}:{QUOTED_KEY}@{target}"),
        );
        let got = status_without_directory(&mailbox);
        assert_same_status(&got, &want, target);
        assert_eq!(
            mailbox.status()["directory"],
            format!("b2://{KEY_ID}@{target}")
        );
    }
}
