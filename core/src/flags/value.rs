//! Checks of one flag value against its kind, choices and range.

use super::{FlagSpec, PowerOfTwo, Range, ValueKind};

/// Why a value is refused. Drivers word the message (each backend names its checks its own
/// way); [`std::fmt::Display`] gives the plain wording.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueError {
    /// Not of the flag's kind.
    Kind(ValueKind),
    /// Not one of the flag's choices.
    Choice(&'static [&'static str]),
    /// Outside the flag's range.
    Range(Violation),
    /// A list value with a bad item, or no item (the reason as text).
    List(String),
}

/// The numeric check a value fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Violation {
    /// Below [`Range::min`].
    Min(f64),
    /// Above [`Range::max`].
    Max(f64),
    /// Not above [`Range::min_exclusive`].
    MinExclusive(f64),
    /// Neither 0 nor at least [`Range::min_if_nonzero`].
    MinIfNonzero(f64),
    /// Not a multiple of [`Range::multiple_of`].
    MultipleOf(u32),
    /// Not a power of two ([`PowerOfTwo`]).
    PowerOfTwo(PowerOfTwo),
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Min(min) => write!(f, "must be at least {min}"),
            Violation::Max(max) => write!(f, "must be at most {max}"),
            Violation::MinExclusive(bound) => write!(f, "must be greater than {bound}"),
            Violation::MinIfNonzero(min) => write!(f, "must be 0 or at least {min}"),
            Violation::MultipleOf(step) => write!(f, "must be a multiple of {step}"),
            Violation::PowerOfTwo(PowerOfTwo::OrMinusOne) => {
                f.write_str("must be a power of 2 or -1")
            }
            Violation::PowerOfTwo(_) => f.write_str("must be a power of 2"),
        }
    }
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueError::Kind(ValueKind::IntOr(words)) => {
                let words: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                write!(f, "is not an integer, {}", words.join(" or "))
            }
            ValueError::Kind(kind) => write!(f, "is not {}", kind.describe()),
            ValueError::Choice(choices) => write!(f, "is not one of: {}", choices.join(", ")),
            ValueError::Range(violation) => violation.fmt(f),
            ValueError::List(why) => f.write_str(why),
        }
    }
}

impl ValueKind {
    /// What a value of this kind is, for messages ("an integer").
    pub fn describe(self) -> &'static str {
        match self {
            ValueKind::Int | ValueKind::PyInt => "an integer",
            ValueKind::UInt => "a non-negative integer",
            ValueKind::Float => "a number",
            ValueKind::Text => "text",
            ValueKind::FloatList => "a list of non-negative numbers",
            ValueKind::HumanInt => "an integer (suffixes k, m, g, K, M, G allowed)",
            ValueKind::HumanIntOrAuto => "an integer or `auto`",
            ValueKind::Json => "valid JSON",
            ValueKind::IntOr(_) => "an integer or one of its words",
        }
    }

    /// The numbers in `value` that the range applies to (none for text and words), or why it is
    /// not of this kind.
    pub fn numbers(self, value: &str) -> Result<Vec<f64>, ValueError> {
        let not = || ValueError::Kind(self);
        let number = match self {
            ValueKind::Text => return Ok(Vec::new()),
            ValueKind::Json => {
                let looks_like_json = value.starts_with('{') || value.starts_with('[');
                if looks_like_json && serde_json::from_str::<serde_json::Value>(value).is_err() {
                    return Err(not());
                }
                return Ok(Vec::new());
            }
            ValueKind::FloatList => return parse_float_list(value).map_err(ValueError::List),
            ValueKind::IntOr(words) if words.contains(&value) => return Ok(Vec::new()),
            ValueKind::Int | ValueKind::IntOr(_) => value.parse::<i64>().ok().map(|v| v as f64),
            ValueKind::PyInt => parse_python_int(value).map(|v| v as f64),
            ValueKind::UInt => value.parse::<u64>().ok().map(|v| v as f64),
            ValueKind::Float => parse_float(value),
            ValueKind::HumanIntOrAuto if value == "auto" => return Ok(Vec::new()),
            ValueKind::HumanInt | ValueKind::HumanIntOrAuto => {
                parse_human_int(value).map(|v| v as f64)
            }
        };
        number.map(|n| vec![n]).ok_or_else(not)
    }
}

