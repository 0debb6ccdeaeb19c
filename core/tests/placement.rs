//! Placement against a mock backend with an exact memory model: the hard cases of
//! `hard-cases.md` that are placement logic (rows 1-3, 8, 9/11, 12, 19, 25), manual selection,
//! offload, CPU only, strategies and determinism.

mod placement_support;

use inferkit_core::placement::{device_allocatable, verify_claims};
use inferkit_core::{
    Allocation, Assignment, Backend, Capabilities, Cluster, Components, DeploymentPlan,
    DeviceEstimate, Error, EstimateRequest, FitRequest, LaunchSpec, Layout, ModelFacts, ModelSpec,
    PlacementMode, PlacementOptions, PlacementStrategy, PlanOptions, Prepared, ProcessRole,
    Registry, ResourceEstimate, ResourceEstimator, Selection, Vendor, plan_with_facts,
};
use placement_support::*;

fn plan_on(
    backend: &MockBackend,
    cluster: &Cluster,
    spec: &ModelSpec,
    options: &PlanOptions,
) -> inferkit_core::Result<DeploymentPlan> {
    let registry = Registry::new().with(backend.clone());
    let name = match &spec.source {
        inferkit_core::ModelSource::Huggingface {
            filename: Some(f), ..
        } => f.clone(),
        _ => spec.name.clone(),
    };
    plan_with_facts(&registry, &facts(&name), spec, cluster, options)
}

/// Every device claim of `plan` is within what the cluster allows, recomputed from scratch.
fn assert_no_overclaim(plan: &DeploymentPlan, cluster: &Cluster, options: &PlanOptions) {
    for worker in &plan.placement.workers {
        let inventory = cluster.worker(&worker.name).unwrap();
        for claim in &worker.devices {
            let device = inventory.device(claim.index).unwrap();
            let allocatable =
                device_allocatable(inventory, device, options.placement.device_reserve);
            assert!(
                claim.vram <= allocatable,
                "{}:{} claimed {} > allocatable {allocatable}",
                worker.name,
                claim.index,
                claim.vram
            );
            assert_eq!(claim.allocatable, allocatable);
        }
    }
}

fn devices_of(plan: &DeploymentPlan) -> Vec<(String, u32)> {
    plan.placement
        .workers
        .iter()
        .flat_map(|w| w.devices.iter().map(move |d| (w.name.clone(), d.index)))
        .collect()
}

fn rejected_text(plan_or_error: &[inferkit_core::Rejection]) -> String {
    plan_or_error
        .iter()
        .map(|r| format!("{} => {}\n", r.describe_candidate(), r.reason))
        .collect()
}

// ---- hard case 1: no device is ever over-claimed ---------------------------------------------

#[test]
fn hard_case_1_deepseek_class_model_over_two_8x80g_workers_never_overclaims() {
    // ~700 GiB of weights: more than one 8×80G worker, less than two.
    let backend = MockBackend::llama(MockModel::layered(700));
    let mut workers = vec![nvidia_worker("a", 8, 80), nvidia_worker("b", 8, 80)];
    workers[0].devices[3].memory.used = 10 * GIB; // something else runs there
    let cluster = cluster(workers);
    let options = PlanOptions::default();
    let plan = plan_on(&backend, &cluster, &spec("DeepSeek-R1-Q8_0.gguf"), &options).unwrap();

    assert_eq!(plan.placement.mode, PlacementMode::MultiWorker);
    assert_no_overclaim(&plan, &cluster, &options);
    let claimed: u64 = plan
        .placement
        .workers
        .iter()
        .flat_map(|w| &w.devices)
        .map(|d| d.vram)
        .sum();
    assert!(
        claimed >= backend.model.weights(),
        "all weights are on devices"
    );
    // Main worker b (most free memory) with its 8 GPUs, plus remote devices of a, each an RPC
    // server on its own port, started before the main process.
    assert_eq!(plan.placement.workers[0].name, "b");
    let rpc: Vec<_> = plan
        .processes
        .iter()
        .filter(|p| p.role.is_subordinate("rpc_server"))
        .collect();
    assert!(!rpc.is_empty() && rpc.len() <= 8);
    assert_eq!(rpc[0].args, ["--port", "40001"]);
    assert_eq!(plan.processes.last().unwrap().role, ProcessRole::Main);
    // Remote devices are taken largest free first: the busy a:3 comes after a's seven others.
    let remote: Vec<u32> = devices_of(&plan)
        .into_iter()
        .filter(|(w, _)| w == "a")
        .map(|(_, i)| i)
        .collect();
    assert_eq!(remote.len(), rpc.len());
    assert!(remote.len() == 8 || !remote.contains(&3), "{remote:?}");
    assert_eq!(remote[0], 0, "ties between free GPUs go to the lower index");
}

