//! Hostile inputs give typed errors, never panics: arbitrary user parameters, and configs with
//! arbitrary (including absurd) sizes.

mod common;

use common::*;
use inferkit_core::hf::HfModel;
use inferkit_core::{Backend, ModelFacts, ModelFormat, ModelSpec};
use inferkit_vllm::Vllm;
use proptest::prelude::*;

/// Flags and fragments users type, mixed with noise.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("--max-model-len".to_string()),
        Just("--tp".to_string()),
        Just("-O3".to_string()),
        Just("--task=embed".to_string()),
        Just("--hf-overrides".to_string()),
        Just("--kv-cache-dtype fp8".to_string()),
        Just("--compilation-config.level".to_string()),
        Just("{\"a\": [1,".to_string()),
        "-{0,2}[a-z_.=-]{0,12}",
        "[0-9]{0,25}[kKmMgG]?",
    ]
}

proptest! {
    #[test]
    fn any_parameters_validate_or_fail_cleanly(tokens in proptest::collection::vec(token(), 0..8), old in any::<bool>()) {
        let mut spec = spec("hf", "Llama-3.1-8B-Instruct", &[]);
        spec.backend_parameters = tokens;
        spec.backend_version = old.then(|| "0.10.1.1".to_string());
        let _ = warnings(&spec);
        if let Ok(estimate) = fit(&spec, &[rtx4090("w1", 0)]) {
            prop_assert!(estimate.devices[0].claim <= rtx4090("w1", 0).allocatable);
        }
    }

    #[test]
    fn any_config_sizes_estimate_or_fail_cleanly(
        hidden in 0u64..u64::MAX, heads in 0u64..300, kv in 0u64..300, layers in 0u64..10_000,
        vocab in 0u64..u64::MAX, experts in 0u64..100_000, window in 0u64..u64::MAX,
    ) {
        let config = format!(r#"{{"architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
            "hidden_size": {hidden}, "num_attention_heads": {heads}, "num_key_value_heads": {kv},
            "num_hidden_layers": {layers}, "vocab_size": {vocab}, "num_local_experts": {experts},
            "sliding_window": {window}, "intermediate_size": {hidden}}}"#);
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        std::fs::write(dir.join("config.json"), config).unwrap();
        let Ok(hf) = HfModel::open(&dir) else { return Ok(()) };
        let mut spec = ModelSpec::local(&dir);
        spec.backend = Some("vllm".into());
        let facts = {
let mut model_facts = ModelFacts::new(spec.source.clone(), ModelFormat::Safetensors);
model_facts.path = Some(dir.clone());
model_facts.hf = Some(hf);
model_facts
};
        let backend = Vllm::new();
        let _ = backend.select(&facts, &spec);
        if let Ok(prepared) = backend.prepare(&facts, &spec) {
            let estimator = prepared.estimator();
            let _ = estimator.fit(&inferkit_core::FitRequest {
                devices: vec![h100("w1", 0), h100("w1", 1)],
                host: host("w1"),
                allow_cpu_offload: false,
            });
        }
    }
}
