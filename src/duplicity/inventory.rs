//! What is in the backup target: the backups, their sizes, and stray files.

use std::collections::hash_map::{self, HashMap};
use std::fs::DirEntry;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::duplicity::backup_set::{Part, SetFile, SetNameParser, Stamp};

/// One backup: every file on the target with the same end time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub date: Stamp,
    pub full: bool,
    /// For an incremental backup, the time of the backup it builds on.
    pub previous: Option<Stamp>,
    /// The sum of the sizes of its files, in bytes.
    pub size: u64,
    /// Its manifest is there: duplicity writes it after the last volume, so
    /// a set without one is what an interrupted backup left.
    pub complete: bool,
    /// How many volume files it has (`collection-status` counts them).
    pub volumes: u32,
}

/// The backups on a target, newest first, and what else lies there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub backups: Vec<Backup>,
    /// Entries that are not duplicity files: skipped, but counted.
    pub unknown_files: u64,
    pub unknown_size: u64,
    /// Every duplicity file, with its size: what a restore of part of the
    /// backup reads is counted from them.
    pub files: Vec<TargetFile>,
}

/// One duplicity file on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFile {
    pub name: String,
    pub file: SetFile,
    pub size: u64,
}

/// A directory entry: its name, its size, and whether it is a regular file.
pub struct Entry<'a> {
    pub name: &'a [u8],
    pub size: u64,
    pub is_file: bool,
}

/// Builds an inventory from directory entries, grouping files by end time
/// as the reference does (the first file seen of a time decides whether the
/// backup is full).
#[derive(Default)]
pub struct InventoryBuilder {
    parser: SetNameParser,
    sets: HashMap<Stamp, Backup>,
    unknown_files: u64,
    unknown_size: u64,
    files: Vec<TargetFile>,
}

impl Inventory {
    /// The newest complete backup and the sets a restore of it reads: back
    /// to and with the full backup it builds on, newest first. Empty when
    /// no full backup is under it (nothing restores).
    pub fn newest_chain(&self) -> &[Backup] {
        self.chain_from(self.backups.iter().position(|b| b.complete))
    }

    /// The chain a restore as of `time` (Unix seconds) reads: that of the
    /// newest complete backup made at or before it.
    pub fn chain_at(&self, time: i64) -> &[Backup] {
        self.chain_from(
            self.backups
                .iter()
                .position(|b| b.complete && b.date.datetime().and_utc().timestamp() <= time),
        )
    }

    fn chain_from(&self, start: Option<usize>) -> &[Backup] {
        let Some(start) = start else {
            return &[];
        };
        match self.backups[start..].iter().position(|b| b.full) {
            Some(full) => &self.backups[start..=start + full],
            None => &[],
        }
    }
}

impl InventoryBuilder {
    pub fn add(&mut self, entry: Entry<'_>) {
        let parsed = if entry.is_file {
            self.parser.parse(entry.name)
        } else {
            None
        };
        let Some(file) = parsed else {
            self.unknown_files += 1;
            self.unknown_size += entry.size;
            return;
        };
        let backup = self.sets.entry(file.time).or_insert_with(|| Backup {
            date: file.time,
            full: file.is_full(),
            previous: file.previous,
            size: 0,
            complete: false,
            volumes: 0,
        });
        backup.size += entry.size;
        backup.complete |= file.part == Part::Manifest && !file.partial;
        if matches!(file.part, Part::Volume(_)) && !file.partial {
            backup.volumes += 1;
        }
        self.files.push(TargetFile {
            name: String::from_utf8_lossy(entry.name).into_owned(),
            file,
            size: entry.size,
        });
    }

    pub fn finish(self) -> Inventory {
        let mut backups: Vec<Backup> = self.sets.into_values().collect();
        backups.sort_unstable_by_key(|b| std::cmp::Reverse(b.date));
        Inventory {
            backups,
            unknown_files: self.unknown_files,
            unknown_size: self.unknown_size,
            files: self.files,
        }
    }
}

/// How many directory entries are stat'ed at a time, spread over the
/// threads: enough to keep them busy, few enough to keep memory small.
const CHUNK: usize = 4096;

