//! Write-then-read round trips through a small test-only GGUF writer (all 13 value types,
//! nested arrays, random tensors, both byte orders, versions 1 to 3), and hostile inputs.

use std::path::Path;

use inferkit_formats::Error;
use inferkit_formats::gguf::{
    Array, ArrayData, ByteOrder, GgmlType, GgufHeader, GgufModel, ReadOptions, StringList, Value,
    ValueType,
};
use proptest::prelude::*;

/// A minimal GGUF writer, written from the format description (ggml `docs/gguf.md`).
struct Writer {
    version: u32,
    big: bool,
    out: Vec<u8>,
}

macro_rules! put {
    ($($name:ident: $t:ty),*) => {$(
        fn $name(&mut self, v: $t) -> &mut Self {
            let bytes = if self.big { v.to_be_bytes() } else { v.to_le_bytes() };
            self.out.extend_from_slice(&bytes);
            self
        }
    )*};
}

impl Writer {
    fn new(version: u32, big: bool) -> Self {
        let mut w = Writer {
            version,
            big,
            out: b"GGUF".to_vec(),
        };
        w.u32(version);
        w
    }

    put!(u8: u8, i8: i8, u16: u16, i16: i16, u32: u32, i32: i32, u64: u64, i64: i64, f32: f32, f64: f64);

    /// A count or length: u32 in v1, u64 after.
    fn len(&mut self, n: u64) -> &mut Self {
        if self.version == 1 {
            self.u32(n as u32)
        } else {
            self.u64(n)
        }
    }

    fn string(&mut self, s: &str) -> &mut Self {
        self.len(s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
        self
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::U8(v) => {
                self.u8(*v);
            }
            Value::I8(v) => {
                self.i8(*v);
            }
            Value::U16(v) => {
                self.u16(*v);
            }
            Value::I16(v) => {
                self.i16(*v);
            }
            Value::U32(v) => {
                self.u32(*v);
            }
            Value::I32(v) => {
                self.i32(*v);
            }
            Value::F32(v) => {
                self.f32(*v);
            }
            Value::Bool(v) => {
                self.u8(u8::from(*v));
            }
            Value::String(v) => {
                self.string(v);
            }
            Value::Array(a) => self.array(a),
            Value::U64(v) => {
                self.u64(*v);
            }
            Value::I64(v) => {
                self.i64(*v);
            }
            Value::F64(v) => {
                self.f64(*v);
            }
        }
    }

    fn array(&mut self, a: &Array) {
        self.u32(a.element_type.tag()).len(a.len);
        match &a.data {
            ArrayData::Skipped => unreachable!("the writer writes whole arrays"),
            ArrayData::U8(v) => v.iter().for_each(|x| {
                self.u8(*x);
            }),
            ArrayData::I8(v) => v.iter().for_each(|x| {
                self.i8(*x);
            }),
            ArrayData::U16(v) => v.iter().for_each(|x| {
                self.u16(*x);
            }),
            ArrayData::I16(v) => v.iter().for_each(|x| {
                self.i16(*x);
            }),
            ArrayData::U32(v) => v.iter().for_each(|x| {
                self.u32(*x);
            }),
            ArrayData::I32(v) => v.iter().for_each(|x| {
                self.i32(*x);
            }),
            ArrayData::F32(v) => v.iter().for_each(|x| {
                self.f32(*x);
            }),
            ArrayData::Bool(v) => v.iter().for_each(|x| {
                self.u8(u8::from(*x));
            }),
            ArrayData::String(v) => v.iter().for_each(|x| {
                self.string(&x);
            }),
            ArrayData::Array(v) => v.iter().for_each(|x| self.array(x)),
            ArrayData::U64(v) => v.iter().for_each(|x| {
                self.u64(*x);
            }),
            ArrayData::I64(v) => v.iter().for_each(|x| {
                self.i64(*x);
            }),
            ArrayData::F64(v) => v.iter().for_each(|x| {
                self.f64(*x);
            }),
        }
    }

    fn kv(&mut self, key: &str, value: &Value) -> &mut Self {
        self.string(key).u32(value.value_type().tag());
        self.value(value);
        self
    }

    fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Self {
        self.string(name).u32(dims.len() as u32);
        for d in dims {
            self.len(*d);
        }
        self.u32(type_id).u64(offset)
    }
}

/// A test tensor: name, dims, type.
type Tensor = (String, Vec<u64>, GgmlType);

/// Writes a complete header (and its alignment padding) of the given content.
fn write_gguf(
    version: u32,
    big: bool,
    alignment: Option<u32>,
    kvs: &[(String, Value)],
    tensors: &[Tensor],
) -> Vec<u8> {
    let mut w = Writer::new(version, big);
    w.len(tensors.len() as u64)
        .len(kvs.len() as u64 + u64::from(alignment.is_some()));
    if let Some(a) = alignment {
        w.kv("general.alignment", &Value::U32(a));
    }
    for (k, v) in kvs {
        w.kv(k, v);
    }
    let align = u64::from(alignment.unwrap_or(32));
    let mut offset = 0;
    for (name, dims, ty) in tensors {
        w.tensor(name, dims, ty.id(), offset);
        offset = (offset + expected_bytes(dims, *ty)).next_multiple_of(align);
    }
    let padded = w.out.len().next_multiple_of(align as usize);
    w.out.resize(padded, 0);
    w.out
}

/// ggml_nbytes of a contiguous tensor, computed here independently of the reader.
fn expected_bytes(dims: &[u64], ty: GgmlType) -> u64 {
    let ne: Vec<u64> = if dims.is_empty() {
        vec![1]
    } else {
        dims.to_vec()
    };
    ne[0] / ty.block_size() * ty.type_size() * ne[1..].iter().product::<u64>()
}

fn skip_large(value: &Value, limit: u64) -> Value {
    match value {
        Value::Array(a) if a.len > limit => Value::Array(Array {
            element_type: a.element_type,
            len: a.len,
            data: ArrayData::Skipped,
        }),
        Value::Array(Array {
            element_type,
            len,
            data: ArrayData::Array(inner),
        }) => Value::Array(Array {
            element_type: *element_type,
            len: *len,
            data: ArrayData::Array(
                inner
                    .iter()
                    .map(|a| match skip_large(&Value::Array(a.clone()), limit) {
                        Value::Array(a) => a,
                        _ => unreachable!(),
                    })
                    .collect(),
            ),
        }),
        other => other.clone(),
    }
}

fn string() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.\u{e9}\u{4e2d}\u{1f600}]{0,12}"
}

fn leaf_array() -> impl Strategy<Value = Array> {
    use prop::collection::vec;
    let n = 0..6usize;
    prop_oneof![
        vec(any::<u8>(), n.clone()).prop_map(ArrayData::U8),
        vec(any::<i8>(), n.clone()).prop_map(ArrayData::I8),
        vec(any::<u16>(), n.clone()).prop_map(ArrayData::U16),
        vec(any::<i16>(), n.clone()).prop_map(ArrayData::I16),
        vec(any::<u32>(), n.clone()).prop_map(ArrayData::U32),
        vec(any::<i32>(), n.clone()).prop_map(ArrayData::I32),
        vec(prop::num::f32::NORMAL, n.clone()).prop_map(ArrayData::F32),
        vec(any::<bool>(), n.clone()).prop_map(ArrayData::Bool),
        vec(string(), n.clone()).prop_map(|v| {
            let mut list = StringList::new();
            v.iter().for_each(|s| list.push(s));
            ArrayData::String(list)
        }),
        vec(any::<u64>(), n.clone()).prop_map(ArrayData::U64),
        vec(any::<i64>(), n.clone()).prop_map(ArrayData::I64),
        vec(prop::num::f64::NORMAL, n).prop_map(ArrayData::F64),
    ]
    .prop_map(array_of)
}

