//! The plan's JSON is a public contract that other tools read (issue 5): these tests pin the
//! field names and shapes `plan --json` prints, on a real fixture model and example clusters.
#![cfg(feature = "llama-box")]

mod plan_support;

use inferkit::PlanOptions;
use plan_support::*;
use serde_json::{Value, json};

fn plan_json(cluster: &inferkit::Cluster) -> Value {
    let plan = plan_model(
        "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        cluster,
        &PlanOptions::default(),
        |_| {},
    )
    .unwrap();
    serde_json::to_value(&plan).unwrap()
}

#[test]
fn a_gpu_plan_has_the_documented_fields() {
    let json = plan_json(&example_cluster("h100x8"));
    assert_eq!(json["backend"], "llama-box");
    let placement = &json["placement"];
    assert_eq!(placement["mode"], "single_device");
    assert_eq!(placement["offload_layers"], 25);
    let worker = &placement["workers"][0];
    assert_eq!(worker["name"], "dgx-01");
    assert!(worker["ram"].is_u64());
    let device = &worker["devices"][0];
    assert!(device["index"].is_u64());
    assert!(device["vram"].as_u64().unwrap() > 0);
    let main = json["processes"].as_array().unwrap().last().unwrap();
    assert_eq!(main["worker"], "dgx-01");
    assert_eq!(main["role"], "main");
    assert_eq!(main["program"], "llama-box");
    assert!(
        main["args"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_string)
    );
    let pinned = device["index"].to_string();
    assert_eq!(main["env"]["CUDA_VISIBLE_DEVICES"], json!(pinned));
    assert!(main["files"].is_array());
    assert!(!json["explanation"].as_array().unwrap().is_empty());
    assert!(json["rejected"].is_array());
}

#[test]
fn a_cpu_only_plan_has_no_devices_and_launches_with_gpu_layers_0() {
    let cluster = cluster_json(json!({"workers": [{"name": "cpu-box", "os": "linux",
        "arch": "amd64", "cpu_cores": 16, "ram": {"total": 32 * GIB, "used": 0}}]}));
    let json = plan_json(&cluster);
    assert_eq!(json["placement"]["mode"], "cpu_only");
    assert_eq!(json["placement"]["workers"][0]["devices"], json!([]));
    let args = json["processes"][0]["args"].as_array().unwrap();
    let at = args.iter().position(|a| a == "--gpu-layers").unwrap();
    assert_eq!(args[at + 1], "0");
}
