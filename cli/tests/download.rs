#![cfg(unix)]
//! A hub GGUF model that is on no disk of this machine: `plan` carries a download step (what,
//! how much, where) and points the backend at where the files will be; `serve --dry-run`
//! shows the step; `serve` fetches the files into the Hugging Face cache before starting the
//! backend. The hub is a loopback stand-in (`sources/tests/support`).

#[path = "support/mod.rs"]
mod cli_support;
#[path = "../../sources/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::hub::{FakeHub, Repo, read_fixture, sha256_hex};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "Qwen/Qwen2-VL-2B-Instruct-GGUF";
const MODEL: &str = "Qwen2-VL-2B-Instruct-F16.gguf";
const PROJECTOR: &str = "mmproj-Qwen2-VL-2B-Instruct-f16.gguf";

/// `inferkit ARGS` against the fake hub, with its own caches.
fn run(hub: &FakeHub, caches: &Path, args: &[&str]) -> Output {
    cli_support::inferkit_with_hub(&hub.hub.url(), caches)
        .args(args)
        .output()
        .expect("run inferkit")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_gguf_is_planned_with_a_download_that_serve_performs_first() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let model = read_fixture("gguf/vlm/qwen2-vl-2b/qwen2-1.5b-text-stub-F16.header.gguf");
    let projector = read_fixture("gguf/vlm/qwen2-vl-2b/mmproj-qwen2-vl-2b-f16.gguf");
    hub.add(
        REPO,
        Repo::new(COMMIT)
            .file("README.md", b"# Qwen2-VL GGUF".to_vec())
            .file(MODEL, model.clone())
            .file(PROJECTOR, projector.clone())
            // A second projector llama-box ranks after f16: listed, read, not downloaded.
            .file("mmproj-Qwen2-VL-2B-Instruct-bf16.gguf", projector.clone()),
    );
    let caches = tempfile::tempdir().unwrap();
    let reference = format!("hf://{REPO}:F16");
    let output = run(
        &hub,
        caches.path(),
        &[
            "plan",
            &reference,
            "--json",
            "--backend",
            "llama-box",
            "--cluster",
            "examples/clusters/laptop.json",
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();

    let snapshot = caches
        .path()
        .join("hf/models--Qwen--Qwen2-VL-2B-Instruct-GGUF/snapshots")
        .join(COMMIT);
    let step = &plan["downloads"][0];
    assert_eq!(step["repo"], REPO);
    assert_eq!(step["commit"], COMMIT);
    assert_eq!(step["workers"], serde_json::json!(["laptop"]));
    assert_eq!(step["snapshot"], snapshot.display().to_string());
    let files: Vec<(&str, u64, &str)> = step["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap(),
                f["size"].as_u64().unwrap(),
                f["sha256"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            (MODEL, model.len() as u64, sha256_hex(&model).as_str()),
            (
                PROJECTOR,
                projector.len() as u64,
                sha256_hex(&projector).as_str()
            ),
        ]
    );
    assert_eq!(step["bytes"], (model.len() + projector.len()) as u64);
    let args: Vec<&str> = plan["processes"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let flag = |name: &str| args[args.iter().position(|a| *a == name).unwrap() + 1];
    assert_eq!(flag("--model"), snapshot.join(MODEL).display().to_string());
    assert_eq!(
        flag("--mmproj"),
        snapshot.join(PROJECTOR).display().to_string()
    );

    let plan_file = caches.path().join("plan.json");
    std::fs::write(&plan_file, &output.stdout).unwrap();
    let plan_arg = plan_file.display().to_string();
    let dry = run(&hub, caches.path(), &["serve", &plan_arg, "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let shown = String::from_utf8_lossy(&dry.stdout);
    assert!(
        shown.contains("download 2 file(s)") && shown.contains(PROJECTOR),
        "{shown}"
    );
    assert!(!snapshot.exists(), "a dry run downloads nothing");

    // The real run: the files arrive, then the backend is started (it is not installed
    // here, so that is where it stops).
    let served = run(&hub, caches.path(), &["serve", &plan_arg]);
    assert_eq!(
        std::fs::read(snapshot.join(MODEL)).unwrap(),
        model,
        "{}",
        text(&served)
    );
    assert_eq!(std::fs::read(snapshot.join(PROJECTOR)).unwrap(), projector);
    assert!(
        !snapshot
            .join("mmproj-Qwen2-VL-2B-Instruct-bf16.gguf")
            .exists()
    );
    assert!(!served.status.success());
    assert!(text(&served).contains("llama-box"), "{}", text(&served));
}
