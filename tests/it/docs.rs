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
