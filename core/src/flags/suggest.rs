//! "Did you mean ...?" for misspelled names (flags, parameters, environment variables).

/// The candidate closest to `written` by edit distance, ignoring leading dashes, when it is
/// close enough to be a plausible misspelling (at most a third of its length, and at least 2,
/// edits away). Ties go to the earlier candidate.
///
/// ```
/// use inferkit_core::flags::suggest::nearest;
///
/// let flags = ["--max-seq-len", "--max-batch-size"];
/// assert_eq!(nearest("--max-seq-length", flags), Some("--max-seq-len"));
/// assert_eq!(nearest("--port", flags), None);
/// ```
pub fn nearest<'a>(
    written: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    best_match(written, candidates, |distance, bare| {
        distance <= (bare.len() / 3).max(2)
    })
}

/// The candidate closest to `written` by edit distance, ignoring leading dashes, however far
/// it is; `None` only when there are no candidates. Ties go to the earlier candidate. For
/// messages that always name the nearest valid spelling, as argparse-style tools do.
///
/// ```
/// use inferkit_core::flags::suggest::closest;
///
/// let flags = ["--model", "--data-dir"];
/// assert_eq!(closest("--model-dir", flags), Some("--model"));
/// assert_eq!(closest("--x", []), None);
/// ```
pub fn closest<'a>(
    written: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    best_match(written, candidates, |_, _| true)
}

/// The candidate at the smallest edit distance among those `accept` (given the distance and the
/// candidate without leading dashes) lets through; ties go to the earlier candidate.
fn best_match<'a>(
    written: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    accept: impl Fn(usize, &str) -> bool,
) -> Option<&'a str> {
    let wanted = written.trim_start_matches('-');
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let bare = candidate.trim_start_matches('-');
        let distance = edit_distance(wanted, bare);
        if accept(distance, bare) && best.is_none_or(|(d, _)| distance < d) {
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
    fn closest_names_a_far_candidate_and_prefers_the_earlier_on_ties() {
        assert_eq!(
            closest("--dtype", ["--max-link-num"]),
            Some("--max-link-num")
        );
        // "model-dir" is 4 edits from "model" and 5 from "data-dir".
        assert_eq!(
            closest("--model-dir", ["--data-dir", "--model"]),
            Some("--model")
        );
        assert_eq!(closest("--cat", ["--bat", "--hat"]), Some("--bat"));
        assert_eq!(closest("--cat", ["--hat", "--bat"]), Some("--hat"));
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
