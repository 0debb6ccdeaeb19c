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
    let nodes = "probe/tests/fixtures/kubernetes/nodes-rke2-nvidia-a16.json";
    let cluster: Value =
        serde_json::from_slice(&inferkit(&["probe", "--kubernetes", nodes])).unwrap();
    validator.check("probe --kubernetes", &cluster);
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
        revision: Some("v1.0".into()),
    };
    spec.backend = Some("vllm".into());
    spec.backend_parameters = vec!["--max-model-len=8192".into()];
    spec.cpu_offloading = Some(false);
    validator.check("a hub spec", &serde_json::to_value(&spec).unwrap());
    assert!(!validator.accepts(&json!({"name": "x", "source": "ftp", "path": "/m"})));
}

/// Every model the repository ships, as `plan` takes them: GGUF files (first shards),
/// Hugging Face and speech model directories.
fn shipped_models(fixtures: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut models = Vec::new();
    for entry in std::fs::read_dir(fixtures.join("gguf")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let later_shard = name.contains("-of-") && !name.contains("-00001-of-");
        if name.ends_with(".gguf") && !later_shard {
            models.push(path);
        }
    }
    for dir in ["hf", "vox-box"] {
        for entry in std::fs::read_dir(fixtures.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "tools") {
                models.push(path);
            }
        }
    }
    models.sort();
    models
}

#[test]
fn every_plan_of_every_shipped_model_on_every_example_cluster_matches_the_plan_schema() {
    use inferkit::{Cluster, ModelSpec, PlanOptions, default_registry, plan};

    let validator = Validator::new("plan");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let registry = default_registry();
    let clusters = ["h100x8", "mixed-4090-3090", "ascend-910b", "laptop"];
    let mut plans = 0;
    for model in shipped_models(&root.join("tests/fixtures")) {
        for cluster in clusters {
            let file = root.join(format!("examples/clusters/{cluster}.json"));
            let cluster = Cluster::from_json_file(&file).unwrap();
            let spec = ModelSpec::local(&model);
            if let Ok(plan) = plan(&registry, &spec, &cluster, &PlanOptions::default()) {
                let what = format!("the plan of {} on {}", model.display(), file.display());
                validator.check(&what, &serde_json::to_value(&plan).unwrap());
                plans += 1;
            }
        }
    }
    // Not every model fits every cluster, but most do somewhere.
    assert!(plans >= 40, "only {plans} plans");
    let mut plan: Value = serde_json::from_slice(&inferkit(&[
        "plan",
        "tests/fixtures/hf/Qwen2.5-72B-Instruct",
        "--gpu",
        "H100",
        "--gpus",
        "8",
        "--json",
    ]))
    .unwrap();
    validator.check("a what-if plan", &plan);
    plan["processes"][0]["role"] = json!("Ray Head");
    assert!(!validator.accepts(&plan));
}
