//! What the user asked for ([`ModelSpec`]); what the files say is [`ModelFacts`](crate::facts::ModelFacts).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::inventory::DeviceId;
pub use inferkit_formats::ModelSource;

/// What kind of service a model provides (GPUStack's categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Category {
    /// Text generation (chat, completion), including vision-language models.
    Llm,
    /// Text embeddings.
    Embedding,
    /// Reranking (cross-encoder scores).
    Reranker,
    /// Image generation (diffusion).
    Image,
    /// Speech recognition.
    SpeechToText,
    /// Speech synthesis.
    TextToSpeech,
}

impl Category {
    /// The snake_case name used in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Llm => "llm",
            Category::Embedding => "embedding",
            Category::Reranker => "reranker",
            Category::Image => "image",
            Category::SpeechToText => "speech_to_text",
            Category::TextToSpeech => "text_to_speech",
        }
    }
}

/// Everything the user decided about one deployment. Unset options mean "let inferkit decide".
///
/// In JSON the source's keys sit beside the others (`"source": "local_path", "path": ...`);
/// a key the spec does not know is refused (see [`user_json`](crate::user_json)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(try_from = "SpecKeys")]
pub struct ModelSpec {
    /// Deployment name: served model name and alias of the running backend.
    pub name: String,
    /// Where the model files are.
    #[serde(flatten)]
    pub source: ModelSource,
    /// Backend id chosen by the user (`llama-box`, `vllm`, `vox-box`, `ascend-mindie`); it
    /// always wins over automatic selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Backend version chosen by the user (selects the flag table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_version: Option<String>,
    /// Categories given by the user; detected from the files when empty.
    #[serde(default)]
    pub categories: Vec<Category>,
    /// Backend command-line parameters given by the user, one token or `--flag=value` each.
    #[serde(default)]
    pub backend_parameters: Vec<String>,
    /// Extra environment for the backend processes.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Worker labels a worker must carry to be considered.
    #[serde(default)]
    pub worker_selector: BTreeMap<String, String>,
    /// Devices chosen by hand; placement then only checks and sizes them.
    #[serde(default)]
    pub device_selector: Vec<DeviceId>,
    /// Allow placing part of the model in host memory (None: the backend's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_offloading: Option<bool>,
    /// Allow spreading one instance over several workers (None: the backend's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed_inference_across_workers: Option<bool>,
}

/// The keys of a spec as written: [`ModelSpec`] with its source's keys spelt out, so that an
/// unknown key can be refused (serde cannot refuse them beside a flattened enum).
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct SpecKeys {
    name: String,
    source: SourceKind,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    repo_id: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    file_path: Option<String>,
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    backend_version: Option<String>,
    #[serde(default)]
    categories: Vec<Category>,
    #[serde(default)]
    backend_parameters: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    worker_selector: BTreeMap<String, String>,
    #[serde(default)]
    device_selector: Vec<DeviceId>,
    #[serde(default)]
    cpu_offloading: Option<bool>,
    #[serde(default)]
    distributed_inference_across_workers: Option<bool>,
}

/// The `source` tag of [`ModelSource`].
#[derive(Clone, Copy, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
enum SourceKind {
    LocalPath,
    Huggingface,
    ModelScope,
}

impl SourceKind {
    fn as_str(self) -> &'static str {
        match self {
            SourceKind::LocalPath => "local_path",
            SourceKind::Huggingface => "huggingface",
            SourceKind::ModelScope => "model_scope",
        }
    }
}

impl TryFrom<SpecKeys> for ModelSpec {
    type Error = String;

