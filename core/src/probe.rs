//! Device discovery: the [`DeviceProbe`] trait. Its implementations (host, NVML, `npu-smi`,
//! `rocm-smi`, static JSON) live in the `inferkit-probe` crate, so that an application that only
//! plans compiles none of them.

use async_trait::async_trait;

use crate::Result;
use crate::inventory::WorkerInventory;

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