#[test]
fn hard_case_1_final_check_sums_claims_per_device_from_scratch() {
    let cluster = cluster(vec![nvidia_worker("a", 2, 24)]);
    let device =
        |claim: u64| DeviceEstimate::new(device_id("a", 0), "gpu0", Components::default(), claim);
    let estimate = |devices| ResourceEstimate::new(Layout::Single, devices);
    // 23 GiB allocatable on a:0 (24 − 1 GiB reserve).
    assert!(
        verify_claims(
            &cluster,
            &estimate(vec![device(23 * GIB)]),
            "a",
            GIB,
            2 * GIB
        )
        .is_ok()
    );
    // Two entries for one device, each under the limit, over it together.
    let twice = estimate(vec![device(12 * GIB), device(12 * GIB)]);
    let err = verify_claims(&cluster, &twice, "a", GIB, 2 * GIB).unwrap_err();
    match err {
        Error::DoesNotFit {
            needed,
            available,
            reason,
        } => {
            assert_eq!((needed, available), (24 * GIB, 23 * GIB));
            assert!(reason.contains("final check"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

// ---- hard case 2: a reserve per device -------------------------------------------------------

#[test]
fn hard_case_2_reserve_per_device_refuses_a_split_that_only_fits_without_margin() {
    // 46 GiB of weights on 2×24 GiB: each GPU needs 23.5 GiB (31 layers + compute).
    let backend = MockBackend::llama(MockModel::layered(46));
    let cluster = cluster(vec![nvidia_worker("w", 2, 24)]);
    let mut spec = spec("Llama-3-70B-Q5_K_S.gguf");

    let no_reserve = {
        let mut plan_options = PlanOptions::default();
        plan_options.placement = {
            let mut placement_options = PlacementOptions::default();
            placement_options.device_reserve = 0;
            placement_options
        };
        plan_options
    };
    let plan = plan_on(&backend, &cluster, &spec, &no_reserve).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiDevice);

    let plan = plan_on(&backend, &cluster, &spec, &PlanOptions::default()).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::CpuOffload);
    assert!(plan.placement.offload_layers.unwrap() < plan.placement.total_layers.unwrap());
    assert_no_overclaim(&plan, &cluster, &PlanOptions::default());

    spec.cpu_offloading = Some(false);
    let err = plan_on(&backend, &cluster, &spec, &PlanOptions::default()).unwrap_err();
    let Error::NoPlacement { rejected, .. } = err else {
        panic!("{err:?}")
    };
    let text = rejected_text(&rejected);
    assert!(
        text.contains("w devices 0,1 (46.00 GiB allocatable in all)"),
        "{text}"
    );
    assert!(text.contains("23.00 GiB available"), "{text}");
    assert!(text.contains("CPU offloading is off"), "{text}");
}

/// A 46-layer model that fits neither worker without offloading: every option is refused, the
/// two-GPU worker's the largest.
fn refused_everywhere() -> (MockBackend, Cluster, ModelSpec) {
    let backend = MockBackend::llama(MockModel::layered(46));
    let cluster = cluster(vec![nvidia_worker("a", 1, 24), nvidia_worker("b", 2, 16)]);
    let mut spec = spec("m.gguf");
    spec.cpu_offloading = Some(false);
    spec.distributed_inference_across_workers = Some(false);
    (backend, cluster, spec)
}

/// The refusal's reason, after checking it names several rejected options.
fn refusal_reason(err: &Error) -> &str {
    let Error::NoPlacement {
        reason, rejected, ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(rejected.len() > 1, "{rejected:?}");
    reason
}

/// When nothing fits, the estimator explains the refusal of the largest group once (a note that
/// may cost a search of its own: llama-server's context offer), not for every group refused;
/// a placement that fits asks for no explanation.
#[test]
fn the_largest_refusal_is_explained_once() {
    let (backend, cluster, mut spec) = refused_everywhere();
    let options = PlanOptions::default();
    let err = plan_on(&backend, &cluster, &spec, &options).unwrap_err();
    let reason = refusal_reason(&err);
    assert!(backend.fit_count() > 1);
    assert_eq!(backend.refusal_count(), 1);
    assert!(
        reason.contains("the largest option, b devices 0,1")
            && reason.ends_with("; explained for [b:0 b:1] on b"),
        "{reason}"
    );

    spec.cpu_offloading = None;
    plan_on(&backend, &cluster, &spec, &options).expect("a plan with offloading");
    assert_eq!(backend.refusal_count(), 1);
}

#[test]
fn a_refusal_whose_explanation_fails_still_says_what_was_refused() {
    let (mut backend, cluster, spec) = refused_everywhere();
    backend.explaining_fails = true;
    let err = plan_on(&backend, &cluster, &spec, &PlanOptions::default()).unwrap_err();
    let reason = refusal_reason(&err);
    assert!(
        reason.contains("the largest option, b devices 0,1")
            && reason.contains("no further note")
            && reason.contains("the offer's estimate failed"),
        "{reason}"
    );
}

// ---- hard case 3: unclaimed measured usage ---------------------------------------------------

#[test]
fn hard_case_3_split_follows_free_memory_after_unclaimed_usage() {
    // A 4 GiB process the platform does not know about on GPU 0.
    let mut w = nvidia_worker("w", 2, 24);
    w.devices[0].memory.used = 4 * GIB;
    let cluster = cluster(vec![w]);
    let backend = MockBackend::llama(MockModel::layered(36));
    let options = PlanOptions::default();
    let plan = plan_on(&backend, &cluster, &spec("m.gguf"), &options).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiDevice);
    assert_no_overclaim(&plan, &cluster, &options);
    let devices = &plan.placement.workers[0].devices;
    let by_index = |i: u32| devices.iter().find(|d| d.index == i).unwrap();
    assert_eq!(by_index(0).allocatable, 19 * GIB);
    assert_eq!(by_index(1).allocatable, 23 * GIB);
    assert!(
        by_index(0).vram < by_index(1).vram,
        "the busier GPU gets fewer layers"
    );
}

#[test]
fn hard_case_3_existing_claims_count_until_the_instance_grows_into_them() {
    // An instance claimed 20 GiB but has only touched 2 GiB so far.
    let mut w = nvidia_worker("w", 1, 24);
    w.devices[0].memory.used = 2 * GIB;
    w.allocations.push(Allocation {
        name: "other-0".into(),
        devices: [("0".to_string(), 20 * GIB)].into(),
        ram: 0,
    });
    let cluster = cluster(vec![w]);
    let mut spec = spec("m.gguf");
    spec.cpu_offloading = Some(false);
    let backend = MockBackend::llama(MockModel::layered(4));
    let err = plan_on(&backend, &cluster, &spec, &PlanOptions::default()).unwrap_err();
    let Error::NoPlacement { rejected, .. } = err else {
        panic!("{err:?}")
    };
    assert!(rejected_text(&rejected).contains("w:0 (GPU 24G, 3.00 GiB allocatable)"));
}

// ---- hard case 8: vLLM claims a share of total memory -----------------------------------------

#[test]
fn hard_case_8_gpu_memory_utilization_share_decides_device_count() {
    let mut model = MockModel::tensor_parallel(3, 32);
    model.compute = (0.68 * GIB as f64) as u64;
    model.gmu = Some(0.2);
    let backend = MockBackend::vllm(model);
    let cluster = cluster(vec![nvidia_worker("w", 4, 16)]);
    let plan = plan_on(
        &backend,
        &cluster,
        &spec("Qwen2.5-1.5B"),
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiDevice);
    let devices = &plan.placement.workers[0].devices;
    assert_eq!(devices.len(), 2);
    for d in devices {
        assert_eq!(
            d.vram,
            (16.0 * GIB as f64 * 0.2) as u64,
            "claim is total × gmu"
        );
    }
    let text = rejected_text(&plan.rejected);
    assert!(text.contains("gpu-memory-utilization leaves"), "{text}");
    assert!(text.contains("3.20 GiB available"), "{text}");
}

#[test]
fn hard_case_8_a_device_whose_free_memory_is_below_its_share_is_skipped() {
    let mut model = MockModel::tensor_parallel(10, 32);
    model.gmu = Some(0.9);
    let backend = MockBackend::vllm(model);
    let mut w = nvidia_worker("w", 2, 24);
    w.devices[0].memory.used = 6 * GIB; // 17 GiB allocatable < 21.6 GiB share
    let cluster = cluster(vec![w]);
    let plan = plan_on(&backend, &cluster, &spec("m"), &PlanOptions::default()).unwrap();
    assert_eq!(devices_of(&plan), vec![("w".to_string(), 1)]);
}

// ---- hard cases 9 and 11: tensor parallel divides the heads ---------------------------------

#[test]
fn hard_case_9_11_tensor_parallel_size_skips_sizes_that_do_not_divide_heads() {
    // Qwen2-7B-like: 28 heads. Needs 3 GPUs by memory; 3 does not divide 28, so 4.
    let backend = MockBackend::vllm(MockModel::tensor_parallel(60, 28));
    let cluster = cluster(vec![nvidia_worker("w", 8, 24)]);
    let plan = plan_on(
        &backend,
        &cluster,
        &spec("Qwen2-7B"),
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.placement.workers[0].devices.len(), 4);
    assert!(matches!(
        plan.estimate.layout,
        Layout::Parallel {
            tensor_parallel: 4,
            ..
        }
    ));
    let text = rejected_text(&plan.rejected);
    assert!(
        text.contains(
            "tensor parallel 3 does not divide 28 attention heads; valid sizes: 1, 2, 4, 7, 14, 28"
        ),
        "{text}"
    );
}

// ---- hard case 12: no combinatorial blow-up --------------------------------------------------

#[test]
fn hard_case_12_many_small_gpu_workers_are_searched_greedily() {
    // DeepSeek-R1 over 8 workers × 2 GPUs: GPUStack took 21 minutes before its fix.
    let backend = MockBackend::llama(MockModel::layered(600));
    let workers = (0..8)
        .map(|i| nvidia_worker(&format!("w{i}"), 2, 80))
        .collect();
    let cluster = cluster(workers);
    let options = PlanOptions::default();
    let plan = plan_on(&backend, &cluster, &spec("DeepSeek-R1-Q6_K.gguf"), &options).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiWorker);
    assert_no_overclaim(&plan, &cluster, &options);
    assert!(backend.fit_count() <= 30, "{} fits", backend.fit_count());
}

#[test]
fn hard_case_12_a_thousand_workers_cost_a_few_dozen_fits() {
    let backend = MockBackend::llama(MockModel::layered(30));
    let workers: Vec<_> = (0..1000)
        .map(|i| {
            let mut w = nvidia_worker(&format!("w{i:04}"), 8, 80);
            for (d, device) in w.devices.iter_mut().enumerate() {
                device.memory.used = ((i * 7 + d * 13) % 70) as u64 * GIB;
            }
            w
        })
        .collect();
    let cluster = cluster(workers);
    let options = PlanOptions::default();
    let plan = plan_on(&backend, &cluster, &spec("m.gguf"), &options).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
    assert_no_overclaim(&plan, &cluster, &options);
    assert!(backend.fit_count() <= 30, "{} fits", backend.fit_count());
}

// ---- issue 18: placement is near-linear in devices per worker ------------------------------

/// A model of `layers` layers of 0.5 GiB, each device taking one beside its 0.25 GiB compute
/// buffer on the devices of [`wide_worker`].
fn many_layers(layers: u32) -> MockModel {
    MockModel {
        layers,
        layer: GIB / 2,
        output: GIB / 2,
        compute: GIB / 4,
        ..MockModel::layered(1)
    }
}

/// One worker with `gpus` devices of 2 GiB (1 GiB allocatable after the default reserve).
fn wide_worker(gpus: u32) -> Cluster {
    let devices = (0..gpus)
        .map(|i| gpu(i, Vendor::Nvidia, "GPU 2G", 2, 0))
        .collect();
    cluster(vec![worker("wide", 4096, devices)])
}

#[test]
fn a_thousand_devices_in_one_worker_take_logarithmically_many_fits() {
    // 600 layers need about 600 of the 1,024 devices: GPUStack's k = 2, 3, ... took ~600 fits
    // of up to 600 devices each (1,000 devices: 10 s).
    let backend = MockBackend::llama(many_layers(600));
    let options = PlanOptions::default();
    let wide = wide_worker(1024);
    let plan = plan_on(&backend, &wide, &spec("m.gguf"), &options).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiDevice);
    assert_no_overclaim(&plan, &wide, &options);
    assert!(backend.fit_count() <= 40, "{} fits", backend.fit_count());
    // Still the smallest count that fits: one device fewer does not.
    let used = devices_of(&plan).len() as u32;
    let narrower = wide_worker(used - 1);
    let fewer = plan_on(&backend, &narrower, &spec("m.gguf"), &options).unwrap();
    assert_ne!(fewer.placement.mode, PlacementMode::MultiDevice);
}

#[test]
fn partial_offload_over_a_thousand_devices_takes_logarithmically_many_fits() {
    let backend = MockBackend::llama(many_layers(1200));
    let options = PlanOptions::default();
    let wide = wide_worker(1024);
    let plan = plan_on(&backend, &wide, &spec("m.gguf"), &options).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::CpuOffload);
    assert_eq!(devices_of(&plan).len(), 1024);
    assert_no_overclaim(&plan, &wide, &options);
    assert!(backend.fit_count() <= 80, "{} fits", backend.fit_count());
}

