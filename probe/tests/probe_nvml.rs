//! The NVML probe without an NVIDIA driver (every CI machine): no devices, no error.
#![cfg(feature = "nvml")]

use inferkit_probe::DeviceProbe;
use inferkit_probe::nvml::NvmlProbe;

/// The NVIDIA driver creates this device node; without it NVML cannot be initialised.
fn driver_present() -> bool {
    std::path::Path::new("/dev/nvidiactl").exists()
}

#[tokio::test]
async fn without_a_driver_nvml_probe_finds_no_devices_again_and_again() {
    if driver_present() {
        eprintln!("skipped: this machine has the NVIDIA driver");
        return;
    }
    let probe = NvmlProbe::new();
    for _ in 0..2 {
        let worker = probe.probe().await.unwrap();
        assert!(worker.devices.is_empty());
    }
}
