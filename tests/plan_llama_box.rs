//! End to end through the real llama-box driver: GGUF header fixtures and cluster JSON in,
//! deployment plan out (hard cases 1, 3, 12, 16, 25; CPU-only and partial offload).
#![cfg(feature = "llama-box")]

mod plan_support;

use inferkit::{Error, PlacementMode, PlacementOptions, PlacementStrategy, PlanOptions};
use plan_support::*;
use serde_json::json;

const QWEN_05B: &str = "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf";
const LLAMA_1B_F16: &str = "tests/fixtures/gguf/llama-3.2-1b-F16.header.gguf";
const GEMMA_2B_F16: &str = "tests/fixtures/gguf/gemma-2-2b-F16.header.gguf";
const DEEPSEEK_V3_Q8: &str = "benches/fixtures/deepseek-v3-Q8_0.header.gguf";

fn worker(name: &str, ram_gib: u64, devices: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "os": "linux", "arch": "amd64", "cpu_cores": 32,
           "ram": {"total": ram_gib * GIB, "used": 4 * GIB}, "devices": devices})
}

fn nvidia(index: u32, gib: u64, used_mib: u64) -> serde_json::Value {
    json!({"index": index, "vendor": "nvidia", "name": format!("NVIDIA {gib} GB"),
           "memory": {"total": gib * GIB, "used": used_mib << 20}, "compute_capability": "8.9"})
}

/// `workers` servers of `gpus` × 80 GB each, idle.
fn servers(workers: usize, gpus: u32) -> inferkit::Cluster {
    let list: Vec<_> = (0..workers)
        .map(|w| {
            worker(
                &format!("srv-{w}"),
                2048,
                (0..gpus).map(|i| nvidia(i, 80, 4)).collect(),
            )
        })
        .collect();
    cluster_json(json!({ "workers": list }))
}

#[test]
fn a_small_model_takes_one_pinned_gpu_with_every_layer() {
    let cluster = example_cluster("laptop");
    let options = PlanOptions::default();
    let plan = plan_model(QWEN_05B, &cluster, &options, |_| {}).unwrap();
    assert_eq!(plan.backend, "llama-box");
    assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
    assert_eq!(plan.placement.offload_layers, plan.placement.total_layers);
    assert_within_allocatable(&plan, &cluster, &options);
    let main = main_process(&plan);
    assert_eq!(main.program, "llama-box");
    assert_eq!(
        main.env["CUDA_VISIBLE_DEVICES"], "0",
        "hard case 25: device pinned"
    );
    assert_eq!(flag(&main.args, "--port"), Some("40000"));
    let layers = plan.placement.total_layers.unwrap().to_string();
    assert_eq!(flag(&main.args, "--gpu-layers"), Some(layers.as_str()));
}

#[test]
fn cpu_only_workers_launch_with_gpu_layers_0() {
    let cluster = cluster_json(json!({"workers": [worker("cpu-box", 64, json!([]))]}));
    let plan = plan_model(QWEN_05B, &cluster, &PlanOptions::default(), |_| {}).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::CpuOnly);
    assert!(plan.placement.workers[0].devices.is_empty());
    assert!(plan.placement.workers[0].ram > 0);
    assert_eq!(flag(&main_process(&plan).args, "--gpu-layers"), Some("0"));
}

#[test]
fn a_gpu_too_small_for_the_model_gets_the_layers_that_fit() {
    // Llama-3.2-1B F16 needs about 3.9 GiB on one GPU; this one offers 3 GiB − 1 GiB reserve.
    let cluster = cluster_json(json!({"workers": [worker("small", 32, json!([nvidia(0, 3, 0)]))]}));
    let options = PlanOptions::default();
    let plan = plan_model(LLAMA_1B_F16, &cluster, &options, |_| {}).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::CpuOffload);
    let (on, total) = (
        plan.placement.offload_layers.unwrap(),
        plan.placement.total_layers.unwrap(),
    );
    assert!(0 < on && on < total, "{on}/{total}");
    assert_within_allocatable(&plan, &cluster, &options);
    assert_eq!(
        flag(&main_process(&plan).args, "--gpu-layers"),
        Some(on.to_string().as_str())
    );

    // With CPU offloading off, nothing fits, and the refusal carries numbers.
    let err = plan_model(LLAMA_1B_F16, &cluster, &options, |s| {
        s.cpu_offloading = Some(false)
    })
    .unwrap_err();
    let Error::NoPlacement {
        reason, rejected, ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("small:0 (NVIDIA 3 GB, 2.00 GiB allocatable)"),
        "{reason}"
    );
    assert!(
        rejected
            .iter()
            .any(|r| r.reason.contains("2.00 GiB available")),
        "{rejected:?}"
    );
}