#[test]
fn a_worker_listing_more_devices_than_any_node_has_is_refused_at_once() {
    let backend = MockBackend::llama(MockModel::layered(8));
    let huge = wide_worker(10_000);
    let err = plan_on(&backend, &huge, &spec("m.gguf"), &PlanOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
    assert!(
        text.contains("wide lists 10000 devices") && text.contains("1024"),
        "{text}"
    );
    assert_eq!(backend.fit_count(), 0);
}

// ---- hard case 19: devices the backend build cannot run --------------------------------------

#[test]
fn hard_case_19_devices_without_kernels_in_the_build_are_filtered_with_a_reason() {
    let mut blackwell = gpu(0, Vendor::Nvidia, "NVIDIA GeForce RTX 5070", 16, 0);
    blackwell.compute_capability = Some("12.0".into());
    let mut ampere = gpu(0, Vendor::Nvidia, "NVIDIA GeForce RTX 3060", 12, 0);
    ampere.compute_capability = Some("8.6".into());
    let cluster = cluster(vec![
        worker("new", 64, vec![blackwell]),
        worker("old", 64, vec![ampere]),
    ]);
    let mut backend = MockBackend::llama(MockModel::layered(8));
    backend.unsupported_cc = vec!["12.0".into()];
    let plan = plan_on(&backend, &cluster, &spec("m.gguf"), &PlanOptions::default()).unwrap();
    assert_eq!(devices_of(&plan), vec![("old".to_string(), 0)]);
    let text = rejected_text(&plan.rejected);
    assert!(
        text.contains("new:0 => this llama-box build has no kernels for compute capability 12.0"),
        "{text}"
    );
}

// ---- hard case 25: memory-based sharing, pinned devices, strategies -------------------------

fn shared_worker() -> Cluster {
    let mut w = nvidia_worker("w", 2, 80);
    w.devices[0].memory.used = 40 * GIB;
    w.allocations.push(Allocation {
        name: "qwen-vllm-0".into(),
        devices: [("0".to_string(), 40 * GIB)].into(),
        ram: 0,
    });
    cluster(vec![w])
}

#[test]
fn hard_case_25_spread_prefers_the_empty_gpu_binpack_shares_the_busy_one() {
    let backend = MockBackend::llama(MockModel::layered(20));
    let cluster = shared_worker();
    let spread = plan_on(&backend, &cluster, &spec("m.gguf"), &PlanOptions::default()).unwrap();
    assert_eq!(devices_of(&spread), vec![("w".to_string(), 1)]);
    let binpack = {
        let mut plan_options = PlanOptions::default();
        plan_options.placement = {
            let mut placement_options = PlacementOptions::default();
            placement_options.strategy = PlacementStrategy::Binpack;
            placement_options
        };
        plan_options
    };
    let packed = plan_on(&backend, &cluster, &spec("m.gguf"), &binpack).unwrap();
    assert_eq!(devices_of(&packed), vec![("w".to_string(), 0)]);
    // The device is pinned in the launch, so llama.cpp does not spread over every visible GPU.
    let main = packed.processes.last().unwrap();
    assert_eq!(main.env["CUDA_VISIBLE_DEVICES"], "0");
}

// ---- manual selection, offload, CPU only, determinism ----------------------------------------

#[test]
fn manual_selection_is_honoured_and_checked() {
    let backend = MockBackend::llama(MockModel::layered(20));
    let cluster = shared_worker();
    let mut spec = spec("m.gguf");
    spec.device_selector = vec![device_id("w", 0)];
    let plan = plan_on(&backend, &cluster, &spec, &PlanOptions::default()).unwrap();
    assert_eq!(devices_of(&plan), vec![("w".to_string(), 0)]);

    spec.device_selector = vec![device_id("w", 7)];
    let err = plan_on(&backend, &cluster, &spec, &PlanOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter { name, reason } if name == "device_selector" && reason.contains("w:7")),
        "{err:?}"
    );

    spec.device_selector = vec![device_id("nowhere", 0)];
    let err = plan_on(&backend, &cluster, &spec, &PlanOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("worker nowhere not found"),
        "{err}"
    );

    // Too small even with offload off: refused with numbers, never overcommitted.
    let big = MockBackend::llama(MockModel::layered(60));
    spec.device_selector = vec![device_id("w", 0)];
    spec.cpu_offloading = Some(false);
    let err = plan_on(&big, &cluster, &spec, &PlanOptions::default()).unwrap_err();
    let Error::NoPlacement { rejected, .. } = err else {
        panic!("{err:?}")
    };
    assert!(rejected_text(&rejected).contains("39.00 GiB available"));
}

