//! Rules of Python's `argparse` that drivers of argparse-parsed servers (vLLM, vox-box) apply to
//! user parameters, so that what the server would reject at start is refused before launch.
//! The flag tables and everything version-specific stay in the drivers.

/// Whether argparse reads `token` as an option rather than as a value: it starts with `-`, is
/// more than a lone `-`, and is not a number (`-1`, `-0.5` are values; the servers concerned
/// define no option that looks like a negative number).
///
/// ```
/// use inferkit_core::argparse::is_option;
///
/// assert!(is_option("--port") && is_option("-tp"));
/// assert!(!is_option("-1") && !is_option("-") && !is_option("cuda:0"));
/// ```
pub fn is_option(token: &str) -> bool {
    token.starts_with('-') && token.len() > 1 && token.parse::<f64>().is_err()
}

/// argparse's `allow_abbrev`: the long options among `options` that `written` is a prefix of,
/// each with what it stands for. `written` must be a long option (`--` and at least one more
/// character), otherwise nothing matches. Neighbouring matches for which `same_target` holds
/// (spellings of one flag) count once, so exactly one entry means the abbreviation is
/// unambiguous and several mean argparse's "ambiguous option" error.
///
/// ```
/// use inferkit_core::argparse::abbreviations;
///
/// let options = [("--model", 0), ("--model-id", 1), ("--port", 2)];
/// let same = |a: &i32, b: &i32| a == b;
/// assert_eq!(abbreviations("--po", options, same), [("--port", 2)]);
/// assert_eq!(abbreviations("--mod", options, same).len(), 2);
/// assert!(abbreviations("-p", options, same).is_empty());
/// ```
pub fn abbreviations<T>(
    written: &str,
    options: impl IntoIterator<Item = (&'static str, T)>,
    same_target: impl Fn(&T, &T) -> bool,
) -> Vec<(&'static str, T)> {
    if !written.starts_with("--") || written.len() < 3 {
        return Vec::new();
    }
    let mut matches: Vec<(&'static str, T)> = options
        .into_iter()
        .filter(|(option, _)| option.starts_with(written))
        .collect();
    matches.dedup_by(|a, b| same_target(&a.1, &b.1));
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_numbers_are_values_and_dashed_words_are_options() {
        for value in ["-1", "-0.5", "3", "-", "x", ""] {
            assert!(!is_option(value), "{value}");
        }
        for option in ["-d", "--debug", "-O3", "--x.y"] {
            assert!(is_option(option), "{option}");
        }
    }

    #[test]
    fn spellings_of_one_target_count_once() {
        // Flag `x` spelled two ways (a long alias), next to flag `z`.
        let options = [
            ("--enable-x", 'x'),
            ("--enable-x-alias", 'x'),
            ("--enable-z", 'z'),
        ];
        let same = |a: &char, b: &char| a == b;
        assert_eq!(
            abbreviations("--enable-x", options, same),
            [("--enable-x", 'x')]
        );
        let both = abbreviations("--enable", options, same);
        assert_eq!(both, [("--enable-x", 'x'), ("--enable-z", 'z')]);
        assert!(abbreviations("--", options, same).is_empty());
    }
}
