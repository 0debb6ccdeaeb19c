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
        json!({"workers": [{"name": "w0", "os": "linux", "arch": "amd64", "ram": {"total": 256 * GIB}, "devices": [
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

/// A refusal on a worker of 1,000 devices names its groups by index runs and count, not index
/// by index (it was 25 KB of indexes).
#[test]
fn a_refusal_on_a_wide_worker_names_index_runs() {
    let devices: Vec<_> = (0..1000)
        .map(|index| {
            json!({"index": index, "vendor": "nvidia", "name": "NVIDIA Small 2GB",
                   "memory": {"total": 2 * GIB}, "compute_capability": "8.9"})
        })
        .collect();
    let cluster = cluster_json(
        json!({"workers": [{"name": "wide", "ram": {"total": 64 * GIB}, "devices": devices}]}),
    );
    let model = repo("benches/fixtures/deepseek-v3-Q8_0.header.gguf");
    let Err(Error::NoPlacement {
        reason, rejected, ..
    }) = plan_path(&model, cluster)
    else {
        panic!("expected no placement");
    };
    let lines: Vec<String> = rejected.iter().map(|r| r.to_string()).collect();
    let refusal = format!("{reason}\n{}", lines.join("\n"));
    assert!(
        refusal.contains("wide devices 0-999 (1000 devices, "),
        "{refusal}"
    );
    let one_by_one = (0..=16)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert!(!refusal.contains(&one_by_one), "{refusal}");
}

/// Plans Qwen2.5-0.5B with `backend` and user parameters `params` on one GPU.
fn plan_with_params(backend: &str, params: &[&str]) -> Result<DeploymentPlan> {
    plan_model(
        "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        &one_gpu(),
        &PlanOptions::default(),
        |spec| {
            spec.backend = Some(backend.into());
            spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
        },
    )
}

fn refusal(backend: &str, params: &[&str]) -> String {
    match plan_with_params(backend, params) {
        Err(Error::InvalidParameter { name, reason }) => format!("{name}: {reason}"),
        other => panic!("{backend} {params:?}: expected a refusal, got {other:?}"),
    }
}

/// llama.cpp reads integer parameters with `std::stoi`: beyond a C `int` it throws and the
/// server does not start. The refusal names the bound (not "must be an integer ≥ 0").
#[test]
fn integers_beyond_a_c_int_are_refused_with_the_bound() {
    for backend in ["llama-box", "llama-server"] {
        for value in ["2147483648", "99999999999999"] {
            let why = refusal(backend, &["--ctx-size", value]);
            assert_eq!(
                why,
                format!("--ctx-size: `{value}` must be at most 2147483647"),
                "{backend}"
            );
        }
        assert_eq!(
            refusal(backend, &["--ctx-size", "-5"]),
            "--ctx-size: `-5` must be at least 0"
        );
        assert!(
            plan_with_params(backend, &["--ctx-size", "2147483647"])
                .is_err_and(|e| { !matches!(e, Error::InvalidParameter { .. }) })
        );
    }
}

/// Found by the `backend_params` fuzzer: a vLLM size whose last char is several bytes long
/// (a byte the lossy UTF-8 reading made U+FFFD) panicked where the suffix (`k`, `K`...) was
/// cut off; it is a refusal naming the flag.
#[test]
fn a_vllm_size_ending_in_a_multibyte_char_is_refused() {
    for value in ["327\u{FFFD}", "4\u{212A}"] {
        let why = refusal("vllm", &["--max-model-len", value]);
        assert!(
            why.starts_with(&format!("--max-model-len: `{value}` is not an integer")),
            "{why}"
        );
    }
}

/// Upstream llama.cpp takes fewer tensor-split values than its 16 devices; llama-box's build
/// raises that to 128.
#[test]
fn a_tensor_split_longer_than_the_build_takes_is_refused() {
    let nineteen = ["1"; 19].join(",");
    let why = refusal("llama-server", &["--tensor-split", &nineteen]);
    assert!(
        why.ends_with("has 19 values; llama-server takes fewer than 16"),
        "{why}"
    );
    let many = ["1"; 128].join(",");
    let why = refusal("llama-box", &["--tensor-split", &many]);
    assert!(
        why.ends_with("has 128 values; llama-box takes fewer than 128"),
        "{why}"
    );
}

/// `--main-gpu 7` on a one-device placement: llama.cpp numbers the devices it is given from 0
/// and refuses a main GPU beyond them (split mode `none`), so the plan refuses it first.
#[test]
fn a_main_gpu_beyond_the_placed_devices_is_refused() {
    for backend in ["llama-box", "llama-server"] {
        let why = refusal(backend, &["--main-gpu", "7"]);
        assert!(
            why.starts_with("--main-gpu: is 7, but the placement gives the process 1 device(s)"),
            "{backend}: {why}"
        );
        plan_with_params(backend, &["--main-gpu", "0"]).unwrap();
    }
}

/// llama-box runs at most 64 parallel sequences: `--parallel 2147483647` is planned and
/// launched as 64, with a warning, instead of being shown as given.
#[test]
fn llama_box_parallel_beyond_its_cap_is_shown_as_what_runs() {
    let plan = plan_with_params("llama-box", &["--parallel", "2147483647"]).unwrap();
    let args = &main_process(&plan).args;
    assert_eq!(flag(args, "--parallel"), Some("64"), "{args:?}");
    assert!(
        plan.explanation
            .iter()
            .any(|line| line.contains("--parallel 2147483647") && line.contains("at most 64")),
        "{:#?}",
        plan.explanation
    );
}

/// `--data-parallel-size 2` starts two vLLM engines; a plan places one. It was planned on one
/// GPU, where vLLM fails at start: refused, saying what to do.
#[test]
fn vllm_data_parallelism_is_refused_with_what_to_do() {
    let plan = |params: &[&str]| {
        plan_model(
            "tests/fixtures/hf/Llama-3.1-8B-Instruct",
            &one_gpu(),
            &PlanOptions::default(),
            |spec| {
                spec.backend = Some("vllm".into());
                spec.backend_parameters = params.iter().map(|p| p.to_string()).collect();
            },
        )
    };
    match plan(&["--data-parallel-size", "2"]) {
        Err(Error::InvalidParameter { name, reason }) => {
            assert_eq!(name, "--data-parallel-size");
            assert!(reason.contains("plan 2 instances instead"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    plan(&["--data-parallel-size", "1"]).unwrap();
}

/// A config declaring a 2^63-token context: MindIE accepted it where vLLM refused it. One shared
/// check in the config reader refuses it for every backend, naming the key.
#[test]
fn an_implausible_context_in_config_json_is_refused_by_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = repo("tests/fixtures/hf/Llama-3.1-8B-Instruct");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "\"max_position_embeddings\": 131072",
        "\"max_position_embeddings\": 9223372036854775808",
    );
    assert!(text.contains("9223372036854775808"));
    std::fs::write(&config, text).unwrap();
    for (backend, cluster) in [
        ("vllm", example_cluster("h100x8")),
        ("ascend-mindie", example_cluster("ascend-910b")),
    ] {
        let mut spec = ModelSpec::local(dir.path());
        spec.backend = Some(backend.into());
        let err = inferkit::plan(
            &inferkit::default_registry(),
            &spec,
            &cluster,
            &PlanOptions::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("max_position_embeddings") && text.contains("4294967296"),
            "{backend}: {text}"
        );
    }
}
