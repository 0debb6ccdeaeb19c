//! A generated [`FlagTable`] against the JSON it was generated from: what each driver's table
//! test runs, so that a stale or hand-edited table fails.
//!
//! The dump is the backend parser's JSON (`drivers/<driver>/data/<backend>-<version>.json`); the
//! driver's `data/flags.json` adds the corrections (`overrides`), the type names that map
//! differently (`types`), the order, and the marks (`platform_owned`, `secret`), exactly as
//! `tools/gen_flags.py` reads them.

use std::path::Path;

use serde_json::{Map, Value};

use super::{Arity, FlagSpec, FlagTable, PowerOfTwo, Range, ValueKind};

/// Every difference between `table` and the flags of `dump` as corrected and marked by
/// `config`, one line each; empty when the table is what the generator makes of them.
pub fn compare(table: &FlagTable, dump: &Value, config: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    if dump["version"].as_str() != Some(table.version) {
        diffs.push(format!(
            "version: table {}, dump {}",
            table.version, dump["version"]
        ));
    }
    let mut flags: Vec<Map<String, Value>> = dump["flags"]
        .as_array()
        .map(|flags| flags.iter().filter_map(|f| corrected(f, config)).collect())
        .unwrap_or_default();
    if config["order"] == "name" {
        flags.sort_by(|a, b| text(&a["name"]).cmp(text(&b["name"])));
    }
    if flags.len() != table.flags.len() {
        diffs.push(format!(
            "{} flags in the table, {} in the dump",
            table.flags.len(),
            flags.len()
        ));
    }
    for (source, spec) in flags.iter().zip(table.flags) {
        diffs.extend(
            compare_flag(source, spec, config)
                .into_iter()
                .map(|field| format!("{}: {field} differs from the dump", spec.name)),
        );
    }
    diffs.extend(compare_index(table));
    diffs
}

