//! The driver contract: [`Backend`], what it can do ([`Capabilities`]), how it claims a model
//! ([`Selection`]), and the [`Registry`] an application composes from drivers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::estimate::{DeviceSlot, HostSlot, ResourceEstimate, ResourceEstimator};
use crate::facts::{ModelFacts, ModelFormat};
use crate::flags::FlagTable;
use crate::inventory::{Device, Vendor, WorkerInventory};
use crate::launch::LaunchSpec;
use crate::model::{Category, ModelSpec};
use crate::{Error, Result};

/// An operating system, by its GPUStack label value (`os=linux`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Os {
    /// `linux`.
    Linux,
    /// `windows`.
    Windows,
    /// `darwin` (macOS).
    Darwin,
    /// Any other label value, as the inventory gave it.
    #[serde(untagged)]
    Other(String),
}

impl Os {
    /// The operating system a label value names; an unknown one is [`Os::Other`].
    pub fn from_label(label: &str) -> Os {
        match label {
            "linux" => Os::Linux,
            "windows" => Os::Windows,
            "darwin" => Os::Darwin,
            other => Os::Other(other.to_string()),
        }
    }

    /// The label value.
    pub fn as_str(&self) -> &str {
        match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
            Os::Darwin => "darwin",
            Os::Other(label) => label,
        }
    }
}

/// A CPU architecture, by its GPUStack label value (`arch=amd64`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Arch {
    /// `amd64` (x86-64).
    Amd64,
    /// `arm64` (AArch64).
    Arm64,
    /// Any other label value, as the inventory gave it.
    #[serde(untagged)]
    Other(String),
}

impl Arch {
    /// The architecture a label value names; an unknown one is [`Arch::Other`].
    pub fn from_label(label: &str) -> Arch {
        match label {
            "amd64" => Arch::Amd64,
            "arm64" => Arch::Arm64,
            other => Arch::Other(other.to_string()),
        }
    }

    /// The label value.
    pub fn as_str(&self) -> &str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
            Arch::Other(label) => label,
        }
    }
}

/// An operating system and CPU architecture pair; displayed as GPUStack writes it
/// (`linux/amd64`).
///
/// ```
/// use inferkit_core::{Arch, Os, Platform};
///
/// let platform = Platform::new(Os::Linux, Arch::Arm64);
/// assert_eq!(platform.to_string(), "linux/arm64");
/// assert_eq!(Platform::from_labels("linux", "arm64"), Some(platform));
/// assert_eq!(Platform::from_labels("", "arm64"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system.
    pub os: Os,
    /// CPU architecture.
    pub arch: Arch,
}

impl Platform {
    /// `os` on `arch`.
    pub const fn new(os: Os, arch: Arch) -> Self {
        Platform { os, arch }
    }

    /// The platform of two label values, `None` where either is unknown (empty).
    pub fn from_labels(os: &str, arch: &str) -> Option<Platform> {
        (!os.is_empty() && !arch.is_empty())
            .then(|| Platform::new(Os::from_label(os), Arch::from_label(arch)))
    }

    /// The platform a worker reports, `None` where its inventory leaves it out.
    pub fn of_worker(worker: &WorkerInventory) -> Option<Platform> {
        Platform::from_labels(&worker.os, &worker.arch)
    }

    /// Every pair of `oses` and `arches`.
    pub fn every(oses: &[Os], arches: &[Arch]) -> Vec<Platform> {
        oses.iter()
            .flat_map(|os| {
                arches
                    .iter()
                    .map(|arch| Platform::new(os.clone(), arch.clone()))
            })
            .collect()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os.as_str(), self.arch.as_str())
    }
}

/// What a backend can do, checked by the planner before it asks the backend anything else.
///
/// The default can do nothing: a driver starts from it and switches on what it supports, so
/// that it keeps compiling as capabilities are added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// Model formats it loads.
    pub formats: Vec<ModelFormat>,
    /// Accelerator vendors it runs on.
    pub vendors: Vec<Vendor>,
    /// Platforms it runs on.
    pub platforms: Vec<Platform>,
    /// Categories of models it serves.
    pub categories: Vec<Category>,
    /// Runs with no accelerator at all.
    pub cpu_only: bool,
    /// Keeps part of a model in host memory while the rest is on accelerators.
    pub cpu_offload: bool,
    /// Splits one instance over several accelerators of one worker.
    pub multi_device: bool,
    /// Splits one instance over several workers.
    pub multi_worker: bool,
    /// Whether CPU offloading is on when the user says nothing (GPUStack: llama-box only).
    pub default_cpu_offloading: bool,
    /// Whether distribution across workers is on when the user says nothing.
    pub default_distributed: bool,
    /// Worker labels required when the user gives no selector (vLLM: `os=linux`).
    pub default_worker_selector: BTreeMap<String, String>,
    /// How devices on workers other than the main one are driven.
    pub subordinates: SubordinateGrouping,
    /// The backend claims a fixed fraction of each device and keeps its own headroom inside it
    /// (vLLM's `--gpu-memory-utilization`, MindIE's `--npu-memory-fraction`). Placement then
    /// does not subtract the per-device reserve as well: the two margins would stack and
    /// refuse models that fit (hard case 8).
    pub own_device_headroom: bool,
}

