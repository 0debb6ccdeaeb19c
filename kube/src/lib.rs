//! # inferkit-kube
//!
//! The Kubernetes objects of a [`DeploymentPlan`]: what `inferkit plan --format kubernetes`
//! writes for `kubectl apply -f`.
//!
//! A plan on one worker becomes a Deployment (one replica) and a Service on the plan's port; a
//! plan across workers becomes a [LeaderWorkerSet](lws::LeaderWorkerSet) whose leader pod runs
//! the main worker's processes and whose worker pods run the subordinates (Ray nodes, RPC
//! servers), plus a Service on the leader. Launch files become a ConfigMap mounted in the
//! process's working directory.
//!
//! Pods ask for accelerators by count (`nvidia.com/gpu: 2`): under a device plugin a pod cannot
//! choose which of a node's devices it gets, so the plan's device indexes are dropped and the
//! devices of a node are taken as interchangeable; the export refuses a plan whose devices on
//! one node differ, and says what it dropped in [`Export::notes`].
//!
//! ```no_run
//! use inferkit_kube::{KubernetesOptions, export};
//!
//! # fn run(plan: &inferkit_core::DeploymentPlan) -> inferkit_core::Result<()> {
//! let mut options = KubernetesOptions::default();
//! options.images.insert("vllm".into(), "vllm/vllm-openai:v0.11.0".into());
//! options.secret = Some("hf-token".into());
//! print!("{}", export(plan, &options)?.to_yaml()?);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod download;
pub mod lws;
mod options;
mod pod;

use std::collections::BTreeMap;

use inferkit_core::{DeploymentPlan, Error, ProcessRole, Result};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvVar, EnvVarSource, PodTemplateSpec, SecretKeySelector, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

/// The Kubernetes API types the objects are built from (release 1.37).
pub use k8s_openapi;
pub use options::{DEFAULT_DOWNLOAD_IMAGE, KubernetesOptions, ModelVolume};

use crate::lws::{LeaderWorkerSet, LeaderWorkerSetSpec, LeaderWorkerTemplate, RestartPolicy};
use crate::pod::{PodBuilder, PodRole};

/// Label every object and pod carries with the deployment's name.
const NAME_LABEL: &str = "app.kubernetes.io/name";

/// One Kubernetes object of an export (boxed: the API structs are large).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Object {
    /// Launch files of one pod template.
    ConfigMap(Box<ConfigMap>),
    /// The pods of a plan on one worker.
    Deployment(Box<Deployment>),
    /// The pods of a plan across workers.
    LeaderWorkerSet(Box<LeaderWorkerSet>),
    /// The endpoint of the main process.
    Service(Box<Service>),
}

/// The objects of a plan, in the order to apply them, and what the translation changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// ConfigMaps first, then the workload, then its Service.
    pub objects: Vec<Object>,
    /// What differs from the plan when it runs on Kubernetes, one sentence each.
    pub notes: Vec<String>,
}

impl Export {
    /// The objects as multi-document YAML, one document per object.
    pub fn to_yaml(&self) -> Result<String> {
        let mut out = String::new();
        for object in &self.objects {
            let text = serde_yaml_ng::to_string(object)
                .map_err(|e| Error::unsupported(format!("writing a manifest as YAML: {e}")))?;
            out.push_str("---\n");
            out.push_str(&text);
        }
        Ok(out)
    }
}

