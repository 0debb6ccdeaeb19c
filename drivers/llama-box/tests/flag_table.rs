//! The generated flag table (`src/flags_table.rs`) against the JSON it was generated from
//! (`data/llama-box-0.0.171.json`, extracted from llama-box's parser): a stale or hand-edited
//! table fails here.

use inferkit_llama_box::flags::{self, Arity, ValueKind};
use serde_json::Value;

/// Entries `tools/gen_flags.py` corrects on purpose (see OVERRIDES there).
const CORRECTED_TYPE: [&str; 2] = ["--seed", "--logit-bias"];
const CORRECTED_CHOICES: [&str; 1] = ["--dry-sequence-breaker"];

fn source_flags() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/llama-box-0.0.171.json");
    let text = std::fs::read_to_string(path).expect("flag JSON is in the crate");
    let json: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(json["version"], flags::VERSION);
    json["flags"].as_array().expect("flags array").clone()
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Int => "int",
        ValueKind::UInt => "uint",
        ValueKind::Float => "float",
        ValueKind::Text => "string",
        ValueKind::FloatList => "float_list",
    }
}

#[test]
fn the_table_matches_its_source_json() {
    let source = source_flags();
    assert_eq!(source.len(), flags::flags().len());
    for (json, flag) in source.iter().zip(flags::flags()) {
        let name = json["name"].as_str().unwrap();
        assert_eq!(flag.name, name);
        assert_eq!(flag.aliases, strings(&json["aliases"]).as_slice(), "{name}");
        assert_eq!(
            flag.arity.count() as u64,
            json["nargs"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(flag.repeatable, json["repeatable"] == true, "{name}");
        assert_eq!(flag.exits, json["exits"] == true, "{name}");
        if !CORRECTED_CHOICES.contains(&name) {
            assert_eq!(flag.choices, strings(&json["choices"]).as_slice(), "{name}");
        }
        if let (Arity::One(kind), false) = (flag.arity, CORRECTED_TYPE.contains(&name)) {
            assert_eq!(kind_name(kind), json["type"].as_str().unwrap(), "{name}");
        }
        let range = &json["range"];
        assert_eq!(flag.range.min, range["min"].as_f64(), "{name}");
        assert_eq!(flag.range.max, range["max"].as_f64(), "{name}");
        assert_eq!(
            flag.range.min_exclusive,
            range["min_exclusive"].as_f64(),
            "{name}"
        );
    }
}

#[test]
fn the_help_only_spelling_is_not_a_flag() {
    // llama-box's help names --image-slg-skip-layer, but its parser reads --image-skip-layer.
    assert!(flags::lookup("--image-slg-skip-layer").is_none());
    assert!(flags::lookup("--image-skip-layer").is_some());
    assert_eq!(
        flags::suggest("--image-slg-skip-layer"),
        Some("--image-skip-layer")
    );
}
