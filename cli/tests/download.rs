#![cfg(unix)]
//! A GGUF model that is on no disk of this machine (a hub's, an Ollama registry's, a URL's):
//! `plan` carries a download step (what, how much, where) and points the backend at where the
//! files will be; `serve --dry-run` shows the step; `serve` fetches the files into the cache of
//! the tool the model comes from (the Hugging Face cache, Ollama's store, inferkit's download
//! folder for URLs) before starting the backend. The hub is a loopback stand-in
//! (`sources/tests/support`).

#[path = "support/mod.rs"]
mod cli_support;
#[path = "../../sources/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use support::hub::{FakeHub, Repo, TOKEN, fixture, ollama_model, read_fixture, sha256_hex};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "Qwen/Qwen2-VL-2B-Instruct-GGUF";
const MODEL: &str = "Qwen2-VL-2B-Instruct-F16.gguf";
const PROJECTOR: &str = "mmproj-Qwen2-VL-2B-Instruct-f16.gguf";

/// `inferkit ARGS` against the fake hub (also the Ollama registry), with its own caches
/// (Ollama's store in `ollama/`).
fn run(hub: &FakeHub, caches: &Path, args: &[&str]) -> Output {
    cli_support::inferkit_with_hub(&hub.hub.url(), caches)
        .env("OLLAMA_REGISTRY", hub.hub.url())
        .env("OLLAMA_MODELS", caches.join("ollama"))
        .args(args)
        .output()
        .expect("run inferkit")
}

/// `plan MODEL --json` for llama-box on the laptop cluster, written to `plan.json` in
/// `caches`: the plan and the file's path.
fn plan_llama_box(hub: &FakeHub, caches: &Path, model: &str) -> (Value, String) {
    let output = run(
        hub,
        caches,
        &[
            "plan",
            model,
            "--json",
            "--backend",
            "llama-box",
            "--cluster",
            "examples/clusters/laptop.json",
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let plan_file = caches.join("plan.json");
    std::fs::write(&plan_file, &output.stdout).unwrap();
    let plan = serde_json::from_slice(&output.stdout).unwrap();
    (plan, plan_file.display().to_string())
}

/// The value after `flag` among the first process's arguments.
fn flag_value(plan: &Value, flag: &str) -> String {
    let args = plan["processes"][0]["args"].as_array().unwrap();
    let at = args.iter().position(|a| a == flag).unwrap();
    args[at + 1].as_str().unwrap().to_string()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `plan REFERENCE --format kubernetes` for llama-box on the laptop cluster against the fake
/// hub (also the Ollama registry; Ollama's store in `ollama/`), with `args` added: the
/// Deployment, the script of its download init container, and what was printed on stderr
/// (the export's notes).
fn kubernetes_download(
    hub: &FakeHub,
    caches: &Path,
    reference: &str,
    args: &[&str],
) -> (Value, String, String) {
    let mut all = vec![
        "plan",
        reference,
        "--format",
        "kubernetes",
        "--backend",
        "llama-box",
        "--cluster",
        "examples/clusters/laptop.json",
        "--image",
        "llama-box=gpustack/llama-box:v0.0.140",
    ];
    all.extend_from_slice(args);
    let output = run(hub, caches, &all);
    assert!(output.status.success(), "{}", text(&output));
    let yaml = String::from_utf8(output.stdout.clone()).unwrap();
    let deployment = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|document| Value::deserialize(document).unwrap())
        .find(|object| object["kind"] == "Deployment")
        .unwrap();
    let init = &deployment["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "download-model");
    let script = init["command"][2].as_str().unwrap().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (deployment, script, stderr)
}

/// The init container's script run as the container runs it (`sh`, `curl`, `sha256sum`),
/// stopped after two minutes.
fn init_container(script: &str) -> std::process::Command {
    let mut sh = std::process::Command::new("timeout");
    sh.args(["120", "sh", "-c", script]);
    sh
}

/// The main container's `--model` argument.
fn model_arg(deployment: &Value) -> String {
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    let at = args.iter().position(|a| a == "--model").unwrap();
    args[at + 1].as_str().unwrap().to_string()
}

/// Files in `folder` named `*.incomplete`.
fn leftovers(folder: &Path) -> Vec<String> {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".incomplete"))
                .collect()
        })
        .unwrap_or_default()
}

