//! What the MindIE memory model and launch need from the model files and the devices.

use inferkit_core::hf::{Dtype, HfModel, Weights};
use inferkit_core::{ChipFamily, DeviceSlot, Error, ModelFacts, Result, Vendor};
use serde::{Deserialize, Serialize};

use crate::params::{Params, RunDtype};

/// The Ascend chip generation of a device, from its product name (`Ascend910B3`,
/// `Ascend 310P3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chip {
    /// Atlas 300I inference cards: DDR memory, no bfloat16 (GPUStack forces `--dtype=float16`).
    Ascend310P,
    /// Atlas 800/900 training and inference servers (910, 910B, 910C).
    Ascend910,
}

impl Chip {
    /// The chip of an Ascend device slot; other vendors are refused.
    pub fn of(slot: &DeviceSlot) -> Result<Chip> {
        if slot.vendor != Vendor::Ascend {
            return Err(Error::unsupported(format!(
                "MindIE runs on Ascend NPUs only; {} is a {} device ({})",
                slot.id, slot.vendor, slot.name
            )));
        }
        Ok(match ChipFamily::of(&slot.vendor, &slot.name) {
            ChipFamily::Ascend310P => Chip::Ascend310P,
            _ => Chip::Ascend910,
        })
    }

    /// The one chip of a set of devices; a tensor-parallel group cannot mix chips.
    pub fn of_all(devices: &[DeviceSlot]) -> Result<Chip> {
        let Some(first) = devices.first() else {
            return Err(Error::unsupported(
                "MindIE needs at least one Ascend NPU; it has no CPU mode",
            ));
        };
        let chip = Chip::of(first)?;
        for slot in &devices[1..] {
            if Chip::of(slot)? != chip {
                return Err(Error::unsupported(format!(
                    "MindIE cannot mix Ascend 310P and 910 NPUs in one instance ({} and {})",
                    first.name, slot.name
                )));
            }
        }
        Ok(chip)
    }
}

/// Transformer dimensions MindIE's memory depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Decoder layers.
    pub layers: u64,
    /// Attention heads (tensor parallel must divide them).
    pub heads: u64,
    /// Key/value heads.
    pub kv_heads: u64,
    /// Per-head dimension.
    pub head_dim: u64,
    /// What one MLA layer caches per token (`kv_lora_rank + qk_rope_head_dim`), for
    /// DeepSeek-style latent attention.
    pub mla_latent: Option<u64>,
    /// The context length the model declares (`max_position_embeddings`).
    pub max_position_embeddings: Option<u64>,
    /// `torch_dtype` of the config.
    pub config_dtype: Option<RunDtype>,
    /// The KV cache is int8 (`quantization_config.kv_quant_type == "c8"`, MindIE's KV
    /// quantization; GPUStack's selector uses 1 byte then).
    pub kv_int8: bool,
}

impl Shape {
    /// Reads the dimensions of `model`, or says which key is missing or implausible (the
    /// shared check of [`HfConfig::dimensions`](inferkit_core::hf::HfConfig::dimensions)).
    pub fn of(model: &HfModel) -> Result<Shape> {
        let text = &model.config.text;
        let dims = model.config.dimensions(&model.dir.join("config.json"))?;
        let kv_quant = model
            .config
            .quantization
            .as_ref()
            .and_then(|q| q.raw.get("kv_quant_type"))
            .and_then(|v| v.as_str())
            .is_some_and(|t| t.eq_ignore_ascii_case("c8"));
        Ok(Shape {
            layers: dims.layers,
            heads: dims.heads,
            kv_heads: dims.kv_heads,
            head_dim: dims.head_dim,
            mla_latent: text
                .mla
                .as_ref()
                .map(|m| m.kv_lora_rank.saturating_add(m.qk_rope_head_dim)),
            max_position_embeddings: text.max_position_embeddings,
            config_dtype: model
                .config
                .torch_dtype
                .as_deref()
                .and_then(RunDtype::from_name),
            kv_int8: kv_quant,
        })
    }

    /// KV-cache bytes per token on one of `world` tensor-parallel devices. GQA heads are split
    /// over the devices and replicated when there are more devices than KV heads; an MLA
    /// latent is replicated on every device.
    pub fn kv_bytes_per_token(&self, dtype: RunDtype, world: u64) -> u64 {
        let element = if self.kv_int8 { 1 } else { dtype.bytes() };
        // Saturating throughout: every factor comes from config.json.
        let per_layer = match self.mla_latent {
            Some(latent) => latent,
            None => self
                .kv_heads
                .div_ceil(world.max(1))
                .saturating_mul(self.head_dim)
                .saturating_mul(2),
        };
        self.layers
            .saturating_mul(per_layer)
            .saturating_mul(element)
    }
}

/// The dtype the model runs in: `--dtype`, else float16 on 310P (GPUStack prepends
/// `--dtype=float16` there), else the config's `torch_dtype`, else bfloat16 (GPUStack's
/// selector default). bfloat16 on a 310P is refused: the chip has no bfloat16 units.
pub fn run_dtype(params: &Params, shape: &Shape, chip: Chip) -> Result<RunDtype> {
    let dtype = match (params.dtype, chip) {
        (Some(d), _) => d,
        (None, Chip::Ascend310P) => RunDtype::Float16,
        (None, Chip::Ascend910) => shape.config_dtype.unwrap_or(RunDtype::Bfloat16),
    };
    if chip == Chip::Ascend310P && dtype == RunDtype::Bfloat16 {
        return Err(Error::invalid_parameter(
            "--dtype",
            "Ascend 310P NPUs have no bfloat16; use float16",
        ));
    }
    Ok(dtype)
}

/// Bytes of weights once loaded in `dtype`: safetensors headers (floating-point tensors
/// converted to `dtype`, quantized ones as stored), else the config's parameter estimate.
pub fn weight_bytes(model: &HfModel, dtype: RunDtype) -> Result<u64> {
    match &model.weights {
        Weights::Safetensors(w) => Ok(w
            .summary
            .bytes_by_dtype
            .iter()
            .map(|(stored, bytes)| converted(*stored, *bytes, dtype))
            .fold(0u64, u64::saturating_add)),
        Weights::Pickle { .. } | Weights::Absent => model
            .config
            .estimated_parameters()
            .map(|p| p.saturating_mul(dtype.bytes()))
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "{}: no safetensors weights and the config does not give the sizes to \
                     estimate them",
                    model.dir.display()
                ))
            }),
    }
}

/// Floating-point weights are cast to the run dtype at load; other types stay as stored.
fn converted(stored: Dtype, bytes: u64, dtype: RunDtype) -> u64 {
    let stored_bytes = match stored {
        Dtype::F16 | Dtype::Bf16 => 2,
        Dtype::F32 => 4,
        _ => return bytes,
    };
    // Saturating: a hostile header can declare tensors near `u64::MAX` bytes.
    (bytes / stored_bytes).saturating_mul(dtype.bytes())
}

/// The Hugging Face part of the facts, or why MindIE cannot read the model.
pub fn hf(facts: &ModelFacts) -> Result<&HfModel> {
    facts.hf.as_ref().ok_or_else(|| {
        Error::unsupported(format!(
            "MindIE loads Hugging Face safetensors directories; {} is a {:?} model",
            facts.source.display_name(),
            facts.format
        ))
    })
}
