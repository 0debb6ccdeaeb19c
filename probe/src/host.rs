//! The local machine's host resources through sysinfo: OS, arch, hostname, CPU and RAM.

use async_trait::async_trait;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, System};

use inferkit_core::Result;
use inferkit_core::inventory::{Memory, WorkerInventory};

use super::{DeviceProbe, cgroup, probe_error};

/// Name of the probe, used in errors.
const PROBE: &str = "host";

/// Reads the host half of a [`WorkerInventory`]: name (the hostname), OS and arch as GPUStack
/// labels them, CPU brand and logical cores, and RAM, capped by this process's cgroup memory
/// limit where one applies (see [`cgroup`]). It reports no devices.
///
/// Only RAM and the CPU list are refreshed, never the process table or disks.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct HostProbe;

impl HostProbe {
    /// A host probe.
    pub fn new() -> Self {
        HostProbe
    }
}

#[async_trait]
impl DeviceProbe for HostProbe {
    fn name(&self) -> &'static str {
        PROBE
    }

    async fn probe(&self) -> Result<WorkerInventory> {
        tokio::task::spawn_blocking(read_host)
            .await
            .map_err(|e| probe_error(PROBE, format!("the probe thread failed: {e}")))?
    }
}

/// The blocking part: sysinfo and the cgroup files read `/proc` and `/sys`.
fn read_host() -> Result<WorkerInventory> {
    let mut system = System::new().map_err(|e| probe_error(PROBE, format!("sysinfo: {e}")))?;
    system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
    system.refresh_cpu_list(CpuRefreshKind::nothing());
    let physical = Memory {
        total: system.total_memory(),
        used: system
            .total_memory()
            .saturating_sub(system.available_memory()),
        reserved: None,
    };
    let ram = cgroup::effective_ram(physical, cgroup::read_own_limit()?);
    let name = System::host_name()
        .map_err(|e| probe_error(PROBE, format!("cannot read the hostname: {e}")))?;
    let cpus = system.cpus();
    Ok(WorkerInventory {
        name,
        os: os_label(std::env::consts::OS).to_string(),
        arch: arch_label(&System::cpu_arch()).to_string(),
        cpu_cores: u32::try_from(cpus.len()).unwrap_or(u32::MAX),
        cpu_brand: cpus
            .first()
            .map(|cpu| cpu.brand().trim().to_string())
            .filter(|b| !b.is_empty()),
        ram,
        ..Default::default()
    })
}

/// The OS label value GPUStack uses (`linux`, `windows`, `darwin`) for a Rust OS name
/// (`std::env::consts::OS`); other systems keep Rust's name.
pub fn os_label(rust_os: &str) -> &str {
    match rust_os {
        "macos" => "darwin",
        other => other,
    }
}

/// The arch label value GPUStack uses (Go's names: `amd64`, `arm64`) for a machine name
/// (`uname -m`: `x86_64`, `aarch64`, `arm64`); other architectures keep the machine's name.
pub fn arch_label(machine: &str) -> &str {
    match machine {
        "x86_64" | "amd64" | "AMD64" | "x64" => "amd64",
        "aarch64" | "arm64" | "ARM64" => "arm64",
        other => other,
    }
}
