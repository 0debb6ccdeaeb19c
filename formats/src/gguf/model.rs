//! [`GgufModel`]: one model from one GGUF file or from all shards of a split model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::arch::DiffusionMarkers;
use super::reader::{TensorTotals, first_duplicate, totals_overflow};
use super::split::parse_split_name;
use super::{ByteOrder, GgufHeader, Metadata, ReadOptions, TensorInfo};
use crate::{Error, Result};

/// What one file of a model holds (a single-file model has one shard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// The file.
    pub path: PathBuf,
    /// GGUF version, 1 to 3.
    pub version: u32,
    /// Byte order.
    pub byte_order: ByteOrder,
    /// `general.alignment`, or 32.
    pub alignment: u64,
    /// Offset of the first byte after the tensor infos.
    pub header_end: u64,
    /// Offset where tensor data starts.
    pub data_offset: u64,
    /// Number of metadata key-values in this file.
    pub metadata_count: u64,
    /// Number of tensors in this file.
    pub tensor_count: u64,
    /// Sum of this file's tensor data bytes.
    pub tensor_bytes: u64,
}

/// A GGUF model: the metadata of its (first) file and the tensors of all its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ModelParts")]
pub struct GgufModel {
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    shards: Vec<ShardInfo>,
    /// Which diffusion tensor-name prefixes the tensors carry, found once when the model is
    /// built (planning asks several times per plan): derived from `tensors`, so neither
    /// serialized nor read back.
    #[serde(skip)]
    diffusion: DiffusionMarkers,
}

/// What a serialized [`GgufModel`] holds; the derived fields are computed again on reading.
#[derive(Deserialize)]
struct ModelParts {
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    shards: Vec<ShardInfo>,
}

impl From<ModelParts> for GgufModel {
    fn from(parts: ModelParts) -> Self {
        GgufModel {
            diffusion: DiffusionMarkers::of(&parts.tensors),
            metadata: parts.metadata,
            tensors: parts.tensors,
            shards: parts.shards,
        }
    }
}

impl GgufModel {
    /// Reads the model at `path` with [`ReadOptions::default`] (large arrays skipped).
    ///
    /// `path` may be any shard of a split model: all shards named
    /// `<prefix>-NNNNN-of-MMMMM.gguf` next to it are read, and a missing one is an
    /// [`Error::Io`] naming its path.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufModel> {
        Self::open_with(path, &ReadOptions::default())
    }

    /// Like [`GgufModel::open`], with explicit [`ReadOptions`].
    pub fn open_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<GgufModel> {
        let path = path.as_ref();
        let header = read_file(path, options)?;
        let count = split_count(&header)?;
        if count <= 1 {
            return Self::from_headers(vec![(path.to_path_buf(), header)]);
        }
        let entry_offset = header.metadata.entry("split.count").map_or(0, |e| e.offset);
        let name = parse_split_name(path)
            .filter(|name| u64::from(name.count) == count)
            .ok_or_else(|| {
                Error::parse(
                    path,
                    entry_offset,
                    format!("split.count is {count} but the file name does not end in -NNNNN-of-{count:05}.gguf"),
                )
            })?;
        let mut opened = Some(header);
        let mut shards = Vec::with_capacity(name.count as usize);
        for number in 1..=name.count {
            let shard_path = name.shard_path(number);
            let shard = match opened.take_if(|_| number == name.number) {
                Some(header) => header,
                None => read_shard(&shard_path, number, name.count, path, options)?,
            };
            shards.push((shard_path, shard));
        }
        Self::from_headers(shards)
    }

    /// Combines headers the caller read (for example from memory maps) into one model.
    ///
    /// `shards` are `(path, header)` pairs in shard order; for a split model all of them must
    /// be given, with `split.no` 0, 1, ... and a common `split.count`.
    pub fn from_headers(shards: Vec<(PathBuf, GgufHeader)>) -> Result<GgufModel> {
        let Some(first) = shards.first() else {
            return Err(Error::invalid_parameter("shards", "no GGUF header given"));
        };
        let expected = split_count(&first.1)?.max(1);
        if expected != shards.len() as u64 {
            return Err(Error::parse(
                &first.0,
                0,
                format!("split model of {expected} shards, {} given", shards.len()),
            ));
        }
        let mut infos = Vec::with_capacity(shards.len());
        let mut tensors = Vec::new();
        let mut metadata = None;
        let mut totals = TensorTotals::default();
        for (index, (path, header)) in shards.into_iter().enumerate() {
            check_shard_number(&path, &header, index, expected)?;
            // Headers built by hand skip the reader's check, and shards can add up past it.
            if let Some(t) = header.tensors.iter().find(|t| totals.add(t).is_none()) {
                return Err(Error::parse(
                    &path,
                    header.header_end,
                    totals_overflow(&t.name),
                ));
            }
            let info = shard_info(path, &header);
            tensors.extend(header.tensors.into_iter().map(|mut t| {
                t.shard = index as u32;
                t
            }));
            infos.push(info);
            metadata.get_or_insert(header.metadata);
        }
        let metadata = metadata.unwrap_or_else(|| Metadata::new(PathBuf::new(), Vec::new()));
        let model = GgufModel::from(ModelParts {
            metadata,
            tensors,
            shards: infos,
        });
        model.check_tensor_total()?;
        Ok(model)
    }

    /// The diffusion prefixes found in the tensor names when the model was built.
    pub(crate) fn diffusion(&self) -> DiffusionMarkers {
        self.diffusion
    }

    /// The metadata (of the first shard for split models).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The repeating layers the tensors hold: the distinct `N` of `blk.N.*` tensor names, in
    /// ascending order (llama.cpp names every tensor of repeating layer `N` so). Empty for
    /// files without layer tensors (vocabulary-only files, projectors, diffusion models).
    pub fn tensor_layers(&self) -> std::collections::BTreeSet<u64> {
        self.tensors
            .iter()
            .filter_map(|t| t.name.strip_prefix("blk."))
            .filter_map(|rest| rest.split('.').next()?.parse().ok())
            .collect()
    }

    /// All tensors of all shards, in shard and file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The files of the model, in shard order.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// The path of the first shard.
    pub fn path(&self) -> &Path {
        // `shards[0]` exists: `from_headers`, the only constructor, refuses an empty list.
        &self.shards[0].path
    }

    /// GGUF version of the first shard.
    pub fn version(&self) -> u32 {
        self.shards[0].version
    }

    /// Byte order of the first shard.
    pub fn byte_order(&self) -> ByteOrder {
        self.shards[0].byte_order
    }

    /// Sum of all tensors' data bytes over all shards (llama.cpp's model size).
    pub fn tensor_bytes(&self) -> u64 {
        // Cannot overflow: `from_headers` refuses models whose totals do not fit `u64`.
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    /// Sum of all tensors' element counts (llama.cpp's `llama_model_n_params`).
    pub fn parameters(&self) -> u64 {
        self.tensors.iter().map(|t| t.elements).sum()
    }

    fn check_tensor_total(&self) -> Result<()> {
        let names = self
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), u64::from(t.shard)));
        if let Some((name, shard)) = first_duplicate(names) {
            let path = &self.shards[shard as usize].path;
            return Err(Error::parse(
                path,
                0,
                format!("tensor {name} appears in more than one shard"),
            ));
        }
        let Some(entry) = self.metadata.entry("split.tensors.count") else {
            return Ok(());
        };
        let expected = self.metadata.require_u64("split.tensors.count")?;
        let found = self.tensors.len() as u64;
        if expected != found {
            return Err(Error::parse(
                self.path(),
                entry.offset,
                format!("split.tensors.count is {expected} but the shards hold {found} tensors"),
            ));
        }
        Ok(())
    }
}