/// The three shards of the split Q8_0 fixture as one repository, and their names and bytes.
fn split_model_files() -> (Repo, Vec<(String, Vec<u8>)>) {
    let shards: Vec<(String, Vec<u8>)> = (1..=3)
        .map(|n| {
            let name = format!("qwen2.5-0.5b-instruct-Q8_0-0000{n}-of-00003.gguf");
            let bytes = read_fixture(&format!("gguf/{name}"));
            (name, bytes)
        })
        .collect();
    let repo = shards
        .iter()
        .fold(Repo::new("files"), |repo, (name, bytes)| {
            repo.file(name, bytes.clone())
        });
    (repo, shards)
}

/// `repo` with its `0.5b` tag moved to another manifest: the same layers, other bytes.
fn with_moved_tag(mut repo: Repo) -> Repo {
    let manifest = String::from_utf8(repo.files["manifests/0.5b"].clone()).unwrap();
    let moved = manifest.replace("\"schemaVersion\":2", "\"schemaVersion\": 2");
    assert_ne!(moved, manifest, "the manifest's bytes change");
    repo.files
        .insert("manifests/0.5b".into(), moved.into_bytes());
    repo
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

#[tokio::test(flavor = "multi_thread")]
async fn an_ollama_model_downloads_into_ollamas_store_with_its_manifest() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let model = read_fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    let repo = ollama_model("0.5b", model.clone(), None);
    let manifest = repo.files["manifests/0.5b"].clone();
    hub.add("library/qwen2.5", repo.clone());
    let caches = tempfile::tempdir().unwrap();
    let (plan, plan_arg) = plan_llama_box(&hub, caches.path(), "ollama://qwen2.5:0.5b");

    let store = caches.path().join("ollama");
    let step = &plan["downloads"][0];
    assert_eq!(step["hub"], "ollama");
    assert_eq!(step["repo"], "library/qwen2.5");
    assert_eq!(step["revision"], "0.5b");
    assert_eq!(step["commit"], sha256_hex(&manifest));
    assert_eq!(step["snapshot"], store.join("blobs").display().to_string());
    // Every blob of the manifest (the template and the config too), so that `ollama` can
    // run the model from its store.
    let mut blobs: Vec<&str> = repo
        .files
        .keys()
        .filter(|name| name.starts_with("sha256-"))
        .map(String::as_str)
        .collect();
    blobs.sort();
    let listed: Vec<&str> = step["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed, blobs);
    let model_blob = format!("sha256-{}", sha256_hex(&model));
    assert_eq!(
        flag_value(&plan, "--model"),
        store.join("blobs").join(&model_blob).display().to_string()
    );

    let dry = run(&hub, caches.path(), &["serve", &plan_arg, "--dry-run"]);
    assert!(
        text(&dry).contains("of ollama://library/qwen2.5:0.5b (sha256:"),
        "{}",
        text(&dry)
    );
    assert!(!store.exists(), "a dry run downloads nothing");

    let served = run(&hub, caches.path(), &["serve", &plan_arg]);
    assert_eq!(
        std::fs::read(store.join("blobs").join(&model_blob)).unwrap(),
        model,
        "{}",
        text(&served)
    );
    for blob in &blobs {
        assert_eq!(
            std::fs::read(store.join("blobs").join(blob)).unwrap(),
            repo.files[*blob]
        );
    }
    let host = hub.hub.url().replace("http://", "");
    let written = store
        .join("manifests")
        .join(host)
        .join("library/qwen2.5/0.5b");
    assert_eq!(std::fs::read(written).unwrap(), manifest);

    // Now in Ollama's store: planned from there, with nothing to download.
    let (again, _) = plan_llama_box(&hub, caches.path(), "ollama://qwen2.5:0.5b");
    assert!(
        again
            .get("downloads")
            .is_none_or(|d| d == &serde_json::json!([]))
    );
    assert_eq!(flag_value(&again, "--model"), flag_value(&plan, "--model"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ollama_manifest_changed_since_planning_is_not_written() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let model = read_fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    hub.add("library/qwen2.5", ollama_model("0.5b", model.clone(), None));
    let caches = tempfile::tempdir().unwrap();
    let (_, plan_arg) = plan_llama_box(&hub, caches.path(), "ollama://qwen2.5:0.5b");
    // The tag moves to another manifest (the same model, a different template).
    let moved = with_moved_tag(ollama_model("0.5b", model, None));
    hub.add("library/qwen2.5", moved);
    let served = run(&hub, caches.path(), &["serve", &plan_arg]);
    assert!(!served.status.success());
    assert!(text(&served).contains("plan again"), "{}", text(&served));
    assert!(!caches.path().join("ollama/manifests").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_model_downloads_into_a_folder_keyed_by_its_address_and_version() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let (repo, shards) = split_model_files();
    hub.add("files/x", repo);
    let caches = tempfile::tempdir().unwrap();
    let url = format!("{}/blob/files/x/{}?download=1", hub.cdn.url(), shards[0].0);
    let (plan, plan_arg) = plan_llama_box(&hub, caches.path(), &url);

    let step = &plan["downloads"][0];
    assert_eq!(step["hub"], "url");
    assert_eq!(step["repo"], url);
    let folder = std::path::PathBuf::from(step["snapshot"].as_str().unwrap());
    assert!(
        folder.starts_with(caches.path().join("headers/models")),
        "{folder:?}"
    );
    let files = step["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for (file, (name, bytes)) in files.iter().zip(&shards) {
        assert_eq!(file["path"], name.as_str());
        assert_eq!(file["size"], bytes.len() as u64);
        assert_eq!(
            file["url"],
            format!("{}/blob/files/x/{name}?download=1", hub.cdn.url())
        );
    }
    assert_eq!(
        flag_value(&plan, "--model"),
        folder.join(&shards[0].0).display().to_string()
    );

    // A download stopped halfway resumes from where it stopped.
    std::fs::create_dir_all(&folder).unwrap();
    let partial = folder.join(format!("{}.incomplete", shards[1].0));
    std::fs::write(&partial, &shards[1].1[..1000]).unwrap();
    hub.reset();
    let served = run(&hub, caches.path(), &["serve", &plan_arg]);
    for (name, bytes) in &shards {
        assert_eq!(
            &std::fs::read(folder.join(name)).unwrap(),
            bytes,
            "{}",
            text(&served)
        );
    }
    assert!(!partial.exists());
    let ranges: Vec<String> = hub
        .cdn
        .requests_log()
        .iter()
        .filter(|r| r.path().ends_with(&shards[1].0))
        .filter_map(|r| r.header("range").map(String::from))
        .collect();
    assert!(
        ranges.iter().all(|r| r.starts_with("bytes=1000-")),
        "{ranges:?}"
    );
}

/// `plan REFERENCE --json --backend vllm` of the Llama-3.1-8B-Instruct fixture served as
/// `repo` by a loopback hub, with `env` set: the plan, after checking that it succeeded, never
/// shows the token and carries no download step (vLLM fetches the repository itself); with
/// the hub's address (`{hub}` in `env` values stands for it).
async fn plan_vllm_fetching_itself(
    reference: &str,
    repo: &str,
    env: &[(&str, &str)],
) -> (Value, String) {
    let hub = FakeHub::start(Duration::ZERO).await;
    hub.add(
        repo,
        Repo::new(COMMIT).folder(&fixture("hf/Llama-3.1-8B-Instruct"), ""),
    );
    let caches = tempfile::tempdir().unwrap();
    let url = hub.hub.url();
    let mut command = cli_support::inferkit_with_hub(&url, caches.path());
    for (name, value) in env {
        command.env(name, value.replace("{hub}", &url));
    }
    let output = command
        .args([
            "plan",
            reference,
            "--json",
            "--backend",
            "vllm",
            "--cluster",
            "examples/clusters/h100x8.json",
        ])
        .output()
        .expect("run inferkit");
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains(TOKEN), "{}", text(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        plan.get("downloads")
            .is_none_or(|d| d == &serde_json::json!([]))
    );
    (plan, url)
}

/// The other case: a repository vLLM fetches itself carries no download step; its processes
/// get the mirror the plan read it from and the token as a placeholder naming its variable
/// (filled in by the launcher), never the token.
#[tokio::test(flavor = "multi_thread")]
async fn a_repository_vllm_fetches_itself_gets_the_mirror_and_a_token_placeholder() {
    let (plan, hub) = plan_vllm_fetching_itself(
        "hf://meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        &[("HF_TOKEN", TOKEN)],
    )
    .await;
    let main = plan["processes"].as_array().unwrap().last().unwrap();
    assert_eq!(main["args"][1], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(main["env"]["HF_ENDPOINT"], hub);
    assert_eq!(main["env"]["HF_TOKEN"], "${HF_TOKEN}");
}

/// The same for a ModelScope repository vLLM fetches itself (`VLLM_USE_MODELSCOPE`): its SDK
/// reads the mirror from `MODELSCOPE_DOMAIN` and the token from `MODELSCOPE_API_TOKEN`, which the
/// plan names as a placeholder only.
#[tokio::test(flavor = "multi_thread")]
async fn a_modelscope_repository_vllm_fetches_itself_gets_the_mirror_and_a_token_placeholder() {
    let (plan, hub) = plan_vllm_fetching_itself(
        "ms://LLM-Research/Meta-Llama-3.1-8B-Instruct",
        "LLM-Research/Meta-Llama-3.1-8B-Instruct",
        &[
            ("MODELSCOPE_ENDPOINT", "{hub}"),
            ("MODELSCOPE_API_TOKEN", TOKEN),
        ],
    )
    .await;
    let main = plan["processes"].as_array().unwrap().last().unwrap();
    assert_eq!(main["env"]["VLLM_USE_MODELSCOPE"], "True");
    // A plain-http stand-in keeps its scheme; an https mirror would be given as its host.
    assert_eq!(main["env"]["MODELSCOPE_DOMAIN"], hub);
    assert_eq!(
        main["env"]["MODELSCOPE_API_TOKEN"],
        "${MODELSCOPE_API_TOKEN}"
    );
    assert!(main["env"].get("HF_ENDPOINT").is_none());
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
        let mut sh = init_container(script);
        sh.env("HF_TOKEN", TOKEN);
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

/// `plan ollama://... --format kubernetes`: the init container fetches the registry's manifest
/// (checked against the plan's digest), every blob (each checked against its digest) into
/// Ollama's store, and writes the manifest last. Run here against the loopback registry, whose
/// blobs redirect to another host as Ollama's do.
#[tokio::test(flavor = "multi_thread")]
async fn the_kubernetes_init_container_fetches_an_ollama_model_into_ollamas_store() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let model = read_fixture("gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    let repo = ollama_model("0.5b", model.clone(), None);
    let manifest = repo.files["manifests/0.5b"].clone();
    hub.add("library/qwen2.5", repo.clone());
    let caches = tempfile::tempdir().unwrap();
    let (deployment, script, notes) =
        kubernetes_download(&hub, caches.path(), "ollama://qwen2.5:0.5b", &[]);
    assert!(notes.contains("the manifest's digests"), "{notes}");
    let store = caches.path().join("ollama");
    let model_blob = store
        .join("blobs")
        .join(format!("sha256-{}", sha256_hex(&model)));
    assert_eq!(model_arg(&deployment), model_blob.display().to_string());

    let first = init_container(&script).output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(std::fs::read(&model_blob).unwrap(), model);
    for (name, bytes) in repo.files.iter().filter(|(n, _)| n.starts_with("sha256-")) {
        assert_eq!(
            &std::fs::read(store.join("blobs").join(name)).unwrap(),
            bytes
        );
    }
    let host = hub.hub.url().replace("http://", "");
    let written = store.join("manifests").join(&host).join("library/qwen2.5");
    assert_eq!(std::fs::read(written.join("0.5b")).unwrap(), manifest);
    assert!(leftovers(&written).is_empty() && leftovers(&store.join("blobs")).is_empty());

    hub.reset();
    let second = init_container(&script).output().unwrap();
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        hub.requests(),
        0,
        "the model was there: nothing fetched again"
    );

    // A blob whose bytes are not its digest is removed, and the manifest is not written.
    std::fs::remove_dir_all(&store).unwrap();
    let mut corrupt = repo.clone();
    let template = format!("sha256-{}", sha256_hex(b"{{ .Prompt }}"));
    corrupt
        .files
        .insert(template.clone(), b"{{ .Other }}".to_vec());
    hub.add("library/qwen2.5", corrupt);
    let refused = init_container(&script).output().unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("SHA-256 differs"),
        "{}",
        text(&refused)
    );
    assert!(!store.join("blobs").join(&template).exists());
    assert!(!written.join("0.5b").exists());

    // A tag moved since planning fails before any blob is fetched.
    std::fs::remove_dir_all(&store).unwrap();
    let moved = with_moved_tag(repo.clone());
    hub.add("library/qwen2.5", moved);
    let refused = init_container(&script).output().unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("plan again"), "{}", text(&refused));
    assert!(!store.join("blobs").join(&template).exists());
    assert!(!written.join("0.5b").exists());
}

/// `plan URL --format kubernetes` of a split model: the init container fetches every shard
/// into the versioned folder the backend reads, resuming a partial file, checking sizes; the
/// notes say a URL's files are not verified (no checksum is published).
#[tokio::test(flavor = "multi_thread")]
async fn the_kubernetes_init_container_fetches_a_url_model_into_its_versioned_folder() {
    let hub = FakeHub::start(Duration::ZERO).await;
    let (repo, shards) = split_model_files();
    hub.add("files/x", repo.clone());
    let caches = tempfile::tempdir().unwrap();
    let url = format!("{}/blob/files/x/{}?download=1", hub.cdn.url(), shards[0].0);
    let (deployment, script, notes) = kubernetes_download(&hub, caches.path(), &url, &[]);
    assert!(notes.contains("a URL publishes no checksum"), "{notes}");
    let model = std::path::PathBuf::from(model_arg(&deployment));
    let folder = model.parent().unwrap();
    assert!(
        folder.starts_with(caches.path().join("headers/models")),
        "{folder:?}"
    );

    std::fs::create_dir_all(folder).unwrap();
    let partial = folder.join(format!("{}.incomplete", shards[1].0));
    std::fs::write(&partial, &shards[1].1[..1000]).unwrap();
    hub.reset();
    let first = init_container(&script).output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    for (name, bytes) in &shards {
        assert_eq!(&std::fs::read(folder.join(name)).unwrap(), bytes);
    }
    assert!(leftovers(folder).is_empty());
    let ranges: Vec<String> = hub
        .cdn
        .requests_log()
        .iter()
        .filter(|r| r.path().ends_with(&shards[1].0))
        .filter_map(|r| r.header("range").map(String::from))
        .collect();
    assert_eq!(ranges, ["bytes=1000-"], "resumed where it stopped");

    // A file of another size at the address is removed, not used.
    std::fs::remove_file(folder.join(&shards[2].0)).unwrap();
    let mut changed = repo;
    changed.files.insert(shards[2].0.clone(), vec![0; 100]);
    hub.add("files/x", changed);
    let refused = init_container(&script).output().unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("bytes; removed"),
        "{}",
        text(&refused)
    );
    assert!(!folder.join(&shards[2].0).exists());
    assert!(leftovers(folder).is_empty());
}
