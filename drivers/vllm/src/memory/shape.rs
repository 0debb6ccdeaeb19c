//! The dimensions of a model that vLLM's memory use depends on, read from `config.json`
//! (the text sub-config of a multimodal model; the vision tower separately).

use std::path::Path;

use inferkit_core::hf::{
    HfConfig, LayerAttention as HfAttention, MAX_CONTEXT, MoeConfig, TextConfig, VisionConfig,
};
use inferkit_core::{Error, Result};

/// Attention of one decoder layer, as vLLM v1 allocates its KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerAttention {
    /// Attends to the whole context.
    Full,
    /// Attends to the last `window` tokens only.
    Sliding(u64),
}

/// Multi-head latent attention dimensions (DeepSeek V2/V3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mla {
    pub kv_lora_rank: u64,
    pub q_lora_rank: Option<u64>,
    pub qk_rope_head_dim: u64,
    pub qk_nope_head_dim: u64,
    pub v_head_dim: u64,
}

/// Mixture-of-experts dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moe {
    pub experts: u64,
    pub experts_per_token: u64,
    pub expert_intermediate: u64,
    pub shared_intermediate: u64,
    /// Leading layers with a dense MLP instead of experts (DeepSeek `first_k_dense_replace`).
    pub dense_layers: u64,
}

/// The vision tower of a multimodal model, checked separately for tensor parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vision {
    pub heads: u64,
    pub hidden_size: u64,
    pub layers: u64,
    pub intermediate_size: u64,
}

/// Weight quantization as stored (`quantization_config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quantization {
    pub method: String,
    /// Bits per weight of quantized linear layers.
    pub bits: u64,
}

/// Everything the vLLM memory model reads from a model's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextShape {
    pub architectures: Vec<String>,
    pub hidden_size: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub intermediate_size: u64,
    pub vocab_size: u64,
    pub tie_embeddings: bool,
    /// One entry per decoder layer.
    pub layers: Vec<LayerAttention>,
    pub mla: Option<Mla>,
    pub moe: Option<Moe>,
    pub vision: Option<Vision>,
    pub quantization: Option<Quantization>,
    /// The context length vLLM derives from the config (`max_model_len` when none is given).
    pub max_position: u64,
}

/// Largest width, head count or vocabulary accepted (a million: Gemma 3's vocabulary is
/// 262,208, the widest models ~50,000); products of three stay below 2^61.
const MAX_DIM: u64 = 1 << 20;
/// Most experts accepted.
const MAX_EXPERTS: u64 = 1 << 14;
/// Most layers accepted.
const MAX_LAYERS: u64 = 1 << 12;

impl TextShape {
    /// The shape of a typed `config.json`; `file` names it in errors (a needed size missing
    /// or implausible, see [`HfConfig::dimensions`]).
    pub(crate) fn from_config(config: &HfConfig, file: &Path) -> Result<Self> {
        let text = &config.text;
        let dims = config.dimensions(file)?;
        let mla = text.mla.as_ref().map(|m| Mla {
            kv_lora_rank: m.kv_lora_rank,
            q_lora_rank: m.q_lora_rank,
            qk_rope_head_dim: m.qk_rope_head_dim,
            qk_nope_head_dim: m.qk_nope_head_dim,
            v_head_dim: m.v_head_dim,
        });
        TextShape {
            architectures: config.architectures.clone(),
            hidden_size: dims.hidden_size,
            heads: dims.heads,
            kv_heads: dims.kv_heads,
            head_dim: dims.head_dim,
            intermediate_size: text
                .intermediate_size
                .unwrap_or(dims.hidden_size.saturating_mul(4)),
            vocab_size: dims.vocab_size,
            tie_embeddings: text.tie_word_embeddings.unwrap_or(false),
            layers: layers(text, dims.layers),
            mla,
            moe: text
                .moe
                .as_ref()
                .filter(|m| m.num_experts > 1)
                .map(|m| moe(m, text)),
            vision: config.vision.as_ref().and_then(vision),
            quantization: config.quantization.as_ref().map(|q| Quantization {
                method: String::from(q.method.clone()),
                bits: q.bits.unwrap_or(16).clamp(1, 32),
            }),
            max_position: derived_max_len(text),
        }
        .bounded(file)
    }

    /// Refuses dimensions no real model has, so that the memory arithmetic cannot overflow on
    /// a hostile config or header; `origin` names the file in the error.
    pub(crate) fn bounded(self, origin: &Path) -> Result<Self> {
        let moe = self.moe.map_or([0; 4], |m| {
            [
                m.experts,
                m.experts_per_token,
                m.expert_intermediate,
                m.shared_intermediate,
            ]
        });
        let mla = self.mla.map_or([0; 5], |m| {
            [
                m.kv_lora_rank,
                m.q_lora_rank.unwrap_or(0),
                m.qk_rope_head_dim,
                m.qk_nope_head_dim,
                m.v_head_dim,
            ]
        });
        let vision = self.vision.map_or([0; 4], |v| {
            [v.heads, v.hidden_size, v.layers, v.intermediate_size]
        });
        let dims = [
            self.hidden_size,
            self.heads,
            self.kv_heads,
            self.head_dim,
            self.intermediate_size,
            self.vocab_size,
        ];
        let too_big = dims
            .iter()
            .chain(&moe)
            .chain(&mla)
            .chain(&vision)
            .any(|d| *d > MAX_DIM)
            || moe[0] > MAX_EXPERTS
            || self.layer_count() > MAX_LAYERS
            || self.max_position > MAX_CONTEXT;
        if too_big {
            return Err(Error::parse(
                origin,
                0,
                format!(
                    "implausible model dimensions (a size above {MAX_DIM}, more than {MAX_EXPERTS} experts, {MAX_LAYERS} layers or a {MAX_CONTEXT}-token context)"
                ),
            ));
        }
        Ok(self)
    }