#[test]
fn cpu_only_when_there_is_no_accelerator() {
    let cluster = cluster(vec![worker("laptop", 32, vec![])]);
    let backend = MockBackend::llama(MockModel::layered(4));
    let plan = plan_on(&backend, &cluster, &spec("m.gguf"), &PlanOptions::default()).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::CpuOnly);
    assert!(plan.placement.workers[0].devices.is_empty());
    assert!(plan.placement.workers[0].ram >= backend.model.weights());

    let vllm = MockBackend::vllm(MockModel::tensor_parallel(4, 32));
    let err = plan_on(&vllm, &cluster, &spec("m"), &PlanOptions::default()).unwrap_err();
    let Error::NoPlacement { rejected, .. } = err else {
        panic!("{err:?}")
    };
    assert!(rejected_text(&rejected).contains("vllm needs an accelerator"));
}

#[test]
fn ties_are_broken_by_worker_name_then_device_index() {
    let backend = MockBackend::llama(MockModel::layered(8));
    let cluster = cluster(vec![nvidia_worker("b", 2, 24), nvidia_worker("a", 2, 24)]);
    for _ in 0..3 {
        let plan = plan_on(&backend, &cluster, &spec("m.gguf"), &PlanOptions::default()).unwrap();
        assert_eq!(devices_of(&plan), vec![("a".to_string(), 0)]);
    }
}

