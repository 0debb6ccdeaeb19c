//! What the driver reads from [`ModelFacts`]: the config and weights of a Hugging Face
//! directory, or the header of a single-file GGUF model when vLLM is chosen explicitly.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use inferkit_core::gguf::GgufModel;
use inferkit_core::hf::{Dtype, HfConfig, HfModel, TensorInfo};
use inferkit_core::{
    Category, Claim, Error, ModelFacts, ModelFormat, ModelSource, ModelSpec, Result, Selection,
};

use crate::architectures::{self, GGUF_ARCHITECTURES};
use crate::flags::VllmVersion;
use crate::memory;
use crate::memory::estimator::ModelInput;
use crate::memory::shape::{LayerAttention, Mla, Moe, TextShape};
use crate::memory::weights::TensorTable;
use crate::params::{Params, merge_json};

const CONFIG_FILE: &str = "config.json";

const HF_OVERRIDES: &str = "--hf-overrides";

fn explicitly_chosen(spec: &ModelSpec) -> bool {
    spec.backend.as_deref() == Some("vllm")
}

/// Does vLLM claim the model, and as what.
pub(crate) fn select(facts: &ModelFacts, spec: &ModelSpec) -> Selection {
    match facts.format {
        ModelFormat::Safetensors => select_hf(facts, spec),
        ModelFormat::Gguf => select_gguf(facts, spec),
        ModelFormat::Directory | ModelFormat::Remote => Selection::new(
            Claim::Refuses,
            "vLLM needs a local Hugging Face model directory (config.json and safetensors)",
        ),
    }
}

fn select_hf(facts: &ModelFacts, spec: &ModelSpec) -> Selection {
    let config = match facts.require_hf() {
        Ok(hf) => &hf.config,
        Err(e) => return Selection::new(Claim::Refuses, format!("Not a supported model: {e}")),
    };
    let architectures = architectures(config, spec);
    match architectures::category_of(&architectures) {
        Some(category) => Selection {
            claim: Claim::Supports,
            reason: format!(
                "vLLM serves {} models ({})",
                architectures.join(", "),
                category.as_str()
            ),
            categories: vec![category],
        },
        None if spec.backend_version.is_some() => Selection {
            claim: Claim::Supports,
            reason: format!(
                "architecture {} is not in vLLM 0.10.1.1's registry; accepted as an LLM because a backend version is set",
                architectures.join(", ")
            ),
            categories: vec![Category::Llm],
        },
        None if architectures.is_empty() => Selection::new(
            Claim::Refuses,
            "Not a supported model. Unrecognized architecture.",
        ),
        None => Selection::new(
            Claim::Refuses,
            format!(
                "Not a supported model. Detected architectures: {}.",
                architectures.join(", ")
            ),
        ),
    }
}

/// Architectures from `--hf-overrides` (GPUStack reads them there for vLLM), else the config's.
fn architectures(config: &HfConfig, spec: &ModelSpec) -> Vec<String> {
    let overridden = VllmVersion::from_spec(spec.backend_version.as_deref())
        .and_then(|v| Params::parse(v, &spec.backend_parameters))
        .ok()
        .and_then(|p| {
            let json = p.json_object(HF_OVERRIDES).ok()??;
            let list = json.get("architectures")?.as_array()?;
            Some(
                list.iter()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect::<Vec<_>>(),
            )
        });
    overridden.unwrap_or_else(|| config.architectures.clone())
}

fn select_gguf(facts: &ModelFacts, spec: &ModelSpec) -> Selection {
    if !explicitly_chosen(spec) {
        return Selection::new(
            Claim::Refuses,
            "GGUF models are served by llama-box unless vLLM is chosen explicitly",
        );
    }
    match gguf_architecture(facts) {
        Ok(arch) => Selection {
            claim: Claim::Supports,
            reason: format!("vLLM loads single-file GGUF models of architecture {arch}"),
            categories: vec![Category::Llm],
        },
        Err(e) => Selection::new(Claim::Refuses, e.to_string()),
    }
}

/// The GGUF architecture, when vLLM can load it.
fn gguf_architecture(facts: &ModelFacts) -> Result<String> {
    let model = facts.require_gguf()?;
    if model.shards().len() > 1 {
        return Err(Error::Unsupported(
            "vLLM loads single-file GGUF models only; merge the shards first (llama-gguf-split --merge)".into(),
        ));
    }
    let arch = model.architecture()?;
    if !GGUF_ARCHITECTURES.contains(&arch) {
        return Err(Error::Unsupported(format!(
            "vLLM cannot load GGUF architecture `{arch}` (its GGUF loader knows {})",
            GGUF_ARCHITECTURES.join(", ")
        )));
    }
    Ok(arch.to_string())
}