/// `split.count` of a header (1 when absent).
fn split_count(header: &GgufHeader) -> Result<u64> {
    Ok(header.metadata.get_u64("split.count")?.unwrap_or(1))
}

fn check_shard_number(path: &Path, header: &GgufHeader, index: usize, count: u64) -> Result<()> {
    if count == 1 {
        return Ok(());
    }
    let number = header.metadata.get_u64("split.no")?;
    let shard_count = split_count(header)?;
    if number != Some(index as u64) || shard_count != count {
        let offset = header.metadata.entry("split.no").map_or(0, |e| e.offset);
        return Err(Error::parse(
            path,
            offset,
            format!(
                "expected shard {index} of {count}, found split.no {number:?} of split.count {shard_count}"
            ),
        ));
    }
    Ok(())
}

fn shard_info(path: PathBuf, header: &GgufHeader) -> ShardInfo {
    ShardInfo {
        path,
        version: header.version,
        byte_order: header.byte_order,
        alignment: header.alignment,
        header_end: header.header_end,
        data_offset: header.data_offset,
        metadata_count: header.metadata.len() as u64,
        tensor_count: header.tensors.len() as u64,
        // Cannot overflow: the caller checked the totals of this and earlier shards.
        tensor_bytes: header.tensors.iter().map(|t| t.bytes).sum(),
    }
}

/// Reads one file's header through a buffered, forward-only reader.
fn read_file(path: &Path, options: &ReadOptions) -> Result<GgufHeader> {
    let (file, len) = crate::files::open_regular_file(path)?;
    GgufHeader::read(file, Some(len), path, options)
}

fn read_shard(
    path: &Path,
    number: u32,
    count: u32,
    opened_from: &Path,
    options: &ReadOptions,
) -> Result<GgufHeader> {
    if !path.exists() {
        return Err(Error::io_with(
            path,
            std::io::ErrorKind::NotFound,
            format!(
                "shard {number} of {count} is missing (the model was opened from {})",
                opened_from.display()
            ),
        ));
    }
    read_file(path, options)
}