#[test]
fn vllm_spans_whole_workers_through_ray_with_one_subordinate_per_worker() {
    let backend = MockBackend::vllm(MockModel::tensor_parallel(100, 32));
    let cluster = cluster(vec![nvidia_worker("a", 2, 40), nvidia_worker("b", 2, 40)]);
    let plan = plan_on(&backend, &cluster, &spec("m"), &PlanOptions::default()).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiWorker);
    assert_eq!(devices_of(&plan).len(), 4);
    let subordinates: Vec<_> = plan
        .processes
        .iter()
        .filter(|p| p.role != ProcessRole::Main)
        .collect();
    assert_eq!(subordinates.len(), 1);
    assert_eq!(subordinates[0].args, ["--port", "40001"]);
}

#[test]
fn plan_json_has_the_documented_shape() {
    let backend = MockBackend::llama(MockModel::layered(8));
    let cluster = cluster(vec![nvidia_worker("w", 1, 24)]);
    let plan = plan_on(&backend, &cluster, &spec("m.gguf"), &PlanOptions::default()).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["backend"], "llama-box");
    assert_eq!(json["placement"]["mode"], "single_device");
    assert_eq!(json["placement"]["offload_layers"], 62);
    assert_eq!(json["placement"]["workers"][0]["name"], "w");
    assert_eq!(json["placement"]["workers"][0]["devices"][0]["index"], 0);
    assert!(
        json["placement"]["workers"][0]["devices"][0]["vram"]
            .as_u64()
            .unwrap()
            > 8 * GIB
    );
    assert_eq!(json["processes"][0]["program"], "llama-box");
    assert_eq!(json["processes"][0]["args"][3], "40000");
    assert!(json["explanation"].as_array().unwrap().len() >= 3);
    assert!(json["rejected"].is_array());
    let back: DeploymentPlan = serde_json::from_value(json).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn workers_the_model_cannot_run_on_are_refused_before_their_devices() {
    let mut arm = worker("arm", 64, vec![]);
    arm.arch = "arm64".into();
    let amd = worker("x86", 32, vec![]);
    let cluster = cluster(vec![arm, amd]);
    let mut backend = MockBackend::llama(MockModel::layered(4));
    backend.model_arches = vec!["amd64".into()];
    let plan = plan_on(&backend, &cluster, &spec("m.gguf"), &PlanOptions::default()).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::CpuOnly);
    assert_eq!(plan.placement.workers[0].name, "x86");
    assert!(rejected_text(&plan.rejected).contains("arm => this model runs on amd64 only"));
}

