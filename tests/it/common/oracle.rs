//! What the tests that hold `status` to the reference programs (the 2015
//! `backup.py` and v75's) share: a replayable random generator, duplicity's
//! time stamps, sparse files, local times in a zone, programs under
//! faketime.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{clean_command, describe};

/// The PATH the reference programs run with.
pub const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// A small deterministic generator, so a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// duplicity's stamp of Unix time `t`, as in its file names.
pub fn stamp(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// A sparse file of `size` bytes.
pub fn sized(path: &Path, size: u64) {
    fs::File::create(path).unwrap().set_len(size).unwrap();
}

/// The Unix time of a local wall-clock time in `zone`.
pub fn epoch(zone: &str, local: &str) -> i64 {
    let out = Command::new("date")
        .env("TZ", zone)
        .args(["-d", local, "+%s"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `program args` under faketime at the local time `now` in `zone`, frozen
/// (`-f`) or running from there.
pub fn faked(
    zone: &str,
    now: &str,
    frozen: bool,
    program: &Path,
    args: &[&std::ffi::OsStr],
) -> Command {
    let mut c = clean_command("faketime", &SYSTEM_PATH.into());
    c.env("TZ", zone);
    if frozen {
        c.arg("-f");
    }
    c.arg(now).arg(program).args(args);
    c
}

/// What `c` printed as JSON; it must succeed.
pub fn json_of(mut c: Command) -> Value {
    let out = c
        .output()
        .expect("faketime is missing: run tests/setup.sh first");
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}
