//! NVIDIA GPUs through NVML (`libnvidia-ml`), loaded at run time by nvml-wrapper.
//!
//! A machine without the NVIDIA driver has no NVIDIA devices: the probe returns none and notes
//! it at debug level. A driver that is there but fails (no permission, `Unknown Error` inside a
//! container without the device nodes) is an [`inferkit_core::Error::Probe`]. A GPU whose own queries
//! fail (`GPU is lost`, a PCI info error) does not fail the probe: it is listed unavailable with
//! the error in [`Device::health`], so placement skips it with that reason and uses the others.
//!
//! Indices: devices are numbered in NVML's order (PCI bus order), so launchers must set
//! `CUDA_DEVICE_ORDER=PCI_BUS_ID` for `CUDA_VISIBLE_DEVICES` to mean the same GPUs. A GPU in MIG
//! mode is replaced by its MIG instances, each its own allocatable device with the next index,
//! [`Device::physical_index`] and [`Partition::parent_index`] naming the parent GPU; CUDA
//! addresses a MIG instance by its UUID (`MIG-...`), which [`Device::uuid`] holds.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::MemoryInfo;

use inferkit_core::Result;
use inferkit_core::inventory::{Device, DeviceHealth, Memory, Partition, Vendor, WorkerInventory};

use super::{DeviceProbe, probe_error};

type NvmlDevice<'a> = nvml_wrapper::Device<'a>;

/// Name of the probe, used in errors.
const PROBE: &str = "nvml";

/// `nvmlDeviceGetMigMode` reports `NVML_DEVICE_MIG_ENABLE` (1) when MIG is on (nvml.h).
const MIG_ENABLED: u32 = 1;

/// Probes NVIDIA GPUs and MIG instances. One NVML handle is initialised on first use and reused
/// by every later probe; NVML calls run on a blocking thread.
///
/// The inventory it returns holds only devices; [`super::CompositeProbe`] adds the host.
#[derive(Debug, Clone, Default)]
pub struct NvmlProbe {
    state: Arc<Mutex<NvmlState>>,
}

/// The NVML library as far as this probe has found it.
#[derive(Default)]
enum NvmlState {
    /// Not tried yet, or the last try failed with a real error (tried again next time).
    #[default]
    Untried,
    /// No NVIDIA driver on this machine.
    Absent,
    /// Initialised and reused (boxed: the loaded function table is about 12 KB).
    Ready(Box<Nvml>),
}

impl std::fmt::Debug for NvmlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NvmlState::Untried => "Untried",
            NvmlState::Absent => "Absent",
            NvmlState::Ready(_) => "Ready",
        })
    }
}

impl NvmlProbe {
    /// A probe that loads NVML on its first call.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DeviceProbe for NvmlProbe {
    fn name(&self) -> &'static str {
        PROBE
    }

    async fn probe(&self) -> Result<WorkerInventory> {
        let state = Arc::clone(&self.state);
        let devices = tokio::task::spawn_blocking(move || read_devices(&state))
            .await
            .map_err(|e| probe_error(PROBE, format!("the probe thread failed: {e}")))??;
        Ok(WorkerInventory {
            devices,
            ..Default::default()
        })
    }
}

/// Initialises NVML if needed and lists the devices (none without a driver).
fn read_devices(state: &Mutex<NvmlState>) -> Result<Vec<Device>> {
    // A panic while holding the lock cannot leave NVML itself inconsistent; keep going.
    let mut state = state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let NvmlState::Untried = *state {
        *state = match Nvml::init() {
            Ok(nvml) => NvmlState::Ready(Box::new(nvml)),
            Err(e) if means_no_driver(&e) => {
                tracing::debug!(error = %e, "NVML not available; no NVIDIA devices on this machine");
                NvmlState::Absent
            }
            Err(e) => return Err(failure("cannot initialise NVML", &e)),
        };
    }
    match &*state {
        NvmlState::Ready(nvml) => list_devices(nvml),
        NvmlState::Absent | NvmlState::Untried => Ok(Vec::new()),
    }
}