/// Translates `plan` into Kubernetes objects.
///
/// Fails with a parameter error naming the option to set (`images`, `secret`, `name`), or
/// `Unsupported` when the plan cannot run as pods (different devices on one node, workers
/// whose pods would need different templates, symbolic-link launch files).
pub fn export(plan: &DeploymentPlan, options: &KubernetesOptions) -> Result<Export> {
    refuse_rank_table_across_nodes(plan)?;
    let name = object_name(plan, options)?;
    let image = options.images.get(&plan.backend).ok_or_else(|| {
        Error::invalid_parameter(
            "images",
            format!(
                "no container image for backend {}: name one (`--image {}=IMAGE`)",
                plan.backend, plan.backend
            ),
        )
    })?;
    let main = plan
        .processes
        .iter()
        .find(|p| p.role == ProcessRole::Main)
        .ok_or_else(|| Error::unsupported("the plan has no main process"))?;
    let builder = PodBuilder::new(plan, options, &name, image, &main.worker)?;
    let mut objects = Vec::new();
    let leader = builder.pod(PodRole::Leader)?;
    let service_port = main.health.as_ref().map_or(0, |h| h.port);
    let (workload, service_name) = if builder.subordinates().is_empty() {
        objects.extend(leader.config_map.map(|c| Object::ConfigMap(Box::new(c))));
        let deployment = deployment(&name, options, leader.template);
        (Object::Deployment(Box::new(deployment)), name.clone())
    } else {
        let worker = builder.pod(PodRole::Worker)?;
        objects.extend(leader.config_map.map(|c| Object::ConfigMap(Box::new(c))));
        objects.extend(worker.config_map.map(|c| Object::ConfigMap(Box::new(c))));
        let size = i32::try_from(builder.subordinates().len() + 1)
            .map_err(|_| Error::unsupported("too many workers for one group"))?;
        let set = LeaderWorkerSet::new(
            metadata(&name, options),
            LeaderWorkerSetSpec {
                replicas: Some(1),
                leader_worker_template: LeaderWorkerTemplate {
                    leader_template: Some(leader.template),
                    worker_template: worker.template,
                    size: Some(size),
                    restart_policy: Some(RestartPolicy::RecreateGroupOnPodRestart),
                },
                // Both sides wait for each other (the leader for its RPC servers or Ray nodes,
                // a Ray node for its head), so the workers must not wait for a ready leader.
                startup_policy: lws::StartupPolicy::LeaderCreated,
            },
        );
        // The LeaderWorkerSet controller names its own headless Service after the set.
        (
            Object::LeaderWorkerSet(Box::new(set)),
            format!("{name}-leader"),
        )
    };
    objects.push(workload);
    if service_port != 0 {
        let selector = builder.leader_selector();
        objects.push(Object::Service(Box::new(service(
            &service_name,
            &name,
            options,
            selector,
            service_port,
        ))));
    }
    Ok(Export {
        objects,
        notes: builder.notes(),
    })
}

/// The variable through which MindIE (and HCCL) read their rank table.
const RANK_TABLE_VARIABLE: &str = "RANK_TABLE_FILE";

