//! End to end through the real vLLM driver: Hugging Face config fixtures and cluster JSON in,
//! deployment plan out (hard cases 8-11, the default worker selector, Ray across workers).
#![cfg(feature = "vllm")]

mod plan_support;

use inferkit::{
    Candidate, Error, Layout, PlacementMode, PlacementOptions, PlanOptions, ProcessRole,
};
use plan_support::*;
use serde_json::json;

fn nvidia_worker(name: &str, gpus: u32, gib: u64) -> serde_json::Value {
    let devices: Vec<_> = (0..gpus)
        .map(|i| {
            json!({"index": i, "vendor": "nvidia", "name": format!("NVIDIA {gib} GB"),
                        "memory": {"total": gib * GIB, "used": 300u64 << 20},
                        "compute_capability": "8.9"})
        })
        .collect();
    json!({"name": name, "os": "linux", "arch": "amd64", "cpu_cores": 64,
           "ram": {"total": 512 * GIB, "used": 16 * GIB}, "devices": devices})
}

/// (tensor parallel, pipeline parallel) of a plan's layout.
fn parallelism(plan: &inferkit::DeploymentPlan) -> (u32, u32) {
    match plan.estimate.layout {
        Layout::Parallel {
            tensor_parallel,
            pipeline_parallel,
        } => (tensor_parallel, pipeline_parallel),
        Layout::Single => (1, 1),
        ref other => panic!("unexpected layout {other:?}"),
    }
}

fn device_count(plan: &inferkit::DeploymentPlan) -> u32 {
    plan.placement
        .workers
        .iter()
        .map(|w| w.devices.len() as u32)
        .sum()
}

#[test]
fn hard_case_8_claims_stay_within_free_memory_and_name_the_utilisation() {
    let cluster = example_cluster("h100x8");
    let options = PlanOptions::default();
    let plan = plan_model(
        "tests/fixtures/hf/Llama-3.1-8B-Instruct",
        &cluster,
        &options,
        |_| {},
    )
    .unwrap();
    assert_eq!(plan.backend, "vllm");
    assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
    assert_within_allocatable(&plan, &cluster, &options);
    // 16.06 GB of BF16 weights (the safetensors headers) must be inside the claim.
    assert!(plan.placement.workers[0].devices[0].vram > 16_060_522_496);
    // GPUs 0-1 hold another instance's 90%: never chosen.
    assert!(!planned_indices(&plan, "dgx-01").iter().any(|i| *i < 2));
}

#[test]
fn hard_case_9_11_qwen2_7b_never_gets_a_tensor_parallel_size_that_does_not_divide_28() {
    // 8 GiB GPUs: Qwen2-7B's 14 GiB of weights need three of them.
    let cluster = cluster_json(json!({"workers": [nvidia_worker("small8", 8, 8)]}));
    let options = PlanOptions::default();
    let plan = plan_model(
        "tests/fixtures/hf/Qwen2-7B-Instruct",
        &cluster,
        &options,
        |_| {},
    )
    .unwrap();
    assert_within_allocatable(&plan, &cluster, &options);
    let (tp, pp) = parallelism(&plan);
    assert_eq!(28 % tp, 0, "tp {tp} divides 28 heads");
    assert_eq!(tp * pp, device_count(&plan));
    let args = &main_process(&plan).args;
    if let Some(size) = flag(args, "--tensor-parallel-size") {
        assert_eq!(28 % size.parse::<u32>().unwrap(), 0);
    }
}

#[test]
fn hard_case_10_internvl3_78b_is_split_by_its_text_heads() {
    // GPUStack took the GCD of text and vision heads (1) and refused every TP > 1.
    let cluster = cluster_json(json!({"workers": [nvidia_worker("dgx", 8, 80)]}));
    let options = PlanOptions::default();
    let plan = plan_model(
        "tests/fixtures/hf/InternVL3-78B",
        &cluster,
        &options,
        |_| {},
    )
    .unwrap();
    assert!(device_count(&plan) > 1);
    let (tp, pp) = parallelism(&plan);
    assert_eq!(64 % tp, 0);
    assert_eq!(tp * pp, device_count(&plan));
    assert_within_allocatable(&plan, &cluster, &options);
}

