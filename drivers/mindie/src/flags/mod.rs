//! GPUStack's MindIE parameter table and the tokenizer over it.
//!
//! MindIE takes no command-line flags: its service reads one `config.json`. GPUStack 0.7.1
//! exposes a set of argparse-style parameters and translates them into that file and the
//! environment; inferkit accepts the same parameters (table generated from
//! `data/mindie-gpustack-0.7.1.json` into `flags/table.rs` by `tools/gen_flags.py`). Unlike
//! GPUStack, which parses with `parse_known_args` and silently drops what it does not know, an
//! unknown parameter is an error here.

use std::collections::BTreeMap;

use inferkit_core::flags::suggest::nearest;
use inferkit_core::flags::{Arity, FlagSpec, Tokens, ValueKind};
use inferkit_core::{Error, Result};

#[rustfmt::skip]
mod table;

pub(crate) use table::TABLE;

/// The entry a written spelling refers to, and the switch value it sets (`false` for a
/// negative form).
fn lookup(spelled: &str) -> Option<(&'static FlagSpec, Option<bool>)> {
    let found = TABLE.lookup(spelled)?;
    Some((found.spec, found.spec.is_switch().then_some(!found.negated)))
}

/// The user's parameters as written values by canonical name (a repeated parameter keeps its
/// last value, as argparse does). Switches are stored as `true`/`false`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Written {
    values: BTreeMap<&'static str, String>,
}

impl Written {
    /// Splits `--flag value`, `--flag=value` and switches, refusing unknown parameters (with
    /// the nearest known one), missing values and values given to switches.
    pub fn parse(tokens: &[String]) -> Result<Self> {
        let mut values = BTreeMap::new();
        let mut rest = Tokens::entries(tokens);
        while let Some(token) = rest.next() {
            if !token.starts_with('-') {
                return Err(Error::invalid_parameter(
                    token,
                    "is a value with no parameter before it",
                ));
            }
            let (spelled, inline) = rest.split_inline(token, |f| lookup(f).is_some());
            let (flag, switch) = lookup(spelled).ok_or_else(|| unknown(spelled))?;
            let value = match (switch, inline) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid_parameter(
                        spelled,
                        "is a switch and takes no value",
                    ));
                }
                (Some(on), None) => on.to_string(),
                (None, Some(v)) => v.to_string(),
                (None, None) => rest
                    .next()
                    .filter(|v| !v.starts_with("--"))
                    .ok_or_else(|| Error::invalid_parameter(spelled, "expects a value"))?
                    .to_string(),
            };
            values.insert(flag.name, value);
        }
        Ok(Written { values })
    }

    /// Whether the user wrote the parameter (in either form, for switches).
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Canonical names the user wrote.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.keys().copied()
    }

    /// The written value, else the table default.
    fn raw(&self, flag: &'static FlagSpec) -> Option<&str> {
        self.values
            .get(flag.name)
            .map(String::as_str)
            .or(flag.default)
    }

    /// An integer parameter, checked against its range. `None` when unset with no default.
    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        let flag = table_entry(name, ValueKind::Int);
        let Some(text) = self.raw(flag) else {
            return Ok(None);
        };
        let value: i64 = text
            .parse()
            .map_err(|_| Error::invalid_parameter(name, format!("`{text}` is not an integer")))?;
        check_choices(flag, text)?;
        check_range(flag, value as f64)?;
        check_power_of_two(flag, value)?;
        Ok(Some(value))
    }

    /// A number parameter, checked against its range.
    pub fn float(&self, name: &str) -> Result<Option<f64>> {
        let flag = table_entry(name, ValueKind::Float);
        let Some(text) = self.raw(flag) else {
            return Ok(None);
        };
        let value: f64 = text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| Error::invalid_parameter(name, format!("`{text}` is not a number")))?;
        check_range(flag, value)?;
        Ok(Some(value))
    }

    /// A string parameter, checked against its choices.
    pub fn string(&self, name: &str) -> Result<Option<String>> {
        let flag = table_entry(name, ValueKind::Text);
        let Some(text) = self.raw(flag) else {
            return Ok(None);
        };
        check_choices(flag, text)?;
        Ok(Some(text.to_string()))
    }

    /// A switch.
    pub fn switch(&self, name: &str) -> bool {
        let flag = switch_entry(name);
        self.raw(flag) == Some("true")
    }

    /// A JSON-object parameter.
    pub fn json_object(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        let flag = table_entry(name, ValueKind::Json);
        let Some(text) = self.raw(flag) else {
            return Ok(None);
        };
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err(Error::invalid_parameter(name, "must be a JSON object")),
            Err(e) => Err(Error::invalid_parameter(
                name,
                format!("must be a valid JSON string: {e}"),
            )),
        }
    }
}

