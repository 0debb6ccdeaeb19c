//! The GGUF header parser: magic, version, metadata key-values and tensor infos.
//!
//! Format: ggml's `docs/gguf.md` and `ggml/src/gguf.cpp` (the checks llama.cpp applies are
//! applied here too: power-of-two alignment, at most 4 dimensions, non-negative dimensions,
//! whole blocks per row, aligned tensor offsets, unique keys and tensor names).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ggml_type::GgmlType;
use super::input::{Input, InputError, ReadInput, SliceInput};
use super::value::{Array, ArrayData, StringList, Value, ValueType};
use super::{ByteOrder, GgufHeader, Metadata, MetadataEntry, TensorInfo};
use crate::{Error, Result};

/// The bytes "GGUF" at the start of every GGUF file.
const MAGIC: [u8; 4] = *b"GGUF";
/// Default of `general.alignment` (ggml's `GGUF_DEFAULT_ALIGNMENT`).
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;
/// Longest metadata string accepted (chat templates are a few hundred KiB at most).
const MAX_STRING_LEN: u64 = 64 << 20;
/// Longest tensor name accepted (llama.cpp allows 63 bytes; stable-diffusion files use longer
/// names, so this only guards against garbage).
const MAX_TENSOR_NAME_LEN: u64 = 4096;
/// Deepest nesting of arrays accepted.
const MAX_ARRAY_DEPTH: u32 = 16;
/// Most elements reserved up front when the source length is unknown; beyond it vectors grow
/// with the data actually read.
const RESERVE_WITHOUT_LENGTH: u64 = 4096;
/// Most elements reserved up front when the length is known: a count that fits in a 100 GB
/// file (tensor data included) is no reason to reserve gigabytes before reading the elements.
const MAX_RESERVE: u64 = 1 << 16;

/// How much of the metadata to keep while reading a header.
///
/// By default arrays longer than [`ReadOptions::DEFAULT_KEEP_ARRAYS_UP_TO`] elements (the
/// tokenizer's tokens, scores, token types and merges) are skipped: only their length is kept
/// ([`Array::len`], [`ArrayData::Skipped`]), nothing is allocated for them. Per-layer arrays
/// (head counts, feed-forward lengths, sliding-window patterns) are short and always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOptions {
    /// Arrays with more elements than this are skipped.
    pub keep_arrays_up_to: u64,
}

impl ReadOptions {
    /// The default limit: longer than any per-layer array, shorter than any vocabulary.
    pub const DEFAULT_KEEP_ARRAYS_UP_TO: u64 = 1024;

    /// Keep every array (a full parse, as `inspect --full` and the benchmark do).
    pub fn full() -> Self {
        ReadOptions {
            keep_arrays_up_to: u64::MAX,
        }
    }
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            keep_arrays_up_to: Self::DEFAULT_KEEP_ARRAYS_UP_TO,
        }
    }
}

impl GgufHeader {
    /// Parses a header held in memory: a whole file, a memory map of one, or only its first
    /// bytes (a header-only file). Bytes after the tensor infos are never looked at.
    ///
    /// `file` names the source in errors.
    pub fn from_slice(bytes: &[u8], file: &Path, options: &ReadOptions) -> Result<GgufHeader> {
        Parser::new(SliceInput::new(bytes), file, options).header()
    }

    /// Parses a header from any reader, buffering internally and reading forward only (at
    /// most 64 KiB past the tensor infos; never seeking).
    ///
    /// `total_len`, the source's length when known (a file's size), bounds counts read from
    /// the file before anything is allocated for them; without it vectors grow only with the
    /// data actually read. `file` names the source in errors.
    pub fn read<R: Read>(
        reader: R,
        total_len: Option<u64>,
        file: &Path,
        options: &ReadOptions,
    ) -> Result<GgufHeader> {
        Parser::new(ReadInput::new(reader, total_len), file, options).header()
    }
}

