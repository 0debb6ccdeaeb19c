//! How each backend reads a command line: the [`Syntax`] of its parser, and the argparse rules
//! (option or value, prefix abbreviations) that the argparse-based backends share.

use serde::Serialize;

/// What a backend does with a flag it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// Exits before serving (argparse, llama-server).
    Fatal,
    /// Warns and goes on (llama-box).
    Warned,
    /// Ignores it without a word (GPUStack's MindIE `parse_known_args`).
    Ignored,
}

/// The rules of one backend's argument parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Syntax {
    /// `--flag=value` is read as the flag with its value (argparse); otherwise the whole token
    /// is compared as a flag name (llama-box's exact `strcmp`).
    pub equals: bool,
    /// `_` and `-` are the same in long flag names (vLLM's `FlexibleArgumentParser`).
    pub underscores: bool,
    /// An unambiguous prefix of a long flag stands for it (argparse's `allow_abbrev`).
    pub abbreviations: bool,
    /// What an unknown flag does.
    pub unknown: Unknown,
}

impl Syntax {
    /// Plain Python argparse: `=`, abbreviations, unknown flags fatal (vox-box).
    pub const ARGPARSE: Syntax = Syntax {
        equals: true,
        underscores: false,
        abbreviations: true,
        unknown: Unknown::Fatal,
    };

    /// vLLM's `FlexibleArgumentParser`: argparse, and `_` equals `-` in flag names.
    pub const VLLM: Syntax = Syntax {
        underscores: true,
        ..Syntax::ARGPARSE
    };

    /// GPUStack's MindIE parameters: `parse_known_args(allow_abbrev=False)`.
    pub const KNOWN_ARGS: Syntax = Syntax {
        equals: true,
        underscores: false,
        abbreviations: false,
        unknown: Unknown::Ignored,
    };

    /// llama-box: `--flag value` only, compared exactly; unknown flags are warned about.
    pub const EXACT: Syntax = Syntax {
        equals: false,
        underscores: false,
        abbreviations: false,
        unknown: Unknown::Warned,
    };

    /// Rewrites a long option the way the backend compares it: with
    /// [`Syntax::underscores`], `_` becomes `-` in the flag name (a JSON sub-key after `.` is
    /// kept as written).
    ///
    /// ```
    /// use inferkit_core::flags::Syntax;
    ///
    /// assert_eq!(Syntax::VLLM.normalise("--max_model_len"), "--max-model-len");
    /// assert_eq!(Syntax::VLLM.normalise("--hf_config.rope_theta"), "--hf-config.rope_theta");
    /// assert_eq!(Syntax::ARGPARSE.normalise("--max_model_len"), "--max_model_len");
    /// ```
    pub fn normalise(&self, option: &str) -> String {
        let Some(name) = option.strip_prefix("--").filter(|_| self.underscores) else {
            return option.to_string();
        };
        match name.split_once('.') {
            Some((flag, key)) => format!("--{}.{key}", flag.replace('_', "-")),
            None => format!("--{}", name.replace('_', "-")),
        }
    }
}

/// Whether argparse reads `token` as an option rather than as a value: it starts with `-`, is
/// more than a lone `-`, and is not a number (`-1`, `-0.5` are values; the servers concerned
/// define no option that looks like a negative number).
///
/// ```
/// use inferkit_core::flags::is_option;
///
/// assert!(is_option("--port") && is_option("-tp"));
/// assert!(!is_option("-1") && !is_option("-") && !is_option("cuda:0"));
/// ```
pub fn is_option(token: &str) -> bool {
    token.starts_with('-') && token.len() > 1 && token.parse::<f64>().is_err()
}