/// Refuses a plan whose processes on several workers share an HCCL rank table (MindIE across
/// nodes), naming what a cluster would have to provide and how to run it instead.
///
/// What the research found (sources in the message's order):
/// - the table lists every NPU's physical `device_id` and RoCE `device_ip` per server, and
///   MindIE matches its own server by `container_ip` against `MIES_CONTAINER_IP`, the pod's IP
///   (MindIE Server installation guide, "多机推理" / "Multi-Node Inference", hiascend.com
///   mindie_instg_0027; CANN HCCL guide, "ranktable文件配置资源信息"). Which NPUs and which pod
///   IP a pod gets is known only once it runs.
/// - in a cluster, MindCluster's ascend-device-plugin writes a pod's NPUs with their
///   `device_ip` into its annotation `ascend.kubectl.kubernetes.io/ascend-910-configuration`,
///   and MindCluster's Ascend Operator assembles them into `hccl.json` (a ConfigMap
///   `rings-config-NAME`, or a file under `/user/mindx-dl/ranktable`, mounted at
///   `/user/serverid/devindex/config`) for an AscendJob, a Volcano Job, or a Deployment or
///   StatefulSet labelled `ring-controller.atlas` (gitee.com/ascend/mind-cluster,
///   `component/ascend-operator/pkg/ranktable/plugins.go`, `controllers/v1/consts.go`).
///   A LeaderWorkerSet runs its leader and its workers as separate StatefulSets, so no table
///   would hold all the NPUs of a group.
/// - the Operator numbers the pods' ranks as they are allocated, and MindIE's master, the
///   only instance that takes requests, is the server holding `rank_id` 0 (the same MindIE
///   guide): which pod serves is decided at run time, and no Service written beforehand can
///   select it. MindIE's own Kubernetes deployment (MindIE Motor, an AscendJob whose boot
///   script waits for `hccl.json` to be `completed`) routes requests through its coordinator.
fn refuse_rank_table_across_nodes(plan: &DeploymentPlan) -> Result<()> {
    let across = plan.processes.iter().any(|p| !p.role.is_main());
    let rank_table = plan
        .processes
        .iter()
        .any(|p| p.env.contains_key(RANK_TABLE_VARIABLE));
    if !(across && rank_table) {
        return Ok(());
    }
    Err(Error::unsupported(format!(
        "{} across {} workers reads an HCCL rank table ({RANK_TABLE_VARIABLE}) naming every \
         NPU's physical device_id and RoCE device_ip and each server's pod IP \
         (MIES_CONTAINER_IP); under Kubernetes these are known only once the pods run, and the \
         export cannot write them. What provides them: MindCluster's ascend-device-plugin \
         (the pod annotation ascend.kubectl.kubernetes.io/ascend-910-configuration) and Ascend \
         Operator, which writes hccl.json into /user/serverid/devindex/config for an \
         AscendJob, Volcano Job, Deployment or StatefulSet labelled ring-controller.atlas, not \
         for a LeaderWorkerSet; and MindIE's master (rank_id 0, the only instance taking \
         requests) is then chosen at run time, so no Service can name it beforehand. Install \
         MindCluster (ascend-device-plugin, Ascend Operator, Volcano) and deploy MindIE across \
         nodes as MindIE documents it (MindIE Motor, an AscendJob), or run this plan with \
         `inferkit serve` on workers {}; a plan on one worker exports as a Deployment",
        plan.backend,
        plan.placement.workers.len(),
        plan.placement
            .workers
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    )))
}

/// The objects' name: the user's, or the model's made a DNS label. LeaderWorkerSet pods are
/// named `NAME-GROUP-INDEX`, which must stay a DNS label too, hence the 50-character limit.
fn object_name(plan: &DeploymentPlan, options: &KubernetesOptions) -> Result<String> {
    const MAX: usize = 50;
    let name = match &options.name {
        Some(name) => name.clone(),
        None => {
            let mut label: String = plan
                .model
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            label = label
                .trim_start_matches(|c: char| !c.is_ascii_lowercase())
                .to_string();
            label.truncate(MAX);
            label.trim_end_matches('-').to_string()
        }
    };
    let valid = !name.is_empty()
        && name.len() <= MAX
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(Error::invalid_parameter(
            "name",
            format!(
                "`{name}` is not a DNS label of at most {MAX} characters (lowercase letters, \
                 digits and `-`, starting with a letter)"
            ),
        ));
    }
    Ok(name)
}

/// Metadata of a top-level object.
fn metadata(name: &str, options: &KubernetesOptions) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(options.namespace.clone()),
        labels: Some(name_labels(name)),
        ..ObjectMeta::default()
    }
}

fn name_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), name.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "inferkit".to_string(),
        ),
    ])
}

/// One replica; `Recreate`, because a rolling update would need a second set of devices.
fn deployment(name: &str, options: &KubernetesOptions, template: PodTemplateSpec) -> Deployment {
    Deployment {
        metadata: metadata(name, options),
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(NAME_LABEL.to_string(), name.to_string())])),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_string()),
                ..DeploymentStrategy::default()
            }),
            template,
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

fn service(
    service_name: &str,
    name: &str,
    options: &KubernetesOptions,
    selector: BTreeMap<String, String>,
    port: u16,
) -> Service {
    let mut meta = metadata(name, options);
    meta.name = Some(service_name.to_string());
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".to_string()),
                port: i32::from(port),
                target_port: Some(IntOrString::String("http".to_string())),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// `name` read from the `key` of the user's Secret `secret`.
pub(crate) fn secret_env(secret: &str, name: String, key: String) -> EnvVar {
    EnvVar {
        name,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key,
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}
