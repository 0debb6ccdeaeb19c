//! What a cluster has: workers, their devices, and what is already running on them.
//!
//! These types are also the cluster JSON format that `plan --cluster` reads and that
//! `probe --json` writes, so their field names are a public contract:
//!
//! ```json
//! {"workers": [{"name": "w1", "os": "linux", "arch": "amd64", "labels": {},
//!   "cpu_cores": 32, "ram": {"total": 137438953472, "used": 8589934592},
//!   "devices": [{"index": 0, "vendor": "nvidia", "name": "NVIDIA H100 80GB HBM3",
//!                "memory": {"total": 85520809984, "used": 0}, "compute_capability": "9.0"}],
//!   "allocations": [{"name": "qwen-0", "devices": {"0": 21474836480}, "ram": 0}]}]}
//! ```
//!
//! Sizes in bytes may also be written as strings with a unit (`"80GiB"`, `"24576 MiB"`,
//! `"80 GB"`: see [`parse_size`](crate::units::parse_size)); they are always written back as
//! bytes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::vec_map::VecMap;
use crate::{Error, Result};

/// A whole cluster: every worker the planner may place a model on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The workers, in any order (placement breaks ties by worker name).
    #[serde(deserialize_with = "exact_vec")]
    pub workers: Vec<WorkerInventory>,
}

/// A list read to its end, then shrunk to its length: a list grown as it is read ends up to
/// twice as large (100,000 workers took room for 131,072, 7 MB; the allocations of a fleet's
/// workers, 7 MB more).
fn exact_vec<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    input: D,
) -> std::result::Result<Vec<T>, D::Error> {
    let mut list = Vec::deserialize(input)?;
    list.shrink_to_fit();
    Ok(list)
}

impl Cluster {
    /// Reads a cluster from its JSON file (at most [`MAX_CLUSTER_FILE`] bytes), as it parses
    /// it: the file's text is not held whole.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        match Self::read_worker_list(path)? {
            Some(cluster) => Ok(cluster),
            None => crate::user_json::from_file(path, MAX_CLUSTER_FILE),
        }
    }

    /// Reads a cluster file laid out as `{"workers": [...]}` (at most [`MAX_CLUSTER_FILE`]
    /// bytes) quickly: in chunks, each worker parsed from the chunk's bytes
    /// ([`read_json_array_file`](inferkit_formats::files::read_json_array_file); a 152 MB
    /// fleet file reads in less than half the time of a parse from a reader). `Ok(None)` when
    /// the file is laid out otherwise or does not parse: a parser of the whole document, such
    /// as [`Cluster::from_json_file`]'s, then reads it or reports its error with the offset
    /// and the nearest known key of a misspelt one.
    pub fn read_worker_list(path: &Path) -> Result<Option<Self>> {
        let workers =
            inferkit_formats::files::read_json_array_file(path, MAX_CLUSTER_FILE, "workers")?;
        Ok(workers.map(|workers| Cluster { workers }))
    }

    /// Parses cluster JSON; `origin` names the source in errors.
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Self> {
        crate::user_json::from_str(text, origin)
    }

    /// Looks a worker up by name.
    pub fn worker(&self, name: &str) -> Option<&WorkerInventory> {
        self.workers.iter().find(|w| w.name == name)
    }
}

/// Largest cluster JSON read: a thousand 8-GPU workers take 1.5 MB
/// (`examples/clusters/fleet-1000x8.json`).
pub const MAX_CLUSTER_FILE: u64 = 256 << 20;

/// Most devices one worker may list. The largest nodes carry 8 or 16 accelerators, and
/// partitioning multiplies that at most by 8 (AMD MI300X in CPX mode shows each GPU as 8
/// partitions; NVIDIA MIG gives at most 7 instances per GPU): 128 on a 16-GPU board. A
/// thousand leaves room for what comes next while refusing the implausible inventories a
/// broken or hostile generator writes, before the placement search spends time on them.
pub const MAX_DEVICES_PER_WORKER: usize = 1024;

