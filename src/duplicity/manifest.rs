//! duplicity's manifests: which volume of a backup set holds which range of
//! paths. A restore of one path fetches only the volumes whose range may
//! hold it (duplicity's `Manifest.get_containing_volumes`); the drill uses
//! the same rule to count what it read.

/// A path in a backup, as duplicity orders them: its components, bytes.
pub type Index = Vec<Vec<u8>>;

/// One volume's range of paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRange {
    pub number: u32,
    pub start: Index,
    pub end: Index,
}

/// The volume ranges of a manifest's text (`Volume N:` stanzas with
/// `StartingPath` and `EndingPath`). Stanzas it cannot read are skipped.
pub fn volume_ranges(text: &[u8]) -> Vec<VolumeRange> {
    let mut ranges = Vec::new();
    let mut current: Option<(u32, Option<Index>, Option<Index>)> = None;
    for line in text.split(|&b| b == b'\n') {
        let line = trim(line);
        if let Some(rest) = line.strip_prefix(b"Volume ") {
            finish(&mut ranges, current.take());
            let number = rest
                .strip_suffix(b":")
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse().ok());
            current = number.map(|n| (n, None, None));
        } else if let Some((_, start, end)) = current.as_mut() {
            if let Some(rest) = line.strip_prefix(b"StartingPath") {
                *start = Some(path_field(rest));
            } else if let Some(rest) = line.strip_prefix(b"EndingPath") {
                *end = Some(path_field(rest));
            }
        }
    }
    finish(&mut ranges, current);
    ranges
}

fn finish(ranges: &mut Vec<VolumeRange>, stanza: Option<(u32, Option<Index>, Option<Index>)>) {
    if let Some((number, Some(start), Some(end))) = stanza {
        ranges.push(VolumeRange { number, start, end });
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !first.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !last.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    s
}

/// `   PATH [BLOCK]`: the path, unquoted, as an index (`.` is the root).
fn path_field(rest: &[u8]) -> Index {
    let rest = trim(rest);
    let word = rest
        .split(|b| b.is_ascii_whitespace())
        .next()
        .unwrap_or_default();
    index_of(&unquote(word))
}

/// duplicity's `Unquote`: `"a\x20b"` is `a b`; an unquoted word is itself.
fn unquote(word: &[u8]) -> Vec<u8> {
    let Some(inner) = word.strip_prefix(b"\"").and_then(|w| w.strip_suffix(b"\"")) else {
        return word.to_vec();
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let hex = inner
            .get(i..i + 4)
            .filter(|q| q.starts_with(b"\\x"))
            .and_then(|q| std::str::from_utf8(&q[2..]).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(inner[i]);
                i += 1;
            }
        }
    }
    out
}

/// A relative path as an index: `.` and the empty path are the root.
pub fn index_of(path: &[u8]) -> Index {
    if path == b"." {
        return Vec::new();
    }
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

/// The volumes that may hold `prefix` or anything under it: the start of
/// the range, cut to the prefix's length, is not after it, and the prefix
/// is not after the range's end.
pub fn containing_volumes(ranges: &[VolumeRange], prefix: &Index) -> Vec<u32> {
    ranges
        .iter()
        .filter(|r| {
            let start = &r.start[..r.start.len().min(prefix.len())];
            start <= &prefix[..] && prefix <= &r.end
        })
        .map(|r| r.number)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &[u8] = b"Hostname box\nLocaldir .\nVolume 1:\n    StartingPath   .\n    EndingPath     mail/mailboxes/example.com/bob/cur/x 3\n    Hash SHA1 ab\nVolume 2:\n    StartingPath   mail/mailboxes/example.com/bob/cur/x 4\n    EndingPath     \"mail/mailboxes/example.com/zo\\x20e/cur\"\n    Hash SHA1 cd\nVolume 3:\n    StartingPath   \"mail/mailboxes/example.com/zo\\x20e/new\"\n    EndingPath     www/index.html\n";

    fn ix(p: &str) -> Index {
        index_of(p.as_bytes())
    }

    #[test]
    fn ranges_are_read_and_unquoted() {
        let r = volume_ranges(MANIFEST);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].start, Index::new());
        assert_eq!(r[1].start, ix("mail/mailboxes/example.com/bob/cur/x"));
        assert_eq!(r[1].end, ix("mail/mailboxes/example.com/zo e/cur"));
        assert_eq!(r[2].number, 3);
    }

    #[test]
    fn only_the_volumes_of_a_path_are_fetched() {
        let r = volume_ranges(MANIFEST);
        assert_eq!(
            containing_volumes(&r, &ix("mail/mailboxes/example.com/alice")),
            [1]
        );
        assert_eq!(
            containing_volumes(&r, &ix("mail/mailboxes/example.com/bob")),
            [1, 2]
        );
        assert_eq!(
            containing_volumes(&r, &ix("mail/mailboxes/example.com/zo e")),
            [2, 3]
        );
        assert_eq!(containing_volumes(&r, &ix("www")), [3]);
        assert_eq!(containing_volumes(&r, &ix("mail/users.sqlite")), [3]);
        assert!(containing_volumes(&r, &ix("zzz")).is_empty());
    }

    #[test]
    fn broken_stanzas_are_skipped() {
        let r = volume_ranges(
            b"Volume x:\n StartingPath a\n EndingPath b\nVolume 4:\n StartingPath a\n",
        );
        assert!(r.is_empty());
    }
}
