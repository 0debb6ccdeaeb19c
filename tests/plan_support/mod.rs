//! Shared helpers of the end-to-end plan tests: fixture paths, example clusters, and the
//! invariant every plan must keep.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use inferkit::placement::device_allocatable;
use inferkit::{Cluster, DeploymentPlan, ModelSpec, PlanOptions, ProcessRole, Result};

pub const GIB: u64 = 1 << 30;

/// A path relative to the repository root.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One of `examples/clusters/*.json`.
pub fn example_cluster(name: &str) -> Cluster {
    Cluster::from_json_file(&repo(&format!("examples/clusters/{name}.json"))).unwrap()
}

/// A cluster from inline JSON in the cluster format.
pub fn cluster_json(json: serde_json::Value) -> Cluster {
    serde_json::from_value(json).unwrap()
}

/// Plans `model` (a path relative to the repository root) on `cluster` with the default
/// registry, after `edit` adjusts the spec.
pub fn plan_model(
    model: &str,
    cluster: &Cluster,
    options: &PlanOptions,
    edit: impl FnOnce(&mut ModelSpec),
) -> Result<DeploymentPlan> {
    let mut spec = ModelSpec::local(repo(model));
    edit(&mut spec);
    inferkit::plan(&inferkit::default_registry(), &spec, cluster, options)
}

/// Every device claim is within the allocatable memory recomputed from the cluster (hard
/// case 1), and the plan's record of allocatable memory is that number.
pub fn assert_within_allocatable(plan: &DeploymentPlan, cluster: &Cluster, options: &PlanOptions) {
    let registry = inferkit::default_registry();
    let backend = registry
        .get(&plan.backend)
        .expect("planned backend is registered");
    let reserve = options.placement.device_reserve_for(backend.capabilities());
    for worker in &plan.placement.workers {
        let inventory = cluster.worker(&worker.name).expect("planned worker exists");
        for claim in &worker.devices {
            let device = inventory
                .device(claim.index)
                .expect("planned device exists");
            let allocatable = device_allocatable(inventory, device, reserve);
            assert!(
                claim.vram <= allocatable,
                "{}:{} claims {} > {allocatable} allocatable",
                worker.name,
                claim.index,
                claim.vram
            );
            assert_eq!(claim.allocatable, allocatable);
        }
    }
}

/// The main process (always last).
pub fn main_process(plan: &DeploymentPlan) -> &inferkit::LaunchSpec {
    let main = plan.processes.last().expect("a process");
    assert_eq!(main.role, ProcessRole::Main);
    main
}

/// The value after `flag` in `args`.
pub fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Device indices of `worker` in the plan.
pub fn planned_indices(plan: &DeploymentPlan, worker: &str) -> Vec<u32> {
    plan.placement
        .workers
        .iter()
        .filter(|w| w.name == worker)
        .flat_map(|w| w.devices.iter().map(|d| d.index))
        .collect()
}