/// A command line or a user's parameter list, walked token by token: the one loop every
/// driver's parser reads its input with.
///
/// An argv ([`Tokens::argv`]) is read exactly as given. A parameter list
/// ([`Tokens::entries`], what a user types into a form, one entry per line) has each entry
/// trimmed, blank entries skipped (a blank line says nothing), and `--flag=value` or
/// `--flag value` in one entry read as the flag with its value ([`Tokens::split_inline`]).
///
/// ```
/// use inferkit_core::flags::Tokens;
///
/// let mut tokens = Tokens::entries(&[" --ctx-size=8192 ", "", "-ngl", "99"]);
/// let first = tokens.next().unwrap();
/// assert_eq!(tokens.split_inline(first, |f| f == "--ctx-size"), ("--ctx-size", Some("8192")));
/// assert_eq!(tokens.next(), Some("-ngl"));
/// assert_eq!(tokens.peek(), Some("99"));
/// assert_eq!(tokens.next(), Some("99"));
/// assert_eq!(tokens.next(), None);
/// ```
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    tokens: Vec<&'a str>,
    next: usize,
    entries: bool,
}

impl<'a> Tokens<'a> {
    /// An argv, read exactly as a program reads it.
    pub fn argv<S: AsRef<str>>(tokens: &'a [S]) -> Self {
        Tokens::new(tokens, false)
    }

    /// A user's parameter list: entries trimmed, blank ones skipped, inline values split.
    pub fn entries<S: AsRef<str>>(tokens: &'a [S]) -> Self {
        Tokens::new(tokens, true)
    }

    fn new<S: AsRef<str>>(tokens: &'a [S], entries: bool) -> Self {
        Tokens {
            tokens: tokens.iter().map(AsRef::as_ref).collect(),
            next: 0,
            entries,
        }
    }

    /// The token [`Iterator::next`] would return, left in place.
    pub fn peek(&self) -> Option<&'a str> {
        self.clone().next()
    }

    /// A flag token with its inline value split off. In an argv, or when `known` accepts the
    /// whole token as a flag, the token is the flag. Otherwise the token is cut at its first
    /// `=` or blank (a multi-byte blank such as U+3000 included): the part before is the flag
    /// (for the caller to look up, or refuse by that name), the rest, trimmed, its value.
    pub fn split_inline(
        &self,
        token: &'a str,
        known: impl Fn(&str) -> bool,
    ) -> (&'a str, Option<&'a str>) {
        if !self.entries || known(token) {
            return (token, None);
        }
        let cut = token
            .char_indices()
            .find(|&(_, c)| c == '=' || c.is_whitespace());
        match cut {
            Some((at, separator)) => (
                &token[..at],
                Some(token[at + separator.len_utf8()..].trim()),
            ),
            None => (token, None),
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    /// The next token (in a parameter list: trimmed, blank entries skipped).
    fn next(&mut self) -> Option<&'a str> {
        loop {
            let token = *self.tokens.get(self.next)?;
            self.next += 1;
            if !self.entries {
                return Some(token);
            }
            let token = token.trim();
            if !token.is_empty() {
                return Some(token);
            }
        }
    }
}

/// argparse's `allow_abbrev`: the long options among `options` that `written` is a prefix of,
/// each with what it stands for. `written` must be a long option (`--` and at least one more
/// character), otherwise nothing matches. Neighbouring matches for which `same_target` holds
/// (spellings of one flag) count once, so exactly one entry means the abbreviation is
/// unambiguous and several mean argparse's "ambiguous option" error.
///
/// ```
/// use inferkit_core::flags::syntax::abbreviations;
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
    fn an_argv_is_read_as_given_and_entries_are_trimmed_and_split() {
        let raw = ["--a=1", " ", "--b\u{3000}2"];
        let known = |f: &str| f == "--a" || f == "--b";
        let mut argv = Tokens::argv(&raw);
        let first = argv.next().unwrap();
        assert_eq!(argv.split_inline(first, known), ("--a=1", None));
        assert_eq!(argv.next(), Some(" "));
        let mut entries = Tokens::entries(&raw);
        let first = entries.next().unwrap();
        assert_eq!(entries.split_inline(first, known), ("--a", Some("1")));
        let second = entries.next().unwrap();
        assert_eq!(entries.split_inline(second, known), ("--b", Some("2")));
        assert_eq!(entries.next(), None);
        let unknown = Tokens::entries(&raw);
        assert_eq!(unknown.split_inline("--c=1", known), ("--c", Some("1")));
        assert_eq!(
            unknown.split_inline("--a=b", |f| f == "--a=b"),
            ("--a=b", None)
        );
    }

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
