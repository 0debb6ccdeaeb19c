//! Through core's planner: a speech model goes to one NVIDIA GPU with room, else to CPU.

mod support;

use std::path::Path;

use inferkit_core::{Cluster, PlacementMode, PlanOptions, Registry, plan_with_facts};
use inferkit_vox_box::VoxBox;
use support::local;

/// Two workers: `small` with an 8 GiB NVIDIA GPU, `big` with a 24 GiB one; 64 GiB RAM each.
fn cluster(big_gpu_gib: u64) -> Cluster {
    let json = format!(
        r#"{{"workers": [
          {{"name": "small", "os": "linux", "arch": "amd64", "cpu_cores": 16,
            "ram": {{"total": 68719476736, "used": 0}},
            "devices": [{{"index": 0, "vendor": "nvidia", "name": "NVIDIA GeForce RTX 4060",
              "memory": {{"total": 8589934592, "used": 0}}, "compute_capability": "8.9",
              "runtime_version": "12.4"}}]}},
          {{"name": "big", "os": "linux", "arch": "amd64", "cpu_cores": 16,
            "ram": {{"total": 68719476736, "used": 0}},
            "devices": [
              {{"index": 0, "vendor": "nvidia", "name": "NVIDIA GeForce RTX 4060",
                "memory": {{"total": 8589934592, "used": 0}}, "compute_capability": "8.9",
                "runtime_version": "12.4"}},
              {{"index": 1, "vendor": "nvidia", "name": "NVIDIA RTX",
                "memory": {{"total": {}, "used": 0}}, "compute_capability": "8.9",
                "runtime_version": "12.4"}}]}}]}}"#,
        big_gpu_gib << 30
    );
    Cluster::from_json_str(&json, Path::new("cluster.json")).unwrap()
}

#[test]
fn large_v3_takes_the_gpu_with_room_and_its_index() {
    let registry = Registry::new().with(VoxBox::new());
    let (facts, spec) = local("faster-whisper-large-v3");
    let plan = plan_with_facts(
        &registry,
        &facts,
        &spec,
        &cluster(24),
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.backend, "vox-box");
    assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
    let main = plan.processes.last().unwrap();
    assert_eq!(main.worker, "big");
    let device = main.args.iter().position(|a| a == "--device").unwrap();
    assert_eq!(main.args[device + 1], "cuda:1");
}

#[test]
fn no_gpu_with_room_falls_back_to_cpu() {
    let registry = Registry::new().with(VoxBox::new());
    let (facts, spec) = local("faster-whisper-large-v3");
    // 10 GiB of VRAM needed; the largest GPU has 10 GiB, 1 GiB of it reserved.
    let plan = plan_with_facts(
        &registry,
        &facts,
        &spec,
        &cluster(10),
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::CpuOnly);
    assert_eq!(plan.estimate.host.total(), 15 << 30);
    let main = plan.processes.last().unwrap();
    assert!(
        !main.args.contains(&"--device".to_string()),
        "{:?}",
        main.args
    );
    let too_small = "big:1 (NVIDIA RTX) is too small: needs 10.00 GiB, 9.00 GiB available";
    assert!(
        plan.rejected.iter().any(|r| r.reason == too_small),
        "{:#?}",
        plan.rejected
    );
}