impl Range {
    /// The first check `v` fails, in the order min, max, exclusive min, min-if-nonzero,
    /// multiple, power of two.
    pub fn violation(&self, v: f64) -> Option<Violation> {
        if let Some(min) = self.min.filter(|min| v < *min) {
            return Some(Violation::Min(min));
        }
        if let Some(max) = self.max.filter(|max| v > *max) {
            return Some(Violation::Max(max));
        }
        if let Some(bound) = self.min_exclusive.filter(|bound| v <= *bound) {
            return Some(Violation::MinExclusive(bound));
        }
        if let Some(min) = self.min_if_nonzero.filter(|min| v != 0.0 && v < *min) {
            return Some(Violation::MinIfNonzero(min));
        }
        if let Some(step) = self.multiple_of.filter(|step| v % f64::from(*step) != 0.0) {
            return Some(Violation::MultipleOf(step));
        }
        let power = v > 0.0 && v.fract() == 0.0 && (v as u64).is_power_of_two();
        let powered = match self.power_of_two {
            PowerOfTwo::No => true,
            PowerOfTwo::Required => power,
            PowerOfTwo::OrMinusOne => power || v == -1.0,
        };
        (!powered).then_some(Violation::PowerOfTwo(self.power_of_two))
    }

    /// Whether `v` lies within the bounds (min, exclusive min, max).
    pub fn within_bounds(&self, v: f64) -> bool {
        self.min.is_none_or(|min| v >= min)
            && self.min_exclusive.is_none_or(|bound| v > bound)
            && self.max.is_none_or(|max| v <= max)
    }

    /// The bounds as an interval: `[1, 1000]`, `(0, 1]`, `[0, ∞)`.
    pub fn interval(&self) -> String {
        let low = match (self.min, self.min_exclusive) {
            (Some(min), _) => format!("[{min}"),
            (None, Some(bound)) => format!("({bound}"),
            (None, None) => "(-∞".to_string(),
        };
        let high = match self.max {
            Some(max) => format!("{max}]"),
            None => "∞)".to_string(),
        };
        format!("{low}, {high}")
    }
}

/// Checks `value` at `position` among the flag's values: kind, then choices, then range.
pub(super) fn check(spec: &FlagSpec, position: usize, value: &str) -> Result<(), ValueError> {
    let Some(kind) = spec.arity.kind(position) else {
        return Ok(());
    };
    let numbers = kind.numbers(value)?;
    if !spec.choices.is_empty() && !spec.choices.contains(&value) {
        return Err(ValueError::Choice(spec.choices));
    }
    match numbers.iter().find_map(|v| spec.range.violation(*v)) {
        Some(violation) => Err(ValueError::Range(violation)),
        None => Ok(()),
    }
}

/// Whether an integer (already checked as one, or a word, which passes) fits the C `int` of
/// `std::stoi`.
pub(super) fn c_int_range(value: &str) -> Result<(), ValueError> {
    match value.parse::<i64>() {
        Ok(n) if n > i64::from(i32::MAX) => {
            Err(ValueError::Range(Violation::Max(f64::from(i32::MAX))))
        }
        Ok(n) if n < i64::from(i32::MIN) => {
            Err(ValueError::Range(Violation::Min(f64::from(i32::MIN))))
        }
        _ => Ok(()),
    }
}

/// A finite floating-point number (`std::stof`, Python `float()` without `inf` and `nan`).
pub fn parse_float(value: &str) -> Option<f64> {
    value.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Python's `int()` of a string: surrounding blanks and `_` between digits are accepted.
///
/// ```
/// use inferkit_core::flags::parse_python_int;
///
/// assert_eq!(parse_python_int(" 8_080 "), Some(8080));
/// assert_eq!(parse_python_int("80a"), None);
/// ```
pub fn parse_python_int(value: &str) -> Option<i64> {
    value.trim().replace('_', "").parse::<i64>().ok()
}

/// A `--tensor-split` for a llama.cpp build of at most `max_devices` devices
/// (`llama_max_devices()`): [`parse_float_list`], refusing as many values as `max_devices` or
/// more, as `common/arg.cpp` does ("got N input configs, but system only has M devices").
///
/// ```
/// use inferkit_core::flags::parse_tensor_split;
///
/// assert_eq!(parse_tensor_split("3,1", 16, "llama-server"), Ok(vec![3.0, 1.0]));
/// assert!(parse_tensor_split(&["1"; 16].join(","), 16, "llama-server").is_err());
/// ```
pub fn parse_tensor_split(
    value: &str,
    max_devices: usize,
    backend: &str,
) -> Result<Vec<f64>, String> {
    let parts = value.split([',', '/']).filter(|p| !p.is_empty()).count();
    if parts >= max_devices {
        return Err(format!(
            "has {parts} values; {backend} takes fewer than {max_devices}"
        ));
    }
    parse_float_list(value)
}

/// Non-negative numbers separated by runs of `,` and `/` (llama.cpp splits `--tensor-split` on
/// `[,/]+`).
///
/// ```
/// use inferkit_core::flags::parse_float_list;
///
/// assert_eq!(parse_float_list("3/1,,2"), Ok(vec![3.0, 1.0, 2.0]));
/// assert!(parse_float_list("1,x").is_err());
/// ```
pub fn parse_float_list(value: &str) -> Result<Vec<f64>, String> {
    let parts: Vec<&str> = value.split([',', '/']).filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err("is empty".into());
    }
    parts
        .iter()
        .map(|p| {
            parse_float(p)
                .filter(|v| *v >= 0.0)
                .ok_or_else(|| format!("has `{p}`, which is not a non-negative number"))
        })
        .collect()
}

