//! `plan --format kubernetes`: the options of the manifests (namespace, images, nodes, model
//! volume, Secret), parsed into [`KubernetesOptions`].

use inferkit::{Error, Result};
use inferkit_kube::k8s_openapi::api::core::v1::Toleration;
use inferkit_kube::{KubernetesOptions, ModelVolume};

/// The manifest options of `plan --format kubernetes`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Kubernetes (with --format kubernetes)")]
pub struct KubernetesArgs {
    /// Namespace of the objects.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub namespace: String,

    /// Name of the objects (default: the model's name as a DNS label).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Container image of a backend, as BACKEND=IMAGE (repeatable), e.g.
    /// `vllm=vllm/vllm-openai:v0.11.0`.
    #[arg(long = "image", value_name = "BACKEND=IMAGE", value_parser = backend_image)]
    pub images: Vec<(String, String)>,

    /// A toleration of every pod, as KEY[=VALUE]:EFFECT (`kubectl taint` syntax), e.g.
    /// `nvidia.com/gpu:NoSchedule` (repeatable).
    #[arg(long = "toleration", value_name = "KEY[=VALUE]:EFFECT", value_parser = toleration)]
    pub tolerations: Vec<Toleration>,

    /// A node label every pod requires, as KEY=VALUE (repeatable).
    #[arg(long = "node-selector", value_name = "KEY=VALUE", value_parser = key_value)]
    pub node_selector: Vec<(String, String)>,

    /// Let pods go to any node with free devices instead of the nodes the plan chose.
    #[arg(long)]
    pub no_pin_nodes: bool,

    /// The model files are in this directory of each node (mounted read-only at the same
    /// path).
    #[arg(long, value_name = "DIR", conflicts_with = "model_pvc")]
    pub model_host_path: Option<String>,

    /// The model files are on this PersistentVolumeClaim, mounted read-only at MOUNT_PATH.
    #[arg(long, value_name = "CLAIM:MOUNT_PATH", value_parser = claim_mount)]
    pub model_pvc: Option<(String, String)>,

    /// The Secret holding the plan's secret variables (HF_TOKEN), one key per variable
    /// (`kubectl create secret generic NAME --from-literal=HF_TOKEN=...`).
    #[arg(long, value_name = "NAME")]
    pub secret: Option<String>,

    /// Image of the init container that downloads a hub model's files into the pod before
    /// the backend starts (needs sh, curl, sha256sum and stat). The files go to the model
    /// volume when its mount path holds the plan's Hugging Face cache, else to an emptyDir.
    #[arg(long, value_name = "IMAGE", default_value = inferkit_kube::DEFAULT_DOWNLOAD_IMAGE)]
    pub download_image: String,

    /// The Volcano queue of an AscendJob (MindIE across workers, which runs under
    /// MindCluster's Ascend Operator and Volcano).
    #[arg(long, value_name = "QUEUE", default_value = "default")]
    pub volcano_queue: String,
}

impl KubernetesArgs {
    /// The options these flags give.
    pub fn options(&self) -> KubernetesOptions {
        let model_volume = match (&self.model_host_path, &self.model_pvc) {
            (Some(path), _) => Some(ModelVolume::HostPath { path: path.clone() }),
            (None, Some((claim, mount_path))) => Some(ModelVolume::PersistentVolumeClaim {
                claim: claim.clone(),
                mount_path: mount_path.clone(),
            }),
            (None, None) => None,
        };
        KubernetesOptions {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            images: self.images.iter().cloned().collect(),
            tolerations: self.tolerations.clone(),
            pin_to_nodes: !self.no_pin_nodes,
            node_selector: self.node_selector.iter().cloned().collect(),
            model_volume,
            secret: self.secret.clone(),
            download_image: self.download_image.clone(),
            volcano_queue: self.volcano_queue.clone(),
        }
    }
}

fn split_pair(
    text: &str,
    separator: char,
    what: &str,
    parameter: &str,
) -> Result<(String, String)> {
    match text.split_once(separator) {
        Some((key, value)) if !key.is_empty() && !value.is_empty() => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(Error::invalid_parameter(
            parameter,
            format!("`{text}` is not of the form {what}"),
        )),
    }
}

fn backend_image(text: &str) -> Result<(String, String)> {
    split_pair(text, '=', "BACKEND=IMAGE", "image")
}

fn key_value(text: &str) -> Result<(String, String)> {
    split_pair(text, '=', "KEY=VALUE", "node-selector")
}

fn claim_mount(text: &str) -> Result<(String, String)> {
    let (claim, path) = split_pair(text, ':', "CLAIM:MOUNT_PATH", "model-pvc")?;
    if !path.starts_with('/') {
        return Err(Error::invalid_parameter(
            "model-pvc",
            format!("the mount path `{path}` must be absolute"),
        ));
    }
    Ok((claim, path))
}

/// `KEY[=VALUE]:EFFECT`, as `kubectl taint` writes a taint: `Equal` with a value, `Exists`
/// without.
fn toleration(text: &str) -> Result<Toleration> {
    const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    let (key_value, effect) = split_pair(text, ':', "KEY[=VALUE]:EFFECT", "toleration")?;
    if !EFFECTS.contains(&effect.as_str()) {
        return Err(Error::invalid_parameter(
            "toleration",
            format!("`{effect}` is not a taint effect ({})", EFFECTS.join(", ")),
        ));
    }
    let (key, value) = match key_value.split_once('=') {
        Some((key, value)) => (key.to_string(), Some(value.to_string())),
        None => (key_value, None),
    };
    Ok(Toleration {
        key: Some(key),
        operator: Some(if value.is_some() { "Equal" } else { "Exists" }.to_string()),
        value,
        effect: Some(effect),
        ..Toleration::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_read_the_taint_syntax() {
        let exists = toleration("nvidia.com/gpu:NoSchedule").unwrap();
        assert_eq!(exists.key.as_deref(), Some("nvidia.com/gpu"));
        assert_eq!(exists.operator.as_deref(), Some("Exists"));
        assert_eq!(exists.value, None);
        let equal = toleration("dedicated=inference:NoExecute").unwrap();
        assert_eq!(equal.operator.as_deref(), Some("Equal"));
        assert_eq!(equal.value.as_deref(), Some("inference"));
        assert!(toleration("dedicated=inference:Sometimes").is_err());
        assert!(toleration("no-effect").is_err());
    }

    #[test]
    fn a_claim_mounts_at_an_absolute_path() {
        assert_eq!(
            claim_mount("models:/models").unwrap(),
            ("models".to_string(), "/models".to_string())
        );
        assert!(claim_mount("models:relative").is_err());
        assert!(claim_mount("models").is_err());
    }
}
