//! The flag engine every driver uses: one model of a backend's command-line flags, the rules by
//! which each backend reads them, and the checks of their values.
//!
//! A driver's flag table is generated (by `tools/gen_flags.py` at the repository root) from the
//! JSON its backend's own argument parser was dumped to, into `drivers/<driver>/src/flags/
//! table.rs`; each driver tests that table against that JSON with
//! [`source::compare_data_dir`]. The
//! model describes what differs between backends as data:
//!
//! * [`FlagSpec`]: spellings (aliases, negative forms), [`Arity`] and [`ValueKind`] of the values,
//!   choices, [`Range`], default, environment variable, and marks: repeatable, deprecated,
//!   exits instead of serving, owned by the platform, secret;
//! * [`Syntax`]: how a backend reads a command line (`--flag=value`, `_` for `-`, prefix
//!   abbreviations, what an unknown flag does);
//! * [`Translation`]: what becomes of a flag another version of the backend had.
//!
//! [`FlagTable::resolve`] finds the flag a written option means, [`FlagSpec::check`] checks a
//! value, and [`suggest`] names the nearest spelling when nothing matches.

use serde::Serialize;

pub mod source;
pub mod suggest;
pub mod syntax;
mod translate;
mod value;

pub use syntax::{Syntax, Tokens, Unknown, is_option};
pub use translate::{Removed, Replacements, Translation};
pub use value::{
    ValueError, Violation, parse_float, parse_float_list, parse_human_int, parse_python_int,
    parse_tensor_split,
};

/// The type of one flag value, as the backend converts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// A signed integer (C++ `std::stoi`, Python `int` on a plain literal).
    Int,
    /// A Python `int()` literal: surrounding blanks and `_` between digits are accepted.
    PyInt,
    /// A non-negative integer (C++ `std::stoul`).
    UInt,
    /// A finite floating-point number.
    Float,
    /// Any text (paths, patterns, names).
    Text,
    /// Non-negative numbers separated by runs of `,` or `/` (llama.cpp's `--tensor-split`).
    FloatList,
    /// vLLM's `human_readable_int`: `25600`, `25.6k` (×1000), `32K` (×1024).
    HumanInt,
    /// [`ValueKind::HumanInt`], or the word `auto`.
    HumanIntOrAuto,
    /// A JSON document; a value that does not start like one (`{`, `[`) is taken as text.
    Json,
    /// An integer or one of these words (llama-server's `-ngl auto|all|N`).
    IntOr(&'static [&'static str]),
}

/// How many values follow a flag, and of which kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arity {
    /// None: the flag is a switch.
    Switch,
    /// Exactly one.
    One(ValueKind),
    /// Exactly two (`--lora-scaled FILE SCALE`).
    Two(ValueKind, ValueKind),
    /// Zero or one (argparse `nargs='?'`).
    Optional(ValueKind),
    /// One or more (argparse `nargs='+'`).
    Many(ValueKind),
}

impl Arity {
    /// The fewest values the flag takes.
    pub fn min(self) -> usize {
        match self {
            Arity::Switch | Arity::Optional(_) => 0,
            Arity::One(_) | Arity::Many(_) => 1,
            Arity::Two(..) => 2,
        }
    }

    /// The most values the flag takes (`None`: no limit).
    pub fn max(self) -> Option<usize> {
        match self {
            Arity::Switch => Some(0),
            Arity::One(_) | Arity::Optional(_) => Some(1),
            Arity::Two(..) => Some(2),
            Arity::Many(_) => None,
        }
    }

    /// Whether a flag that already has `have` values takes another one.
    pub fn wants_more(self, have: usize) -> bool {
        self.max().is_none_or(|max| have < max)
    }

    /// The kind of the value at `position` (`None` for a switch).
    pub fn kind(self, position: usize) -> Option<ValueKind> {
        match (self, position) {
            (Arity::Switch, _) => None,
            (Arity::Two(first, _), 0) => Some(first),
            (Arity::Two(_, kind), _)
            | (Arity::One(kind) | Arity::Optional(kind) | Arity::Many(kind), _) => Some(kind),
        }
    }
}

/// Whether a value must be a power of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerOfTwo {
    /// No such rule.
    No,
    /// Must be a power of two.
    Required,
    /// Must be a power of two, or -1 ("derive it").
    OrMinusOne,
}

