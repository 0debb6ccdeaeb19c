//! The weight files of a model directory: which safetensors files make up the model, their
//! headers, and totals over them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::json::JsonDoc;
use super::safetensors::{Dtype, SafetensorsFile, TensorInfo};
use crate::{Error, Result};

/// Name of the shard index written by `save_pretrained` for sharded checkpoints.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// What a model directory holds as weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Weights {
    /// safetensors files, read from their headers.
    Safetensors(SafetensorsWeights),
    /// PyTorch pickle checkpoints (`pytorch_model*.bin`) and no safetensors. Their tensor sizes
    /// cannot be read without unpickling, which inferkit does not do; estimators fall back to
    /// [`HfConfig::estimated_parameters`](super::HfConfig::estimated_parameters).
    Pickle {
        /// The checkpoint file names.
        files: Vec<String>,
    },
    /// No weight files: a directory with only `config.json` (a model sized before download).
    Absent,
}

/// The shard index (`model.safetensors.index.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardIndex {
    /// `metadata.total_size` as written by the exporter (not checked: exporters disagree on
    /// what it counts).
    pub total_size: Option<u64>,
    /// Tensor name → file name.
    pub weight_map: BTreeMap<String, String>,
}

/// The safetensors files of a model and totals over all their tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafetensorsWeights {
    /// The shard index, when the directory has one.
    pub index: Option<ShardIndex>,
    /// Every file's header, in file-name order.
    pub files: Vec<SafetensorsFile>,
    /// Totals.
    pub summary: WeightSummary,
}

/// Totals over every tensor of every file.
///
/// `parameters` counts stored elements: the product of each tensor's shape as the header gives
/// it, over all tensors (scales, zero points and biases included). Packed formats therefore
/// count their containers: an AWQ/GPTQ `qweight` of I32 holding eight int4 values counts one
/// element per I32, an MXFP4 `_blocks` tensor of U8 one element per two values. Bytes are exact
/// for every format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightSummary {
    /// Number of tensors.
    pub tensor_count: u64,
    /// Stored elements over all tensors (see the type's documentation).
    pub parameters: u64,
    /// Data bytes over all tensors.
    pub total_bytes: u64,
    /// Data bytes per dtype.
    pub bytes_by_dtype: BTreeMap<Dtype, u64>,
    /// Stored elements per dtype.
    pub parameters_by_dtype: BTreeMap<Dtype, u64>,
    /// Data bytes per file (headers not counted).
    pub bytes_by_file: BTreeMap<String, u64>,
}

impl WeightSummary {
    /// Adds one tensor. Saturating: each file's header is checked on its own, but the
    /// header-only shards of one model can together declare more than `u64::MAX` bytes; a
    /// saturated size fits nowhere, which is the right answer for such a model.
    fn add(&mut self, t: &TensorInfo) {
        fn grow(total: &mut u64, by: u64) {
            *total = total.saturating_add(by);
        }
        grow(&mut self.tensor_count, 1);
        grow(&mut self.parameters, t.elements);
        grow(&mut self.total_bytes, t.bytes);
        grow(self.bytes_by_dtype.entry(t.dtype).or_default(), t.bytes);
        grow(
            self.parameters_by_dtype.entry(t.dtype).or_default(),
            t.elements,
        );
        grow(
            self.bytes_by_file.entry(t.file.clone()).or_default(),
            t.bytes,
        );
    }
}

impl SafetensorsWeights {
    /// Every tensor of every file.
    pub fn tensors(&self) -> impl Iterator<Item = &TensorInfo> {
        self.files.iter().flat_map(|f| f.tensors.iter())
    }

    /// The tensor of this name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors().find(|t| t.name == name)
    }

    fn from_files(index: Option<ShardIndex>, files: Vec<SafetensorsFile>) -> Self {
        let mut summary = WeightSummary::default();
        files
            .iter()
            .flat_map(|f| f.tensors.iter())
            .for_each(|t| summary.add(t));
        SafetensorsWeights {
            index,
            files,
            summary,
        }
    }
}

