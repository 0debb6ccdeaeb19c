//! Typed look-ups in the JSON files of a model directory, with errors that name the file, the
//! key and the byte offset.
//!
//! Files are parsed once into a [`serde_json::Value`]; keys are then read by path. `Value` keeps
//! no positions, so when a key has the wrong type the text is deserialised a second time along
//! that path only, and serde_json's own error (with line and column) gives the offset. That
//! second pass runs only on the error path.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::files::{json_error, read_text_file};
use crate::{Error, Result};

/// Largest JSON file read. The largest files are shard indexes: DeepSeek-V3's maps about
/// 91,000 tensors in under 10 MB.
pub(crate) const MAX_JSON_FILE: u64 = 64 << 20;

/// A parsed JSON file that remembers its text and origin for error reporting.
pub(crate) struct JsonDoc {
    text: String,
    origin: PathBuf,
    value: Value,
}

impl JsonDoc {
    /// Reads and parses `path`, refusing files larger than [`MAX_JSON_FILE`].
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let text = read_text_file(path, MAX_JSON_FILE)?;
        Self::parse(text, path)
    }

    /// Parses `text`, reporting syntax errors against `origin`.
    pub(crate) fn parse(text: String, origin: &Path) -> Result<Self> {
        let value = serde_json::from_str(&text).map_err(|e| json_error(&text, origin, &e))?;
        Ok(JsonDoc {
            text,
            origin: origin.to_path_buf(),
            value,
        })
    }

    /// The whole document, without the text.
    pub(crate) fn into_value(self) -> Value {
        self.value
    }

    /// The file the document came from.
    pub(crate) fn origin(&self) -> &Path {
        &self.origin
    }

    /// Byte offset of the first object key `key` in the file (0 when not found).
    pub(crate) fn key_offset(&self, key: &str) -> u64 {
        key_offset(&self.text, key).unwrap_or(0)
    }

    /// The value at `path`, treating JSON `null` as absent.
    pub(crate) fn at(&self, path: &[&str]) -> Option<&Value> {
        let value = path
            .iter()
            .try_fold(&self.value, |value, key| value.get(key))?;
        (!value.is_null()).then_some(value)
    }

    /// The value at `path` as a `T`; `None` when absent or `null`, [`Error::Parse`] naming the
    /// key and its offset when present with another type.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &[&str]) -> Result<Option<T>> {
        let Some(value) = self.at(path) else {
            return Ok(None);
        };
        T::deserialize(value)
            .map(Some)
            .map_err(|_| self.type_error::<T>(path))
    }

    /// An [`Error::Parse`] for a problem with the value at `path` that is not a type error
    /// (a count of zero, an inconsistent array); the offset is that of the value.
    pub(crate) fn invalid(&self, path: &[&str], what: impl fmt::Display) -> Error {
        let offset = match self.locate::<Reject>(path) {
            Error::Parse { offset, .. } => offset,
            _ => 0,
        };
        Error::parse(
            &self.origin,
            offset,
            format!("`{}`: {what}", path.join(".")),
        )
    }

    /// The parse error serde_json reports when the value at `path` is read as a `T`.
    fn type_error<T: DeserializeOwned>(&self, path: &[&str]) -> Error {
        match self.locate::<T>(path) {
            Error::Parse { file, offset, what } => Error::Parse {
                file,
                offset,
                what: format!("`{}`: {what}", path.join(".")),
            },
            other => other,
        }
    }

    /// Deserialises the text along `path` only, as a `T` at its end, and returns the error.
    fn locate<T: DeserializeOwned>(&self, path: &[&str]) -> Error {
        let mut de = serde_json::Deserializer::from_str(&self.text);
        let seed = AlongPath::<T> {
            path,
            leaf: PhantomData,
        };
        match seed.deserialize(&mut de) {
            Err(e) => json_error(&self.text, &self.origin, &e),
            Ok(()) => Error::parse(
                &self.origin,
                0,
                format!("`{}` has an unexpected value", path.join(".")),
            ),
        }
    }
}

/// A leaf type that refuses any value, used to find a value's offset.
struct Reject;

impl<'de> Deserialize<'de> for Reject {
    fn deserialize<D: Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
        Err(serde::de::Error::custom("rejected"))
    }
}

/// Walks nested objects along `path` and deserialises the value at its end as `T`; every other
/// value is skipped without allocation.
struct AlongPath<'p, T> {
    path: &'p [&'p str],
    leaf: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for AlongPath<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        if self.path.is_empty() {
            T::deserialize(d).map(drop)
        } else {
            d.deserialize_map(self)
        }
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for AlongPath<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with key `{}`", self.path[0])
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == self.path[0] {
                map.next_value_seed(AlongPath::<T> {
                    path: &self.path[1..],
                    leaf: PhantomData,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Byte offset of the object key `key` in `text` (the first occurrence of the key as JSON
/// writes it, followed by a colon), or `None` when it cannot be found. Used for errors about
/// entries of flat objects (safetensors headers, index weight maps) found after parsing.
pub(crate) fn key_offset(text: &str, key: &str) -> Option<u64> {
    let quoted = serde_json::to_string(key).ok()?;
    let mut from = 0;
    while let Some(found) = text[from..].find(&quoted) {
        let at = from + found;
        let rest = text[at + quoted.len()..].trim_start();
        if rest.starts_with(':') {
            return Some(at as u64);
        }
        from = at + quoted.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> JsonDoc {
        JsonDoc::parse(text.to_owned(), Path::new("config.json")).unwrap()
    }

    #[test]
    fn wrong_type_names_key_and_points_at_value() {
        let text =
            "{\n  \"a\": {\"hidden_size\": 1},\n  \"text_config\": {\"hidden_size\": \"4096\"}\n}";
        let err = doc(text)
            .get::<u64>(&["text_config", "hidden_size"])
            .unwrap_err();
        let Error::Parse { offset, what, .. } = err else {
            panic!("not a parse error: {err:?}");
        };
        assert!(what.contains("text_config.hidden_size"), "{what}");
        let value_at = text.find("\"4096\"").unwrap() as u64;
        assert!(
            (value_at..=value_at + 6).contains(&offset),
            "offset {offset}, value at {value_at}"
        );
    }

    #[test]
    fn null_and_missing_are_none() {
        let d = doc(r#"{"q_lora_rank": null}"#);
        assert_eq!(d.get::<u64>(&["q_lora_rank"]).unwrap(), None);
        assert_eq!(d.get::<u64>(&["kv_lora_rank"]).unwrap(), None);
    }

    #[test]
    fn key_offset_skips_values_that_look_like_keys() {
        let text = r#"{"__metadata__":{"x":"a.weight"},"a.weight":{}}"#;
        assert_eq!(key_offset(text, "a.weight"), Some(33));
        assert_eq!(key_offset(text, "b.weight"), None);
    }
}
