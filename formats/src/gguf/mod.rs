//! GGUF header reader: metadata and tensor infos of llama.cpp model files, without tensor data.
//!
//! # What it reads
//!
//! Only the header of a GGUF file: magic, version, metadata key-values and tensor infos. It
//! never touches tensor data, so a *header-only* file (a GGUF cut right after its tensor infos,
//! with or without the alignment padding) parses exactly like the full multi-gigabyte file.
//! That is how models that have not been downloaded are estimated.
//!
//! - GGUF versions 1 (32-bit counts and lengths), 2 and 3 (64-bit); little- and big-endian
//!   files (told apart by the version field).
//! - All 13 metadata value types, arrays nested to any reasonable depth (16).
//! - `general.alignment` (default 32) and the aligned start of tensor data.
//! - The complete ggml type table ([`GgmlType`]) with exact tensor byte sizes
//!   (`ggml_nbytes`); an unknown or removed type id is an error naming the tensor.
//! - Split models (`name-00001-of-00003.gguf`): [`GgufModel::open`] on any shard finds and
//!   reads the others next to it and presents one model.
//!
//! # Entry points
//!
//! - [`GgufModel::open`] / [`GgufModel::open_with`]: a file path; follows split shards.
//! - [`GgufHeader::read`]: any [`std::io::Read`] (buffered internally, forward only).
//! - [`GgufHeader::from_slice`]: bytes in memory or a memory map (`memmap2`).
//! - [`GgufModel::from_headers`]: combine headers read by the caller into one model.
//!
//! The model answers what estimators need through typed accessors (see the `impl GgufModel`
//! blocks): [`GgufModel::architecture`], [`GgufModel::block_count`],
//! [`GgufModel::head_count_kv_per_layer`], [`GgufModel::sliding_window_layers`],
//! [`GgufModel::vocab_size`], [`GgufModel::clip_vision`], [`GgufModel::is_diffusion`], ...
//! Any other key is one [`Metadata`] lookup away, with typed getters that coerce integer widths
//! and report a wrong type as [`Error::Parse`] naming file and offset.
//!
//! # Untrusted input
//!
//! Every count and length read from a file is checked against what is left of the file (when
//! its length is known) before anything is allocated, and nothing is reserved beyond 64Ki
//! elements up front (vectors grow with the data actually read); strings are capped at 64 MiB,
//! tensor names at 4 KiB, arrays nest at most 16 deep, `block_count` is at most
//! [`MAX_LAYERS`], sizes are computed with overflow checks. A truncated, malformed or hostile
//! file gives [`Error::Parse`] with the file and byte offset, never a panic (`fuzz/` holds a
//! cargo-fuzz target for this).
//!
//! # Large arrays
//!
//! By default ([`ReadOptions::default`]) arrays longer than 1024 elements (tokenizer tokens,
//! scores, token types, merges) are skipped: their length is kept (it is the vocabulary size),
//! their elements are neither allocated nor decoded. [`ReadOptions::full`] keeps everything;
//! string arrays are then stored in one buffer ([`StringList`]) and checked for UTF-8 only
//! when a string is accessed.
//!
//! # Example
//!
//! ```
//! use inferkit_formats::gguf::{GgmlType, GgufModel};
//!
//! # fn main() -> inferkit_formats::Result<()> {
//! let path = concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/testdata/qwen2.5-0.5b-instruct-Q4_K_M.header.gguf"
//! );
//! let model = GgufModel::open(path)?;
//! assert_eq!(model.architecture()?, "qwen2");
//! assert_eq!(model.block_count()?, 24);
//! assert_eq!(model.head_count_kv_per_layer()?, vec![2; 24]);
//! assert_eq!(model.vocab_size()?, Some(151_936));
//! // Exactly what llama.cpp reports for this model.
//! assert_eq!(model.parameters(), 494_032_768);
//! assert_eq!(model.tensor_bytes(), 391_859_712);
//!
//! let embd = model.tensor("token_embd.weight").expect("present");
//! assert_eq!(embd.dims, [896, 151_936]);
//! assert_eq!(embd.ggml_type, GgmlType::Q8_0);
//!
//! // Any other key, typed:
//! let theta = model.metadata().get_f64("qwen2.rope.freq_base")?;
//! assert_eq!(theta, Some(1_000_000.0));
//! # Ok(())
//! # }
//! ```

mod arch;
mod extent;
mod ggml_type;
mod input;
mod metadata;
mod model;
mod reader;
mod split;
mod value;

use serde::{Deserialize, Serialize};

pub use arch::{ClipEncoder, MAX_HEADS, MAX_WIDTH, file_type_name};
pub use extent::estimate_header_len;
pub use ggml_type::GgmlType;
pub use metadata::{MAX_LAYERS, Metadata, MetadataEntry};
pub use model::{GgufModel, ShardInfo};
pub use reader::ReadOptions;
pub use split::{SplitName, parse_split_name};
pub use value::{Array, ArrayData, StringList, Value, ValueType};

#[cfg(doc)]
use crate::Error;

/// Byte order of a GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByteOrder {
    /// Little-endian (nearly every GGUF file).
    Little,
    /// Big-endian (files converted for s390x and similar).
    Big,
}

/// One file's header: everything before the tensor data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GgufHeader {
    /// GGUF version, 1 to 3.
    pub version: u32,
    /// Byte order of the file.
    pub byte_order: ByteOrder,
    /// `general.alignment`, or 32.
    pub alignment: u64,
    /// Offset of the first byte after the tensor infos.
    pub header_end: u64,
    /// Offset where tensor data starts: `header_end` rounded up to `alignment`.
    pub data_offset: u64,
    /// The metadata key-values, in file order.
    pub metadata: Metadata,
    /// The tensor infos, in file order.
    pub tensors: Vec<TensorInfo>,
}

/// One tensor as described by its tensor info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, innermost first (ggml's `ne`), 0 to 4 of them.
    pub dims: Vec<u64>,
    /// Data type.
    pub ggml_type: GgmlType,
    /// Offset of the data relative to the shard's data start.
    pub offset: u64,
    /// Number of elements (`ggml_nelements`).
    pub elements: u64,
    /// Data bytes (`ggml_nbytes` of the contiguous tensor).
    pub bytes: u64,
    /// Index of the shard holding it (0 for single files).
    pub shard: u32,
}
