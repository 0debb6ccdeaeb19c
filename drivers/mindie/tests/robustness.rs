//! Arbitrary parameter lists never panic: they parse or give a typed error naming a parameter.

mod common;

use std::sync::LazyLock;

use inferkit_core::{Backend, Error, FitRequest, ModelFacts};
use inferkit_mindie::{MindIe, Params};
use proptest::prelude::*;

static LLAMA: LazyLock<ModelFacts> =
    LazyLock::new(|| common::facts(&common::spec("Llama-3.1-8B-Instruct", &[])));

/// Known spellings, near misses and values, so that generated lists reach deep into parsing.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("--max-batch-size".to_string()),
        Just("--max-prefill-batch-size".to_string()),
        Just("--max-preempt-count".to_string()),
        Just("--cache-block-size".to_string()),
        Just("--max-seq-len".to_string()),
        Just("--max-input-token-len".to_string()),
        Just("--npu-memory-fraction".to_string()),
        Just("--rope-scaling".to_string()),
        Just("--truncation".to_string()),
        Just("--no-truncation".to_string()),
        Just("--dtype".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9.e-]{0,8}",
        "--[a-z-]{0,20}(=[a-z0-9{}\":.-]{0,10})?",
        "\\PC{0,12}",
        // A flag and its value joined by a blank of any width (form fields keep them as one).
        "--(max-batch-size|max-seq-len|dtype)[ \u{a0}\u{3000}=][0-9a-z]{0,4}",
    ]
}

proptest! {
    #[test]
    fn parameters_parse_or_name_the_culprit(tokens in proptest::collection::vec(token(), 0..8)) {
        match Params::parse(&tokens) {
            Ok(params) => {
                // Whatever the values, the estimate answers or refuses; it never panics.
                let mut spec = common::spec("Llama-3.1-8B-Instruct", &[]);
                spec.backend_parameters = tokens.clone();
                let backend = MindIe::new();
                let fitted = backend.prepare(&LLAMA, &spec).and_then(|e| {
                    e.estimator().fit(&FitRequest {
                        devices: common::a2("a2-1", 0..2),
                        host: common::host("a2-1"),
                        allow_cpu_offload: false,
                    })
                });
                if fitted.is_ok() {
                    // Parameters that fit also launch (or refuse with a typed error).
                    let assignment = common::assign(&backend, &spec, &LLAMA, &common::a2("a2-1", 0..2));
                    let _ = backend.prepare(&LLAMA, &spec).and_then(|p| p.launch(&assignment));
                }
                prop_assert!(params.max_prefill_batch_size <= params.max_batch_size);
                prop_assert!(params.max_preempt_count <= params.max_batch_size);
                prop_assert!(params.cache_block_size.is_power_of_two());
                prop_assert!(params.npu_memory_fraction > 0.0 && params.npu_memory_fraction <= 1.0);
            }
            Err(Error::InvalidParameter { name, reason }) => {
                prop_assert!(!name.is_empty() && !reason.is_empty());
            }
            Err(other) => prop_assert!(false, "unexpected error kind: {other:?}"),
        }
    }
}

/// A flag joined to its value by a multi-byte blank (U+3000 in a form pasted from CJK text,
/// NBSP from a web page) once split inside the blank's UTF-8 bytes and panicked.
#[test]
fn flag_and_value_joined_by_a_wide_blank() {
    for joined in ["--max-batch-size\u{3000}8", "--max-batch-size\u{a0}8"] {
        let params = Params::parse(&[joined.to_string()]).unwrap();
        assert_eq!(params.max_batch_size, 8, "{joined:?}");
    }
    let err = Params::parse(&["--no-such\u{3000}8".to_string()]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter { name, .. } if name == "--no-such"),
        "{err:?}"
    );
}

