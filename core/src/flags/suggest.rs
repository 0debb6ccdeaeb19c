//! "Did you mean ...?" for misspelled names (flags, parameters, environment variables).

use serde::{Deserialize, Serialize};

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

/// Spellings prepared for many [`closest`] searches over the same list (a flag table's): the
/// spellings nearest in length to the written name are measured first, and the search stops
/// once the difference in length alone, a lower bound of the edit distance, exceeds the best
/// distance found. The answer is [`closest`]'s over the spellings in the order given.
///
/// ```
/// use inferkit_core::flags::suggest::{SpellingIndex, closest};
///
/// let flags = ["--model", "--data-dir", "--max-model-len"];
/// let index = SpellingIndex::new(flags);
/// assert_eq!(index.closest("--model-dir"), Some("--model"));
/// assert_eq!(index.closest("--model-dir"), closest("--model-dir", flags));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct SpellingIndex {
    /// The spellings in the order given: ties go to the earlier.
    spellings: Vec<String>,
    /// `(length in chars without leading dashes, position in spellings)`, sorted.
    by_length: Vec<(usize, usize)>,
}

impl SpellingIndex {
    /// Indexes `spellings` (their order decides ties).
    pub fn new<S: Into<String>>(spellings: impl IntoIterator<Item = S>) -> Self {
        let spellings: Vec<String> = spellings.into_iter().map(Into::into).collect();
        let mut by_length: Vec<(usize, usize)> = spellings
            .iter()
            .enumerate()
            .map(|(position, s)| (char_len(without_dashes(s)), position))
            .collect();
        by_length.sort_unstable();
        SpellingIndex {
            spellings,
            by_length,
        }
    }

    /// The spelling closest to `written`, as [`closest`] finds it; `None` only when there are
    /// no spellings.
    pub fn closest(&self, written: &str) -> Option<&str> {
        let wanted = Name::new(without_dashes(written));
        // Spellings shorter than the written name lie before `longer`, the others from it; the
        // search walks out from there both ways, in increasing difference of length.
        let longer = self.by_length.partition_point(|(len, _)| *len < wanted.len);
        let (mut below, mut above) = (longer, longer);
        let mut best: Option<(usize, usize)> = None;
        loop {
            let shorter = below
                .checked_sub(1)
                .map(|i| (wanted.len - self.by_length[i].0, i));
            let longer = self
                .by_length
                .get(above)
                .map(|(len, _)| (len - wanted.len, above));
            let (difference, i) = match (shorter, longer) {
                (Some(s), Some(l)) => s.min(l),
                (Some(s), None) => s,
                (None, Some(l)) => l,
                (None, None) => break,
            };
            if i < below {
                below = i;
            } else {
                above = i + 1;
            }
            // Every spelling left differs in length by at least `difference`.
            if best.is_some_and(|(distance, _)| difference > distance) {
                break;
            }
            let position = self.by_length[i].1;
            let max = match best {
                None => usize::MAX,
                // An earlier spelling wins a tie, a later one must be nearer.
                Some((distance, first)) if position < first => distance,
                Some((0, _)) => continue,
                Some((distance, _)) => distance - 1,
            };
            let bare = without_dashes(&self.spellings[position]);
            if let Some(distance) = distance_within(&wanted, bare, max) {
                best = Some((distance, position));
            }
        }
        best.map(|(_, position)| self.spellings[position].as_str())
    }
}

impl From<Vec<String>> for SpellingIndex {
    fn from(spellings: Vec<String>) -> Self {
        SpellingIndex::new(spellings)
    }
}

impl From<SpellingIndex> for Vec<String> {
    fn from(index: SpellingIndex) -> Self {
        index.spellings
    }
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
    let wanted = Name::new(without_dashes(written));
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let bare = without_dashes(candidate);
        let max = match best {
            // Nothing beats an exact match.
            Some((0, _)) => break,
            Some((d, _)) => bound(bare).min(d - 1),
            None => bound(bare),
        };
        if let Some(distance) = distance_within(&wanted, bare, max) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// `name` without its leading dashes (a byte scan: this runs once per candidate spelling).
fn without_dashes(name: &str) -> &str {
    let dashes = name.bytes().take_while(|b| *b == b'-').count();
    // Dashes are one byte each, so `dashes` is a char boundary.
    &name[dashes..]
}

/// The number of chars of `text`: its length in bytes when it is ASCII, as flag spellings are.
fn char_len(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    distance_within(&Name::new(a), b, usize::MAX).unwrap_or(usize::MAX)
}

/// A name compared with many others: its length in chars, and its bit-parallel pattern when it
/// has one.
struct Name<'a> {
    text: &'a str,
    len: usize,
    pattern: Option<Pattern>,
}

