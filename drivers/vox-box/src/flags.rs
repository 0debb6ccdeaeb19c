//! The `vox-box start` flag table and argparse-compatible checking of user parameters.
//!
//! vox-box parses its command line with Python's argparse (`vox_box/cmd/start.py`): an unknown
//! flag, a positional word or a missing value makes it exit with status 2 before serving, so
//! every user parameter is checked here first. argparse rules mirrored: `--flag value` and
//! `--flag=value` both work, and an unambiguous prefix of a long flag is accepted
//! (`allow_abbrev` is on by default).

use inferkit_core::argparse::{abbreviations, is_option};
use inferkit_core::suggest::closest;
use inferkit_core::{Error, Result};

/// The value a flag takes, as argparse converts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueType {
    /// Any string.
    Str,
    /// A Python `int`.
    Int,
    /// A switch without a value.
    Bool,
}

/// One option of `vox-box start`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagSpec {
    /// Long name, with dashes.
    pub name: &'static str,
    /// Other spellings (short forms).
    pub aliases: &'static [&'static str],
    /// Whether a value follows.
    pub takes_value: bool,
    /// Type of that value.
    pub value_type: ValueType,
    /// Help text of the flag (shown when suggesting it).
    pub help: &'static str,
}

/// Flags the launch sets itself, with the reason a user may not set them.
const PLATFORM_OWNED: &[(&str, &str)] = &[
    ("--model", "the model path comes from the deployment"),
    (
        "--huggingface-repo-id",
        "the model source comes from the deployment",
    ),
    (
        "--model-scope-model-id",
        "the model source comes from the deployment",
    ),
    ("--data-dir", "the data directory is the platform's"),
    ("--device", "the device comes from placement"),
    ("--host", "the platform binds the server"),
    ("--port", "the port is assigned by the platform"),
];

/// Checks `params` the way vox-box's argparse would, and refuses platform-owned flags.
/// Returns the long name of each flag given, abbreviations resolved.
pub(crate) fn parse_parameters(params: &[String]) -> Result<Vec<&'static str>> {
    let mut parsed = Vec::new();
    let mut rest = params.iter();
    while let Some(token) = rest.next() {
        if token.is_empty() {
            // An empty word has no spelling to name; it would still reach argv.
            return Err(Error::invalid_parameter(
                "backend_parameters",
                "an empty entry is a positional argument to vox-box, which takes none \
                 (argparse: unrecognized arguments)",
            ));
        }
        if !is_option(token) {
            return Err(Error::invalid_parameter(
                token.as_str(),
                "vox-box takes no positional arguments (argparse: unrecognized arguments)",
            ));
        }
        let (written, inline) = match token.split_once('=') {
            Some((name, value)) if token.starts_with("--") => (name, Some(value.to_string())),
            _ => (token.as_str(), None),
        };
        let flag = resolve(written)?;
        if let Some((_, why)) = PLATFORM_OWNED.iter().find(|(name, _)| *name == flag.name) {
            return Err(Error::invalid_parameter(
                written,
                format!("{} is set by the platform: {why}", flag.name),
            ));
        }
        if flag.takes_value {
            let value = match inline {
                Some(value) => value,
                None => rest
                    .next()
                    .filter(|next| !is_option(next))
                    .ok_or_else(|| Error::invalid_parameter(written, "expected one argument"))?
                    .clone(),
            };
            check_type(flag, written, &value)?;
        } else if inline.is_some() {
            return Err(Error::invalid_parameter(
                written,
                format!(
                    "{} takes no value (argparse: ignored explicit argument)",
                    flag.name
                ),
            ));
        }
        parsed.push(flag.name);
    }
    Ok(parsed)
}