/// Errors that mean "no NVIDIA driver here", as opposed to a driver that fails.
fn means_no_driver(error: &NvmlError) -> bool {
    matches!(
        error,
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound | NvmlError::DriverNotLoaded
    )
}

fn failure(context: &str, error: &NvmlError) -> inferkit_core::Error {
    probe_error(PROBE, format!("{context}: {error}"))
}

/// Versions shared by every device of the machine.
struct SystemVersions {
    driver: Option<String>,
    cuda: Option<String>,
}

fn list_devices(nvml: &Nvml) -> Result<Vec<Device>> {
    let versions = SystemVersions {
        driver: optional(nvml.sys_driver_version()).map_err(|e| failure("driver version", &e))?,
        cuda: optional(nvml.sys_cuda_driver_version())
            .map_err(|e| failure("CUDA version", &e))?
            .map(cuda_version),
    };
    let count = nvml
        .device_count()
        .map_err(|e| failure("device count", &e))?;
    let mut devices = Vec::new();
    for physical in 0..count {
        match read_gpu(nvml, physical, &versions) {
            Ok(entries) => devices.extend(entries),
            Err(error) => {
                tracing::warn!(gpu = physical, %error, "NVML query failed; GPU listed as unavailable");
                devices.push(unavailable_gpu(physical, &error, &versions));
            }
        }
    }
    renumber(&mut devices)?;
    Ok(devices)
}

/// The inventory entries of GPU `physical`: the GPU itself, or its MIG instances.
fn read_gpu(
    nvml: &Nvml,
    physical: u32,
    versions: &SystemVersions,
) -> Result<Vec<Device>, NvmlError> {
    let handle = nvml.device_by_index(physical)?;
    let gpu = describe(&handle, physical, versions)?;
    Ok(match mig_instances(nvml, &handle, &gpu, physical)? {
        Some(instances) => instances,
        None => vec![gpu.device],
    })
}

/// The entry of a GPU whose queries failed: no memory, unavailable, with NVML's error.
fn unavailable_gpu(physical: u32, error: &NvmlError, versions: &SystemVersions) -> Device {
    Device {
        index: physical,
        vendor: Vendor::Nvidia,
        name: String::new(),
        memory: Memory::default(),
        compute_capability: None,
        uuid: None,
        pci_bus_id: None,
        driver_version: versions.driver.clone(),
        runtime_version: versions.cuda.clone(),
        physical_index: Some(physical),
        partition: None,
        health: Some(Box::new(DeviceHealth {
            available: false,
            status: format!("{PROBE}: GPU {physical}: {error}"),
        })),
    }
}

/// The inventory's memory from `nvmlDeviceGetMemoryInfo_v2` (which nvml-wrapper calls): its
/// `used` leaves out the memory the driver reserves, which it reports apart (`reserved`); a
/// driver that does not fill `reserved` leaves it 0, read as "not reported".
fn device_memory(info: &MemoryInfo) -> Memory {
    Memory {
        total: info.total,
        used: info.used,
        reserved: Some(info.reserved).filter(|reserved| *reserved > 0),
    }
}

/// A physical GPU: its inventory entry and whether MIG is on.
struct Described {
    device: Device,
    mig_enabled: bool,
}

fn describe(
    gpu: &NvmlDevice<'_>,
    physical: u32,
    versions: &SystemVersions,
) -> Result<Described, NvmlError> {
    let memory = gpu.memory_info()?;
    let mig_enabled = optional(gpu.mig_mode())?.is_some_and(|m| m.current == MIG_ENABLED);
    let device = Device {
        index: physical,
        vendor: Vendor::Nvidia,
        name: gpu.name()?,
        memory: device_memory(&memory),
        compute_capability: optional(gpu.cuda_compute_capability())?
            .map(|cc| format!("{}.{}", cc.major, cc.minor)),
        uuid: optional(gpu.uuid())?,
        pci_bus_id: optional(gpu.pci_info())?.map(|pci| pci.bus_id),
        driver_version: versions.driver.clone(),
        runtime_version: versions.cuda.clone(),
        physical_index: Some(physical),
        partition: None,
        health: None,
    };
    Ok(Described {
        device,
        mig_enabled,
    })
}