impl<'a> Name<'a> {
    fn new(text: &'a str) -> Self {
        Name {
            text,
            len: char_len(text),
            pattern: Pattern::new(text),
        }
    }
}

/// The positions of each ASCII char in a non-empty name, as bit masks over its chars: 64
/// positions a block. A non-ASCII char of the name has no bit, so the pattern matches it with
/// nothing: exact against an ASCII text, and against any text when the name is ASCII.
struct Pattern {
    /// `blocks[b][c]`: bit `i` is set when char `64 b + i` of the name is the ASCII char `c`.
    blocks: Vec<[u64; 128]>,
    /// The name's length in chars.
    len: usize,
    ascii: bool,
}

impl Pattern {
    fn new(name: &str) -> Option<Self> {
        if name.is_empty() {
            return None;
        }
        let mut blocks = Vec::new();
        let mut len = 0;
        for (i, ch) in name.chars().enumerate() {
            if i % 64 == 0 {
                blocks.push([0u64; 128]);
            }
            if let (Some(block), Some(code)) = (blocks.last_mut(), u8::try_from(ch).ok())
                && let Some(mask) = block.get_mut(usize::from(code))
            {
                *mask |= 1 << (i % 64);
            }
            len = i + 1;
        }
        Some(Pattern {
            blocks,
            len,
            ascii: name.is_ascii(),
        })
    }
}

/// The edit distance between `a` and `b` when it is at most `max`.
fn distance_within(a: &Name, b: &str, max: usize) -> Option<usize> {
    let b_len = char_len(b);
    // Every char of the longer name beyond the shorter's length costs one edit.
    if a.len.abs_diff(b_len) > max {
        return None;
    }
    if a.len == 0 || b_len == 0 {
        return Some(a.len.max(b_len));
    }
    match &a.pattern {
        // `a`'s pattern, built once for all candidates, sees every char two names can share
        // when one of them is ASCII.
        Some(pattern) if pattern.ascii || b_len == b.len() => bit_parallel(pattern, b, b_len, max),
        _ => dynamic_programming(a.text, b, max),
    }
}

/// Hyyrö's bit-parallel Levenshtein distance ("A bit-vector algorithm for computing Levenshtein
/// and Damerau edit distances", 2003), in Myers' blocks of 64 pattern chars ("A fast
/// bit-vector algorithm for approximate string matching based on dynamic programming", 1999,
/// section 4): one column of the edit table is kept as vertical +1/-1 bit vectors over the
/// pattern, so each char of `text` (of `text_len` chars) costs a few word operations a block.
fn bit_parallel(pattern: &Pattern, text: &str, text_len: usize, max: usize) -> Option<usize> {
    // `text_len` counts chars: it equals the byte length only for ASCII text, which is then
    // read byte by byte rather than decoded.
    if text_len == text.len() {
        bit_parallel_over(pattern, text.bytes().map(u32::from), text_len, max)
    } else {
        bit_parallel_over(pattern, text.chars().map(u32::from), text_len, max)
    }
}

