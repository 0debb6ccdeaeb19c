//! Hostile cluster JSON through `plan()` with the default registry and real model fixtures:
//! memory sizes of 0 and near `u64::MAX`, used above total, allocations larger than the device,
//! duplicate worker names and device indices, workers with no devices, unknown vendors, and
//! huge reserves; and, among the models, a Hugging Face directory whose header-only shards
//! together declare more than `u64::MAX` bytes. A plan never panics and never claims more than
//! is allocatable; a refusal is a typed error.
#![cfg(all(feature = "llama-box", feature = "vllm", feature = "mindie"))]

mod plan_support;

use inferkit::placement::{device_allocatable, host_allocatable};
use inferkit::{
    Cluster, DeploymentPlan, Error, PlacementOptions, PlacementStrategy, PlanOptions, Vendor,
    default_registry,
};
use plan_support::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::LazyLock;

/// A byte count from the edges a hostile or broken inventory produces, and realistic sizes.
fn bytes() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1 << 63),
        (0u64..=96).prop_map(|gib| gib * GIB),
        any::<u64>(),
    ]
}

fn vendor() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["nvidia", "amd", "ascend", "apple", "cambricon"])
}

fn device() -> impl Strategy<Value = Value> {
    (
        0u32..4,
        vendor(),
        bytes(),
        bytes(),
        prop::option::of("[0-9a-z.]{0,5}"),
    )
        .prop_map(|(index, vendor, total, used, cc)| {
            let name = match vendor {
                "ascend" => "Ascend910B3",
                _ => "Some Accelerator",
            };
            json!({"index": index, "vendor": vendor, "name": name,
                   "memory": {"total": total, "used": used}, "compute_capability": cc})
        })
}

fn worker() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["w0", "w1", "w2"]),
        bytes(),
        bytes(),
        prop::collection::vec(device(), 0..4),
        prop::collection::vec((0u32..4, bytes(), bytes()), 0..3),
    )
        .prop_map(|(name, ram, ram_used, devices, allocations)| {
            let allocations: Vec<Value> = allocations
                .into_iter()
                .enumerate()
                .map(|(i, (index, device_bytes, ram))| {
                    json!({"name": format!("other-{i}"),
                           "devices": {index.to_string(): device_bytes}, "ram": ram})
                })
                .collect();
            json!({"name": name, "os": "linux", "arch": "amd64", "cpu_cores": 16,
                   "ram": {"total": ram, "used": ram_used},
                   "devices": devices, "allocations": allocations})
        })
}

/// GGUF (llama-box), a Hugging Face directory (vLLM or MindIE by vendor), and speech (vox-box).
const MODELS: [&str; 3] = [
    "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
    "tests/fixtures/hf/Llama-3.1-8B-Instruct",
    "tests/fixtures/vox-box/faster-whisper-tiny.en",
];

/// Llama-3.1-8B's config over sixteen header-only shards of 2^60 bytes each: 2^64 bytes in
/// all, one more than `u64` holds. Each shard is valid on its own; the totals saturate.
static HUGE_SHARDS: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo("tests/fixtures/hf/Llama-3.1-8B-Instruct/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let elements: u64 = 1 << 59;
    let mut weight_map = serde_json::Map::new();
    for i in 0..16 {
        let file = format!("model-{:05}-of-00016.safetensors", i + 1);
        let tensor = format!("model.layers.{i}.mlp.down_proj.weight");
        let header = json!({ &tensor: {
            "dtype": "BF16", "shape": [elements], "data_offsets": [0u64, elements * 2]} })
        .to_string();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        std::fs::write(dir.path().join(&file), bytes).unwrap();
        weight_map.insert(tensor, file.into());
    }
    let index = json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    dir
});

/// The model `index` of [`MODELS`], or past them the directory of [`HUGE_SHARDS`].
fn model_path(index: usize) -> String {
    match MODELS.get(index) {
        Some(model) => model.to_string(),
        None => HUGE_SHARDS.path().display().to_string(),
    }
}