/// Numeric checks the backend applies to a value (each `None` is no check).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Range {
    /// Smallest accepted value.
    pub min: Option<f64>,
    /// The value must be greater than this.
    pub min_exclusive: Option<f64>,
    /// Largest accepted value.
    pub max: Option<f64>,
    /// Smallest accepted value other than 0 (0 means "off").
    pub min_if_nonzero: Option<f64>,
    /// The value must be a multiple of this.
    pub multiple_of: Option<u32>,
    /// Power-of-two rule (integers).
    pub power_of_two: PowerOfTwo,
}

impl Range {
    /// No check.
    pub const NONE: Range = Range {
        min: None,
        min_exclusive: None,
        max: None,
        min_if_nonzero: None,
        multiple_of: None,
        power_of_two: PowerOfTwo::No,
    };
}

/// One flag of a backend's command line.
///
/// Static data compiled from a generated table, so it serialises but does not deserialise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FlagSpec {
    /// Canonical spelling (`--ctx-size`).
    pub name: &'static str,
    /// Other spellings (`-c`).
    pub aliases: &'static [&'static str],
    /// Spellings that switch it off (`--no-enforce-eager`, `--disable-log-requests`).
    pub negatives: &'static [&'static str],
    /// The values it takes.
    pub arity: Arity,
    /// Accepted values, when the backend checks against a list (empty: any).
    pub choices: &'static [&'static str],
    /// Numeric checks.
    pub range: Range,
    /// Default as the backend prints it, for scalar flags.
    pub default: Option<&'static str>,
    /// Environment variable that sets the flag too (llama.cpp's `LLAMA_ARG_*`).
    pub env: Option<&'static str>,
    /// Meant to be given several times (each occurrence adds); otherwise the last one wins.
    pub repeatable: bool,
    /// The backend warns that the flag is deprecated.
    pub deprecated: bool,
    /// Makes the backend print something and exit (`--help`, `--version`).
    pub exits: bool,
    /// A flag that must come earlier on the command line (llama-box's `--jinja`).
    pub requires_before: Option<&'static str>,
    /// Set by the platform from the plan, with the reason; a user value is refused.
    pub platform_owned: Option<&'static str>,
    /// The value is a credential (API key, token, password): never shown in a plan.
    pub secret: bool,
    /// Section or group of the backend's help.
    pub section: &'static str,
    /// The backend's help text.
    pub help: &'static str,
}

impl FlagSpec {
    /// A switch named `""` with no marks: the base generated entries fill in
    /// (`FlagSpec { name: "--port", ..FlagSpec::BLANK }`).
    pub const BLANK: FlagSpec = FlagSpec {
        name: "",
        aliases: &[],
        negatives: &[],
        arity: Arity::Switch,
        choices: &[],
        range: Range::NONE,
        default: None,
        env: None,
        repeatable: false,
        deprecated: false,
        exits: false,
        requires_before: None,
        platform_owned: None,
        secret: false,
        section: "",
        help: "",
    };

    /// Every spelling: the name, the aliases, then the negative forms.
    pub fn spellings(&self) -> impl Iterator<Item = &'static str> + use<> {
        let (name, aliases, negatives) = (self.name, self.aliases, self.negatives);
        std::iter::once(name)
            .chain(aliases.iter().copied())
            .chain(negatives.iter().copied())
    }

    /// Whether the flag takes no value.
    pub fn is_switch(&self) -> bool {
        self.arity == Arity::Switch
    }

    /// Checks one value (at `position` among the flag's values) against the flag's kind,
    /// choices and range, in that order.
    pub fn check(&self, position: usize, value: &str) -> Result<(), ValueError> {
        value::check(self, position, value)
    }

    /// [`FlagSpec::check`] for a C++ backend (llama.cpp and its servers): an integer must also
    /// fit the C `int` that `std::stoi` reads, which throws `std::out_of_range` beyond it and
    /// stops the server at start (`--ctx-size 2147483648`).
    pub fn check_cpp(&self, position: usize, value: &str) -> Result<(), ValueError> {
        self.check(position, value)?;
        match self.arity.kind(position) {
            Some(ValueKind::Int | ValueKind::IntOr(_)) => value::c_int_range(value),
            _ => Ok(()),
        }
    }
}

/// One spelling of a flag in a table's lookup index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spelling {
    /// The option string (`-c`, `--no-mmap`).
    pub text: &'static str,
    /// Index of its flag in [`FlagTable::flags`].
    pub flag: u16,
    /// A negative form of its flag.
    pub negative: bool,
}

/// The flags of one backend version, as generated.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FlagTable {
    /// Backend name (`llama-box`).
    pub backend: &'static str,
    /// Backend version the table was extracted from.
    pub version: &'static str,
    /// Every flag, in the order of the source (the parser's or its help's order).
    pub flags: &'static [FlagSpec],
    /// Every spelling, sorted by text, for lookups.
    pub spellings: &'static [Spelling],
}

