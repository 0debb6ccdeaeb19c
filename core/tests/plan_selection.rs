//! Backend selection and spec resolution (behaviour spec §1, hard cases 16 and 20) against
//! mock backends.

mod placement_support;

use inferkit_core::{
    Candidate, Category, Claim, Error, PlanOptions, Registry, Vendor, plan_with_facts,
    select_backend,
};
use placement_support::*;

fn three(mindie: Claim) -> (Registry, MockBackend) {
    let llama = MockBackend::llama(MockModel::layered(8));
    let vllm = MockBackend::vllm(MockModel::tensor_parallel(8, 32));
    let mindie = MockBackend::mindie(MockModel::tensor_parallel(8, 32), mindie);
    let registry = Registry::new().with(llama).with(vllm.clone()).with(mindie);
    (registry, vllm)
}

fn ascend_worker(name: &str) -> inferkit_core::WorkerInventory {
    let devices = (0..8)
        .map(|i| gpu(i, Vendor::Ascend, "Ascend910B3", 64, 0))
        .collect();
    worker(name, 1024, devices)
}

#[test]
fn hard_case_16_gguf_goes_to_llama_box_and_an_explicit_backend_is_followed_everywhere() {
    let (registry, _) = three(Claim::Supports);
    let cluster = cluster(vec![nvidia_worker("w", 2, 24)]);
    let choice = select_backend(&registry, &facts("m.gguf"), &spec("m.gguf"), &cluster).unwrap();
    assert_eq!(choice.backend, "llama-box");
    assert_eq!(choice.spec.backend.as_deref(), Some("llama-box"));

    // vLLM named by the user for a .gguf file: estimate, placement and launch are vLLM's.
    let mut spec = spec("m.gguf");
    spec.backend = Some("vllm".into());
    let plan = plan_with_facts(
        &registry,
        &facts("m.gguf"),
        &spec,
        &cluster,
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.backend, "vllm");
    assert_eq!(plan.processes.last().unwrap().program, "vllm");
    assert!(
        plan.explanation[0].contains("chosen by the user"),
        "{:?}",
        plan.explanation
    );

    spec.backend = Some("tgi".into());
    let err = select_backend(&registry, &facts("m.gguf"), &spec, &cluster).unwrap_err();
    assert!(
        err.to_string().contains(
            "`tgi` is not a registered backend; registered: llama-box, vllm, ascend-mindie"
        ),
        "{err}"
    );
}

#[test]
fn an_explicit_backend_that_refuses_the_model_is_an_error() {
    let (registry, _) = three(Claim::Supports);
    let mut spec = spec("Qwen2.5-7B");
    spec.backend = Some("llama-box".into());
    let err = select_backend(&registry, &facts("Qwen2.5-7B"), &spec, &cluster(vec![])).unwrap_err();
    assert_eq!(
        err,
        Error::unsupported("llama-box cannot serve qwen2.5-7b: llama-box says Refuses")
    );
}

#[test]
fn hard_case_20_ascend_only_cluster_gets_mindie_when_it_supports_the_model() {
    let cluster = cluster(vec![ascend_worker("npu-0")]);
    let (registry, _) = three(Claim::Supports);
    let choice = select_backend(
        &registry,
        &facts("Qwen2.5-7B"),
        &spec("Qwen2.5-7B"),
        &cluster,
    )
    .unwrap();
    assert_eq!(choice.backend, "ascend-mindie");

    // MindIE does not support it: vLLM, with MindIE's reason in the explanation.
    let (registry, _) = three(Claim::Refuses);
    let choice =
        select_backend(&registry, &facts("Qwen3-32B"), &spec("Qwen3-32B"), &cluster).unwrap();
    assert_eq!(choice.backend, "vllm");
    assert!(
        choice
            .explanation
            .iter()
            .any(|l| l.contains("not ascend-mindie (Refuses)")),
        "{:?}",
        choice.explanation
    );
}

