//! duplicity's file names on the target, parsed.
//!
//! A backup set is all the files that share one end time: the volumes, the
//! manifest, the signatures and (duplicity >= 2.1) the jsonstat file.

use std::fmt;
use std::sync::OnceLock;

use chrono::NaiveDateTime;
use regex::bytes::{CaptureLocations, Regex};

/// A duplicity time stamp as it appears in file names, `%Y%m%dT%H%M%SZ` (UTC).
/// Its bytes sort in time order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp([u8; 16]);

impl Stamp {
    pub fn parse(s: &[u8]) -> Option<Stamp> {
        let bytes: [u8; 16] = s.try_into().ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").ok()?;
        Some(Stamp(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Checked in `parse`.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The time, in UTC.
    pub fn datetime(&self) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(self.as_str(), "%Y%m%dT%H%M%SZ").unwrap_or_default()
    }
}

impl fmt::Debug for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a file contributes to its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Volume(u32),
    Manifest,
    Signatures,
    JsonStat,
}

/// One file of a backup set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetFile {
    /// The end time of the set: the key that groups files into backups.
    pub time: Stamp,
    /// For an incremental set, the time of the set it builds on.
    pub previous: Option<Stamp>,
    pub part: Part,
    /// `.gpg`: encrypted by duplicity.
    pub encrypted: bool,
    /// `.part`: not yet complete.
    pub partial: bool,
}

impl SetFile {
    pub fn is_full(&self) -> bool {
        self.previous.is_none()
    }
}

const SET_NAME: &str = r"^duplicity-(?:(full)|(full-signatures)|(inc|new-signatures)\.([0-9]{8}T[0-9]{6}Z)\.to)\.([0-9]{8}T[0-9]{6}Z)\.(?:vol([0-9]{1,9})\.(difftar)|(manifest)|(sigtar)|(jsonstat))(\.gpg|\.gz)?(\.part)?$";

fn set_name_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(SET_NAME).expect("SET_NAME is a valid regex"))
}

/// Parses file names, reusing its match buffers across calls (a target can
/// hold a hundred thousand files).
pub struct SetNameParser {
    locs: CaptureLocations,
}

impl Default for SetNameParser {
    fn default() -> Self {
        SetNameParser {
            locs: set_name_regex().capture_locations(),
        }
    }
}

impl SetNameParser {
    /// The set file named `name`, or `None` for a name duplicity does not
    /// write (including the short `df.`/`di.` names of duplicity < 2.0).
    pub fn parse(&mut self, name: &[u8]) -> Option<SetFile> {
        // A cheap test first: most names in a backup directory are ours.
        if !name.starts_with(b"duplicity-") {
            return None;
        }
        set_name_regex().captures_read(&mut self.locs, name)?;
        let locs = &self.locs;
        let group = |i: usize| locs.get(i).map(|(s, e)| &name[s..e]);
        let time = Stamp::parse(group(5)?)?;
        let (previous, signatures) = if group(1).is_some() {
            (None, false)
        } else if group(2).is_some() {
            (None, true)
        } else {
            let base = Stamp::parse(group(4)?)?;
            (Some(base), group(3)? == b"new-signatures")
        };
        let part = if group(7).is_some() {
            Part::Volume(std::str::from_utf8(group(6)?).ok()?.parse().ok()?)
        } else if group(8).is_some() {
            Part::Manifest
        } else if group(9).is_some() {
            Part::Signatures
        } else {
            Part::JsonStat
        };
        // Signatures live only in `*-signatures` sets and nowhere else.
        if signatures != (part == Part::Signatures) {
            return None;
        }
        Some(SetFile {
            time,
            previous,
            part,
            encrypted: group(11) == Some(b".gpg"),
            partial: group(12).is_some(),
        })
    }
}

