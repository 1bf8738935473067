//! Targets full of backup files, for the tests that compare `status` of a
//! remote target with `status` of the same files in a local one: the
//! listing is all that may differ.

use std::fs;
use std::path::Path;

use super::MailBox;

/// The names and sizes of a target with `sets` backups, four a day, each a full
/// or an increment with volumes, manifest and signatures, and two strays.
pub fn many_backup_files(sets: usize) -> Vec<(String, u64)> {
    let mut files = Vec::new();
    let stamp = |i: usize| {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
            + chrono::Duration::days(i as i64 / 4);
        format!("{}T{:02}0000Z", day.format("%Y%m%d"), (i % 4) * 6)
    };
    for i in 0..sets {
        let t = stamp(i);
        let (kind, sig) = if i % 10 == 0 {
            (
                format!("duplicity-full.{t}"),
                format!("duplicity-full-signatures.{t}.sigtar.gpg"),
            )
        } else {
            let p = stamp(i - 1);
            (
                format!("duplicity-inc.{p}.to.{t}"),
                format!("duplicity-new-signatures.{p}.to.{t}.sigtar.gpg"),
            )
        };
        for v in 1..=3 {
            files.push((
                format!("{kind}.vol{v}.difftar.gpg"),
                (i * 7 + v * 1000) as u64,
            ));
        }
        files.push((format!("{kind}.manifest.gpg"), 300 + i as u64));
        files.push((sig, 50 + i as u64));
    }
    files.push(("notes.txt".into(), 12));
    files.push((
        "duplicity-full.20260101T000000Z.vol1.difftar.gpg.part".into(),
        5,
    ));
    files
}

/// `status --json` without what names the box and the target.
pub fn status_without_directory(mailbox: &MailBox) -> serde_json::Value {
    let mut s = mailbox.status();
    s.as_object_mut().unwrap().remove("directory");
    s.as_object_mut().unwrap().remove("encpwfile");
    s
}

/// Fails with the first backup that differs, not with two lists of
/// thousands.
pub fn assert_same_status(got: &serde_json::Value, want: &serde_json::Value, what: &str) {
    if got == want {
        return;
    }
    let (g, w) = (
        got["backups"].as_array().unwrap(),
        want["backups"].as_array().unwrap(),
    );
    let first = g.iter().zip(w).find(|(a, b)| a != b);
    panic!(
        "{what}: {} backups, want {}; unknown {} / {}; first difference: {first:?}",
        g.len(),
        w.len(),
        got["unknown_files"],
        want["unknown_files"]
    );
}

/// Creates each of `files` in `dir` with its size, sparse (no room taken).
pub fn write_sparse_files(dir: &Path, files: &[(String, u64)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, size) in files {
        fs::File::create(dir.join(name))
            .unwrap()
            .set_len(*size)
            .unwrap();
    }
}
