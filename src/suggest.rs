//! "Did you mean": the known names nearest to one that was not found (a
//! mailbox, a folder, a key of custom.yaml).

/// The candidates nearest to `wanted`, ignoring case, at most `n`, the
/// nearest first.
pub fn closest<'a>(wanted: &str, candidates: &'a [String], n: usize) -> Vec<&'a str> {
    let wanted = wanted.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .iter()
        .map(|c| (edit_distance(&wanted, &c.to_lowercase()), c.as_str()))
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

/// Levenshtein's distance: insertions, deletions and substitutions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_counted() {
        assert_eq!(edit_distance("ping_ur", "ping_url"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn the_closest_come_first_whatever_their_case() {
        let found = ["bob@example.org".to_owned(), "alice@example.com".to_owned()];
        assert_eq!(
            closest("ALISE@example.com", &found, 1),
            ["alice@example.com"]
        );
        assert_eq!(closest("x", &found, 5).len(), 2);
    }
}
