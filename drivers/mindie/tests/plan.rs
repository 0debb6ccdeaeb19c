//! The driver inside the planner: an Ascend cluster, placement, and the launched processes.

mod common;

use common::{facts, spec};
use inferkit_core::{Cluster, PlanOptions, Registry, plan_with_facts};
use inferkit_mindie::MindIe;

/// Two Atlas 800I A2 servers (eight 64 GiB Ascend 910B3 each), the first with NPUs 0-3 busy.
const CLUSTER: &str = r#"{"workers": [
  {"name": "a2-1", "os": "linux", "arch": "arm64", "address": "10.0.0.1",
   "ram": {"total": 1099511627776},
   "devices": [
     {"index": 0, "vendor": "ascend", "name": "Ascend910B3", "memory": {"total": 68719476736, "used": 60000000000}},
     {"index": 1, "vendor": "ascend", "name": "Ascend910B3", "memory": {"total": 68719476736, "used": 60000000000}},
     {"index": 2, "vendor": "ascend", "name": "Ascend910B3", "memory": {"total": 68719476736, "used": 60000000000}},
     {"index": 3, "vendor": "ascend", "name": "Ascend910B3", "memory": {"total": 68719476736, "used": 60000000000}},
     {"index": 4, "vendor": "ascend", "name": "Ascend910B3", "memory": {"total": 68719476736}},
     {"index": 5, "vendor": "ascend", "name": "Ascend910B3", "memory": {"total": 68719476736}},
     {"index": 6, "vendor": "ascend", "name": "Ascend910B3", "memory": {"total": 68719476736}},
     {"index": 7, "vendor": "ascend", "name": "Ascend910B3", "memory": {"total": 68719476736}}
   ]}
]}"#;

/// Qwen2.5-72B needs four NPUs; only 4-7 are free, so the daemon sees them as 0-3.
#[test]
fn qwen_72b_lands_on_the_free_npus_with_logical_ids() {
    let cluster = Cluster::from_json_str(CLUSTER, "cluster.json".as_ref()).unwrap();
    let spec = spec("Qwen2.5-72B-Instruct", &[]);
    let registry = Registry::new().with(MindIe::new());
    let plan = plan_with_facts(
        &registry,
        &facts(&spec),
        &spec,
        &cluster,
        &PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(plan.backend, "ascend-mindie");
    let main = plan.processes.last().unwrap();
    assert_eq!(main.env["ASCEND_RT_VISIBLE_DEVICES"], "4,5,6,7");
    let config: serde_json::Value = serde_json::from_str(&main.files[0].content).unwrap();
    assert_eq!(
        config["BackendConfig"]["npuDeviceIds"],
        serde_json::json!([[0, 1, 2, 3]])
    );
    for npu in &plan.estimate.devices {
        assert_eq!(npu.claim, (68_719_476_736f64 * 0.9) as u64);
    }
}