impl InventoryBuilder {
    /// Adds the inventory of another builder, as if its entries came after.
    fn merge(&mut self, other: InventoryBuilder) {
        for (time, b) in other.sets {
            match self.sets.entry(time) {
                hash_map::Entry::Occupied(mut e) => {
                    e.get_mut().size += b.size;
                    e.get_mut().complete |= b.complete;
                    e.get_mut().volumes += b.volumes;
                }
                hash_map::Entry::Vacant(e) => {
                    e.insert(b);
                }
            }
        }
        self.unknown_files += other.unknown_files;
        self.unknown_size += other.unknown_size;
        self.files.extend(other.files);
    }

    /// Stats and adds directory entries. An entry removed meanwhile (by a
    /// concurrent prune) no longer counts.
    fn add_dir_entries(&mut self, entries: &[DirEntry]) -> Result<()> {
        for entry in entries {
            // Without following links, relative to the open directory.
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("Failed to read {}", entry.path().display()))
                }
            };
            self.add(Entry {
                name: entry.file_name().as_bytes(),
                size: meta.len(),
                is_file: meta.is_file(),
            });
        }
        Ok(())
    }
}

impl Inventory {
    /// The backups `duplicity collection-status` lists, newest first: the
    /// complete sets (with a manifest) that form a chain from a full backup.
    /// An interrupted set, and an increment whose base is gone or
    /// interrupted, are left out, as duplicity leaves them out.
    pub fn chained(&self) -> Vec<&Backup> {
        let mut listed: std::collections::HashSet<Stamp> = std::collections::HashSet::new();
        let mut chained = Vec::new();
        for b in self.backups.iter().rev() {
            let base_listed = b.previous.is_none_or(|p| listed.contains(&p));
            if b.complete && base_listed {
                listed.insert(b.date);
                chained.push(b);
            }
        }
        chained.reverse();
        chained
    }

    /// The bytes of the duplicity files that belong to no listed backup:
    /// Mail-in-a-Box's `unmatched_file_size`.
    pub fn unmatched_size(&self) -> u64 {
        let listed: u64 = self.chained().iter().map(|b| b.size).sum();
        self.backups.iter().map(|b| b.size).sum::<u64>() - listed
    }

    /// Reads the target directory. A missing directory is an empty target:
    /// nothing has been backed up yet. Never writes.
    ///
    /// A target can hold a hundred thousand files, and one stat each is most
    /// of the work: it is spread over the CPUs, a chunk of entries at a time.
    pub fn scan(dir: &Path) -> Result<Inventory> {
        let mut entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Inventory::default()),
            Err(e) if e.kind() == ErrorKind::NotADirectory => bail!(
                "The backup target {} is not a directory: move it out of the way",
                dir.display()
            ),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("Failed to list the backup target {}", dir.display()))
            }
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let mut builders: Vec<InventoryBuilder> =
            (0..threads).map(|_| InventoryBuilder::default()).collect();
        let mut chunk = Vec::with_capacity(CHUNK);
        loop {
            chunk.clear();
            for entry in entries.by_ref().take(CHUNK) {
                chunk.push(entry.with_context(|| {
                    format!("Failed to list the backup target {}", dir.display())
                })?);
            }
            if chunk.is_empty() {
                break;
            }
            let per_thread = chunk.len().div_ceil(threads);
            std::thread::scope(|s| {
                let workers: Vec<_> = builders
                    .iter_mut()
                    .zip(chunk.chunks(per_thread))
                    .map(|(builder, part)| s.spawn(move || builder.add_dir_entries(part)))
                    .collect();
                workers
                    .into_iter()
                    .try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            })?;
        }
        let mut all = InventoryBuilder::default();
        for b in builders {
            all.merge(b);
        }
        Ok(all.finish())
    }
}

/// Backups and times for the unit tests of what reads an inventory.
#[cfg(test)]
pub mod examples {
    use super::Backup;
    use crate::duplicity::backup_set::Stamp;

    /// A complete backup of one volume at `date` (duplicity's stamp), an
    /// increment on `previous` or a full backup.
    pub fn backup(date: &str, previous: Option<&str>, size: u64) -> Backup {
        Backup {
            date: Stamp::parse(date.as_bytes()).unwrap(),
            full: previous.is_none(),
            previous: previous.map(|p| Stamp::parse(p.as_bytes()).unwrap()),
            size,
            complete: true,
            volumes: 1,
        }
    }

