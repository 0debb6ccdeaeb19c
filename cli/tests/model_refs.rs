#![cfg(unix)]
//! MODEL arguments naming hub models (`hf://`, `ollama://`, ...) with `--offline`: read from a
//! Hugging Face cache laid out as `huggingface-cli download` leaves it, with no network.

mod support;

use std::path::Path;
use std::process::Output;

use support::inferkit_with_hub;

use serde_json::Value;

const COMMIT: &str = "a09a35458c702b33eeacc393d103063234e8bc28";

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `inferkit ARGS` with its caches under `caches` (the hub cache in `caches/hf`) and an
/// unreachable hub address (a test must not reach the network).
fn run(caches: &Path, args: &[&str]) -> Output {
    inferkit_with_hub("http://127.0.0.1:9", caches)
        .args(args)
        .output()
        .expect("run inferkit")
}

/// A hub cache holding one GGUF file of `Qwen/Qwen2.5-0.5B-Instruct-GGUF`.
fn hub_cache(dir: &Path) {
    let repo = dir.join("models--Qwen--Qwen2.5-0.5B-Instruct-GGUF");
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let blob = repo.join("blobs/c0ffee");
    std::fs::copy(
        root().join("tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"),
        &blob,
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../../blobs/c0ffee",
        snapshot.join("qwen2.5-0.5b-instruct-q4_k_m.gguf"),
    )
    .unwrap();
}

#[test]
fn inspect_and_plan_a_hub_model_from_the_hugging_face_cache_offline() {
    let caches = tempfile::tempdir().unwrap();
    hub_cache(&caches.path().join("hf"));
    let reference = "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M";

    let output = run(
        caches.path(),
        &["inspect", reference, "--offline", "--json"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["architecture"], "qwen2");

    let output = run(
        caches.path(),
        &[
            "plan",
            reference,
            "--offline",
            "--json",
            "--cluster",
            "examples/clusters/laptop.json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["backend"], "llama-box");
    let args: Vec<&str> = plan["processes"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let model = args[args.iter().position(|a| *a == "--model").unwrap() + 1];
    assert!(
        model.ends_with(&format!(
            "snapshots/{COMMIT}/qwen2.5-0.5b-instruct-q4_k_m.gguf"
        )),
        "{model}"
    );
}

#[test]
fn offline_names_what_is_missing_and_bad_references_are_refused() {
    let caches = tempfile::tempdir().unwrap();
    hub_cache(&caches.path().join("hf"));

    let output = run(
        caches.path(),
        &[
            "inspect",
            "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0",
            "--offline",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0"),
        "{stderr}"
    );
    assert!(stderr.contains("offline"), "{stderr}");

    let output = run(caches.path(), &["inspect", "hf://Qwen", "--offline"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("hf://Qwen") && stderr.contains("ORG/NAME"),
        "{stderr}"
    );
}
