//! Typed look-ups in the JSON files of a model directory, with errors that name the file, the
//! key and the byte offset.
//!
//! A file is read once and kept as text: the pass that checks its syntax also indexes its
//! top-level object (each key with the position of its value in the text). A look-up by key
//! path indexes the nested objects it goes through (kept for later look-ups) and deserialises
//! the value it ends at from its text. Values no look-up goes into (a 60 MB `id2label`, a long
//! list) cost nothing beyond the text, so a file costs about its size in memory; a
//! [`serde_json::Value`] of the whole file costs 5 to 10 times that (issue 18).
//!
//! When a value has the wrong type, serde_json's error on the value's text, shifted by the
//! value's position, gives the offset in the file: nothing is parsed again.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::files::{json_error, json_offset, read_text_file};
use crate::{Error, Result};

/// Largest JSON file read. The largest files are shard indexes: DeepSeek-V3's maps about
/// 91,000 tensors in under 10 MB.
pub(crate) const MAX_JSON_FILE: u64 = 64 << 20;

/// A JSON file checked for syntax, kept as text, with its origin for error reporting.
pub(crate) struct JsonDoc {
    text: String,
    origin: PathBuf,
    /// The entries of each object a look-up went into, by the object's position in `text`.
    objects: RefCell<Vec<(usize, Vec<Entry>)>>,
}

/// One key of an indexed object and where its value is in the text.
struct Entry {
    key: Key,
    value: Range<usize>,
}

/// An object key: where it is in the text, or decoded when it has escapes.
enum Key {
    At(Range<usize>),
    Escaped(Box<str>),
}

