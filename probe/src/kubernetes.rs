//! Clusters read from Kubernetes: `kubectl get nodes -o json`, and optionally
//! `kubectl get pods -A -o json`, turned into the cluster JSON planning reads. No API client:
//! the user runs `kubectl` and hands over its output.
//!
//! What a node offers comes from its allocatable extended resources (`nvidia.com/gpu`,
//! `amd.com/gpu`, `huawei.com/Ascend910`, `huawei.com/Ascend310P`, `huawei.com/Ascend310`) and
//! what the device plugins' labellers say about the devices: NVIDIA GPU Feature Discovery
//! (`nvidia.com/gpu.product`, `nvidia.com/gpu.memory` in MiB, `nvidia.com/gpu.compute.major`
//! and `.minor`), AMD's node labeller (`amd.com/gpu.product-name`, `amd.com/gpu.vram` in GiB as
//! `64G`), and Ascend's (`node.kubernetes.io/npu.chip.name`). Cordoned and NotReady nodes are
//! left out with the reason; running pods' requests become allocations.
//!
//! Shared GPUs, as GPU Feature Discovery labels them:
//!
//! - MIG, single strategy: `nvidia.com/gpu` counts MIG instances of one profile and the labels
//!   describe the instance (`nvidia.com/gpu.product` `A100-SXM4-40GB-MIG-1g.5gb`,
//!   `nvidia.com/gpu.memory` 4864): devices with the instance's memory.
//! - MIG, mixed strategy: one resource per profile (`nvidia.com/mig-1g.5gb: 7`) with its
//!   labels (`nvidia.com/mig-1g.5gb.memory`): devices named `PRODUCT MIG PROFILE`, which
//!   `inferkit-kube` asks for as that resource. A profile without its memory label is left out.
//! - Time slicing (`nvidia.com/gpu.replicas` above 1, or the `nvidia.com/gpu.shared` resource
//!   of `renameByDefault`): a replica is a turn on the whole GPU, not a part of its memory;
//!   the other replicas' pods use the same memory without limit or account, so a plan cannot
//!   count on any of it, and such a node is left out with that reason.
//!
//! Under a device plugin a pod asks for a number of devices, never for a given one: the
//! devices of a node are interchangeable, numbered 0..N here, and pods' requests claim the
//! first free numbers. Device indexes in plans for such a cluster mean "some device of this
//! node", which is how `inferkit-kube` exports them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use inferkit_core::Result;
use inferkit_core::inventory::{
    Allocation, Cluster, Device, MIG_RESOURCE_MARK, Memory, Vendor, WorkerInventory,
};
use inferkit_formats::files::{json_error, read_text_file};

/// Largest `kubectl` list read (a node object with its images is about 20 KB; pods fewer).
const MAX_LIST_FILE: u64 = 512 << 20;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A cluster read from `kubectl` lists, and the nodes left out of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubernetesCluster {
    /// The schedulable nodes as workers (worker name = node name).
    pub cluster: Cluster,
    /// Nodes left out, with the reason.
    pub excluded: Vec<ExcludedNode>,
    /// What else the reading decided, one sentence each (devices taken as interchangeable,
    /// pods counted).
    pub notes: Vec<String>,
}

/// A node that is not part of the cluster, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcludedNode {
    /// Node name.
    pub name: String,
    /// Why it was left out.
    pub reason: String,
}

/// Reads `kubectl get nodes -o json` output from `nodes`, and the pods from `pods`.
pub fn load(nodes: &Path, pods: Option<&Path>) -> Result<KubernetesCluster> {
    let nodes_text = read_text_file(nodes, MAX_LIST_FILE)?;
    let pods_text = pods
        .map(|path| read_text_file(path, MAX_LIST_FILE).map(|text| (text, path)))
        .transpose()?;
    from_lists(
        &nodes_text,
        nodes,
        pods_text
            .as_ref()
            .map(|(text, path)| (text.as_str(), *path)),
    )
}

