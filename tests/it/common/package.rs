//! The Debian package beyond the one `container::debian_package` builds: the
//! same sources with build-time settings, and a later version for the
//! upgrade test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::describe;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `packaging/build-deb.sh` of the source tree `source` with `envs`,
/// under the lock that `container::debian_package` takes (the builds share
/// the target directory); returns the package's path. At the lowest CPU
/// priority: the end-to-end tests that run meanwhile measure downtimes.
pub fn build_deb(source: &Path, envs: &[(&str, &str)]) -> PathBuf {
    let manifest = manifest_dir();
    let out = Command::new("nice")
        .args(["-n", "19", "flock"])
        .arg(manifest.join("target/.build-deb.lock"))
        .args(["bash", "packaging/build-deb.sh"])
        .current_dir(source)
        .env("CARGO_TARGET_DIR", manifest.join("target"))
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the package in {}: {}",
        source.display(),
        describe(&out)
    );
    source.join(String::from_utf8(out.stdout).unwrap().trim())
}

/// The environment of `build-deb.sh` for the quick `package-test` profile
/// that the tests build their packages with: no LTO, incremental.
pub const QUICK_PROFILE: (&str, &str) = ("MAILBACKUP_DEB_PROFILE", "package-test");

/// The comment line that the next version's service template has and this
/// one's has not.
pub const NEXT_TEMPLATE_LINE: &str = "# Rendered by the next version's templates.";

/// The files a package is built from.
const SOURCES: [&str; 7] = [
    "Cargo.toml",
    "Cargo.lock",
    "README.md",
    "doc",
    "src",
    "templates",
    "packaging",
];

/// A later version of the package whose service template has one more
/// comment line, `NEXT_TEMPLATE_LINE`, and whose version is `version`'s
/// with `+next` appended. Built from a copy of the sources in
/// target/next-package with the quick `package-test` profile; files are
/// copied only when they changed, so that a second build in one test run
/// compiles nothing.
pub fn next_package(version: &str) -> PathBuf {
    let manifest = manifest_dir();
    let copy = manifest.join("target/next-package/src");
    let template = manifest.join("templates/mailbackup.service");
    let patch = |from: &Path, content: Vec<u8>| {
        if from != template {
            return content;
        }
        // The header line is not in the template: `install` writes it.
        let text = String::from_utf8(content).unwrap();
        format!("{NEXT_TEMPLATE_LINE}\n{text}").into_bytes()
    };
    for name in SOURCES {
        copy_changed(&manifest.join(name), &copy.join(name), &patch);
    }
    let next_version = format!("{version}+next");
    let out = manifest.join(format!("target/next-package/mailbackup_{next_version}.deb"));
    build_deb(
        &copy,
        &[
            QUICK_PROFILE,
            ("MAILBACKUP_DEB_VERSION", &next_version),
            ("MAILBACKUP_DEB_OUTPUT", out.to_str().unwrap()),
        ],
    )
}

/// Copies `from` (a file or a tree) to `to`, each file's content as `patch`
/// makes it, writing only what differs and removing what `from` does not
/// have.
fn copy_changed(from: &Path, to: &Path, patch: &dyn Fn(&Path, Vec<u8>) -> Vec<u8>) {
    if from.is_dir() {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(to).unwrap() {
            let entry = entry.unwrap();
            if !from.join(entry.file_name()).exists() {
                let path = entry.path();
                if path.is_dir() {
                    fs::remove_dir_all(path).unwrap();
                } else {
                    fs::remove_file(path).unwrap();
                }
            }
        }
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_changed(&entry.path(), &to.join(entry.file_name()), patch);
        }
    } else {
        write_changed(to, &patch(from, fs::read(from).unwrap()));
        fs::set_permissions(to, fs::metadata(from).unwrap().permissions()).unwrap();
    }
}

/// Writes `content` to `path` unless it holds that already: an unchanged
/// file keeps its time, and cargo rebuilds nothing.
fn write_changed(path: &Path, content: &[u8]) {
    if fs::read(path).ok().as_deref() != Some(content) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

/// A field of the package's control file.
pub fn field(deb: &Path, name: &str) -> String {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg(name)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
