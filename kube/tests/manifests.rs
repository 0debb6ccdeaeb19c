//! Every kind of plan the export handles, planned by the real drivers from the repository's
//! model fixtures, written as manifests, validated against the strict Kubernetes 1.37 schemas
//! and the LeaderWorkerSet v1 CRD schema, and snapshotted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inferkit::{Cluster, DeploymentPlan, DownloadFile, DownloadStep, ModelSpec, PlanOptions};
use inferkit_kube::{Export, KubernetesOptions, ModelVolume, Object, export};
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;

/// A path in the repository (canonical, so that snapshots can redact it).
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap()
        .join(path)
}

fn plan(model: &str, cluster: Value, edit: impl FnOnce(&mut ModelSpec)) -> DeploymentPlan {
    let cluster: Cluster = serde_json::from_value(cluster).unwrap();
    plan_on(model, &cluster, edit)
}

fn plan_on(model: &str, cluster: &Cluster, edit: impl FnOnce(&mut ModelSpec)) -> DeploymentPlan {
    let mut spec = ModelSpec::local(repo(model));
    edit(&mut spec);
    inferkit::plan(
        &inferkit::default_registry(),
        &spec,
        cluster,
        &PlanOptions::default(),
    )
    .unwrap()
}

fn worker(name: &str, address: &str, gpus: u32, product: &str, gib: u64) -> Value {
    let devices: Vec<_> = (0..gpus)
        .map(|i| {
            json!({"index": i, "vendor": "nvidia", "name": product,
                   "memory": {"total": gib * GIB, "used": 0}, "compute_capability": "9.0"})
        })
        .collect();
    json!({"name": name, "address": address, "os": "linux", "arch": "amd64", "cpu_cores": 64,
           "ram": {"total": 1024 * GIB, "used": 16 * GIB}, "devices": devices})
}

fn options(backend: &str, image: &str) -> KubernetesOptions {
    KubernetesOptions {
        namespace: "inference".to_string(),
        images: BTreeMap::from([(backend.to_string(), image.to_string())]),
        ..KubernetesOptions::default()
    }
}

/// The compiled schemas: Kubernetes 1.37's strict standalone schemas (kubernetes-validate),
/// and the LeaderWorkerSet CRD's openAPIV3Schema closed the same way.
struct Validator {
    schemas: boon::Schemas,
    kinds: BTreeMap<&'static str, boon::SchemaIndex>,
}

