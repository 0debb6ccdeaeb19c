//! Fuzzes backend parameter parsing and checking through the planner: the input, split into
//! lines, is the user's backend parameters (`plan ... -- PARAMS`) for each backend with a model
//! it serves. Any parameters must give a plan or a typed error, never a panic (the planner verifies
//! every claim it accepts).
//!
//! `cargo +nightly fuzz run backend_params` (see fuzz/README.md)

#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use inferkit::{
    Cluster, ModelFacts, ModelSpec, PlanOptions, Registry, default_registry, plan_with_facts,
};
use libfuzzer_sys::fuzz_target;

static REGISTRY: LazyLock<Registry> = LazyLock::new(default_registry);

/// A mixture-of-experts GGUF of 4 layers (71 tensors): the expert parameters (`--cpu-moe`,
/// `--n-cpu-moe`) apply to it, and the drivers' per-tensor work is a quarter of a 24-layer
/// model's, so more parameters are tried per second.
const MOE_GGUF: &str = "gguf/qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf";

/// (backend, model fixture, example cluster): every driver with a model it serves.
const CASES: [(&str, &str, &str); 5] = [
    ("llama-box", MOE_GGUF, "h100x8"),
    ("llama-server", MOE_GGUF, "h100x8"),
    ("vllm", "hf/Qwen2.5-72B-Instruct", "h100x8"),
    ("ascend-mindie", "hf/Qwen2.5-72B-Instruct", "ascend-910b"),
    ("vox-box", "vox-box/faster-whisper-large-v3", "h100x8"),
];

static MODELS: LazyLock<Vec<(ModelSpec, ModelFacts, Cluster)>> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    CASES
        .iter()
        .map(|(backend, model, cluster)| {
            let mut spec = ModelSpec::local(root.join("tests/fixtures").join(model));
            spec.backend = Some(backend.to_string());
            let facts = ModelFacts::read(&spec.source).expect("fixture");
            let cluster = root.join(format!("examples/clusters/{cluster}.json"));
            let cluster = Cluster::from_json_file(&cluster).expect("example cluster");
            (spec, facts, cluster)
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let params: Vec<String> = text.lines().map(str::to_owned).collect();
    let options = PlanOptions::default();
    for (spec, facts, cluster) in MODELS.iter() {
        let mut spec = spec.clone();
        spec.backend_parameters = params.clone();
        let _ = plan_with_facts(&REGISTRY, facts, &spec, cluster, &options);
    }
});
