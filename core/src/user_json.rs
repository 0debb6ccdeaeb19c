//! User-written JSON (a cluster, a model spec, plan options): a key the type does not know is
//! refused, naming the nearest key it does know, so that a misspelt option (`cpu_offload` for
//! `cpu_offloading`) is never dropped without a word.
//!
//! The types refuse unknown keys themselves (`#[serde(deny_unknown_fields)]`); [`from_str`]
//! adds the suggestion and the position in the file.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::flags::suggest::closest;
use crate::{Error, Result};
use inferkit_formats::files::{json_error, read_json_file};

/// Reads the JSON file at `path` (at most `max` bytes) as a `T`, as it parses it: the text is
/// not held whole ([`read_json_file`]).
pub fn from_file<T: DeserializeOwned>(path: &Path, max: u64) -> Result<T> {
    read_json_file(
        path,
        max,
        |input| T::deserialize(input),
        |text, e| parse_error(text, path, e),
    )
}

/// Parses `text` as a `T`; `origin` names the source in errors.
pub fn from_str<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    serde_json::from_str(text).map_err(|e| parse_error(text, origin, &e))
}

/// serde_json's error on `text` (read from `origin`) as an [`Error::Parse`] at its byte
/// offset, naming the nearest known key of an unknown one.
pub fn parse_error(text: &str, origin: &Path, e: &serde_json::Error) -> Error {
    match json_error(text, origin, e) {
        Error::Parse { file, offset, what } => Error::Parse {
            file,
            offset,
            what: with_nearest_key(what),
        },
        other => other,
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b` at line 1 column 9" (or "expected
/// `a`"), with the nearest of the known keys named first.
fn with_nearest_key(what: String) -> String {
    let Some((unknown, expected)) = what
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
    else {
        return what;
    };
    let (expected, position) = match expected.rfind(" at line ") {
        Some(at) => expected.split_at(at),
        None => (expected, ""),
    };
    let known = expected.split('`').skip(1).step_by(2);
    match closest(unknown, known) {
        Some(nearest) => format!("unknown key `{unknown}` (did you mean `{nearest}`?){position}"),
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_known_key_is_named() {
        let what = "unknown field `cpu_ofload`, expected one of `name`, `cpu_offloading`, \
                    `categories` at line 1 column 25"
            .to_string();
        assert_eq!(
            with_nearest_key(what),
            "unknown key `cpu_ofload` (did you mean `cpu_offloading`?) at line 1 column 25"
        );
    }

    #[test]
    fn other_errors_keep_their_text() {
        let what = "missing field `name` at line 1 column 2".to_string();
        assert_eq!(with_nearest_key(what.clone()), what);
    }
}
