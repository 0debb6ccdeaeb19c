//! `inferkit schema` describes what inferkit really reads and writes: every example cluster,
//! what `probe --json` prints, and specs validate against the printed schemas, and files the
//! library refuses do not.

use std::process::Command;

use serde_json::{Value, json};

/// The printed schema of `format`, compiled.
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new(format: &str) -> Self {
        let schema: Value = serde_json::from_slice(&inferkit(&["schema", format])).unwrap();
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let url = format!("https://inferkit.invalid/{format}.json");
        compiler.add_resource(&url, schema).unwrap();
        let index = compiler.compile(&url, &mut schemas).unwrap();
        Validator { schemas, index }
    }

    fn check(&self, what: &str, instance: &Value) {
        if let Err(error) = self.schemas.validate(instance, self.index) {
            panic!("{what} does not match its schema: {error:#}");
        }
    }

    fn accepts(&self, instance: &Value) -> bool {
        self.schemas.validate(instance, self.index).is_ok()
    }
}

/// Runs inferkit in the repository root; its stdout.
fn inferkit(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_inferkit"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_example_cluster_and_probe_output_matches_the_cluster_schema() {
    let validator = Validator::new("cluster");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clusters");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            validator.check(&path.display().to_string(), &read_json(&path));
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked} example clusters");
    let worker: Value = serde_json::from_slice(&inferkit(&["probe", "--json"])).unwrap();
    validator.check("probe --json", &worker);
}

#[test]
fn the_cluster_schema_takes_human_sizes_and_refuses_what_the_parser_refuses() {
    let validator = Validator::new("cluster");
    let worker = |total: Value| {
        json!({"name": "w1", "ram": {"total": total},
               "devices": [{"index": 0, "vendor": "nvidia", "memory": {"total": "80GiB"}}]})
    };
    for good in [
        json!(1024),
        json!("24GiB"),
        json!("80 GB"),
        json!("24576MiB"),
        json!("1.5 TiB"),
    ] {
        assert!(validator.accepts(&worker(good.clone())), "{good}");
    }
    for bad in [json!(-1), json!("64 parsecs"), json!("GiB"), json!(1.5)] {
        assert!(!validator.accepts(&worker(bad.clone())), "{bad}");
    }
}

#[test]
fn specs_match_the_spec_schema() {
    let validator = Validator::new("spec");
    let mut spec = inferkit::ModelSpec::local("/models/qwen.gguf");
    validator.check("a local spec", &serde_json::to_value(&spec).unwrap());
    spec.source = inferkit::ModelSource::Huggingface {
        repo_id: "Qwen/Qwen2.5-7B-Instruct".into(),
        filename: None,
    };
    spec.backend = Some("vllm".into());
    spec.backend_parameters = vec!["--max-model-len=8192".into()];
    spec.cpu_offloading = Some(false);
    validator.check("a hub spec", &serde_json::to_value(&spec).unwrap());
    assert!(!validator.accepts(&json!({"name": "x", "source": "ftp", "path": "/m"})));
}
