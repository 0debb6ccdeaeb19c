//! The GGUF reader against real model headers: llama.cpp's own parameter counts and tensor
//! sizes, mmproj projectors, and every truncation of a header.

use std::path::{Path, PathBuf};

use inferkit_formats::Error;
use inferkit_formats::gguf::{GgmlType, GgufHeader, GgufModel, ReadOptions, file_type_name};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/gguf")
        .join(name)
}

/// What every file of one model has in common, whatever its quantization: the architecture,
/// tensor count, llama.cpp's `n_params` and the shape from the header.
struct Family {
    architecture: &'static str,
    tensors: usize,
    parameters: u64,
    blocks: u64,
    embd: u64,
    heads: u64,
    heads_kv: u64,
    context: u64,
    vocab: u64,
}

const LLAMA_3_2_1B: Family = Family {
    architecture: "llama",
    tensors: 147,
    parameters: 1_235_814_432,
    blocks: 16,
    embd: 2048,
    heads: 32,
    heads_kv: 8,
    context: 131_072,
    vocab: 128_256,
};

const QWEN2_5_0_5B: Family = Family {
    architecture: "qwen2",
    tensors: 290,
    parameters: 494_032_768,
    blocks: 24,
    embd: 896,
    heads: 14,
    heads_kv: 2,
    context: 32_768,
    vocab: 151_936,
};

const BGE_SMALL: Family = Family {
    architecture: "bert",
    tensors: 197,
    parameters: 33_212_160,
    blocks: 12,
    embd: 384,
    heads: 12,
    heads_kv: 12,
    context: 512,
    vocab: 30_522,
};

const QWEN1_5_MOE_4_LAYERS: Family = Family {
    architecture: "qwen2moe",
    tensors: 71,
    parameters: 2_904_573_952,
    blocks: 4,
    embd: 2048,
    heads: 16,
    heads_kv: 16,
    context: 8192,
    vocab: 151_936,
};

/// One real header and what llama.cpp (commit 0c1e57098) reported for the full model:
/// `tensor_bytes` (and the family's `n_params`) from `llamacpp-memory/measurements.jsonl`;
/// key-value counts and shapes from the header as written by the `gguf` package.
struct Expected {
    file: &'static str,
    family: Family,
    file_type: &'static str,
    metadata: usize,
    tensor_bytes: u64,
}

/// `(file, family, file type, key-value count, tensor bytes)`.
#[rustfmt::skip]
const MODELS: [Expected; 10] = [
    row("llama-3.2-1b-F16.header.gguf", LLAMA_3_2_1B, "F16", 23, 2_471_764_096),
    row("llama-3.2-1b-Q4_K_M.header.gguf", LLAMA_3_2_1B, "Q4_K_M", 24, 799_862_912),
    row("llama-3.2-1b-Q8_0.header.gguf", LLAMA_3_2_1B, "Q8_0", 24, 1_313_251_456),
    row("qwen2.5-0.5b-instruct-F16.header.gguf", QWEN2_5_0_5B, "F16", 19, 988_208_640),
    row("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf", QWEN2_5_0_5B, "Q4_K_M", 20, 391_859_712),
    row("qwen2.5-0.5b-instruct-Q8_0.header.gguf", QWEN2_5_0_5B, "Q8_0", 20, 525_120_000),
    row("bge-small-en-v1.5-F16.header.gguf", BGE_SMALL, "F16", 22, 66_940_416),
    row("bge-small-en-v1.5-Q8_0.header.gguf", BGE_SMALL, "Q8_0", 23, 36_045_936),
    row("qwen1.5-moe-a2.7b-4layer-F16.header.gguf", QWEN1_5_MOE_4_LAYERS, "F16", 23, 5_810_233_344),
    row("qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf", QWEN1_5_MOE_4_LAYERS, "Q4_K_M", 24, 1_940_289_536),
];

const fn row(
    file: &'static str,
    family: Family,
    file_type: &'static str,
    metadata: usize,
    tensor_bytes: u64,
) -> Expected {
    Expected {
        file,
        family,
        file_type,
        metadata,
        tensor_bytes,
    }
}

