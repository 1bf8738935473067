//! The restore drill's cores: which mailbox is next, what a restore of
//! part of the backup reads from the target, and the comparison of what
//! came back with the live files that have not changed since the backup.

pub mod compare;

use std::path::Path;

use crate::duplicity::backup_set::{Part, Stamp};
use crate::duplicity::inventory::{Inventory, TargetFile};
use crate::duplicity::manifest::{self, VolumeRange};

/// The mailbox after `previous` in `mailboxes` (sorted), from the first
/// again after the last: each drill takes another one.
pub fn next_mailbox<'a>(mailboxes: &'a [String], previous: Option<&str>) -> Option<&'a String> {
    let after = previous.map_or(0, |p| mailboxes.partition_point(|m| m.as_str() <= p));
    mailboxes.get(after).or_else(|| mailboxes.first())
}

/// What restoring paths of the newest chain reads from the target: the
/// manifests and signatures of the chain (duplicity's partial metadata
/// sync into an empty archive dir) once, and per restore the volumes whose
/// range may hold its path. `manifests` gives a set's volume ranges; when
/// it has none for a set, all its volumes count.
pub fn bytes_read(
    inventory: &Inventory,
    restored: &[&Path],
    manifests: impl Fn(Stamp) -> Option<Vec<VolumeRange>>,
) -> u64 {
    let chain = inventory.newest_chain();
    let in_chain = |f: &&TargetFile| chain.iter().any(|b| b.date == f.file.time);
    let files: Vec<&TargetFile> = inventory.files.iter().filter(in_chain).collect();
    let metadata: u64 = files
        .iter()
        .filter(|f| matches!(f.file.part, Part::Manifest | Part::Signatures))
        .map(|f| f.size)
        .sum();
    let mut volumes = 0;
    for b in chain {
        let ranges = manifests(b.date);
        for path in restored {
            let wanted = ranges.as_ref().map(|r| {
                manifest::containing_volumes(
                    r,
                    &manifest::index_of(path.as_os_str().as_encoded_bytes()),
                )
            });
            volumes += files
                .iter()
                .filter(|f| f.file.time == b.date)
                .filter(|f| match (f.file.part, &wanted) {
                    (Part::Volume(n), Some(w)) => w.contains(&n),
                    (Part::Volume(_), None) => true,
                    _ => false,
                })
                .map(|f| f.size)
                .sum::<u64>();
        }
    }
    metadata + volumes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duplicity::inventory::{Entry, InventoryBuilder};

    #[test]
    fn mailboxes_rotate() {
        let m: Vec<String> = ["a/x", "a/y", "b/z"].map(String::from).to_vec();
        assert_eq!(next_mailbox(&m, None).unwrap(), "a/x");
        assert_eq!(next_mailbox(&m, Some("a/x")).unwrap(), "a/y");
        assert_eq!(next_mailbox(&m, Some("a/y")).unwrap(), "b/z");
        assert_eq!(next_mailbox(&m, Some("b/z")).unwrap(), "a/x");
        // One that is gone: the next after where it was.
        assert_eq!(next_mailbox(&m, Some("a/xx")).unwrap(), "a/y");
        assert_eq!(next_mailbox(&[], Some("a")), None);
    }

    fn inventory(names: &[(&str, u64)]) -> Inventory {
        let mut b = InventoryBuilder::default();
        for (name, size) in names {
            b.add(Entry {
                name: name.as_bytes(),
                size: *size,
                is_file: true,
            });
        }
        b.finish()
    }

    #[test]
    fn a_restore_of_one_path_reads_the_chain_metadata_and_its_volumes() {
        let inv = inventory(&[
            (
                "duplicity-full.20261101T030000Z.vol1.difftar.gpg",
                1_000_000,
            ),
            (
                "duplicity-full.20261101T030000Z.vol2.difftar.gpg",
                2_000_000,
            ),
            ("duplicity-full.20261101T030000Z.manifest.gpg", 100),
            (
                "duplicity-full-signatures.20261101T030000Z.sigtar.gpg",
                5_000,
            ),
            (
                "duplicity-inc.20261101T030000Z.to.20261102T030000Z.vol1.difftar.gpg",
                30_000,
            ),
            (
                "duplicity-inc.20261101T030000Z.to.20261102T030000Z.manifest.gpg",
                10,
            ),
            (
                "duplicity-new-signatures.20261101T030000Z.to.20261102T030000Z.sigtar.gpg",
                500,
            ),
            // An older chain, and an interrupted set: not read.
            (
                "duplicity-full.20261001T030000Z.vol1.difftar.gpg",
                7_000_000,
            ),
            ("duplicity-full.20261001T030000Z.manifest.gpg", 7),
            (
                "duplicity-inc.20261102T030000Z.to.20261103T030000Z.vol1.difftar.gpg",
                9_000,
            ),
        ]);
        let chain = inv.newest_chain();
        assert_eq!(chain.len(), 2);
        let full = Stamp::parse(b"20261101T030000Z").unwrap();
        let ranges = |t: Stamp| {
            (t == full).then(|| {
                manifest::volume_ranges(
                    b"Volume 1:\n StartingPath .\n EndingPath mail/mailboxes/b\nVolume 2:\n StartingPath mail/mailboxes/b 1\n EndingPath www\n",
                )
            })
        };
        let metadata = 100 + 5_000 + 10 + 500;
        let alice: &[&Path] = &[Path::new("mail/mailboxes/a")];
        assert_eq!(
            bytes_read(&inv, alice, ranges),
            metadata + 1_000_000 + 30_000
        );
        let both: &[&Path] = &[
            Path::new("mail/mailboxes/a"),
            Path::new("mail/users.sqlite"),
        ];
        assert_eq!(
            bytes_read(&inv, both, ranges),
            metadata + 1_000_000 + 2_000_000 + 2 * 30_000
        );
    }
}