/// The entry of a name the driver itself asks for, taking one value of `kind`. A name missing
/// from the generated table, or asked for with the wrong type, is a bug in this crate caught by
/// its tests, hence the panic.
fn table_entry(name: &str, kind: ValueKind) -> &'static FlagSpec {
    match TABLE.flag(name) {
        Some(flag) if flag.arity == Arity::One(kind) => flag,
        _ => panic!("{name} is not a {kind:?} parameter of the MindIE table"),
    }
}

/// The entry of a switch the driver itself asks for (see [`table_entry`]).
fn switch_entry(name: &str) -> &'static FlagSpec {
    match TABLE.flag(name) {
        Some(flag) if flag.is_switch() => flag,
        _ => panic!("{name} is not a switch of the MindIE table"),
    }
}

fn unknown(spelled: &str) -> Error {
    let spellings = TABLE.spellings_in_order().map(|(text, ..)| text);
    let hint = match nearest(spelled, spellings) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    };
    Error::invalid_parameter(
        spelled,
        format!(
            "is not a MindIE parameter (GPUStack {} table){hint}",
            TABLE.version
        ),
    )
}

fn check_choices(flag: &FlagSpec, text: &str) -> Result<()> {
    if flag.choices.is_empty() || flag.choices.contains(&text) {
        return Ok(());
    }
    Err(Error::invalid_parameter(
        flag.name,
        format!("`{text}` is not one of {}", flag.choices.join(", ")),
    ))
}

fn check_range(flag: &FlagSpec, value: f64) -> Result<()> {
    if flag.range.within_bounds(value) {
        return Ok(());
    }
    Err(Error::invalid_parameter(
        flag.name,
        format!(
            "must be in the range {}, got {value}",
            flag.range.interval()
        ),
    ))
}

/// The power-of-two rule, the one check of the range left once the bounds hold.
fn check_power_of_two(flag: &FlagSpec, value: i64) -> Result<()> {
    match flag.range.violation(value as f64) {
        Some(violation) => Err(Error::invalid_parameter(
            flag.name,
            format!("{violation}, got {value}"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(tokens: &[&str]) -> Result<Written> {
        Written::parse(&tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>())
    }

    /// The checked-in table is what `tools/gen_flags.py` makes of the JSON.
    #[test]
    fn generated_table_matches_the_json() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
        let diffs = inferkit_core::flags::source::compare_data_dir(&TABLE, data.as_ref());
        assert!(diffs.is_empty(), "{diffs:#?}");
    }

    #[test]
    fn both_value_syntaxes_and_negative_switches_are_read() {
        let w = written(&[
            "--max-batch-size",
            "64",
            "--cache-block-size=64",
            "--no-truncation",
        ])
        .unwrap();
        assert_eq!(w.int("--max-batch-size").unwrap(), Some(64));
        assert_eq!(w.int("--cache-block-size").unwrap(), Some(64));
        assert!(w.has("--truncation"));
        assert!(!w.switch("--truncation"));
    }

    #[test]
    fn a_flag_and_its_value_may_share_one_entry() {
        let w = written(&["--rope-scaling {\"type\": \"yarn\", \"factor\": 4.0}"]).unwrap();
        let scaling = w.json_object("--rope-scaling").unwrap().unwrap();
        assert_eq!(scaling["factor"], 4.0);
    }

    #[test]
    fn defaults_come_from_the_table() {
        let w = written(&[]).unwrap();
        assert_eq!(w.int("--max-link-num").unwrap(), Some(1000));
        assert_eq!(w.float("--npu-memory-fraction").unwrap(), Some(0.9));
        assert_eq!(w.string("--log-level").unwrap().as_deref(), Some("Info"));
        assert_eq!(w.float("--rope-theta").unwrap(), None);
    }

    #[test]
    fn unknown_parameters_are_refused_with_the_nearest() {
        let err = written(&["--max-batch-sise", "8"]).unwrap_err();
        assert_eq!(
            err,
            Error::invalid_parameter(
                "--max-batch-sise",
                "is not a MindIE parameter (GPUStack gpustack-0.7.1 table); did you mean `--max-batch-size`?"
            )
        );
    }

    #[test]
    fn a_value_cannot_be_another_flag_and_switches_take_none() {
        let err = written(&["--max-seq-len", "--metrics"]).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter { ref name, .. } if name == "--max-seq-len"));
        let err = written(&["--metrics=true"]).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter { ref name, .. } if name == "--metrics"));
    }

    #[test]
    fn exclusive_bounds_are_exclusive() {
        let err = written(&["--npu-memory-fraction", "0"])
            .unwrap()
            .float("--npu-memory-fraction");
        assert_eq!(
            err.unwrap_err().to_string(),
            "invalid parameter --npu-memory-fraction: must be in the range (0, 1], got 0"
        );
        let ok = written(&["--npu-memory-fraction=1"]).unwrap();
        assert_eq!(ok.float("--npu-memory-fraction").unwrap(), Some(1.0));
    }
}
