//! Hugging Face model directories: `config.json`, `generation_config.json` and safetensors
//! headers, read without loading any tensor data.
//!
//! [`HfModel::open`] reads what an estimator needs from a directory:
//!
//! - [`HfConfig`]: the typed `config.json`, with the text config of multimodal models resolved
//!   (`text_config`, `llm_config`, ...), the vision tower, MoE and MLA settings, the per-layer
//!   sliding-window pattern and the quantization config;
//! - [`GenerationConfig`], when `generation_config.json` is present;
//! - [`Weights`]: the safetensors headers (a single file, the shards of
//!   `model.safetensors.index.json`, or every `*.safetensors` without an index) with exact bytes
//!   per dtype, per file and in total, and the stored element count. Only the 8-byte length and
//!   the JSON header of each file are read; header-only files (the data section absent) are
//!   accepted. PyTorch pickle checkpoints are reported as [`Weights::Pickle`] (not readable from
//!   headers) and a directory with only `config.json` as [`Weights::Absent`]; for both,
//!   [`HfConfig::estimated_parameters`] gives an approximate count.
//!
//! ```no_run
//! use inferkit_formats::hf::HfModel;
//!
//! let model = HfModel::open("models/Llama-3.1-8B-Instruct".as_ref())?;
//! println!("{} layers", model.config.text.num_hidden_layers.unwrap_or(0));
//! if let Some(weights) = model.safetensors() {
//!     println!("{} bytes of weights", weights.summary.total_bytes);
//! }
//! # Ok::<(), inferkit_formats::Error>(())
//! ```

mod config;
mod json;
mod quantization;
mod safetensors;
mod weights;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use config::{
    GenerationConfig, HfConfig, LayerAttention, MAX_CONTEXT, MAX_LAYERS, MlaConfig, MoeConfig,
    RopeScaling, TextConfig, TextDimensions, VisionConfig,
};
pub use quantization::{QuantMethod, QuantizationConfig};
pub use safetensors::{Dtype, MAX_HEADER_LEN, SafetensorsFile, TensorInfo};
pub use weights::{INDEX_FILE, SafetensorsWeights, ShardIndex, WeightSummary, Weights};

use crate::{Error, Result};

/// The model's configuration, in the directory.
const CONFIG_FILE: &str = "config.json";

/// Generation defaults, in the directory when the model has them.
const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// A Hugging Face model directory, read from its configuration files and weight headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfModel {
    /// The directory.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: HfConfig,
    /// `generation_config.json`, when present.
    pub generation: Option<GenerationConfig>,
    /// The weight files.
    pub weights: Weights,
}

/// A parameter count and whether it is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterCount {
    /// The count.
    pub count: u64,
    /// True when it comes from safetensors headers (stored elements, see [`WeightSummary`]);
    /// false when estimated from the config.
    pub exact: bool,
}

impl HfModel {
    /// Reads the model directory `dir`. `config.json` is required; everything else is
    /// optional. Errors: [`Error::Io`] for a missing `config.json` or a shard listed in the
    /// index but absent, [`Error::Parse`] (file, offset, key) for malformed JSON, wrong key
    /// types, and corrupt or inconsistent safetensors headers.
    pub fn open(dir: &Path) -> Result<HfModel> {
        let names = top_level_files(dir)?;
        let has = |name: &str| names.iter().any(|n| n == name);
        if !has(CONFIG_FILE) {
            return Err(Error::io_with(
                dir.join(CONFIG_FILE),
                std::io::ErrorKind::NotFound,
                "not found: a Hugging Face model directory needs config.json",
            ));
        }
        let config = HfConfig::read(&dir.join(CONFIG_FILE))?;
        let generation = has(GENERATION_CONFIG_FILE)
            .then(|| GenerationConfig::read(&dir.join(GENERATION_CONFIG_FILE)))
            .transpose()?;
        let weights = weights::read_weights(dir, &names)?;
        Ok(HfModel {
            dir: dir.to_path_buf(),
            config,
            generation,
            weights,
        })
    }

    /// `config.json` read again, whole: for a launcher that writes a changed copy (the typed
    /// [`HfConfig`] keeps only the keys the estimators read).
    pub fn config_document(&self) -> Result<serde_json::Value> {
        json::JsonDoc::read(&self.dir.join(CONFIG_FILE))?.into_value()
    }

    /// `generation_config.json` read again, whole, when the directory has one.
    pub fn generation_document(&self) -> Result<Option<serde_json::Value>> {
        if self.generation.is_none() {
            return Ok(None);
        }
        let doc = json::JsonDoc::read(&self.dir.join(GENERATION_CONFIG_FILE))?;
        doc.into_value().map(Some)
    }

    /// The safetensors weights, when the directory has them.
    pub fn safetensors(&self) -> Option<&SafetensorsWeights> {
        match &self.weights {
            Weights::Safetensors(w) => Some(w),
            _ => None,
        }
    }

    /// The parameter count: exact (stored elements) from safetensors headers, else the
    /// config's approximate estimate; `None` when neither is available.
    pub fn parameters(&self) -> Option<ParameterCount> {
        match self.safetensors() {
            Some(w) => Some(ParameterCount {
                count: w.summary.parameters,
                exact: true,
            }),
            None => self
                .config
                .estimated_parameters()
                .map(|count| ParameterCount {
                    count,
                    exact: false,
                }),
        }
    }
}

/// Names of the regular files directly in `dir`, sorted.
fn top_level_files(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if path.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}
