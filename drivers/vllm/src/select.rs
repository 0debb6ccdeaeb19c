//! What the driver reads from [`ModelFacts`]: the config and weights of a Hugging Face
//! directory, or the header of a single-file GGUF model when vLLM is chosen explicitly.

use std::collections::BTreeMap;

use serde_json::Value;

use inferkit_core::hf::HfConfig;
use inferkit_core::{
    Category, Claim, Error, ModelFacts, ModelFormat, ModelSource, ModelSpec, Result, Selection,
};

use crate::architectures::{self, GGUF_ARCHITECTURES};
use crate::flags::VllmVersion;
use crate::memory::estimator::ModelInput;
use crate::memory::input::{HF_OVERRIDES, gguf_input, hf_input};
use crate::params::Params;

fn explicitly_chosen(spec: &ModelSpec) -> bool {
    spec.backend.as_deref() == Some("vllm")
}

/// Does vLLM claim the model, and as what.
pub(crate) fn select(facts: &ModelFacts, spec: &ModelSpec) -> Selection {
    match facts.format {
        ModelFormat::Safetensors => select_hf(facts, spec),
        ModelFormat::Gguf => select_gguf(facts, spec),
        _ => Selection::new(
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
        .and_then(|v| Params::parse_without_suggestions(v, &spec.backend_parameters))
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
        return Err(Error::unsupported(
            "vLLM loads single-file GGUF models only; merge the shards first (llama-gguf-split --merge)",
        ));
    }
    let arch = model.architecture()?;
    if !GGUF_ARCHITECTURES.contains(&arch) {
        return Err(Error::unsupported(format!(
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
        _ => Err(Error::unsupported(select(facts, spec).reason)),
    }
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
            ..
        } => Ok(repo_id.clone()),
        ModelSource::ModelScope {
            model_id,
            file_path: None,
            ..
        } => Ok(model_id.clone()),
        source => Err(Error::unsupported(format!(
            "vLLM is launched on a local model path or a whole Hugging Face or ModelScope \
             repository, not {}",
            source.display_name()
        ))),
    }
}

/// The revision of a repository id read at a named revision: `--revision` (vLLM's tokenizer
/// follows it, `tokenizer_revision` defaulting to `revision` in `vllm/config/model.py`).
pub(crate) fn hub_revision(facts: &ModelFacts, spec: &ModelSpec) -> Option<String> {
    if facts.path.is_some() || spec.source.local_path().is_some() {
        return None;
    }
    match &facts.source {
        ModelSource::Huggingface { revision, .. } | ModelSource::ModelScope { revision, .. } => {
            revision.clone()
        }
        _ => None,
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