impl JsonDoc {
    /// Reads and parses `path`, refusing files larger than [`MAX_JSON_FILE`].
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let text = read_text_file(path, MAX_JSON_FILE)?;
        Self::parse(text, path)
    }

    /// Checks the syntax of `text`, reporting errors against `origin`. A top-level object is
    /// indexed in the same pass: every look-up starts there.
    pub(crate) fn parse(text: String, origin: &Path) -> Result<Self> {
        let start = text.len() - text.trim_ascii_start().len();
        let mut de = serde_json::Deserializer::from_str(&text);
        let objects = if text[start..].starts_with('{') {
            de.deserialize_map(Indexer { text: &text })
                .map(|entries| vec![(start, entries)])
        } else {
            IgnoredAny::deserialize(&mut de).map(|_| Vec::new())
        };
        let objects = objects
            .and_then(|objects| de.end().map(|()| objects))
            .map_err(|e| json_error(&text, origin, &e))?;
        Ok(JsonDoc {
            text,
            origin: origin.to_path_buf(),
            objects: RefCell::new(objects),
        })
    }

    /// The whole document as a [`Value`] (which costs several times the text).
    pub(crate) fn into_value(self) -> Result<Value> {
        serde_json::from_str(&self.text).map_err(|e| json_error(&self.text, &self.origin, &e))
    }

    /// The file the document came from.
    pub(crate) fn origin(&self) -> &Path {
        &self.origin
    }

    /// Byte offset of the first object key `key` in the file (0 when not found).
    pub(crate) fn key_offset(&self, key: &str) -> u64 {
        key_offset(&self.text, key).unwrap_or(0)
    }

    /// The text of the value at `path`, treating JSON `null` as absent. A path through a
    /// value that is not an object ends there, absent.
    pub(crate) fn at(&self, path: &[&str]) -> Option<&str> {
        self.text_at(path).filter(|text| *text != "null")
    }

    /// The text of the value at `path`, `null` included.
    fn text_at(&self, path: &[&str]) -> Option<&str> {
        let whole = self.text.trim_ascii();
        let start = self.text.len() - self.text.trim_ascii_start().len();
        let mut value = start..start + whole.len();
        for key in path {
            value = self.lookup(value, key)?;
        }
        Some(&self.text[value])
    }

    /// The value of `key` in the object at `object` (the text's range), indexing the object
    /// on its first look-up. The last of duplicate keys counts, as in a [`Value`].
    fn lookup(&self, object: Range<usize>, key: &str) -> Option<Range<usize>> {
        if !self.text[object.clone()].starts_with('{') {
            return None;
        }
        let mut objects = self.objects.borrow_mut();
        let at = match objects.iter().position(|(start, _)| *start == object.start) {
            Some(at) => at,
            None => {
                objects.push((object.start, self.index(object)));
                objects.len() - 1
            }
        };
        let entries = &objects[at].1;
        let entry = entries.iter().rev().find(|e| match &e.key {
            Key::At(range) => &self.text[range.clone()] == key,
            Key::Escaped(decoded) => &**decoded == key,
        })?;
        Some(entry.value.clone())
    }

    /// The entries of the object at `object`; none when it does not parse as one (the whole
    /// text was checked, so that does not happen).
    fn index(&self, object: Range<usize>) -> Vec<Entry> {
        let mut de = serde_json::Deserializer::from_str(&self.text[object]);
        de.deserialize_map(Indexer { text: &self.text })
            .unwrap_or_default()
    }

    /// The value at `path` as a `T`; `None` when absent or `null`, [`Error::Parse`] naming the
    /// key and its offset when present with another type.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &[&str]) -> Result<Option<T>> {
        let Some(value) = self.at(path) else {
            return Ok(None);
        };
        serde_json::from_str(value)
            .map(Some)
            .map_err(|e| self.value_error(path, value, &e))
    }

    /// Whether the value at `path` is an object; `false` when absent or `null`, an
    /// [`Error::Parse`] naming the key and its offset when present with another type.
    pub(crate) fn is_object(&self, path: &[&str]) -> Result<bool> {
        match self.at(path) {
            None => Ok(false),
            Some(value) if value.starts_with('{') => Ok(true),
            Some(value) => match serde_json::from_str::<serde_json::Map<String, Value>>(value) {
                Err(e) => Err(self.value_error(path, value, &e)),
                Ok(_) => Ok(true),
            },
        }
    }

    /// An [`Error::Parse`] for a problem with the value at `path` that is not a type error
    /// (a count of zero, an inconsistent array); the offset is that of the value (0 when
    /// absent).
    pub(crate) fn invalid(&self, path: &[&str], what: impl fmt::Display) -> Error {
        let offset = self.text_at(path).map_or(0, |value| self.offset_of(value));
        Error::parse(
            &self.origin,
            offset as u64,
            format!("`{}`: {what}", path.join(".")),
        )
    }

    /// Where `part`, a slice of the text, starts in it.
    fn offset_of(&self, part: &str) -> usize {
        part.as_ptr() as usize - self.text.as_ptr() as usize
    }

    /// serde_json's error `e` on `value` (the text of the value at `path`) as an error on the
    /// file: the offset and the line and column in its message are moved by the value's
    /// position.
    fn value_error(&self, path: &[&str], value: &str, e: &serde_json::Error) -> Error {
        let start = self.offset_of(value);
        let what = e.to_string();
        let what = match what.strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
        {
            Some(message) if e.line() > 0 => {
                let before = &self.text[..start];
                let line = before.matches('\n').count() + e.line();
                let column = if e.line() == 1 {
                    start - before.rfind('\n').map_or(0, |at| at + 1) + e.column()
                } else {
                    e.column()
                };
                format!("{message} at line {line} column {column}")
            }
            _ => what,
        };
        Error::parse(
            &self.origin,
            start as u64 + json_offset(value, e),
            format!("`{}`: {what}", path.join(".")),
        )
    }
}

/// Reads an object's keys and the positions of their values in `text` (which the
/// deserialiser reads a part of).
struct Indexer<'t> {
    text: &'t str,
}

impl Indexer<'_> {
    /// Where `part`, a slice of the text, starts in it.
    fn range_of(&self, part: &str) -> Range<usize> {
        let start = part.as_ptr() as usize - self.text.as_ptr() as usize;
        start..start + part.len()
    }
}

impl<'de> Visitor<'de> for Indexer<'de> {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Vec<Entry>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed(&self))? {
            let value: &RawValue = map.next_value()?;
            entries.push(Entry {
                key,
                value: self.range_of(value.get()),
            });
        }
        Ok(entries)
    }
}

