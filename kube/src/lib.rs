//! # inferkit-kube
//!
//! The Kubernetes objects of a [`DeploymentPlan`]: what `inferkit plan --format kubernetes`
//! writes for `kubectl apply -f`.
//!
//! A plan on one worker becomes a Deployment (one replica) and a Service on the plan's port; a
//! plan across workers becomes a [LeaderWorkerSet] whose leader pod runs
//! the main worker's processes and whose worker pods run the subordinates (Ray nodes, RPC
//! servers), plus a Service on the leader. A plan whose workers share an HCCL rank table
//! (MindIE across nodes) becomes an [AscendJob] of MindCluster's Ascend
//! Operator, which writes that table once the pods run, plus a Service on its Master pod.
//! Launch files become a ConfigMap mounted in the process's working directory.
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

pub mod ascend_job;
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

use crate::ascend_job::{
    AscendJob, AscendJobSpec, ReplicaSpec, ReplicaType, RunPolicy, SchedulingPolicy,
};
use crate::lws::{LeaderWorkerSet, LeaderWorkerSetSpec, LeaderWorkerTemplate, RestartPolicy};
use crate::pod::{PodBuilder, PodRole, Workload};

/// Label every object and pod carries with the deployment's name.
const NAME_LABEL: &str = "app.kubernetes.io/name";

/// One Kubernetes object of an export (boxed: the API structs are large).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Object {
    /// Launch files of one pod template, or the rank table Ascend Operator fills in.
    ConfigMap(Box<ConfigMap>),
    /// The pods of a plan across workers that share an HCCL rank table.
    AscendJob(Box<AscendJob>),
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
/// whose pods would need different templates, symbolic-link launch files, a rank table on
/// chips Ascend Operator does not write one for, a file written at run time other than an
/// AscendJob's rank table).
pub fn export(plan: &DeploymentPlan, options: &KubernetesOptions) -> Result<Export> {
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
    objects.extend(leader.config_map.map(|c| Object::ConfigMap(Box::new(c))));
    let (workload, service_name) = match builder.workload() {
        Workload::Deployment => {
            let deployment = deployment(&name, options, leader.template);
            (Object::Deployment(Box::new(deployment)), name.clone())
        }
        kind @ (Workload::AscendJob | Workload::LeaderWorkerSet) => {
            let worker = builder.pod(PodRole::Worker)?;
            objects.extend(worker.config_map.map(|c| Object::ConfigMap(Box::new(c))));
            let workers = i32::try_from(builder.subordinates().len())
                .map_err(|_| Error::unsupported("too many workers for one group"))?;
            if kind == Workload::AscendJob {
                let ring_controller = builder.ring_controller()?;
                objects.push(Object::ConfigMap(Box::new(rank_table_config_map(
                    &builder.rank_table_config_map(),
                    &name,
                    options,
                    ring_controller,
                ))));
                let job = ascend_job(
                    &name,
                    options,
                    ring_controller,
                    leader.template,
                    worker.template,
                    workers,
                );
                (Object::AscendJob(Box::new(job)), name.clone())
            } else {
                let set =
                    leader_worker_set(&name, options, leader.template, worker.template, workers);
                // The LeaderWorkerSet controller names its own headless Service after the set.
                (
                    Object::LeaderWorkerSet(Box::new(set)),
                    format!("{name}-leader"),
                )
            }
        }
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

/// One group of a leader pod and `workers` worker pods, recreated whole when one restarts.
fn leader_worker_set(
    name: &str,
    options: &KubernetesOptions,
    leader: PodTemplateSpec,
    worker: PodTemplateSpec,
    workers: i32,
) -> LeaderWorkerSet {
    LeaderWorkerSet::new(
        metadata(name, options),
        LeaderWorkerSetSpec {
            replicas: Some(1),
            leader_worker_template: LeaderWorkerTemplate {
                leader_template: Some(leader),
                worker_template: worker,
                size: Some(workers + 1),
                restart_policy: Some(RestartPolicy::RecreateGroupOnPodRestart),
            },
            // Both sides wait for each other (the leader for its RPC servers or Ray nodes, a
            // Ray node for its head), so the workers must not wait for a ready leader.
            startup_policy: lws::StartupPolicy::LeaderCreated,
        },
    )
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

/// The ConfigMap Ascend Operator writes the rank table into, created as MindCluster's guide
/// creates it: `hccl.json` holding `{"status":"initializing"}`, labelled with the chip product.
fn rank_table_config_map(
    config_map: &str,
    name: &str,
    options: &KubernetesOptions,
    ring_controller: &str,
) -> ConfigMap {
    let mut meta = metadata(name, options);
    meta.name = Some(config_map.to_string());
    meta.labels.get_or_insert_default().insert(
        ascend_job::RING_CONTROLLER_LABEL.to_string(),
        ring_controller.to_string(),
    );
    ConfigMap {
        metadata: meta,
        data: Some(BTreeMap::from([(
            ascend_job::RANK_TABLE_KEY.to_string(),
            "{\"status\":\"initializing\"}\n".to_string(),
        )])),
        ..ConfigMap::default()
    }
}

/// A MindIE Server AscendJob as MindCluster's guide writes one: the PyTorch framework label,
/// MindIE Motor's `app` and `jobID` (so the operator injects no training variables), Volcano
/// placing the whole gang, one Master pod and `workers` Worker pods, restarted in place
/// (`Always`, as the guide's MindIE Server jobs are).
fn ascend_job(
    name: &str,
    options: &KubernetesOptions,
    ring_controller: &str,
    master: PodTemplateSpec,
    worker: PodTemplateSpec,
    workers: i32,
) -> AscendJob {
    let mut meta = metadata(name, options);
    meta.labels.get_or_insert_default().extend([
        ("framework".to_string(), "pytorch".to_string()),
        (
            ascend_job::APP_LABEL.to_string(),
            ascend_job::MINDIE_SERVER_APP.to_string(),
        ),
        (ascend_job::JOB_ID_LABEL.to_string(), name.to_string()),
        (
            ascend_job::RING_CONTROLLER_LABEL.to_string(),
            ring_controller.to_string(),
        ),
    ]);
    let replicas = |count: i32, template: PodTemplateSpec| ReplicaSpec {
        replicas: Some(count),
        restart_policy: Some("Always".to_string()),
        template,
    };
    AscendJob::new(
        meta,
        AscendJobSpec {
            run_policy: RunPolicy {
                scheduling_policy: Some(SchedulingPolicy {
                    min_available: Some(workers + 1),
                    queue: Some(options.volcano_queue.clone()),
                }),
            },
            success_policy: Some("AllWorkers".to_string()),
            scheduler_name: Some("volcano".to_string()),
            replica_specs: BTreeMap::from([
                (ReplicaType::Master, replicas(1, master)),
                (ReplicaType::Worker, replicas(workers, worker)),
            ]),
        },
    )
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