/// A flag as found from one of its spellings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// The flag.
    pub spec: &'static FlagSpec,
    /// The spelling that matched (canonical, alias or negative form).
    pub spelling: &'static str,
    /// Written as a negative form.
    pub negated: bool,
}

/// What a written option resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// One flag: the exact spelling, or the only flag a prefix abbreviates.
    Flag(Found),
    /// A prefix of several flags' long spellings (argparse's "ambiguous option"), in table
    /// order.
    Ambiguous(Vec<&'static str>),
    /// No flag.
    Unknown,
}

impl FlagTable {
    /// Whether `asked` (a deployment's backend version) names this table's version: equal
    /// once a leading `v` is dropped, or a longer spelling of the same commit when the table's
    /// version is a commit hash (`0c1e57098` and `0c1e5709812ab`).
    pub fn is_version(&self, asked: &str) -> bool {
        let (asked, own) = (
            asked.trim_start_matches('v'),
            self.version.trim_start_matches('v'),
        );
        let commit = own.len() >= 7 && own.chars().all(|c| c.is_ascii_hexdigit());
        asked == own || (commit && asked.starts_with(own))
    }

    /// The warning for a deployment that asks for another version than this table's, when the
    /// driver has only this table to check parameters with.
    pub fn other_version_warning(&self, asked: Option<&str>) -> Option<String> {
        let asked = asked.filter(|asked| !self.is_version(asked))?;
        Some(format!(
            "backend version {asked}: parameters are checked against the flags of {} {}, the \
             only table this driver has",
            self.backend, self.version
        ))
    }

    /// The flag spelled exactly `spelling` (case-sensitive, as every backend compares).
    pub fn lookup(&self, spelling: &str) -> Option<Found> {
        let at = self
            .spellings
            .binary_search_by(|s| s.text.cmp(spelling))
            .ok()?;
        let entry = self.spellings[at];
        Some(Found {
            spec: self.flags.get(usize::from(entry.flag))?,
            spelling: entry.text,
            negated: entry.negative,
        })
    }

