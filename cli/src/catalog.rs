//! A small catalog of common accelerators for what-if clusters (`--gpu 'H100 80GB'`): the
//! product name and memory their probes report, so a plan on a described machine matches a
//! plan on the real one.

use inferkit::Vendor;

/// One accelerator model.
#[derive(Debug, Clone, Copy)]
pub struct Accelerator {
    /// Names a user may type, compared after [`normalize`].
    pub aliases: &'static [&'static str],
    /// Product name as the vendor's probe reports it.
    pub name: &'static str,
    /// Vendor, as the cluster JSON spells it.
    pub vendor: &'static str,
    /// Device memory in MiB as the probe reports it (NVML's and rocm-smi's totals are below
    /// the marketing size: ECC and firmware reservations).
    pub memory_mib: u64,
    /// CUDA compute capability or the vendor's equivalent.
    pub compute_capability: Option<&'static str>,
    /// CPU architecture of the usual host (Ascend servers are Kunpeng, arm64).
    pub arch: &'static str,
}

impl Accelerator {
    /// Device memory in bytes.
    pub fn memory(&self) -> u64 {
        self.memory_mib << 20
    }

    /// The vendor.
    pub fn vendor(&self) -> Vendor {
        Vendor::from_name(self.vendor)
    }
}

const fn nvidia(
    aliases: &'static [&'static str],
    name: &'static str,
    memory_mib: u64,
    compute_capability: &'static str,
) -> Accelerator {
    Accelerator {
        aliases,
        name,
        vendor: "nvidia",
        memory_mib,
        compute_capability: Some(compute_capability),
        arch: "amd64",
    }
}

/// The catalog. Memory figures are the totals `nvidia-smi` / NVML, `rocm-smi` and `npu-smi`
/// print on these products (the H100, RTX 4090, RTX 3090 and 910B3 figures are those of the
/// captures in `examples/clusters/`).
pub const CATALOG: &[Accelerator] = &[
    nvidia(
        &["h100", "h100 80gb", "h100 sxm"],
        "NVIDIA H100 80GB HBM3",
        81559,
        "9.0",
    ),
    nvidia(&["h200", "h200 141gb"], "NVIDIA H200", 143771, "9.0"),
    nvidia(
        &["a100", "a100 80gb"],
        "NVIDIA A100-SXM4-80GB",
        81920,
        "8.0",
    ),
    nvidia(&["a100 40gb"], "NVIDIA A100-SXM4-40GB", 40960, "8.0"),
    nvidia(&["l40s"], "NVIDIA L40S", 46068, "8.9"),
    nvidia(&["l4"], "NVIDIA L4", 23034, "8.9"),
    nvidia(&["a10"], "NVIDIA A10", 23028, "8.6"),
    nvidia(
        &["4090", "rtx 4090"],
        "NVIDIA GeForce RTX 4090",
        24564,
        "8.9",
    ),
    nvidia(
        &["3090", "rtx 3090"],
        "NVIDIA GeForce RTX 3090",
        24576,
        "8.6",
    ),
    nvidia(&["t4"], "Tesla T4", 15360, "7.5"),
    nvidia(&["v100", "v100 32gb"], "Tesla V100-SXM2-32GB", 32768, "7.0"),
    Accelerator {
        aliases: &["mi300x"],
        name: "AMD Instinct MI300X",
        vendor: "amd",
        memory_mib: 196288,
        compute_capability: Some("gfx942"),
        arch: "amd64",
    },
    Accelerator {
        aliases: &["910b", "910b3", "ascend 910b"],
        name: "Ascend910B3",
        vendor: "ascend",
        memory_mib: 65536,
        compute_capability: None,
        arch: "arm64",
    },
];

/// Lowercase letters and digits only, without vendor and brand words: `NVIDIA GeForce RTX
/// 4090` and `4090` compare equal, as do `H100 80GB` and `h100-80gb`.
pub fn normalize(name: &str) -> String {
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| {
            !w.is_empty()
                && ![
                    "nvidia", "geforce", "rtx", "tesla", "amd", "instinct", "huawei", "ascend",
                ]
                .contains(w)
        })
        .collect();
    words.concat()
}

/// The catalog entry named `name`, by alias or product name.
pub fn find(name: &str) -> Option<&'static Accelerator> {
    let wanted = normalize(name);
    CATALOG.iter().find(|accelerator| {
        normalize(accelerator.name) == wanted
            || accelerator.aliases.iter().any(|a| normalize(a) == wanted)
    })
}

/// The first alias of every entry, as products are written (`H100`, `A100 40GB`).
pub fn names() -> Vec<String> {
    CATALOG
        .iter()
        .filter_map(|a| a.aliases.first())
        .map(|alias| alias.to_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_spellings_find_their_entry() {
        assert_eq!(find("H100 80GB").unwrap().name, "NVIDIA H100 80GB HBM3");
        assert_eq!(find("h100-80gb").unwrap().name, "NVIDIA H100 80GB HBM3");
        assert_eq!(
            find("NVIDIA GeForce RTX 4090").unwrap().memory(),
            25_757_220_864
        );
        assert_eq!(find("A100 40GB").unwrap().memory(), 40 << 30);
        assert_eq!(find("Ascend910B3").unwrap().vendor, "ascend");
        assert!(find("H300").is_none());
    }

    #[test]
    fn every_entry_is_found_by_each_of_its_names() {
        for accelerator in CATALOG {
            for alias in accelerator.aliases.iter().chain([&accelerator.name]) {
                assert_eq!(find(alias).unwrap().name, accelerator.name, "{alias}");
            }
        }
    }
}
