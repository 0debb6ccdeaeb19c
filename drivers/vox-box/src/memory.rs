//! Memory of a vox-box model: GPUStack 0.7.1's per-family table (behaviour spec §3.5), keyed on
//! the size of the family's weight file, and the estimator placement calls.

use std::collections::BTreeMap;

use inferkit_core::{
    Components, DeviceEstimate, Error, EstimateRequest, Layout, ResourceEstimate,
    ResourceEstimator, Result,
};
use serde::{Deserialize, Serialize};

use crate::platform::check_gpu;
use crate::select::{Family, Recognition};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Memory one model needs, on one NVIDIA GPU or on CPU alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// GPU memory when it runs on a GPU.
    pub cuda_vram: u64,
    /// Host RAM when it runs on a GPU.
    pub cuda_ram: u64,
    /// Host RAM when it runs on CPU alone.
    pub cpu_ram: u64,
    /// Bytes of the weight file the figures were chosen by, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_bytes: Option<u64>,
    /// How the figures were chosen.
    pub basis: String,
}

/// One row of a size-keyed table: files up to `max_file` bytes need these amounts.
struct Tier {
    max_file: u64,
    cuda_vram: u64,
    cpu_ram: u64,
}

/// Multiplies `bytes` by `num / den`, rounding up (sizes stay integral and never shrink to 0),
/// saturating at `u64::MAX`: `num` can be a measured file size, and a truncated product would
/// wrap to a claim smaller than the model. `den` is a non-zero constant of the tables.
const fn scale(bytes: u64, num: u64, den: u64) -> u64 {
    let scaled = (bytes as u128 * num as u128).div_ceil(den as u128);
    if scaled > u64::MAX as u128 {
        u64::MAX
    } else {
        scaled as u64
    }
}

/// FasterWhisper by `model.bin` size; GPUStack's comments name tiny, base, small, medium,
/// turbo and large for the rows, and give CPU RAM as 1.5 × the GPU figure. The 1.6 and 3.1 GiB
/// bounds are Python floats (`1.6 * Gib`); an integer size is within them up to the floor.
const WHISPER_TIERS: &[Tier] = &[
    Tier {
        max_file: 100 * MIB,
        cuda_vram: GIB,
        cpu_ram: scale(GIB, 3, 2),
    },
    Tier {
        max_file: 200 * MIB,
        cuda_vram: GIB,
        cpu_ram: scale(GIB, 3, 2),
    },
    Tier {
        max_file: 500 * MIB,
        cuda_vram: 2 * GIB,
        cpu_ram: 3 * GIB,
    },
    Tier {
        max_file: scale(GIB, 3, 2),
        cuda_vram: 5 * GIB,
        cpu_ram: scale(GIB, 15, 2),
    },
    Tier {
        max_file: GIB * 16 / 10,
        cuda_vram: 6 * GIB,
        cpu_ram: 9 * GIB,
    },
    Tier {
        max_file: GIB * 31 / 10,
        cuda_vram: 10 * GIB,
        cpu_ram: 15 * GIB,
    },
];

/// Bark by `pytorch_model.bin` size (bark-small, bark).
const BARK_TIERS: &[Tier] = &[
    Tier {
        max_file: 2 * GIB,
        cuda_vram: 2 * GIB,
        cpu_ram: 3 * GIB,
    },
    Tier {
        max_file: 5 * GIB,
        cuda_vram: 12 * GIB,
        cpu_ram: 18 * GIB,
    },
];

const _: () = assert!(!WHISPER_TIERS.is_empty() && !BARK_TIERS.is_empty());

/// Runtime floor on a GPU for a FunASR model beyond its weights. GPUStack claims nothing for
/// FunASR; its own table gives the smallest Whisper (75 MB of weights) 1 GiB of VRAM, which
/// is the floor used here.
const FUNASR_RUNTIME: u64 = GIB;

/// The memory a recognised model needs.
pub fn requirement(recognition: &Recognition) -> Result<Requirement> {
    let weights = recognition.weight_bytes;
    match recognition.family {
        Family::FasterWhisper => Ok(from_tiers(WHISPER_TIERS, weights, "model.bin")),
        Family::Bark => Ok(from_tiers(BARK_TIERS, weights, "pytorch_model.bin")),
        Family::CosyVoice => Ok(fixed(3 * GIB, 7 * GIB, 6 * GIB, "CosyVoice")),
        Family::Dia => Ok(fixed(10 * GIB, GIB, 10 * GIB, "Dia")),
        Family::FunAsr => funasr(weights),
    }
}

