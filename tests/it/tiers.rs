//! As a normal user the tests of the tiers (see `common::tier`) return at
//! once: this says so, in one line, with how to run them.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::Command;

use crate::common::tier::{is_root, tier_of, RUN_ALL, TIERS};

/// The tests of this binary that are in a tier.
pub fn tests_in_tiers() -> usize {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .filter(|name| tier_of(name).is_some())
        .count()
}

/// The line a normal user sees.
pub fn left_out_line(count: usize) -> String {
    format!(
        "skipped {count} tests that need root ({}): run `{RUN_ALL}`",
        TIERS.map(|(t, _)| format!("{t}::")).join(", ")
    )
}

/// Written to stderr past `cargo test`'s capture (a duplicate of the
/// descriptor), and under nextest to stdout, which `.config/nextest.toml`
/// has it show.
#[test]
fn what_was_left_out_is_said_in_one_line() {
    if is_root() {
        return;
    }
    let line = left_out_line(tests_in_tiers());
    if std::env::var_os("NEXTEST").is_some() {
        println!("{line}");
    } else {
        let stderr = std::io::stderr().as_fd().try_clone_to_owned().unwrap();
        let _ = writeln!(std::fs::File::from(stderr), "\n{line}");
    }
}
