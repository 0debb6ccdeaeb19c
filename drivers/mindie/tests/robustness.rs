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
                let _ = backend.estimator(&LLAMA, &spec).and_then(|e| {
                    e.fit(&FitRequest {
                        devices: common::a2("a2-1", 0..2),
                        host: common::host("a2-1"),
                        allow_cpu_offload: false,
                    })
                });
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
