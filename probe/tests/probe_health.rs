//! Device health from probe to placement (hard case 20, "NPU VM reports device unavailable"):
//! an `npu-smi info` capture of an Atlas 800T A2 whose NPU 3 is in `Critical` health and NPU 6
//! in `Warning` is parsed, and placement skips NPU 3 with that reason while using the others.

#[path = "../../core/tests/placement_support/mod.rs"]
mod placement_support;

use inferkit_core::inventory::DeviceHealth;
use inferkit_core::{
    Claim, Cluster, DeploymentPlan, Device, Error, PlanOptions, Registry, Vendor, plan_with_facts,
};
use inferkit_probe::ascend::{devices, parse_chip_mapping, parse_status_table};
use placement_support::*;

fn capture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/probe/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The eight NPUs of the capture with one NPU in `Critical` health.
fn npus_with_a_critical_one() -> Vec<Device> {
    let mapping = parse_chip_mapping(&capture("npu-smi-info-m-910b-8npu.txt")).unwrap();
    let table = parse_status_table(&capture("npu-smi-info-910b-8npu-critical.txt")).unwrap();
    devices(&mapping, &table, None).unwrap()
}

fn ascend_cluster(devices: Vec<Device>) -> Cluster {
    cluster(vec![worker("npu", 1024, devices)])
}

/// A MindIE-like backend placing a 20 GiB model, which fits on any one 910B3.
fn plan(
    cluster: &Cluster,
    spec: &inferkit_core::ModelSpec,
) -> inferkit_core::Result<DeploymentPlan> {
    let mindie = MockBackend::mindie(MockModel::tensor_parallel(20, 32), Claim::Supports);
    let registry = Registry::new().with(mindie);
    plan_with_facts(
        &registry,
        &facts("qwen"),
        spec,
        cluster,
        &PlanOptions::default(),
    )
}

fn chosen_devices(plan: &DeploymentPlan) -> Vec<(String, u32)> {
    plan.placement
        .workers
        .iter()
        .flat_map(|w| w.devices.iter().map(move |d| (w.name.clone(), d.index)))
        .collect()
}

fn rejected_text(plan: &DeploymentPlan) -> String {
    plan.rejected
        .iter()
        .map(|r| format!("{} => {}\n", r.describe_candidate(), r.reason))
        .collect()
}

#[test]
fn the_health_column_marks_a_critical_npu_unavailable_and_keeps_a_warning_usable() {
    let table = parse_status_table(&capture("npu-smi-info-910b-8npu-critical.txt")).unwrap();
    let health: Vec<Option<&str>> = table.chips.iter().map(|c| c.health.as_deref()).collect();
    assert_eq!(health[3], Some("Critical"));
    assert_eq!(health[6], Some("Warning"));
    assert_eq!(health[0], Some("OK"));

    let npus = npus_with_a_critical_one();
    assert_eq!(npus.len(), 8);
    assert_eq!(
        npus[3].unavailable_reason(),
        Some("npu-smi health Critical")
    );
    assert_eq!(
        npus[6].health,
        Some(Box::new(DeviceHealth {
            available: true,
            status: "npu-smi health Warning".into(),
        }))
    );
    assert_eq!(npus[6].unavailable_reason(), None);
    for i in [0, 1, 2, 4, 5, 7] {
        assert_eq!(npus[i].health, None, "NPU {i} is OK");
    }
}

#[test]
fn the_health_follows_the_chip_through_visible_device_renumbering() {
    let mapping = parse_chip_mapping(&capture("npu-smi-info-m-910b-8npu.txt")).unwrap();
    let table = parse_status_table(&capture("npu-smi-info-910b-8npu-critical.txt")).unwrap();
    let visible = devices(&mapping, &table, Some("2,3")).unwrap();
    assert_eq!(visible[1].index, 1);
    assert_eq!(visible[1].physical_index, Some(3));
    assert_eq!(
        visible[1].unavailable_reason(),
        Some("npu-smi health Critical")
    );
    assert_eq!(visible[0].unavailable_reason(), None);
}