/// A backend whose estimator ignores the devices' limits: placement must not trust it.
struct Overclaiming(MockBackend);

struct OverclaimingEstimator;

impl ResourceEstimator for OverclaimingEstimator {
    fn estimate(&self, request: &EstimateRequest) -> inferkit_core::Result<ResourceEstimate> {
        let devices = request
            .devices
            .iter()
            .map(|slot| {
                DeviceEstimate::new(
                    slot.id.clone(),
                    "gpu",
                    Components::default(),
                    slot.allocatable + 1,
                )
            })
            .collect();
        Ok(ResourceEstimate::new(Layout::Single, devices))
    }

    fn fit(&self, request: &FitRequest) -> inferkit_core::Result<ResourceEstimate> {
        self.estimate(&EstimateRequest {
            devices: request.devices.clone(),
            host: request.host.clone(),
            layout: Layout::Single,
        })
    }
}

impl Backend for Overclaiming {
    fn id(&self) -> &'static str {
        "vllm"
    }
    fn capabilities(&self) -> &Capabilities {
        self.0.capabilities()
    }
    fn select(&self, facts: &ModelFacts, spec: &ModelSpec) -> Selection {
        self.0.select(facts, spec)
    }
    fn prepare<'a>(
        &'a self,
        facts: &'a ModelFacts,
        spec: &'a ModelSpec,
    ) -> inferkit_core::Result<Box<dyn Prepared + 'a>> {
        Ok(Box::new(OverclaimingPrepared(self.0.prepare(facts, spec)?)))
    }
}