/// Fixed-size numbers in the file's byte order.
trait FromBytes<const N: usize>: Sized {
    fn from_bytes(bytes: [u8; N], big_endian: bool) -> Self;
}

macro_rules! from_bytes {
    ($($t:ty),*) => {$(
        impl FromBytes<{ size_of::<$t>() }> for $t {
            fn from_bytes(bytes: [u8; size_of::<$t>()], big_endian: bool) -> Self {
                if big_endian { <$t>::from_be_bytes(bytes) } else { <$t>::from_le_bytes(bytes) }
            }
        }
    )*};
}
from_bytes!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

struct Parser<'a, I> {
    input: I,
    file: &'a Path,
    options: &'a ReadOptions,
    big_endian: bool,
    version: u32,
}

impl<'a, I: Input> Parser<'a, I> {
    fn new(input: I, file: &'a Path, options: &'a ReadOptions) -> Self {
        Parser {
            input,
            file,
            options,
            big_endian: false,
            version: 3,
        }
    }

    fn error(&self, offset: u64, what: impl Into<String>) -> Error {
        Error::parse(self.file, offset, what)
    }

    fn input_error(&self, offset: u64, err: InputError, what: &str) -> Error {
        match err {
            InputError::Eof => self.error(offset, format!("file ends inside {what}")),
            InputError::Io(e) => Error::io(self.file, e),
        }
    }