/// vLLM's `human_readable_int`: `25600`, `25.6k` (×1000, fractions allowed), `32K` (×1024,
/// whole numbers only). `None` for anything else; `-1` is accepted as vLLM's "auto".
///
/// ```
/// use inferkit_core::flags::parse_human_int;
///
/// assert_eq!(parse_human_int("25.6k"), Some(25_600));
/// assert_eq!(parse_human_int("32K"), Some(32_768));
/// assert_eq!(parse_human_int("1.5K"), None);
/// ```
pub fn parse_human_int(value: &str) -> Option<i64> {
    if let Ok(n) = value.parse::<i64>() {
        return Some(n);
    }
    // The suffix is the last char, which may be several bytes long.
    let (last, _) = value.char_indices().next_back()?;
    let (number, suffix) = value.split_at(last);
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
    use crate::flags::Arity;

    fn spec(arity: Arity, choices: &'static [&'static str], range: Range) -> FlagSpec {
        FlagSpec {
            name: "--x",
            arity,
            choices,
            range,
            ..FlagSpec::BLANK
        }
    }

    #[test]
    fn kind_comes_before_choices_and_range() {
        let port = spec(
            Arity::One(ValueKind::Int),
            &[],
            Range {
                min: Some(0.0),
                max: Some(65535.0),
                ..Range::NONE
            },
        );
        assert_eq!(port.check(0, "4k"), Err(ValueError::Kind(ValueKind::Int)));
        assert_eq!(
            port.check(0, "70000").unwrap_err().to_string(),
            "must be at most 65535"
        );
        let dtype = spec(Arity::One(ValueKind::Text), &["f16", "q8_0"], Range::NONE);
        assert_eq!(
            dtype.check(0, "q8").unwrap_err().to_string(),
            "is not one of: f16, q8_0"
        );
    }

    #[test]
    fn ranges_check_every_rule_and_print_their_interval() {
        let block = Range {
            power_of_two: PowerOfTwo::OrMinusOne,
            ..Range::NONE
        };
        assert_eq!(block.violation(-1.0), None);
        assert_eq!(block.violation(64.0), None);
        assert_eq!(
            block.violation(48.0),
            Some(Violation::PowerOfTwo(PowerOfTwo::OrMinusOne))
        );
        let fraction = Range {
            min_exclusive: Some(0.0),
            max: Some(1.0),
            ..Range::NONE
        };
        assert!(!fraction.within_bounds(0.0) && fraction.within_bounds(1.0));
        assert_eq!(fraction.interval(), "(0, 1]");
        let size = Range {
            min_if_nonzero: Some(224.0),
            multiple_of: Some(14),
            ..Range::NONE
        };
        assert_eq!(size.violation(0.0), None);
        assert_eq!(size.violation(100.0), Some(Violation::MinIfNonzero(224.0)));
        assert_eq!(size.violation(230.0), Some(Violation::MultipleOf(14)));
    }

    /// Found by the `backend_params` fuzzer: `--max-model-len 327\u{FFFD}` (a lossy-decoded
    /// byte at the end) cut the value inside that char to read the suffix, and panicked.
    #[test]
    fn human_ints_ending_in_a_multibyte_char_are_refused() {
        for value in ["327\u{FFFD}", "\u{FFFD}", "32\u{212A}", "é"] {
            assert_eq!(parse_human_int(value), None, "{value}");
        }
        let len = spec(Arity::One(ValueKind::HumanInt), &[], Range::NONE);
        assert_eq!(
            len.check(0, "327\u{FFFD}"),
            Err(ValueError::Kind(ValueKind::HumanInt))
        );
        assert_eq!(parse_human_int("32K"), Some(32_768));
        assert_eq!(parse_human_int("1.5k"), Some(1_500));
    }

    #[test]
    fn json_values_are_checked_only_when_they_look_like_json() {
        let config = spec(Arity::One(ValueKind::Json), &[], Range::NONE);
        assert!(config.check(0, "{\"a\": 1}").is_ok());
        assert!(config.check(0, "plain").is_ok());
        assert!(config.check(0, "{\"a\": ").is_err());
    }
}