/// [`compare`] for a driver's `data` directory: reads its `flags.json` and the dump it names
/// for `table.version`. A missing or unreadable file is a difference too.
pub fn compare_data_dir(table: &FlagTable, data: &Path) -> Vec<String> {
    let read = |file: &str| -> Result<Value, String> {
        let path = data.join(file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let config = match read("flags.json") {
        Ok(config) => config,
        Err(why) => return vec![why],
    };
    let dumps = config["tables"].as_array().cloned().unwrap_or_default();
    for entry in dumps {
        match read(text(&entry["source"])) {
            Ok(dump) if dump["version"].as_str() == Some(table.version) => {
                return compare(table, &dump, &config);
            }
            Ok(_) => {}
            Err(why) => return vec![why],
        }
    }
    vec![format!(
        "no dump of {} {} in {}",
        table.backend,
        table.version,
        data.display()
    )]
}

/// The dump's entry with the driver's overrides applied.
fn corrected(flag: &Value, config: &Value) -> Option<Map<String, Value>> {
    let mut flag = flag.as_object()?.clone();
    if let Some(fields) = config["overrides"][text(&flag["name"])].as_object() {
        flag.extend(fields.clone());
    }
    Some(flag)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn texts(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| match item {
                    Value::Null => "None".to_string(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The names of the fields of `spec` that differ from `source`.
fn compare_flag(source: &Map<String, Value>, spec: &FlagSpec, config: &Value) -> Vec<&'static str> {
    let name = text(&source["name"]);
    let field = |key: &str| source.get(key).unwrap_or(&Value::Null);
    let optional = |key: &str| source.get(key).and_then(Value::as_str);
    let checks = [
        ("name", spec.name == name),
        ("aliases", spec.aliases == texts(field("aliases"))),
        (
            "negatives",
            spec.negatives == texts(field("negative_forms")),
        ),
        (
            "arity",
            Some(spec.arity) == arity(source, config, spec.arity),
        ),
        ("choices", spec.choices == texts(field("choices"))),
        ("range", spec.range == range(field("range"))),
        ("default", same_default(spec.default, source)),
        ("env", spec.env == optional("env")),
        (
            "repeatable",
            spec.repeatable == (field("repeatable") == true || field("action") == "_AppendAction"),
        ),
        (
            "deprecated",
            spec.deprecated == (field("deprecated") == true),
        ),
        ("exits", spec.exits == (field("exits") == true)),
        (
            "requires_before",
            spec.requires_before == optional("requires_before"),
        ),
        (
            "platform_owned",
            spec.platform_owned == config["platform_owned"][name].as_str(),
        ),
        (
            "secret",
            spec.secret == texts(&config["secret"]).iter().any(|s| s == name),
        ),
        (
            "section",
            spec.section
                == optional("section")
                    .or(optional("group"))
                    .unwrap_or_default(),
        ),
        (
            "help",
            spec.help
                == optional("help")
                    .or(optional("description"))
                    .unwrap_or_default(),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(field, _)| field)
        .collect()
}

/// The arity the generator makes of `source`. `table` is the table's own arity, whose word lists
/// stand for those of `int_or:` types (a table's words are static; the dump's are not).
fn arity(source: &Map<String, Value>, config: &Value, table: Arity) -> Option<Arity> {
    if source.get("takes_value") != Some(&Value::Bool(true)) {
        return Some(Arity::Switch);
    }
    let kind = |type_name: &str, position| kind(type_name, &config["types"], table.kind(position));
    let nargs = source.get("nargs").unwrap_or(&Value::Null);
    if nargs == 2 {
        let second = kind(text(&source.get("value_types")?[0]), 1)?;
        let metavar = source.get("metavar").map(text).unwrap_or_default();
        let first = if metavar.starts_with("FILE") {
            ValueKind::Text
        } else {
            second
        };
        return Some(Arity::Two(first, second));
    }
    let value = kind(source.get("type").map(text).unwrap_or_default(), 0)?;
    Some(match nargs.as_str() {
        Some("?") => Arity::Optional(value),
        Some("+") => Arity::Many(value),
        _ => Arity::One(value),
    })
}

/// The kind a dump's type name maps to (the generator's `value_kind`); an `int_or:W1|W2` type is
/// `table`'s kind when that is [`ValueKind::IntOr`] with exactly those words.
fn kind(type_name: &str, types: &Value, table: Option<ValueKind>) -> Option<ValueKind> {
    let bare = type_name.strip_prefix("optional:").unwrap_or(type_name);
    if let Some(words) = bare.strip_prefix("int_or:") {
        return table.filter(|kind| match kind {
            ValueKind::IntOr(table_words) => table_words.iter().copied().eq(words.split('|')),
            _ => false,
        });
    }
    let name = types[bare].as_str().unwrap_or(match bare {
        "int" => "Int",
        "uint" => "UInt",
        "float" => "Float",
        "float_list" => "FloatList",
        _ if bare.starts_with("int_human") && bare.contains("or_auto") => "HumanIntOrAuto",
        _ if bare.starts_with("int_human") => "HumanInt",
        _ if bare.starts_with("json") => "Json",
        _ => "Text",
    });
    Some(match name {
        "Int" => ValueKind::Int,
        "PyInt" => ValueKind::PyInt,
        "UInt" => ValueKind::UInt,
        "Float" => ValueKind::Float,
        "FloatList" => ValueKind::FloatList,
        "HumanInt" => ValueKind::HumanInt,
        "HumanIntOrAuto" => ValueKind::HumanIntOrAuto,
        "Json" => ValueKind::Json,
        "Text" => ValueKind::Text,
        _ => return None,
    })
}

fn range(source: &Value) -> Range {
    let power_of_two = if source["power_of_2"] == true {
        PowerOfTwo::Required
    } else if source["power_of_2_or_-1"] == true {
        PowerOfTwo::OrMinusOne
    } else {
        PowerOfTwo::No
    };
    Range {
        min: source["min"].as_f64(),
        min_exclusive: source["min_exclusive"].as_f64(),
        max: source["max"].as_f64(),
        min_if_nonzero: source["min_if_nonzero"].as_f64(),
        multiple_of: source["multiple_of"]
            .as_u64()
            .and_then(|m| u32::try_from(m).ok()),
        power_of_two,
    }
}

/// Defaults are kept as the backend prints them; numbers compare by value (Python and Rust
/// print some floats differently), structured and JSON defaults are not kept.
fn same_default(kept: Option<&str>, source: &Map<String, Value>) -> bool {
    let json_flag = source
        .get("type")
        .map(text)
        .unwrap_or_default()
        .starts_with("json");
    match source.get("default").unwrap_or(&Value::Null) {
        Value::Null | Value::Object(_) | Value::Array(_) => kept.is_none(),
        _ if json_flag => kept.is_none(),
        Value::Bool(b) => kept == Some(if *b { "true" } else { "false" }),
        Value::Number(n) => kept
            .and_then(|k| k.parse::<f64>().ok())
            .is_some_and(|k| Some(k) == n.as_f64()),
        Value::String(s) => kept == Some(s.as_str()),
    }
}

/// The lookup index holds every spelling once, sorted, each pointing at its flag.
fn compare_index(table: &FlagTable) -> Vec<String> {
    let mut diffs = Vec::new();
    let sorted = table.spellings.windows(2).all(|w| w[0].text < w[1].text);
    if !sorted {
        diffs.push("the spelling index is not sorted (or has duplicates)".to_string());
    }
    let spellings: usize = table.flags.iter().map(|f| f.spellings().count()).sum();
    if spellings != table.spellings.len() {
        diffs.push(format!(
            "{} spellings in the index, {spellings} in the flags",
            table.spellings.len()
        ));
    }
    for (text, spec, negated) in table.spellings_in_order() {
        let found = table.lookup(text);
        if !found.is_some_and(|f| std::ptr::eq(f.spec, spec) && f.negated == negated) {
            diffs.push(format!("{text} does not look up {}", spec.name));
        }
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_types_match_only_the_same_words() {
        let types = Value::Null;
        let ngl = Some(ValueKind::IntOr(&["auto", "all"]));
        assert_eq!(kind("int_or:auto|all", &types, ngl), ngl);
        assert_eq!(kind("int_or:auto", &types, ngl), None);
        assert_eq!(kind("int_or:all|auto", &types, ngl), None);
        assert_eq!(kind("int_or:auto|all", &types, Some(ValueKind::Int)), None);
        assert_eq!(kind("int", &types, ngl), Some(ValueKind::Int));
    }
}