    fn number<T: FromBytes<N>, const N: usize>(&mut self, what: &str) -> Result<T> {
        let at = self.input.position();
        match self.input.array::<N>() {
            Ok(bytes) => Ok(T::from_bytes(bytes, self.big_endian)),
            Err(e) => Err(self.input_error(at, e, what)),
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.number(what)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        self.number(what)
    }

    /// A count or length: `u32` in GGUF v1, `u64` from v2 on.
    fn length(&mut self, what: &str) -> Result<u64> {
        if self.version == 1 {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    fn skip(&mut self, len: u64, what: &str) -> Result<()> {
        let at = self.input.position();
        self.input
            .skip(len)
            .map_err(|e| self.input_error(at, e, what))
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what is left
    /// of the source (when its length is known).
    fn check_count(&self, at: u64, count: u64, min_size: u64, what: &str) -> Result<()> {
        match self.input.remaining() {
            Some(left) if count.saturating_mul(min_size) > left => Err(self.error(
                at,
                format!("{what} count {count} cannot fit in the {left} bytes left"),
            )),
            _ => Ok(()),
        }
    }

    /// How many elements to reserve for `count` items of `min_size` bytes.
    fn reserve_for(&self, count: u64, min_size: u64) -> usize {
        let cap = match self.input.remaining() {
            Some(left) => (left / min_size.max(1)).min(MAX_RESERVE),
            None => RESERVE_WITHOUT_LENGTH,
        };
        usize::try_from(count.min(cap)).unwrap_or(0)
    }

    /// Reads a length-prefixed string of at most `max_len` bytes, handing its bytes to `use_bytes`.
    fn with_string<T>(
        &mut self,
        max_len: u64,
        what: &str,
        use_bytes: impl FnOnce(&[u8]) -> T,
    ) -> Result<T> {
        let at = self.input.position();
        let len = self.length(what)?;
        if len > max_len {
            return Err(self.error(at, format!("{what} is {len} bytes long (limit {max_len})")));
        }
        if self.input.remaining().is_some_and(|left| len > left) {
            return Err(self.error(
                at,
                format!("{what} of {len} bytes runs past the end of the file"),
            ));
        }
        let len = usize::try_from(len).map_err(|_| self.error(at, "string too long"))?;
        let body = self.input.position();
        self.input
            .with_bytes(len, use_bytes)
            .map_err(|e| self.input_error(body, e, what))
    }

    fn string(&mut self, max_len: u64, what: &str) -> Result<String> {
        self.with_string(max_len, what, |bytes| utf8(bytes).into_owned())
    }

    fn header(mut self) -> Result<GgufHeader> {
        let magic: [u8; 4] = self
            .input
            .array()
            .map_err(|e| self.input_error(0, e, "the magic number"))?;
        // Big-endian files written by the `gguf` package keep the magic in byte order "GGUF";
        // some writers swap it. The byte order is told by the version field.
        if magic != MAGIC && magic != [b'F', b'U', b'G', b'G'] {
            return Err(self.error(0, format!("not a GGUF file (magic {magic:02x?})")));
        }
        let raw_version: [u8; 4] = self
            .input
            .array()
            .map_err(|e| self.input_error(4, e, "the version"))?;
        let (version, big_endian) = detect_version(raw_version).ok_or_else(|| {
            self.error(
                4,
                format!("unsupported GGUF version {raw_version:02x?} (1, 2 and 3 are supported)"),
            )
        })?;
        self.version = version;
        self.big_endian = big_endian;

        let counts_at = self.input.position();
        let tensor_count = self.length("the tensor count")?;
        let metadata_count = self.length("the metadata count")?;
        let metadata = self.metadata(metadata_count)?;
        let alignment = alignment(&metadata, self.file)?;
        let tensors = self.tensors(counts_at, tensor_count, alignment)?;
        let header_end = self.input.position();
        let data_offset = header_end.next_multiple_of(alignment);
        Ok(GgufHeader {
            version,
            byte_order: if big_endian {
                ByteOrder::Big
            } else {
                ByteOrder::Little
            },
            alignment,
            header_end,
            data_offset,
            metadata,
            tensors,
        })
    }

    fn metadata(&mut self, count: u64) -> Result<Metadata> {
        let at = self.input.position();
        // Smallest key-value: empty key (length prefix) + type tag + one byte.
        let min_size = if self.version == 1 {
            4 + 4 + 1
        } else {
            8 + 4 + 1
        };
        self.check_count(at, count, min_size, "metadata")?;
        let mut entries = Vec::with_capacity(self.reserve_for(count, min_size));
        for _ in 0..count {
            let offset = self.input.position();
            let key = self.string(MAX_STRING_LEN, "a metadata key")?;
            let tag_at = self.input.position();
            let tag = self.u32("a metadata value type")?;
            let value_type = ValueType::from_tag(tag).ok_or_else(|| {
                self.error(tag_at, format!("metadata {key}: unknown value type {tag}"))
            })?;
            let value = self.value(value_type, 0, &key)?;
            entries.push(MetadataEntry { key, value, offset });
        }
        let metadata = Metadata::new(self.file.to_path_buf(), entries);
        if let Some(dup) = first_duplicate(metadata.iter().map(|e| (e.key.as_str(), e.offset))) {
            return Err(self.error(dup.1, format!("duplicate metadata key {}", dup.0)));
        }
        Ok(metadata)
    }

    fn value(&mut self, value_type: ValueType, depth: u32, key: &str) -> Result<Value> {
        Ok(match value_type {
            ValueType::U8 => Value::U8(self.number(key)?),
            ValueType::I8 => Value::I8(self.number(key)?),
            ValueType::U16 => Value::U16(self.number(key)?),
            ValueType::I16 => Value::I16(self.number(key)?),
            ValueType::U32 => Value::U32(self.number(key)?),
            ValueType::I32 => Value::I32(self.number(key)?),
            ValueType::F32 => Value::F32(self.number(key)?),
            ValueType::U64 => Value::U64(self.number(key)?),
            ValueType::I64 => Value::I64(self.number(key)?),
            ValueType::F64 => Value::F64(self.number(key)?),
            ValueType::Bool => Value::Bool(self.bool(key)?),
            ValueType::String => Value::String(self.string(MAX_STRING_LEN, key)?),
            ValueType::Array => Value::Array(self.array(depth, key)?),
        })
    }

    fn bool(&mut self, key: &str) -> Result<bool> {
        let at = self.input.position();
        match self.number::<u8, 1>(key)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.error(
                at,
                format!("metadata {key}: bool byte {other} is neither 0 nor 1"),
            )),
        }
    }

    fn array(&mut self, depth: u32, key: &str) -> Result<Array> {
        let at = self.input.position();
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.error(
                at,
                format!("metadata {key}: arrays nested deeper than {MAX_ARRAY_DEPTH}"),
            ));
        }
        let tag = self.u32(key)?;
        let element_type = ValueType::from_tag(tag).ok_or_else(|| {
            self.error(
                at,
                format!("metadata {key}: unknown array element type {tag}"),
            )
        })?;
        let len_at = self.input.position();
        let len = self.length(key)?;
        let min_size = self.min_value_size(element_type);
        self.check_count(len_at, len, min_size, key)?;
        let data = if len > self.options.keep_arrays_up_to {
            self.skip_elements(element_type, len, depth, key)?;
            ArrayData::Skipped
        } else {
            self.elements(element_type, len, depth, key)?
        };
        Ok(Array {
            element_type,
            len,
            data,
        })
    }