    /// Number of decoder layers.
    pub(crate) fn layer_count(&self) -> u64 {
        self.layers.len() as u64
    }

    /// vLLM runs the model with encoder-only attention and allocates it no KV cache.
    pub(crate) fn encoder_only(&self) -> bool {
        crate::architectures::is_encoder_only(&self.architectures)
    }
}

/// Per-layer attention; a layer the config calls sliding but without a window keeps the whole
/// context, and other kinds (linear attention) are counted as full, which over- rather than
/// under-estimates.
fn layers(text: &TextConfig, count: u64) -> Vec<LayerAttention> {
    let window = text.sliding_window;
    let mut layers: Vec<LayerAttention> = text
        .layer_attention
        .iter()
        .map(|a| match (a, window) {
            (HfAttention::Sliding, Some(w)) => LayerAttention::Sliding(w),
            _ => LayerAttention::Full,
        })
        .collect();
    layers.resize(count as usize, LayerAttention::Full);
    layers
}

fn moe(m: &MoeConfig, text: &TextConfig) -> Moe {
    let expert_intermediate = m
        .moe_intermediate_size
        .or(text.intermediate_size)
        .unwrap_or(0);
    let shared = m
        .n_shared_experts
        .unwrap_or(0)
        .saturating_mul(expert_intermediate);
    Moe {
        experts: m.num_experts,
        experts_per_token: m.num_experts_per_tok.unwrap_or(2),
        expert_intermediate,
        shared_intermediate: m.shared_expert_intermediate_size.unwrap_or(shared),
        dense_layers: m.first_k_dense_replace.unwrap_or(0),
    }
}

fn vision(v: &VisionConfig) -> Option<Vision> {
    let hidden_size = v.hidden_size.unwrap_or(0);
    Some(Vision {
        heads: v.num_attention_heads?,
        hidden_size,
        layers: v.num_hidden_layers.unwrap_or(0),
        intermediate_size: v.intermediate_size.unwrap_or(hidden_size.saturating_mul(4)),
    })
}

/// The context vLLM derives from the config when no `--max-model-len` is given
/// (`_get_and_verify_max_len`): the position limit, scaled by the rope factor except for the
/// `su`/`longrope`/`llama3` types (already in the limit) and `mrope`/`default`; yarn scales
/// its original length. 2048 when the config has no limit.
fn derived_max_len(text: &TextConfig) -> u64 {
    let length = text.max_position_embeddings.unwrap_or(2048);
    let Some(rope) = &text.rope_scaling else {
        return length;
    };
    let kind = rope.rope_type.as_deref().unwrap_or("");
    if matches!(
        kind,
        "su" | "longrope" | "llama3" | "mrope" | "default" | ""
    ) {
        return length;
    }
    let factor = rope.factor.unwrap_or(1.0).clamp(1.0, 1024.0);
    let base = match (kind, rope.original_max_position_embeddings) {
        ("yarn", Some(original)) => original,
        _ => length,
    };
    (base as f64 * factor) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(json: &str) -> Result<TextShape> {
        let config = HfConfig::parse(json, Path::new("config.json"))?;
        TextShape::from_config(&config, Path::new("config.json"))
    }

    #[test]
    fn gemma3_pattern_gives_one_full_layer_in_six() {
        let s = shape(r#"{"architectures": ["Gemma3ForConditionalGeneration"],
            "text_config": {"model_type": "gemma3_text", "hidden_size": 5376, "num_attention_heads": 32,
              "num_key_value_heads": 16, "head_dim": 128, "num_hidden_layers": 62,
              "intermediate_size": 21504, "vocab_size": 262208, "sliding_window": 1024,
              "sliding_window_pattern": 6, "max_position_embeddings": 131072},
            "vision_config": {"hidden_size": 1152, "num_attention_heads": 16, "num_hidden_layers": 27}}"#)
        .unwrap();
        let full = s
            .layers
            .iter()
            .filter(|l| **l == LayerAttention::Full)
            .count();
        assert_eq!((s.layer_count(), full), (62, 10));
        assert_eq!(s.vision.unwrap().heads, 16);
        assert_eq!(s.heads, 32);
    }

    #[test]
    fn yarn_scales_the_original_length() {
        let s = shape(r#"{"hidden_size": 64, "num_attention_heads": 8, "num_hidden_layers": 2, "vocab_size": 10,
            "max_position_embeddings": 32768,
            "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}"#)
        .unwrap();
        assert_eq!(s.max_position, 131072);
    }

    #[test]
    fn hostile_sizes_are_parse_errors() {
        let err = shape(r#"{"hidden_size": 18446744073709551615, "num_attention_heads": 8, "num_hidden_layers": 2, "vocab_size": 10}"#).unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{err}");
    }

    #[test]
    fn missing_sizes_are_parse_errors() {
        let err = shape(r#"{"num_attention_heads": 8, "num_hidden_layers": 2, "vocab_size": 10}"#)
            .unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{err}");
    }
}