const SCHEMAS: &str = "kube/tests/fixtures/schemas";

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Structural CRD schemas let the API server prune unknown fields silently; closing every
/// object that lists its properties makes an unknown field a validation error instead, as the
/// strict Kubernetes schemas do.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let open = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            if map.contains_key("properties") && !map.contains_key("additionalProperties") && !open
            {
                map.insert("additionalProperties".to_string(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

impl Validator {
    fn new() -> Self {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let k8s = repo(SCHEMAS).join("k8s-v1.37");
        compiler
            .add_resource(
                "https://kubernetes.io/api/_definitions.json",
                read_json(&k8s.join("_definitions.json")),
            )
            .unwrap();
        let mut kinds = BTreeMap::new();
        for (kind, file) in [
            ("Deployment", "deployment-apps-v1"),
            ("Service", "service-v1"),
            ("ConfigMap", "configmap-v1"),
            ("PodTemplateSpec", "podtemplatespec-v1"),
        ] {
            let schema = read_json(&k8s.join(format!("{file}.json")));
            let id = schema["$id"].as_str().unwrap().to_string();
            compiler.add_resource(&id, schema).unwrap();
            kinds.insert(kind, compiler.compile(&id, &mut schemas).unwrap());
        }
        let mut lws = read_json(&repo(SCHEMAS).join("leaderworkerset-v1.json"));
        close_objects(&mut lws);
        let url = "https://leaderworkerset.x-k8s.io/v1/schema.json";
        compiler.add_resource(url, lws).unwrap();
        kinds.insert(
            "LeaderWorkerSet",
            compiler.compile(url, &mut schemas).unwrap(),
        );
        Validator { schemas, kinds }
    }

    /// Validates every object (and a LeaderWorkerSet's pod templates against Kubernetes' own
    /// schema too), returning the YAML.
    fn check(&self, export: &Export) -> String {
        for object in &export.objects {
            let value = serde_json::to_value(object).unwrap();
            let kind = value["kind"].as_str().unwrap();
            self.validate(kind, &value);
            if matches!(object, Object::LeaderWorkerSet(_)) {
                let templates = &value["spec"]["leaderWorkerTemplate"];
                self.validate("PodTemplateSpec", &templates["leaderTemplate"]);
                self.validate("PodTemplateSpec", &templates["workerTemplate"]);
            }
        }
        let yaml = export.to_yaml().unwrap();
        assert_eq!(yaml.matches("---\n").count(), export.objects.len());
        yaml
    }

    fn validate(&self, kind: &str, value: &Value) {
        let index = self.kinds[kind];
        if let Err(error) = self.schemas.validate(value, index) {
            panic!("{kind} fails its schema: {error:#}\n{value:#}");
        }
    }
}

fn kinds(export: &Export) -> Vec<String> {
    export
        .objects
        .iter()
        .map(|o| {
            serde_json::to_value(o).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn the_validator_refuses_an_unknown_field_and_a_wrong_type() {
    let validator = Validator::new();
    let plan = plan(
        "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        json!({"workers": [worker("gpu-1", "10.0.0.1", 1, "NVIDIA GeForce RTX 4090", 24)]}),
        |_| {},
    );
    let export = export(&plan, &options("llama-box", "gpustack/llama-box:v0.0.140")).unwrap();
    let mut deployment = serde_json::to_value(&export.objects[0]).unwrap();
    assert_eq!(deployment["kind"], "Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["gpus"] = json!(1);
    let index = validator.kinds["Deployment"];
    assert!(validator.schemas.validate(&deployment, index).is_err());
    let mut service = serde_json::to_value(&export.objects[1]).unwrap();
    service["spec"]["ports"][0]["port"] = json!("http");
    assert!(
        validator
            .schemas
            .validate(&service, validator.kinds["Service"])
            .is_err()
    );
    let mut set = json!({"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": {"name": "x"}, "spec": {"startupPolicy": "LeaderCreated",
        "leaderWorkerTemplate": {"size": 2, "workerTemplate": {"spec": {"containers": []}}}}});
    validator.validate("LeaderWorkerSet", &set);
    set["spec"]["leaderWorkerTemplate"]["groupSize"] = json!(2);
    assert!(
        validator
            .schemas
            .validate(&set, validator.kinds["LeaderWorkerSet"])
            .is_err()
    );
}

#[test]
fn llama_box_on_one_gpu_is_a_deployment_and_a_service() {
    let plan = plan(
        "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        json!({"workers": [worker("gpu-1", "10.0.0.1", 1, "NVIDIA GeForce RTX 4090", 24)]}),
        |_| {},
    );
    let mut options = options("llama-box", "gpustack/llama-box:v0.0.140");
    options.name = Some("qwen2-5-0-5b".to_string());
    options.model_volume = Some(ModelVolume::HostPath {
        path: repo("tests/fixtures/gguf").display().to_string(),
    });
    let export = export(&plan, &options).unwrap();
    assert_eq!(kinds(&export), ["Deployment", "Service"]);
    let yaml = Validator::new().check(&export);
    assert!(yaml.contains("nvidia.com/gpu: '1'"), "{yaml}");
    assert!(!yaml.contains("CUDA_VISIBLE_DEVICES"), "{yaml}");
    insta::assert_snapshot!(redact_repo(&yaml));
}

/// Paths of this checkout vary; snapshots keep them as `$REPO`.
fn redact_repo(text: &str) -> String {
    let root = repo("");
    text.replace(root.to_str().unwrap().trim_end_matches('/'), "$REPO")
}

fn main_args(export: &Export, template: &str) -> Vec<String> {
    let value = serde_json::to_value(
        export
            .objects
            .iter()
            .find(|o| !matches!(o, Object::ConfigMap(_) | Object::Service(_)))
            .unwrap(),
    )
    .unwrap();
    let pod = match template {
        "deployment" => &value["spec"]["template"],
        "leader" => &value["spec"]["leaderWorkerTemplate"]["leaderTemplate"],
        _ => &value["spec"]["leaderWorkerTemplate"]["workerTemplate"],
    };
    let container = &pod["spec"]["containers"][0];
    container["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(container["args"].as_array().into_iter().flatten())
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn vllm_tensor_parallel_8_gets_shared_memory_and_the_secret_by_reference() {
    let plan = plan(
        "tests/fixtures/hf/Qwen2.5-72B-Instruct",
        json!({"workers": [worker("dgx-1", "10.0.0.1", 8, "NVIDIA-H100-80GB-HBM3", 80)]}),
        |spec| spec.backend_parameters = vec!["--tensor-parallel-size".into(), "8".into()],
    );
    let mut options = options("vllm", "vllm/vllm-openai:v0.11.0");
    options.name = Some("qwen2-5-72b".to_string());
    options.secret = Some("hf-token".to_string());
    options.model_volume = Some(ModelVolume::PersistentVolumeClaim {
        claim: "models".to_string(),
        mount_path: repo("tests/fixtures/hf").display().to_string(),
    });
    let export = export(&plan, &options).unwrap();
    assert_eq!(kinds(&export), ["Deployment", "Service"]);
    let yaml = Validator::new().check(&export);
    let args = main_args(&export, "deployment");
    assert_eq!(args[..2], ["vllm", "serve"]);
    assert!(
        args.windows(2)
            .any(|w| w == ["--tensor-parallel-size", "8"]),
        "{args:?}"
    );
    assert!(yaml.contains("nvidia.com/gpu: '8'"), "{yaml}");
    assert!(yaml.contains("medium: Memory"), "{yaml}");
    assert!(
        yaml.contains("key: HF_TOKEN\n              name: hf-token"),
        "{yaml}"
    );
    insta::assert_snapshot!(redact_repo(&yaml));
}

#[test]
fn vllm_over_two_nodes_is_a_leader_worker_set_with_ray() {
    let cluster = json!({"workers": [
        worker("gpu-a", "10.0.0.1", 8, "NVIDIA-H100-80GB-HBM3", 80),
        worker("gpu-b", "10.0.0.2", 8, "NVIDIA-H100-80GB-HBM3", 80),
    ]});
    let plan = plan("tests/fixtures/hf/DeepSeek-V3", cluster, |_| {});
    let mut options = options("vllm", "vllm/vllm-openai:v0.11.0");
    options.name = Some("deepseek-v3".to_string());
    options.secret = Some("hf-token".to_string());
    options.tolerations = vec![k8s_openapi::api::core::v1::Toleration {
        key: Some("nvidia.com/gpu".to_string()),
        operator: Some("Exists".to_string()),
        effect: Some("NoSchedule".to_string()),
        ..Default::default()
    }];
    let export = export(&plan, &options).unwrap();
    assert_eq!(kinds(&export), ["LeaderWorkerSet", "Service"]);
    let yaml = Validator::new().check(&export);
    let leader = main_args(&export, "leader");
    assert_eq!(leader[..2], ["sh", "-c"]);
    let script = &leader[2];
    assert!(script.starts_with("ray start --head"), "{script}");
    assert!(!script.contains("--block"), "{script}");
    assert!(
        script.contains("--node-ip-address '$(INFERKIT_POD_IP)'"),
        "{script}"
    );
    assert!(script.contains("&& exec vllm serve"), "{script}");
    assert!(
        script.contains("--tensor-parallel-size 8 --pipeline-parallel-size 2"),
        "{script}"
    );
    let worker = main_args(&export, "worker");
    assert_eq!(worker[..3], ["ray", "start", "--block"]);
    assert!(
        worker
            .windows(2)
            .any(|w| w == ["--address", "$(LWS_LEADER_ADDRESS):40001"]),
        "{worker:?}"
    );
    assert!(
        !yaml.contains("10.0.0."),
        "no node address in a pod: {yaml}"
    );
    assert!(yaml.contains("size: 2"), "{yaml}");
    assert!(
        yaml.contains("restartPolicy: RecreateGroupOnPodRestart"),
        "{yaml}"
    );
    assert!(yaml.contains("startupPolicy: LeaderCreated"), "{yaml}");
    insta::assert_snapshot!(redact_repo(&yaml));
}

#[test]
fn llama_box_with_rpc_servers_reaches_them_by_stable_pod_names() {
    // One 4 GiB GPU per node: the 5.2 GB of weights need the GPUs of three nodes.
    let gpu = |name: &str, address: &str| worker(name, address, 1, "NVIDIA-GeForce-GTX-1650", 4);
    let cluster = json!({"workers": [
        gpu("node-a", "10.0.0.1"), gpu("node-b", "10.0.0.2"), gpu("node-c", "10.0.0.3"),
        gpu("node-d", "10.0.0.4"),
    ]});
    let plan = plan(
        "tests/fixtures/gguf/gemma-2-2b-F16.header.gguf",
        cluster,
        |spec| {
            spec.cpu_offloading = Some(false);
            spec.distributed_inference_across_workers = Some(true);
        },
    );
    let rpc = plan
        .processes
        .iter()
        .filter(|p| {
            p.role
                .is_subordinate(inferkit::llama_box::llamacpp::RPC_SERVER)
        })
        .count();
    assert!(rpc >= 2, "{:#?}", plan.processes);
    let mut options = options("llama-box", "gpustack/llama-box:v0.0.140");
    options.name = Some("gemma-2-2b".to_string());
    let export = export(&plan, &options).unwrap();
    assert_eq!(kinds(&export), ["LeaderWorkerSet", "Service"]);
    let yaml = Validator::new().check(&export);
    let leader = main_args(&export, "leader");
    let servers: Vec<String> = (1..=rpc)
        .map(|i| format!("gemma-2-2b-0-{i}.gemma-2-2b.inference:40001"))
        .collect();
    assert!(
        leader
            .windows(2)
            .any(|w| w[0] == "--rpc" && w[1] == servers.join(",")),
        "{leader:?}"
    );
    // The leader waits for its RPC servers before it starts.
    assert!(
        yaml.contains("until (exec 3<>/dev/tcp/gemma-2-2b-0-1.gemma-2-2b.inference/40001)"),
        "{yaml}"
    );
    insta::assert_snapshot!(redact_repo(&yaml));
}

#[test]
fn mindie_on_eight_npus_mounts_its_config_from_a_config_map() {
    let npus: Vec<_> = (0..8)
        .map(|i| {
            json!({"index": i, "vendor": "ascend", "name": "Ascend910B4",
                        "memory": {"total": 32 * GIB, "used": 0}})
        })
        .collect();
    let cluster = json!({"workers": [{"name": "atlas-01", "address": "10.0.1.1", "os": "linux",
        "arch": "arm64", "cpu_cores": 192, "ram": {"total": 1024 * GIB, "used": 0},
        "devices": npus}]});
    let plan = plan("tests/fixtures/hf/Qwen2.5-72B-Instruct", cluster, |_| {});
    assert_eq!(plan.backend, "ascend-mindie");
    let mut options = options(
        "ascend-mindie",
        "swr.cn-south-1.myhuaweicloud.com/ascendhub/mindie:2.0.RC1-800I-A2-py311-openeuler24.03-lts",
    );
    options.name = Some("qwen2-5-72b".to_string());
    let export = export(&plan, &options).unwrap();
    assert_eq!(kinds(&export), ["ConfigMap", "Deployment", "Service"]);
    let yaml = Validator::new().check(&export);
    assert!(yaml.contains("huawei.com/Ascend910: '8'"), "{yaml}");
    assert!(!yaml.contains("ASCEND_RT_VISIBLE_DEVICES"), "{yaml}");
    assert!(yaml.contains("workingDir: /inferkit/run"), "{yaml}");
    insta::assert_snapshot!(redact_repo(&yaml));
}

#[test]
fn vox_box_on_a_cpu_node_asks_for_no_accelerator() {
    let cluster = json!({"workers": [{"name": "cpu-1", "address": "10.0.0.9", "os": "linux",
        "arch": "amd64", "cpu_cores": 16, "ram": {"total": 32 * GIB, "used": 4 * GIB}, "devices": []}]});
    let plan = plan(
        "tests/fixtures/vox-box/faster-whisper-tiny.en",
        cluster,
        |_| {},
    );
    let mut options = options("vox-box", "gpustack/vox-box:v0.0.20");
    options.name = Some("whisper-tiny-en".to_string());
    options.pin_to_nodes = false;
    options.node_selector =
        BTreeMap::from([("kubernetes.io/arch".to_string(), "amd64".to_string())]);
    let export = export(&plan, &options).unwrap();
    assert_eq!(kinds(&export), ["Deployment", "Service"]);
    let yaml = Validator::new().check(&export);
    assert!(!yaml.contains("nvidia.com"), "{yaml}");
    assert!(!yaml.contains("kubernetes.io/hostname"), "{yaml}");
    insta::assert_snapshot!(redact_repo(&yaml));
}

fn one_gpu_plan(edit: impl FnOnce(&mut ModelSpec)) -> DeploymentPlan {
    plan(
        "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        json!({"workers": [worker("gpu-1", "10.0.0.1", 2, "NVIDIA GeForce RTX 4090", 24)]}),
        edit,
    )
}

fn parameter_error(result: inferkit::Result<Export>) -> (String, String) {
    match result {
        Err(inferkit::Error::InvalidParameter { name, reason }) => (name, reason),
        other => panic!("expected a parameter error, got {other:?}"),
    }
}

#[test]
fn a_backend_without_an_image_is_refused_naming_the_option() {
    let plan = one_gpu_plan(|_| {});
    let (name, reason) = parameter_error(export(&plan, &options("vllm", "vllm/vllm-openai")));
    assert_eq!(name, "images");
    assert!(reason.contains("--image llama-box=IMAGE"), "{reason}");
}

#[test]
fn a_secret_variable_needs_the_users_secret_and_never_appears_inline() {
    let plan = one_gpu_plan(|spec| {
        spec.env
            .insert("HF_TOKEN".to_string(), "hf_not_a_real_token".to_string());
    });
    let image = options("llama-box", "gpustack/llama-box:v0.0.140");
    let (name, reason) = parameter_error(export(&plan, &image));
    assert_eq!(name, "secret");
    assert!(reason.contains("HF_TOKEN"), "{reason}");
    let mut with_secret = image.clone();
    with_secret.secret = Some("hf".to_string());
    let yaml = export(&plan, &with_secret).unwrap().to_yaml().unwrap();
    assert!(!yaml.contains("hf_not_a_real_token"), "{yaml}");
    assert!(
        yaml.contains("key: HF_TOKEN\n              name: hf"),
        "{yaml}"
    );
}

#[test]
fn different_devices_on_one_node_cannot_be_asked_for_by_count() {
    let mut plan = one_gpu_plan(|spec| {
        spec.backend_parameters = vec!["--tensor-split".into(), "1,1".into()];
    });
    let devices = &mut plan.placement.workers[0].devices;
    assert_eq!(devices.len(), 2, "{devices:?}");
    devices[1].name = "NVIDIA GeForce RTX 3090".to_string();
    let error = export(&plan, &options("llama-box", "gpustack/llama-box:v0.0.140")).unwrap_err();
    assert!(error.to_string().contains("cannot say which"), "{error}");
}

#[test]
fn a_name_that_is_no_dns_label_is_refused() {
    let plan = one_gpu_plan(|_| {});
    let mut options = options("llama-box", "gpustack/llama-box:v0.0.140");
    options.name = Some("Qwen_2.5".to_string());
    let (name, _) = parameter_error(export(&plan, &options));
    assert_eq!(name, "name");
}

/// GPUStack's placement group names the nodes' IPs, which pods do not have: such a plan is
/// refused rather than exported to start and never find its Ray nodes.
#[test]
fn a_plan_naming_node_addresses_a_pod_cannot_have_is_refused() {
    let cluster = json!({"workers": [
        worker("gpu-a", "10.0.0.1", 8, "NVIDIA-H100-80GB-HBM3", 80),
        worker("gpu-b", "10.0.0.2", 8, "NVIDIA-H100-80GB-HBM3", 80),
    ]});
    let mut plan = plan("tests/fixtures/hf/DeepSeek-V3", cluster, |_| {});
    let main = plan.processes.last_mut().unwrap();
    main.env.insert(
        "GPUSTACK_RAY_PLACEMENT_GROUP_BUNDLES".to_string(),
        r#"[{"GPU": 1, "node:10.0.0.1": 0.001}]"#.to_string(),
    );
    let error = export(&plan, &options("vllm", "vllm/vllm-openai:v0.11.0")).unwrap_err();
    assert!(
        error.to_string().contains("node address 10.0.0.1"),
        "{error}"
    );
}

/// A plan of a hub GGUF model carries a download step (as `plan hf://...` writes it for a
/// model on no disk of the planning machine); here the step is attached to a plan of the
/// same file read locally, as the CLI does with the hub's header copies.
fn plan_with_download() -> DeploymentPlan {
    let mut plan = one_gpu_plan(|_| {});
    let cache = PathBuf::from("/models/hub");
    let commit = "9217f5db79a29953eb74d5343926648285ec7e67";
    let mut step = DownloadStep {
        workers: Vec::new(),
        hub: "hf".to_string(),
        endpoint: "https://huggingface.co".to_string(),
        repo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF".to_string(),
        revision: Some("main".to_string()),
        commit: commit.to_string(),
        snapshot: cache
            .join("models--Qwen--Qwen2.5-0.5B-Instruct-GGUF/snapshots")
            .join(commit),
        cache,
        files: vec![DownloadFile {
            path: "gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf".to_string(),
            size: 3_704_800,
            sha256: Some(
                "40ac98bafeeb8ddd68eb4767261df5dc6a488c1f6b1dd479c8fbcc2631329019".to_string(),
            ),
            url: None,
        }],
        bytes: 3_704_800,
        token_env: Some("HF_TOKEN".to_string()),
    };
    step.relocate(&mut plan.processes, &repo("tests/fixtures"));
    assert_eq!(step.workers, ["gpu-1"]);
    plan.downloads.push(step);
    plan
}

#[test]
fn a_hub_model_is_downloaded_by_an_init_container_into_an_empty_dir() {
    let plan = plan_with_download();
    let mut options = options("llama-box", "gpustack/llama-box:v0.0.140");
    options.name = Some("qwen2-5-0-5b".to_string());
    options.secret = Some("hf-token".to_string());
    let export = export(&plan, &options).unwrap();
    let yaml = Validator::new().check(&export);
    let value = serde_json::to_value(&export.objects[0]).unwrap();
    let pod = &value["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    assert_eq!(init["name"], "download-model");
    assert_eq!(init["image"], inferkit_kube::DEFAULT_DOWNLOAD_IMAGE);
    assert_eq!(
        init["env"],
        json!([{"name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}}}])
    );
    let script = init["command"][2].as_str().unwrap();
    let blob = "/models/hub/models--Qwen--Qwen2.5-0.5B-Instruct-GGUF/blobs/\
                40ac98bafeeb8ddd68eb4767261df5dc6a488c1f6b1dd479c8fbcc2631329019";
    assert!(
        script.contains(&format!(
            "fetch https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/\
             9217f5db79a29953eb74d5343926648285ec7e67/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf \
             {blob} 3704800 40ac98bafeeb8ddd68eb4767261df5dc6a488c1f6b1dd479c8fbcc2631329019"
        )),
        "{script}"
    );
    // One folder deeper than the snapshot: three levels up to the repository's folder.
    assert!(
        script.contains("ln -sfn ../../../blobs/40ac98ba"),
        "{script}"
    );
    assert!(!script.contains("--location-trusted"), "{script}");
    // The cache is an emptyDir, written by the download and read-only for the backend.
    assert_eq!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "model-cache")
            .unwrap()["emptyDir"],
        json!({})
    );
    assert_eq!(
        init["volumeMounts"],
        json!([{"name": "model-cache", "mountPath": "/models/hub"}])
    );
    let args = main_args(&export, "deployment");
    let model = &args[args.iter().position(|a| a == "--model").unwrap() + 1];
    assert_eq!(
        model,
        "/models/hub/models--Qwen--Qwen2.5-0.5B-Instruct-GGUF/snapshots/\
         9217f5db79a29953eb74d5343926648285ec7e67/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"
    );
    assert!(
        export.notes.iter().any(|n| n.contains("into an emptyDir")),
        "{:?}",
        export.notes
    );
    insta::assert_snapshot!(redact_repo(&yaml));
}

#[test]
fn a_download_into_the_model_claim_writes_it_and_needs_the_secret() {
    let plan = plan_with_download();
    let mut options = options("llama-box", "gpustack/llama-box:v0.0.140");
    options.model_volume = Some(ModelVolume::PersistentVolumeClaim {
        claim: "models".to_string(),
        mount_path: "/models".to_string(),
    });
    let (name, reason) = parameter_error(export(&plan, &options));
    assert_eq!(name, "secret");
    assert!(reason.contains("HF_TOKEN"), "{reason}");
    options.secret = Some("hf-token".to_string());
    let export = export(&plan, &options).unwrap();
    Validator::new().check(&export);
    let value = serde_json::to_value(&export.objects[0]).unwrap();
    let pod = &value["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        json!([{"name": "model", "persistentVolumeClaim": {"claimName": "models"}}])
    );
    let init = &pod["initContainers"][0];
    assert_eq!(
        init["volumeMounts"],
        json!([{"name": "model", "mountPath": "/models"}])
    );
    assert_eq!(init["securityContext"], json!({"runAsUser": 0}));
    let main = &pod["containers"][0]["volumeMounts"];
    assert_eq!(
        main,
        &json!([{"name": "model", "mountPath": "/models", "readOnly": true}])
    );
}

/// A node of MIG instances under GPU Feature Discovery's mixed strategy (`probe --kubernetes`
/// of NVIDIA's captured labels): the pod asks for the instance's own resource.
#[test]
fn a_mig_instance_of_the_mixed_strategy_is_asked_for_by_its_profile() {
    let read = inferkit::probe::kubernetes::load(
        &repo("probe/tests/fixtures/kubernetes/nodes-gfd-a100-mig-mixed.json"),
        None,
    )
    .unwrap();
    let plan = plan_on(
        "tests/fixtures/gguf/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf",
        &read.cluster,
        |_| {},
    );
    let claim = &plan.placement.workers[0];
    let [device] = &claim.devices[..] else {
        panic!("{:?}", claim.devices)
    };
    let profile = device.name.rsplit(' ').next().unwrap();
    let export = export(&plan, &options("llama-box", "gpustack/llama-box:v0.0.140")).unwrap();
    let yaml = Validator::new().check(&export);
    assert!(
        yaml.contains(&format!("nvidia.com/mig-{profile}: '1'")),
        "{yaml}"
    );
    assert!(!yaml.contains("nvidia.com/gpu:"), "{yaml}");
}

/// CUDA gives a process one MIG instance: placement never plans a process over two, and a plan
/// edited to do so is refused by the export as a guard.
#[test]
fn a_process_over_two_mig_instances_is_refused() {
    let mut plan = one_gpu_plan(|spec| {
        spec.backend_parameters = vec!["--tensor-split".into(), "1,1".into()];
    });
    for device in &mut plan.placement.workers[0].devices {
        device.name = "A100-SXM4-40GB-MIG-3g.20gb".to_string();
    }
    let error = export(&plan, &options("llama-box", "gpustack/llama-box:v0.0.140")).unwrap_err();
    assert!(error.to_string().contains("one MIG instance"), "{error}");
}

/// An Ollama download: the manifest is fetched (and checked) before the blobs and renamed into
/// Ollama's store after them; a blob not named by its digest, or a hub the export has no
/// layout for, is refused. (`cli/tests/download.rs` runs such scripts against a loopback
/// registry.)
#[test]
fn an_ollama_download_writes_the_manifest_last_and_refuses_what_it_cannot_check() {
    let digest = "40ac98bafeeb8ddd68eb4767261df5dc6a488c1f6b1dd479c8fbcc2631329019";
    let manifest = "6c1bdb5b8f7a1e4d3ab0e1e2f41f3c5e2b1d1a0f9e8d7c6b5a4f3e2d1c0b9a87";
    let mut plan = one_gpu_plan(|_| {});
    let store = PathBuf::from("/models/ollama");
    let mut step = DownloadStep {
        workers: Vec::new(),
        hub: "ollama".to_string(),
        endpoint: "https://registry.ollama.ai".to_string(),
        repo: "library/qwen2.5".to_string(),
        revision: Some("0.5b".to_string()),
        commit: manifest.to_string(),
        snapshot: store.join("blobs"),
        cache: store,
        files: vec![DownloadFile {
            path: format!("sha256-{digest}"),
            size: 3_704_800,
            sha256: Some(digest.to_string()),
            url: None,
        }],
        bytes: 3_704_800,
        token_env: None,
    };
    step.relocate(&mut plan.processes, &repo("tests/fixtures/gguf"));
    plan.downloads.push(step);
    let options = options("llama-box", "gpustack/llama-box:v0.0.140");
    let export = export(&plan, &options).unwrap();
    Validator::new().check(&export);
    let value = serde_json::to_value(&export.objects[0]).unwrap();
    let script = value["spec"]["template"]["spec"]["initContainers"][0]["command"][2]
        .as_str()
        .unwrap()
        .to_string();
    let at = |needle: &str| {
        script
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {script}"))
    };
    let fetch_manifest = at(&format!(
        "manifest https://registry.ollama.ai/v2/library/qwen2.5/manifests/0.5b \
         /models/ollama/manifests/registry.ollama.ai/library/qwen2.5/0.5b {manifest}"
    ));
    let blob = at(&format!(
        "fetch https://registry.ollama.ai/v2/library/qwen2.5/blobs/sha256:{digest} \
         /models/ollama/blobs/sha256-{digest} 3704800 {digest}"
    ));
    let rename =
        at("mv /models/ollama/manifests/registry.ollama.ai/library/qwen2.5/0.5b.incomplete");
    assert!(fetch_manifest < blob && blob < rename, "{script}");

    let mut misnamed = plan.clone();
    misnamed.downloads[0].files[0].path = "model.gguf".to_string();
    let error = export_error(&misnamed, &options);
    assert!(error.contains("not named by its digest"), "{error}");
    let mut unknown = plan;
    unknown.downloads[0].hub = "s3".to_string();
    let error = export_error(&unknown, &options);
    assert!(error.contains("model volume"), "{error}");
}

fn export_error(plan: &DeploymentPlan, options: &KubernetesOptions) -> String {
    export(plan, options).unwrap_err().to_string()
}

/// MindIE across two Atlas 800I A2 nodes (2 × 8 NPUs, the RoCE addresses configured on the
/// driver, as `inferkit serve` needs them): the rank table would name each NPU's device_ip and
/// each pod's IP, which only the cluster knows at run time, so the export refuses, naming what
/// provides them and how to run the plan instead.
#[test]
fn mindie_across_two_nodes_is_refused_naming_what_the_cluster_must_provide() {
    let node = |name: &str, address: &str| {
        let npus: Vec<_> = (0..8)
            .map(|i| {
                json!({"index": i, "vendor": "ascend", "name": "Ascend910B4",
                       "memory": {"total": 16 * GIB, "used": 0}})
            })
            .collect();
        json!({"name": name, "address": address, "os": "linux", "arch": "arm64",
               "cpu_cores": 192, "ram": {"total": 1024 * GIB, "used": 0}, "devices": npus})
    };
    let cluster: Cluster = serde_json::from_value(
        json!({"workers": [node("atlas-01", "10.0.1.1"), node("atlas-02", "10.0.1.2")]}),
    )
    .unwrap();
    let mindie = cluster
        .workers
        .iter()
        .flat_map(|w| w.devices.iter().map(move |d| (w, d)))
        .fold(inferkit::mindie::MindIe::new(), |backend, (w, d)| {
            let id = inferkit::DeviceId {
                worker: w.name.clone(),
                index: d.index,
            };
            let ip = format!("192.168.{}.{}", &w.name[w.name.len() - 1..], d.index);
            backend.with_device_ip(id, ip)
        });
    let registry = inferkit::Registry::new().with(mindie);
    let mut spec = ModelSpec::local(repo("tests/fixtures/hf/Qwen2.5-72B-Instruct"));
    spec.distributed_inference_across_workers = Some(true);
    let plan = inferkit::plan(&registry, &spec, &cluster, &PlanOptions::default()).unwrap();
    assert_eq!(plan.backend, "ascend-mindie");
    assert_eq!(plan.placement.workers.len(), 2, "{:?}", plan.placement);
    let options = options(
        "ascend-mindie",
        "swr.cn-south-1.myhuaweicloud.com/ascendhub/mindie:2.0.RC1-800I-A2-py311-openeuler24.03-lts",
    );
    let error = export(&plan, &options).unwrap_err().to_string();
    for needed in [
        "device_ip",
        "MIES_CONTAINER_IP",
        "ascend.kubectl.kubernetes.io/ascend-910-configuration",
        "Ascend Operator",
        "/user/serverid/devindex/config",
        "not for a LeaderWorkerSet",
        "rank_id 0",
        "inferkit serve` on workers atlas-01, atlas-02",
    ] {
        assert!(error.contains(needed), "{needed}: {error}");
    }
}
