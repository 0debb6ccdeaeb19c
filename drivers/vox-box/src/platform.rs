//! Where vox-box runs: operating systems per family, and which GPUs it can use.

use inferkit_core::{Arch, Device, DeviceSlot, Error, Os, Platform, Result, Vendor};

use crate::family::Family;

/// Platforms of every family. vox-box itself installs on Linux, macOS and Windows
/// (GPUStack's inference-backends page).
const ALL: &[Platform] = &[
    Platform::new(Os::Linux, Arch::Amd64),
    Platform::new(Os::Linux, Arch::Arm64),
    Platform::new(Os::Darwin, Arch::Amd64),
    Platform::new(Os::Darwin, Arch::Arm64),
    Platform::new(Os::Windows, Arch::Amd64),
];

/// CosyVoice and Dia: "Linux (ARM not supported), macOS, Windows (not supported)" in the
/// supported-model table.
const LINUX_AMD64_AND_MACOS: &[Platform] = &[
    Platform::new(Os::Linux, Arch::Amd64),
    Platform::new(Os::Darwin, Arch::Amd64),
    Platform::new(Os::Darwin, Arch::Arm64),
];

/// Lowest CUDA compute capability CUDA 12 builds for: CUDA 12.0 removed Kepler (sm_35, sm_37),
/// leaving Maxwell (5.0) as the oldest architecture.
const MIN_COMPUTE_CAPABILITY: (u32, u32) = (5, 0);

/// Platforms every vox-box family runs on.
pub fn backend_platforms() -> Vec<Platform> {
    ALL.to_vec()
}

/// Platforms a model of `family` runs on.
pub fn supported_platforms(family: Family) -> Vec<Platform> {
    match family {
        Family::CosyVoice | Family::Dia => LINUX_AMD64_AND_MACOS.to_vec(),
        Family::FasterWhisper | Family::FunAsr | Family::Bark => ALL.to_vec(),
    }
}

/// `Ok` when a model of `family` runs on a worker of `platform`, else why not.
pub fn check_platform(family: Family, platform: &Platform) -> Result<()> {
    if supported_platforms(family).contains(platform) {
        return Ok(());
    }
    Err(Error::unsupported(format!(
        "{family} models run on Linux amd64 and macOS only, not on {platform}"
    )))
}

/// Checks that vox-box can use `slot`: a local NVIDIA GPU new enough for CUDA 12. Returns
/// notes on what could not be checked.
pub fn check_gpu(slot: &DeviceSlot) -> Result<Vec<String>> {
    if slot.vendor != Vendor::Nvidia {
        // GPUStack's message for a hand-picked GPU of another vendor.
        return Err(Error::unsupported(format!(
            "Audio models are supported only on NVIDIA GPUs and CPUs; {} is {}",
            slot.id, slot.vendor
        )));
    }
    if slot.remote {
        return Err(Error::unsupported(format!(
            "vox-box cannot use {}: it is on another worker",
            slot.id
        )));
    }
    let mut notes = vec![LIBRARIES_NOTE.to_string()];
    notes.extend(check_capability(
        &slot.id.to_string(),
        slot.compute_capability.as_deref(),
    )?);
    Ok(notes)
}

/// What no probe can tell.
const LIBRARIES_NOTE: &str =
    "vox-box needs cuBLAS and cuDNN 9 for CUDA 12 on the worker; libraries are not probed";

/// Checks an inventory device: the CUDA version its driver supports (vox-box's wheels are
/// built for CUDA 12, so 12.0 or newer) and its compute capability. Returns notes on what is
/// unknown.
pub fn check_device(device: &Device) -> Result<Vec<String>> {
    let name = format!("device {}", device.index);
    let mut notes: Vec<String> = check_capability(&name, device.compute_capability.as_deref())?
        .into_iter()
        .collect();
    match device
        .runtime_version
        .as_deref()
        .map(|v| (v, parse_capability(v)))
    {
        Some((_, Some((major, _)))) if major >= 12 => {}
        Some((version, Some(_))) => {
            return Err(Error::unsupported(format!(
                "{name} has CUDA {version}; vox-box needs CUDA 12 (cuBLAS and cuDNN 9 for CUDA 12)"
            )));
        }
        Some((_, None)) | None => {
            notes.push(format!(
                "CUDA version of {name} is unknown; vox-box needs CUDA 12"
            ));
        }
    }
    Ok(notes)
}