impl Capabilities {
    /// Refuses what the user switched on but the backend cannot do, with GPUStack's messages
    /// (behaviour spec §1.4): CPU offloading, distribution across workers, a category it does
    /// not serve. The planner calls it before anything else; drivers rely on it rather than
    /// repeating the checks in [`Backend::prepare`].
    pub fn check_spec(&self, id: &str, spec: &ModelSpec) -> Result<()> {
        if spec.cpu_offloading == Some(true) && !self.cpu_offload {
            return Err(Error::invalid_parameter(
                "cpu_offloading",
                format!("CPU offloading is only supported for GGUF models; {id} cannot offload"),
            ));
        }
        if spec.distributed_inference_across_workers == Some(true) && !self.multi_worker {
            return Err(Error::invalid_parameter(
                "distributed_inference_across_workers",
                format!(
                    "Distributed inference across workers is not supported for the {id} backend"
                ),
            ));
        }
        if let Some(category) = spec
            .categories
            .iter()
            .find(|c| !self.categories.contains(c))
        {
            return Err(Error::invalid_parameter(
                "categories",
                format!("{id} does not serve {} models", category.as_str()),
            ));
        }
        Ok(())
    }
}

/// How a backend reaches devices that are not on the main worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SubordinateGrouping {
    /// It cannot: single-worker only.
    #[default]
    None,
    /// One subordinate process per remote device (llama.cpp RPC servers).
    PerRemoteDevice,
    /// One subordinate process per remote worker (Ray workers, MindIE nodes).
    PerRemoteWorker,
}

/// How strongly a backend claims a model. Ordered: a stronger claim wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// The backend cannot serve this model.
    Refuses,
    /// The backend can serve it, but only when no other backend claims it more strongly.
    Fallback,
    /// The backend serves it (vLLM for HF models, MindIE for its supported architectures).
    Supports,
    /// The backend is the natural choice (GGUF for llama-box, speech models for vox-box).
    Prefers,
}

/// A backend's answer to "do you want this model?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// How strongly.
    pub claim: Claim,
    /// Why, in a sentence shown to the user.
    pub reason: String,
    /// Categories the backend detected from the files (used when the user gave none).
    #[serde(default)]
    pub categories: Vec<Category>,
}

impl Selection {
    /// A selection with no detected categories.
    pub fn new(claim: Claim, reason: impl Into<String>) -> Self {
        Selection {
            claim,
            reason: reason.into(),
            categories: Vec::new(),
        }
    }
}

pub use inferkit_error::PlacementMode;

/// A process the main one relies on, on another worker or for another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subordinate {
    /// Worker it runs on.
    pub worker: String,
    /// Address the main process reaches it at.
    pub address: String,
    /// Device indices on that worker it serves.
    pub devices: Vec<u32>,
    /// Port it listens on.
    pub port: u16,
}

/// A chosen placement, ready to be translated into processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// How the instance is spread.
    pub mode: PlacementMode,
    /// Worker of the main process.
    pub worker: String,
    /// Address of that worker.
    pub address: String,
    /// Every accelerator used, in the backend's order (as given to the estimator).
    pub devices: Vec<DeviceSlot>,
    /// Host memory of the main worker.
    pub host: HostSlot,
    /// The estimate of this exact layout (its `launch_parameters` must be launched).
    pub estimate: ResourceEstimate,
    /// Port of the main process's endpoint.
    pub port: u16,
    /// Subordinate processes (llama.cpp RPC servers, Ray workers), one per entry.
    pub subordinates: Vec<Subordinate>,
}

/// An inference backend driver. Pure and synchronous: no I/O beyond what it is handed.
///
/// A driver answers two questions about a model before it is deployed: whether it claims it
/// ([`select`](Self::select)), and, once chosen, what the deployment is
/// ([`prepare`](Self::prepare)): the user's parameters parsed and checked once, into a
/// [`Prepared`] value that sizes the model and writes its processes.
pub trait Backend: Send + Sync {
    /// Stable id: `llama-box`, `vllm`, `vox-box`, `ascend-mindie`.
    fn id(&self) -> &'static str;