/// [`load`] on text already read; the paths name the sources in errors.
pub fn from_lists(
    nodes: &str,
    nodes_origin: &Path,
    pods: Option<(&str, &Path)>,
) -> Result<KubernetesCluster> {
    let nodes: List<Node> =
        serde_json::from_str(nodes).map_err(|e| json_error(nodes, nodes_origin, &e))?;
    let pods: Vec<Pod> = match pods {
        Some((text, origin)) => {
            let list: List<Pod> =
                serde_json::from_str(text).map_err(|e| json_error(text, origin, &e))?;
            list.items
                .into_iter()
                .filter(Pod::holds_resources)
                .collect()
        }
        None => Vec::new(),
    };
    let mut cluster = Cluster::default();
    let mut excluded = Vec::new();
    let mut notes = vec![
        "devices are interchangeable under a device plugin: a pod gets a number of a node's \
         devices, not given ones, so device indexes here only count them"
            .to_string(),
    ];
    for node in &nodes.items {
        match worker(node, &pods) {
            Ok((worker, found)) => {
                notes.extend(found.into_iter().map(|n| format!("{}: {n}", worker.name)));
                cluster.workers.push(worker);
            }
            Err(reason) => excluded.push(ExcludedNode {
                name: node.metadata.name.clone(),
                reason,
            }),
        }
    }
    if !pods.is_empty() {
        notes.push(format!(
            "{} running pod(s) with resource requests counted as allocations",
            pods.len()
        ));
    }
    Ok(KubernetesCluster {
        cluster,
        excluded,
        notes,
    })
}