/// The MIG instances of a GPU in MIG mode (`None` when MIG is off). They inherit the parent's
/// compute capability, bus id and versions; memory, name and UUID are their own.
fn mig_instances(
    nvml: &Nvml,
    parent: &NvmlDevice<'_>,
    gpu: &Described,
    physical: u32,
) -> Result<Option<Vec<Device>>, NvmlError> {
    if !gpu.mig_enabled {
        return Ok(None);
    }
    let slots = parent.mig_device_count()?;
    let mut instances = Vec::new();
    for slot in 0..slots {
        // Slots without an instance answer NotFound.
        let Some(mig) = optional(parent.mig_device_by_index(slot))? else {
            continue;
        };
        let memory = mig.memory_info()?;
        let name = mig.name()?;
        let (gpu_instance_id, compute_instance_id) = instance_ids(nvml, &mig);
        instances.push(Device {
            name: name.clone(),
            memory: device_memory(&memory),
            uuid: optional(mig.uuid())?,
            partition: Some(Box::new(Partition {
                profile: mig_profile(&name).to_string(),
                parent_index: physical,
                gpu_instance_id,
                compute_instance_id,
            })),
            ..gpu.device.clone()
        });
    }
    Ok(Some(instances))
}

/// GPU and compute instance ids of a MIG device. nvml-wrapper has no safe call for these, so
/// the two NVML functions are called through its loaded function table.
fn instance_ids(nvml: &Nvml, mig: &NvmlDevice<'_>) -> (Option<u32>, Option<u32>) {
    let lib = nvml.lib();
    // SAFETY: `mig` is a live handle from `mig_device_by_index` on this initialised `nvml`; each
    // function writes one `unsigned int` through the pointer it is given, which points at a
    // local, and NVML returns an error code instead when the handle is not a MIG device.
    unsafe {
        let handle = mig.handle();
        let read = |function: Option<&unsafe extern "C" fn(_, *mut u32) -> _>| {
            let function = function?;
            let mut id = 0u32;
            nvml_wrapper::error::nvml_try(function(handle, &mut id))
                .ok()
                .map(|()| id)
        };
        (
            read(lib.nvmlDeviceGetGpuInstanceId.as_ref().ok()),
            read(lib.nvmlDeviceGetComputeInstanceId.as_ref().ok()),
        )
    }
}

/// Gives the devices consecutive indices in listing order; MIG instances take the place of
/// their parent, so later GPUs move up.
fn renumber(devices: &mut [Device]) -> Result<()> {
    for (index, device) in devices.iter_mut().enumerate() {
        device.index =
            u32::try_from(index).map_err(|_| probe_error(PROBE, "more than 2^32 devices"))?;
        if device.partition.is_none() && device.physical_index == Some(device.index) {
            device.physical_index = None;
        }
    }
    Ok(())
}

