//! # inferkit-probe
//!
//! Device discovery: the implementations of [`DeviceProbe`] (the trait lives in
//! `inferkit-core`).
//!
//! | probe | feature | reads |
//! |---|---|---|
//! | `host::HostProbe` | `host-probe` | OS, arch, hostname, CPU, RAM (capped by the cgroup limit) |
//! | `nvml::NvmlProbe` | `nvml` | NVIDIA GPUs and MIG instances through NVML, loaded at run time |
//! | `ascend::AscendProbe` | `cli-probes` | Huawei Ascend NPUs through `npu-smi` |
//! | `rocm::RocmProbe` | `cli-probes` | AMD GPUs through `rocm-smi` |
//! | [`static_inventory::StaticProbe`] | always | a worker described in JSON |
//! | [`composite::CompositeProbe`] | always | host + every vendor probe, merged into one worker |
//! | [`kubernetes::load`] | always | a whole cluster from `kubectl get nodes/pods -o json` |
//!
//! The parsers of vendor tool output ([`ascend`], [`rocm`], [`cgroup`]) are pure functions that
//! are compiled without any feature, so they can be tested and reused on captured text.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use inferkit_core::Error;

pub mod ascend;
pub mod cgroup;
#[cfg(feature = "cli-probes")]
mod command;
pub mod composite;
#[cfg(feature = "host-probe")]
#[cfg_attr(docsrs, doc(cfg(feature = "host-probe")))]
pub mod host;
pub mod kubernetes;
#[cfg(feature = "nvml")]
#[cfg_attr(docsrs, doc(cfg(feature = "nvml")))]
pub mod nvml;
pub mod rocm;
pub mod static_inventory;

pub use composite::CompositeProbe;
pub use inferkit_core::DeviceProbe;
pub use static_inventory::StaticProbe;

/// Builds an [`Error::Probe`] for `probe`.
pub(crate) fn probe_error(probe: &str, reason: impl Into<String>) -> Error {
    Error::Probe {
        probe: probe.to_string(),
        reason: reason.into(),
    }
}