/// The worker of a node and what its reading noticed, or why the node is left out.
fn worker(
    node: &Node,
    pods: &[Pod],
) -> std::result::Result<(WorkerInventory, Vec<String>), String> {
    if node.spec.unschedulable {
        return Err("cordoned (spec.unschedulable): no new pod is placed on it".to_string());
    }
    if let Some(ready) = node.status.conditions.iter().find(|c| c.type_ == "Ready") {
        if ready.status != "True" {
            return Err(format!(
                "NotReady (Ready={}{})",
                ready.status,
                ready
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    } else {
        return Err("no Ready condition in its status".to_string());
    }
    let name = node.metadata.name.clone();
    let labels = &node.metadata.labels;
    let allocatable = &node.status.allocatable;
    let quantity = |key: &str| {
        allocatable
            .get(key)
            .map(|q| parse_quantity(key, q))
            .transpose()
    };
    let (devices, notes) = devices(node)?;
    let (allocations, ram_used) = allocations(&name, &devices, pods)?;
    let ram_total = quantity("memory")?.unwrap_or(0) / 1000;
    let cpu = quantity("cpu")?.unwrap_or(0) / 1000;
    let os = labels
        .get("kubernetes.io/os")
        .cloned()
        .unwrap_or_else(|| node.status.node_info.operating_system.clone());
    let arch = labels
        .get("kubernetes.io/arch")
        .cloned()
        .unwrap_or_else(|| node.status.node_info.architecture.clone());
    let worker = WorkerInventory {
        name,
        os,
        arch,
        labels: labels.clone().into(),
        address: node.address(),
        cpu_cores: u32::try_from(cpu).unwrap_or(u32::MAX),
        cpu_brand: None,
        ram: Memory {
            total: ram_total,
            used: ram_used.min(ram_total),
            reserved: None,
        },
        devices,
        allocations,
    };
    Ok((worker, notes))
}

/// What the pods on node `name` hold: their devices by count of each resource, as the first
/// free devices offered as that resource, and the host memory they request.
fn allocations(
    name: &str,
    devices: &[Device],
    pods: &[Pod],
) -> std::result::Result<(Vec<Allocation>, u64), String> {
    let mut allocations = Vec::new();
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let mut ram = 0u64;
    for pod in pods
        .iter()
        .filter(|p| p.spec.node_name.as_deref() == Some(name))
    {
        let requests = pod.requests()?;
        ram = ram.saturating_add(requests.get("memory").copied().unwrap_or(0) / 1000);
        let mut held = BTreeMap::new();
        for (resource, millis) in &requests {
            let count = usize::try_from(*millis / 1000).unwrap_or(usize::MAX);
            let skip = taken.entry(resource.clone()).or_default();
            let offered = devices
                .iter()
                .filter(|d| device_resource(d).as_deref() == Some(resource.as_str()));
            held.extend(
                offered
                    .skip(*skip)
                    .take(count)
                    .map(|d| (d.index.to_string(), d.memory.total)),
            );
            *skip = skip.saturating_add(count);
        }
        if held.is_empty() {
            continue;
        }
        allocations.push(Allocation {
            name: pod.metadata.qualified_name(),
            devices: held.into_iter().collect(),
            ram: 0,
        });
    }
    Ok((allocations, ram))
}

/// The node's accelerators: one device per allocatable unit of its accelerator resources
/// (NVIDIA's whole GPUs and MIG profiles, else AMD's, else Ascend's), described by their
/// labeller's labels, and what the reading noticed.
fn devices(node: &Node) -> std::result::Result<(Vec<Device>, Vec<String>), String> {
    let allocatable = &node.status.allocatable;
    let count = |key: &str| -> std::result::Result<u32, String> {
        allocatable.get(key).map_or(Ok(0), |q| {
            let millis = parse_quantity(key, q)?;
            u32::try_from(millis / 1000).map_err(|_| format!("{key} {q} is too large"))
        })
    };
    let labels = &node.metadata.labels;
    if count(SHARED_GPU)? > 0 {
        return Err(format!(
            "its GPUs are time-sliced ({SHARED_GPU}): {TIME_SLICED}"
        ));
    }
    let mut notes = Vec::new();
    let nvidia = count("nvidia.com/gpu")?;
    let mut devices = match nvidia {
        0 => Vec::new(),
        _ => nvidia_devices(labels, nvidia)?,
    };
    if let Some(first) = devices.first()
        && Vendor::Nvidia.is_mig_instance(&first.name)
    {
        notes.push(format!(
            "{nvidia} MIG instance(s) {} of {} MiB each (GPU Feature Discovery, single \
             strategy); a process uses one instance",
            first.name,
            first.memory.total / MIB
        ));
    }
    for (resource, value) in allocatable {
        let Some(profile) = resource.strip_prefix(MIG_RESOURCE_PREFIX) else {
            continue;
        };
        let instances = count(resource)?;
        if instances == 0 {
            continue;
        }
        match mig_devices(labels, profile, instances, devices.len()) {
            Ok(found) => {
                notes.push(format!(
                    "{value} MIG instance(s) {profile} as {resource} (GPU Feature Discovery, \
                     mixed strategy); a process uses one instance"
                ));
                devices.extend(found);
            }
            Err(reason) => notes.push(format!("{resource} left out: {reason}")),
        }
    }
    if !devices.is_empty() {
        return Ok((devices, notes));
    }
    let amd = count("amd.com/gpu")?;
    if amd > 0 {
        return Ok((amd_devices(labels, amd)?, notes));
    }
    for (resource, value) in allocatable {
        if resource.starts_with(ASCEND_RESOURCE_PREFIX)
            && !ASCEND_RESOURCES.contains(&resource.as_str())
            && count(resource)? > 0
        {
            notes.push(format!("{resource} ({value}) left out: {NPU_SHARES}"));
        }
    }
    for resource in ASCEND_RESOURCES {
        let npus = count(resource)?;
        if npus > 0 {
            return Ok((ascend_devices(labels, resource, npus)?, notes));
        }
    }
    Ok((Vec::new(), notes))
}

/// The resource of GPUs shared by time slicing under `renameByDefault`.
const SHARED_GPU: &str = "nvidia.com/gpu.shared";

/// Why a time-sliced GPU is no device to plan with.
const TIME_SLICED: &str = "a replica is a turn on the whole GPU, whose memory the other \
    replicas' pods use without limit or account, so no part of it can be counted on";

/// Resources of MIG profiles under the mixed strategy (`nvidia.com/mig-1g.5gb`).
const MIG_RESOURCE_PREFIX: &str = "nvidia.com/mig-";

/// `instances` MIG instances of `profile` (mixed strategy), numbered from `first`, with the
/// memory of the profile's `nvidia.com/mig-PROFILE.memory` label (MiB) and the GPU's
/// product and compute capability.
fn mig_devices(
    labels: &BTreeMap<String, String>,
    profile: &str,
    instances: u32,
    first: usize,
) -> std::result::Result<Vec<Device>, String> {
    const GFD: &str = "NVIDIA GPU Feature Discovery";
    let key = format!("{MIG_RESOURCE_PREFIX}{profile}.memory");
    let mib: u64 = label(labels, &[key.as_str()])
        .ok_or_else(|| missing(&key, GFD))?
        .parse()
        .map_err(|_| format!("{key} is not a number of MiB"))?;
    let product = label(labels, &["nvidia.com/gpu.product"])
        .ok_or_else(|| missing("nvidia.com/gpu.product", GFD))?;
    let name = format!("{product}{MIG_RESOURCE_MARK}{profile}");
    let compute = compute_capability(labels);
    let first = u32::try_from(first).map_err(|_| "too many devices".to_string())?;
    Ok((first..first.saturating_add(instances))
        .map(|index| {
            let mut device = Device::new(index, Vendor::Nvidia, &name, mib * MIB);
            device.compute_capability = compute.clone();
            device
        })
        .collect())
}

/// `MAJOR.MINOR` from GPU Feature Discovery's compute labels.
fn compute_capability(labels: &BTreeMap<String, String>) -> Option<String> {
    let major = labels.get("nvidia.com/gpu.compute.major")?;
    let minor = labels.get("nvidia.com/gpu.compute.minor")?;
    Some(format!("{major}.{minor}"))
}

/// What every Ascend resource name starts with.
const ASCEND_RESOURCE_PREFIX: &str = "huawei.com/Ascend";

/// Why an Ascend resource other than whole NPUs is no device to plan with: MindCluster's
/// device plugin offers a vNPU template as `huawei.com/Ascend910-5c.1cpu.8g` (a slice of an
/// NPU made from a template), and HAMi's plugin its virtual NPUs as `huawei.com/Ascend910B4`
/// (several per chip); both are shares whose memory is their template's or the pod's request,
/// as the captured node in `tests/fixtures/kubernetes` shows.
const NPU_SHARES: &str = "shares of NPUs (a vNPU template of the Ascend device plugin, or \
    HAMi's virtual NPUs), not whole devices";

/// The Ascend device plugin's resources, by chip family.
const ASCEND_RESOURCES: [&str; 3] = [
    "huawei.com/Ascend910",
    "huawei.com/Ascend310P",
    "huawei.com/Ascend310",
];

fn label<'a>(labels: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| labels.get(*k)).map(String::as_str)
}

/// A labeller's missing label: the node is left out, since its devices' memory is unknown.
fn missing(label: &str, labeller: &str) -> String {
    format!("no {label} label ({labeller}): its devices' memory is unknown")
}

fn nvidia_devices(
    labels: &BTreeMap<String, String>,
    count: u32,
) -> std::result::Result<Vec<Device>, String> {
    const GFD: &str = "NVIDIA GPU Feature Discovery";
    if let Some(replicas) = labels
        .get("nvidia.com/gpu.replicas")
        .filter(|r| r.as_str() != "1")
    {
        return Err(format!(
            "its GPUs are time-sliced ({replicas} replicas each, nvidia.com/gpu.replicas): \
             {TIME_SLICED}"
        ));
    }
    let product = label(labels, &["nvidia.com/gpu.product"])
        .ok_or_else(|| missing("nvidia.com/gpu.product", GFD))?;
    let mib: u64 = label(labels, &["nvidia.com/gpu.memory"])
        .ok_or_else(|| missing("nvidia.com/gpu.memory", GFD))?
        .parse()
        .map_err(|_| "nvidia.com/gpu.memory is not a number of MiB".to_string())?;
    let compute = compute_capability(labels);
    let driver = label(labels, &["nvidia.com/cuda.driver-version.full"]).map(str::to_string);
    let runtime = label(labels, &["nvidia.com/cuda.runtime-version.full"])
        .map(str::to_string)
        .or_else(|| {
            let major = labels.get("nvidia.com/cuda.runtime.major")?;
            let minor = labels.get("nvidia.com/cuda.runtime.minor")?;
            Some(format!("{major}.{minor}"))
        });
    Ok((0..count)
        .map(|index| {
            let mut device = Device::new(index, Vendor::Nvidia, product, mib * MIB);
            device.compute_capability = compute.clone();
            device.driver_version = driver.clone();
            device.runtime_version = runtime.clone();
            device
        })
        .collect())
}

/// AMD's node labeller writes `amd.com/gpu.vram` as whole GiB (`64G`: the KFD memory bank's
/// bytes / 2^20 / 1024, rounded; ROCm/k8s-device-plugin `cmd/k8s-node-labeller/main.go`), and
/// the product name with `_` for spaces. A node with several kinds gets per-kind count labels
/// instead of these, and is left out.
fn amd_devices(
    labels: &BTreeMap<String, String>,
    count: u32,
) -> std::result::Result<Vec<Device>, String> {
    const LABELLER: &str = "AMD GPU node labeller";
    let vram = label(labels, &["amd.com/gpu.vram", "beta.amd.com/gpu.vram"])
        .ok_or_else(|| missing("amd.com/gpu.vram", LABELLER))?;
    let gib: u64 = vram
        .strip_suffix('G')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("amd.com/gpu.vram `{vram}` is not whole GiB as `64G`"))?;
    let product = label(
        labels,
        &["amd.com/gpu.product-name", "beta.amd.com/gpu.product-name"],
    )
    .map(|name| name.replace('_', " "))
    .or_else(|| {
        label(
            labels,
            &["amd.com/gpu.device-id", "beta.amd.com/gpu.device-id"],
        )
        .map(|id| format!("AMD GPU {id}"))
    })
    .unwrap_or_else(|| "AMD GPU".to_string());
    Ok((0..count)
        .map(|index| Device::new(index, Vendor::Amd, &product, gib * GIB))
        .collect())
}

/// HBM of Ascend chips by the name the device plugin labels them with
/// (`node.kubernetes.io/npu.chip.name`): 64 GB on 910B1 to 910B3 (`npu-smi` of an Atlas
/// 800T A2 shows 65536 MiB per 910B3: `tests/probe_ascend.rs`), 32 GB on 910B4 and the
/// first 910.
const ASCEND_HBM_MIB: [(&str, u64); 6] = [
    ("910B1", 65536),
    ("910B2", 65536),
    ("910B2C", 65536),
    ("910B3", 65536),
    ("910B4", 32768),
    ("910", 32768),
];

fn ascend_devices(
    labels: &BTreeMap<String, String>,
    resource: &str,
    count: u32,
) -> std::result::Result<Vec<Device>, String> {
    let chip = label(labels, &["node.kubernetes.io/npu.chip.name"])
        .ok_or_else(|| missing("node.kubernetes.io/npu.chip.name", "Ascend device plugin"))?;
    let chip = chip.strip_prefix("Ascend").unwrap_or(chip);
    let (_, mib) = ASCEND_HBM_MIB
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(chip))
        .ok_or_else(|| format!("{resource} chip {chip}: its HBM size is not known to inferkit"))?;
    let name = format!("Ascend{chip}");
    Ok((0..count)
        .map(|index| Device::new(index, Vendor::Ascend, &name, mib * MIB))
        .collect())
}