    /// What the backend can do; computed once and kept by the driver.
    fn capabilities(&self) -> &Capabilities;

    /// Whether and how strongly the backend claims the model, and why.
    fn select(&self, facts: &ModelFacts, spec: &ModelSpec) -> Selection;

    /// Parses and checks the user's parameters of `spec` against the backend's flag table and
    /// binds them to the model of `facts`: errors for what the backend would refuse, and on
    /// success the one value that answers everything after selection.
    fn prepare<'a>(
        &'a self,
        facts: &'a ModelFacts,
        spec: &'a ModelSpec,
    ) -> Result<Box<dyn Prepared + 'a>>;
}

/// One deployment of one model with one backend, its parameters parsed and checked
/// ([`Backend::prepare`]): it holds the typed settings, so nothing is parsed again for the
/// estimate, placement or launch.
pub trait Prepared: Send + Sync {
    /// What is accepted but suspicious, in sentences for the user.
    fn warnings(&self) -> &[String];

    /// The memory model of this model with these settings.
    fn estimator(&self) -> &dyn ResourceEstimator;

    /// The processes that run `assignment`: subordinates first, the main process last.
    fn launch(&self, assignment: &Assignment) -> Result<Vec<LaunchSpec>>;

    /// The flag table of `program` (a [`LaunchSpec::program`] of this deployment), at the
    /// version the deployment targets, where the driver has one. The planner reads its marks:
    /// which flags are secret and which environment variable the program also reads each from
    /// ([`crate::secret::redact`]). The default knows no table: only the name rule applies.
    fn flag_table(&self, _program: &str) -> Option<&'static FlagTable> {
        None
    }

    /// Whether this model, with this backend, may run on `worker` at all (a model family the
    /// backend runs only on some platforms). Checked before any of the worker's devices, and
    /// for CPU-only placements; the default accepts every worker.
    fn check_worker(&self, _worker: &WorkerInventory) -> std::result::Result<(), Unfit> {
        Ok(())
    }

    /// Whether the backend, at the version the spec targets, runs on `device` of `worker` (a
    /// build without kernels for the device's compute capability, a runtime too old). Vendors
    /// and platforms are already checked against [`Capabilities`]; the default accepts every
    /// device.
    fn check_device(
        &self,
        _worker: &WorkerInventory,
        _device: &Device,
    ) -> std::result::Result<(), Unfit> {
        Ok(())
    }
}

/// Why a backend does not run a model on a worker or device ([`Prepared::check_worker`],
/// [`Prepared::check_device`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Unfit {
    /// The worker's operating system or architecture is not one the model runs on.
    Platform {
        /// The platforms it runs on, in a sentence.
        reason: String,
    },
    /// The device lacks what the backend needs (kernels for its compute capability, a
    /// runtime or driver new enough).
    Device {
        /// What is missing, in a sentence.
        reason: String,
    },
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::Platform { reason } | Unfit::Device { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for Unfit {}

/// The set of backends a planner chooses from. No global state: an application builds one
/// (the `inferkit` facade's `default_registry()` registers every enabled driver).
#[derive(Clone, Default)]
pub struct Registry {
    backends: Vec<Arc<dyn Backend>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.backends.iter().map(|b| b.id()))
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a backend (builder style). A backend with the same id replaces the earlier one,
    /// in its place.
    pub fn with(mut self, backend: impl Backend + 'static) -> Self {
        self.register(Arc::new(backend));
        self
    }

    /// Adds a backend. A backend with the same id replaces the earlier one in its place, so
    /// that reconfiguring a driver keeps the order that breaks ties in automatic selection.
    pub fn register(&mut self, backend: Arc<dyn Backend>) {
        match self.backends.iter_mut().find(|b| b.id() == backend.id()) {
            Some(slot) => *slot = backend,
            None => self.backends.push(backend),
        }
    }

    /// The backend with this id.
    pub fn get(&self, id: &str) -> Option<&dyn Backend> {
        self.backends
            .iter()
            .find(|b| b.id() == id)
            .map(|b| b.as_ref())
    }

    /// Every backend, in registration order.
    pub fn backends(&self) -> impl Iterator<Item = &dyn Backend> {
        self.backends.iter().map(|b| b.as_ref())
    }

    /// Ids of every backend, in registration order.
    pub fn ids(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.id()).collect()
    }
}