/// One machine: its host resources, its accelerators and what already runs on them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkerInventory {
    /// Unique worker name (placement's tie-breaker).
    pub name: String,
    /// Operating system as GPUStack labels it: `linux`, `windows`, `darwin`.
    #[serde(default)]
    pub os: String,
    /// CPU architecture as GPUStack labels it: `amd64`, `arm64`.
    #[serde(default)]
    pub arch: String,
    /// Free-form labels used by worker selectors (`os` and `arch` are implied by the fields).
    #[serde(default)]
    pub labels: VecMap<String, String>,
    /// Address other workers reach this one at (RPC servers, Ray); defaults to the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Logical CPU cores.
    #[serde(default)]
    pub cpu_cores: u32,
    /// CPU brand string, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_brand: Option<String>,
    /// Host memory.
    #[serde(default)]
    pub ram: Memory,
    /// Accelerators, in the order the worker's runtime numbers them.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Claims of model instances already placed on this worker.
    #[serde(default, deserialize_with = "exact_vec")]
    pub allocations: Vec<Allocation>,
}

impl WorkerInventory {
    /// The label value for `key`, where `os` and `arch` fall back to the fields of that name.
    pub fn label(&self, key: &str) -> Option<&str> {
        match self.labels.get(key) {
            Some(v) => Some(v.as_str()),
            None if key == "os" && !self.os.is_empty() => Some(&self.os),
            None if key == "arch" && !self.arch.is_empty() => Some(&self.arch),
            None => None,
        }
    }

    /// The device with runtime index `index`.
    pub fn device(&self, index: u32) -> Option<&Device> {
        self.devices.iter().find(|d| d.index == index)
    }

    /// Bytes existing allocations claim on device `index`.
    pub fn allocated_on_device(&self, index: u32) -> u64 {
        let key = index.to_string();
        self.allocations
            .iter()
            .filter_map(|a| a.devices.get(&key))
            .fold(0u64, |acc, b| acc.saturating_add(*b))
    }

    /// Bytes of host RAM existing allocations claim.
    pub fn allocated_ram(&self) -> u64 {
        self.allocations
            .iter()
            .fold(0u64, |acc, a| acc.saturating_add(a.ram))
    }

    /// The address other workers use to reach this one.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or(&self.name)
    }
}

/// Total and used bytes of a memory pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Capacity in bytes (in a file: bytes or a size such as `"80GiB"`).
    #[cfg_attr(feature = "schema", schemars(with = "crate::units::Size"))]
    #[serde(deserialize_with = "crate::units::serde_bytes::deserialize")]
    pub total: u64,
    /// Bytes in use now (by anything, including processes the platform does not know about).
    #[cfg_attr(feature = "schema", schemars(with = "crate::units::Size"))]
    #[serde(default, deserialize_with = "crate::units::serde_bytes::deserialize")]
    pub used: u64,
    /// Device memory the driver keeps for itself: counted in `total`, in neither `used` nor the
    /// total CUDA reports (NVML's `reserved`, `nvmlDeviceGetMemoryInfo_v2`). Absent where the
    /// probe or the file does not say, and for host RAM.
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::units::Size>"))]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::units::serde_bytes::deserialize_some"
    )]
    pub reserved: Option<u64>,
}

impl Memory {
    /// `total - used`, never negative.
    pub fn free(&self) -> u64 {
        self.total.saturating_sub(self.used)
    }
}

/// Accelerator vendor. Read from JSON by [`Vendor::from_name`], so `NVIDIA` is
/// [`Vendor::Nvidia`]; written as the lowercase name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Vendor {
    /// NVIDIA GPU (CUDA).
    Nvidia,
    /// AMD GPU (ROCm/HIP).
    Amd,
    /// Huawei Ascend NPU (CANN).
    Ascend,
    /// Apple silicon GPU (Metal).
    Apple,
    /// Any other vendor, by the name the inventory gave.
    #[serde(untagged)]
    Other(String),
}

/// What separates the product from the MIG profile in the name of a MIG instance offered as
/// its own Kubernetes resource (`A100-SXM4-40GB MIG 1g.5gb` → `nvidia.com/mig-1g.5gb`).
pub const MIG_RESOURCE_MARK: &str = " MIG ";