/// The mock's deployment with the over-claiming estimator in place of its own.
struct OverclaimingPrepared<'a>(Box<dyn Prepared + 'a>);

impl Prepared for OverclaimingPrepared<'_> {
    fn warnings(&self) -> &[String] {
        self.0.warnings()
    }
    fn estimator(&self) -> &dyn ResourceEstimator {
        &OverclaimingEstimator
    }
    fn launch(&self, assignment: &Assignment) -> inferkit_core::Result<Vec<LaunchSpec>> {
        self.0.launch(assignment)
    }
}

#[test]
fn hard_case_1_an_estimator_that_overclaims_is_never_trusted() {
    let backend = Overclaiming(MockBackend::vllm(MockModel::tensor_parallel(8, 32)));
    let cluster = cluster(vec![nvidia_worker("a", 4, 80), nvidia_worker("b", 4, 80)]);
    let registry = Registry::new().with(backend);
    let mut spec = spec("m");
    spec.distributed_inference_across_workers = Some(true);
    let err = plan_with_facts(
        &registry,
        &facts("m"),
        &spec,
        &cluster,
        &PlanOptions::default(),
    )
    .unwrap_err();
    let Error::NoPlacement { rejected, .. } = err else {
        panic!("{err:?}")
    };
    let text = rejected_text(&rejected);
    assert!(
        text.contains("a:0 (GPU 80G) is too small: needs 79.00 GiB, 79.00 GiB available"),
        "{text}"
    );
}

#[test]
fn duplicate_worker_names_or_device_indices_are_refused() {
    let backend = MockBackend::llama(MockModel::layered(4));
    let twins = cluster(vec![nvidia_worker("w", 1, 24), nvidia_worker("w", 1, 24)]);
    let err = plan_on(&backend, &twins, &spec("m.gguf"), &PlanOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter workers: two workers are named `w`"
    );
    let mut w = nvidia_worker("w", 2, 24);
    w.devices[1].index = 0;
    let err = plan_on(
        &backend,
        &cluster(vec![w]),
        &spec("m.gguf"),
        &PlanOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter devices: worker w has two devices with index 0"
    );
}

#[test]
fn unified_memory_is_not_booked_twice() {
    // Apple silicon: the GPU's memory is host RAM. 32 GiB, 20.25 GiB in use, 2 GiB reserved:
    // 9.75 GiB for device and host claims together.
    let mut mac = worker(
        "mac",
        32,
        vec![gpu(0, Vendor::Apple, "Apple M2 Max", 32, 0)],
    );
    mac.ram.used = 20 * GIB + GIB / 4;
    let cluster = cluster(vec![mac]);
    let options = PlanOptions::default();

    let small = MockBackend::llama(MockModel::layered(6));
    let plan = plan_on(&small, &cluster, &spec("m.gguf"), &options).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
    let worker = &plan.placement.workers[0];
    assert_eq!(worker.devices[0].allocatable, 9 * GIB + 3 * GIB / 4);
    assert!(worker.devices[0].vram + worker.ram <= 9 * GIB + 3 * GIB / 4);

    // 9.5 GiB on the GPU fits the GPU's share, but not with 0.5 GiB more of host RAM.
    let big = MockBackend::llama(MockModel::layered(9));
    let plan = plan_on(&big, &cluster, &spec("m.gguf"), &options).unwrap();
    assert_ne!(plan.placement.mode, PlacementMode::SingleDevice);
    let worker = &plan.placement.workers[0];
    let device = worker.devices.first().map_or(0, |d| d.vram);
    assert!(
        device + worker.ram <= 9 * GIB + 3 * GIB / 4,
        "{:?}",
        plan.placement
    );
}