    /// Smallest encoding of one value of `value_type` (a string's or array's length prefix).
    fn min_value_size(&self, value_type: ValueType) -> u64 {
        let length_size = if self.version == 1 { 4 } else { 8 };
        match value_type {
            ValueType::String => length_size,
            ValueType::Array => 4 + length_size,
            fixed => fixed.fixed_size().unwrap_or(1),
        }
    }

    fn skip_elements(
        &mut self,
        element_type: ValueType,
        len: u64,
        depth: u32,
        key: &str,
    ) -> Result<()> {
        match element_type {
            ValueType::String => {
                for _ in 0..len {
                    let at = self.input.position();
                    let n = self.length(key)?;
                    if n > MAX_STRING_LEN {
                        return Err(self.error(at, format!("metadata {key}: string of {n} bytes")));
                    }
                    self.skip(n, key)?;
                }
                Ok(())
            }
            ValueType::Array => {
                for _ in 0..len {
                    let at = self.input.position();
                    if depth + 1 >= MAX_ARRAY_DEPTH {
                        return Err(self.error(
                            at,
                            format!("metadata {key}: arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                        ));
                    }
                    let tag = self.u32(key)?;
                    let inner = ValueType::from_tag(tag).ok_or_else(|| {
                        self.error(
                            at,
                            format!("metadata {key}: unknown array element type {tag}"),
                        )
                    })?;
                    let inner_len = self.length(key)?;
                    self.check_count(at, inner_len, self.min_value_size(inner), key)?;
                    self.skip_elements(inner, inner_len, depth + 1, key)?;
                }
                Ok(())
            }
            fixed => {
                let size = fixed.fixed_size().unwrap_or(1);
                let at = self.input.position();
                let total = len.checked_mul(size).ok_or_else(|| {
                    self.error(at, format!("metadata {key}: array size overflows"))
                })?;
                self.skip(total, key)
            }
        }
    }

    fn elements(
        &mut self,
        element_type: ValueType,
        len: u64,
        depth: u32,
        key: &str,
    ) -> Result<ArrayData> {
        let reserve = self.reserve_for(len, self.min_value_size(element_type));
        Ok(match element_type {
            ValueType::U8 => ArrayData::U8(self.numbers(len, reserve, key)?),
            ValueType::I8 => ArrayData::I8(self.numbers(len, reserve, key)?),
            ValueType::U16 => ArrayData::U16(self.numbers(len, reserve, key)?),
            ValueType::I16 => ArrayData::I16(self.numbers(len, reserve, key)?),
            ValueType::U32 => ArrayData::U32(self.numbers(len, reserve, key)?),
            ValueType::I32 => ArrayData::I32(self.numbers(len, reserve, key)?),
            ValueType::F32 => ArrayData::F32(self.numbers(len, reserve, key)?),
            ValueType::U64 => ArrayData::U64(self.numbers(len, reserve, key)?),
            ValueType::I64 => ArrayData::I64(self.numbers(len, reserve, key)?),
            ValueType::F64 => ArrayData::F64(self.numbers(len, reserve, key)?),
            ValueType::Bool => {
                let mut out = Vec::with_capacity(reserve);
                for _ in 0..len {
                    out.push(self.bool(key)?);
                }
                ArrayData::Bool(out)
            }
            ValueType::String => {
                let mut out = StringList::with_capacity(reserve);
                for _ in 0..len {
                    self.with_string(MAX_STRING_LEN, key, |bytes| out.push_bytes(bytes))?;
                }
                ArrayData::String(out)
            }
            ValueType::Array => {
                let mut out = Vec::with_capacity(reserve);
                for _ in 0..len {
                    out.push(self.array(depth + 1, key)?);
                }
                ArrayData::Array(out)
            }
        })
    }

    /// Reads `len` fixed-size numbers in chunks (one bounds check per chunk, not per number).
    fn numbers<T: FromBytes<N>, const N: usize>(
        &mut self,
        len: u64,
        reserve: usize,
        key: &str,
    ) -> Result<Vec<T>> {
        /// Numbers decoded per chunk: 16 KiB of u64s, well inside the read buffer.
        const CHUNK: u64 = 2048;
        let mut out = Vec::with_capacity(reserve);
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK) as usize;
            let at = self.input.position();
            let big_endian = self.big_endian;
            self.input
                .with_bytes(n * N, |bytes| {
                    let (chunks, _) = bytes.as_chunks::<N>();
                    out.extend(chunks.iter().map(|c| T::from_bytes(*c, big_endian)));
                })
                .map_err(|e| self.input_error(at, e, key))?;
            left -= n as u64;
        }
        Ok(out)
    }

    fn tensors(&mut self, counts_at: u64, count: u64, alignment: u64) -> Result<Vec<TensorInfo>> {
        // Smallest tensor info: empty name + n_dims + type + offset (+ no dims).
        let min_size = if self.version == 1 {
            4 + 4 + 4 + 8
        } else {
            8 + 4 + 4 + 8
        };
        self.check_count(counts_at, count, min_size, "tensor")?;
        let mut tensors = Vec::with_capacity(self.reserve_for(count, min_size));
        let mut offsets = Vec::with_capacity(tensors.capacity());
        let mut totals = TensorTotals::default();
        for _ in 0..count {
            let at = self.input.position();
            let tensor = self.tensor_info(alignment)?;
            if totals.add(&tensor).is_none() {
                return Err(self.error(at, totals_overflow(&tensor.name)));
            }
            tensors.push(tensor);
            offsets.push(at);
        }
        let names = tensors
            .iter()
            .map(|t| t.name.as_str())
            .zip(offsets.iter().copied());
        if let Some((name, at)) = first_duplicate(names) {
            return Err(self.error(at, format!("duplicate tensor name {name}")));
        }
        Ok(tensors)
    }

    fn tensor_info(&mut self, alignment: u64) -> Result<TensorInfo> {
        let at = self.input.position();
        let name = self.string(MAX_TENSOR_NAME_LEN, "a tensor name")?;
        let dims_at = self.input.position();
        let n_dims = self.u32("the dimension count")?;
        if n_dims > MAX_DIMS {
            return Err(self.error(
                dims_at,
                format!("tensor {name}: {n_dims} dimensions (at most {MAX_DIMS})"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let dim_at = self.input.position();
            let dim = self.length("a tensor dimension")?;
            if i64::try_from(dim).is_err() {
                return Err(self.error(
                    dim_at,
                    format!("tensor {name}: dimension {dim} out of range"),
                ));
            }
            dims.push(dim);
        }
        let type_at = self.input.position();
        let type_id = self.u32("a tensor type")?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
            let what = match GgmlType::removed_name(type_id) {
                Some(old) => {
                    format!("tensor {name}: ggml type {type_id} ({old}) was removed from ggml")
                }
                None => format!("tensor {name}: unknown ggml type {type_id}"),
            };
            self.error(type_at, what)
        })?;
        let offset_at = self.input.position();
        let offset = self.u64("a tensor offset")?;
        if !offset.is_multiple_of(alignment) {
            return Err(self.error(offset_at, format!("tensor {name}: data offset {offset} is not a multiple of the alignment {alignment}")));
        }
        let (elements, bytes) = tensor_size(&dims, ggml_type)
            .map_err(|why| self.error(at, format!("tensor {name}: {why}")))?;
        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            elements,
            bytes,
            shard: 0,
        })
    }
}