#[test]
fn every_documented_health_value_maps_to_a_decision() {
    use inferkit_probe::ascend::device_health;
    assert_eq!(device_health("OK"), None);
    assert_eq!(device_health("Warning").map(|h| h.available), Some(true));
    for state in ["Alarm", "Critical", "UNKNOWN", "NOT SUPPORT"] {
        let health = device_health(state).unwrap();
        assert!(!health.available, "{state}");
        assert_eq!(health.status, format!("npu-smi health {state}"));
    }
}

#[test]
fn healthy_devices_keep_the_cluster_json_unchanged_and_health_round_trips() {
    let healthy = serde_json::to_value(&npus_with_a_critical_one()[0]).unwrap();
    assert!(healthy.get("health").is_none(), "{healthy}");

    let critical = &npus_with_a_critical_one()[3];
    let json = serde_json::to_string(critical).unwrap();
    assert!(
        json.contains(r#""health":{"available":false,"status":"npu-smi health Critical"}"#),
        "{json}"
    );
    let back: Device = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, critical);

    let without: Device = serde_json::from_str(
        r#"{"index": 0, "vendor": "ascend", "memory": {"total": 68719476736}}"#,
    )
    .unwrap();
    assert_eq!(without.health, None);
}

#[test]
fn placement_skips_the_critical_npu_with_its_reason_and_uses_a_healthy_one() {
    // NPU 3 has the least HBM in use (3390 MB), so it is the one spread placement would take
    // if its health were ignored.
    let mut ignored = npus_with_a_critical_one();
    ignored.iter_mut().for_each(|npu| npu.health = None);
    let blind = plan(&ascend_cluster(ignored), &spec("qwen")).unwrap();
    assert_eq!(chosen_devices(&blind), vec![("npu".to_string(), 3)]);

    let plan = plan(&ascend_cluster(npus_with_a_critical_one()), &spec("qwen")).unwrap();
    let chosen = chosen_devices(&plan);
    assert_eq!(chosen.len(), 1, "{chosen:?}");
    assert_ne!(chosen[0].1, 3, "{chosen:?}");
    let text = rejected_text(&plan);
    assert!(
        text.contains("npu:3 => ascend 3 is unavailable: npu-smi health Critical"),
        "{text}"
    );
    assert!(
        !text.contains("npu:6 =>"),
        "a Warning NPU stays eligible: {text}"
    );
    assert!(
        plan.explanation
            .iter()
            .any(|line| line.contains("1/1 workers and 7 devices are eligible")),
        "{:?}",
        plan.explanation
    );
}

#[test]
fn selecting_the_critical_npu_by_hand_is_refused_with_its_reason() {
    let mut spec = spec("qwen");
    spec.device_selector = vec![device_id("npu", 3)];
    let err = plan(&ascend_cluster(npus_with_a_critical_one()), &spec).unwrap_err();
    let Error::InvalidParameter { name, reason } = &err else {
        panic!("expected an invalid device_selector, got {err:?}");
    };
    assert_eq!(name, "device_selector");
    assert!(
        reason.contains("npu:3: ascend 3 is unavailable: npu-smi health Critical"),
        "{reason}"
    );
}

#[test]
fn an_unavailable_gpu_from_a_static_inventory_is_skipped_too() {
    let mut lost = gpu(0, Vendor::Nvidia, "NVIDIA H100 80GB HBM3", 80, 0);
    lost.health = Some(Box::new(DeviceHealth {
        available: false,
        status: "nvml: GPU 0: the GPU has fallen off the bus".into(),
    }));
    let fine = gpu(1, Vendor::Nvidia, "NVIDIA H100 80GB HBM3", 80, 1);
    let cluster = cluster(vec![worker("w", 512, vec![lost, fine])]);
    let backend = MockBackend::llama(MockModel::layered(20));
    let registry = Registry::new().with(backend);
    let plan = plan_with_facts(
        &registry,
        &facts("m.gguf"),
        &spec("m.gguf"),
        &cluster,
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(chosen_devices(&plan), vec![("w".to_string(), 1)]);
    assert!(
        rejected_text(&plan).contains(
            "w:0 => nvidia 0 is unavailable: nvml: GPU 0: the GPU has fallen off the bus"
        )
    );
}
