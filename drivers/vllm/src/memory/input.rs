//! The estimator's view of a model ([`ModelInput`]): the shape and tensors of a Hugging Face
//! directory (with the user's `--hf-overrides` applied) or of a GGUF file.

use std::path::Path;

use serde_json::Value;

use inferkit_core::gguf::GgufModel;
use inferkit_core::hf::{Dtype, HfConfig, HfModel, TensorInfo};
use inferkit_core::{Error, Result};

use super::MODEL_DTYPE_BYTES;
use super::estimator::ModelInput;
use super::shape::{LayerAttention, Mla, Moe, TextShape};
use super::weights::TensorTable;
use crate::params::merge_json;

const CONFIG_FILE: &str = "config.json";

/// The flag whose JSON object patches the model's config.
pub(crate) const HF_OVERRIDES: &str = "--hf-overrides";

/// The estimator's view of a read Hugging Face directory: its shape and its tensors, with the
/// user's `--hf-overrides` (a JSON object) applied to the config as vLLM applies them.
pub(crate) fn hf_input(model: &HfModel, overrides: Option<&Value>) -> Result<ModelInput> {
    let file = model.dir.join(CONFIG_FILE);
    let shape = match overrides {
        None => TextShape::from_config(&model.config, &file)?,
        Some(patch) => {
            let config = overridden(model, patch)?;
            TextShape::from_config(&config, &file).map_err(overrides_error)?
        }
    };
    // vLLM's `auto` dtype downcasts float32 checkpoints to 16 bits when it loads them.
    let loaded = |t: &TensorInfo| match t.dtype {
        Dtype::F32 | Dtype::F64 => t.elements.saturating_mul(MODEL_DTYPE_BYTES),
        _ => t.bytes,
    };
    let tensors = model.safetensors().map(|w| {
        TensorTable::new(
            &shape,
            w.tensors()
                .map(|t| (t.name.as_str(), t.shape.as_slice(), loaded(t))),
        )
    });
    Ok(ModelInput { shape, tensors })
}

/// The model's config with `--hf-overrides` merged in: a nested object (a sub-config such as
/// `text_config`) key by key, any other value replaced. `config.json` is read again: the typed
/// config keeps only the keys the estimators read.
fn overridden(model: &HfModel, patch: &Value) -> Result<HfConfig> {
    if !patch.is_object() {
        return Err(Error::invalid_parameter(
            HF_OVERRIDES,
            "must be a JSON object of config keys",
        ));
    }
    let mut raw = model.config_document()?;
    merge_json(&mut raw, patch.clone());
    HfConfig::parse(&raw.to_string(), Path::new(HF_OVERRIDES)).map_err(overrides_error)
}

/// A config made invalid by the overrides is the parameter's fault.
fn overrides_error(e: Error) -> Error {
    let what = match e {
        Error::Parse { what, .. } => what,
        other => other.to_string(),
    };
    Error::invalid_parameter(
        HF_OVERRIDES,
        format!("{what} once the overrides are applied to config.json"),
    )
}

/// The shape and tensors of a GGUF model (llama.cpp's keys, `general.architecture` prefix).
pub(crate) fn gguf_input(model: &GgufModel) -> Result<ModelInput> {
    let layers = model.block_count()?;
    let window = model.sliding_window()?;
    let sliding = model.sliding_window_layers()?;
    let attention = (0..layers as usize)
        .map(
            |i| match (window, sliding.as_ref().and_then(|s| s.get(i).copied())) {
                (Some(w), Some(true)) => LayerAttention::Sliding(w),
                _ => LayerAttention::Full,
            },
        )
        .collect();
    let mla = match model.kv_lora_rank()? {
        Some(kv_lora_rank) => {
            let rope = model.rope_dimension_count()?.unwrap_or(64);
            Some(Mla {
                kv_lora_rank,
                q_lora_rank: model.q_lora_rank()?,
                qk_rope_head_dim: rope,
                qk_nope_head_dim: model
                    .key_length_mla()?
                    .unwrap_or(rope + 128)
                    .saturating_sub(rope),
                v_head_dim: model.value_length_mla()?.unwrap_or(128),
            })
        }
        None => None,
    };
    let moe = match model.expert_count()? {
        Some(experts) if experts > 1 => {
            let expert_intermediate = model.expert_feed_forward_length()?.unwrap_or(0);
            Some(Moe {
                experts,
                experts_per_token: model.expert_used_count()?.unwrap_or(2),
                expert_intermediate,
                shared_intermediate: model.expert_shared_feed_forward_length()?.unwrap_or(
                    model
                        .expert_shared_count()?
                        .unwrap_or(0)
                        .saturating_mul(expert_intermediate),
                ),
                dense_layers: 0,
            })
        }
        _ => None,
    };
    let hidden_size = model.embedding_length()?;
    let shape = TextShape {
        architectures: vec![model.architecture()?.to_string()],
        hidden_size,
        heads: model.head_count()?.max(1),
        kv_heads: model.head_count_kv()?.max(1),
        head_dim: model.key_length()?.max(1),
        intermediate_size: model
            .feed_forward_length()?
            .unwrap_or(hidden_size.saturating_mul(4)),
        vocab_size: model.vocab_size()?.unwrap_or(0),
        tie_embeddings: model.tensor("output.weight").is_none(),
        layers: attention,
        mla,
        moe,
        vision: None,
        quantization: None,
        max_position: model.context_length()?.unwrap_or(2048),
    };
    let shape = shape.bounded(model.path())?;
    let tensors = TensorTable::new(
        &shape,
        model
            .tensors()
            .iter()
            .map(|t| (t.name.as_str(), t.dims.as_slice(), t.bytes)),
    );
    Ok(ModelInput {
        shape,
        tensors: Some(tensors),
    })
}
