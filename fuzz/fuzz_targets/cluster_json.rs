//! Fuzzes the cluster file reader (`--cluster`, a `{"workers": [...]}` document or one worker as
//! `inferkit probe --json` prints it) and plans a small model on whatever it accepts: any input
//! must give a cluster or a typed error, and any accepted cluster a plan or a typed refusal,
//! never a panic or an overflow (the planner verifies every claim it accepts).
//!
//! `cargo +nightly fuzz run cluster_json` (see fuzz/README.md)

#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use inferkit::{ModelFacts, ModelSpec, PlanOptions, Registry, default_registry, plan_with_facts};
use inferkit_probe::static_inventory::parse_cluster;
use libfuzzer_sys::fuzz_target;

static REGISTRY: LazyLock<Registry> = LazyLock::new(default_registry);

/// Qwen2.5-0.5B-Instruct Q4_K_M (header fixture), read once.
static MODEL: LazyLock<(ModelSpec, ModelFacts)> = LazyLock::new(|| {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"
    );
    let spec = ModelSpec::local(path);
    let facts = ModelFacts::read(&spec.source).expect("fixture");
    (spec, facts)
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cluster) = parse_cluster(text, Path::new("cluster.json")) else {
        return;
    };
    let (spec, facts) = &*MODEL;
    let options = PlanOptions::default();
    let _ = plan_with_facts(&REGISTRY, facts, spec, &cluster, &options);
});