/// Running element and byte totals of a tensor list. Each tensor alone is checked by
/// [`tensor_size`]; the totals are checked too so that the model's sums (and any subset a
/// driver adds up) cannot overflow.
#[derive(Default)]
pub(crate) struct TensorTotals {
    elements: u64,
    bytes: u64,
}

impl TensorTotals {
    /// Adds `tensor`; `None` when either total would overflow `u64`.
    pub(crate) fn add(&mut self, tensor: &TensorInfo) -> Option<()> {
        self.elements = self.elements.checked_add(tensor.elements)?;
        self.bytes = self.bytes.checked_add(tensor.bytes)?;
        Some(())
    }
}

/// The error text for [`TensorTotals::add`] failing at tensor `name`.
pub(crate) fn totals_overflow(name: &str) -> String {
    format!("tensor {name}: total tensor elements or bytes overflow 64 bits")
}

/// Elements and data bytes of a contiguous tensor (`ggml_nelements`, `ggml_nbytes`).
pub(crate) fn tensor_size(
    dims: &[u64],
    ggml_type: GgmlType,
) -> std::result::Result<(u64, u64), String> {
    let elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or("element count overflows")?;
    // A zero-dimensional tensor is a scalar in ggml (ne = [1, 1, 1, 1]).
    let (&row, rest) = dims.split_first().unwrap_or((&1, &[]));
    let row_bytes = ggml_type.row_bytes(row).ok_or_else(|| {
        format!(
            "row of {row} elements is not a whole number of {} blocks of {}",
            ggml_type.name(),
            ggml_type.block_size()
        )
    })?;
    let bytes = rest
        .iter()
        .try_fold(row_bytes, |acc, &d| acc.checked_mul(d))
        .ok_or("byte size overflows")?;
    Ok((elements, bytes))
}

