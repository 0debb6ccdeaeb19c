//! The safetensors header: an 8-byte little-endian length, then that many bytes of JSON
//! describing every tensor (dtype, shape, byte range in the data section that follows).
//!
//! Only the header is read, never the data. A header-only file (the data section absent) parses
//! like the full file, so that models can be sized before they are downloaded; a data section
//! of any other length than the header describes is an error (a truncated download).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::json::key_offset;
use crate::files::json_error;
use crate::{Error, Result};

/// Largest JSON header accepted, as in the safetensors library (`MAX_HEADER_SIZE` in
/// huggingface/safetensors `safetensors/src/tensor.rs`).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Bytes before the JSON header (its length, a little-endian u64).
const LENGTH_PREFIX: u64 = 8;

/// Element types of safetensors, as named in headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dtype {
    /// Boolean, one byte each.
    #[serde(rename = "BOOL")]
    Bool,
    /// 4-bit float (e2m1), two per byte.
    #[serde(rename = "F4")]
    F4,
    /// 6-bit float (e2m3).
    #[serde(rename = "F6_E2M3")]
    F6E2M3,
    /// 6-bit float (e3m2).
    #[serde(rename = "F6_E3M2")]
    F6E3M2,
    /// Unsigned 8-bit integer (also the container of packed formats such as MXFP4 blocks).
    #[serde(rename = "U8")]
    U8,
    /// Signed 8-bit integer.
    #[serde(rename = "I8")]
    I8,
    /// 8-bit float (e5m2).
    #[serde(rename = "F8_E5M2")]
    F8E5M2,
    /// 8-bit float (e4m3), the FP8 of FP8 checkpoints.
    #[serde(rename = "F8_E4M3")]
    F8E4M3,
    /// 8-bit exponent-only float (e8m0), used for microscaling scales.
    #[serde(rename = "F8_E8M0")]
    F8E8M0,
    /// Signed 16-bit integer.
    #[serde(rename = "I16")]
    I16,
    /// Unsigned 16-bit integer.
    #[serde(rename = "U16")]
    U16,
    /// IEEE half precision.
    #[serde(rename = "F16")]
    F16,
    /// bfloat16.
    #[serde(rename = "BF16")]
    Bf16,
    /// Signed 32-bit integer (the container of AWQ/GPTQ packed int4 weights).
    #[serde(rename = "I32")]
    I32,
    /// Unsigned 32-bit integer.
    #[serde(rename = "U32")]
    U32,
    /// IEEE single precision.
    #[serde(rename = "F32")]
    F32,
    /// Complex of two f32.
    #[serde(rename = "C64")]
    C64,
    /// IEEE double precision.
    #[serde(rename = "F64")]
    F64,
    /// Signed 64-bit integer.
    #[serde(rename = "I64")]
    I64,
    /// Unsigned 64-bit integer.
    #[serde(rename = "U64")]
    U64,
}

