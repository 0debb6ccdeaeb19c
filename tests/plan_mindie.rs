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

/// MindIE across workers with the rank table left to run time: the plan explains that Ascend
/// Operator writes it, and the launcher (what `inferkit serve` runs) refuses each process
/// until the table is in its run directory.
#[test]
fn a_rank_table_written_at_run_time_is_explained_and_stops_the_launcher() {
    let cluster = example_cluster("ascend-910b");
    let registry = inferkit::Registry::new()
        .with(inferkit::mindie::MindIe::new().with_rank_table_at_run_time());
    let mut spec = inferkit::ModelSpec::local(repo("tests/fixtures/hf/Qwen2.5-72B-Instruct"));
    spec.distributed_inference_across_workers = Some(true);
    // 8 x 16 GiB of one node do not hold its 135 GiB of weights.
    spec.backend_parameters = vec!["--npu-memory-fraction".into(), "0.25".into()];
    let plan = inferkit::plan(&registry, &spec, &cluster, &PlanOptions::default()).unwrap();
    assert_eq!(plan.placement.workers.len(), 2);
    for process in &plan.processes {
        let line = format!(
            "ranktable.json of the {} process on {} is written at run time by Ascend Operator, \
             for an AscendJob on Kubernetes (`inferkit plan --format kubernetes`): the plan \
             does not carry it, and `inferkit serve` starts the process only when it is \
             already in the run directory",
            process.role.as_str(),
            process.worker
        );
        assert!(plan.explanation.contains(&line), "{:#?}", plan.explanation);
        assert!(
            process
                .files
                .iter()
                .all(|f| f.path.as_os_str() != "ranktable.json")
        );

        let base = tempfile::tempdir().unwrap();
        let run_dir = base.path().join("run");
        let launcher = inferkit::process::Launcher::default();
        let refused = launcher
            .check(std::slice::from_ref(process), &run_dir)
            .unwrap_err();
        assert_eq!(refused.kind(), inferkit::ErrorKind::Unsupported);
        assert!(
            refused
                .to_string()
                .contains("ranktable.json is written at run time")
        );
    }
}
