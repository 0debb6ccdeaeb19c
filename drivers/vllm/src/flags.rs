//! vLLM's command-line flag tables and argparse-compatible lookup.
//!
//! The tables are generated (by `tools/gen_flags.py`) from dumps of vLLM's own argument parser
//! at each supported version; this module resolves a flag the way vLLM's
//! `FlexibleArgumentParser` does: `_` equals `-` in long names, unambiguous prefixes are accepted
//! (`allow_abbrev`), `--x.key` addresses a key of a JSON flag, and short aliases of one letter
//! take an attached value (`-O3`).

use serde::{Deserialize, Serialize};

use inferkit_core::flags::suggest::closest;
use inferkit_core::flags::syntax::abbreviations;
use inferkit_core::{Error, Result};

use crate::flags_table_0_10_1_1::FLAGS_0_10_1_1;
use crate::flags_table_0_33_0::FLAGS_0_33_0;

/// The type of a flag's value, as vLLM's parser converts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// A switch; its presence (or negative form) is the value.
    Bool,
    /// A whole number.
    Int,
    /// A decimal number.
    Float,
    /// A whole number with an optional `k`/`m`/`g` (×1000) or `K`/`M`/`G` (×1024) suffix.
    HumanInt,
    /// Like `HumanInt`, or the word `auto`.
    HumanIntOrAuto,
    /// A JSON document (a plain string is accepted where vLLM takes JSON-or-string).
    Json,
    /// Free text.
    Str,
}

/// How many values a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    /// None.
    Switch,
    /// Exactly one.
    One,
    /// Zero or one.
    Optional,
    /// One or more.
    Many,
}

/// One flag of a vLLM version.
#[derive(Debug)]
pub(crate) struct FlagSpec {
    /// Canonical long name (`--tensor-parallel-size`).
    pub name: &'static str,
    /// Other spellings (`-tp`).
    pub aliases: &'static [&'static str],
    /// Negative forms of a switch (`--no-enforce-eager`, `--disable-log-requests`).
    pub negatives: &'static [&'static str],
    /// Value type.
    pub kind: ValueKind,
    /// Number of values.
    pub arity: Arity,
    /// Accepted values where vLLM enforces a choice list (empty: any).
    pub choices: &'static [&'static str],
    /// May be given several times (argparse `append`).
    pub repeatable: bool,
    /// vLLM warns that the flag is deprecated.
    pub deprecated: bool,
    /// Default as vLLM prints it, for scalar flags.
    pub default: Option<&'static str>,
}

/// The vLLM versions whose flag tables the driver carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VllmVersion {
    /// vLLM 0.10.1.1, the version GPUStack 0.7.1 pins.
    #[serde(rename = "0.10.1.1")]
    V0_10_1_1,
    /// vLLM 0.33.0, the default target.
    #[serde(rename = "0.33.0")]
    V0_33_0,
}

impl VllmVersion {
    /// Every supported version, oldest first.
    pub const ALL: [VllmVersion; 2] = [VllmVersion::V0_10_1_1, VllmVersion::V0_33_0];

    /// The version targeted when the user names none.
    pub const DEFAULT: VllmVersion = VllmVersion::V0_33_0;

    /// The version number as vLLM prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            VllmVersion::V0_10_1_1 => "0.10.1.1",
            VllmVersion::V0_33_0 => "0.33.0",
        }
    }

    /// Parses a `backend_version` (`0.33.0`, `v0.10.1.1`); `None` gives [`VllmVersion::DEFAULT`].
    pub fn from_spec(version: Option<&str>) -> Result<Self> {
        let Some(text) = version.map(str::trim) else {
            return Ok(VllmVersion::DEFAULT);
        };
        let bare = text.strip_prefix('v').unwrap_or(text);
        VllmVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == bare)
            .ok_or_else(|| {
                let known: Vec<&str> = VllmVersion::ALL.iter().map(|v| v.as_str()).collect();
                Error::invalid_parameter(
                    "backend_version",
                    format!(
                        "no vLLM flag table for version `{text}`; known versions: {}",
                        known.join(", ")
                    ),
                )
            })
    }

    /// This version's flag table, sorted by name.
    pub(crate) fn table(self) -> &'static [FlagSpec] {
        match self {
            VllmVersion::V0_10_1_1 => FLAGS_0_10_1_1,
            VllmVersion::V0_33_0 => FLAGS_0_33_0,
        }
    }

    /// The flag with this canonical name.
    pub(crate) fn flag(self, name: &str) -> Option<&'static FlagSpec> {
        let table = self.table();
        table
            .binary_search_by(|f| f.name.cmp(name))
            .ok()
            .map(|i| &table[i])
    }

    /// The default of a scalar flag, as vLLM prints it.
    pub(crate) fn default_of(self, name: &str) -> Option<&'static str> {
        self.flag(name).and_then(|f| f.default)
    }
}