/// Version and byte order from the raw version field: a little-endian file stores 1-3 in the
/// low byte, a big-endian one in the high byte.
fn detect_version(raw: [u8; 4]) -> Option<(u32, bool)> {
    let little = u32::from_le_bytes(raw);
    let big = u32::from_be_bytes(raw);
    if (1..=3).contains(&little) {
        Some((little, false))
    } else if (1..=3).contains(&big) {
        Some((big, true))
    } else {
        None
    }
}

/// `general.alignment` (default 32); it must be a non-zero power of two.
fn alignment(metadata: &Metadata, file: &Path) -> Result<u64> {
    let Some(entry) = metadata.entry("general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    match entry.value.as_u64() {
        Some(a) if a.is_power_of_two() => Ok(a),
        _ => Err(Error::parse(
            file,
            entry.offset,
            format!("general.alignment {:?} is not a power of two", entry.value),
        )),
    }
}

/// The first name (in sorted order) that occurs twice, with the offset of one occurrence.
pub(crate) fn first_duplicate<'n>(
    names: impl Iterator<Item = (&'n str, u64)>,
) -> Option<(&'n str, u64)> {
    let mut sorted: Vec<(&str, u64)> = names.collect();
    sorted.sort_unstable();
    sorted
        .windows(2)
        .find(|pair| pair[0].0 == pair[1].0)
        .map(|pair| pair[1])
}

/// GGUF strings are UTF-8; invalid bytes are replaced rather than rejected, as llama.cpp
/// does not validate them either.
fn utf8(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}