fn array_of(data: ArrayData) -> Array {
    let (element_type, len) = match &data {
        ArrayData::Skipped => unreachable!(),
        ArrayData::U8(v) => (ValueType::U8, v.len()),
        ArrayData::I8(v) => (ValueType::I8, v.len()),
        ArrayData::U16(v) => (ValueType::U16, v.len()),
        ArrayData::I16(v) => (ValueType::I16, v.len()),
        ArrayData::U32(v) => (ValueType::U32, v.len()),
        ArrayData::I32(v) => (ValueType::I32, v.len()),
        ArrayData::F32(v) => (ValueType::F32, v.len()),
        ArrayData::Bool(v) => (ValueType::Bool, v.len()),
        ArrayData::String(v) => (ValueType::String, v.len()),
        ArrayData::Array(v) => (ValueType::Array, v.len()),
        ArrayData::U64(v) => (ValueType::U64, v.len()),
        ArrayData::I64(v) => (ValueType::I64, v.len()),
        ArrayData::F64(v) => (ValueType::F64, v.len()),
    };
    Array {
        element_type,
        len: len as u64,
        data,
    }
}

fn array() -> impl Strategy<Value = Array> {
    leaf_array().prop_recursive(3, 24, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(|v| array_of(ArrayData::Array(v)))
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<i8>().prop_map(Value::I8),
        any::<u16>().prop_map(Value::U16),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        prop::num::f32::NORMAL.prop_map(Value::F32),
        any::<bool>().prop_map(Value::Bool),
        string().prop_map(Value::String),
        array().prop_map(Value::Array),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        prop::num::f64::NORMAL.prop_map(Value::F64),
    ]
}

fn tensors() -> impl Strategy<Value = Vec<Tensor>> {
    let types: Vec<GgmlType> = GgmlType::all().collect();
    let tensor = (
        prop::sample::select(types),
        prop::collection::vec(1..5u64, 0..=4),
        1..4u64,
        "[a-z.]{1,10}",
    );
    prop::collection::vec(tensor, 0..8).prop_map(|ts| {
        ts.into_iter()
            .enumerate()
            .map(|(i, (ty, mut dims, blocks, name))| {
                if let Some(first) = dims.first_mut() {
                    *first = blocks * ty.block_size();
                } else if ty.block_size() > 1 {
                    dims.push(ty.block_size());
                }
                (format!("t{i}.{name}"), dims, ty)
            })
            .collect()
    })
}

fn metadata() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::btree_map("k\\.[a-z_.]{0,10}", value(), 0..10)
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn write_then_read(
        version in 1..=3u32,
        big in any::<bool>(),
        alignment in prop::option::of(prop::sample::select(vec![1u32, 8, 64, 256])),
        kvs in metadata(),
        tensors in tensors(),
        limit in 0..4u64,
    ) {
        let bytes = write_gguf(version, big, alignment, &kvs, &tensors);
        let file = Path::new("roundtrip.gguf");
        let header = GgufHeader::from_slice(&bytes, file, &ReadOptions::full()).unwrap();
        prop_assert_eq!(header.version, version);
        prop_assert_eq!(header.byte_order, if big { ByteOrder::Big } else { ByteOrder::Little });
        prop_assert_eq!(header.alignment, u64::from(alignment.unwrap_or(32)));
        prop_assert_eq!(header.data_offset, bytes.len() as u64);
        let skip = usize::from(alignment.is_some());
        let read: Vec<(String, Value)> = header.metadata.iter().skip(skip).map(|e| (e.key.clone(), e.value.clone())).collect();
        prop_assert_eq!(&read, &kvs);
        prop_assert_eq!(header.tensors.len(), tensors.len());
        for (got, (name, dims, ty)) in header.tensors.iter().zip(&tensors) {
            prop_assert_eq!(&got.name, name);
            prop_assert_eq!(&got.dims, dims);
            prop_assert_eq!(got.ggml_type, *ty);
            prop_assert_eq!(got.bytes, expected_bytes(dims, *ty));
            prop_assert_eq!(got.elements, dims.iter().product::<u64>());
        }

        // Skipping arrays longer than `limit` changes those arrays and nothing else, and the
        // `Read` path agrees with the slice path.
        let options = ReadOptions { keep_arrays_up_to: limit };
        let skipped = GgufHeader::read(&bytes[..], None, file, &options).unwrap();
        let expected: Vec<Value> = kvs.iter().map(|(_, v)| skip_large(v, limit)).collect();
        let got: Vec<Value> = skipped.metadata.iter().skip(skip).map(|e| e.value.clone()).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(skipped.tensors, header.tensors);
        prop_assert_eq!(skipped.data_offset, header.data_offset);
    }

    /// Arbitrary bytes after a valid start never panic and never claim more than they hold.
    #[test]
    fn garbage_never_panics(version in 1..=3u32, big in any::<bool>(), tail in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = Writer::new(version, big).out;
        bytes.extend_from_slice(&tail);
        let result = GgufHeader::from_slice(&bytes, Path::new("garbage"), &ReadOptions::full());
        if let Err(e) = result {
            prop_assert!(matches!(e, Error::Parse { offset, .. } if offset <= bytes.len() as u64), "{}", e);
        }
    }
}