/// A model directory with Llama-3.1-8B's config (edited by `edit`) and `shards` header-only
/// safetensors files, each holding one BF16 tensor of `elements` elements.
fn hostile_model(
    edit: impl FnOnce(&mut serde_json::Value),
    shards: usize,
    elements: u64,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = common::fixtures().join("Llama-3.1-8B-Instruct/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let mut weight_map = serde_json::Map::new();
    for i in 0..shards {
        let file = format!("model-{:05}-of-{shards:05}.safetensors", i + 1);
        let tensor = format!("model.layers.{i}.mlp.down_proj.weight");
        let header = serde_json::json!({ &tensor: {
            "dtype": "BF16", "shape": [elements], "data_offsets": [0u64, elements * 2]} });
        let header = header.to_string();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        std::fs::write(dir.path().join(&file), bytes).unwrap();
        weight_map.insert(tensor, file.into());
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    dir
}

/// Sizes that overflow `u64` once multiplied (weights cast from BF16 to float32, a head size
/// near 2^62 times the KV heads) used to panic the estimate; they now saturate and refuse.
#[test]
fn overflowing_sizes_refuse_instead_of_panicking() {
    let huge_weights = hostile_model(|_| {}, 16, 1 << 59);
    let huge_head = hostile_model(|c| c["head_dim"] = (1u64 << 62).into(), 1, 4096);
    for (dir, params) in [
        (&huge_weights, &["--dtype", "float32"][..]),
        (&huge_weights, &[][..]),
        (&huge_head, &[][..]),
    ] {
        let mut spec = common::spec("unused", params);
        spec.source = inferkit_core::ModelSource::LocalPath {
            path: dir.path().to_path_buf(),
        };
        let facts = common::facts(&spec);
        let fitted = MindIe::new()
            .prepare(&facts, &spec)
            .unwrap()
            .estimator()
            .fit(&FitRequest {
                devices: common::a2("a2-1", 0..1),
                host: common::host("a2-1"),
                allow_cpu_offload: false,
            });
        assert!(
            matches!(fitted, Err(Error::DoesNotFit { .. })),
            "{params:?}: {fitted:?}"
        );
    }
}

/// A config value from the edges: zero, one, powers near `u64::MAX`, negative and fractional
/// numbers, and the wrong JSON types.
fn config_value() -> impl Strategy<Value = serde_json::Value> {
    let numbers = vec![1u64, 7, 64, 4096, 1 << 20, 1 << 32, 1 << 62, u64::MAX];
    let others = vec![
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(1.5),
        serde_json::json!("float16"),
        serde_json::json!("c8"),
        serde_json::Value::Null,
        serde_json::json!([]),
        serde_json::json!({}),
    ];
    // Mostly numbers, so that most configs get past reading to the estimate.
    prop_oneof![
        6 => prop::sample::select(numbers).prop_map(serde_json::Value::from),
        1 => prop::sample::select(others),
    ]
}

fn config_key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "hidden_size",
        "head_dim",
        "intermediate_size",
        "vocab_size",
        "max_position_embeddings",
        "torch_dtype",
        "kv_lora_rank",
        "qk_rope_head_dim",
        "quantization_config",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// Hostile config values either fail to read (a typed error) or estimate without panicking.
    #[test]
    fn hostile_configs_estimate_or_refuse(
        edits in prop::collection::vec((config_key(), config_value()), 1..5),
        devices in 1u32..=8,
    ) {
        let dir = hostile_model(
            |c| {
                for (key, value) in &edits {
                    c[*key] = value.clone();
                }
            },
            1,
            4096,
        );
        let mut spec = common::spec("unused", &[]);
        spec.source = inferkit_core::ModelSource::LocalPath { path: dir.path().to_path_buf() };
        let Ok(facts) = ModelFacts::read(&spec.source) else {
            return Ok(());
        };
        let backend = MindIe::new();
        let fitted = backend.prepare(&facts, &spec).and_then(|e| {
            e.estimator().fit(&FitRequest {
                devices: common::a2("a2-1", 0..devices),
                host: common::host("a2-1"),
                allow_cpu_offload: false,
            })
        });
        if let Ok(estimate) = fitted {
            for device in &estimate.devices {
                prop_assert!(device.claim >= device.components.total());
            }
        }
    }
}

/// Dimensions no model has (zero layers once planned a model of no KV cache) are refused by
/// the shared check, naming `config.json`, the key and its offset.
#[test]
fn implausible_dimensions_name_the_key() {
    let cases: [(&str, serde_json::Value); 5] = [
        ("num_hidden_layers", 0.into()),
        ("num_key_value_heads", 64.into()),
        ("num_key_value_heads", 0.into()),
        ("vocab_size", 0.into()),
        ("head_dim", 0.into()),
    ];
    for (key, value) in cases {
        let dir = hostile_model(|c| c[key] = value.clone(), 1, 4096);
        let mut spec = common::spec("unused", &[]);
        spec.source = inferkit_core::ModelSource::LocalPath {
            path: dir.path().to_path_buf(),
        };
        let facts = common::facts(&spec);
        let err = MindIe::new()
            .prepare(&facts, &spec)
            .and_then(|e| {
                e.estimator().fit(&FitRequest {
                    devices: common::a2("a2-1", 0..1),
                    host: common::host("a2-1"),
                    allow_cpu_offload: false,
                })
            })
            .unwrap_err();
        let Error::Parse { file, offset, what } = &err else {
            panic!("{key} = {value}: {err:?}");
        };
        assert!(file.ends_with("config.json"), "{err}");
        assert!(what.contains(key) && *offset > 0, "{key} = {value}: {err}");
    }
}