/// [`bit_parallel`] over the code points of a text of `text_len` chars.
fn bit_parallel_over(
    pattern: &Pattern,
    text: impl Iterator<Item = u32>,
    text_len: usize,
    max: usize,
) -> Option<usize> {
    // Per block, the vertical +1 and -1 vectors of the current column (column 0: all +1).
    let mut one = [(u64::MAX, 0u64)];
    let mut many;
    let vertical: &mut [(u64, u64)] = if pattern.blocks.len() == 1 {
        &mut one
    } else {
        many = vec![(u64::MAX, 0u64); pattern.blocks.len()];
        &mut many
    };
    // The pattern's last char is bit `last` of the last block.
    let last = (pattern.len - 1) % 64;
    let mut score = pattern.len;
    for (i, ch) in text.enumerate() {
        // Row 0 of the table grows by one per char of `text`: the carry into block 0.
        let mut carry = Carry::Plus;
        // The last block's horizontal vectors, before the shift.
        let mut last_plus = 0;
        let mut last_minus = 0;
        for (block, (plus, minus)) in pattern.blocks.iter().zip(vertical.iter_mut()) {
            // A non-ASCII char matches nothing.
            let mut eq = block.get(ch as usize).copied().unwrap_or(0);
            let xv = eq | *minus;
            if carry == Carry::Minus {
                eq |= 1;
            }
            let xh = ((eq & *plus).wrapping_add(*plus) ^ *plus) | eq;
            let horizontal_plus = *minus | !(xh | *plus);
            let horizontal_minus = *plus & xh;
            let incoming = carry;
            carry = if horizontal_plus >> 63 != 0 {
                Carry::Plus
            } else if horizontal_minus >> 63 != 0 {
                Carry::Minus
            } else {
                Carry::Zero
            };
            (last_plus, last_minus) = (horizontal_plus, horizontal_minus);
            let horizontal_plus = (horizontal_plus << 1) | u64::from(incoming == Carry::Plus);
            let horizontal_minus = (horizontal_minus << 1) | u64::from(incoming == Carry::Minus);
            *plus = horizontal_minus | !(xv | horizontal_plus);
            *minus = horizontal_plus & xv;
        }
        // The score is the last row: the pattern's last char, in the last block.
        if (last_plus >> last) & 1 != 0 {
            score += 1;
        } else if (last_minus >> last) & 1 != 0 {
            score -= 1;
        }
        // Each char of `text` left can lower the distance by one at most.
        if score.saturating_sub(text_len - i - 1) > max {
            return None;
        }
    }
    (score <= max).then_some(score)
}

/// The horizontal difference carried from one block of the pattern to the next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Carry {
    Plus,
    Zero,
    Minus,
}

/// The textbook one-row table, for two names that both have non-ASCII chars; given up once a
/// whole row exceeds `max`.
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
        // Patterns of two to four blocks of 64 chars (one non-ASCII).
        for (len, ascii_only) in [(65, true), (128, true), (129, false), (200, true)] {
            let name: String = (0..len)
                .map(|_| alphabet[(next() % if ascii_only { 4 } else { 5 }) as usize])
                .collect();
            names.push(name);
        }
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
            let name = Name::new(a);
            for b in &names {
                let exact = reference(a, b);
                assert_eq!(edit_distance(a, b), exact, "{a:?} {b:?}");
                for max in [0, 1, exact.saturating_sub(1), exact, exact + 1, 70] {
                    let expected = (exact <= max).then_some(exact);
                    assert_eq!(
                        distance_within(&name, b, max),
                        expected,
                        "{a:?} {b:?} {max}"
                    );
                }
            }
        }
    }

    /// The index walks the spellings in another order and stops early: it must still give
    /// `closest`'s answer, ties to the earlier spelling included.
    #[test]
    fn the_spelling_index_finds_what_closest_finds() {
        let names = names();
        let lists: Vec<Vec<&str>> = vec![
            names.iter().map(String::as_str).collect(),
            names.iter().rev().map(String::as_str).collect(),
            names.iter().step_by(7).map(String::as_str).collect(),
            vec!["--bat", "--hat", "--cat", "--bat"],
            vec![],
        ];
        for list in &lists {
            let index = SpellingIndex::new(list.iter().copied());
            for written in names
                .iter()
                .map(String::as_str)
                .chain(["--cat", "-", "--bt"])
            {
                let dashed = format!("--{written}");
                for written in [written, dashed.as_str()] {
                    assert_eq!(
                        index.closest(written),
                        closest(written, list.iter().copied()),
                        "{written:?} in {list:?}"
                    );
                }
            }
        }
        let json = serde_json::to_string(&SpellingIndex::new(["--b", "--a"])).unwrap();
        assert_eq!(json, r#"["--b","--a"]"#);
        let read: SpellingIndex = serde_json::from_str(&json).unwrap();
        assert_eq!(read.closest("--x"), Some("--b"));
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