#[test]
fn parameters_and_tensor_bytes_match_llama_cpp() {
    for e in &MODELS {
        let path = fixture(e.file);
        let model = GgufModel::open(&path).unwrap();
        let file = e.file;
        let f = &e.family;
        assert_eq!(model.version(), 3, "{file}");
        assert_eq!(model.architecture().unwrap(), f.architecture, "{file}");
        let file_type = model.file_type().unwrap().and_then(file_type_name);
        assert_eq!(file_type, Some(e.file_type), "{file}");
        assert_eq!(model.tensors().len(), f.tensors, "{file}");
        assert_eq!(model.metadata().len(), e.metadata, "{file}");
        assert_eq!(model.parameters(), f.parameters, "{file}");
        assert_eq!(model.tensor_bytes(), e.tensor_bytes, "{file}");
        assert_eq!(model.block_count().unwrap(), f.blocks, "{file}");
        assert_eq!(model.embedding_length().unwrap(), f.embd, "{file}");
        assert_eq!(model.head_count().unwrap(), f.heads, "{file}");
        assert_eq!(model.head_count_kv().unwrap(), f.heads_kv, "{file}");
        assert_eq!(
            model.head_count_kv_per_layer().unwrap(),
            vec![f.heads_kv; f.blocks as usize]
        );
        assert_eq!(model.context_length().unwrap(), Some(f.context), "{file}");
        assert_eq!(model.vocab_size().unwrap(), Some(f.vocab), "{file}");
        assert_eq!(model.key_length().unwrap(), f.embd / f.heads, "{file}");
        // The headers were cut at the aligned data offset.
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(model.shards()[0].data_offset, len, "{file}");
        assert!(model.shards()[0].header_end <= len && len - model.shards()[0].header_end < 32);
        assert!(!model.is_clip() && !model.is_diffusion(), "{file}");
    }
}

#[test]
fn slice_read_and_file_give_the_same_header() {
    for e in &MODELS {
        let path = fixture(e.file);
        let bytes = std::fs::read(&path).unwrap();
        let options = ReadOptions::default();
        let from_slice = GgufHeader::from_slice(&bytes, &path, &options).unwrap();
        let from_read = GgufHeader::read(&bytes[..], None, &path, &options).unwrap();
        assert_eq!(from_slice, from_read, "{}", e.file);
        let model = GgufModel::from_headers(vec![(path.clone(), from_slice)]).unwrap();
        assert_eq!(model, GgufModel::open(&path).unwrap(), "{}", e.file);
    }
}

#[test]
fn tokenizer_arrays_are_skipped_by_default_and_kept_on_request() {
    let path = fixture("qwen2.5-0.5b-instruct-Q4_K_M.header.gguf");
    let skipped = GgufModel::open(&path).unwrap();
    let tokens = skipped
        .metadata()
        .get_array("tokenizer.ggml.tokens")
        .unwrap()
        .unwrap();
    assert!(tokens.is_skipped());
    assert_eq!(tokens.len, 151_936);

    let full = GgufModel::open_with(&path, &ReadOptions::full()).unwrap();
    let tokens = full
        .metadata()
        .get_array("tokenizer.ggml.tokens")
        .unwrap()
        .unwrap();
    let strings = tokens.strings().unwrap();
    assert_eq!(strings.len(), 151_936);
    assert_eq!(strings.iter().count(), 151_936);
    assert_eq!(strings.get(151_935), strings.iter().last());
    let types = full
        .metadata()
        .get_array("tokenizer.ggml.token_type")
        .unwrap()
        .unwrap();
    assert_eq!(types.to_u64_vec().unwrap().len(), 151_936);
    // Everything but the arrays is identical.
    assert_eq!(full.tensors(), skipped.tensors());
    assert_eq!(full.vocab_size().unwrap(), skipped.vocab_size().unwrap());
}

#[test]
fn tensor_types_and_shapes_are_llama_cpp_s() {
    let model = GgufModel::open(fixture("llama-3.2-1b-Q4_K_M.header.gguf")).unwrap();
    let q = model.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.dims, [2048, 2048]);
    assert_eq!(q.ggml_type, GgmlType::Q4K);
    assert_eq!(q.bytes, 2048 / 256 * 144 * 2048);
    assert_eq!(q.elements, 2048 * 2048);
    let norm = model.tensor("blk.0.attn_norm.weight").unwrap();
    assert_eq!((norm.ggml_type, norm.bytes), (GgmlType::F32, 2048 * 4));
    // llama.cpp's Q4_K_M mix keeps some V and FFN-down tensors at Q6_K.
    assert!(model.tensors().iter().any(|t| t.ggml_type == GgmlType::Q6K));
    assert_eq!(model.rope_freq_base().unwrap(), Some(500_000.0));
}

#[test]
fn embedding_and_moe_accessors() {
    let bge = GgufModel::open(fixture("bge-small-en-v1.5-F16.header.gguf")).unwrap();
    assert_eq!(bge.pooling_type().unwrap(), Some(2));
    assert!(!bge.causal_attention().unwrap());
    assert!(bge.is_embedding().unwrap());
    assert!(!bge.is_reranker().unwrap());

    let moe = GgufModel::open(fixture("qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf")).unwrap();
    assert_eq!(moe.expert_count().unwrap(), Some(60));
    assert_eq!(moe.expert_used_count().unwrap(), Some(4));
    assert_eq!(moe.expert_feed_forward_length().unwrap(), Some(1408));
    assert_eq!(moe.expert_shared_feed_forward_length().unwrap(), Some(5632));
    assert!(!moe.is_embedding().unwrap());

    let qwen = GgufModel::open(fixture("qwen2.5-0.5b-instruct-F16.header.gguf")).unwrap();
    assert_eq!(qwen.expert_count().unwrap(), None);
    assert_eq!(qwen.feed_forward_length().unwrap(), Some(4864));
    assert_eq!(qwen.sliding_window().unwrap(), None);
    assert_eq!(qwen.sliding_window_layers().unwrap(), None);
}