/// Finds the flag `written` names: exactly, or as the unique prefix of a long flag.
fn resolve(written: &str) -> Result<&'static FlagSpec> {
    let table = crate::flags_table::FLAGS;
    if let Some(flag) = table
        .iter()
        .find(|f| f.name == written || f.aliases.contains(&written))
    {
        return Ok(flag);
    }
    let long_names = table.iter().map(|f| (f.name, f));
    let candidates = abbreviations(written, long_names, |a, b| std::ptr::eq(*a, *b));
    match candidates.as_slice() {
        [(_, one)] => Ok(one),
        [] => Err(Error::invalid_parameter(
            written,
            format!(
                "vox-box {} has no such flag; did you mean {}?",
                crate::flags_table::VERSION,
                nearest(written)
            ),
        )),
        many => Err(Error::invalid_parameter(
            written,
            format!(
                "ambiguous abbreviation, could match {}",
                many.iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn check_type(flag: &FlagSpec, written: &str, value: &str) -> Result<()> {
    // Python's int() accepts surrounding blanks and `_` between digits.
    let ok = match flag.value_type {
        ValueType::Int => value.trim().replace('_', "").parse::<i64>().is_ok(),
        ValueType::Str | ValueType::Bool => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_parameter(
            written,
            format!("invalid int value: `{value}`"),
        ))
    }
}

/// The flag of the table closest to `written` by edit distance, with its help text.
fn nearest(written: &str) -> String {
    let table = crate::flags_table::FLAGS;
    closest(written, table.iter().map(|f| f.name))
        .and_then(|name| table.iter().find(|f| f.name == name))
        .map(|f| format!("{} ({})", f.name, f.help))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn refused(words: &[&str]) -> (String, String) {
        match parse_parameters(&params(words)) {
            Err(Error::InvalidParameter { name, reason }) => (name, reason),
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    }

    #[test]
    fn generated_table_matches_the_reference_json() {
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../data/vox-box-0.0.21.json")).unwrap();
        assert_eq!(json["version"], crate::flags_table::VERSION);
        let flags = json["flags"].as_array().unwrap();
        assert_eq!(flags.len(), crate::flags_table::FLAGS.len());
        for (spec, flag) in crate::flags_table::FLAGS.iter().zip(flags) {
            assert_eq!(flag["name"], spec.name);
            assert_eq!(flag["takes_value"], spec.takes_value);
            let aliases: Vec<&str> = flag["aliases"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a.as_str())
                .collect();
            assert_eq!(aliases, spec.aliases);
            let expected = match flag["type"].as_str().unwrap() {
                "int" => ValueType::Int,
                "bool" => ValueType::Bool,
                _ => ValueType::Str,
            };
            assert_eq!(expected, spec.value_type, "{}", spec.name);
        }
    }

    #[test]
    fn debug_is_accepted_in_every_spelling() {
        for spelling in ["--debug", "-d", "--deb"] {
            let parsed = parse_parameters(&params(&[spelling])).unwrap();
            assert_eq!(parsed, ["--debug"], "{spelling}");
        }
    }

    #[test]
    fn unknown_flag_names_the_nearest_one() {
        let (name, reason) = refused(&["--debg"]);
        assert_eq!(name, "--debg");
        assert!(
            reason.ends_with("did you mean --debug (Enable debug mode.)?"),
            "{reason}"
        );
    }

    #[test]
    fn platform_owned_flags_are_refused_even_abbreviated() {
        for (written, owned) in [
            ("--port", "--port"),
            ("--host=127.0.0.1", "--host"),
            ("--dev", "--device"),
            ("--data", "--data-dir"),
            ("--model", "--model"),
            ("--hug", "--huggingface-repo-id"),
        ] {
            let (_, reason) = refused(&[written, "x"]);
            assert!(
                reason.starts_with(&format!("{owned} is set by the platform")),
                "{reason}"
            );
        }
    }

    #[test]
    fn ambiguous_prefix_lists_the_matches() {
        let (_, reason) = refused(&["--mod", "x"]);
        assert_eq!(
            reason,
            "ambiguous abbreviation, could match --model, --model-scope-model-id"
        );
    }

    #[test]
    fn switch_with_value_and_positional_words_are_refused() {
        let (_, reason) = refused(&["--debug=1"]);
        assert!(reason.contains("takes no value"), "{reason}");
        let (name, _) = refused(&["cuda:0"]);
        assert_eq!(name, "cuda:0");
        let (name, reason) = refused(&["--debug", ""]);
        assert_eq!(name, "backend_parameters");
        assert!(reason.contains("empty entry"), "{reason}");
    }

    #[test]
    fn int_values_follow_python_int() {
        // No user-settable flag of 0.0.21 takes a value (--port is the platform's), so the
        // type check is exercised on the table's --port entry directly.
        let port = crate::flags_table::FLAGS
            .iter()
            .find(|f| f.name == "--port")
            .unwrap();
        assert!(check_type(port, "--port", " 8_080 ").is_ok());
        let err = check_type(port, "--port", "80a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid parameter --port: invalid int value: `80a`"
        );
    }
}
