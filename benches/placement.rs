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
//!
//! Devices per worker (issue 18): one worker with 64, 256 or 1,024 small GPUs (2 GiB, 1 GiB
//! allocatable) and DeepSeek-V3 Q8_0, which no group of them holds: the search tries every
//! multi-device count and then partial offload, where no layer (about 11 GiB) fits a device,
//! so the plan runs on the CPU. Time grows near-linearly with the device count
//! (GPUStack's k = 2, 3, ... search, which inferkit followed before, was quadratic: 1,000
//! devices took 10 s).

use std::path::Path;
use std::sync::LazyLock;

use divan::Bencher;
use inferkit::{
    Cluster, ModelFacts, ModelSpec, PlacementMode, PlanOptions, Registry, default_registry,
    plan_with_facts,
};
use serde_json::json;

fn main() {
    divan::main();
}

static FLEET: LazyLock<Cluster> = LazyLock::new(|| {
    let mut fleet = Cluster::from_json_file(Path::new("examples/clusters/fleet-1000x8.json"))
        .expect("run examples/clusters/make_fleet.py");
    // vLLM across workers runs Ray, which names every node by its IP address.
    for (n, worker) in fleet.workers.iter_mut().enumerate() {
        worker.address = Some(format!("10.0.{}.{}", n / 250, n % 250 + 1));
    }
    fleet
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

/// One worker with `gpus` NVIDIA GPUs of 2 GiB and 4 TiB of RAM.
fn wide_worker(gpus: u32) -> Cluster {
    let devices: Vec<_> = (0..gpus)
        .map(|index| {
            json!({"index": index, "vendor": "nvidia", "name": "NVIDIA Small 2GB",
                   "memory": {"total": 2u64 << 30}, "compute_capability": "8.9"})
        })
        .collect();
    let worker = json!({"name": "wide", "ram": {"total": 4u64 << 40}, "devices": devices});
    serde_json::from_value(json!({ "workers": [worker] })).expect("cluster")
}

#[divan::bench(args = [64, 256, 1024])]
fn llama_box_devices_per_worker(bencher: Bencher, gpus: u32) {
    let cluster = wide_worker(gpus);
    let spec = ModelSpec::local("benches/fixtures/deepseek-v3-Q8_0.header.gguf");
    let facts = ModelFacts::read(&spec.source).expect("fixture");
    let options = PlanOptions::default();
    let plan = plan_with_facts(&REGISTRY, &facts, &spec, &cluster, &options).expect("a plan");
    assert_eq!(plan.placement.mode, PlacementMode::CpuOnly);
    bencher.bench(|| plan_with_facts(&REGISTRY, &facts, &spec, &cluster, &options));
}