/// Parses one name; see [`SetNameParser::parse`].
pub fn parse_set_name(name: &str) -> Option<SetFile> {
    SetNameParser::default().parse(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(s: &str) -> Stamp {
        Stamp::parse(s.as_bytes()).unwrap()
    }

    fn full(part: Part, encrypted: bool, partial: bool) -> SetFile {
        SetFile {
            time: stamp("20261121T010203Z"),
            previous: None,
            part,
            encrypted,
            partial,
        }
    }

    fn inc(part: Part, encrypted: bool, partial: bool) -> SetFile {
        SetFile {
            time: stamp("20261122T010203Z"),
            previous: Some(stamp("20261121T010203Z")),
            ..full(part, encrypted, partial)
        }
    }

    #[test]
    fn real_names_of_a_full_set() {
        let table = [
            (
                "duplicity-full.20261121T010203Z.vol1.difftar.gpg",
                full(Part::Volume(1), true, false),
            ),
            (
                "duplicity-full.20261121T010203Z.vol12.difftar.gz",
                full(Part::Volume(12), false, false),
            ),
            (
                "duplicity-full.20261121T010203Z.vol3.difftar",
                full(Part::Volume(3), false, false),
            ),
            (
                "duplicity-full.20261121T010203Z.manifest.gpg",
                full(Part::Manifest, true, false),
            ),
            (
                "duplicity-full.20261121T010203Z.manifest",
                full(Part::Manifest, false, false),
            ),
            (
                "duplicity-full.20261121T010203Z.manifest.part",
                full(Part::Manifest, false, true),
            ),
            (
                "duplicity-full.20261121T010203Z.jsonstat.gpg",
                full(Part::JsonStat, true, false),
            ),
            (
                "duplicity-full-signatures.20261121T010203Z.sigtar.gpg",
                full(Part::Signatures, true, false),
            ),
            (
                "duplicity-full-signatures.20261121T010203Z.sigtar.gz",
                full(Part::Signatures, false, false),
            ),
            (
                "duplicity-full-signatures.20261121T010203Z.sigtar.part",
                full(Part::Signatures, false, true),
            ),
        ];
        for (name, want) in table {
            assert_eq!(parse_set_name(name), Some(want), "{name}");
        }
    }

    #[test]
    fn real_names_of_an_incremental_set() {
        let table = [
            (
                "duplicity-inc.20261121T010203Z.to.20261122T010203Z.vol1.difftar.gpg",
                inc(Part::Volume(1), true, false),
            ),
            (
                "duplicity-inc.20261121T010203Z.to.20261122T010203Z.manifest.gpg",
                inc(Part::Manifest, true, false),
            ),
            (
                "duplicity-inc.20261121T010203Z.to.20261122T010203Z.jsonstat.gpg",
                inc(Part::JsonStat, true, false),
            ),
            (
                "duplicity-inc.20261121T010203Z.to.20261122T010203Z.vol2.difftar.gpg.part",
                inc(Part::Volume(2), true, true),
            ),
            (
                "duplicity-new-signatures.20261121T010203Z.to.20261122T010203Z.sigtar.gpg",
                inc(Part::Signatures, true, false),
            ),
            (
                "duplicity-new-signatures.20261121T010203Z.to.20261122T010203Z.sigtar.gz",
                inc(Part::Signatures, false, false),
            ),
        ];
        for (name, want) in table {
            assert_eq!(parse_set_name(name), Some(want), "{name}");
        }
    }

    #[test]
    fn garbage_and_foreign_names_are_skipped() {
        for name in [
            "",
            ".",
            "README",
            "duplicity-",
            "duplicity-full.20261121T010203Z",
            "duplicity-full.20261121T010203Z.",
            "duplicity-full.20261121T010203Z.vol1.difftar.gpg.enc",
            "duplicity-full.20261121T010203Z.vol.difftar.gpg",
            "duplicity-full.20261121T010203Z.sigtar.gpg",
            "duplicity-full-signatures.20261121T010203Z.manifest.gpg",
            "duplicity-new-signatures.20261121T010203Z.to.20261122T010203Z.vol1.difftar.gpg",
            "duplicity-inc.20261121T010203Z.20261122T010203Z.manifest.gpg",
            "duplicity-full.20261321T010203Z.manifest.gpg",
            "duplicity-full.2026112T010203Z.manifest.gpg",
            "duplicity-full.20261121T010203Z.manifest.gpg~",
            "df.20261121T010203Z.manifest.gpg",
            "di.20261121T010203Z.to.20261122T010203Z.manifest.gpg",
            "duplicity-full.20261121T010203Z.vol1.difftar.gpg ",
            "duplicity-full.20261121T010203Z.manifest.gpg\n",
        ] {
            assert_eq!(parse_set_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn stamps_sort_by_time() {
        assert!(stamp("20261121T010203Z") < stamp("20261121T010204Z"));
        assert_eq!(
            stamp("20261121T010203Z").datetime().to_string(),
            "2026-11-21 01:02:03"
        );
    }
}
