//! vLLM's command-line flag tables and argparse-compatible lookup.
//!
//! The tables are generated (by `tools/gen_flags.py` at the repository root, into
//! `flags/table.rs`) from dumps of vLLM's own argument parser at each supported version; this
//! module resolves a flag, with the core engine, the way vLLM's
//! `FlexibleArgumentParser` does: `_` equals `-` in long names, unambiguous prefixes are accepted
//! (`allow_abbrev`), `--x.key` addresses a key of a JSON flag, and short aliases of one letter
//! take an attached value (`-O3`).

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use inferkit_core::flags::suggest::SpellingIndex;
use inferkit_core::flags::{FlagSpec, FlagTable, Found, Resolution, Syntax, ValueError};
use inferkit_core::{Error, Result};

#[rustfmt::skip]
mod table;

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
    pub(crate) fn table(self) -> &'static FlagTable {
        match self {
            VllmVersion::V0_10_1_1 => &table::V0_10_1_1,
            VllmVersion::V0_33_0 => &table::V0_33_0,
        }
    }

    /// The flag with this canonical name.
    pub(crate) fn flag(self, name: &str) -> Option<&'static FlagSpec> {
        self.table().flag(name)
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

/// A vLLM release, as `backend_version` names it (`0.17.1`, `v0.10.1.1`): the memory rules
/// follow it even where the flag table is that of the nearest supported version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Release {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Release {
    pub(crate) const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Release {
            major,
            minor,
            patch,
        }
    }

    /// The first `MAJOR.MINOR[.PATCH…]` in `text` (`v0.17.1`, `0.10.1.1`, `>=0.11`); `None`
    /// when there is none.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let start = text.find(|c: char| c.is_ascii_digit())?;
        let mut parts = text[start..]
            .split(|c: char| !c.is_ascii_digit())
            .take_while(|p| !p.is_empty())
            .map(|p| p.parse::<u64>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Release::new(major, minor, patch))
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Normalises a long option the way vLLM does: `_` becomes `-` in the flag name (a JSON
/// sub-key after `.` is kept as written).
pub(crate) fn normalise_option(option: &str) -> String {
    Syntax::VLLM.normalise(option)
}

/// Looks `option` up by its exact spelling only.
pub(crate) fn resolve_exact(version: VllmVersion, option: &str) -> Option<Found> {
    version.table().lookup(option)
}

/// Looks `option` (already normalised, no `=value`) up: exact spelling first, then an
/// unambiguous prefix of a long option. `Ok(None)` means no flag matches at all.
pub(crate) fn resolve(version: VllmVersion, option: &str) -> Result<Option<Found>> {
    match version.table().resolve(option, Syntax::VLLM) {
        Resolution::Flag(found) => Ok(Some(found)),
        Resolution::Unknown => Ok(None),
        Resolution::Ambiguous(names) => Err(Error::invalid_parameter(
            option,
            format!(
                "ambiguous abbreviation in vLLM {version}: could be {}",
                names.join(", ")
            ),
        )),
    }
}

/// The valid long option closest to `option` by edit distance, for "did you mean" messages.
pub(crate) fn nearest(version: VllmVersion, option: &str) -> &'static str {
    long_options(version).closest(option).unwrap_or("--help")
}

/// The long options (`--x`) of `version`'s table in table order, indexed once.
fn long_options(version: VllmVersion) -> &'static SpellingIndex {
    fn index(version: VllmVersion) -> SpellingIndex {
        let spellings = version.table().spellings_in_order();
        SpellingIndex::new(
            spellings
                .map(|(option, ..)| option)
                .filter(|option| option.starts_with("--")),
        )
    }
    static OLD: LazyLock<SpellingIndex> = LazyLock::new(|| index(VllmVersion::V0_10_1_1));
    static NEW: LazyLock<SpellingIndex> = LazyLock::new(|| index(VllmVersion::V0_33_0));
    match version {
        VllmVersion::V0_10_1_1 => &OLD,
        VllmVersion::V0_33_0 => &NEW,
    }
}

/// Checks one value against the flag's type and choices.
pub(crate) fn check_value(
    version: VllmVersion,
    spec: &FlagSpec,
    written: &str,
    value: &str,
) -> Result<()> {
    let reason = match spec.check(0, value) {
        Ok(()) => return Ok(()),
        Err(ValueError::Choice(choices)) => format!(
            "`{value}` is not one of the choices of vLLM {version}: {}",
            choices.join(", ")
        ),
        Err(ValueError::Kind(kind)) => {
            format!("`{value}` is not {} (vLLM {version})", kind.describe())
        }
        Err(other) => format!("`{value}` {other} (vLLM {version})"),
    };
    Err(Error::invalid_parameter(written, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tables_match_their_json() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
        for version in VllmVersion::ALL {
            let diffs = inferkit_core::flags::source::compare_data_dir(
                version.table(),
                std::path::Path::new(data),
            );
            assert!(diffs.is_empty(), "{version}: {diffs:#?}");
        }
    }

    #[test]
    fn credentials_are_secret_and_the_platform_owns_its_flags() {
        for version in VllmVersion::ALL {
            assert!(version.flag("--api-key").is_some_and(|f| f.secret));
            assert!(
                version
                    .flag("--port")
                    .is_some_and(|f| f.platform_owned.is_some())
            );
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

    /// The index of long options gives what `closest` gives over them in table order, for a
    /// misspelling of every option (a char dropped, doubled, or a word appended).
    #[test]
    fn the_nearest_flag_is_the_closest_in_table_order() {
        use inferkit_core::flags::suggest::closest;
        for version in VllmVersion::ALL {
            let long: Vec<&str> = version
                .table()
                .spellings_in_order()
                .map(|(o, ..)| o)
                .filter(|o| o.starts_with("--"))
                .collect();
            for option in &long {
                let cut = &option[..option.len() - 1];
                for written in [
                    cut.to_string(),
                    format!("{option}{}", &option[2..3]),
                    format!("{option}-size"),
                    format!("-{}", &option[3..]),
                ] {
                    assert_eq!(
                        nearest(version, &written),
                        closest(&written, long.iter().copied()).unwrap(),
                        "{version} {written}"
                    );
                }
            }
        }
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
    fn versions_parse_with_or_without_v() {
        assert_eq!(VllmVersion::from_spec(None).unwrap(), VllmVersion::V0_33_0);
        assert_eq!(
            VllmVersion::from_spec(Some("v0.10.1.1")).unwrap(),
            VllmVersion::V0_10_1_1
        );
        assert!(VllmVersion::from_spec(Some("0.4.2")).is_err());
    }
}
