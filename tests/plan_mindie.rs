//! End to end with every driver registered: on Ascend-only clusters MindIE serves what it
//! supports and vLLM the rest (hard case 20); elsewhere MindIE is never chosen on its own.
#![cfg(all(feature = "mindie", feature = "vllm"))]

mod plan_support;

use inferkit::PlanOptions;
use plan_support::*;

#[test]
fn hard_case_20_ascend_only_clusters_get_mindie_for_supported_models() {
    let cluster = example_cluster("ascend-910b");
    let options = PlanOptions::default();
    let plan = plan_model(
        "tests/fixtures/hf/Qwen2.5-72B-Instruct",
        &cluster,
        &options,
        |_| {},
    )
    .unwrap();
    assert_eq!(plan.backend, "ascend-mindie");
    assert_within_allocatable(&plan, &cluster, &options);
    let main = main_process(&plan);
    assert!(main.env.contains_key("ASCEND_RT_VISIBLE_DEVICES"));
    assert!(!main.env.contains_key("CUDA_VISIBLE_DEVICES"));
}

#[test]
fn hard_case_20_models_mindie_lacks_fall_back_to_vllm_with_the_reason() {
    // MindIE fails on Qwen3 where vLLM-Ascend works (gpustack#2221).
    let cluster = example_cluster("ascend-910b");
    let options = PlanOptions::default();
    let plan = plan_model("tests/fixtures/hf/Qwen3-8B-FP8", &cluster, &options, |_| {}).unwrap();
    assert_eq!(plan.backend, "vllm");
    assert_within_allocatable(&plan, &cluster, &options);
    let why = plan
        .explanation
        .iter()
        .find(|l| l.starts_with("not ascend-mindie"))
        .unwrap();
    assert!(why.contains("Qwen3ForCausalLM"), "{why}");
}

#[test]
fn nvidia_clusters_never_get_mindie_automatically() {
    let cluster = example_cluster("h100x8");
    let plan = plan_model(
        "tests/fixtures/hf/Llama-3.1-8B-Instruct",
        &cluster,
        &PlanOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(plan.backend, "vllm");
}