/// The category of the model as vLLM would serve it, when the user named none.
pub(crate) fn detect_category(facts: &ModelFacts, spec: &ModelSpec) -> Option<Category> {
    select(facts, spec).categories.first().copied()
}

/// The estimator's view of a read Hugging Face directory: its shape and its tensors, with the
/// user's `--hf-overrides` (a JSON object) applied to the config as vLLM applies them.
pub(crate) fn hf_input(model: &HfModel, overrides: Option<&Value>) -> Result<ModelInput> {
    let file = model.dir.join(CONFIG_FILE);
    let shape = match overrides {
        None => TextShape::from_config(&model.config, &file)?,
        Some(patch) => {
            let config = overridden(&model.config, patch)?;
            TextShape::from_config(&config, &file).map_err(overrides_error)?
        }
    };
    // vLLM's `auto` dtype downcasts float32 checkpoints to 16 bits when it loads them.
    let loaded = |t: &TensorInfo| match t.dtype {
        Dtype::F32 | Dtype::F64 => t.elements.saturating_mul(memory::MODEL_DTYPE_BYTES),
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

/// The config with `--hf-overrides` merged in: a nested object (a sub-config such as
/// `text_config`) key by key, any other value replaced.
fn overridden(config: &HfConfig, patch: &Value) -> Result<HfConfig> {
    if !patch.is_object() {
        return Err(Error::invalid_parameter(
            HF_OVERRIDES,
            "must be a JSON object of config keys",
        ));
    }
    let mut raw = config.raw.clone();
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

/// The estimator's view of the model.
pub(crate) fn input(
    facts: &ModelFacts,
    spec: &ModelSpec,
    overrides: Option<&Value>,
) -> Result<ModelInput> {
    match facts.format {
        ModelFormat::Safetensors => hf_input(facts.require_hf()?, overrides),
        ModelFormat::Gguf if explicitly_chosen(spec) => {
            gguf_architecture(facts)?;
            gguf_input(facts.require_gguf()?)
        }
        _ => Err(Error::Unsupported(select(facts, spec).reason)),
    }
}

/// The shape and tensors of a GGUF model (llama.cpp's keys, `general.architecture` prefix).
fn gguf_input(model: &GgufModel) -> Result<ModelInput> {
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

/// What follows `vllm serve`: the model directory, the GGUF file, or the id of a Hugging Face
/// or ModelScope repository read without downloading it (vLLM downloads it, into the Hugging
/// Face cache with the `HF_ENDPOINT` and `HF_TOKEN` of the environment it is started in, or
/// into ModelScope's cache with [`hub_env`]'s variable set).
pub(crate) fn serve_target(facts: &ModelFacts, spec: &ModelSpec) -> Result<String> {
    if let Some(path) = facts.path.as_deref().or_else(|| spec.source.local_path()) {
        return Ok(path.display().to_string());
    }
    match &facts.source {
        ModelSource::Huggingface {
            repo_id,
            filename: None,
        } => Ok(repo_id.clone()),
        ModelSource::ModelScope {
            model_id,
            file_path: None,
        } => Ok(model_id.clone()),
        source => Err(Error::Unsupported(format!(
            "vLLM is launched on a local model path or a whole Hugging Face or ModelScope \
             repository, not {}",
            source.display_name()
        ))),
    }
}

/// The environment every vLLM process of the deployment needs to fetch the model it is
/// given: `VLLM_USE_MODELSCOPE=True` for a ModelScope repository id (vLLM reads model ids
/// from the Hugging Face hub unless it is set: `vllm/envs.py`, compared lower-cased with
/// `true`; docs "Quickstart", "If you would like to use models from ModelScope").
pub(crate) fn hub_env(facts: &ModelFacts, spec: &ModelSpec) -> BTreeMap<String, String> {
    let local = facts.path.is_some() || spec.source.local_path().is_some();
    match &facts.source {
        ModelSource::ModelScope { .. } if !local => {
            BTreeMap::from([("VLLM_USE_MODELSCOPE".to_string(), "True".to_string())])
        }
        _ => BTreeMap::new(),
    }
}
