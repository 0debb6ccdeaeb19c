//! Through core's planner: a speech model goes to one NVIDIA GPU with room, else to CPU.

mod support;

use std::path::Path;

use inferkit_core::{Cluster, PlacementMode, PlanOptions, Registry, plan_with_facts};
use inferkit_vox_box::VoxBox;
use support::local;

/// One worker with 64 GiB of RAM and one NVIDIA GPU of `gpu_gib` GiB.
fn laptop(gpu_name: &str, gpu_gib: u64) -> Cluster {
    let json = format!(
        r#"{{"workers": [
          {{"name": "laptop", "os": "linux", "arch": "amd64", "cpu_cores": 16,
            "ram": {{"total": 68719476736, "used": 0}},
            "devices": [{{"index": 0, "vendor": "nvidia", "name": "{gpu_name}",
              "memory": {{"total": {}, "used": 0}}, "compute_capability": "8.9",
              "runtime_version": "12.4"}}]}}]}}"#,
        gpu_gib << 30
    );
    Cluster::from_json_str(&json, Path::new("cluster.json")).unwrap()
}

#[test]
fn large_v3_lands_on_an_8_gib_laptop_gpu() {
    // faster-whisper's README: large-v2 (the same 1,550 M parameters) peaks at 4,755 MB in
    // float16; GPUStack's table claimed 10 GiB and sent it to the CPU.
    let registry = Registry::new().with(VoxBox::new());
    let (facts, spec) = local("faster-whisper-large-v3");
    let cluster = laptop("NVIDIA GeForce RTX 4060 Laptop GPU", 8);
    let plan =
        plan_with_facts(&registry, &facts, &spec, &cluster, &PlanOptions::default()).unwrap();
    assert_eq!(plan.backend, "vox-box");
    assert_eq!(plan.placement.mode, PlacementMode::SingleDevice);
    let main = plan.processes.last().unwrap();
    let device = main.args.iter().position(|a| a == "--device").unwrap();
    assert_eq!(main.args[device + 1], "cuda:0");
    let mib: u64 = 1 << 20;
    assert_eq!(
        plan.estimate.devices[0].claim,
        4_755 * mib + (4_755 * mib).div_ceil(10)
    );
}

#[test]
fn a_4_gib_gpu_refuses_large_v3_with_numbers_and_the_cpu_takes_it() {
    let registry = Registry::new().with(VoxBox::new());
    let (facts, spec) = local("faster-whisper-large-v3");
    let cluster = laptop("NVIDIA GeForce GTX 1650", 4);
    let plan =
        plan_with_facts(&registry, &facts, &spec, &cluster, &PlanOptions::default()).unwrap();
    assert_eq!(plan.placement.mode, PlacementMode::CpuOnly);
    let main = plan.processes.last().unwrap();
    assert!(
        !main.args.contains(&"--device".to_string()),
        "{:?}",
        main.args
    );
    let too_small = "laptop:0 (NVIDIA GeForce GTX 1650) is too small: needs 5.11 GiB, 3.00 GiB \
                     available";
    assert!(
        plan.rejected.iter().any(|r| r.reason == too_small),
        "{:#?}",
        plan.rejected
    );
}