impl Vendor {
    /// The vendor `name` stands for, in any letter case; any other name is [`Vendor::Other`]
    /// as written.
    ///
    /// ```
    /// use inferkit_core::Vendor;
    ///
    /// assert_eq!(Vendor::from_name("NVIDIA"), Vendor::Nvidia);
    /// assert_eq!(Vendor::from_name("Hygon"), Vendor::Other("Hygon".into()));
    /// ```
    pub fn from_name(name: &str) -> Vendor {
        [Vendor::Nvidia, Vendor::Amd, Vendor::Ascend, Vendor::Apple]
            .into_iter()
            .find(|known| known.as_str().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| Vendor::Other(name.to_string()))
    }

    /// The lowercase name used in cluster JSON.
    pub fn as_str(&self) -> &str {
        match self {
            Vendor::Nvidia => "nvidia",
            Vendor::Amd => "amd",
            Vendor::Ascend => "ascend",
            Vendor::Apple => "apple",
            Vendor::Other(name) => name,
        }
    }

    /// The extended resource a Kubernetes device plugin offers a device of this vendor named
    /// `device` as: `nvidia.com/gpu` (whole GPUs, and MIG instances under GPU Feature
    /// Discovery's single strategy), `nvidia.com/mig-PROFILE` for a device named
    /// `PRODUCT MIG PROFILE` (a MIG instance under the mixed strategy, as `probe --kubernetes`
    /// names them), `amd.com/gpu`, `huawei.com/Ascend910`, `Ascend310P` or `Ascend310`; `None`
    /// for vendors without a known device plugin.
    pub fn device_plugin_resource(&self, device: &str) -> Option<String> {
        match self {
            Vendor::Nvidia => Some(match device.split_once(MIG_RESOURCE_MARK) {
                Some((_, profile)) => format!("nvidia.com/mig-{profile}"),
                None => "nvidia.com/gpu".to_string(),
            }),
            Vendor::Amd => Some("amd.com/gpu".to_string()),
            Vendor::Ascend => Some(
                match ChipFamily::of(self, device) {
                    ChipFamily::Ascend310P => "huawei.com/Ascend310P",
                    ChipFamily::Ascend310 => "huawei.com/Ascend310",
                    _ => "huawei.com/Ascend910",
                }
                .to_string(),
            ),
            Vendor::Apple | Vendor::Other(_) => None,
        }
    }

    /// Whether a device of this vendor named `device` is a MIG instance: GPU Feature
    /// Discovery names them `PRODUCT-MIG-PROFILE` under the single strategy, and
    /// `probe --kubernetes` `PRODUCT MIG PROFILE` under the mixed one. A CUDA process uses one
    /// MIG instance (CUDA enumerates at most one), so a process cannot span several.
    pub fn is_mig_instance(&self, device: &str) -> bool {
        *self == Vendor::Nvidia && (device.contains("-MIG-") || device.contains(MIG_RESOURCE_MARK))
    }

    /// The environment variable that pins a process to devices of this vendor, by GPUStack's
    /// table (`worker/backends/base.py`). Vendors inferkit does not model are looked up there
    /// the way GPUStack does it, by a case-insensitive substring of their name (`Hygon DCU`);
    /// `CUDA_VISIBLE_DEVICES` when nothing matches.
    pub fn visible_devices_env(&self) -> &'static str {
        const OTHERS: [(&str, &str); 6] = [
            ("nvidia", "CUDA_VISIBLE_DEVICES"),
            ("ascend", "ASCEND_RT_VISIBLE_DEVICES"),
            ("huawei", "ASCEND_RT_VISIBLE_DEVICES"),
            ("hygon", "HIP_VISIBLE_DEVICES"),
            ("iluvatar", "CUDA_VISIBLE_DEVICES"),
            ("cambricon", "MLU_VISIBLE_DEVICES"),
        ];
        match self {
            Vendor::Nvidia | Vendor::Apple => "CUDA_VISIBLE_DEVICES",
            Vendor::Ascend => "ASCEND_RT_VISIBLE_DEVICES",
            Vendor::Amd => "ROCR_VISIBLE_DEVICES",
            Vendor::Other(name) => {
                let name = name.to_lowercase();
                OTHERS
                    .iter()
                    .find(|(vendor, _)| name.contains(vendor))
                    .map_or("CUDA_VISIBLE_DEVICES", |(_, variable)| variable)
            }
        }
    }

    /// The environment entry that pins a process to the devices `indexes` of this vendor:
    /// [`Vendor::visible_devices_env`] set to the indexes, sorted (Ascend requires the list in
    /// ascending order: GPUStack issue 2527) and comma-separated.
    ///
    /// ```
    /// use inferkit_core::Vendor;
    ///
    /// let (variable, value) = Vendor::Ascend.visible_devices(&[3, 1]);
    /// assert_eq!((variable, value.as_str()), ("ASCEND_RT_VISIBLE_DEVICES", "1,3"));
    /// ```
    pub fn visible_devices(&self, indexes: &[u32]) -> (&'static str, String) {
        let mut sorted = indexes.to_vec();
        sorted.sort_unstable();
        let list: Vec<String> = sorted.iter().map(u32::to_string).collect();
        (self.visible_devices_env(), list.join(","))
    }
}