fn fixed(cuda_vram: u64, cuda_ram: u64, cpu_ram: u64, family: &str) -> Requirement {
    Requirement {
        cuda_vram,
        cuda_ram,
        cpu_ram,
        weight_bytes: None,
        basis: format!("GPUStack 0.7.1's fixed figures for {family}"),
    }
}

/// The first tier whose bound holds; above the last, the last tier scaled by the size; with
/// the size unknown, the last tier (the largest model of the family).
fn from_tiers(tiers: &[Tier], weights: Option<u64>, file: &str) -> Requirement {
    // Both tables are non-empty constants (asserted at compile time below them).
    let last = &tiers[tiers.len() - 1];
    let size = weights.unwrap_or(last.max_file);
    let (cuda_vram, cpu_ram, basis) = match tiers.iter().find(|t| size <= t.max_file) {
        Some(tier) => (
            tier.cuda_vram,
            tier.cpu_ram,
            match weights {
                Some(_) => format!(
                    "GPUStack 0.7.1's tier for a {file} of up to {} bytes",
                    tier.max_file
                ),
                None => format!("{file} size unknown: the largest tier of GPUStack 0.7.1's table"),
            },
        ),
        None => (
            scale(last.cuda_vram, size, last.max_file),
            scale(last.cpu_ram, size, last.max_file),
            format!(
                "{file} of {size} bytes is above GPUStack 0.7.1's last tier ({} bytes): that \
                 tier scaled by size",
                last.max_file
            ),
        ),
    };
    Requirement {
        cuda_vram,
        cuda_ram: 0,
        cpu_ram,
        weight_bytes: weights,
        basis,
    }
}

fn funasr(weights: Option<u64>) -> Result<Requirement> {
    let weights = weights.ok_or_else(|| {
        Error::Unsupported(
            "a FunASR model is sized by its weight files, and none were measured (GPUStack \
             claims no memory for FunASR)"
                .into(),
        )
    })?;
    let cuda_vram = weights.saturating_add(FUNASR_RUNTIME);
    Ok(Requirement {
        cuda_vram,
        cuda_ram: 0,
        cpu_ram: scale(cuda_vram, 3, 2),
        weight_bytes: Some(weights),
        basis: "FunASR: weight files plus a 1 GiB runtime floor on GPU, 1.5 times that on CPU \
                (GPUStack's CPU rule for its other tables)"
            .into(),
    })
}

/// Splits a table figure into the weight file and the rest of the process.
fn components(total: u64, weights: Option<u64>) -> Components {
    let weights = weights.unwrap_or(0).min(total);
    Components {
        weights,
        overhead: total - weights,
        ..Components::default()
    }
}

/// The estimator of one recognised model.
#[derive(Debug, Clone)]
pub struct VoxBoxEstimator {
    recognition: Recognition,
    requirement: Requirement,
}

impl VoxBoxEstimator {
    /// Binds the estimator to a recognised model.
    pub fn new(recognition: Recognition) -> Result<Self> {
        let requirement = requirement(&recognition)?;
        Ok(VoxBoxEstimator {
            recognition,
            requirement,
        })
    }

    /// The figures every estimate is built from.
    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }

    fn details(&self) -> BTreeMap<String, serde_json::Value> {
        let r = &self.recognition;
        let mut details = BTreeMap::from([
            ("family".to_string(), r.family.as_str().into()),
            ("basis".to_string(), self.requirement.basis.clone().into()),
        ]);
        if let Some(model) = &r.model {
            details.insert("model".into(), model.clone().into());
        }
        if let Some(bytes) = r.weight_bytes {
            details.insert("weight_bytes".into(), bytes.into());
        }
        details
    }

    fn cpu_estimate(&self) -> ResourceEstimate {
        let req = &self.requirement;
        ResourceEstimate {
            layout: Layout::CpuOnly,
            devices: Vec::new(),
            host: components(req.cpu_ram, req.weight_bytes),
            launch_parameters: Vec::new(),
            details: self.details(),
            notes: Vec::new(),
        }
    }

    fn gpu_estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        let [slot] = request.devices.as_slice() else {
            return Err(Error::Unsupported(format!(
                "a single-device layout needs exactly one device, got {}",
                request.devices.len()
            )));
        };
        let notes = check_gpu(slot)?;
        let req = &self.requirement;
        let device = components(req.cuda_vram, req.weight_bytes);
        Ok(ResourceEstimate {
            layout: Layout::Single,
            devices: vec![DeviceEstimate {
                device: slot.id.clone(),
                name: format!("cuda:{}", slot.id.index),
                claim: device.total(),
                components: device,
                layers: 0,
            }],
            host: Components {
                overhead: req.cuda_ram,
                ..Components::default()
            },
            launch_parameters: Vec::new(),
            details: self.details(),
            notes,
        })
    }
}