impl Dtype {
    /// Every dtype, for look-up by name.
    const ALL: [Dtype; 20] = [
        Dtype::Bool,
        Dtype::F4,
        Dtype::F6E2M3,
        Dtype::F6E3M2,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8E5M2,
        Dtype::F8E4M3,
        Dtype::F8E8M0,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::Bf16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::C64,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// The name used in safetensors headers (`BF16`, `F8_E4M3`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::F4 => "F4",
            Dtype::F6E2M3 => "F6_E2M3",
            Dtype::F6E3M2 => "F6_E3M2",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E8M0 => "F8_E8M0",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::Bf16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::C64 => "C64",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    /// The dtype of a header name, `None` for a name safetensors does not define.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bits per element.
    pub fn bits(self) -> u64 {
        match self {
            Dtype::F4 => 4,
            Dtype::F6E2M3 | Dtype::F6E3M2 => 6,
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 | Dtype::F8E8M0 => {
                8
            }
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::Bf16 => 16,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 32,
            Dtype::C64 | Dtype::F64 | Dtype::I64 | Dtype::U64 => 64,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor as its header describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// Tensor name (`model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost dimension first (PyTorch order).
    pub shape: Vec<u64>,
    /// Stored elements: the product of the shape (packed formats count their containers).
    pub elements: u64,
    /// Data bytes (`data_offsets` end minus start, checked against shape × dtype size).
    pub bytes: u64,
    /// Start and end of the data, relative to the data section.
    pub data_offsets: [u64; 2],
    /// The file holding it, relative to the model directory.
    pub file: String,
}

/// The header of one safetensors file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetensorsFile {
    /// File name, relative to the model directory.
    pub name: String,
    /// Length of the JSON header in bytes.
    pub header_len: u64,
    /// Length of the data section the header describes.
    pub data_len: u64,
    /// Whether the data section is in the file (false for a header-only file).
    pub data_present: bool,
    /// The free-form `__metadata__` strings (`{"format": "pt"}`).
    pub metadata: BTreeMap<String, String>,
    /// The tensors, in data order.
    pub tensors: Vec<TensorInfo>,
}

impl SafetensorsFile {
    /// Reads the header of the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let (file, len) = crate::files::open_regular_file(path)?;
        Self::read(std::io::BufReader::new(file), len, path)
    }

    /// Reads a header from `reader`, positioned at the start of a file of `file_len` bytes;
    /// `origin` names the file in errors and in [`TensorInfo::file`].
    pub fn read(mut reader: impl Read, file_len: u64, origin: &Path) -> Result<Self> {
        let header_len = read_header_len(&mut reader, file_len, origin)?;
        let mut header = vec![0; header_len as usize];
        reader
            .read_exact(&mut header)
            .map_err(|e| Error::io(origin, e))?;
        let name = file_name(origin);
        let text = std::str::from_utf8(&header).map_err(|e| {
            Error::parse(
                origin,
                LENGTH_PREFIX + e.valid_up_to() as u64,
                "header is not UTF-8",
            )
        })?;
        let raw = parse_header_json(text, origin)?;
        let tensors = check_tensors(raw.tensors, text, origin, &name)?;
        let data_len = tensors.last().map_or(0, |t| t.data_offsets[1]);
        let data_present = data_section_present(file_len, header_len, data_len, origin)?;
        Ok(SafetensorsFile {
            name,
            header_len,
            data_len,
            data_present,
            metadata: raw.metadata,
            tensors,
        })
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Reads the length prefix and bounds it by the file size and [`MAX_HEADER_LEN`] before
/// anything is allocated.
fn read_header_len(reader: &mut impl Read, file_len: u64, origin: &Path) -> Result<u64> {
    if file_len < LENGTH_PREFIX {
        return Err(Error::parse(
            origin,
            0,
            format!("file has {file_len} bytes, fewer than the 8-byte header length"),
        ));
    }
    let mut prefix = [0; LENGTH_PREFIX as usize];
    reader
        .read_exact(&mut prefix)
        .map_err(|e| Error::io(origin, e))?;
    let len = u64::from_le_bytes(prefix);
    if len > MAX_HEADER_LEN {
        return Err(Error::parse(
            origin,
            0,
            format!("header length {len} exceeds the safetensors limit of {MAX_HEADER_LEN} bytes"),
        ));
    }
    if len > file_len - LENGTH_PREFIX {
        return Err(Error::parse(
            origin,
            0,
            format!("header length {len} runs past the end of the file ({file_len} bytes)"),
        ));
    }
    Ok(len)
}

/// Whether the data section is there: absent (header-only) or exactly as long as described.
fn data_section_present(
    file_len: u64,
    header_len: u64,
    data_len: u64,
    origin: &Path,
) -> Result<bool> {
    let data_start = LENGTH_PREFIX + header_len;
    let available = file_len - data_start;
    if available == data_len {
        return Ok(true);
    }
    if available == 0 {
        return Ok(false);
    }
    Err(Error::parse(
        origin,
        data_start,
        format!("data section has {available} bytes, the header describes {data_len}"),
    ))
}

/// A tensor entry as written in the header, before checking.
#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

#[derive(Default)]
struct RawHeader {
    metadata: BTreeMap<String, String>,
    tensors: Vec<(String, RawTensor)>,
}

/// Parses the header JSON; a malformed entry is reported at its position with the name of the
/// tensor whose entry was being read.
fn parse_header_json(text: &str, origin: &Path) -> Result<RawHeader> {
    let mut current = String::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let header = HeaderSeed {
        current: &mut current,
    }
    .deserialize(&mut de)
    .and_then(|h| de.end().map(|()| h));
    header.map_err(|e| {
        let err = json_error(text, origin, &e);
        let Error::Parse { file, offset, what } = err else {
            return err;
        };
        let what = if current.is_empty() {
            what
        } else {
            format!("entry `{current}`: {what}")
        };
        Error::Parse {
            file,
            offset: LENGTH_PREFIX + offset,
            what,
        }
    })
}

/// Reads the top-level header object, remembering which entry it is in.
struct HeaderSeed<'a> {
    current: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = RawHeader;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<RawHeader, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = RawHeader;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of tensor entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawHeader, A::Error> {
        let mut header = RawHeader::default();
        while let Some(key) = map.next_key::<String>()? {
            self.current.clone_from(&key);
            if key == "__metadata__" {
                header.metadata = map.next_value()?;
            } else {
                header.tensors.push((key, map.next_value()?));
            }
        }
        self.current.clear();
        Ok(header)
    }
}

/// Checks every entry (known dtype, shape × dtype size equal to its byte range) and that the
/// byte ranges tile the data section from 0 without gap or overlap, as safetensors requires.
fn check_tensors(
    raw: Vec<(String, RawTensor)>,
    text: &str,
    origin: &Path,
    file: &str,
) -> Result<Vec<TensorInfo>> {
    let entry_error = |name: &str, what: String| {
        let offset = LENGTH_PREFIX + key_offset(text, name).unwrap_or(0);
        Error::parse(origin, offset, format!("tensor `{name}`: {what}"))
    };
    let mut tensors = raw
        .into_iter()
        .map(|(name, raw)| {
            tensor_info(name.clone(), raw, file).map_err(|what| entry_error(&name, what))
        })
        .collect::<Result<Vec<_>>>()?;
    tensors.sort_by_key(|t| t.data_offsets);
    let mut end = 0;
    for t in &tensors {
        if t.data_offsets[0] != end {
            return Err(entry_error(
                &t.name,
                format!(
                    "data starts at {}, the previous tensor ends at {end} (gap or overlap)",
                    t.data_offsets[0]
                ),
            ));
        }
        end = t.data_offsets[1];
    }
    let mut names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
        return Err(entry_error(pair[0], "appears twice".into()));
    }
    Ok(tensors)
}

fn tensor_info(name: String, raw: RawTensor, file: &str) -> Result<TensorInfo, String> {
    let dtype =
        Dtype::from_name(&raw.dtype).ok_or_else(|| format!("unknown dtype `{}`", raw.dtype))?;
    let elements = raw
        .shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or("shape overflows 64 bits")?;
    let bits = elements
        .checked_mul(dtype.bits())
        .ok_or("size overflows 64 bits")?;
    if !bits.is_multiple_of(8) {
        return Err(format!(
            "{elements} elements of {dtype} do not fill whole bytes"
        ));
    }
    let [start, end] = raw.data_offsets;
    if end < start {
        return Err(format!(
            "data_offsets [{start}, {end}] end before they start"
        ));
    }
    if end - start != bits / 8 {
        return Err(format!(
            "data_offsets [{start}, {end}] hold {} bytes, shape {:?} of {dtype} needs {}",
            end - start,
            raw.shape,
            bits / 8
        ));
    }
    Ok(TensorInfo {
        name,
        dtype,
        shape: raw.shape,
        elements,
        bytes: bits / 8,
        data_offsets: raw.data_offsets,
        file: file.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names_round_trip() {
        for d in Dtype::ALL {
            assert_eq!(Dtype::from_name(d.name()), Some(d));
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                format!("\"{}\"", d.name())
            );
        }
        assert_eq!(Dtype::from_name("Q4_K"), None);
    }
}