/// `Err` when `capability` is known and older than CUDA 12 builds for; a note when unknown.
fn check_capability(device: &str, capability: Option<&str>) -> Result<Option<String>> {
    let (major, minor) = MIN_COMPUTE_CAPABILITY;
    match capability.map(parse_capability) {
        Some(Some(found)) if found < MIN_COMPUTE_CAPABILITY => Err(Error::unsupported(format!(
            "{device} has compute capability {}.{}; CUDA 12 needs {major}.{minor} or newer",
            found.0, found.1
        ))),
        Some(Some(_)) => Ok(None),
        Some(None) | None => Ok(Some(format!(
            "compute capability of {device} is unknown; CUDA 12 needs {major}.{minor} or newer"
        ))),
    }
}

/// Parses `major.minor` (or a bare `major`).
fn parse_capability(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferkit_core::DeviceId;

    fn slot(vendor: Vendor, capability: Option<&str>) -> DeviceSlot {
        DeviceSlot {
            id: DeviceId {
                worker: "w1".into(),
                index: 1,
            },
            vendor,
            name: "GPU".into(),
            total: 24 << 30,
            allocatable: 23 << 30,
            remote: false,
            compute_capability: capability.map(str::to_string),
            reserved: None,
        }
    }

    fn platform(os: &str, arch: &str) -> Platform {
        Platform::from_labels(os, arch).unwrap()
    }

    #[test]
    fn cosyvoice_and_dia_refuse_linux_arm_and_windows() {
        for family in [Family::CosyVoice, Family::Dia] {
            assert!(check_platform(family, &platform("linux", "amd64")).is_ok());
            assert!(check_platform(family, &platform("darwin", "arm64")).is_ok());
            for (os, arch) in [("linux", "arm64"), ("windows", "amd64")] {
                let err = check_platform(family, &platform(os, arch)).unwrap_err();
                assert!(
                    err.to_string().contains(&format!("not on {os}/{arch}")),
                    "{err}"
                );
            }
        }
        assert!(check_platform(Family::FasterWhisper, &platform("windows", "amd64")).is_ok());
        assert!(check_platform(Family::Bark, &platform("linux", "arm64")).is_ok());
    }

    #[test]
    fn gpus_must_be_nvidia_and_new_enough_for_cuda_12() {
        assert!(check_gpu(&slot(Vendor::Amd, Some("gfx1100"))).is_err());
        let kepler = check_gpu(&slot(Vendor::Nvidia, Some("3.7"))).unwrap_err();
        assert!(
            kepler.to_string().contains("compute capability 3.7"),
            "{kepler}"
        );
        let ada = check_gpu(&slot(Vendor::Nvidia, Some("8.9"))).unwrap();
        assert_eq!(ada.len(), 1, "{ada:?}");
        let unknown = check_gpu(&slot(Vendor::Nvidia, None)).unwrap();
        assert!(unknown[1].contains("unknown"), "{unknown:?}");
    }

    #[test]
    fn inventory_devices_need_cuda_12_and_a_maxwell_or_newer_gpu() {
        let mut device = Device::new(0, Vendor::Nvidia, "NVIDIA GeForce RTX 4090", 24 << 30);
        device.compute_capability = Some("8.9".into());
        device.runtime_version = Some("12.4".into());
        assert_eq!(check_device(&device).unwrap(), Vec::<String>::new());
        device.runtime_version = Some("13.0".into());
        assert_eq!(check_device(&device).unwrap(), Vec::<String>::new());
        device.runtime_version = Some("11.8".into());
        let err = check_device(&device).unwrap_err();
        assert!(err.to_string().contains("device 0 has CUDA 11.8"), "{err}");
        device.runtime_version = None;
        device.compute_capability = None;
        assert_eq!(check_device(&device).unwrap().len(), 2);
        device.compute_capability = Some("3.5".into());
        assert!(check_device(&device).is_err());
    }
}