#[test]
fn absurd_memory_sizes_do_not_overflow() {
    let mut w = nvidia_worker("w", 8, 80);
    for d in &mut w.devices {
        d.memory.total = u64::MAX;
    }
    w.ram.total = u64::MAX;
    let backend = MockBackend::llama(MockModel::layered(4));
    let mut spec = spec("m.gguf");
    spec.device_selector = vec![device_id("w", 0), device_id("w", 1)];
    let plan = plan_on(&backend, &cluster(vec![w]), &spec, &PlanOptions::default());
    assert_eq!(plan.unwrap().placement.mode, PlacementMode::MultiDevice);
}

// ---- MIG: one instance per process ------------------------------------------------------------

/// A node of seven 1g.5gb instances of an A100-SXM4-40GB, named as GPU Feature Discovery's
/// single strategy names them (`nvidia.com/gpu.product`).
fn mig_worker(name: &str) -> inferkit_core::WorkerInventory {
    let devices = (0..7)
        .map(|i| gpu(i, Vendor::Nvidia, "A100-SXM4-40GB-MIG-1g.5gb", 5, 0))
        .collect();
    worker(name, 512, devices)
}

/// A model larger than one instance is not split over a node's instances (one process would
/// hold them); across nodes, the main process holds one instance and every RPC server one.
#[test]
fn a_model_needing_several_mig_instances_never_gives_a_process_two() {
    let backend = MockBackend::llama(MockModel::layered(6));
    let mut spec = spec("m.gguf");
    spec.cpu_offloading = Some(false);
    let options = PlanOptions::default();
    let err = plan_on(&backend, &cluster(vec![mig_worker("a")]), &spec, &options).unwrap_err();
    let Error::NoPlacement { rejected, .. } = err else {
        panic!("{err:?}")
    };
    let text = rejected_text(&rejected);
    assert!(
        text.contains("a => several devices of one worker: their MIG instances are not grouped"),
        "{text}"
    );
    assert!(
        text.contains("CUDA enumerates one MIG instance per process"),
        "{text}"
    );

    let two = cluster(vec![mig_worker("a"), mig_worker("b")]);
    let plan = plan_on(&backend, &two, &spec, &options).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::MultiWorker);
    // Workers are listed main first.
    assert_eq!(
        plan.placement.workers[0].devices.len(),
        1,
        "{:?}",
        plan.placement
    );
    let rpc_servers = plan
        .processes
        .iter()
        .filter(|p| p.role != ProcessRole::Main)
        .count();
    let remote_devices: usize = plan.placement.workers[1..]
        .iter()
        .map(|w| w.devices.len())
        .sum();
    assert!(remote_devices >= 1);
    assert_eq!(rpc_servers, remote_devices, "one RPC server per instance");
    assert_no_overclaim(&plan, &two, &options);
}

/// A backend whose subordinate takes a whole worker (Ray) cannot use a node of instances for
/// a model larger than one; instances picked by hand are refused the same way.
#[test]
fn ray_workers_and_hand_picked_groups_of_mig_instances_are_refused_with_the_reason() {
    let backend = MockBackend::vllm(MockModel::tensor_parallel(6, 32));
    let two = cluster(vec![mig_worker("a"), mig_worker("b")]);
    let mut ray = spec("m");
    ray.distributed_inference_across_workers = Some(true);
    let err = plan_on(&backend, &two, &ray, &PlanOptions::default()).unwrap_err();
    let Error::NoPlacement { rejected, .. } = err else {
        panic!("{err:?}")
    };
    let text = rejected_text(&rejected);
    assert!(
        text.contains("a, b => several workers: one process would hold")
            && text.contains("one process would hold each worker's MIG instances"),
        "{text}"
    );

    let llama = MockBackend::llama(MockModel::layered(2));
    let mut picked = spec("m.gguf");
    picked.device_selector = vec![device_id("a", 0), device_id("a", 1)];
    picked.cpu_offloading = Some(false);
    let err = plan_on(&llama, &two, &picked, &PlanOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("one process on a would hold 2 devices, among them MIG instance"),
        "{err}"
    );
}