    fn try_from(keys: SpecKeys) -> std::result::Result<Self, String> {
        let foreign = match keys.source {
            SourceKind::LocalPath => [
                ("repo_id", keys.repo_id.is_some()),
                ("filename", keys.filename.is_some()),
                ("model_id", keys.model_id.is_some()),
                ("file_path", keys.file_path.is_some()),
                ("revision", keys.revision.is_some()),
            ],
            SourceKind::Huggingface => [
                ("path", keys.path.is_some()),
                ("model_id", keys.model_id.is_some()),
                ("file_path", keys.file_path.is_some()),
                ("", false),
                ("", false),
            ],
            SourceKind::ModelScope => [
                ("path", keys.path.is_some()),
                ("repo_id", keys.repo_id.is_some()),
                ("filename", keys.filename.is_some()),
                ("", false),
                ("", false),
            ],
        };
        if let Some((key, _)) = foreign.iter().find(|(_, given)| *given) {
            return Err(format!(
                "`{key}` does not belong to a `{}` source",
                keys.source.as_str()
            ));
        }
        let source = match keys.source {
            SourceKind::LocalPath => ModelSource::LocalPath {
                path: keys.path.ok_or("a local_path source needs `path`")?,
            },
            SourceKind::Huggingface => ModelSource::Huggingface {
                repo_id: keys.repo_id.ok_or("a huggingface source needs `repo_id`")?,
                filename: keys.filename,
                revision: keys.revision,
            },
            SourceKind::ModelScope => ModelSource::ModelScope {
                model_id: keys
                    .model_id
                    .ok_or("a model_scope source needs `model_id`")?,
                file_path: keys.file_path,
                revision: keys.revision,
            },
        };
        Ok(ModelSpec {
            name: keys.name,
            source,
            backend: keys.backend,
            backend_version: keys.backend_version,
            categories: keys.categories,
            backend_parameters: keys.backend_parameters,
            env: keys.env,
            worker_selector: keys.worker_selector,
            device_selector: keys.device_selector,
            cpu_offloading: keys.cpu_offloading,
            distributed_inference_across_workers: keys.distributed_inference_across_workers,
        })
    }
}

impl ModelSpec {
    /// A spec for a local file or directory with every option left to inferkit. A relative
    /// path is made absolute against the current directory, because launched processes run in
    /// their own run directory.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let path = std::path::absolute(&path).unwrap_or(path);
        Self::from_source(ModelSource::LocalPath { path })
    }

    /// A spec for a model from `source` (a hub repository, an Ollama model, a URL, as
    /// `inferkit-sources` resolves them) with every option left to inferkit.
    pub fn from_source(source: ModelSource) -> Self {
        ModelSpec {
            name: default_model_name(&source),
            source,
            backend: None,
            backend_version: None,
            categories: Vec::new(),
            backend_parameters: Vec::new(),
            env: BTreeMap::new(),
            worker_selector: BTreeMap::new(),
            device_selector: Vec::new(),
            cpu_offloading: None,
            distributed_inference_across_workers: None,
        }
    }
}

/// A model name derived from its source: the file stem without the shard suffix and
/// extension, lowercased (`Qwen2.5-0.5B-Instruct-Q4_K_M.gguf` → `qwen2.5-0.5b-instruct-q4_k_m`).
fn default_model_name(source: &ModelSource) -> String {
    let name = source.display_name();
    let name = name.strip_suffix(".gguf").unwrap_or(&name);
    let name = match name.rfind("-of-") {
        Some(pos) if name[..pos].rfind('-').is_some() => {
            let dash = name[..pos].rfind('-').unwrap_or(pos);
            &name[..dash]
        }
        _ => name,
    };
    let name = name.rsplit('/').next().unwrap_or(name);
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_drop_extension_and_shard_suffix() {
        let spec = ModelSpec::local("/m/DeepSeek-R1-Q8_0-00001-of-00015.gguf");
        assert_eq!(spec.name, "deepseek-r1-q8_0");
        let spec = ModelSpec::local("/m/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf");
        assert_eq!(spec.name, "qwen2.5-0.5b-instruct-q4_k_m");
        let spec = ModelSpec::local("/models/Llama-3.1-8B");
        assert_eq!(spec.name, "llama-3.1-8b");
    }
}
