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