/// Finds and reads the weights of the model directory `dir`.
///
/// With `model.safetensors.index.json`, the files it lists (each must exist, and each must hold
/// the tensors the index maps to it); without, every top-level `*.safetensors` file, except
/// that Mistral's duplicate `consolidated*.safetensors` are skipped when other safetensors
/// files are present.
pub(crate) fn read_weights(dir: &Path, names: &[String]) -> Result<Weights> {
    if names.iter().any(|n| n == INDEX_FILE) {
        return read_indexed(dir).map(Weights::Safetensors);
    }
    let safetensors = unindexed_safetensors(names);
    if !safetensors.is_empty() {
        let files = safetensors
            .iter()
            .map(|n| SafetensorsFile::open(&dir.join(n)))
            .collect::<Result<Vec<_>>>()?;
        return Ok(Weights::Safetensors(SafetensorsWeights::from_files(
            None, files,
        )));
    }
    let pickles: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("pytorch_model") && n.ends_with(".bin"))
        .cloned()
        .collect();
    Ok(if pickles.is_empty() {
        Weights::Absent
    } else {
        Weights::Pickle { files: pickles }
    })
}

fn unindexed_safetensors(names: &[String]) -> Vec<&String> {
    let all: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    let is_consolidated = |n: &&String| n.starts_with("consolidated");
    if all.iter().all(is_consolidated) {
        all
    } else {
        all.into_iter().filter(|n| !is_consolidated(n)).collect()
    }
}

fn read_indexed(dir: &Path) -> Result<SafetensorsWeights> {
    let index_path = dir.join(INDEX_FILE);
    let doc = JsonDoc::read(&index_path)?;
    let index = ShardIndex {
        total_size: doc.get(&["metadata", "total_size"])?,
        weight_map: doc
            .get(&["weight_map"])?
            .ok_or_else(|| Error::parse(&index_path, 0, "no `weight_map`"))?,
    };
    let shard_names: BTreeSet<&str> = index.weight_map.values().map(String::as_str).collect();
    let mut files = Vec::with_capacity(shard_names.len());
    for name in shard_names {
        check_shard_name(&doc, &index, name)?;
        files.push(open_shard(dir, name)?);
    }
    check_index_matches(&doc, &index, &files)?;
    Ok(SafetensorsWeights::from_files(Some(index), files))
}

/// Refuses shard names that leave the model directory.
fn check_shard_name(doc: &JsonDoc, index: &ShardIndex, name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && Path::new(name).file_name().is_some_and(|f| f == name)
        && !name.contains(['/', '\\']);
    if plain {
        return Ok(());
    }
    let tensor = index
        .weight_map
        .iter()
        .find(|(_, file)| *file == name)
        .map_or("", |(t, _)| t.as_str());
    Err(doc.invalid(
        &["weight_map", tensor],
        format!("`{name}` is not a file name inside the model directory"),
    ))
}

fn open_shard(dir: &Path, name: &str) -> Result<SafetensorsFile> {
    let path = dir.join(name);
    if !path.is_file() {
        return Err(Error::io_with(
            path,
            std::io::ErrorKind::NotFound,
            format!("shard `{name}` listed in {INDEX_FILE} is missing"),
        ));
    }
    SafetensorsFile::open(&path)
}

/// Every tensor the index maps to a file must be in that file's header.
fn check_index_matches(doc: &JsonDoc, index: &ShardIndex, files: &[SafetensorsFile]) -> Result<()> {
    let present: BTreeSet<(&str, &str)> = files
        .iter()
        .flat_map(|f| f.tensors.iter().map(|t| (f.name.as_str(), t.name.as_str())))
        .collect();
    let missing = index
        .weight_map
        .iter()
        .find(|(tensor, file)| !present.contains(&(file.as_str(), tensor.as_str())));
    match missing {
        None => Ok(()),
        Some((tensor, file)) => Err(Error::parse(
            doc.origin(),
            doc.key_offset(tensor),
            format!("{INDEX_FILE} maps `{tensor}` to `{file}`, whose header has no such tensor"),
        )),
    }
}