/// The chip families whose differences a backend, a device plugin or a default depends on, told
/// from a device's vendor and product name in one place. Product names as inventories report
/// them (`Ascend310P3`, `Ascend910B3`, `NVIDIA A100-SXM4-80GB`), compared case-insensitively.
///
/// ```
/// use inferkit_core::{ChipFamily, Vendor};
///
/// assert_eq!(ChipFamily::of(&Vendor::Ascend, "Ascend310P3"), ChipFamily::Ascend310P);
/// assert_eq!(ChipFamily::of(&Vendor::Ascend, "Ascend910B3"), ChipFamily::Ascend910);
/// assert_eq!(ChipFamily::of(&Vendor::Nvidia, "NVIDIA A100-SXM4-80GB"), ChipFamily::NvidiaA100);
/// assert_eq!(ChipFamily::of(&Vendor::Nvidia, "NVIDIA H100 80GB HBM3"), ChipFamily::Other);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChipFamily {
    /// Ascend 310 (inference cards before the 310P).
    Ascend310,
    /// Ascend 310P (Atlas 300I Duo/Pro inference cards): no bfloat16, its own device-plugin
    /// resource.
    Ascend310P,
    /// Ascend 910, 910B, 910C (Atlas 800/900): every other Ascend NPU.
    Ascend910,
    /// NVIDIA A100, which vLLM keeps on its smaller batch defaults whatever its memory.
    NvidiaA100,
    /// Anything else: no rule depends on the family.
    Other,
}

impl ChipFamily {
    /// The family of a device of `vendor` named `name`.
    pub fn of(vendor: &Vendor, name: &str) -> ChipFamily {
        let name = name.to_ascii_lowercase();
        match vendor {
            Vendor::Ascend if name.contains("310p") => ChipFamily::Ascend310P,
            Vendor::Ascend if name.contains("310") => ChipFamily::Ascend310,
            Vendor::Ascend => ChipFamily::Ascend910,
            // vLLM's own test is a lowercase substring (`"a100" not in device_name`).
            Vendor::Nvidia if name.contains("a100") => ChipFamily::NvidiaA100,
            _ => ChipFamily::Other,
        }
    }
}

impl<'de> Deserialize<'de> for Vendor {
    /// Reads the name in place, without a string of its own: a fleet file names a vendor for
    /// each of its hundreds of thousands of devices (issue 18).
    fn deserialize<D: serde::Deserializer<'de>>(input: D) -> Result<Vendor, D::Error> {
        struct Name;