/// The extended resource the device is offered as (for counting pods' requests).
fn device_resource(device: &Device) -> Option<String> {
    device.vendor.device_plugin_resource(&device.name)
}

/// A Kubernetes quantity (`1900m`, `16367668Ki`, `8`, `1.5Gi`, `2e3`) in thousandths of its
/// unit, so that CPU millicores and bytes share one integer form; the error names the key.
fn parse_quantity(key: &str, text: &str) -> std::result::Result<u64, String> {
    let bad = || format!("{key}: `{text}` is not a Kubernetes quantity");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad());
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().map_err(|_| bad())?;
    let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| bad())?);
    let (numerator, denominator): (u128, u128) = match suffix {
        "" => (1000, 1),
        "m" => (1, 1),
        "k" => (1000 * 1000, 1),
        "M" => (1000 * 1000u128.pow(2), 1),
        "G" => (1000 * 1000u128.pow(3), 1),
        "T" => (1000 * 1000u128.pow(4), 1),
        "P" => (1000 * 1000u128.pow(5), 1),
        "E" => (1000 * 1000u128.pow(6), 1),
        "Ki" => (1000 << 10, 1),
        "Mi" => (1000 << 20, 1),
        "Gi" => (1000 << 30, 1),
        "Ti" => (1000 << 40, 1),
        "Pi" => (1000 << 50, 1),
        "Ei" => (1000 << 60, 1),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: u32 = exponent[1..].parse().map_err(|_| bad())?;
            (1000 * 10u128.checked_pow(power).ok_or_else(bad)?, 1)
        }
        _ => return Err(bad()),
    };
    let value = mantissa.checked_mul(numerator).ok_or_else(bad)? / (scale * denominator);
    u64::try_from(value).map_err(|_| bad())
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl Metadata {
    fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Node {
    metadata: Metadata,
    #[serde(default)]
    spec: NodeSpec,
    #[serde(default)]
    status: NodeStatus,
}

impl Node {
    /// The address other nodes reach this one at: its InternalIP, else its ExternalIP.
    fn address(&self) -> Option<String> {
        ["InternalIP", "ExternalIP"].iter().find_map(|kind| {
            self.status
                .addresses
                .iter()
                .find(|a| a.type_ == *kind)
                .map(|a| a.address.clone())
        })
    }
}

#[derive(Default, Deserialize)]
struct NodeSpec {
    #[serde(default)]
    unschedulable: bool,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeStatus {
    #[serde(default)]
    allocatable: BTreeMap<String, String>,
    #[serde(default)]
    conditions: Vec<Condition>,
    #[serde(default)]
    addresses: Vec<NodeAddress>,
    #[serde(default)]
    node_info: NodeInfo,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct NodeAddress {
    #[serde(rename = "type")]
    type_: String,
    address: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeInfo {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    operating_system: String,
}

#[derive(Deserialize)]
struct Pod {
    metadata: Metadata,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

impl Pod {
    /// Pods on a node that still hold what they requested (not yet finished).
    fn holds_resources(&self) -> bool {
        self.spec.node_name.is_some()
            && !matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed"))
    }

    /// What the pod holds, in thousandths, by resource: the sum over its containers, or an
    /// init container's when larger (init containers run one at a time, before the others).
    fn requests(&self) -> std::result::Result<BTreeMap<String, u64>, String> {
        let mut total: BTreeMap<String, u64> = BTreeMap::new();
        for container in &self.spec.containers {
            for (key, value) in container.resources.held()? {
                let sum = total.entry(key).or_default();
                *sum = sum.saturating_add(value);
            }
        }
        for container in &self.spec.init_containers {
            for (key, value) in container.resources.held()? {
                let largest = total.entry(key).or_default();
                *largest = (*largest).max(value);
            }
        }
        Ok(total)
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
}

#[derive(Default, Deserialize)]
struct PodStatus {
    #[serde(default)]
    phase: Option<String>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    resources: Resources,
}

#[derive(Default, Deserialize)]
struct Resources {
    #[serde(default)]
    requests: BTreeMap<String, String>,
    #[serde(default)]
    limits: BTreeMap<String, String>,
}

impl Resources {
    /// Requests, with a limit standing for a missing request (Kubernetes defaults the request
    /// of a resource to its limit; extended resources are often given as limits only).
    fn held(&self) -> std::result::Result<BTreeMap<String, u64>, String> {
        let mut held = BTreeMap::new();
        for (key, value) in self.limits.iter().chain(&self.requests) {
            held.insert(key.clone(), parse_quantity(key, value)?);
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The labels ROCm's node labeller writes (its own test, `cmd/k8s-node-labeller`).
    #[test]
    fn amd_labeller_labels_give_name_and_whole_gib() {
        let amd = labels(&[
            ("amd.com/gpu.product-name", "Instinct_MI210"),
            ("amd.com/gpu.vram", "64G"),
            ("amd.com/gpu.family", "AI"),
        ]);
        let devices = amd_devices(&amd, 2).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[1].index, 1);
        assert_eq!(devices[0].name, "Instinct MI210");
        assert_eq!(devices[0].memory.total, 64 * GIB);
        assert_eq!(devices[0].vendor, Vendor::Amd);
        let beta = labels(&[("beta.amd.com/gpu.vram", "192G")]);
        assert_eq!(amd_devices(&beta, 1).unwrap()[0].memory.total, 192 * GIB);
        let mixed = labels(&[
            ("amd.com/gpu.vram.64G", "1"),
            ("amd.com/gpu.vram.192G", "1"),
        ]);
        assert!(
            amd_devices(&mixed, 2)
                .unwrap_err()
                .contains("amd.com/gpu.vram")
        );
    }

    /// The labeller's labels of an AKS `Standard_ND96isr_MI300X_v5` node (8 × MI300X) as
    /// reported in ROCm/k8s-device-plugin issue #112: no product name (the issue), so the
    /// device id names the GPU; `191G` of VRAM each.
    #[test]
    fn amd_labels_of_an_aks_mi300x_node() {
        let aks = labels(&[
            ("amd.com/gpu.cu-count", "304"),
            ("amd.com/gpu.device-id", "74b5"),
            ("amd.com/gpu.driver-version", "6.8.5"),
            ("amd.com/gpu.family", "AI"),
            ("amd.com/gpu.simd-count", "1216"),
            ("amd.com/gpu.vram", "191G"),
            ("beta.amd.com/gpu.cu-count", "304"),
            ("beta.amd.com/gpu.cu-count.304", "8"),
            ("beta.amd.com/gpu.device-id", "74b5"),
            ("beta.amd.com/gpu.device-id.74b5", "8"),
            ("beta.amd.com/gpu.family", "AI"),
            ("beta.amd.com/gpu.family.AI", "8"),
        ]);
        let devices = amd_devices(&aks, 8).unwrap();
        assert_eq!(devices.len(), 8);
        assert_eq!(devices[7].name, "AMD GPU 74b5");
        assert_eq!(devices[7].memory.total, 191 * GIB);
        assert_eq!(device_resource(&devices[0]).as_deref(), Some("amd.com/gpu"));
    }

    #[test]
    fn ascend_chips_by_their_label() {
        let a2 = labels(&[
            ("accelerator", "huawei-Ascend910"),
            ("node.kubernetes.io/npu.chip.name", "910B3"),
        ]);
        let devices = ascend_devices(&a2, "huawei.com/Ascend910", 8).unwrap();
        assert_eq!(devices.len(), 8);
        assert_eq!(devices[0].name, "Ascend910B3");
        assert_eq!(devices[0].memory.total, 64 * GIB);
        assert_eq!(
            device_resource(&devices[0]).as_deref(),
            Some("huawei.com/Ascend910")
        );
        let b4 = labels(&[("node.kubernetes.io/npu.chip.name", "910B4")]);
        assert_eq!(
            ascend_devices(&b4, "huawei.com/Ascend910", 1).unwrap()[0]
                .memory
                .total,
            32 * GIB
        );
        let unknown = labels(&[("node.kubernetes.io/npu.chip.name", "910C")]);
        assert!(
            ascend_devices(&unknown, "huawei.com/Ascend910", 1)
                .unwrap_err()
                .contains("not known")
        );
        assert!(
            ascend_devices(&labels(&[]), "huawei.com/Ascend910", 1)
                .unwrap_err()
                .contains("npu.chip.name")
        );
    }

    #[test]
    fn quantities_in_thousandths() {
        assert_eq!(parse_quantity("cpu", "1900m"), Ok(1900));
        assert_eq!(parse_quantity("cpu", "2"), Ok(2000));
        assert_eq!(
            parse_quantity("memory", "16367668Ki"),
            Ok(16367668 * 1024 * 1000)
        );
        assert_eq!(
            parse_quantity("memory", "1.5Gi"),
            Ok(1536 * 1024 * 1024 * 1000)
        );
        assert_eq!(parse_quantity("memory", "129G"), Ok(129_000_000_000_000));
        assert_eq!(parse_quantity("cpu", "2e3"), Ok(2_000_000));
        assert!(
            parse_quantity("cpu", "two")
                .unwrap_err()
                .contains("cpu: `two`")
        );
        assert!(parse_quantity("memory", "1Zi").is_err());
        assert!(parse_quantity("memory", "").is_err());
        assert!(parse_quantity("memory", "99999999999999999999Ei").is_err());
    }
}
