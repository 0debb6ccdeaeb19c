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
    best_match(written, candidates, |bare| (bare.len() / 3).max(2))
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
    best_match(written, candidates, |_| usize::MAX)
}

/// The candidate at the smallest edit distance among those within `bound` (given the candidate
/// without leading dashes) edits; ties go to the earlier candidate.
///
/// Each candidate is only measured up to the distance it would have to beat, so a long or
/// far-off name costs one pass over it per candidate, not a full edit-distance table.
fn best_match<'a>(
    written: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    bound: impl Fn(&str) -> usize,
) -> Option<&'a str> {
    let wanted = written.trim_start_matches('-');
    let wanted_len = wanted.chars().count();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let bare = candidate.trim_start_matches('-');
        let max = match best {
            // Nothing beats an exact match.
            Some((0, _)) => break,
            Some((d, _)) => bound(bare).min(d - 1),
            None => bound(bare),
        };
        if let Some(distance) = distance_within(wanted, wanted_len, bare, max) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    distance_within(a, a.chars().count(), b, usize::MAX).unwrap_or(usize::MAX)
}

/// The edit distance between `a` (of `a_len` chars) and `b` when it is at most `max`.
fn distance_within(a: &str, a_len: usize, b: &str, max: usize) -> Option<usize> {
    // Every char of the longer string beyond the shorter's length costs one edit.
    if a_len.abs_diff(b.chars().count()) > max {
        return None;
    }
    if b.is_empty() {
        return Some(a_len);
    }
    if b.is_ascii() && b.len() <= 64 {
        bit_parallel(a, a_len, b.as_bytes(), max)
    } else {
        dynamic_programming(a, b, max)
    }
}

/// Hyyrö's bit-parallel Levenshtein distance ("A bit-vector algorithm for computing Levenshtein
/// and Damerau edit distances", 2003; Myers 1999 for the search form): one column of the edit
/// table is kept as vertical +1/-1 bit vectors over `b` (at most 64 ASCII bytes), so each char
/// of `a` costs a few word operations whatever `b`'s length.
fn bit_parallel(a: &str, a_len: usize, b: &[u8], max: usize) -> Option<usize> {
    let mut equal = [0u64; 128];
    for (i, &byte) in b.iter().enumerate() {
        equal[usize::from(byte)] |= 1 << i;
    }
    let last = 1u64 << (b.len() - 1);
    let mut plus = u64::MAX;
    let mut minus = 0u64;
    let mut score = b.len();
    for (i, ch) in a.chars().enumerate() {
        // `b` is ASCII: a non-ASCII char matches nothing.
        let eq = equal.get(ch as usize).copied().unwrap_or(0);
        let xv = eq | minus;
        let xh = ((eq & plus).wrapping_add(plus) ^ plus) | eq;
        let mut horizontal_plus = minus | !(xh | plus);
        let mut horizontal_minus = plus & xh;
        if horizontal_plus & last != 0 {
            score += 1;
        } else if horizontal_minus & last != 0 {
            score -= 1;
        }
        // Each char of `a` left can lower the distance by one at most.
        if score.saturating_sub(a_len - i - 1) > max {
            return None;
        }
        // Row 0 of the table grows by one per char of `a`.
        horizontal_plus = (horizontal_plus << 1) | 1;
        horizontal_minus <<= 1;
        plus = horizontal_minus | !(xv | horizontal_plus);
        minus = horizontal_plus & xv;
    }
    (score <= max).then_some(score)
}

/// The textbook one-row table, for names the bit-parallel form does not take (non-ASCII or over
/// 64 bytes); given up once a whole row exceeds `max`.
fn dynamic_programming(a: &str, b: &str, max: usize) -> Option<usize> {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        let mut row_min = row[0];
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
            row_min = row_min.min(row[j + 1]);
        }
        if row_min > max {
            return None;
        }
    }
    let distance = row[b.len()];
    (distance <= max).then_some(distance)
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

    /// The full table, as the definition reads (the reference for the bounded forms).
    fn reference(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut table = vec![vec![0; b.len() + 1]; a.len() + 1];
        for (i, row) in table.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in table[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let substitution = table[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
                table[i][j] = substitution
                    .min(table[i - 1][j] + 1)
                    .min(table[i][j - 1] + 1);
            }
        }
        table[a.len()][b.len()]
    }

    /// Names of 0 to 80 chars over a small alphabet (so that they share chars), some with a
    /// non-ASCII char: both the bit-parallel form (ASCII, up to 64 bytes) and the table.
    fn names() -> Vec<String> {
        let alphabet = ['a', 'b', 'c', '-', 'é'];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut names = vec![String::new(), "max-model-len".to_string()];
        for n in 0..60u64 {
            let len = (next() % 81) as usize;
            let ascii_only = n % 3 != 0;
            let name: String = (0..len)
                .map(|_| alphabet[(next() % if ascii_only { 4 } else { 5 }) as usize])
                .collect();
            names.push(name);
        }
        names
    }

    #[test]
    fn bounded_distances_agree_with_the_full_table() {
        let names = names();
        for a in &names {
            let a_len = a.chars().count();
            for b in &names {
                let exact = reference(a, b);
                assert_eq!(edit_distance(a, b), exact, "{a:?} {b:?}");
                for max in [0, 1, exact.saturating_sub(1), exact, exact + 1, 70] {
                    let expected = (exact <= max).then_some(exact);
                    assert_eq!(
                        distance_within(a, a_len, b, max),
                        expected,
                        "{a:?} {b:?} {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_name_longer_than_any_candidate_still_gets_the_closest() {
        let long = format!("--max-model-len{}", "x".repeat(10_000));
        assert_eq!(
            closest(&long, ["--port", "--max-model-len", "--host"]),
            Some("--max-model-len")
        );
        assert_eq!(nearest(&long, ["--port", "--max-model-len"]), None);
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