#[test]
fn nvidia_or_mixed_clusters_get_vllm_for_hf_models() {
    let (registry, _) = three(Claim::Supports);
    let nvidia = cluster(vec![nvidia_worker("g", 8, 80)]);
    let choice = select_backend(
        &registry,
        &facts("Qwen2.5-7B"),
        &spec("Qwen2.5-7B"),
        &nvidia,
    )
    .unwrap();
    assert_eq!(choice.backend, "vllm");
    let mixed = cluster(vec![nvidia_worker("g", 8, 80), ascend_worker("npu-0")]);
    let choice =
        select_backend(&registry, &facts("Qwen2.5-7B"), &spec("Qwen2.5-7B"), &mixed).unwrap();
    assert_eq!(choice.backend, "vllm");
    // A worker selector that admits only the Ascend worker makes it Ascend-only again.
    let mut spec = spec("Qwen2.5-7B");
    spec.worker_selector = [("npu".to_string(), "yes".to_string())].into();
    let mut mixed = mixed;
    mixed.workers[1].labels.insert("npu".into(), "yes".into());
    let choice = select_backend(&registry, &facts("Qwen2.5-7B"), &spec, &mixed).unwrap();
    assert_eq!(choice.backend, "ascend-mindie");
}

#[test]
fn backend_defaults_fill_the_spec_and_its_refusals_are_errors() {
    let (registry, _) = three(Claim::Supports);
    let cluster = cluster(vec![nvidia_worker("g", 1, 80)]);

    let choice = select_backend(&registry, &facts("m.gguf"), &spec("m.gguf"), &cluster).unwrap();
    assert_eq!(choice.spec.cpu_offloading, Some(true));
    assert_eq!(choice.spec.distributed_inference_across_workers, Some(true));
    assert_eq!(choice.spec.categories, vec![Category::Llm]);
    assert!(choice.spec.worker_selector.is_empty());

    let choice = select_backend(&registry, &facts("Qwen"), &spec("Qwen"), &cluster).unwrap();
    assert_eq!(choice.spec.cpu_offloading, Some(false));
    assert_eq!(choice.spec.worker_selector["os"], "linux");

    let mut offload = spec("Qwen");
    offload.cpu_offloading = Some(true);
    let err = select_backend(&registry, &facts("Qwen"), &offload, &cluster).unwrap_err();
    assert!(
        err.to_string()
            .contains("CPU offloading is only supported for GGUF models"),
        "{err}"
    );

    let mut distributed = spec("Qwen");
    distributed.backend = Some("ascend-mindie".into());
    distributed.distributed_inference_across_workers = Some(true);
    distributed.categories = vec![Category::Llm];
    assert!(select_backend(&registry, &facts("Qwen"), &distributed, &cluster).is_ok());

    let mut image = spec("Qwen");
    image.categories = vec![Category::Image];
    let err = select_backend(&registry, &facts("Qwen"), &image, &cluster).unwrap_err();
    assert!(
        err.to_string().contains("vllm does not serve image models"),
        "{err}"
    );
}

#[test]
fn the_default_vllm_worker_selector_keeps_windows_workers_out() {
    let (registry, _) = three(Claim::Supports);
    let mut windows = nvidia_worker("win", 1, 80);
    windows.os = "windows".into();
    let mut linux = nvidia_worker("lin", 1, 24);
    linux.devices[0].memory.used = 0;
    let cluster = cluster(vec![windows, linux]);
    let plan = plan_with_facts(
        &registry,
        &facts("Qwen"),
        &spec("Qwen"),
        &cluster,
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.placement.workers[0].name, "lin");
    assert!(plan.rejected.iter().any(|r| r.candidate
        == Candidate::Workers {
            names: vec!["win".into()]
        }
        && r.reason == "labels do not match the worker selector os=linux"));
}

#[test]
fn the_fleet_backend_version_applies_unless_the_spec_names_one() {
    let (registry, _) = three(Claim::Supports);
    let cluster = cluster(vec![nvidia_worker("g", 1, 80)]);
    let mut options = PlanOptions::default();
    options
        .backend_versions
        .insert("llama-box".into(), "v0.0.140".into());
    options
        .backend_versions
        .insert("vllm".into(), "v0.10.1".into());
    let plan = plan_with_facts(
        &registry,
        &facts("m.gguf"),
        &spec("m.gguf"),
        &cluster,
        &options,
    )
    .unwrap();
    assert_eq!(
        plan.processes.last().unwrap().env["BACKEND_VERSION"],
        "v0.0.140"
    );

    let mut pinned = spec("m.gguf");
    pinned.backend_version = Some("v0.0.171".into());
    let plan = plan_with_facts(&registry, &facts("m.gguf"), &pinned, &cluster, &options).unwrap();
    assert_eq!(
        plan.processes.last().unwrap().env["BACKEND_VERSION"],
        "v0.0.171"
    );
}