impl std::fmt::Display for VllmVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A flag as resolved from what the user wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved {
    /// The flag.
    pub spec: &'static FlagSpec,
    /// The option string that matched (canonical, alias or negative form).
    pub option: &'static str,
    /// Written as a negative form.
    pub negated: bool,
}

/// Normalises a long option the way vLLM does: `_` becomes `-` in the flag name (a JSON
/// sub-key after `.` is kept as written).
pub(crate) fn normalise_option(option: &str) -> String {
    let Some(name) = option.strip_prefix("--") else {
        return option.to_string();
    };
    match name.split_once('.') {
        Some((flag, key)) => format!("--{}.{key}", flag.replace('_', "-")),
        None => format!("--{}", name.replace('_', "-")),
    }
}

/// Every option string of the table with its flag and polarity.
fn option_strings(
    table: &'static [FlagSpec],
) -> impl Iterator<Item = (&'static str, &'static FlagSpec, bool)> {
    table.iter().flat_map(|spec| {
        std::iter::once((spec.name, spec, false))
            .chain(spec.aliases.iter().map(move |a| (*a, spec, false)))
            .chain(spec.negatives.iter().map(move |n| (*n, spec, true)))
    })
}

/// Looks `option` up by its exact spelling only.
pub(crate) fn resolve_exact(version: VllmVersion, option: &str) -> Option<Resolved> {
    option_strings(version.table())
        .find(|(o, ..)| *o == option)
        .map(|(option, spec, negated)| Resolved {
            spec,
            option,
            negated,
        })
}