/// Projector headers with what clip reported when loading them
/// (`llamacpp-memory/mmproj/measurements-mmproj.jsonl`): the weight buffer is the sum of
/// tensor sizes each rounded up to 32 bytes.
#[test]
fn mmproj_projectors() {
    let cases = [
        (
            "vlm/llava-1.5-7b/mmproj-llava-1.5-7b-f16.gguf",
            "mlp",
            336,
            14,
            1024,
            23,
            16,
            624_412_672,
        ),
        (
            "vlm/qwen2-vl-2b/mmproj-qwen2-vl-2b-f16.gguf",
            "qwen2vl_merger",
            560,
            14,
            1280,
            32,
            16,
            1_331_625_984,
        ),
        (
            "vlm/smolvlm-instruct/mmproj-smolvlm-instruct-f16.gguf",
            "idefics3",
            384,
            14,
            1152,
            27,
            16,
            872_275_392,
        ),
    ];
    for (file, projector, image, patch, embd, blocks, heads, clip_weights) in cases {
        let model = GgufModel::open(fixture(file)).unwrap();
        assert!(model.is_clip(), "{file}");
        assert_eq!(model.architecture().unwrap(), "clip");
        assert_eq!(model.projector_type().unwrap(), Some(projector));
        assert!(model.has_vision_encoder().unwrap());
        assert!(!model.has_audio_encoder().unwrap());
        assert_eq!(model.clip_audio().unwrap(), None);
        let vision = model.clip_vision().unwrap().unwrap();
        assert_eq!(vision.image_size, Some(image), "{file}");
        assert_eq!(vision.patch_size, Some(patch), "{file}");
        assert_eq!(vision.embedding_length, Some(embd), "{file}");
        assert_eq!(vision.block_count, Some(blocks), "{file}");
        assert_eq!(vision.head_count, Some(heads), "{file}");
        assert_eq!(vision.projector_type.as_deref(), Some(projector));
        let padded: u64 = model
            .tensors()
            .iter()
            .map(|t| t.bytes.next_multiple_of(32))
            .sum();
        assert_eq!(padded, clip_weights, "{file}");
        // A clip file has no text-model keys.
        assert!(model.block_count().is_err());
    }
}

/// Every prefix of a real header either holds all tensor infos and parses to the same header,
/// or gives `Error::Parse` at an offset inside the prefix; never a panic.
#[test]
fn every_truncation_is_a_parse_error_or_the_full_header() {
    let path = fixture("vlm/llava-1.5-7b/llama-2-7b-text-stub-F16.header.gguf");
    let bytes = std::fs::read(&path).unwrap();
    let options = ReadOptions::default();
    let full = GgufHeader::from_slice(&bytes, &path, &options).unwrap();
    for len in 0..bytes.len() {
        let prefix = &bytes[..len];
        match GgufHeader::from_slice(prefix, &path, &options) {
            Ok(header) => {
                assert!(len as u64 >= full.header_end, "parsed a {len}-byte prefix");
                assert_eq!(header, full);
            }
            Err(Error::Parse { file, offset, .. }) => {
                assert!((len as u64) < full.header_end, "{len}");
                assert_eq!(file, path);
                assert!(offset <= len as u64, "offset {offset} beyond prefix {len}");
            }
            Err(other) => panic!("prefix {len}: {other}"),
        }
    }
}

/// The same on a large header through the `Read` path, with prefixes spread over it.
#[test]
fn truncations_of_a_large_header_through_read() {
    let path = fixture("qwen2.5-0.5b-instruct-Q8_0.header.gguf");
    let bytes = std::fs::read(&path).unwrap();
    let options = ReadOptions::default();
    let full = GgufHeader::from_slice(&bytes, &path, &options).unwrap();
    let end = full.header_end as usize;
    let lens = (0..bytes.len()).step_by(9973).chain(end - 300..bytes.len());
    for len in lens {
        let result = GgufHeader::read(&bytes[..len], Some(len as u64), &path, &options);
        match result {
            Ok(header) => {
                assert!(len >= end);
                assert_eq!(header, full);
            }
            Err(Error::Parse { offset, .. }) => assert!(len < end && offset <= len as u64),
            Err(other) => panic!("prefix {len}: {other}"),
        }
    }
}
