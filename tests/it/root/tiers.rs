//! What a normal user's run of the tests does with the tiers: the tests
//! that need root return at once, and one line says how many there are and
//! how to run them.

use crate::common::*;
use crate::tiers::{left_out_line, tests_in_tiers};

#[test]
fn a_normal_user_is_told_in_one_line_what_was_left_out() {
    needs_root!();
    let exe = std::env::current_exe().unwrap();
    let out = clean_command("setpriv", &"/usr/sbin:/usr/bin:/sbin:/bin".into())
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&exe)
        .args([
            "--exact",
            "--test-threads=1",
            "tiers::what_was_left_out_is_said_in_one_line",
            "root::backup::run_full_forces_a_full_backup",
            "e2e::pause::pause_mode_is_refused_without_cgroup_v2",
            "servers::remote::the_private_key_and_secrets_stay_off_argv",
        ])
        .current_dir("/")
        .output()
        .unwrap();
    // Without the tiers, the three that need root fail.
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 passed; 0 failed"), "{}", describe(&out));
    let line = left_out_line(tests_in_tiers());
    let said: Vec<&str> = stderr_lines(&out);
    assert_eq!(said, [line.as_str()], "{}", describe(&out));
    assert!(line.starts_with("skipped ") && line.ends_with("`sudo bash tests/run-all.sh`"));
}

/// The non-empty lines of a command's stderr.
fn stderr_lines(out: &std::process::Output) -> Vec<&str> {
    std::str::from_utf8(&out.stderr)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
}
