//! The `vox-box start` flag table and argparse-compatible checking of user parameters.
//!
//! vox-box parses its command line with Python's argparse (`vox_box/cmd/start.py`): an unknown
//! flag, a positional word or a missing value makes it exit with status 2 before serving, so
//! every user parameter is checked here first. argparse rules mirrored: `--flag value` and
//! `--flag=value` both work, and an unambiguous prefix of a long flag is accepted
//! (`allow_abbrev` is on by default).

use inferkit_core::flags::suggest::closest;
use inferkit_core::flags::{FlagSpec, Resolution, Syntax, Tokens, ValueError, is_option};
use inferkit_core::{Error, Result};

#[rustfmt::skip]
mod table;

pub(crate) use table::TABLE;

/// Checks `params` the way vox-box's argparse would, and refuses platform-owned flags.
/// `params` is a parameter list as every driver reads one (core's [`Tokens::entries`]): each
/// entry trimmed, blank entries skipped, and `--flag=value` or `--flag value` in one entry read
/// as the flag with its value. Returns the argv to launch: each flag as written, followed by
/// its value in a token of its own.
pub(crate) fn parse_parameters(params: &[String]) -> Result<Vec<String>> {
    let mut argv = Vec::new();
    let mut rest = Tokens::entries(params);
    while let Some(token) = rest.next() {
        if !is_option(token) {
            return Err(Error::invalid_parameter(
                token,
                "vox-box takes no positional arguments (argparse: unrecognized arguments)",
            ));
        }
        // argparse reads `--flag=value` (and a form's `--flag value`) as the flag with its
        // value whatever the flag: the name is looked up after the split.
        let (written, inline) = rest.split_inline(token, |_| false);
        let flag = resolve(written)?;
        if let Some(why) = flag.platform_owned {
            return Err(Error::invalid_parameter(
                written,
                format!("{} is set by the platform: {why}", flag.name),
            ));
        }
        argv.push(written.to_string());
        if !flag.is_switch() {
            let value = match inline {
                Some(value) => value,
                None => rest
                    .next()
                    .filter(|next| !is_option(next))
                    .ok_or_else(|| Error::invalid_parameter(written, "expected one argument"))?,
            };
            check_value(flag, written, value)?;
            argv.push(value.to_string());
        } else if inline.is_some() {
            return Err(Error::invalid_parameter(
                written,
                format!(
                    "{} takes no value (argparse: ignored explicit argument)",
                    flag.name
                ),
            ));
        }
    }
    Ok(argv)
}

/// Finds the flag `written` names: exactly, or as the unique prefix of a long flag.
fn resolve(written: &str) -> Result<&'static FlagSpec> {
    match TABLE.resolve(written, Syntax::ARGPARSE) {
        Resolution::Flag(found) => Ok(found.spec),
        Resolution::Unknown => Err(Error::invalid_parameter(
            written,
            format!(
                "vox-box {} has no such flag; did you mean {}?",
                TABLE.version,
                nearest(written)
            ),
        )),
        Resolution::Ambiguous(matches) => Err(Error::invalid_parameter(
            written,
            format!("ambiguous abbreviation, could match {}", matches.join(", ")),
        )),
    }
}

/// Checks a value as argparse converts it (Python's `int()` for integers), in argparse's words.
fn check_value(flag: &FlagSpec, written: &str, value: &str) -> Result<()> {
    match flag.check(0, value) {
        Err(ValueError::Kind(_)) => Err(Error::invalid_parameter(
            written,
            format!("invalid int value: `{value}`"),
        )),
        Err(other) => Err(Error::invalid_parameter(
            written,
            format!("`{value}` {other}"),
        )),
        Ok(()) => Ok(()),
    }
}

/// The flag of the table closest to `written` by edit distance, with its help text.
fn nearest(written: &str) -> String {
    closest(written, TABLE.flags.iter().map(|f| f.name))
        .and_then(|name| TABLE.flag(name))
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
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
        let diffs = inferkit_core::flags::source::compare_data_dir(&TABLE, data.as_ref());
        assert!(diffs.is_empty(), "{diffs:#?}");
    }

    #[test]
    fn debug_is_accepted_in_every_spelling() {
        for spelling in ["--debug", "-d", "--deb"] {
            let parsed = parse_parameters(&params(&[spelling])).unwrap();
            assert_eq!(parsed, [spelling], "{spelling}");
        }
    }

    /// A parameter list is read as every driver reads one: entries trimmed, blank ones
    /// skipped, and a flag with its value in one entry split, so a platform-owned flag written
    /// that way is refused by its name.
    #[test]
    fn entries_are_trimmed_and_a_flag_with_its_value_is_split() {
        let parsed = parse_parameters(&params(&[" --debug\t", "", "  "])).unwrap();
        assert_eq!(parsed, ["--debug"]);
        for entry in ["--data-dir /x", "--data-dir\u{3000}/x", " --data-dir=/x "] {
            let (name, reason) = refused(&[entry]);
            assert_eq!(name, "--data-dir", "{entry:?}");
            assert!(
                reason.starts_with("--data-dir is set by the platform"),
                "{reason}"
            );
        }
        let (name, reason) = refused(&["--debug 1"]);
        assert_eq!(name, "--debug");
        assert!(reason.contains("takes no value"), "{reason}");
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
    }

    #[test]
    fn int_values_follow_python_int() {
        // No user-settable flag of 0.0.21 takes a value (--port is the platform's), so the
        // type check is exercised on the table's --port entry directly.
        let port = TABLE.flag("--port").unwrap();
        assert!(check_value(port, "--port", " 8_080 ").is_ok());
        let err = check_value(port, "--port", "80a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid parameter --port: invalid int value: `80a`"
        );
    }
}
