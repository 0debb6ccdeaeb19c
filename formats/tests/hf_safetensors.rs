//! safetensors headers and model directories: the header-only fixtures of real models
//! (tests/fixtures/hf) and malformed inputs built here.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use inferkit_formats::Error;
use inferkit_formats::hf::{Dtype, HfModel, SafetensorsFile, Weights};
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/hf")
        .join(model)
}

#[test]
fn llama_3_1_8b_shards_exact() {
    let model = HfModel::open(&fixture("Llama-3.1-8B-Instruct")).unwrap();
    let w = model.safetensors().unwrap();
    let s = &w.summary;
    // Published: 8,030,261,248 parameters, 16,060,522,496 bytes of bf16 weights.
    assert_eq!(s.parameters, 8_030_261_248);
    assert_eq!(s.total_bytes, 16_060_522_496);
    assert_eq!(s.tensor_count, 291);
    assert_eq!(s.bytes_by_dtype.len(), 1);
    assert_eq!(s.bytes_by_dtype[&Dtype::Bf16], 16_060_522_496);
    assert_eq!(w.index.as_ref().unwrap().total_size, Some(16_060_522_496));
    // The four published shard files are 4,976,698,672 / 4,999,802,720 / 4,915,916,176 /
    // 1,168,138,808 bytes: length prefix + header + data.
    let file_sizes: Vec<u64> = w
        .files
        .iter()
        .map(|f| 8 + f.header_len + s.bytes_by_file[&f.name])
        .collect();
    assert_eq!(
        file_sizes,
        [4_976_698_672, 4_999_802_720, 4_915_916_176, 1_168_138_808]
    );
    assert!(w.files.iter().all(|f| !f.data_present));
    let down = w.tensor("model.layers.31.mlp.down_proj.weight").unwrap();
    assert_eq!(down.file, "model-00004-of-00004.safetensors");
    assert_eq!(
        (down.dtype, down.shape.as_slice()),
        (Dtype::Bf16, &[4096, 14336][..])
    );
    assert_eq!(down.bytes, 4096 * 14336 * 2);
    let count = model.parameters().unwrap();
    assert_eq!((count.count, count.exact), (8_030_261_248, true));
    // The config-only estimate agrees with the headers for this architecture.
    assert_eq!(model.config.estimated_parameters(), Some(count.count));
}

#[test]
fn model_round_trips_through_json() {
    for name in ["Llama-3.1-8B-Instruct", "gpt-oss-20b", "DeepSeek-V3"] {
        let model = HfModel::open(&fixture(name)).unwrap();
        let json = serde_json::to_string(&model).unwrap();
        let back: HfModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, model, "{name}");
    }
}

#[test]
fn qwen2_5_awq_packed_layout() {
    let model = HfModel::open(&fixture("Qwen2.5-7B-Instruct-AWQ")).unwrap();
    let w = model.safetensors().unwrap();
    let q = w.tensor("model.layers.0.self_attn.q_proj.qweight").unwrap();
    assert_eq!(
        (q.dtype, q.shape.as_slice()),
        (Dtype::I32, &[3584, 448][..])
    );
    let scales = w.tensor("model.layers.0.mlp.down_proj.scales").unwrap();
    assert_eq!(
        (scales.dtype, scales.shape.as_slice()),
        (Dtype::F16, &[148, 3584][..])
    );

    // AutoAWQ GEMM layout, computed independently: per linear (in, out), group 128,
    // qweight in × out/8 and qzeros in/128 × out/8 as I32, scales in/128 × out as F16.
    let (h, inter, kv, vocab, layers) = (3584u64, 18944u64, 512u64, 152064u64, 28u64);
    let linears = [
        (h, h),
        (h, kv),
        (h, kv),
        (h, h),
        (h, inter),
        (h, inter),
        (inter, h),
    ];
    let i32_elems: u64 = linears
        .iter()
        .map(|(i, o)| i * o / 8 + i / 128 * o / 8)
        .sum();
    let f16_elems: u64 =
        linears.iter().map(|(i, o)| i / 128 * o).sum::<u64>() + (h + 2 * kv) + 2 * h;
    let i32_total = layers * i32_elems;
    let f16_total = layers * f16_elems + 2 * vocab * h + h;
    let s = &w.summary;
    assert_eq!(s.parameters_by_dtype[&Dtype::I32], i32_total);
    assert_eq!(s.bytes_by_dtype[&Dtype::I32], 4 * i32_total);
    assert_eq!(s.bytes_by_dtype[&Dtype::F16], 2 * f16_total);
    // Stored elements: a packed I32 counts once, not as eight int4 values.
    assert_eq!(s.parameters, i32_total + f16_total);
    assert_eq!(s.total_bytes, 4 * i32_total + 2 * f16_total);
}

#[test]
fn config_only_directory_estimates() {
    let model = HfModel::open(&fixture("Mixtral-8x7B-Instruct-v0.1")).unwrap();
    assert_eq!(model.weights, Weights::Absent);
    let count = model.parameters().unwrap();
    assert_eq!((count.count, count.exact), (46_702_792_704, false));
}

