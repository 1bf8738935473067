//! `mailbackup key show` and `mailbackup key confirm`: the key that must
//! not live only on the box.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::key;

/// Show the backup key, or confirm that a copy is kept off this box.
///
/// Every backup is encrypted with STORAGE_ROOT/backup/secret_key.txt, and
/// no backup includes it: when the box is lost and the key only lived on
/// it, every backup is lost with it. `key show` prints it; keep it in a
/// password manager or on paper in a safe, never on this box nor beside the
/// backups. `key confirm` reads it back from where you keep it (standard
/// input) and records that it matches: only its SHA-256 fingerprint and the
/// date, in STORAGE_ROOT/backup/key-confirmed. Until then, and again after
/// the key changed, `status --check` warns.
///
/// Examples:
///   mailbackup key show
///   mailbackup key confirm < /media/usb/mailbackup-key.txt
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub what: KeyWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyWhat {
    /// Print the backup key, with where to keep it.
    Show,
    /// Read the key from standard input, compare, and record the confirmation.
    Confirm,
}

pub fn run(config_path: &Path, args: &KeyArgs) -> Result<u8> {
    let config = Config::load(config_path)?;
    let layout = config.layout();
    match args.what {
        KeyWhat::Show => show(&layout.key_file),
        KeyWhat::Confirm => confirm(&layout, std::io::stdin().lock(), chrono::Utc::now()),
    }
}

/// What `key show` says about the key, on standard error so that standard
/// output holds the key alone.
pub const KEEP_IT_NOTE: &str = "\
Keep a copy of this key where the box is not: in a password manager, or
printed on paper in a safe. Never on this box, nor on the backup server or
in the bucket beside the backups. Without it no backup can be restored.
Then run `mailbackup key confirm` and paste it, to record that it is kept.";

fn show(key_file: &Path) -> Result<u8> {
    key::load(key_file)?;
    let text = std::fs::read(key_file)
        .with_context(|| format!("Failed to read the backup key {}", key_file.display()))?;
    eprintln!("The backup key, {}:\n", key_file.display());
    let mut out = std::io::stdout().lock();
    out.write_all(&text)
        .and_then(|()| {
            if text.ends_with(b"\n") {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush())
        .context("Failed to print the key")?;
    eprintln!("\n{KEEP_IT_NOTE}");
    Ok(0)
}

/// Compares what `input` gives with the key file of `layout`, and records
/// the key's fingerprint and `now` when they match.
pub fn confirm(
    layout: &crate::config::Layout,
    mut input: impl Read,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u8> {
    let loaded = key::load(&layout.key_file)?;
    let key_text = std::fs::read(&layout.key_file).with_context(|| {
        format!(
            "Failed to read the backup key {}",
            layout.key_file.display()
        )
    })?;
    if std::io::stdin().is_terminal() {
        eprintln!("Paste the backup key from where you keep it, then press Ctrl-D:");
    }
    let mut pasted = Vec::new();
    input
        .read_to_end(&mut pasted)
        .context("Failed to read the key from standard input")?;
    if pasted.iter().all(u8::is_ascii_whitespace) {
        bail!(
            "nothing was read from standard input: paste the key from where you keep it \
             (`mailbackup key confirm < copy-of-key.txt`); nothing was recorded"
        );
    }
    if !key::matches(&key_text, &pasted) {
        bail!(
            "what you gave is not the backup key {}: nothing was recorded; check the copy you keep \
             (`mailbackup key show` prints the key)",
            layout.key_file.display()
        );
    }
    let fingerprint = key::fingerprint(&loaded.passphrase);
    let record = key::record_confirmation(layout, &fingerprint, now)?;
    println!(
        "confirmed: the copy you keep is the backup key {} ({fingerprint}); recorded in {}",
        layout.key_file.display(),
        record.display()
    );
    Ok(0)
}
