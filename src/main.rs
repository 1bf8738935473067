use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mailbackup::cli::Cli::parse();
    match mailbackup::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("mailbackup: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
