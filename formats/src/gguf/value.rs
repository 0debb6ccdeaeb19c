//! GGUF metadata values: the 13 value types, arrays (possibly nested or skipped) and strings.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The type tag of a metadata value (`gguf_type` in ggml's `gguf.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Tag 0.
    U8,
    /// Tag 1.
    I8,
    /// Tag 2.
    U16,
    /// Tag 3.
    I16,
    /// Tag 4.
    U32,
    /// Tag 5.
    I32,
    /// Tag 6.
    F32,
    /// Tag 7: one byte, 0 or 1.
    Bool,
    /// Tag 8: length-prefixed UTF-8.
    String,
    /// Tag 9: element type, count, elements.
    Array,
    /// Tag 10.
    U64,
    /// Tag 11.
    I64,
    /// Tag 12.
    F64,
}

impl ValueType {
    /// The type for a GGUF tag, `None` for an unknown tag.
    pub fn from_tag(tag: u32) -> Option<ValueType> {
        use ValueType::*;
        const TAGS: [ValueType; 13] = [
            U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64,
        ];
        TAGS.get(usize::try_from(tag).ok()?).copied()
    }

    /// The GGUF tag of this type.
    pub fn tag(self) -> u32 {
        self as u32
    }

    /// Size in bytes of one value of a fixed-size type; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The name used in messages and by `inspect` (`u32`, `string`, ...).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `f32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// A string (invalid UTF-8 is replaced by U+FFFD).
    String(String),
    /// An array, possibly nested, possibly with its elements skipped.
    Array(Array),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

impl Value {
    /// The type tag of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// An integer value of any width and sign as `i128`; `None` for other types.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A non-negative integer value of any width as `u64`; `None` for other types and
    /// negative values.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// A float or integer value as `f64`; `None` for other types.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            // Integers of metadata are small counts; precision loss above 2^53 is acceptable.
            _ => self.as_integer().map(|v| v as f64),
        }
    }

    /// The boolean value; `None` for other types.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The string value; `None` for other types.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(v) => Some(v),
            _ => None,
        }
    }

    /// The array value; `None` for other types.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// An array value: element type, length, and the elements unless they were skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Array {
    /// The element type.
    pub element_type: ValueType,
    /// Number of elements as stored in the file (also when the elements were skipped).
    pub len: u64,
    /// The elements, or [`ArrayData::Skipped`].
    pub data: ArrayData,
}

impl Array {
    /// Whether the elements were skipped while reading (see
    /// [`ReadOptions`](super::ReadOptions)).
    pub fn is_skipped(&self) -> bool {
        matches!(self.data, ArrayData::Skipped)
    }

    /// Elements as non-negative integers of any width; `None` when the elements are not
    /// integers, are negative, or were skipped.
    pub fn to_u64_vec(&self) -> Option<Vec<u64>> {
        fn all<T: Copy>(v: &[T], f: impl Fn(T) -> Option<u64>) -> Option<Vec<u64>> {
            v.iter().map(|x| f(*x)).collect()
        }
        match &self.data {
            ArrayData::U8(v) => all(v, |x| Some(x.into())),
            ArrayData::I8(v) => all(v, |x| u64::try_from(x).ok()),
            ArrayData::U16(v) => all(v, |x| Some(x.into())),
            ArrayData::I16(v) => all(v, |x| u64::try_from(x).ok()),
            ArrayData::U32(v) => all(v, |x| Some(x.into())),
            ArrayData::I32(v) => all(v, |x| u64::try_from(x).ok()),
            ArrayData::U64(v) => Some(v.clone()),
            ArrayData::I64(v) => all(v, |x| u64::try_from(x).ok()),
            ArrayData::Bool(v) => all(v, |x| Some(x.into())),
            _ => None,
        }
    }

    /// Elements as `f64` (floats or integers); `None` for other element types or skipped.
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        match &self.data {
            ArrayData::F32(v) => Some(v.iter().map(|x| f64::from(*x)).collect()),
            ArrayData::F64(v) => Some(v.clone()),
            _ => self
                .to_u64_vec()
                .map(|v| v.into_iter().map(|x| x as f64).collect()),
        }
    }

    /// The strings of a string array; `None` for other element types or skipped.
    pub fn strings(&self) -> Option<&StringList> {
        match &self.data {
            ArrayData::String(v) => Some(v),
            _ => None,
        }
    }
}

/// The elements of an array, typed, or `Skipped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrayData {
    /// The elements were not kept (only [`Array::len`] is known).
    Skipped,
    /// `u8` elements.
    U8(Vec<u8>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `u16` elements.
    U16(Vec<u16>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `u32` elements.
    U32(Vec<u32>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// `bool` elements.
    Bool(Vec<bool>),
    /// String elements.
    String(StringList),
    /// Nested arrays.
    Array(Vec<Array>),
    /// `u64` elements.
    U64(Vec<u64>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `f64` elements.
    F64(Vec<f64>),
}

/// A list of strings stored in one buffer (one allocation for a 150k-token vocabulary instead
/// of 150k).
///
/// The bytes are kept as read and checked for UTF-8 when a string is accessed: validating
/// 150k short strings while parsing would cost more than the rest of the parse, and
/// estimators only need the list's length. Serialises as a list of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Vec<String>", from = "Vec<String>")]
pub struct StringList {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl StringList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn with_capacity(strings: usize) -> Self {
        StringList {
            bytes: Vec::new(),
            ends: Vec::with_capacity(strings),
        }
    }

    /// Appends one string.
    pub fn push(&mut self, s: &str) {
        self.push_bytes(s.as_bytes());
    }

    /// Appends one string as raw bytes (GGUF strings should be, but are not always, UTF-8).
    pub fn push_bytes(&mut self, s: &[u8]) {
        self.bytes.extend_from_slice(s);
        self.ends.push(self.bytes.len());
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The raw bytes of the string at `index`.
    pub fn get_bytes(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1],
        };
        self.bytes.get(start..end)
    }

    /// The string at `index`; invalid UTF-8 is replaced by U+FFFD.
    pub fn get(&self, index: usize) -> Option<Cow<'_, str>> {
        self.get_bytes(index).map(String::from_utf8_lossy)
    }

    /// The strings in order; invalid UTF-8 is replaced by U+FFFD.
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl From<StringList> for Vec<String> {
    fn from(list: StringList) -> Self {
        list.iter().map(Cow::into_owned).collect()
    }
}

impl From<Vec<String>> for StringList {
    fn from(strings: Vec<String>) -> Self {
        let mut list = StringList::with_capacity(strings.len());
        strings.iter().for_each(|s| list.push(s));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_validated_one_by_one() {
        let mut list = StringList::new();
        list.push("Ġthe");
        // "Ġ" is C4 A0: split over two strings the bytes are valid together, not apart.
        list.push_bytes(b"a\xC4");
        list.push_bytes(b"\xA0b");
        let all: Vec<Cow<'_, str>> = list.iter().collect();
        assert_eq!(all, ["Ġthe", "a\u{FFFD}", "\u{FFFD}b"]);
        assert_eq!(list.get_bytes(2), Some(&b"\xA0b"[..]));
        assert_eq!(list.get(3), None);
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, "[\"Ġthe\",\"a\u{FFFD}\",\"\u{FFFD}b\"]");
    }
}