    /// The flag whose canonical name is `name`.
    pub fn flag(&self, name: &str) -> Option<&'static FlagSpec> {
        self.lookup(name)
            .map(|found| found.spec)
            .filter(|spec| spec.name == name)
    }

    /// Every spelling in table order (per flag: name, aliases, negative forms), with its flag
    /// and whether it is a negative form.
    pub fn spellings_in_order(
        &self,
    ) -> impl Iterator<Item = (&'static str, &'static FlagSpec, bool)> + use<> {
        self.flags.iter().flat_map(|spec| {
            std::iter::once((spec.name, spec, false))
                .chain(spec.aliases.iter().map(move |a| (*a, spec, false)))
                .chain(spec.negatives.iter().map(move |n| (*n, spec, true)))
        })
    }

    /// Whether a spelling starts with `prefix`: one binary search, as the spellings are sorted
    /// and those starting with `prefix` follow it directly.
    fn some_spelling_starts_with(&self, prefix: &str) -> bool {
        let at = self.spellings.partition_point(|s| s.text < prefix);
        self.spellings
            .get(at)
            .is_some_and(|s| s.text.starts_with(prefix))
    }

    /// Resolves `written` (already [`Syntax::normalise`]d, without `=value`) as the backend
    /// would: the exact spelling, else, where `syntax` allows abbreviations, the one flag whose
    /// long spellings it is a prefix of. Spellings of one flag with the same polarity count once.
    pub fn resolve(&self, written: &str, syntax: Syntax) -> Resolution {
        if let Some(found) = self.lookup(written) {
            return Resolution::Flag(found);
        }
        if !syntax.abbreviations || !self.some_spelling_starts_with(written) {
            return Resolution::Unknown;
        }
        let options = self
            .spellings_in_order()
            .map(|(text, spec, negated)| (text, (spec, negated)));
        let matches = syntax::abbreviations(written, options, |(a, a_neg), (b, b_neg)| {
            std::ptr::eq(*a, *b) && a_neg == b_neg
        });
        match matches.as_slice() {
            [] => Resolution::Unknown,
            [(spelling, (spec, negated))] => Resolution::Flag(Found {
                spec,
                spelling,
                negated: *negated,
            }),
            _ => Resolution::Ambiguous(matches.iter().map(|(text, _)| *text).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table in the shape llama-server's will have: an environment variable per flag and
    /// `-ngl auto|all|N`.
    static FLAGS: &[FlagSpec] = &[
        FlagSpec {
            name: "--gpu-layers",
            aliases: &["-ngl", "--n-gpu-layers"],
            arity: Arity::One(ValueKind::IntOr(&["auto", "all"])),
            env: Some("LLAMA_ARG_N_GPU_LAYERS"),
            ..FlagSpec::BLANK
        },
        FlagSpec {
            name: "--api-key",
            arity: Arity::One(ValueKind::Text),
            env: Some("LLAMA_API_KEY"),
            secret: true,
            ..FlagSpec::BLANK
        },
        FlagSpec {
            name: "--enable-x",
            negatives: &["--disable-x", "--no-enable-x"],
            ..FlagSpec::BLANK
        },
    ];
    static SPELLINGS: &[Spelling] = &[
        Spelling {
            text: "--api-key",
            flag: 1,
            negative: false,
        },
        Spelling {
            text: "--disable-x",
            flag: 2,
            negative: true,
        },
        Spelling {
            text: "--enable-x",
            flag: 2,
            negative: false,
        },
        Spelling {
            text: "--gpu-layers",
            flag: 0,
            negative: false,
        },
        Spelling {
            text: "--n-gpu-layers",
            flag: 0,
            negative: false,
        },
        Spelling {
            text: "--no-enable-x",
            flag: 2,
            negative: true,
        },
        Spelling {
            text: "-ngl",
            flag: 0,
            negative: false,
        },
    ];
    const TABLE: FlagTable = FlagTable {
        backend: "test",
        version: "0",
        flags: FLAGS,
        spellings: SPELLINGS,
    };

    #[test]
    fn layer_counts_take_a_number_or_a_word() {
        let ngl = TABLE.lookup("-ngl").unwrap().spec;
        for good in ["auto", "all", "0", "-1", "99"] {
            assert_eq!(ngl.check(0, good), Ok(()), "{good}");
        }
        assert!(ngl.check(0, "most").is_err());
        assert_eq!(ngl.env, Some("LLAMA_ARG_N_GPU_LAYERS"));
        assert!(TABLE.flag("--api-key").unwrap().secret);
    }

    #[test]
    fn negatives_resolve_with_their_polarity_and_prefixes_need_abbreviations() {
        let argparse = Syntax::ARGPARSE;
        let found = TABLE.lookup("--disable-x").unwrap();
        assert!(found.negated && found.spec.name == "--enable-x");
        assert!(matches!(
            TABLE.resolve("--gpu", argparse),
            Resolution::Flag(Found {
                spelling: "--gpu-layers",
                ..
            })
        ));
        assert_eq!(TABLE.resolve("--gpu", Syntax::EXACT), Resolution::Unknown);
        // `--no-enable-x` and `--n-gpu-layers` both start with `--n`.
        assert_eq!(
            TABLE.resolve("--n", argparse),
            Resolution::Ambiguous(vec!["--n-gpu-layers", "--no-enable-x"])
        );
        assert_eq!(TABLE.flag("-ngl"), None, "an alias is not a canonical name");
    }

    #[test]
    fn versions_match_without_a_v_and_commits_by_prefix() {
        let release = FlagTable {
            version: "v0.0.171",
            ..TABLE
        };
        assert!(release.is_version("0.0.171") && release.is_version("v0.0.171"));
        assert!(!release.is_version("0.0.1710"));
        let commit = FlagTable {
            version: "0c1e57098",
            ..TABLE
        };
        assert!(commit.is_version("0c1e5709812ab") && !commit.is_version("0c1e5"));
        assert_eq!(commit.other_version_warning(Some("0c1e57098")), None);
        assert_eq!(commit.other_version_warning(None), None);
        let warning = commit.other_version_warning(Some("b4000")).unwrap();
        assert!(warning.contains("b4000") && warning.contains("test 0c1e57098"));
    }

    #[test]
    fn arity_bounds_and_kinds() {
        let pair = Arity::Two(ValueKind::Text, ValueKind::Float);
        assert_eq!((pair.min(), pair.max()), (2, Some(2)));
        assert_eq!(pair.kind(0), Some(ValueKind::Text));
        assert_eq!(pair.kind(1), Some(ValueKind::Float));
        assert!(Arity::Many(ValueKind::Int).wants_more(5));
        assert!(!Arity::Optional(ValueKind::Text).wants_more(1));
        assert_eq!(Arity::Switch.kind(0), None);
    }
}