#[test]
fn hard_case_1_deepseek_v3_q8_spans_two_servers_without_overclaiming_any_gpu() {
    let cluster = servers(2, 8);
    let options = PlanOptions::default();
    let plan = plan_model(DEEPSEEK_V3_Q8, &cluster, &options, |_| {}).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiWorker);
    assert_within_allocatable(&plan, &cluster, &options);
    let claimed: u64 = plan
        .placement
        .workers
        .iter()
        .flat_map(|w| &w.devices)
        .map(|d| d.vram)
        .sum();
    assert!(
        claimed > 664 * GIB,
        "all 664 GiB of weights are on GPUs: {claimed}"
    );

    // One RPC server per remote GPU, on consecutive ports, each pinned, started first.
    let rpc: Vec<_> = plan
        .processes
        .iter()
        .filter(|p| {
            p.role
                .is_subordinate(inferkit::llama_box::llamacpp::RPC_SERVER)
        })
        .collect();
    assert!(
        !rpc.is_empty() && rpc.len() <= 8,
        "{} RPC servers",
        rpc.len()
    );
    for (i, server) in rpc.iter().enumerate() {
        assert_eq!(
            flag(&server.args, "--rpc-server-port"),
            Some((40001 + i).to_string().as_str())
        );
        assert_eq!(server.env["CUDA_VISIBLE_DEVICES"].split(',').count(), 1);
    }
    let main = main_process(&plan);
    assert_eq!(
        flag(&main.args, "--rpc").unwrap().split(',').count(),
        rpc.len()
    );
}

#[test]
fn hard_case_12_deepseek_over_eight_small_workers_is_found_greedily() {
    // GPUStack needed 21 minutes for DeepSeek-R1 over 8 workers × 2 GPUs before its fix.
    // 664 GiB needs more than GPUStack's 8 RPC servers next to a 2-GPU main worker.
    let cluster = servers(8, 2);
    let err = plan_model(DEEPSEEK_V3_Q8, &cluster, &PlanOptions::default(), |s| {
        s.cpu_offloading = Some(false)
    })
    .unwrap_err();
    let Error::NoPlacement { explanation, .. } = err else {
        panic!("{err:?}")
    };
    let stopped = "several workers: stopped at 8 remote devices (max_remote_devices)";
    assert!(explanation.iter().any(|l| l == stopped), "{explanation:#?}");

    let options = {
        let mut plan_options = PlanOptions::default();
        plan_options.placement = {
            let mut placement_options = PlacementOptions::default();
            placement_options.max_remote_devices = 14;
            placement_options
        };
        plan_options
    };
    let started = std::time::Instant::now();
    let plan = plan_model(DEEPSEEK_V3_Q8, &cluster, &options, |_| {}).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiWorker);
    assert_within_allocatable(&plan, &cluster, &options);
    // Not a timing test (benches/placement.rs measures); a guard against combinatorial search.
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn hard_case_3_manual_split_follows_free_memory_after_an_unknown_process() {
    // ws-3090-a:0 carries a 9.5 GiB process the platform does not know about.
    let cluster = example_cluster("mixed-4090-3090");
    let options = PlanOptions::default();
    let plan = plan_model(LLAMA_1B_F16, &cluster, &options, |s| {
        s.device_selector = vec![
            "ws-3090-a:cuda:0".parse().unwrap(),
            "ws-3090-a:cuda:1".parse().unwrap(),
        ];
    })
    .unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiDevice);
    assert_within_allocatable(&plan, &cluster, &options);
    let devices = &plan.placement.workers[0].devices;
    assert_eq!(
        devices[0].allocatable,
        24576 * (1 << 20) - (9 * GIB + 512 * (1 << 20)) - GIB
    );
    let layers: Vec<u32> = plan.estimate.devices.iter().map(|d| d.layers).collect();
    assert!(
        layers[0] < layers[1],
        "the busy GPU gets fewer layers: {layers:?}"
    );
    let split = flag(&main_process(&plan).args, "--tensor-split").unwrap();
    assert_eq!(split.split(',').count(), 2);
}

#[test]
fn hard_case_16_a_gguf_file_never_gets_a_vllm_launch_unless_vllm_is_asked_for() {
    let cluster = example_cluster("h100x8");
    let plan = plan_model(QWEN_05B, &cluster, &PlanOptions::default(), |_| {}).unwrap();
    assert!(plan.processes.iter().all(|p| p.program == "llama-box"));
    // vLLM named explicitly: either vLLM plans it all, or it refuses with its reason.
    match plan_model(QWEN_05B, &cluster, &PlanOptions::default(), |s| {
        s.backend = Some("vllm".into())
    }) {
        Ok(plan) => {
            assert_eq!(plan.backend, "vllm");
            assert!(plan.processes.iter().all(|p| p.program.contains("vllm")));
        }
        Err(Error::Unsupported { reason }) => {
            assert!(reason.starts_with("vllm cannot serve"), "{reason}")
        }
        Err(other) => panic!("{other:?}"),
    }
}