#[test]
fn the_default_worker_selector_keeps_windows_workers_out() {
    let cluster = example_cluster("mixed-4090-3090");
    let plan = plan_model(
        "tests/fixtures/hf/Qwen2-7B-Instruct",
        &cluster,
        &PlanOptions::default(),
        |_| {},
    )
    .unwrap();
    assert!(plan.placement.workers.iter().all(|w| w.name != "ws-3090-b"));
    let refused = plan
        .rejected
        .iter()
        .find(|r| {
            r.candidate
                == Candidate::Workers {
                    names: vec!["ws-3090-b".into()],
                }
        })
        .unwrap();
    assert_eq!(
        refused.reason,
        "labels do not match the worker selector os=linux"
    );
}

/// GPUStack 0.7.1 defaults `distributed_inference_across_workers` to on for vLLM (its
/// `set_defaults`); inferkit keeps that, with the Ray processes in the plan.
#[test]
fn deepseek_v3_spans_two_servers_by_default_and_says_why_not_when_distribution_is_off() {
    let mut two = json!({"workers": [nvidia_worker("a", 8, 80), nvidia_worker("b", 8, 80)]});
    let options = PlanOptions::default();
    let model = "tests/fixtures/hf/DeepSeek-V3";
    // Ray names nodes by IP: without the workers' addresses the plan is refused, naming the
    // field (issue 14), rather than starting Ray nodes at the workers' names.
    let err = plan_model(model, &cluster_json(two.clone()), &options, |_| {}).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter { name, reason }
            if name == "address" && reason.contains("set `address` of worker a")),
        "{err:?}"
    );
    two["workers"][0]["address"] = json!("10.0.0.1");
    two["workers"][1]["address"] = json!("10.0.0.2");
    let cluster = cluster_json(two);
    let plan = plan_model(model, &cluster, &options, |_| {}).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiWorker);
    assert_eq!(device_count(&plan), 16);
    assert_within_allocatable(&plan, &cluster, &options);
    // The other worker joins through one Ray worker process; the Ray head and the main process
    // run on the main worker, the head on the port after the main process's.
    let main_worker = &plan.placement.workers[0].name;
    let remote: Vec<_> = plan
        .processes
        .iter()
        .filter(|p| &p.worker != main_worker)
        .collect();
    assert_eq!(remote.len(), 1);
    assert_eq!(
        remote[0].role,
        ProcessRole::subordinate(inferkit::vllm::RAY_WORKER)
    );
    let head = plan
        .processes
        .iter()
        .find(|p| p.role.is_subordinate(inferkit::vllm::RAY_HEAD))
        .unwrap();
    assert_eq!(&head.worker, main_worker);
    let head_port = (options.placement.port + 1).to_string();
    assert_eq!(flag(&head.args, "--port").unwrap(), head_port);
    assert_eq!(
        head.health.as_ref().map(|h| h.port),
        Some(options.placement.port + 1)
    );
    assert!(
        flag(&remote[0].args, "--address")
            .unwrap()
            .ends_with(&format!(":{head_port}"))
    );
    assert_eq!(&main_process(&plan).worker, main_worker);

    let err = plan_model(model, &cluster, &options, |s| {
        s.distributed_inference_across_workers = Some(false)
    })
    .unwrap_err();
    let Error::NoPlacement { rejected, .. } = err else {
        panic!("{err:?}")
    };
    assert!(rejected.iter().any(|r| r.candidate
        == Candidate::Mode {
            mode: PlacementMode::MultiWorker
        }
        && r.reason == "distributed inference across workers is off"));
}

#[test]
fn vllm_chosen_on_ascend_npus_pins_them_with_the_ascend_variable() {
    let cluster = example_cluster("ascend-910b");
    let options = PlanOptions::default();
    let plan = plan_model(
        "tests/fixtures/hf/Qwen2.5-72B-Instruct",
        &cluster,
        &options,
        |s| s.backend = Some("vllm".into()),
    )
    .unwrap();
    assert_eq!(plan.backend, "vllm");
    assert_within_allocatable(&plan, &cluster, &options);
    let main = main_process(&plan);
    let planned: Vec<String> = planned_indices(&plan, &plan.placement.workers[0].name)
        .iter()
        .map(u32::to_string)
        .collect();
    assert_eq!(main.env["ASCEND_RT_VISIBLE_DEVICES"], planned.join(","));
    assert!(!main.env.contains_key("CUDA_VISIBLE_DEVICES"));
}

