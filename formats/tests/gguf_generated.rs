//! The GGUF reader against the generated fixtures (`tests/fixtures/gguf/tools/make_fixtures.py`):
//! Gemma-2 shapes, a 3-shard split model, a big-endian file, GGUF v1 and v2 files.

use std::path::{Path, PathBuf};

use inferkit_formats::Error;
use inferkit_formats::gguf::{ByteOrder, GgufHeader, GgufModel, ReadOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/gguf")
        .join(name)
}

fn shard(n: u32) -> PathBuf {
    fixture(&format!("qwen2.5-0.5b-instruct-Q8_0-0000{n}-of-00003.gguf"))
}

#[test]
fn gemma2_2b() {
    let model = GgufModel::open(fixture("gemma-2-2b-F16.header.gguf")).unwrap();
    assert_eq!(model.architecture().unwrap(), "gemma2");
    assert_eq!(model.tensors().len(), 26 * 11 + 2);
    // google/gemma-2-2b has 2,614,341,888 parameters.
    assert_eq!(model.parameters(), 2_614_341_888);
    // F16 weights, F32 norms (4 per layer + the output norm, 2304 wide).
    let norms = (26 * 4 + 1) * 2304;
    assert_eq!(
        model.tensor_bytes(),
        (2_614_341_888 - norms) * 2 + norms * 4
    );
    assert_eq!(model.block_count().unwrap(), 26);
    assert_eq!(model.head_count().unwrap(), 8);
    assert_eq!(model.head_count_kv_per_layer().unwrap(), vec![4; 26]);
    // Gemma-2 sets its head size explicitly (256), not n_embd / n_head (288).
    assert_eq!(model.key_length().unwrap(), 256);
    assert_eq!(model.value_length().unwrap(), 256);
    assert_eq!(model.sliding_window().unwrap(), Some(4096));
    // No pattern key: llama.cpp hard-codes Gemma-2's alternation; that is the driver's job.
    assert_eq!(model.sliding_window_layers().unwrap(), None);
    assert_eq!(model.vocab_size().unwrap(), Some(256_000));
    assert_eq!(model.context_length().unwrap(), Some(8192));
    let softcap = model
        .metadata()
        .get_f64("gemma2.attn_logit_softcapping")
        .unwrap();
    assert_eq!(softcap, Some(50.0));
}

#[test]
fn header_cut_before_the_padding_parses_like_the_padded_one() {
    let path = fixture("gemma-2-2b-F16.header.gguf");
    let bytes = std::fs::read(&path).unwrap();
    let options = ReadOptions::default();
    let full = GgufHeader::from_slice(&bytes, &path, &options).unwrap();
    assert!(
        full.header_end < full.data_offset,
        "the fixture has padding"
    );
    let cut = GgufHeader::from_slice(&bytes[..full.header_end as usize], &path, &options).unwrap();
    assert_eq!(cut, full);
}

#[test]
fn split_model_from_any_shard() {
    let first = GgufModel::open(shard(1)).unwrap();
    for n in [2, 3] {
        assert_eq!(
            GgufModel::open(shard(n)).unwrap(),
            first,
            "opened from shard {n}"
        );
    }
    assert_eq!(first.path(), shard(1));
    let counts: Vec<u64> = first.shards().iter().map(|s| s.tensor_count).collect();
    assert_eq!(counts, [100, 100, 90]);
    assert_eq!(first.tensors().len(), 290);
    assert_eq!(first.tensors()[150].shard, 1);
    // Summed over the shards, exactly what llama.cpp reports for the single-file model.
    assert_eq!(first.parameters(), 494_032_768);
    assert_eq!(first.tensor_bytes(), 525_120_000);
    let per_shard: u64 = first.shards().iter().map(|s| s.tensor_bytes).sum();
    assert_eq!(per_shard, 525_120_000);
    // Metadata is the first shard's; later shards hold only the split keys.
    assert_eq!(first.architecture().unwrap(), "qwen2");
    assert_eq!(first.shards()[1].metadata_count, 3);
    assert_eq!(first.vocab_size().unwrap(), Some(151_936));

    let single = GgufModel::open(fixture("qwen2.5-0.5b-instruct-Q8_0.header.gguf")).unwrap();
    assert_eq!(first.tensors().len(), single.tensors().len());
    for (a, b) in first.tensors().iter().zip(single.tensors()) {
        assert_eq!(
            (&a.name, &a.dims, a.ggml_type, a.bytes),
            (&b.name, &b.dims, b.ggml_type, b.bytes)
        );
    }
}

