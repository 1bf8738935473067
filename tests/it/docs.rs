//! The documentation that ships: `--help` of every command, and the man
//! pages and completions generated from the same definitions.

use std::fs;

use crate::common::*;

const SUBCOMMANDS: [&str; 13] = [
    "run",
    "snapshot",
    "prune",
    "status",
    "restore",
    "list",
    "verify",
    "check-target",
    "install",
    "uninstall",
    "notify-failure",
    "ping",
    "key",
];

fn help(args: &[&str]) -> String {
    let out = clean_command(BIN, &"/usr/bin:/bin".into())
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_help_says_what_it_does_and_gives_an_example() {
    let top = help(&["--help"]);
    assert!(top.contains("Examples:\n  mailbackup install"), "{top}");
    for sub in SUBCOMMANDS {
        assert!(
            top.contains(&format!("  {sub} ")),
            "{sub} not listed in:\n{top}"
        );
        let text = help(&[sub, "--help"]);
        assert!(text.contains(&format!("mailbackup {sub}")), "{sub}: {text}");
        assert!(
            text.contains("Example"),
            "{sub} --help gives no example:\n{text}"
        );
        assert!(
            !text.to_lowercase().contains("reference"),
            "{sub} --help speaks of a reference a user does not know:\n{text}"
        );
    }
}

#[test]
fn man_pages_and_completions_are_generated_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = clean_command(BIN, &"/usr/bin:/bin".into())
        .arg("generate-docs")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let main = fs::read_to_string(dir.path().join("man/mailbackup.1")).unwrap();
    assert!(
        main.starts_with(".ie \\n(.g .ds Aq") || main.contains(".TH mailbackup 1"),
        "{main}"
    );
    for sub in SUBCOMMANDS {
        let page = fs::read_to_string(dir.path().join(format!("man/mailbackup-{sub}.1"))).unwrap();
        assert!(page.contains(&format!(".TH mailbackup-{sub} 1")), "{sub}");
        assert!(page.contains("Example"), "{sub}");
    }
    let restore = fs::read_to_string(dir.path().join("man/mailbackup-restore.1")).unwrap();
    assert!(restore.contains("in\\-place"), "{restore}");
    for (file, needle) in [
        ("mailbackup.bash", "restore"),
        ("_mailbackup", "restore"),
        ("mailbackup.fish", "restore"),
    ] {
        let text = fs::read_to_string(dir.path().join("completions").join(file)).unwrap();
        assert!(
            text.contains(needle) && text.contains("--in-place"),
            "{file}"
        );
    }
    assert!(
        !dir.path().join("man/mailbackup-generate-docs.1").exists(),
        "the hidden command has no page"
    );
}

fn manifest() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folders under `dir` (itself included), each with its `.rs` files
/// other than `mod.rs`, as paths relative to the manifest (`src/backend/`).
fn source_folders(dir: &std::path::Path, out: &mut Vec<(String, Vec<String>)>) {
    let rel = dir.strip_prefix(manifest()).unwrap().display().to_string() + "/";
    let mut files = vec![];
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            source_folders(&entry.path(), out);
        } else if name.ends_with(".rs") && name != "mod.rs" {
            files.push(name);
        }
    }
    out.push((rel, files));
}

/// HACKING.md's layout has one line per folder of `src/` (a list item that
/// starts with the folder's path), and that line names each of its files:
/// a module added without a word there fails this test.
#[test]
fn hacking_names_every_source_module() {
    let hacking = fs::read_to_string(manifest().join("HACKING.md")).unwrap();
    let mut folders = vec![];
    source_folders(&manifest().join("src"), &mut folders);
    let mut missing = vec![];
    for (folder, files) in folders {
        let Some(line) = hacking
            .lines()
            .find(|l| l.starts_with(&format!("- `{folder}`")))
        else {
            missing.push(format!("no line \"- `{folder}` ...\""));
            continue;
        };
        for file in files {
            if !line.contains(&format!("`{file}`")) {
                missing.push(format!(
                    "{folder}{file} is not named on the line of {folder}"
                ));
            }
        }
    }
    assert!(missing.is_empty(), "HACKING.md: {missing:#?}");
}

/// The pages written by hand (the configuration file, the design) are
/// valid man pages, and the configuration's names every key.
#[test]
fn the_hand_written_man_pages_render_without_warnings() {
    for page in ["doc/mailbackup.7", "doc/mailbackup-custom.yaml.5"] {
        let out = std::process::Command::new("man")
            .args(["--warnings", "-l", page])
            .env("MANWIDTH", "80")
            .current_dir(manifest())
            .output()
            .unwrap();
        assert!(out.status.success(), "{page}: {}", describe(&out));
        assert!(out.stderr.is_empty(), "{page}: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("NAME"));
    }
    let config = fs::read_to_string(manifest().join("doc/mailbackup-custom.yaml.5")).unwrap();
    for key in [
        "target",
        "target_user",
        "target_pass",
        "min_age_in_days",
        "ping_url",
    ] {
        assert!(
            config.contains(&format!(".B {}\n", key)),
            "mailbackup-custom.yaml(5) does not describe {key}"
        );
    }
    for form in ["local", "off", "rsync://", "s3://", "s3+http://", "b2://"] {
        let roff = form.replace('-', "\\-");
        assert!(
            config.contains(&roff) || config.contains(&format!(".B {form}")),
            "mailbackup-custom.yaml(5) does not describe the target {form}"
        );
    }
}