/// Looks `option` (already normalised, no `=value`) up: exact spelling first, then an
/// unambiguous prefix of a long option. `Ok(None)` means no flag matches at all.
pub(crate) fn resolve(version: VllmVersion, option: &str) -> Result<Option<Resolved>> {
    if let Some(exact) = resolve_exact(version, option) {
        return Ok(Some(exact));
    }
    let spellings = option_strings(version.table()).map(|(o, spec, negated)| (o, (spec, negated)));
    let matches = abbreviations(option, spellings, |(a, a_negated), (b, b_negated)| {
        std::ptr::eq(*a, *b) && a_negated == b_negated
    });
    match matches.as_slice() {
        [] => Ok(None),
        [(spelling, (spec, negated))] => Ok(Some(Resolved {
            spec,
            option: spelling,
            negated: *negated,
        })),
        _ => {
            let names: Vec<&str> = matches.iter().map(|(o, _)| *o).collect();
            Err(Error::invalid_parameter(
                option,
                format!(
                    "ambiguous abbreviation in vLLM {version}: could be {}",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// The valid long option closest to `option` by edit distance, for "did you mean" messages.
pub(crate) fn nearest(version: VllmVersion, option: &str) -> &'static str {
    let long_options = option_strings(version.table())
        .map(|(o, ..)| o)
        .filter(|o| o.starts_with("--"));
    closest(option, long_options).unwrap_or("--help")
}

/// Checks one value against the flag's type and choices.
pub(crate) fn check_value(
    version: VllmVersion,
    spec: &FlagSpec,
    written: &str,
    value: &str,
) -> Result<()> {
    let type_ok = match spec.kind {
        ValueKind::Bool | ValueKind::Str => true,
        ValueKind::Int => value.parse::<i64>().is_ok(),
        ValueKind::Float => value.parse::<f64>().is_ok_and(f64::is_finite),
        ValueKind::HumanInt => parse_human_int(value).is_some(),
        ValueKind::HumanIntOrAuto => value == "auto" || parse_human_int(value).is_some(),
        ValueKind::Json => {
            !looks_like_json(value) || serde_json::from_str::<serde_json::Value>(value).is_ok()
        }
    };
    if !type_ok {
        return Err(Error::invalid_parameter(
            written,
            format!("`{value}` is not {} (vLLM {version})", kind_name(spec.kind)),
        ));
    }
    if !spec.choices.is_empty() && !spec.choices.contains(&value) {
        return Err(Error::invalid_parameter(
            written,
            format!(
                "`{value}` is not one of the choices of vLLM {version}: {}",
                spec.choices.join(", ")
            ),
        ));
    }
    Ok(())
}

fn looks_like_json(value: &str) -> bool {
    value.starts_with('{') || value.starts_with('[')
}

fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Bool => "a switch",
        ValueKind::Int => "an integer",
        ValueKind::Float => "a number",
        ValueKind::HumanInt => "an integer (suffixes k, m, g, K, M, G allowed)",
        ValueKind::HumanIntOrAuto => "an integer or `auto`",
        ValueKind::Json => "valid JSON",
        ValueKind::Str => "text",
    }
}

/// vLLM's `human_readable_int`: `25600`, `25.6k` (×1000, fractions allowed), `32K` (×1024,
/// whole numbers only). Returns `None` for anything else; `-1` is accepted as vLLM's "auto".
pub(crate) fn parse_human_int(value: &str) -> Option<i64> {
    if let Ok(n) = value.parse::<i64>() {
        return Some(n);
    }
    let (number, suffix) = value.split_at(value.len().checked_sub(1)?);
    let decimal = match suffix {
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        _ => 0.0,
    };
    if decimal > 0.0 {
        let n = number
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)?;
        let scaled = n * decimal;
        return (scaled <= i64::MAX as f64).then_some(scaled as i64);
    }
    let binary: i64 = match suffix {
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    number.parse::<i64>().ok()?.checked_mul(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_so_binary_search_works() {
        for version in VllmVersion::ALL {
            let table = version.table();
            assert!(table.windows(2).all(|w| w[0].name < w[1].name), "{version}");
        }
    }

    #[test]
    fn defaults_come_from_the_dumped_parsers() {
        assert_eq!(
            VllmVersion::V0_10_1_1.default_of("--gpu-memory-utilization"),
            Some("0.9")
        );
        assert_eq!(
            VllmVersion::V0_33_0.default_of("--gpu-memory-utilization"),
            Some("0.92")
        );
    }

    #[test]
    fn resolves_aliases_negatives_and_prefixes() {
        let v = VllmVersion::V0_33_0;
        assert_eq!(
            resolve(v, "-tp").unwrap().unwrap().spec.name,
            "--tensor-parallel-size"
        );
        let r = resolve(v, "--disable-log-requests").unwrap().unwrap();
        assert_eq!((r.spec.name, r.negated), ("--enable-log-requests", true));
        let r = resolve(v, "--gpu-memory-util").unwrap().unwrap();
        assert_eq!(r.spec.name, "--gpu-memory-utilization");
        assert!(resolve(v, "--max").is_err(), "--max is ambiguous");
        assert!(resolve(v, "--no-such-flag").unwrap().is_none());
    }

    #[test]
    fn nearest_flag_is_suggested() {
        assert_eq!(
            nearest(VllmVersion::V0_33_0, "--max-model-length"),
            "--max-model-len"
        );
        assert_eq!(
            nearest(VllmVersion::V0_33_0, "--tensor-paralel-size"),
            "--tensor-parallel-size"
        );
    }

    #[test]
    fn human_readable_ints_follow_vllm() {
        assert_eq!(parse_human_int("25.6k"), Some(25_600));
        assert_eq!(parse_human_int("32K"), Some(32_768));
        assert_eq!(parse_human_int("1M"), Some(1 << 20));
        assert_eq!(parse_human_int("1.5K"), None);
        assert_eq!(parse_human_int("lots"), None);
    }

    #[test]
    fn versions_parse_with_or_without_v() {
        assert_eq!(VllmVersion::from_spec(None).unwrap(), VllmVersion::V0_33_0);
        assert_eq!(
            VllmVersion::from_spec(Some("v0.10.1.1")).unwrap(),
            VllmVersion::V0_10_1_1
        );
        assert!(VllmVersion::from_spec(Some("0.4.2")).is_err());
    }
}