/// Every device claim fits the device's allocatable memory, and the main worker's RAM holds
/// the host claim plus, on unified memory (Apple), the device claims. (The shared
/// `assert_within_allocatable` also expects the plan's recorded allocatable to equal
/// `device_allocatable`, which does not hold on unified memory: placement caps those devices by
/// the host allocatable with the RAM reserve, `device_allocatable` with the device reserve.)
fn assert_never_overclaims(
    plan: &DeploymentPlan,
    cluster: &Cluster,
    options: &PlanOptions,
) -> Result<(), TestCaseError> {
    let registry = default_registry();
    let backend = registry
        .get(&plan.backend)
        .expect("planned backend is registered");
    let reserve = options.placement.device_reserve_for(backend.capabilities());
    let main = &plan.placement.workers[0];
    let mut unified_claims = 0u64;
    for worker in &plan.placement.workers {
        let inventory = cluster.worker(&worker.name).expect("planned worker exists");
        let unified = inventory.devices.iter().any(|d| d.vendor == Vendor::Apple);
        for claim in &worker.devices {
            let device = inventory
                .device(claim.index)
                .expect("planned device exists");
            prop_assert!(claim.vram <= claim.allocatable);
            prop_assert!(claim.vram <= device_allocatable(inventory, device, reserve));
            if unified && worker.name == main.name {
                unified_claims = unified_claims.saturating_add(claim.vram);
            }
        }
    }
    let inventory = cluster.worker(&main.name).expect("planned worker exists");
    prop_assert!(
        main.ram.saturating_add(unified_claims)
            <= host_allocatable(inventory, options.placement.ram_reserve)
    );
    Ok(())
}

fn check(
    model: &str,
    cluster: &Cluster,
    options: &PlanOptions,
    distributed: bool,
) -> Result<(), TestCaseError> {
    let result = plan_model(model, cluster, options, |spec| {
        spec.distributed_inference_across_workers = Some(distributed);
    });
    match result {
        Ok(plan) => assert_never_overclaims(&plan, cluster, options)?,
        Err(Error::NoPlacement { rejected, .. }) => prop_assert!(!rejected.is_empty()),
        Err(Error::InvalidParameter { name, reason }) => {
            prop_assert!(!name.is_empty() && !reason.is_empty());
        }
        Err(Error::Unsupported { reason }) => prop_assert!(!reason.is_empty()),
        Err(Error::DoesNotFit { reason, .. }) => prop_assert!(!reason.is_empty()),
        Err(other) => prop_assert!(false, "{model}: unexpected error {other:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_clusters_plan_or_refuse_without_panicking(
        workers in prop::collection::vec(worker(), 0..4),
        model in 0..=MODELS.len(),
        device_reserve in bytes(),
        ram_reserve in bytes(),
        binpack in any::<bool>(),
        distributed in any::<bool>(),
    ) {
        let cluster: Cluster = serde_json::from_value(json!({ "workers": workers })).unwrap();
        let options = {
let mut plan_options = PlanOptions::default();
plan_options.placement = {
let mut placement_options = PlacementOptions::default();
placement_options.strategy = if binpack { PlacementStrategy::Binpack } else { PlacementStrategy::Spread };
placement_options.device_reserve = device_reserve;
placement_options.ram_reserve = ram_reserve;
placement_options
};
plan_options
};
        check(&model_path(model), &cluster, &options, distributed)?;
    }
}

/// A device that reports used above total, an allocation larger than the device and a
/// reserve near `u64::MAX` leave nothing allocatable: the plan is refused, not wrapped round.
#[test]
fn saturated_inventory_numbers_refuse_rather_than_wrap() {
    let cluster: Cluster = serde_json::from_value(json!({"workers": [{
        "name": "w0", "os": "linux", "arch": "amd64", "cpu_cores": 16,
        "ram": {"total": u64::MAX, "used": 0},
        "devices": [
            {"index": 0, "vendor": "nvidia", "name": "A", "memory": {"total": 80 * GIB, "used": u64::MAX}},
            {"index": 1, "vendor": "nvidia", "name": "A", "memory": {"total": 80 * GIB, "used": 0}}],
        "allocations": [{"name": "x", "devices": {"1": u64::MAX}, "ram": u64::MAX}]}]}))
    .unwrap();
    let options = PlanOptions::default();
    let err = plan_model(MODELS[0], &cluster, &options, |_| {}).unwrap_err();
    assert!(matches!(err, Error::NoPlacement { .. }), "{err:?}");
}

/// The huge shards on GPUs with room for any real model: vLLM (NVIDIA) and MindIE (Ascend)
/// refuse, naming the weights, instead of overflowing while they add them up.
#[test]
fn shards_past_u64_are_refused_by_every_hf_backend() {
    for (vendor, name) in [
        ("nvidia", "NVIDIA H100 80GB HBM3"),
        ("ascend", "Ascend910B3"),
    ] {
        let cluster: Cluster = serde_json::from_value(json!({"workers": [{
            "name": "w0", "os": "linux", "arch": "amd64", "cpu_cores": 16,
            "ram": {"total": 512 * GIB, "used": 0},
            "devices": (0..8).map(|i| json!({"index": i, "vendor": vendor, "name": name,
                "memory": {"total": 80 * GIB, "used": 0}})).collect::<Vec<_>>()}]}))
        .unwrap();
        let err = plan_model(
            &model_path(MODELS.len()),
            &cluster,
            &PlanOptions::default(),
            |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::NoPlacement { .. }),
            "{vendor}: {err:?}"
        );
    }
}