fn parse_error(bytes: &[u8]) -> (u64, String) {
    match GgufHeader::from_slice(bytes, Path::new("bad.gguf"), &ReadOptions::default()) {
        Err(Error::Parse { file, offset, what }) => {
            assert_eq!(file, Path::new("bad.gguf"));
            (offset, what)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn one_tensor(type_id: u32, dims: &[u64]) -> Vec<u8> {
    let mut w = Writer::new(3, false);
    w.u64(1)
        .u64(0)
        .tensor("blk.0.ffn_up.weight", dims, type_id, 0);
    w.out
}

#[test]
fn unknown_and_removed_types_name_the_tensor() {
    let (offset, what) = parse_error(&one_tensor(42, &[256, 2]));
    assert_eq!(what, "tensor blk.0.ffn_up.weight: unknown ggml type 42");
    assert_eq!(offset, 24 + (8 + 19) + 4 + 16);
    let (_, what) = parse_error(&one_tensor(31, &[256, 2]));
    assert!(
        what.contains("blk.0.ffn_up.weight")
            && what.contains("Q4_0_4_4")
            && what.contains("removed"),
        "{what}"
    );
}

#[test]
fn rows_must_be_whole_blocks() {
    let (_, what) = parse_error(&one_tensor(GgmlType::Q4K.id(), &[100, 2]));
    assert!(
        what.contains("not a whole number of q4_K blocks of 256"),
        "{what}"
    );
    let (_, what) = parse_error(&one_tensor(0, &[1, 2, 3, 4, 5]));
    assert!(what.contains("5 dimensions"), "{what}");
    let (_, what) = parse_error(&one_tensor(0, &[u64::MAX / 2, 4]));
    assert!(
        what.contains("overflows") || what.contains("out of range"),
        "{what}"
    );
}

#[test]
fn newest_types_have_their_sizes() {
    let header = GgufHeader::from_slice(
        &one_tensor(GgmlType::NVFP4.id(), &[128, 3]),
        Path::new("x"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(header.tensors[0].bytes, 2 * 36 * 3);
    let header = GgufHeader::from_slice(
        &one_tensor(GgmlType::BF16.id(), &[4096, 4096]),
        Path::new("x"),
        &ReadOptions::default(),
    )
    .unwrap();
    // gguf-rs computes BF16 256x too small; ggml: 2 bytes per element.
    assert_eq!(header.tensors[0].bytes, 4096 * 4096 * 2);
}

#[test]
fn hostile_counts_and_lengths_are_refused_before_allocation() {
    let mut w = Writer::new(3, false);
    w.u64(u64::MAX).u64(0);
    assert!(parse_error(&w.out).1.contains("tensor count"));

    let mut w = Writer::new(3, false);
    w.u64(0).u64(1).u64(u64::MAX - 3).u64(0).u64(0);
    let (offset, what) = parse_error(&w.out);
    assert_eq!(offset, 24);
    assert!(what.contains("metadata key"), "{what}");

    let mut w = Writer::new(3, false);
    w.u64(0)
        .u64(1)
        .string("tokenizer.ggml.tokens")
        .u32(9)
        .u32(8)
        .u64(1 << 60);
    assert!(parse_error(&w.out).1.contains("cannot fit"));

    // Through `Read` with an unknown length nothing is reserved up front: the huge array
    // simply runs out of input.
    let result = GgufHeader::read(
        &w.out[..],
        None,
        Path::new("bad.gguf"),
        &ReadOptions::full(),
    );
    assert!(matches!(result, Err(Error::Parse { .. })));
}

#[test]
fn malformed_headers() {
    assert!(parse_error(b"GGML\x03\0\0\0").1.contains("not a GGUF file"));
    assert!(
        parse_error(b"GGUF\x04\0\0\0")
            .1
            .contains("unsupported GGUF version")
    );
    assert_eq!(parse_error(b"GGU").0, 0);

    let mut w = Writer::new(3, false);
    w.u64(0)
        .u64(2)
        .kv("a", &Value::U8(1))
        .kv("a", &Value::U8(2));
    assert!(parse_error(&w.out).1.contains("duplicate metadata key a"));

    let mut w = Writer::new(3, false);
    w.u64(2)
        .u64(0)
        .tensor("x", &[32], 0, 0)
        .tensor("x", &[32], 0, 128);
    assert!(parse_error(&w.out).1.contains("duplicate tensor name x"));

    let mut w = Writer::new(3, false);
    w.u64(0).u64(1).kv("general.alignment", &Value::U32(48));
    assert!(parse_error(&w.out).1.contains("power of two"));

    let mut w = Writer::new(3, false);
    w.u64(1).u64(0).tensor("x", &[32], 0, 7);
    assert!(
        parse_error(&w.out)
            .1
            .contains("not a multiple of the alignment")
    );

    let mut w = Writer::new(3, false);
    w.u64(0).u64(1).string("b").u32(7).u8(2);
    assert!(parse_error(&w.out).1.contains("neither 0 nor 1"));

    let mut w = Writer::new(3, false);
    w.u64(0).u64(1).string("v").u32(13);
    assert!(parse_error(&w.out).1.contains("unknown value type 13"));

    // Arrays nested 17 deep.
    let mut w = Writer::new(3, false);
    w.u64(0).u64(1).string("deep").u32(9);
    for _ in 0..17 {
        w.u32(9).u64(1);
    }
    assert!(parse_error(&w.out).1.contains("nested deeper than 16"));
}

#[test]
fn typed_getters_report_wrong_types_with_the_key_offset() {
    let kvs = vec![
        ("llama.block_count".to_owned(), Value::String("32".into())),
        (
            "general.architecture".to_owned(),
            Value::String("llama".into()),
        ),
        ("llama.attention.head_count".to_owned(), Value::I32(-1)),
    ];
    let bytes = write_gguf(3, false, None, &kvs, &[]);
    let header =
        GgufHeader::from_slice(&bytes, Path::new("m.gguf"), &ReadOptions::default()).unwrap();
    let model = GgufModel::from_headers(vec![("m.gguf".into(), header)]).unwrap();
    match model.block_count() {
        Err(Error::Parse { offset, what, .. }) => {
            assert_eq!(offset, 24);
            assert!(
                what.contains("llama.block_count: expected a non-negative integer, found string"),
                "{what}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        model
            .metadata()
            .get_i64("llama.attention.head_count")
            .unwrap()
            == Some(-1)
    );
    assert!(
        model
            .metadata()
            .get_u64("llama.attention.head_count")
            .is_err()
    );
    assert!(
        matches!(model.embedding_length(), Err(Error::Parse { what, .. }) if what.contains("llama.embedding_length is missing"))
    );
}

fn model_of(kvs: &[(&str, Value)], tensors: &[Tensor]) -> GgufModel {
    let kvs: Vec<(String, Value)> = kvs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let bytes = write_gguf(3, false, None, &kvs, tensors);
    let header =
        GgufHeader::from_slice(&bytes, Path::new("m.gguf"), &ReadOptions::default()).unwrap();
    GgufModel::from_headers(vec![("m.gguf".into(), header)]).unwrap()
}

fn str_value(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn u32_array(values: &[u32]) -> Value {
    Value::Array(array_of(ArrayData::U32(values.to_vec())))
}

/// DeepSeek-V3-style metadata (values from its config.json as llama.cpp converts it): MLA,
/// MoE, YaRN rope scaling, and a per-layer KV head array.
#[test]
fn mla_moe_and_rope_scaling_accessors() {
    let model = model_of(
        &[
            ("general.architecture", str_value("deepseek2")),
            ("deepseek2.block_count", Value::U32(4)),
            ("deepseek2.embedding_length", Value::U32(7168)),
            ("deepseek2.attention.head_count", Value::U32(128)),
            (
                "deepseek2.attention.head_count_kv",
                u32_array(&[1, 1, 1, 1]),
            ),
            ("deepseek2.attention.key_length", Value::U32(576)),
            ("deepseek2.attention.value_length", Value::U32(512)),
            ("deepseek2.attention.key_length_mla", Value::U32(192)),
            ("deepseek2.attention.value_length_mla", Value::U32(128)),
            ("deepseek2.attention.q_lora_rank", Value::U32(1536)),
            ("deepseek2.attention.kv_lora_rank", Value::U32(512)),
            ("deepseek2.expert_count", Value::U32(256)),
            ("deepseek2.expert_used_count", Value::U32(8)),
            ("deepseek2.expert_shared_count", Value::U32(1)),
            ("deepseek2.expert_feed_forward_length", Value::U32(2048)),
            ("deepseek2.feed_forward_length", Value::U32(18432)),
            ("deepseek2.rope.dimension_count", Value::U32(64)),
            ("deepseek2.rope.scaling.type", str_value("yarn")),
            ("deepseek2.rope.scaling.factor", Value::F32(40.0)),
            (
                "deepseek2.rope.scaling.original_context_length",
                Value::U32(4096),
            ),
            ("deepseek2.context_length", Value::U64(163_840)),
        ],
        &[],
    );
    assert_eq!(model.head_count_kv_per_layer().unwrap(), [1, 1, 1, 1]);
    assert_eq!(model.head_count_kv().unwrap(), 1);
    assert_eq!(
        (model.key_length().unwrap(), model.value_length().unwrap()),
        (576, 512)
    );
    assert_eq!(model.key_length_mla().unwrap(), Some(192));
    assert_eq!(model.value_length_mla().unwrap(), Some(128));
    assert_eq!(model.q_lora_rank().unwrap(), Some(1536));
    assert_eq!(model.kv_lora_rank().unwrap(), Some(512));
    assert_eq!(model.expert_count().unwrap(), Some(256));
    assert_eq!(model.expert_used_count().unwrap(), Some(8));
    assert_eq!(model.expert_shared_count().unwrap(), Some(1));
    assert_eq!(model.expert_feed_forward_length().unwrap(), Some(2048));
    assert_eq!(model.rope_dimension_count().unwrap(), Some(64));
    assert_eq!(model.rope_scaling_type().unwrap(), Some("yarn"));
    assert_eq!(model.rope_scaling_factor().unwrap(), Some(40.0));
    assert_eq!(
        model.rope_scaling_original_context_length().unwrap(),
        Some(4096)
    );
    assert_eq!(model.context_length().unwrap(), Some(163_840));
    assert_eq!(model.rope_freq_base().unwrap(), None);
}

#[test]
fn per_layer_arrays_and_sliding_window_patterns() {
    let base = |pattern: Value, ffn: Value| {
        model_of(
            &[
                ("general.architecture", str_value("gemma3")),
                ("gemma3.block_count", Value::U32(6)),
                (
                    "gemma3.attention.head_count",
                    u32_array(&[8, 8, 8, 8, 8, 0]),
                ),
                ("gemma3.feed_forward_length", ffn),
                ("gemma3.attention.sliding_window", Value::U32(1024)),
                ("gemma3.attention.sliding_window_pattern", pattern),
            ],
            &[],
        )
    };
    // A period: every 3rd layer global (llama.cpp: layer i slides iff i % n < n - 1).
    let periodic = base(Value::U32(3), u32_array(&[1, 2, 3, 4, 5, 6]));
    let layers = periodic.sliding_window_layers().unwrap().unwrap();
    assert_eq!(layers, [true, true, false, true, true, false]);
    assert_eq!(
        periodic.feed_forward_length_per_layer().unwrap().unwrap(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(periodic.feed_forward_length().unwrap(), Some(6));
    assert_eq!(periodic.head_count_per_layer().unwrap(), [8, 8, 8, 8, 8, 0]);
    // Head count kv defaults to the per-layer head count.
    assert_eq!(
        periodic.head_count_kv_per_layer().unwrap(),
        [8, 8, 8, 8, 8, 0]
    );
    assert_eq!(periodic.sliding_window().unwrap(), Some(1024));

    // One bool per layer.
    let flags = [true, false, true, false, true, false];
    let per_layer = base(
        Value::Array(array_of(ArrayData::Bool(flags.to_vec()))),
        Value::U32(9),
    );
    assert_eq!(per_layer.sliding_window_layers().unwrap().unwrap(), flags);
    assert_eq!(
        per_layer.feed_forward_length_per_layer().unwrap().unwrap(),
        [9; 6]
    );

    // An array of the wrong length is an error naming the key.
    let wrong = base(
        Value::Array(array_of(ArrayData::Bool(vec![true; 5]))),
        Value::U32(9),
    );
    let err = wrong.sliding_window_layers().unwrap_err();
    assert!(
        err.to_string()
            .contains("gemma3.attention.sliding_window_pattern: array has 5 elements for 6 layers"),
        "{err}"
    );
}

#[test]
fn recurrent_embedding_and_reranker_accessors() {
    let mamba = model_of(
        &[
            ("general.architecture", str_value("mamba2")),
            ("mamba2.ssm.conv_kernel", Value::U32(4)),
            ("mamba2.ssm.inner_size", Value::U32(5120)),
            ("mamba2.ssm.state_size", Value::U32(128)),
            ("mamba2.ssm.time_step_rank", Value::U32(80)),
            ("mamba2.ssm.group_count", Value::U32(1)),
            ("mamba2.vocab_size", Value::U32(50288)),
        ],
        &[],
    );
    assert_eq!(mamba.ssm_conv_kernel().unwrap(), Some(4));
    assert_eq!(mamba.ssm_inner_size().unwrap(), Some(5120));
    assert_eq!(mamba.ssm_state_size().unwrap(), Some(128));
    assert_eq!(mamba.ssm_time_step_rank().unwrap(), Some(80));
    assert_eq!(mamba.ssm_group_count().unwrap(), Some(1));
    assert_eq!(mamba.wkv_head_size().unwrap(), None);
    assert_eq!(mamba.vocab_size().unwrap(), Some(50288));

    let rwkv = model_of(
        &[
            ("general.architecture", str_value("rwkv7")),
            ("rwkv7.wkv.head_size", Value::U32(64)),
        ],
        &[],
    );
    assert_eq!(rwkv.wkv_head_size().unwrap(), Some(64));

    let reranker = model_of(
        &[
            ("general.architecture", str_value("qwen3")),
            ("qwen3.pooling_type", Value::U32(4)),
        ],
        &[("cls.output.weight".into(), vec![1024, 1], GgmlType::F16)],
    );
    assert!(reranker.is_reranker().unwrap());
    assert!(!reranker.is_embedding().unwrap());
    let embedding = model_of(
        &[
            ("general.architecture", str_value("qwen3")),
            ("qwen3.pooling_type", Value::U32(3)),
        ],
        &[],
    );
    assert!(embedding.is_embedding().unwrap() && !embedding.is_reranker().unwrap());
}

#[test]
fn audio_clip_and_diffusion_markers() {
    let audio = model_of(
        &[
            ("general.architecture", str_value("clip")),
            ("clip.has_audio_encoder", Value::Bool(true)),
            ("clip.audio.projector_type", str_value("ultravox")),
            ("clip.audio.embedding_length", Value::U32(1280)),
            ("clip.audio.block_count", Value::U32(32)),
            ("clip.audio.attention.head_count", Value::U32(20)),
            ("clip.audio.feed_forward_length", Value::U32(5120)),
            ("clip.audio.projection_dim", Value::U32(4096)),
        ],
        &[],
    );
    assert!(audio.is_clip());
    assert_eq!(audio.projector_type().unwrap(), Some("ultravox"));
    assert_eq!(audio.clip_vision().unwrap(), None);
    let encoder = audio.clip_audio().unwrap().unwrap();
    assert_eq!(
        (
            encoder.embedding_length,
            encoder.block_count,
            encoder.head_count
        ),
        (Some(1280), Some(32), Some(20))
    );
    assert_eq!(
        (encoder.feed_forward_length, encoder.projection_dim),
        (Some(5120), Some(4096))
    );
    assert_eq!(encoder.projector_type.as_deref(), Some("ultravox"));

    // stable-diffusion.cpp files name tensors after the original checkpoint.
    let sd = model_of(
        &[],
        &[
            (
                "model.diffusion_model.input_blocks.0.0.weight".into(),
                vec![3, 3, 4, 320],
                GgmlType::F16,
            ),
            (
                "first_stage_model.decoder.conv_in.weight".into(),
                vec![3, 3, 4, 512],
                GgmlType::F32,
            ),
            (
                "cond_stage_model.transformer.text_model.final_layer_norm.weight".into(),
                vec![768],
                GgmlType::F32,
            ),
        ],
    );
    assert!(sd.is_diffusion());
    assert_eq!(
        sd.diffusion_markers(),
        [
            "model.diffusion_model.",
            "first_stage_model.",
            "cond_stage_model."
        ]
    );
    assert!(sd.architecture().is_err());
    // The markers are found when the model is built and found again when it is read back
    // from its serialized form, which does not carry them.
    let json = serde_json::to_value(&sd).unwrap();
    let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["metadata", "shards", "tensors"]);
    let read_back: GgufModel = serde_json::from_value(json).unwrap();
    assert_eq!(read_back, sd);
    assert_eq!(read_back.diffusion_markers(), sd.diffusion_markers());
    let text = model_of(
        &[],
        &[(
            "enc.blk.0.attn_q.weight".into(),
            vec![512, 512],
            GgmlType::F16,
        )],
    );
    assert!(!text.is_diffusion());
}

/// Found by the fuzzer: a huge `block_count` must not make per-layer accessors allocate.
#[test]
fn huge_block_count_is_refused_by_per_layer_accessors() {
    let model = model_of(
        &[
            ("general.architecture", str_value("llama")),
            ("llama.block_count", Value::U64(1 << 40)),
            ("llama.feed_forward_length", Value::U32(11008)),
            ("llama.attention.head_count", Value::U32(32)),
        ],
        &[],
    );
    for err in [
        model.block_count().unwrap_err(),
        model.feed_forward_length_per_layer().unwrap_err(),
        model.head_count_kv_per_layer().unwrap_err(),
    ] {
        assert!(err.to_string().contains("at most 4096 layers"), "{err}");
    }
    let direct = model
        .metadata()
        .get_per_layer("llama.feed_forward_length", 1 << 40);
    assert!(
        direct
            .unwrap_err()
            .to_string()
            .contains("1099511627776 layers (at most 4096")
    );
}

/// The type table equals the `gguf` package's (`tests/fixtures/gguf/ggml_quant_sizes.tsv`,
/// dumped from `GGMLQuantizationType` and `GGML_QUANT_SIZES` by `tools/dump_ggml_types.py`).
#[test]
fn type_table_matches_the_gguf_package() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/gguf/ggml_quant_sizes.tsv");
    let text = std::fs::read_to_string(path).unwrap();
    let mut ids = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, name, block, size] = fields[..] else {
            panic!("bad line {line}")
        };
        let id: u32 = id.parse().unwrap();
        let ty = GgmlType::from_id(id).unwrap_or_else(|| panic!("type {id} {name} missing"));
        // ggml prints names lower-case except the K of k-quants (`q4_K`).
        assert_eq!(ty.name().to_uppercase(), name.to_uppercase(), "{id}");
        assert_eq!(ty.block_size(), block.parse::<u64>().unwrap(), "{name}");
        assert_eq!(ty.type_size(), size.parse::<u64>().unwrap(), "{name}");
        ids.push(id);
    }
    assert_eq!(
        ids.len(),
        GgmlType::all().count(),
        "inferkit knows types the package does not"
    );
}
