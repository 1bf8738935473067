//! `mailbackup generate-docs`: man pages and shell completions, generated
//! from the command-line definitions so that they never drift from them.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Write the man pages and the bash, zsh and fish completions.
///
/// Writes DIR/man/mailbackup.1 and one page per subcommand, and
/// DIR/completions/{mailbackup.bash,_mailbackup,mailbackup.fish}. The Debian
/// package is built with it.
///
/// Example: mailbackup generate-docs target/docs
#[derive(Debug, clap::Args)]
pub struct GenerateDocsArgs {
    /// The directory to write into.
    pub dir: PathBuf,
}

pub fn run(_config_path: &Path, args: &GenerateDocsArgs) -> Result<u8> {
    let man = args.dir.join("man");
    let completions = args.dir.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    let cmd = Cli::command();
    write_man(&man.join("mailbackup.1"), cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("mailbackup-{}", sub.get_name());
        let page = sub.clone().name(name.clone()).display_name(name.clone());
        write_man(&man.join(format!("{name}.1")), page)?;
    }
    for (shell, file) in [
        (Shell::Bash, "mailbackup.bash"),
        (Shell::Zsh, "_mailbackup"),
        (Shell::Fish, "mailbackup.fish"),
    ] {
        let path = completions.join(file);
        let mut out =
            File::create(&path).with_context(|| format!("Failed to write {}", path.display()))?;
        clap_complete::generate(shell, &mut Cli::command(), "mailbackup", &mut out);
    }
    println!(
        "wrote man pages to {} and completions to {}",
        man.display(),
        completions.display()
    );
    Ok(0)
}

fn write_man(path: &Path, cmd: clap::Command) -> Result<()> {
    let mut out =
        File::create(path).with_context(|| format!("Failed to write {}", path.display()))?;
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .with_context(|| format!("Failed to write {}", path.display()))
}
