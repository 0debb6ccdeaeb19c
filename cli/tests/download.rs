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

use serde::Deserialize;
use serde_json::Value;
use support::hub::{FakeHub, Repo, TOKEN, read_fixture, sha256_hex};

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

/// `plan --format kubernetes` of the same hub model: the pod's init container downloads the
/// files with the token from the user's Secret. Its script is run here, with `sh`, `curl` and
/// `sha256sum` as in the container, against the loopback hub (a gated repository: files need
/// the token; LFS files redirect to the CDN host): the files arrive in the Hugging Face
/// layout, and a second run fetches nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_kubernetes_download_init_container_fetches_the_files_the_backend_reads() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let model = read_fixture("gguf/vlm/qwen2-vl-2b/qwen2-1.5b-text-stub-F16.header.gguf");
    let projector = read_fixture("gguf/vlm/qwen2-vl-2b/mmproj-qwen2-vl-2b-f16.gguf");
    let mut repo = Repo::new(COMMIT)
        .file(MODEL, model.clone())
        .file(PROJECTOR, projector.clone());
    repo.gated = true;
    hub.add(REPO, repo);
    let caches = tempfile::tempdir().unwrap();
    let reference = format!("hf://{REPO}:F16");
    let output = cli_support::inferkit_with_hub(&hub.hub.url(), caches.path())
        .env("HF_TOKEN", TOKEN)
        .args([
            "plan",
            &reference,
            "--format",
            "kubernetes",
            "--backend",
            "llama-box",
            "--cluster",
            "examples/clusters/laptop.json",
            "--image",
            "llama-box=gpustack/llama-box:v0.0.140",
            "--secret",
            "hf",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let yaml = String::from_utf8(output.stdout).unwrap();
    assert!(!yaml.contains(TOKEN), "{yaml}");
    let deployment = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|document| Value::deserialize(document).unwrap())
        .find(|object| object["kind"] == "Deployment")
        .unwrap();
    let init = &deployment["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "download-model");
    assert_eq!(
        init["env"][0]["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "hf", "key": "HF_TOKEN"})
    );
    let script = init["command"][2].as_str().unwrap();
    let container = || {
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c").arg(script).env("HF_TOKEN", TOKEN);
        sh
    };
    let first = container().output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    let folder = caches
        .path()
        .join("hf/models--Qwen--Qwen2-VL-2B-Instruct-GGUF");
    let snapshot = folder.join("snapshots").join(COMMIT);
    assert_eq!(std::fs::read(snapshot.join(MODEL)).unwrap(), model);
    assert_eq!(std::fs::read(snapshot.join(PROJECTOR)).unwrap(), projector);
    assert_eq!(
        std::fs::read_link(snapshot.join(MODEL)).unwrap(),
        Path::new("../../blobs").join(sha256_hex(&model))
    );
    let leftovers: Vec<_> = std::fs::read_dir(folder.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name.to_string_lossy().ends_with(".incomplete"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The backend reads the files where the download put them.
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    let model_arg = snapshot.join(MODEL).display().to_string();
    assert!(
        args.iter().any(|a| a == &Value::from(model_arg.as_str())),
        "{args:?}"
    );

    hub.reset();
    let second = container().output().unwrap();
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        hub.requests(),
        0,
        "the files were there: nothing fetched again"
    );

    // Without the token the gated files are refused, and nothing half-written is kept.
    std::fs::remove_dir_all(&folder).unwrap();
    let refused = container().env_remove("HF_TOKEN").output().unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(!snapshot.join(MODEL).exists());
}