#[test]
fn hard_case_25_binpack_shares_a_busy_gpu_spread_takes_an_idle_one() {
    // GPUs 0-1 of dgx-01 run a vLLM instance claiming 90% of each.
    let cluster = example_cluster("h100x8");
    let spread = plan_model(QWEN_05B, &cluster, &PlanOptions::default(), |_| {}).unwrap();
    assert_eq!(planned_indices(&spread, "dgx-01"), vec![2]);
    let binpack = {
        let mut plan_options = PlanOptions::default();
        plan_options.placement = {
            let mut placement_options = PlacementOptions::default();
            placement_options.strategy = PlacementStrategy::Binpack;
            placement_options
        };
        plan_options
    };
    let packed = plan_model(QWEN_05B, &cluster, &binpack, |_| {}).unwrap();
    assert_eq!(planned_indices(&packed, "dgx-01"), vec![0]);
    assert_within_allocatable(&packed, &cluster, &binpack);
    assert_eq!(main_process(&packed).env["CUDA_VISIBLE_DEVICES"], "0");
}

#[test]
fn nothing_fits_on_a_laptop_and_the_error_serialises_with_its_reasons() {
    let cluster = example_cluster("laptop");
    let err = plan_model(DEEPSEEK_V3_Q8, &cluster, &PlanOptions::default(), |_| {}).unwrap_err();
    let json = serde_json::to_value(&err).unwrap();
    assert_eq!(json["kind"], "no_placement");
    let rejected = json["rejected"].as_array().unwrap();
    assert!(
        rejected
            .iter()
            .any(|r| r["reason"].as_str().unwrap().contains("GiB")),
        "{json:#}"
    );
    assert!(
        json["explanation"][0]
            .as_str()
            .unwrap()
            .starts_with("backend llama-box")
    );
}

#[test]
fn the_thousand_worker_fleet_places_small_and_deepseek_class_models() {
    let fleet = example_cluster("fleet-1000x8");
    let options = PlanOptions::default();
    let small = plan_model(QWEN_05B, &fleet, &options, |_| {}).unwrap();
    assert_eq!(small.placement.mode, PlacementMode::SingleDevice);
    assert_within_allocatable(&small, &fleet, &options);
    // Spread: an idle worker (no allocations) is preferred.
    let chosen = fleet.worker(&small.placement.workers[0].name).unwrap();
    assert!(chosen.allocations.is_empty());

    let big = plan_model(DEEPSEEK_V3_Q8, &fleet, &options, |_| {}).unwrap();
    assert_eq!(big.placement.mode, PlacementMode::MultiWorker);
    assert_within_allocatable(&big, &fleet, &options);
    // The refusals are summarised per device class, not listed per GPU.
    assert!(big.rejected.len() < 40, "{} rejections", big.rejected.len());
}

/// NVIDIA's captured MIG node (seven 1g.5gb instances of an A100 under GPU Feature Discovery's
/// single strategy, `probe/tests/fixtures/kubernetes`): a model that fits one instance takes
/// one; one that needs two is not split over a node's instances (a CUDA process enumerates one
/// MIG instance), and across two such nodes every process holds one instance.
#[cfg(feature = "probe")]
#[test]
fn a_process_gets_one_mig_instance_of_a_gpu_feature_discovery_node() {
    let fixture = repo("probe/tests/fixtures/kubernetes/nodes-gfd-a100-mig-single.json");
    let node = inferkit::probe::kubernetes::load(&fixture, None)
        .unwrap()
        .cluster;
    let options = PlanOptions::default();
    let plan = plan_model(QWEN_05B, &node, &options, |_| {}).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
    assert_eq!(main_process(&plan).env["CUDA_VISIBLE_DEVICES"].len(), 1);

    let no_offload = |spec: &mut inferkit::ModelSpec| spec.cpu_offloading = Some(false);
    let err = plan_model(GEMMA_2B_F16, &node, &options, no_offload).unwrap_err();
    let Error::NoPlacement { rejected, .. } = err else {
        panic!("{err:?}")
    };
    let mig: Vec<String> = rejected
        .iter()
        .filter(|r| {
            r.reason
                .contains("CUDA enumerates one MIG instance per process")
        })
        .map(|r| r.describe_candidate())
        .collect();
    assert_eq!(mig, ["dgx-a100-mig-single"], "{rejected:?}");

    let mut two = node.clone();
    let mut second = two.workers[0].clone();
    second.name = format!("{}-2", second.name);
    two.workers.push(second);
    let plan = plan_model(GEMMA_2B_F16, &two, &options, no_offload).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiWorker);
    assert_within_allocatable(&plan, &two, &options);
    for process in &plan.processes {
        let visible = &process.env["CUDA_VISIBLE_DEVICES"];
        assert!(
            !visible.contains(','),
            "{}: {visible}",
            process.command_line()
        );
    }
}
