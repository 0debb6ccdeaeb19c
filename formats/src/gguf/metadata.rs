//! The metadata key-values of a GGUF file, with typed getters.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::value::{Array, Value};
use crate::{Error, Result};

/// Most layers a model may declare. llama.cpp itself stops at 512 (`LLAMA_MAX_LAYERS` in
/// `src/llama-hparams.h`); the margin keeps future models readable while bounding what a
/// hostile `block_count` can make per-layer accessors allocate.
pub const MAX_LAYERS: u64 = 4096;

/// One metadata key-value and where it was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataEntry {
    /// The key, e.g. `llama.block_count`.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Byte offset of the key-value in its file (for error messages).
    pub offset: u64,
}

/// The metadata of a GGUF file, in file order, with typed getters.
///
/// Getters return `Ok(None)` for a missing key and [`Error::Parse`] (naming the file and the
/// key's offset) for a key of the wrong type. Integer getters accept every integer width and
/// sign as long as the value fits; float getters also accept integers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    file: PathBuf,
    entries: Vec<MetadataEntry>,
}

impl Metadata {
    /// Metadata read from `file` (named in errors).
    pub fn new(file: PathBuf, entries: Vec<MetadataEntry>) -> Self {
        Metadata { file, entries }
    }

    /// The file the metadata was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Number of key-values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no key-values.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key-values in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, MetadataEntry> {
        self.entries.iter()
    }

    /// The entry for `key`.
    pub fn entry(&self, key: &str) -> Option<&MetadataEntry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entry(key).map(|e| &e.value)
    }

    /// Whether any key starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.entries.iter().any(|e| e.key.starts_with(prefix))
    }

    fn typed<'m, T>(
        &'m self,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&'m Value) -> Option<T>,
    ) -> Result<Option<T>> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        convert(&entry.value).map(Some).ok_or_else(|| {
            Error::parse(
                &self.file,
                entry.offset,
                format!(
                    "metadata {key}: expected {expected}, found {} {}",
                    entry.value.value_type().name(),
                    short(&entry.value)
                ),
            )
        })
    }

    /// A non-negative integer of any width.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, "a non-negative integer", Value::as_u64)
    }

    /// A signed integer of any width.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>> {
        self.typed(key, "an integer", |v| {
            v.as_integer().and_then(|i| i64::try_from(i).ok())
        })
    }

    /// A float or integer.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        self.typed(key, "a number", Value::as_f64)
    }

    /// A boolean.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, "a bool", Value::as_bool)
    }

    /// A string.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        self.typed(key, "a string", Value::as_str)
    }

    /// An array (possibly with skipped elements).
    pub fn get_array(&self, key: &str) -> Result<Option<&Array>> {
        self.typed(key, "an array", Value::as_array)
    }

    /// The length of an array (known also when its elements were skipped).
    pub fn array_len(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.get_array(key)?.map(|a| a.len))
    }

    /// A non-negative integer that must be present.
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        self.get_u64(key)?.ok_or_else(|| self.missing(key))
    }

    /// A string that must be present.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.get_str(key)?.ok_or_else(|| self.missing(key))
    }

    /// The error for a required key that is absent (offset 0: the key is nowhere).
    pub fn missing(&self, key: &str) -> Error {
        Error::parse(&self.file, 0, format!("metadata key {key} is missing"))
    }

    /// A per-layer integer: either one integer for every layer, or an array of exactly
    /// `layers` integers (llama.cpp's `get_key_or_arr`). `layers` above [`MAX_LAYERS`] is
    /// an error (it usually comes from the file's `block_count`).
    pub fn get_per_layer(&self, key: &str, layers: u64) -> Result<Option<Vec<u64>>> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        let fail = |what: String| {
            Error::parse(&self.file, entry.offset, format!("metadata {key}: {what}"))
        };
        if layers > MAX_LAYERS {
            return Err(fail(format!(
                "{layers} layers (at most {MAX_LAYERS} are accepted)"
            )));
        }
        if let Some(v) = entry.value.as_u64() {
            return Ok(Some(vec![v; layers as usize]));
        }
        let array = entry.value.as_array().ok_or_else(|| {
            fail(format!(
                "expected an integer or an array, found {}",
                entry.value.value_type().name()
            ))
        })?;
        if array.len != layers {
            return Err(fail(format!(
                "array has {} elements for {layers} layers",
                array.len
            )));
        }
        array.to_u64_vec().map(Some).ok_or_else(|| {
            fail(format!(
                "array of {} is not a list of non-negative integers (or was skipped)",
                array.element_type.name()
            ))
        })
    }
}

/// A short rendering of a value for error messages.
fn short(value: &Value) -> String {
    match value {
        Value::Array(a) => format!("[{}; {}]", a.element_type.name(), a.len),
        Value::String(s) if s.len() > 40 => format!("{:?}...", &s[..s.floor_char_boundary(40)]),
        other => format!("{other:?}"),
    }
}