/// A header-only safetensors file: entries (name, dtype, shape) laid out contiguously.
fn header_file(entries: &[(&str, &str, &[u64])]) -> Vec<u8> {
    let bits = |dtype: &str| Dtype::from_name(dtype).map_or(16, Dtype::bits);
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0;
    for (name, dtype, shape) in entries {
        let bytes = shape.iter().product::<u64>() * bits(dtype) / 8;
        header.insert(
            (*name).into(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    raw_file(&Value::Object(header).to_string())
}

fn raw_file(header: &str) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out
}

fn read(bytes: &[u8]) -> Result<SafetensorsFile, Error> {
    SafetensorsFile::read(
        Cursor::new(bytes),
        bytes.len() as u64,
        Path::new("m.safetensors"),
    )
}

fn parse_error(bytes: &[u8]) -> (u64, String) {
    match read(bytes) {
        Err(Error::Parse { file, offset, what }) => {
            assert_eq!(file, Path::new("m.safetensors"));
            (offset, what)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn header_only_and_full_file_parse_alike() {
    let header = header_file(&[("a", "F32", &[2, 3]), ("b", "F8_E4M3", &[5])]);
    let only = read(&header).unwrap();
    assert!(!only.data_present);
    assert_eq!(only.data_len, 29);
    let mut full = header.clone();
    full.resize(header.len() + 29, 0);
    let with_data = read(&full).unwrap();
    assert!(with_data.data_present);
    assert_eq!(with_data.tensors, only.tensors);
    assert_eq!(only.metadata["format"], "pt");
}

#[test]
fn shorter_than_length_prefix() {
    let (offset, what) = parse_error(&[1, 2, 3]);
    assert_eq!(offset, 0);
    assert!(what.contains("8-byte"), "{what}");
}

#[test]
fn header_length_beyond_file() {
    let mut bytes = raw_file("{}");
    bytes[0] = 200;
    let (_, what) = parse_error(&bytes);
    assert!(what.contains("past the end"), "{what}");
}

#[test]
fn header_length_beyond_safetensors_limit() {
    let mut bytes = 100_000_001u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let (_, what) = parse_error(&bytes);
    assert!(what.contains("100000000"), "{what}");
}

#[test]
fn truncated_header() {
    let full = header_file(&[("a", "F16", &[4])]);
    let mut cut = full[..full.len() - 5].to_vec();
    let header_len = cut.len() as u64 - 8;
    cut[..8].copy_from_slice(&header_len.to_le_bytes());
    let (offset, what) = parse_error(&cut);
    assert!(
        offset >= 8 && offset <= cut.len() as u64,
        "{offset}: {what}"
    );
}

#[test]
fn bad_json_offset_is_in_file_coordinates() {
    let text = r#"{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},,}"#;
    let (offset, _) = parse_error(&raw_file(text));
    assert_eq!(offset, 8 + text.find(",,").unwrap() as u64 + 1);
}

#[test]
fn entry_of_wrong_shape_names_tensor() {
    let text = r#"{"w":{"dtype":"F16","shape":"4","data_offsets":[0,8]}}"#;
    let (_, what) = parse_error(&raw_file(text));
    assert!(what.contains("`w`"), "{what}");
}

#[test]
fn offsets_inconsistent_with_shape() {
    let text = r#"{"w":{"dtype":"BF16","shape":[4,4],"data_offsets":[0,30]}}"#;
    let (offset, what) = parse_error(&raw_file(text));
    assert_eq!(offset, 8 + 1);
    assert!(what.contains("`w`") && what.contains("needs 32"), "{what}");
}

#[test]
fn gap_between_tensors() {
    let text = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
                   "b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}}"#;
    let (_, what) = parse_error(&raw_file(text));
    assert!(what.contains("`b`") && what.contains("gap"), "{what}");
}

#[test]
fn unknown_dtype() {
    let text = r#"{"a":{"dtype":"Q4_K","shape":[4],"data_offsets":[0,4]}}"#;
    let (_, what) = parse_error(&raw_file(text));
    assert!(what.contains("Q4_K"), "{what}");
}

#[test]
fn partial_data_section_is_a_truncated_download() {
    let mut bytes = header_file(&[("a", "F32", &[4])]);
    let data_start = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 7]);
    let (offset, what) = parse_error(&bytes);
    assert_eq!(offset, data_start);
    assert!(what.contains("7 bytes") && what.contains("16"), "{what}");
}

#[test]
fn shape_overflow() {
    let text = r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#;
    let (_, what) = parse_error(&raw_file(text));
    assert!(what.contains("overflow"), "{what}");
}

/// A model directory in a temporary folder.
fn model_dir(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = br#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 8,
        "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
        "vocab_size": 10}"#;
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn index(map: Value) -> Vec<u8> {
    json!({"metadata": {"total_size": 0}, "weight_map": map})
        .to_string()
        .into_bytes()
}

#[test]
fn missing_shard_names_the_file() {
    let dir = model_dir(&[
        (
            "model-00001-of-00002.safetensors",
            header_file(&[("a", "F16", &[2])]),
        ),
        (
            "model.safetensors.index.json",
            index(json!({"a": "model-00001-of-00002.safetensors",
                          "b": "model-00002-of-00002.safetensors"})),
        ),
    ]);
    match HfModel::open(dir.path()) {
        Err(Error::Io { path, source }) => {
            assert!(
                path.ends_with("model-00002-of-00002.safetensors"),
                "{path:?}"
            );
            assert!(source.to_string().contains("missing"), "{source}");
        }
        other => panic!("expected an io error, got {other:?}"),
    }
}

#[test]
fn index_entry_absent_from_its_shard() {
    let dir = model_dir(&[
        ("s1.safetensors", header_file(&[("a", "F16", &[2])])),
        (
            "model.safetensors.index.json",
            index(json!({"a": "s1.safetensors", "b": "s1.safetensors"})),
        ),
    ]);
    match HfModel::open(dir.path()) {
        Err(Error::Parse { file, what, .. }) => {
            assert!(file.ends_with("model.safetensors.index.json"));
            assert!(what.contains("`b`"), "{what}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn index_cannot_leave_the_directory() {
    let dir = model_dir(&[(
        "model.safetensors.index.json",
        index(json!({"a": "../elsewhere.safetensors"})),
    )]);
    assert!(matches!(
        HfModel::open(dir.path()),
        Err(Error::Parse { .. })
    ));
}

#[test]
fn corrupt_shard_reports_its_file() {
    let dir = model_dir(&[("model.safetensors", raw_file("{\"a\":"))]);
    match HfModel::open(dir.path()) {
        Err(Error::Parse { file, offset, .. }) => {
            assert!(file.ends_with("model.safetensors"));
            assert!(offset >= 8);
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn unindexed_files_and_mistral_consolidated_duplicate() {
    let dir = model_dir(&[
        (
            "model-00001-of-00002.safetensors",
            header_file(&[("a", "BF16", &[4])]),
        ),
        (
            "model-00002-of-00002.safetensors",
            header_file(&[("b", "F32", &[2])]),
        ),
        (
            "consolidated.safetensors",
            header_file(&[("a", "BF16", &[4]), ("b", "F32", &[2])]),
        ),
    ]);
    let model = HfModel::open(dir.path()).unwrap();
    let w = model.safetensors().unwrap();
    assert!(w.index.is_none());
    assert_eq!(w.files.len(), 2);
    assert_eq!(w.summary.total_bytes, 16);
    assert_eq!(w.summary.bytes_by_dtype[&Dtype::Bf16], 8);
}

#[test]
fn pickle_checkpoint_is_flagged_and_estimated() {
    let dir = model_dir(&[("pytorch_model.bin", b"not read".to_vec())]);
    let model = HfModel::open(dir.path()).unwrap();
    assert_eq!(
        model.weights,
        Weights::Pickle {
            files: vec!["pytorch_model.bin".into()]
        }
    );
    // 2 embeddings of 10 × 8, attention 4 × 8 × 8, MLP 3 × 8 × 16, 3 norms of 8.
    let count = model.parameters().unwrap();
    assert_eq!((count.count, count.exact), (160 + 256 + 384 + 24, false));
}

#[test]
fn directory_without_config() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(HfModel::open(dir.path()), Err(Error::Io { .. })));
}

proptest! {
    /// Arbitrary bytes never panic the reader.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = read(&bytes);
    }

    /// Arbitrary bytes behind a correct length prefix (invalid UTF-8 included) never panic
    /// the reader.
    #[test]
    fn random_header_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = (body.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let _ = read(&bytes);
    }

    /// Arbitrary text behind a correct length prefix never panics the reader.
    #[test]
    fn random_header_text_never_panics(text in r#"[{}\[\]":,0-9a-zA-Z_ ]{0,120}"#) {
        let _ = read(&raw_file(&text));
    }

    /// Any set of well-formed entries parses back with exact totals.
    #[test]
    fn written_headers_read_back(
        shapes in proptest::collection::vec(
            (0usize..6, proptest::collection::vec(1u64..64, 0..4)), 0..12)
    ) {
        const DTYPES: [&str; 6] = ["BF16", "F32", "I32", "U8", "F8_E4M3", "F64"];
        let names: Vec<String> = (0..shapes.len()).map(|i| format!("t{i}")).collect();
        let entries: Vec<(&str, &str, &[u64])> = shapes
            .iter()
            .zip(&names)
            .map(|((d, s), n)| (n.as_str(), DTYPES[*d], s.as_slice()))
            .collect();
        let file = read(&header_file(&entries)).unwrap();
        let expected: u64 = entries
            .iter()
            .map(|(_, d, s)| s.iter().product::<u64>() * Dtype::from_name(d).unwrap().bits() / 8)
            .sum();
        prop_assert_eq!(file.data_len, expected);
        prop_assert_eq!(file.tensors.len(), entries.len());
    }
}