        impl serde::de::Visitor<'_> for Name {
            type Value = Vendor;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Vendor, E> {
                Ok(Vendor::from_name(name))
            }
        }

        input.deserialize_str(Name)
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One accelerator (GPU, NPU, or a MIG instance exposed as its own device).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Index as the worker's runtime numbers it (`CUDA_VISIBLE_DEVICES`, `ASCEND_RT_VISIBLE_DEVICES`).
    pub index: u32,
    /// Vendor.
    pub vendor: Vendor,
    /// Product name (`NVIDIA GeForce RTX 4090`, `Ascend910B3`).
    #[serde(default)]
    pub name: String,
    /// Device memory.
    pub memory: Memory,
    /// CUDA compute capability (`8.9`), or the vendor's equivalent (`gfx1100`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
    /// Stable unique id (NVIDIA UUID, MIG UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// PCI bus id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<String>,
    /// Driver version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// Runtime version (CUDA, CANN, ROCm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    /// Physical id where it differs from `index`: for Ascend, the chip logic id that
    /// `ASCEND_RT_VISIBLE_DEVICES` takes (equal to the NPU id on 910B, not on multi-chip 310P
    /// cards); for a MIG slice, its parent GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_index: Option<u32>,
    /// MIG or other partition information, when this device is a partition (boxed: most
    /// devices are none, and a fleet holds hundreds of thousands of devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<Box<Partition>>,
    /// What the probe reported about the device's health; absent when it is healthy (boxed, as
    /// `partition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Box<DeviceHealth>>,
}

impl Device {
    /// A device known only by what every inventory source reports: its index, vendor, name and
    /// total memory, nothing in use. The optional facts (compute capability, UUID, versions,
    /// partition, health) start empty; set the ones the source knows.
    pub fn new(index: u32, vendor: Vendor, name: impl Into<String>, total: u64) -> Self {
        Device {
            index,
            vendor,
            name: name.into(),
            memory: Memory {
                total,
                used: 0,
                reserved: None,
            },
            compute_capability: None,
            uuid: None,
            pci_bus_id: None,
            driver_version: None,
            runtime_version: None,
            physical_index: None,
            partition: None,
            health: None,
        }
    }

    /// Whether this device is an NVIDIA MIG instance: NVML reports its partition, GPU Feature
    /// Discovery and `probe --kubernetes` mark its name ([`Vendor::is_mig_instance`]).
    pub fn is_mig_instance(&self) -> bool {
        self.vendor == Vendor::Nvidia
            && (self.partition.is_some() || self.vendor.is_mig_instance(&self.name))
    }

    /// Why placement must not use this device, when its probe reported it unavailable.
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.health
            .as_ref()
            .filter(|health| !health.available)
            .map(|health| health.status.as_str())
    }
}

/// A device's health as its probe reported it (`npu-smi` Health column, a failing NVML query).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceHealth {
    /// Whether placement may use the device (a warning keeps it usable).
    pub available: bool,
    /// What was reported, naming the source (`npu-smi health Critical`).
    pub status: String,
}

/// A partition of a physical accelerator (NVIDIA MIG instance and similar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Profile name (`1g.10gb`).
    pub profile: String,
    /// Index of the parent physical device.
    pub parent_index: u32,
    /// GPU instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_instance_id: Option<u32>,
    /// Compute instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_instance_id: Option<u32>,
}

/// Resources an existing model instance claims on a worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// Instance name.
    pub name: String,
    /// Bytes claimed per device, keyed by the device index as a string (JSON object keys).
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, crate::units::Size>")
    )]
    #[serde(
        default,
        deserialize_with = "crate::units::serde_bytes::deserialize_map"
    )]
    pub devices: VecMap<String, u64>,
    /// Host RAM bytes claimed.
    #[cfg_attr(feature = "schema", schemars(with = "crate::units::Size"))]
    #[serde(default, deserialize_with = "crate::units::serde_bytes::deserialize")]
    pub ram: u64,
}

/// Identifies one device in a cluster: `worker:vendor:index` in GPUStack's gpu_selector form
/// (the middle part is accepted for compatibility and otherwise ignored).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeviceId {
    /// Worker name.
    pub worker: String,
    /// Device index on that worker.
    pub index: u32,
}

impl std::str::FromStr for DeviceId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid_parameter(
                "gpu_selector",
                format!("`{s}` is not of the form worker:device:index (e.g. `w1:cuda:0`)"),
            )
        };
        let mut parts = s.rsplitn(3, ':');
        let index = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let _device_kind = parts.next().ok_or_else(bad)?;
        let worker = parts.next().filter(|w| !w.is_empty()).ok_or_else(bad)?;
        Ok(DeviceId {
            worker: worker.to_string(),
            index,
        })
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.worker, self.index)
    }
}
