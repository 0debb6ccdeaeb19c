//! The host probe on this machine, checked against what the kernel reports directly.
#![cfg(feature = "host-probe")]

use inferkit_probe::DeviceProbe;
use inferkit_probe::host::{HostProbe, arch_label, os_label};

#[test]
fn labels_use_gpustack_values() {
    assert_eq!(os_label("linux"), "linux");
    assert_eq!(os_label("macos"), "darwin");
    assert_eq!(os_label("windows"), "windows");
    assert_eq!(arch_label("x86_64"), "amd64");
    assert_eq!(arch_label("aarch64"), "arm64");
    assert_eq!(arch_label("arm64"), "arm64");
    assert_eq!(arch_label("riscv64"), "riscv64");
}

#[tokio::test]
async fn host_probe_reports_this_machine() {
    let worker = HostProbe::new().probe().await.unwrap();
    assert!(!worker.name.is_empty());
    assert!(worker.devices.is_empty());
    assert!(worker.cpu_cores >= 1);
    assert!(worker.ram.total > 0);
    assert!(worker.ram.used <= worker.ram.total);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(worker.arch, "amd64");
    #[cfg(target_arch = "aarch64")]
    assert_eq!(worker.arch, "arm64");
    #[cfg(target_os = "linux")]
    linux_facts(&worker);
}

#[cfg(target_os = "linux")]
fn linux_facts(worker: &inferkit_core::WorkerInventory) {
    assert_eq!(worker.os, "linux");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(worker.name, hostname.trim());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(worker.cpu_cores as usize, processors);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let mem_total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    // Capped by a cgroup limit where one applies, never above the machine's RAM.
    assert!(worker.ram.total <= mem_total_kib * 1024);
    if inferkit_probe::cgroup::read_own_limit().unwrap().is_none() {
        assert_eq!(worker.ram.total, mem_total_kib * 1024);
    }
}

#[tokio::test]
async fn local_composite_merges_the_host_with_every_compiled_vendor_probe() {
    use inferkit_probe::CompositeProbe;

    let probe = CompositeProbe::local();
    let mut expected = Vec::new();
    if cfg!(feature = "nvml") {
        expected.push("nvml");
    }
    if cfg!(feature = "cli-probes") {
        expected.extend(["npu-smi", "rocm-smi"]);
    }
    assert_eq!(probe.vendor_names(), expected);
    let worker = probe.probe().await.unwrap();
    let host = HostProbe::new().probe().await.unwrap();
    assert_eq!((worker.name, worker.cpu_cores), (host.name, host.cpu_cores));
}