#[test]
fn missing_shard_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    for n in [1, 3] {
        std::fs::copy(shard(n), dir.path().join(shard(n).file_name().unwrap())).unwrap();
    }
    let missing = dir
        .path()
        .join("qwen2.5-0.5b-instruct-Q8_0-00002-of-00003.gguf");
    match GgufModel::open(
        dir.path()
            .join("qwen2.5-0.5b-instruct-Q8_0-00003-of-00003.gguf"),
    ) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            assert!(
                source.to_string().contains("shard 2 of 3 is missing"),
                "{source}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn shards_out_of_place_or_renamed_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = |n: u32| dir.path().join(format!("m-0000{n}-of-00003.gguf"));
    std::fs::copy(shard(1), target(1)).unwrap();
    std::fs::copy(shard(3), target(2)).unwrap();
    std::fs::copy(shard(3), target(3)).unwrap();
    match GgufModel::open(target(1)) {
        Err(Error::Parse { file, what, .. }) => {
            assert_eq!(file, target(2));
            assert!(
                what.contains("expected shard 1 of 3, found split.no Some(2)"),
                "{what}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A shard renamed so its name no longer says it is part of a split.
    let renamed = dir.path().join("model.gguf");
    std::fs::copy(shard(1), &renamed).unwrap();
    let err = GgufModel::open(&renamed).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not end in -NNNNN-of-00003.gguf"),
        "{err}"
    );
    // Combining headers by hand needs them all.
    let header = GgufHeader::from_slice(
        &std::fs::read(shard(1)).unwrap(),
        &shard(1),
        &ReadOptions::default(),
    )
    .unwrap();
    let err = GgufModel::from_headers(vec![(shard(1), header)]).unwrap_err();
    assert!(
        err.to_string().contains("split model of 3 shards, 1 given"),
        "{err}"
    );
}

/// Generated variants of a real header hold the same tensors as the original.
fn same_tensors(variant: &str, original: &str) -> (GgufModel, GgufModel) {
    let a = GgufModel::open(fixture(variant)).unwrap();
    let b = GgufModel::open(fixture(original)).unwrap();
    assert_eq!(a.tensors(), b.tensors(), "{variant}");
    assert_eq!(
        a.vocab_size().unwrap(),
        b.vocab_size().unwrap(),
        "{variant}"
    );
    assert_eq!(
        a.head_count_kv_per_layer().unwrap(),
        b.head_count_kv_per_layer().unwrap()
    );
    (a, b)
}

#[test]
fn big_endian_file() {
    let (be, _) = same_tensors(
        "qwen1.5-moe-a2.7b-4layer-Q4_K_M.big-endian.header.gguf",
        "qwen1.5-moe-a2.7b-4layer-Q4_K_M.header.gguf",
    );
    assert_eq!(be.byte_order(), ByteOrder::Big);
    assert_eq!(be.parameters(), 2_904_573_952);
    assert_eq!(be.tensor_bytes(), 1_940_289_536);
    assert_eq!(be.expert_count().unwrap(), Some(60));
    assert_eq!(be.rope_freq_base().unwrap(), Some(1_000_000.0));
}

#[test]
fn gguf_v1_and_v2_files() {
    let (v2, _) = same_tensors(
        "llama-3.2-1b-Q4_K_M.v2.header.gguf",
        "llama-3.2-1b-Q4_K_M.header.gguf",
    );
    assert_eq!(v2.version(), 2);
    assert_eq!(v2.tensor_bytes(), 799_862_912);
    assert_eq!(v2.rope_freq_base().unwrap(), Some(500_000.0));

    let (v1, _) = same_tensors(
        "bge-small-en-v1.5-Q8_0.v1.header.gguf",
        "bge-small-en-v1.5-Q8_0.header.gguf",
    );
    assert_eq!(v1.version(), 1);
    assert_eq!(v1.parameters(), 33_212_160);
    assert_eq!(v1.tensor_bytes(), 36_045_936);
    assert!(v1.is_embedding().unwrap());
}

#[test]
fn benchmark_fixture_has_a_full_tokenizer() {
    let path = fixture("qwen2.5-1.5b-instruct-F16.tokenizer.header.gguf");
    let model = GgufModel::open_with(&path, &ReadOptions::full()).unwrap();
    let metadata = model.metadata();
    let merges = metadata
        .get_array("tokenizer.ggml.merges")
        .unwrap()
        .unwrap();
    assert_eq!(merges.strings().unwrap().len(), 151_387);
    assert!(merges.strings().unwrap().iter().all(|m| m.contains(' ')));
    assert_eq!(
        metadata.array_len("tokenizer.ggml.tokens").unwrap(),
        Some(151_936)
    );
    assert_eq!(model.tensors().len(), 338);
    // Qwen2.5-1.5B has 1,543,714,304 parameters.
    assert_eq!(model.parameters(), 1_543_714_304);
}

#[test]
fn unreadable_paths_are_io_errors_naming_the_path() {
    let missing = fixture("no-such-model.gguf");
    match GgufModel::open(&missing) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    let dir = fixture("tools");
    assert!(matches!(GgufModel::open(&dir), Err(Error::Io { path, .. }) if path == dir));
    let not_gguf = fixture("README.md");
    match GgufModel::open(&not_gguf) {
        Err(Error::Parse {
            file,
            offset: 0,
            what,
        }) => {
            assert_eq!(file, not_gguf);
            assert!(what.starts_with("not a GGUF file"), "{what}");
        }
        other => panic!("{other:?}"),
    }
}
