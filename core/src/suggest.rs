//! "Did you mean ...?" for misspelled names (flags, parameters, environment variables).

/// The candidate closest to `written` by edit distance, ignoring leading dashes, when it is
/// close enough to be a plausible misspelling (at most a third of its length, and at least 2,
/// edits away). Ties go to the earlier candidate.
///
/// ```
/// use inferkit_core::suggest::nearest;
///
/// let flags = ["--max-seq-len", "--max-batch-size"];
/// assert_eq!(nearest("--max-seq-length", flags), Some("--max-seq-len"));
/// assert_eq!(nearest("--port", flags), None);
/// ```
pub fn nearest<'a>(
    written: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let wanted = written.trim_start_matches('-');
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let bare = candidate.trim_start_matches('-');
        let distance = edit_distance(wanted, bare);
        let close = distance <= (bare.len() / 3).max(2);
        if close && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars (names are short, so one row suffices).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn far_names_are_not_suggested() {
        assert_eq!(nearest("--dtype", ["--max-link-num"]), None);
        assert_eq!(
            nearest("--dtpye", ["--max-link-num", "--dtype"]),
            Some("--dtype")
        );
    }
}