/// `NotSupported` and `NotFound` mean the value does not exist for this device.
fn optional<T>(result: Result<T, NvmlError>) -> Result<Option<T>, NvmlError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(NvmlError::NotSupported | NvmlError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// NVML encodes the CUDA driver version as `1000 * major + 10 * minor` (12040 is 12.4).
fn cuda_version(encoded: i32) -> String {
    format!(
        "{}.{}",
        nvml_wrapper::cuda_driver_version_major(encoded),
        nvml_wrapper::cuda_driver_version_minor(encoded)
    )
}

/// The profile of a MIG device from its NVML name (`NVIDIA A100-SXM4-40GB MIG 1g.5gb` is
/// `1g.5gb`); the whole name when it has no ` MIG ` part.
fn mig_profile(name: &str) -> &str {
    name.rsplit_once(" MIG ")
        .map_or(name, |(_, profile)| profile.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_driver_errors_mean_no_devices_and_others_are_failures() {
        assert!(means_no_driver(&NvmlError::DriverNotLoaded));
        assert!(means_no_driver(&NvmlError::LibraryNotFound));
        assert!(!means_no_driver(&NvmlError::NoPermission));
        assert!(!means_no_driver(&NvmlError::Unknown));
        assert!(!means_no_driver(&NvmlError::GpuLost));
    }

    #[test]
    fn cuda_version_decodes_nvml_integer() {
        assert_eq!(cuda_version(12040), "12.4");
        assert_eq!(cuda_version(12080), "12.8");
        assert_eq!(cuda_version(11020), "11.2");
    }

    #[test]
    fn mig_profile_is_taken_from_the_device_name() {
        assert_eq!(mig_profile("NVIDIA A100-SXM4-40GB MIG 1g.5gb"), "1g.5gb");
        assert_eq!(mig_profile("NVIDIA H100 80GB HBM3 MIG 3g.40gb"), "3g.40gb");
        assert_eq!(
            mig_profile("NVIDIA H100 80GB HBM3"),
            "NVIDIA H100 80GB HBM3"
        );
    }

    #[test]
    fn not_supported_is_absent_but_other_errors_propagate() {
        assert_eq!(
            optional::<u32>(Err(NvmlError::NotSupported)).ok(),
            Some(None)
        );
        assert_eq!(optional::<u32>(Err(NvmlError::NotFound)).ok(), Some(None));
        assert!(optional::<u32>(Err(NvmlError::GpuLost)).is_err());
        assert_eq!(optional(Ok(3u32)).ok(), Some(Some(3)));
    }

    fn gpu(physical: u32, partition: Option<Partition>) -> Device {
        Device {
            index: physical,
            vendor: Vendor::Nvidia,
            name: String::new(),
            memory: Memory::default(),
            compute_capability: None,
            uuid: None,
            pci_bus_id: None,
            driver_version: None,
            runtime_version: None,
            physical_index: Some(physical),
            partition: partition.map(Box::new),
            health: None,
        }
    }

    #[test]
    fn the_driver_reserve_is_reported_apart_from_used_memory() {
        // An H100 80GB HBM3 with nothing running: nvidia-smi's "Reserved 514MiB" line.
        let mut info = MemoryInfo {
            free: 84_500_000_000,
            reserved: 514 << 20,
            total: 85_520_809_984,
            used: 481_853_440,
            version: 2,
        };
        let memory = device_memory(&info);
        assert_eq!((memory.total, memory.used), (info.total, info.used));
        assert_eq!(memory.reserved, Some(514 << 20));
        info.reserved = 0;
        assert_eq!(device_memory(&info).reserved, None);
    }

    #[test]
    fn a_lost_gpu_is_listed_unavailable_with_the_nvml_error() {
        let versions = SystemVersions {
            driver: Some("550.54.15".into()),
            cuda: Some("12.4".into()),
        };
        let lost = unavailable_gpu(2, &NvmlError::GpuLost, &versions);
        let reason = lost
            .unavailable_reason()
            .expect("a lost GPU is unavailable");
        assert!(reason.starts_with("nvml: GPU 2: "), "{reason}");
        assert!(reason.contains(&NvmlError::GpuLost.to_string()), "{reason}");
        assert_eq!(lost.memory, Memory::default());
        assert_eq!(lost.driver_version.as_deref(), Some("550.54.15"));
        assert_eq!((lost.index, lost.vendor), (2, Vendor::Nvidia));
    }

    #[test]
    fn mig_instances_shift_the_indices_of_later_gpus() {
        let mig = |parent| Partition {
            profile: "3g.40gb".into(),
            parent_index: parent,
            gpu_instance_id: Some(1),
            compute_instance_id: Some(0),
        };
        // GPU 0 plain, GPU 1 split in two MIG instances, GPU 2 plain.
        let mut devices = vec![
            gpu(0, None),
            gpu(1, Some(mig(1))),
            gpu(1, Some(mig(1))),
            gpu(2, None),
        ];
        renumber(&mut devices).unwrap();
        let indices: Vec<(u32, Option<u32>)> = devices
            .iter()
            .map(|d| (d.index, d.physical_index))
            .collect();
        assert_eq!(
            indices,
            [(0, None), (1, Some(1)), (2, Some(1)), (3, Some(2))]
        );
    }
}
