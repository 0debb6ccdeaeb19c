//! Hostile inputs from issue 18, one test each, through the public API as a user reaches them:
//! non-regular model files, placement on implausible inventories, oversized JSON, and backend
//! parameters a backend would refuse at run time. Each case is bounded: a test that would hang
//! fails after a timeout instead.
#![cfg(all(unix, feature = "llama-box", feature = "vllm", feature = "mindie"))]

mod plan_support;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use inferkit::{Cluster, DeploymentPlan, Error, ModelSpec, PlanOptions, Result};
use plan_support::*;
use serde_json::json;

/// Runs `work` on its own thread and fails the test when it does not finish within `limit`
/// (the thread is left behind; the test process ends with the failure).
fn within<T: Send + 'static>(limit: Duration, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || done.send(work()));
    result
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

fn one_gpu() -> Cluster {
    cluster_json(
        json!({"workers": [{"name": "w0", "ram": {"total": 256 * GIB}, "devices": [
        {"index": 0, "vendor": "nvidia", "name": "NVIDIA H100 80GB HBM3",
         "memory": {"total": 80 * GIB}, "compute_capability": "9.0"}]}]}),
    )
}

fn plan_path(path: &Path, cluster: Cluster) -> Result<DeploymentPlan> {
    let spec = ModelSpec::local(path.to_path_buf());
    within(Duration::from_secs(20), move || {
        inferkit::plan(
            &inferkit::default_registry(),
            &spec,
            &cluster,
            &PlanOptions::default(),
        )
    })
}

/// `mkfifo f.gguf; plan f.gguf` is refused at once, naming the file, instead of waiting for a
/// writer forever.
#[test]
fn a_fifo_model_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("f.gguf");
    mkfifo(&fifo);
    let err = plan_path(&fifo, one_gpu()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(text.contains("f.gguf") && text.contains("FIFO"), "{text}");
}

/// A stray FIFO named like a projector next to a real model does not hang projector
/// auto-detection: the plan goes on without it.
#[test]
fn a_fifo_projector_next_to_a_model_does_not_hang_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("qwen2-1.5b-text-stub-F16.header.gguf");
    std::fs::copy(
        repo("tests/fixtures/gguf/vlm/qwen2-vl-2b/qwen2-1.5b-text-stub-F16.header.gguf"),
        &model,
    )
    .unwrap();
    mkfifo(&dir.path().join("mmproj-qwen2-vl-2b-f16.gguf"));
    let plan = plan_path(&model, one_gpu()).unwrap();
    let args = &main_process(&plan).args;
    assert!(flag(args, "--mmproj").is_none(), "{args:?}");
}
