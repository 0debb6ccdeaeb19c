//! Planning at fleet scale: 1,000 workers × 8 GPUs with realistic existing allocations
//! (`examples/clusters/fleet-1000x8.json`, written by `examples/clusters/make_fleet.py`).
//!
//! ```text
//! cargo bench --bench placement
//! ```
//!
//! Each case times `plan_with_facts` with the real drivers: backend selection, estimator
//! binding, the placement search over all 8,000 GPUs, and the launch translation. The model
//! files are read once outside the timed loop. Targets (issue 5): under 10 ms for a model that
//! fits one worker, under 100 ms for one that needs several workers.
//!
//! * llama-box, one worker: Qwen2.5-0.5B-Instruct Q4_K_M (header fixture).
//! * llama-box, several workers: DeepSeek-V3 Q8_0, 664 GiB of weights
//!   (`benches/fixtures/deepseek-v3-Q8_0.header.gguf`, written by
//!   `benches/fixtures/make_deepseek_v3_gguf.py`).
//! * vLLM, one worker: Qwen2.5-72B-Instruct (config fixture; tensor parallel on one node).
//! * vLLM, several workers: DeepSeek-V3 (config fixture) with distributed inference on.

use std::path::Path;
use std::sync::LazyLock;

use divan::Bencher;
use inferkit::{
    Cluster, ModelFacts, ModelSpec, PlacementMode, PlanOptions, Registry, default_registry,
    plan_with_facts,
};

fn main() {
    divan::main();
}

static FLEET: LazyLock<Cluster> = LazyLock::new(|| {
    Cluster::from_json_file(Path::new("examples/clusters/fleet-1000x8.json"))
        .expect("run examples/clusters/make_fleet.py")
});

static REGISTRY: LazyLock<Registry> = LazyLock::new(default_registry);

fn bench_plan(bencher: Bencher, path: &str, distributed: bool, expected: PlacementMode) {
    let mut spec = ModelSpec::local(path);
    if distributed {
        spec.distributed_inference_across_workers = Some(true);
    }
    let facts = ModelFacts::read(&spec.source).expect("fixture");
    let options = PlanOptions::default();
    let plan = plan_with_facts(&REGISTRY, &facts, &spec, &FLEET, &options).expect("a plan");
    assert_eq!(plan.placement.mode, expected, "{path}");
    bencher.bench(|| plan_with_facts(&REGISTRY, &facts, &spec, &FLEET, &options));
}

#[divan::bench]
fn llama_box_fits_one_worker(bencher: Bencher) {
    bench_plan(
        bencher,
        "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        false,
        PlacementMode::SingleDevice,
    );
}

#[divan::bench]
fn llama_box_needs_several_workers(bencher: Bencher) {
    bench_plan(
        bencher,
        "benches/fixtures/deepseek-v3-Q8_0.header.gguf",
        false,
        PlacementMode::MultiWorker,
    );
}

#[divan::bench]
fn vllm_fits_one_worker(bencher: Bencher) {
    bench_plan(
        bencher,
        "tests/fixtures/hf/Qwen2.5-72B-Instruct",
        false,
        PlacementMode::MultiDevice,
    );
}

#[divan::bench]
fn vllm_needs_several_workers(bencher: Bencher) {
    bench_plan(
        bencher,
        "tests/fixtures/hf/DeepSeek-V3",
        true,
        PlacementMode::MultiWorker,
    );
}
