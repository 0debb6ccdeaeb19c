//! What the user decides about the manifests: names, images, nodes, the model volume, secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use serde::{Deserialize, Serialize};

/// How a plan's manifests are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesOptions {
    /// Namespace of every object (default `default`).
    pub namespace: String,
    /// Name of the objects; default: the plan's model name made a DNS label.
    pub name: Option<String>,
    /// Container image per backend id (`vllm` → `vllm/vllm-openai:v0.11.0`). The image must
    /// hold the backend's program; inferkit does not guess one.
    pub images: BTreeMap<String, String>,
    /// Tolerations of every pod (GPU nodes are often tainted).
    pub tolerations: Vec<Toleration>,
    /// Keep each pod on the node the plan placed it on (`kubernetes.io/hostname`); the plan's
    /// workers are then node names, as `probe --kubernetes` writes them (default on).
    pub pin_to_nodes: bool,
    /// Node labels every pod requires, on top of the pinning.
    pub node_selector: BTreeMap<String, String>,
    /// Where the model files are, when the plan reads local paths.
    pub model_volume: Option<ModelVolume>,
    /// Name of the user's Secret holding the plan's secret variables (`HF_TOKEN`), one key
    /// per variable name. Containers read them by `secretKeyRef`; values never appear in a
    /// manifest.
    pub secret: Option<String>,
    /// Image of the init container that downloads a remote model's files (the plan's
    /// `downloads`) before the backend starts; it needs `sh`, `curl`, `sha256sum` and `stat`.
    /// Default [`DEFAULT_DOWNLOAD_IMAGE`].
    pub download_image: String,
    /// The Volcano queue of an AscendJob (MindIE across nodes; default `default`).
    pub volcano_queue: String,
}

/// The public image with `curl`, a shell and `sha256sum` (Alpine's BusyBox) the download init
/// container runs by default.
pub const DEFAULT_DOWNLOAD_IMAGE: &str = "curlimages/curl:8.11.1";

impl Default for KubernetesOptions {
    fn default() -> Self {
        KubernetesOptions {
            namespace: "default".to_string(),
            name: None,
            images: BTreeMap::new(),
            tolerations: Vec::new(),
            pin_to_nodes: true,
            node_selector: BTreeMap::new(),
            model_volume: None,
            secret: None,
            download_image: DEFAULT_DOWNLOAD_IMAGE.to_string(),
            volcano_queue: "default".to_string(),
        }
    }
}

/// The volume the model files are read from, mounted read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum ModelVolume {
    /// A directory of the node, mounted at the same path (the plan's paths stay valid).
    HostPath {
        /// Directory on the node and in the container.
        path: String,
    },
    /// A PersistentVolumeClaim mounted at `mount_path`, where the plan's paths point.
    PersistentVolumeClaim {
        /// Name of the claim.
        claim: String,
        /// Where it is mounted in the container.
        mount_path: String,
    },
}

impl ModelVolume {
    /// Where the volume is mounted in the containers.
    pub fn mount_path(&self) -> &str {
        match self {
            ModelVolume::HostPath { path } => path,
            ModelVolume::PersistentVolumeClaim { mount_path, .. } => mount_path,
        }
    }
}
