//! End to end through the real vox-box driver: speech model directories and cluster JSON in,
//! deployment plan out.
#![cfg(feature = "vox-box")]

mod plan_support;

use inferkit::{Category, PlacementMode, PlanOptions};
use plan_support::*;
use serde_json::json;

#[test]
fn a_whisper_directory_goes_to_vox_box_on_one_nvidia_gpu() {
    let cluster = example_cluster("mixed-4090-3090");
    let options = PlanOptions::default();
    let plan = plan_model(
        "tests/fixtures/vox-box/faster-whisper-large-v3",
        &cluster,
        &options,
        |_| {},
    )
    .unwrap();
    assert_eq!(plan.backend, "vox-box");
    assert_eq!(plan.categories, vec![Category::SpeechToText]);
    assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
    assert_within_allocatable(&plan, &cluster, &options);
    let index = plan.placement.workers[0].devices[0].index;
    let main = main_process(&plan);
    assert_eq!(
        flag(&main.args, "--device"),
        Some(format!("cuda:{index}").as_str())
    );
    assert_eq!(flag(&main.args, "--port"), Some("40000"));
}

#[test]
fn without_a_gpu_a_speech_model_runs_on_the_cpu() {
    let cluster = cluster_json(
        json!({"workers": [{"name": "cpu-box", "os": "linux", "arch": "amd64",
        "cpu_cores": 16, "ram": {"total": 32 * GIB, "used": 4 * GIB}, "devices": []}]}),
    );
    let plan = plan_model(
        "tests/fixtures/vox-box/faster-whisper-tiny.en",
        &cluster,
        &PlanOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(plan.backend, "vox-box");
    assert_eq!(plan.placement.mode, PlacementMode::CpuOnly);
    assert!(plan.placement.workers[0].devices.is_empty());
}

#[test]
fn vox_box_refuses_distribution_across_workers() {
    let cluster = example_cluster("laptop");
    let err = plan_model(
        "tests/fixtures/vox-box/faster-whisper-tiny.en",
        &cluster,
        &PlanOptions::default(),
        |s| s.distributed_inference_across_workers = Some(true),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter distributed_inference_across_workers: Distributed inference across \
         workers is not supported for the vox-box backend"
    );
}

#[test]
fn cosyvoice_skips_linux_arm64_workers_and_says_why() {
    // CosyVoice runs on Linux amd64 and macOS only: the arm64 worker, though it has the larger
    // GPU, is refused with the reason, and the model lands on the amd64 worker.
    let gpu = |gib: u64| {
        json!([{"index": 0, "vendor": "nvidia", "name": "NVIDIA GPU",
                "memory": {"total": gib * GIB, "used": 0}, "compute_capability": "8.9"}])
    };
    let cluster = cluster_json(json!({"workers": [
        {"name": "arm", "os": "linux", "arch": "arm64", "cpu_cores": 64,
         "ram": {"total": 128 * GIB, "used": 0}, "devices": gpu(80)},
        {"name": "x86", "os": "linux", "arch": "amd64", "cpu_cores": 16,
         "ram": {"total": 64 * GIB, "used": 0}, "devices": gpu(24)}]}));
    let plan = plan_model(
        "tests/fixtures/vox-box/CosyVoice-300M-SFT",
        &cluster,
        &PlanOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(plan.backend, "vox-box");
    assert_eq!(plan.placement.workers[0].name, "x86");
    let refused = plan
        .rejected
        .iter()
        .find(|r| r.candidate.contains("arm"))
        .expect("the arm64 worker is listed as refused");
    assert!(refused.reason.contains("linux/arm64"), "{}", refused.reason);
}
