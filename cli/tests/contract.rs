//! The subcommands' flags and JSON fields are public contracts that other tools read
//! (`inspect`, `estimate`, `plan`, `probe`, the error object). These tests run the `inferkit`
//! binary on the model fixtures shipped in the repository and check the documented names.

mod support;

use support::{QWEN, json_of, run};

#[test]
fn inspect_json_names_the_documented_fields() {
    let out = run(&["inspect", QWEN, "--json"]);
    assert!(out.status.success());
    let json = json_of(&out);
    for key in [
        "format",
        "architecture",
        "version",
        "tensor_count",
        "metadata_count",
        "tensor_bytes",
        "parameters",
        "file_type",
        "block_count",
        "context_length",
        "embedding_length",
        "head_count",
        "head_count_kv",
        "vocab_size",
        "shards",
    ] {
        assert!(json.get(key).is_some(), "inspect --json lacks `{key}`");
    }
    assert_eq!(json["format"], "gguf");
    assert_eq!(json["parameters"], 494_032_768u64);
}

#[test]
fn estimate_json_lists_devices_with_their_components() {
    let out = run(&[
        "estimate",
        QWEN,
        "-c",
        "4096",
        "--rpc",
        "10.0.0.2:50052",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json_of(&out);
    assert!(json["layers"].is_u64() && json["offload_layers"].is_u64());
    let names: Vec<&str> = json["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    // Host first, then RPC devices before any local GPU, as llama.cpp orders them.
    assert_eq!(names[..2], ["cpu", "rpc0"]);
    assert!(names[2..].iter().all(|n| n.starts_with("gpu")), "{names:?}");
    for device in json["devices"].as_array().unwrap() {
        for key in ["weights", "kv", "compute", "output", "total"] {
            assert!(device[key].is_u64(), "estimate device lacks `{key}`");
        }
        // Every device, the host included, says how sure its figure is (Qwen2 is measured).
        assert_eq!(device["error_band"]["percent"], 5, "{device}");
        assert_eq!(device["error_band"]["basis"], "measured_architecture");
    }
}

#[test]
fn estimate_refuses_what_llama_cpp_refuses() {
    let out = run(&["estimate", QWEN, "-ctv", "q8_0", "-fa", "off", "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("flash"));
}

#[test]
fn plan_json_error_carries_the_rejections() {
    let out = run(&[
        "plan",
        "tests/fixtures/hf/Qwen2.5-72B-Instruct",
        "--cluster",
        "examples/clusters/laptop.json",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json = json_of(&out);
    assert!(json["error"].is_string());
    assert!(!json["rejected"].as_array().unwrap().is_empty());
}

#[test]
fn probe_json_is_one_worker_that_plan_accepts() {
    let out = run(&["probe", "--json"]);
    assert!(out.status.success());
    let worker = json_of(&out);
    for key in [
        "name",
        "os",
        "arch",
        "labels",
        "cpu_cores",
        "ram",
        "devices",
        "allocations",
    ] {
        assert!(worker.get(key).is_some(), "probe --json lacks `{key}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("local.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let plan = run(&["plan", QWEN, "--cluster", file.to_str().unwrap(), "--json"]);
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert_eq!(json_of(&plan)["backend"], "llama-box");
}
