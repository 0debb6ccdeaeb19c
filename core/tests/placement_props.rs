//! The placement invariant on random clusters: whatever the cluster and the model, a plan
//! never claims more of any device (or host) than is allocatable after existing allocations,
//! unclaimed usage and the reserve; and when no plan is made, the error lists why.

mod placement_support;

use inferkit_core::placement::{device_allocatable, host_allocatable};
use inferkit_core::{
    Allocation, Error, PlacementOptions, PlacementStrategy, PlanOptions, Registry, Vendor,
    WorkerInventory, plan_with_facts,
};
use placement_support::*;
use proptest::prelude::*;

/// One GPU: (total GiB, used GiB, claimed by an existing allocation GiB).
fn gpu_strategy() -> impl Strategy<Value = (u64, u64, u64)> {
    (1u64..=80).prop_flat_map(|total| (Just(total), 0..=total, 0..=total))
}

fn worker_strategy() -> impl Strategy<Value = (u64, u64, Vec<(u64, u64, u64)>)> {
    (
        4u64..=256,
        0u64..=8,
        prop::collection::vec(gpu_strategy(), 0..5),
    )
}

fn build_worker(
    i: usize,
    (ram, ram_used, gpus): (u64, u64, Vec<(u64, u64, u64)>),
) -> WorkerInventory {
    let devices = gpus
        .iter()
        .enumerate()
        .map(|(d, &(total, used, _))| {
            gpu(
                d as u32,
                Vendor::Nvidia,
                &format!("GPU {total}G"),
                total,
                used,
            )
        })
        .collect();
    let mut w = worker(&format!("w{i}"), ram, devices);
    w.ram.used = ram_used.min(ram) * GIB;
    let claims = gpus
        .iter()
        .enumerate()
        .filter(|(_, g)| g.2 > 0)
        .map(|(d, g)| (d.to_string(), g.2 * GIB))
        .collect();
    w.allocations.push(Allocation {
        name: format!("other-{i}"),
        devices: claims,
        ram: GIB,
    });
    w
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_plan_ever_overclaims(
        workers in prop::collection::vec(worker_strategy(), 1..6),
        weights_gib in 1u64..400,
        tensor_parallel in any::<bool>(),
        binpack in any::<bool>(),
        reserve_mib in 0u64..2048,
    ) {
        let cluster = cluster(workers.into_iter().enumerate().map(|(i, w)| build_worker(i, w)).collect());
        let backend = if tensor_parallel {
            MockBackend::vllm(MockModel::tensor_parallel(weights_gib, 32))
        } else {
            MockBackend::llama(MockModel::layered(weights_gib))
        };
        let name = if tensor_parallel { "m" } else { "m.gguf" };
        let mut spec = spec(name);
        spec.distributed_inference_across_workers = Some(true);
        let options = {
let mut plan_options = PlanOptions::default();
plan_options.placement = {
let mut placement_options = PlacementOptions::default();
placement_options.strategy = if binpack { PlacementStrategy::Binpack } else { PlacementStrategy::Spread };
placement_options.device_reserve = reserve_mib << 20;
placement_options
};
plan_options
};
        let registry = Registry::new().with(backend);
        match plan_with_facts(&registry, &facts(name), &spec, &cluster, &options) {
            Ok(plan) => {
                for w in &plan.placement.workers {
                    let inventory = cluster.worker(&w.name).unwrap();
                    for d in &w.devices {
                        let device = inventory.device(d.index).unwrap();
                        prop_assert!(d.vram <= device_allocatable(inventory, device, options.placement.device_reserve));
                    }
                    prop_assert!(w.ram <= host_allocatable(inventory, options.placement.ram_reserve));
                }
            }
            Err(Error::NoPlacement { rejected, .. }) => prop_assert!(!rejected.is_empty()),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}