#[test]
fn hard_case_8_a_large_generic_reserve_does_not_stack_on_vllms_own_headroom() {
    // GPUStack with `--system-reserved vram=10` refused Llama-3.1-8B on a 24 GiB GPU although
    // vLLM's gpu-memory-utilization already keeps headroom. The generic reserve is not applied
    // to vLLM, so the model is placed, and its claim stays within the GPU's free memory.
    let cluster = cluster_json(json!({"workers": [nvidia_worker("g24", 1, 24)]}));
    let options = {
        let mut plan_options = PlanOptions::default();
        plan_options.placement = {
            let mut placement_options = PlacementOptions::default();
            placement_options.device_reserve = 10 * GIB;
            placement_options
        };
        plan_options
    };
    let plan = plan_model(
        "tests/fixtures/hf/Llama-3.1-8B-Instruct",
        &cluster,
        &options,
        |_| {},
    )
    .unwrap();
    assert_eq!(plan.backend, "vllm");
    assert_within_allocatable(&plan, &cluster, &options);
    let claim = plan.placement.workers[0].devices[0].vram;
    assert!(claim > 16_060_522_496, "weights are inside the claim");
    assert!(
        claim <= 24 * GIB - (300 << 20),
        "claim {claim} exceeds the free memory"
    );
}

/// The RTX 3090 inventory of the published V1 logs (`drivers/vllm/testdata/vllm-v1`).
fn rtx3090_cluster() -> inferkit::Cluster {
    inferkit::Cluster::from_json_file(&repo(
        "drivers/vllm/testdata/vllm-v1/clusters/rtx3090-x1.json",
    ))
    .unwrap()
}

/// Issue 17: Llama-3.1-8B on one RTX 3090 gets the longest multiple of 256 whose estimated KV
/// capacity holds it with the 5% error band (not 98% of the capacity), and the plan says how
/// many tokens the KV cache holds, the concurrency at full length and what would give more.
#[test]
fn issue_17_max_model_len_keeps_the_error_band_and_says_what_would_give_more() {
    let cluster = rtx3090_cluster();
    let options = PlanOptions::default();
    let plan = plan_model(
        "tests/fixtures/hf/Llama-3.1-8B-Instruct",
        &cluster,
        &options,
        |_| {},
    )
    .unwrap();
    assert_within_allocatable(&plan, &cluster, &options);
    let json = serde_json::to_value(&plan).unwrap();
    let details = &json["estimate"]["details"];
    let tokens = details["kv_cache_tokens"].as_u64().unwrap();
    let len: u64 = flag(&main_process(&plan).args, "--max-model-len")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(details["max_model_len"], len);
    assert!(len.is_multiple_of(256), "{len}");
    assert!(len * 105 <= tokens * 100, "{len} of {tokens} tokens");
    assert!((len + 256) * 105 > tokens * 100, "{len} of {tokens} tokens");
    let concurrency = details["concurrency_at_max_model_len"].as_f64().unwrap();
    assert!(concurrency >= 1.05, "{concurrency}");
    assert!(
        plan.explanation
            .iter()
            .any(|l| l.contains(&format!("KV cache: {tokens} tokens"))),
        "{:#?}",
        plan.explanation
    );
    // Cut from the model's 131072: a larger fraction, fp8 KV and a second GPU each say what
    // they would give.
    let longer = &details["longer_context"];
    assert!(
        longer["kv_cache_dtype_fp8"]["max_model_len"]
            .as_u64()
            .unwrap()
            > len
    );
    assert_eq!(longer["more_gpus"]["tensor_parallel"], 2);
    assert!(
        longer["gpu_memory_utilization"]["gpu_memory_utilization"]
            .as_f64()
            .unwrap()
            > 0.9
    );
    for what in [
        "--gpu-memory-utilization",
        "--kv-cache-dtype fp8",
        "tensor parallel 2",
    ] {
        assert!(
            plan.explanation
                .iter()
                .any(|l| l.starts_with(what) && l.contains("would allow --max-model-len")),
            "{what}: {:#?}",
            plan.explanation
        );
    }
}

/// The vLLM version a plan targets changes the estimate: 0.10.1.1 and 0.33.0 size the same
/// model on the same H100 differently (sampler, all-reduce buffers, graphs in the fraction).
#[test]
fn the_backend_version_picks_the_memory_rules() {
    let cluster = example_cluster("h100x8");
    let tokens = |version: &str| {
        let plan = plan_model(
            "tests/fixtures/hf/Llama-3.1-8B-Instruct",
            &cluster,
            &PlanOptions::default(),
            |spec| spec.backend_version = Some(version.to_string()),
        )
        .unwrap();
        plan.estimate.details["kv_cache_tokens"].as_u64().unwrap()
    };
    assert_ne!(tokens("0.10.1.1"), tokens("0.33.0"));
}