/// An object key: its position when the text holds it as it is, else decoded.
struct KeySeed<'a, 't>(&'a Indexer<'t>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_, 'de> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, 'de> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> std::result::Result<Key, E> {
        Ok(Key::At(self.0.range_of(key)))
    }

    fn visit_str<E>(self, key: &str) -> std::result::Result<Key, E> {
        Ok(Key::Escaped(key.into()))
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

    /// A type error found in a value's text reads as serde_json's error on the whole file:
    /// the same offset, and the line and column of the file in its message, whether the error
    /// is on the value's first line or a later one.
    #[test]
    fn a_type_error_is_reported_as_on_the_whole_file() {
        #[derive(Debug, Deserialize)]
        struct Section {
            #[serde(rename = "layers")]
            _layers: Option<Vec<u64>>,
        }
        #[derive(Debug, Deserialize)]
        struct File {
            #[serde(rename = "text_config")]
            _text_config: Section,
        }
        let text =
            "{\n  \"a\": 1,\n  \"text_config\": {\"b\": 2, \"layers\": [1,\n    2, \"x\"]}\n}";
        let whole = serde_json::from_str::<File>(text).unwrap_err();
        let Err(Error::Parse { offset, what, .. }) =
            doc(text).get::<Vec<u64>>(&["text_config", "layers"])
        else {
            panic!("a string in a list of numbers");
        };
        assert_eq!(what, format!("`text_config.layers`: {whole}"));
        assert_eq!(offset, json_offset(text, &whole));
        let text = "{\n  \"text_config\": {\"b\": 2, \"layers\": 7}}";
        let whole = serde_json::from_str::<File>(text).unwrap_err();
        let Err(Error::Parse { offset, what, .. }) =
            doc(text).get::<Vec<u64>>(&["text_config", "layers"])
        else {
            panic!("a number for a list");
        };
        assert_eq!(what, format!("`text_config.layers`: {whole}"));
        assert_eq!(offset, json_offset(text, &whole));
    }

    #[test]
    fn null_and_missing_are_none() {
        let d = doc(r#"{"q_lora_rank": null}"#);
        assert_eq!(d.get::<u64>(&["q_lora_rank"]).unwrap(), None);
        assert_eq!(d.get::<u64>(&["kv_lora_rank"]).unwrap(), None);
    }

    #[test]
    fn look_ups_read_escaped_and_duplicate_keys_as_a_value_does() {
        let text = r#"{"a\u0062": {"c": 1, "c": 2}, "s": "{\"c\": 3}", "n": [1, {"c": 4}]}"#;
        let d = doc(text);
        let whole: Value = serde_json::from_str(text).unwrap();
        for path in [&["ab", "c"][..], &["s", "c"], &["n", "c"], &["ab"], &["x"]] {
            let by_value = path.iter().try_fold(&whole, |v, k| v.get(k)).cloned();
            assert_eq!(d.get::<Value>(path).unwrap(), by_value, "{path:?}");
        }
        assert!(d.is_object(&["ab"]).unwrap());
        assert!(!d.is_object(&["x"]).unwrap());
        let Err(Error::Parse { offset, what, .. }) = d.is_object(&["n"]) else {
            panic!("an array is not an object");
        };
        assert!(what.starts_with("`n`: invalid type: sequence"), "{what}");
        let value_at = text.find('[').unwrap() as u64;
        assert!((value_at - 1..=value_at).contains(&offset), "{offset}");
    }

    #[test]
    fn a_syntax_error_in_a_value_no_look_up_reads_is_reported() {
        let text = "{\"hidden_size\": 1,\n \"id2label\": {\"0\": \"a\" \"1\": \"b\"}}";
        let Err(Error::Parse { offset, .. }) = JsonDoc::parse(text.into(), Path::new("c.json"))
        else {
            panic!("malformed JSON accepted");
        };
        assert_eq!(offset, text.find("\"1\"").unwrap() as u64);
    }

    #[test]
    fn key_offset_skips_values_that_look_like_keys() {
        let text = r#"{"__metadata__":{"x":"a.weight"},"a.weight":{}}"#;
        assert_eq!(key_offset(text, "a.weight"), Some(33));
        assert_eq!(key_offset(text, "b.weight"), None);
    }
}