/// Why vox-box refuses every split layout.
fn refuse_split(devices: usize) -> Error {
    Error::Unsupported(format!(
        "vox-box runs a model on one NVIDIA GPU or on CPU, never split: {devices} devices \
         requested (Audio models are restricted to execution on a single NVIDIA GPU.)"
    ))
}

// `fit` is the trait's default: the natural layout of two or more devices is a split, which
// `estimate` refuses.
impl ResourceEstimator for VoxBoxEstimator {
    fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        match &request.layout {
            Layout::CpuOnly if request.devices.is_empty() => Ok(self.cpu_estimate()),
            Layout::CpuOnly => Err(Error::Unsupported(
                "a CPU-only layout takes no devices".into(),
            )),
            Layout::Single => self.gpu_estimate(request),
            Layout::Layers { .. } | Layout::Parallel { .. } => {
                Err(refuse_split(request.devices.len()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::Task;

    fn whisper(weight_bytes: Option<u64>) -> Recognition {
        Recognition {
            family: Family::FasterWhisper,
            task: Task::SpeechToText,
            model: None,
            variant: None,
            weight_bytes,
            evidence: String::new(),
        }
    }

    #[test]
    fn tier_bounds_follow_python_float_comparisons() {
        // 1.6 GiB = 1717986918.4 bytes: 1717986918 is inside the turbo tier, one more is not.
        assert_eq!(
            requirement(&whisper(Some(1_717_986_918)))
                .unwrap()
                .cuda_vram,
            6 * GIB
        );
        assert_eq!(
            requirement(&whisper(Some(1_717_986_919)))
                .unwrap()
                .cuda_vram,
            10 * GIB
        );
        assert_eq!(
            requirement(&whisper(Some(100 * MIB))).unwrap().cpu_ram,
            1_610_612_736
        );
    }

    #[test]
    fn sizes_above_the_last_tier_scale_and_are_never_zero() {
        let last = GIB * 31 / 10;
        let double = requirement(&whisper(Some(last * 2))).unwrap();
        assert_eq!(double.cuda_vram, 20 * GIB);
        assert_eq!(double.cpu_ram, 30 * GIB);
        let one_more = requirement(&whisper(Some(last + 1))).unwrap();
        assert!(one_more.cuda_vram > 10 * GIB, "{one_more:?}");
        // Past what `u64` holds the product saturates; truncating it used to wrap the claim
        // to a fraction of the model.
        let huge = requirement(&whisper(Some(u64::MAX / 2))).unwrap();
        assert_eq!((huge.cuda_vram, huge.cpu_ram), (u64::MAX, u64::MAX));
        let mut funasr = whisper(Some(u64::MAX - 1));
        funasr.family = Family::FunAsr;
        assert_eq!(requirement(&funasr).unwrap().cpu_ram, u64::MAX);
    }

    #[test]
    fn unknown_size_takes_the_largest_tier() {
        let r = requirement(&whisper(None)).unwrap();
        assert_eq!((r.cuda_vram, r.cpu_ram), (10 * GIB, 15 * GIB));
        assert!(r.basis.contains("unknown"), "{}", r.basis);
    }

    #[test]
    fn funasr_needs_measured_weights() {
        let mut r = whisper(None);
        r.family = Family::FunAsr;
        assert!(matches!(requirement(&r), Err(Error::Unsupported(_))));
        r.weight_bytes = Some(GIB);
        let req = requirement(&r).unwrap();
        assert_eq!((req.cuda_vram, req.cpu_ram), (2 * GIB, 3 * GIB));
    }
}
