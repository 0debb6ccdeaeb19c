//! Every kind of plan the export handles, planned by the real drivers from the repository's
//! model fixtures, written as manifests, validated against the strict Kubernetes 1.37 schemas
//! and the LeaderWorkerSet and AscendJob v1 CRD schemas, and snapshotted.

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
        let mut ascend_job = read_json(&repo(SCHEMAS).join("ascendjob-v1.json"));
        close_objects(&mut ascend_job);
        let url = "https://mindxdl.gitee.com/v1/ascendjob.json";
        compiler.add_resource(url, ascend_job).unwrap();
        kinds.insert("AscendJob", compiler.compile(url, &mut schemas).unwrap());
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
            if matches!(object, Object::AscendJob(_)) {
                for replica in ["Master", "Worker"] {
                    let template = &value["spec"]["replicaSpecs"][replica]["template"];
                    self.validate("PodTemplateSpec", template);
                }
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
    let mut job = json!({"apiVersion": "mindxdl.gitee.com/v1", "kind": "AscendJob",
        "metadata": {"name": "x"}, "spec": {"runPolicy": {}, "replicaSpecs": {"Master":
        {"replicas": 1, "template": {"spec": {"containers": []}}}}}});
    validator.validate("AscendJob", &job);
    job["spec"]["replicaSpecs"]["Master"]["replica"] = json!(1);
    assert!(
        validator
            .schemas
            .validate(&job, validator.kinds["AscendJob"])
            .is_err()
    );
    job["spec"]["replicaSpecs"]["Master"]
        .as_object_mut()
        .unwrap()
        .remove("replica");
    job["spec"]["replicaSpecs"]["Master"]["template"]["spec"]["containers"] =
        json!([{"name": "ascend", "gpus": 1}]);
    assert!(
        validator
            .schemas
            .validate(&job, validator.kinds["AscendJob"])
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

/// Two Atlas 800I A2 nodes of 8 Ascend910B4 each.
fn atlas_2x8() -> Cluster {
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
    serde_json::from_value(
        json!({"workers": [node("atlas-01", "10.0.1.1"), node("atlas-02", "10.0.1.2")]}),
    )
    .unwrap()
}

/// MindIE across two Atlas 800I A2 nodes (2 × 8 Ascend910B4, Qwen2.5-72B), planned by the real
/// driver with the NPUs' RoCE addresses configured, as `inferkit serve` needs them.
fn mindie_across_two_nodes() -> (DeploymentPlan, KubernetesOptions) {
    let cluster = atlas_2x8();
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
    let mut options = options(
        "ascend-mindie",
        "swr.cn-south-1.myhuaweicloud.com/ascendhub/mindie:2.0.RC1-800I-A2-py311-openeuler24.03-lts",
    );
    options.name = Some("qwen2-5-72b".to_string());
    (plan, options)
}

fn env_of(container: &Value, name: &str) -> Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The AscendJob MindCluster documents for MindIE Server: one Master and one Worker pod of 8
/// NPUs (requested, so that the operator ranks the Master 0), the operator's rank table
/// mounted in place of the plan's, the pod IP as MIES_CONTAINER_IP, and the Service on the
/// Master pod.
#[test]
fn mindie_across_two_nodes_is_an_ascend_job_whose_master_serves() {
    let (plan, options) = mindie_across_two_nodes();
    let export = export(&plan, &options).unwrap();
    assert_eq!(
        kinds(&export),
        [
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "AscendJob",
            "Service"
        ]
    );
    let yaml = Validator::new().check(&export);
    let job = serde_json::to_value(&export.objects[3]).unwrap();
    let labels = &job["metadata"]["labels"];
    assert_eq!(labels["app"], "mindie-ms-server");
    assert_eq!(labels["jobID"], "qwen2-5-72b");
    assert_eq!(labels["framework"], "pytorch");
    assert_eq!(labels["ring-controller.atlas"], "ascend-910b");
    assert_eq!(job["spec"]["schedulerName"], "volcano");
    assert_eq!(
        job["spec"]["runPolicy"]["schedulingPolicy"]["minAvailable"],
        2
    );
    let rank_table = serde_json::to_value(&export.objects[2]).unwrap();
    assert_eq!(rank_table["metadata"]["name"], "rings-config-qwen2-5-72b");
    assert_eq!(
        rank_table["data"]["hccl.json"],
        "{\"status\":\"initializing\"}\n"
    );
    for (replica, count) in [("Master", 1), ("Worker", 1)] {
        let spec = &job["spec"]["replicaSpecs"][replica];
        assert_eq!(spec["replicas"], count, "{replica}");
        let pod = &spec["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["name"], "ascend", "{replica}");
        for side in ["requests", "limits"] {
            assert_eq!(
                container["resources"][side]["huawei.com/Ascend910"], "8",
                "{replica} {side}"
            );
        }
        assert_eq!(
            env_of(container, "RANK_TABLE_FILE")["value"],
            "/user/serverid/devindex/config/hccl.json"
        );
        assert_eq!(
            env_of(container, "RANKTABLEFILE")["value"],
            "/user/serverid/devindex/config/hccl.json"
        );
        assert_eq!(
            env_of(container, "MIES_CONTAINER_IP")["valueFrom"]["fieldRef"]["fieldPath"],
            "status.podIP"
        );
        assert_eq!(
            env_of(container, "ASCEND_VISIBLE_DEVICES")["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['huawei.com/Ascend910']"
        );
        assert_eq!(env_of(container, "HOST_IP"), Value::Null, "{replica}");
        assert_eq!(env_of(container, "WORLD_SIZE")["value"], "16");
        assert_eq!(container["command"][0], "sh");
        assert!(
            container["args"][0]
                .as_str()
                .unwrap()
                .ends_with("/mindie-service/bin/mindieservice_daemon")
        );
        let mounts = container["volumeMounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == "/user/serverid/devindex/config"
                    && m.get("subPath").is_none())
        );
        assert!(
            !mounts
                .iter()
                .any(|m| m["mountPath"].as_str().unwrap().ends_with("ranktable.json"))
        );
    }
    let master = &job["spec"]["replicaSpecs"]["Master"]["template"];
    let service = serde_json::to_value(&export.objects[4]).unwrap();
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&master["metadata"]["labels"][key], value, "{key}");
    }
    let worker = &job["spec"]["replicaSpecs"]["Worker"]["template"];
    assert_eq!(
        worker["metadata"]["labels"]["app.kubernetes.io/component"],
        "worker"
    );
    assert!(master["spec"]["containers"][0]["readinessProbe"].is_object());
    // The config both pods read is the driver's, with its multi-node fields.
    for config_map in &export.objects[..2] {
        let config_map = serde_json::to_value(config_map).unwrap();
        let config: Value =
            serde_json::from_str(config_map["data"]["mindie-config.json"].as_str().unwrap())
                .unwrap();
        assert_eq!(config["BackendConfig"]["multiNodesInferEnabled"], true);
        assert!(config["BackendConfig"]["multiNodesInferPort"].is_u64());
        assert_eq!(config_map["data"].as_object().unwrap().len(), 1);
    }
    for note in [
        "Ascend Operator",
        "Volcano",
        "Ascend Device Plugin",
        "rings-config-qwen2-5-72b",
        "in the queue default, which must exist",
    ] {
        assert!(export.notes.iter().any(|n| n.contains(note)), "{note}");
    }
    assert!(!yaml.contains("10.0.1."), "{yaml}");
    assert!(!yaml.contains("192.168."), "{yaml}");
    insta::assert_snapshot!(redact_repo(&yaml));
}

/// The start step of both pods, run by `sh` with a stand-in for the daemon: it waits while the
/// operator's ConfigMap says `initializing`, starts the daemon once the table (in the compact
/// form Ascend Operator marshals) is `completed`, and gives up after its bound with a message
/// naming what writes the table.
#[test]
fn the_start_step_waits_for_the_completed_rank_table_then_starts_the_daemon() {
    let (plan, options) = mindie_across_two_nodes();
    let export = export(&plan, &options).unwrap();
    let job = serde_json::to_value(&export.objects[3]).unwrap();
    let container = &job["spec"]["replicaSpecs"]["Worker"]["template"]["spec"]["containers"][0];
    let command: Vec<String> = serde_json::from_value(container["command"].clone()).unwrap();
    assert_eq!(command[..2], ["sh", "-c"]);
    let script = &command[2];
    // The kubelet expands `$(NAME)` in a command; the script must reach `sh` as written.
    assert!(!script.contains("$("), "{script}");
    let initial = serde_json::to_value(&export.objects[2]).unwrap()["data"]["hccl.json"]
        .as_str()
        .unwrap()
        .to_string();
    let completed =
        std::fs::read_to_string(repo("kube/tests/fixtures/ascend/hccl-2x8-completed.json"))
            .unwrap();
    let dir = std::env::temp_dir().join(format!("inferkit-kube-rank-table-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let table = dir.join("hccl.json");
    let run = |wait_seconds: &str| {
        std::process::Command::new("timeout")
            .args(["60", "sh", "-c", script, "sh", "-c"])
            .arg("echo daemon started with \"$RANK_TABLE_FILE\" $(grep -o rank_id \"$RANK_TABLE_FILE\" | wc -l)")
            .env("RANK_TABLE_FILE", &table)
            .env("INFERKIT_RANK_TABLE_WAIT_SECONDS", wait_seconds)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    std::fs::write(&table, &initial).unwrap();
    let child = run("60");
    std::thread::sleep(std::time::Duration::from_secs(3));
    std::fs::write(&table, &completed).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("waiting for Ascend Operator to complete"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(&format!("daemon started with {} 16\n", table.display())),
        "{stdout}"
    );
    std::fs::write(&table, &initial).unwrap();
    let output = run("2").wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stderr.contains("is not completed after 2s"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("daemon started"),
        "{output:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same plan with the rank table left to run time (what `plan --format kubernetes`
/// registers, needing no NPU address) exports the same objects, byte for byte: the export
/// never used the plan's own rank table. A file written at run time that is not an
/// AscendJob's rank table has no writer on Kubernetes and is refused.
#[test]
fn mindie_with_the_rank_table_left_to_run_time_exports_the_same_ascend_job() {
    let (with_ips, options) = mindie_across_two_nodes();
    let cluster = atlas_2x8();
    let registry = inferkit::Registry::new()
        .with(inferkit::mindie::MindIe::new().with_rank_table_at_run_time());
    let mut spec = ModelSpec::local(repo("tests/fixtures/hf/Qwen2.5-72B-Instruct"));
    spec.distributed_inference_across_workers = Some(true);
    let at_run_time = inferkit::plan(&registry, &spec, &cluster, &PlanOptions::default()).unwrap();
    assert!(
        at_run_time
            .processes
            .iter()
            .all(|p| !p.run_time_files.is_empty())
    );
    let yaml = |plan: &DeploymentPlan| {
        let export = export(plan, &options).unwrap();
        (export.to_yaml().unwrap(), export.notes)
    };
    assert_eq!(yaml(&at_run_time), yaml(&with_ips));

    let mut elsewhere = at_run_time.clone();
    for process in &mut elsewhere.processes {
        process.run_time_files[0].path = "hccl/other.json".into();
    }
    let error = export_error(&elsewhere, &options);
    assert!(
        error.contains("expects hccl/other.json to be written at run time by Ascend Operator"),
        "{error}"
    );
}

/// MindIE across nodes on 310P cards: Ascend Operator writes rank tables for the 910 family
/// only, so the export refuses and says so.
#[test]
fn a_rank_table_on_chips_the_operator_does_not_cover_is_refused() {
    let (mut plan, options) = mindie_across_two_nodes();
    for device in plan
        .placement
        .workers
        .iter_mut()
        .flat_map(|w| w.devices.iter_mut())
    {
        device.name = "Ascend310P3".to_string();
    }
    let error = export_error(&plan, &options);
    assert!(error.contains("ascend-910b"), "{error}");
    assert!(error.contains("\"Ascend310P3\""), "{error}");
}