    /// `YYYY-MM-DD HH:MM:SS` UTC in microseconds since the epoch.
    pub fn at(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(entries: &[(&str, u64, bool)]) -> Inventory {
        let mut b = InventoryBuilder::default();
        for &(name, size, is_file) in entries {
            b.add(Entry {
                name: name.as_bytes(),
                size,
                is_file,
            });
        }
        b.finish()
    }

    #[test]
    fn groups_by_end_time_newest_first() {
        let inv = build(&[
            (
                "duplicity-full.20261120T010000Z.vol1.difftar.gpg",
                1000,
                true,
            ),
            ("duplicity-full.20261120T010000Z.manifest.gpg", 10, true),
            (
                "duplicity-full-signatures.20261120T010000Z.sigtar.gpg",
                100,
                true,
            ),
            (
                "duplicity-inc.20261120T010000Z.to.20261121T010000Z.vol1.difftar.gpg",
                50,
                true,
            ),
            (
                "duplicity-new-signatures.20261120T010000Z.to.20261121T010000Z.sigtar.gpg",
                5,
                true,
            ),
            ("notes.txt", 7, true),
            ("duplicity-full.20261122T010000Z.vol1.difftar.gpg", 9, false),
        ]);
        assert_eq!(inv.backups.len(), 2);
        assert_eq!(inv.backups[0].date.as_str(), "20261121T010000Z");
        assert!(!inv.backups[0].full);
        assert_eq!(
            inv.backups[0].previous.unwrap().as_str(),
            "20261120T010000Z"
        );
        assert_eq!(inv.backups[0].size, 55);
        assert!(inv.backups[1].full);
        assert_eq!(inv.backups[1].size, 1110);
        assert_eq!((inv.unknown_files, inv.unknown_size), (2, 16));
        assert!(!inv.backups[0].complete, "no manifest");
        assert!(inv.backups[1].complete);
        assert_eq!((inv.backups[0].volumes, inv.backups[1].volumes), (1, 1));
        // The increment without its manifest is not a backup yet.
        assert_eq!(inv.chained(), vec![&inv.backups[1]]);
        assert_eq!(inv.unmatched_size(), 55);
    }

    #[test]
    fn the_chain_a_restore_reads_now_and_as_of_a_time() {
        let manifest = |name: &str| (name.to_owned() + ".manifest.gpg", 10, true);
        let names = [
            manifest("duplicity-full.20261110T010000Z"),
            manifest("duplicity-inc.20261110T010000Z.to.20261111T010000Z"),
            manifest("duplicity-full.20261120T010000Z"),
            manifest("duplicity-inc.20261120T010000Z.to.20261121T010000Z"),
            // Interrupted: no manifest.
            (
                "duplicity-inc.20261121T010000Z.to.20261122T010000Z.vol1.difftar.gpg".to_owned(),
                5,
                true,
            ),
        ];
        let entries: Vec<_> = names.iter().map(|(n, s, f)| (n.as_str(), *s, *f)).collect();
        let inv = build(&entries);
        let dates = |chain: &[Backup]| -> Vec<String> {
            chain.iter().map(|b| b.date.as_str().to_owned()).collect()
        };
        assert_eq!(
            dates(inv.newest_chain()),
            ["20261121T010000Z", "20261120T010000Z"]
        );
        let at = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
                .unwrap()
                .and_utc()
                .timestamp()
        };
        assert_eq!(
            dates(inv.chain_at(at("20261111T120000Z"))),
            ["20261111T010000Z", "20261110T010000Z"]
        );
        assert_eq!(
            dates(inv.chain_at(at("20261120T010000Z"))),
            ["20261120T010000Z"]
        );
        assert!(inv.chain_at(at("20261101T000000Z")).is_empty());
    }

    #[test]
    fn an_increment_on_an_interrupted_base_is_no_backup() {
        let inv = build(&[
            ("duplicity-full.20261120T010000Z.manifest.gpg", 10, true),
            (
                "duplicity-inc.20261120T010000Z.to.20261121T010000Z.vol1.difftar.gpg",
                50,
                true,
            ),
            (
                "duplicity-inc.20261121T010000Z.to.20261122T010000Z.manifest.gpg",
                7,
                true,
            ),
            (
                "duplicity-inc.20261101T010000Z.to.20261102T010000Z.manifest.gpg",
                3,
                true,
            ),
        ]);
        let dates: Vec<&str> = inv.chained().iter().map(|b| b.date.as_str()).collect();
        assert_eq!(dates, ["20261120T010000Z"]);
        assert_eq!(inv.unmatched_size(), 60);
    }
}
