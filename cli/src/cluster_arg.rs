//! Where a command's cluster comes from: a cluster file (`--cluster`), a described machine
//! from the accelerator catalog (`--gpu 'H100 80GB' --gpus 8 --workers 2`), or a probe of this
//! machine.

use std::path::PathBuf;

use inferkit::probe::static_inventory::load_cluster;
use inferkit::probe::{CompositeProbe, DeviceProbe};
use inferkit::units::{GIB, parse_size};
use inferkit::{Cluster, Device, Error, Memory, Result, VecMap, WorkerInventory};

use crate::catalog::{self, Accelerator};
use crate::progress::Waiting;

/// Host RAM of a described worker when `--ram` is not given: twice its accelerator memory
/// (room to load weights and for CPU offload), and no less than this.
const MIN_DESCRIBED_RAM: u64 = 64 * GIB;

/// CPU cores of a described worker.
const DESCRIBED_CPU_CORES: u32 = 64;

/// The cluster options shared by `plan` and the what-if form of the other commands.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Cluster JSON file (`{"workers": [...]}`, sizes in bytes or as "80GiB"), or one worker
    /// as `inferkit probe --json` prints it. Without --cluster or --gpu, this machine is
    /// probed.
    #[arg(long, value_name = "FILE", conflicts_with = "gpu")]
    pub cluster: Option<PathBuf>,

    /// What-if hardware instead of a cluster file: workers with this accelerator from the
    /// built-in catalog (H100, H200, A100, "A100 40GB", L40S, L4, A10, 4090, 3090, T4, V100,
    /// MI300X, 910B).
    #[arg(long, value_name = "NAME")]
    pub gpu: Option<String>,

    /// With --gpu: accelerators per worker.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "gpu",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub gpus: u32,

    /// With --gpu: number of workers (named node-1, node-2, ...).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "gpu",
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub workers: u32,

    /// With --gpu: host RAM per worker (default: twice the accelerators' memory, at least
    /// 64GiB).
    #[arg(long, value_name = "SIZE", requires = "gpu", value_parser = parse_size)]
    pub ram: Option<u64>,
}

impl ClusterArgs {
    /// The cluster these options describe.
    pub fn cluster(&self) -> Result<Cluster> {
        match (&self.cluster, &self.gpu) {
            (Some(path), _) => load_cluster(path),
            (None, Some(gpu)) => {
                let accelerator = catalog::find(gpu).ok_or_else(|| {
                    Error::invalid_parameter(
                        "--gpu",
                        format!(
                            "`{gpu}` is not in the catalog; known: {}",
                            catalog::names().join(", ")
                        ),
                    )
                })?;
                Ok(described(accelerator, self.gpus, self.workers, self.ram))
            }
            (None, None) => Ok(Cluster {
                workers: vec![probe_local()?],
            }),
        }
    }
}

/// `workers` identical workers with `gpus` of `accelerator` each, nothing running on them.
fn described(accelerator: &Accelerator, gpus: u32, workers: u32, ram: Option<u64>) -> Cluster {
    let devices: Vec<Device> = (0..gpus)
        .map(|index| {
            let mut device = Device::new(
                index,
                accelerator.vendor(),
                accelerator.name,
                accelerator.memory(),
            );
            device.compute_capability = accelerator.compute_capability.map(str::to_string);
            device
        })
        .collect();
    let ram =
        ram.unwrap_or_else(|| (accelerator.memory() * u64::from(gpus) * 2).max(MIN_DESCRIBED_RAM));
    let workers = (1..=workers)
        .map(|n| WorkerInventory {
            name: format!("node-{n}"),
            os: "linux".into(),
            arch: accelerator.arch.into(),
            labels: VecMap::new(),
            address: None,
            cpu_cores: DESCRIBED_CPU_CORES,
            cpu_brand: None,
            ram: Memory {
                total: ram,
                used: 0,
                reserved: None,
            },
            devices: devices.clone(),
            allocations: Vec::new(),
        })
        .collect();
    Cluster { workers }
}

/// This machine: host, NVIDIA (NVML), Ascend (`npu-smi`) and AMD (`rocm-smi`) probes.
pub fn probe_local() -> Result<WorkerInventory> {
    let _waiting = Waiting::start("probing this machine");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Probe {
            probe: "local".into(),
            reason: format!("cannot start the async runtime: {e}"),
        })?;
    runtime.block_on(CompositeProbe::local().probe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_workers_have_the_catalog_device() {
        let h100 = catalog::find("H100").unwrap();
        let cluster = described(h100, 8, 2, None);
        assert_eq!(cluster.workers.len(), 2);
        assert_eq!(cluster.workers[1].name, "node-2");
        let worker = &cluster.workers[0];
        assert_eq!(worker.devices.len(), 8);
        assert_eq!(worker.devices[7].index, 7);
        assert_eq!(worker.devices[0].memory.total, 85_520_809_984);
        assert_eq!(worker.ram.total, 85_520_809_984 * 16);
        let small = described(catalog::find("4090").unwrap(), 1, 1, None);
        assert_eq!(small.workers[0].ram.total, 64 * GIB);
    }
}
