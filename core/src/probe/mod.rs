//! Device discovery: the [`DeviceProbe`] trait and its implementations.
//!
//! | probe | feature | reads |
//! |---|---|---|
//! | `host::HostProbe` | `host-probe` | OS, arch, hostname, CPU, RAM (capped by the cgroup limit) |
//! | `nvml::NvmlProbe` | `nvml` | NVIDIA GPUs and MIG instances through NVML, loaded at run time |
//! | `ascend::AscendProbe` | `cli-probes` | Huawei Ascend NPUs through `npu-smi` |
//! | `rocm::RocmProbe` | `cli-probes` | AMD GPUs through `rocm-smi` |
//! | [`static_inventory::StaticProbe`] | always | a worker described in JSON |
//! | [`composite::CompositeProbe`] | always | host + every vendor probe, merged into one worker |
//!
//! The parsers of vendor tool output ([`ascend`], [`rocm`], [`cgroup`]) are pure functions that
//! are compiled without any feature, so they can be tested and reused on captured text.

use async_trait::async_trait;

use crate::inventory::WorkerInventory;
use crate::{Error, Result};

pub mod ascend;
pub mod cgroup;
#[cfg(feature = "cli-probes")]
mod command;
pub mod composite;
#[cfg(feature = "host-probe")]
pub mod host;
#[cfg(feature = "nvml")]
pub mod nvml;
pub mod rocm;
pub mod static_inventory;

pub use composite::CompositeProbe;
pub use static_inventory::StaticProbe;

/// Discovers the resources of one worker (the local machine, or a static description).
///
/// Probes are async because some shell out to vendor tools; blocking driver calls (NVML) run on
/// a blocking thread inside the implementation.
#[async_trait]
pub trait DeviceProbe: Send + Sync {
    /// Short name used in errors and logs (`nvml`, `npu-smi`, `rocm-smi`, `host`, `static`).
    fn name(&self) -> &'static str;

    /// Reads the inventory. A probe whose driver or tool is absent returns an inventory with no
    /// devices, not an error; an error means the tool is there but failed or printed garbage.
    async fn probe(&self) -> Result<WorkerInventory>;
}

/// Builds an [`Error::Probe`] for `probe`.
pub(crate) fn probe_error(probe: &str, reason: impl Into<String>) -> Error {
    Error::Probe {
        probe: probe.to_string(),
        reason: reason.into(),
    }
}
