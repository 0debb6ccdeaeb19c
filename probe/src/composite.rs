//! One inventory for the local machine: the host probe plus every vendor probe.

use std::sync::Arc;

use async_trait::async_trait;

use inferkit_core::Result;
use inferkit_core::inventory::WorkerInventory;

use super::DeviceProbe;

/// Merges a host probe (name, OS, arch, CPU, RAM) with vendor probes (devices) into one worker.
///
/// Devices keep the indices their vendor's runtime gives them (`CUDA_VISIBLE_DEVICES`,
/// `ASCEND_RT_VISIBLE_DEVICES`, `HIP_VISIBLE_DEVICES` each count from 0), in the order the
/// vendor probes were added. A vendor probe that fails fails the whole probe: the error names
/// it, and a partial inventory would let the planner over-commit the devices it hides.
#[derive(Clone)]
pub struct CompositeProbe {
    host: Arc<dyn DeviceProbe>,
    vendors: Vec<Arc<dyn DeviceProbe>>,
}

impl std::fmt::Debug for CompositeProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vendors: Vec<&str> = self.vendors.iter().map(|p| p.name()).collect();
        f.debug_struct("CompositeProbe")
            .field("host", &self.host.name())
            .field("vendors", &vendors)
            .finish()
    }
}

impl CompositeProbe {
    /// A composite of `host` and no vendor probe yet.
    pub fn new(host: impl DeviceProbe + 'static) -> Self {
        CompositeProbe {
            host: Arc::new(host),
            vendors: Vec::new(),
        }
    }

    /// Adds a vendor probe; only its devices are used.
    pub fn with_vendor(mut self, probe: impl DeviceProbe + 'static) -> Self {
        self.vendors.push(Arc::new(probe));
        self
    }

    /// The local machine: [`super::host::HostProbe`] plus every vendor probe compiled in
    /// (features `nvml` and `cli-probes`).
    #[cfg(feature = "host-probe")]
    #[cfg_attr(docsrs, doc(cfg(feature = "host-probe")))]
    pub fn local() -> Self {
        let probe = Self::new(super::host::HostProbe::new());
        #[cfg(feature = "nvml")]
        let probe = probe.with_vendor(super::nvml::NvmlProbe::new());
        #[cfg(feature = "cli-probes")]
        let probe = probe
            .with_vendor(super::ascend::AscendProbe::new())
            .with_vendor(super::rocm::RocmProbe::new());
        probe
    }

    /// The names of the vendor probes, in merge order.
    pub fn vendor_names(&self) -> Vec<&'static str> {
        self.vendors.iter().map(|p| p.name()).collect()
    }
}

#[async_trait]
impl DeviceProbe for CompositeProbe {
    fn name(&self) -> &'static str {
        "composite"
    }

    async fn probe(&self) -> Result<WorkerInventory> {
        let mut worker = self.host.probe().await?;
        for vendor in &self.vendors {
            let found = vendor.probe().await?;
            tracing::debug!(
                probe = vendor.name(),
                devices = found.devices.len(),
                "probed"
            );
            worker.devices.extend(found.devices);
        }
        Ok(worker)
    }
}
