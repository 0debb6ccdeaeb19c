//! The MindIE driver against real model configs: conformance, selection, NPU memory, errors.

mod common;

use common::{a2, facts, host, npu, spec, warnings};
use inferkit_core::testkit::check_backend;
use inferkit_core::{
    Backend, Claim, Components, Error, EstimateRequest, FitRequest, LaunchArgument, Layout,
    ModelSpec,
};
use inferkit_mindie::{MindIe, MindieDetails, NPU_WORKSPACE};

#[test]
fn conformance_on_llama_3_1_8b_one_npu() {
    let spec = spec("Llama-3.1-8B-Instruct", &[]);
    check_backend(
        &MindIe::new(),
        &facts(&spec),
        &spec,
        &a2("a2-1", [0]),
        &host("a2-1"),
    );
}

#[test]
fn conformance_on_qwen2_5_72b_eight_npus() {
    let spec = spec("Qwen2.5-72B-Instruct", &["--max-batch-size", "64"]);
    check_backend(
        &MindIe::new(),
        &facts(&spec),
        &spec,
        &a2("a2-1", 0..8),
        &host("a2-1"),
    );
}

fn claim(model: &str) -> (Claim, String) {
    let mut spec = spec(model, &[]);
    spec.backend = None;
    let selection = MindIe::new().select(&facts(&spec), &spec);
    (selection.claim, selection.reason)
}

#[test]
fn supported_architectures_are_claimed_and_others_refused_with_the_reason() {
    assert_eq!(claim("Qwen2.5-72B-Instruct").0, Claim::Supports);
    assert_eq!(claim("DeepSeek-V3").0, Claim::Supports);
    assert_eq!(claim("InternVL3-78B").0, Claim::Supports);
    assert_eq!(
        claim("Qwen3-8B-FP8"),
        (
            Claim::Refuses,
            "MindIE's model list does not include Qwen3ForCausalLM".to_string()
        )
    );
    assert_eq!(claim("bge-m3").0, Claim::Refuses);
    assert_eq!(claim("gemma-3-27b-it").0, Claim::Refuses);
}

#[test]
fn an_unlisted_architecture_is_tried_only_when_the_user_names_mindie() {
    let spec = spec("Qwen3-8B-FP8", &[]);
    let selection = MindIe::new().select(&facts(&spec), &spec);
    assert_eq!(selection.claim, Claim::Fallback);
    assert_eq!(
        selection.reason,
        "MindIE's model list does not include Qwen3ForCausalLM; chosen by the user"
    );
}

#[test]
fn rope_scaling_without_a_sequence_length_is_noted() {
    let spec = spec(
        "Llama-3.1-8B-Instruct",
        &["--rope-scaling", r#"{"type":"yarn","factor":4.0}"#],
    );
    let notes = warnings(&MindIe::new(), &spec).unwrap();
    assert_eq!(
        notes,
        ["--rope-scaling without --max-seq-len: the context stays capped at 8192 tokens"]
    );
}

#[test]
fn an_embedding_request_is_refused() {
    let mut spec = spec("Qwen2.5-72B-Instruct", &[]);
    spec.categories = vec![inferkit_core::Category::Embedding];
    assert_eq!(
        MindIe::new().select(&facts(&spec), &spec).claim,
        Claim::Refuses
    );
}

fn fit(
    spec: &ModelSpec,
    devices: &[inferkit_core::DeviceSlot],
) -> inferkit_core::Result<inferkit_core::ResourceEstimate> {
    let facts = facts(spec);
    let backend = MindIe::new();
    let prepared = backend.prepare(&facts, spec)?;
    let estimator = prepared.estimator();
    estimator.fit(&FitRequest {
        devices: devices.to_vec(),
        host: host("a2-1"),
        allow_cpu_offload: false,
    })
}

/// Llama-3.1-8B on one 64 GiB 910B3: bf16 weights from the safetensors headers, KV at
/// 32 layers × 2 × 8 KV heads × 128 × 2 bytes = 128 KiB per token for 8192 tokens plus one
/// 128-token block per each of 200 batch slots, 3 GiB workspace; claim 90% of the NPU.
#[test]
fn llama_8b_on_one_910b() {
    let estimate = fit(&spec("Llama-3.1-8B-Instruct", &[]), &a2("a2-1", [0])).unwrap();
    let npu = &estimate.devices[0];
    assert_eq!(
        npu.components,
        Components {
            weights: 16_060_522_496,
            kv: 131_072 * (8192 + 200 * 128),
            overhead: NPU_WORKSPACE,
            ..Components::default()
        }
    );
    assert_eq!(npu.claim, (64u64 << 30) * 9 / 10);
    assert_eq!(estimate.layout, Layout::Single);
    assert_eq!(
        estimate.launch_parameters,
        [LaunchArgument::new("--max-seq-len", ["8192"])]
    );
    assert_eq!(estimate.details["kv_bytes_per_token"], 131_072);
    let details: MindieDetails = estimate.details_as().unwrap();
    assert_eq!(details.kv_bytes_per_token, 131_072);
    assert_eq!(details.max_seq_len, 8192);
}

#[test]
fn the_workspace_follows_reserved_memory_gb() {
    let mut spec = spec("Llama-3.1-8B-Instruct", &[]);
    spec.env.insert("RESERVED_MEMORY_GB".into(), "5".into());
    let estimate = fit(&spec, &a2("a2-1", [0])).unwrap();
    assert_eq!(estimate.devices[0].components.overhead, 5 << 30);
    spec.env.insert("RESERVED_MEMORY_GB".into(), "lots".into());
    assert!(matches!(
        fit(&spec, &a2("a2-1", [0])),
        Err(Error::InvalidParameter { .. })
    ));
}

#[test]
fn the_memory_fraction_sets_the_claim() {
    let estimate = fit(
        &spec("Llama-3.1-8B-Instruct", &["--npu-memory-fraction", "0.5"]),
        &a2("a2-1", [0]),
    )
    .unwrap();
    assert_eq!(estimate.devices[0].claim, 32u64 << 30);
}

/// 72B over eight NPUs: each holds an eighth of the weights and one of the eight KV heads.
#[test]
fn qwen_72b_splits_weights_and_kv_heads_over_eight_npus() {
    let estimate = fit(&spec("Qwen2.5-72B-Instruct", &[]), &a2("a2-1", 0..8)).unwrap();
    assert_eq!(
        estimate.layout,
        Layout::Parallel {
            tensor_parallel: 8,
            pipeline_parallel: 1
        }
    );
    let kv_per_token = 80 * 2 * 128 * 2;
    assert_eq!(estimate.details["kv_bytes_per_token"], kv_per_token);
    for npu in &estimate.devices {
        assert_eq!(npu.components.kv, kv_per_token * (8192 + 200 * 128));
        assert_eq!(
            npu.components.weights,
            estimate.devices[0].components.weights
        );
    }
    // ~72.7 B parameters in bf16, an eighth each.
    let weights = estimate.devices[0].components.weights;
    assert!(
        (17_500_000_000..18_800_000_000).contains(&weights),
        "{weights}"
    );
}

#[test]
fn a_72b_model_does_not_fit_one_npu_and_says_with_what() {
    let err = fit(&spec("Qwen2.5-72B-Instruct", &[]), &a2("a2-1", [0])).unwrap_err();
    let Error::DoesNotFit {
        needed,
        available,
        reason,
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(available, (64u64 << 30) * 9 / 10);
    assert!(needed > 140_000_000_000, "{needed}");
    assert!(reason.contains("--npu-memory-fraction=0.9"), "{reason}");
}

#[test]
fn world_size_must_divide_the_heads() {
    // Qwen2-7B has 28 attention heads: 8 NPUs cannot split them.
    let err = fit(&spec("Qwen2-7B-Instruct", &[]), &a2("a2-1", 0..8)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported: MindIE's world size (8 NPUs, 8 per worker) must be a power of two per worker \
         that divides the model's 28 attention heads; valid NPU counts per worker: 1, 2, 4"
    );
}

#[test]
fn only_ascend_npus_of_one_chip() {
    let spec = spec("Qwen2-7B-Instruct", &[]);
    let mut gpu = npu("a2-1", 0, "NVIDIA H100", 80);
    gpu.vendor = inferkit_core::Vendor::Nvidia;
    assert!(matches!(fit(&spec, &[gpu]), Err(Error::Unsupported { .. })));
    let mixed = [
        npu("a2-1", 0, "Ascend910B3", 64),
        npu("a2-1", 1, "Ascend310P3", 24),
    ];
    assert!(matches!(fit(&spec, &mixed), Err(Error::Unsupported { .. })));
    assert!(matches!(fit(&spec, &[]), Err(Error::Unsupported { .. })));
}

#[test]
fn ascend_310p_runs_float16_and_refuses_bfloat16() {
    let duo = [
        npu("duo-1", 0, "Ascend310P3", 24),
        npu("duo-1", 1, "Ascend310P3", 24),
    ];
    let estimate = fit(&spec("Qwen2-7B-Instruct", &[]), &duo).unwrap();
    assert_eq!(estimate.details["dtype"], "float16");
    assert_eq!(
        estimate.launch_parameters,
        [
            LaunchArgument::new("--max-seq-len", ["8192"]),
            LaunchArgument::new("--dtype", ["float16"])
        ]
    );
    let err = fit(&spec("Qwen2-7B-Instruct", &["--dtype", "bfloat16"]), &duo).unwrap_err();
    assert_eq!(
        err,
        Error::invalid_parameter("--dtype", "Ascend 310P NPUs have no bfloat16; use float16")
    );
}

#[test]
fn float32_doubles_bf16_weights() {
    let bf16 = fit(&spec("Llama-3.1-8B-Instruct", &[]), &a2("a2-1", [0])).unwrap();
    let devices = a2("a2-1", [0]);
    let spec32 = spec("Llama-3.1-8B-Instruct", &["--dtype", "float32"]);
    let facts = facts(&spec32);
    let backend = MindIe::new();
    let fp32 = backend
        .prepare(&facts, &spec32)
        .unwrap()
        .estimator()
        .estimate(&EstimateRequest {
            devices,
            host: host("a2-1"),
            layout: Layout::Single,
        })
        .unwrap();
    assert_eq!(
        fp32.devices[0].components.weights,
        2 * bf16.devices[0].components.weights
    );
    assert_eq!(
        fp32.devices[0].components.kv,
        2 * bf16.devices[0].components.kv
    );
}

#[test]
fn mla_caches_one_latent_per_layer_on_every_npu() {
    let spec = spec("DeepSeek-V3", &["--max-seq-len", "4096"]);
    let facts = facts(&spec);
    let backend = MindIe::new();
    let estimate = backend
        .prepare(&facts, &spec)
        .unwrap()
        .estimator()
        .estimate(&EstimateRequest {
            devices: a2("a2-1", 0..8)
                .into_iter()
                .chain(a2("a2-2", 0..8))
                .collect(),
            host: host("a2-1"),
            layout: Layout::Parallel {
                tensor_parallel: 16,
                pipeline_parallel: 1,
            },
        })
        .unwrap();
    // 61 layers × (kv_lora_rank 512 + rope dim 64) × 2 bytes (bf16 default).
    assert_eq!(estimate.details["kv_bytes_per_token"], 61 * 576 * 2);
}

/// Every refusal of a parameter, with its message.
#[test]
fn validation_errors() {
    let cases: &[&[&str]] = &[
        &["--max-batch-sise", "8"],
        &["--port", "8080"],
        &["8080"],
        &["--max-link-num", "0"],
        &["--max-link-num", "1001"],
        &["--token-timeout", "0"],
        &["--e2e-timeout", "3601"],
        &["--max-seq-len", "0"],
        &["--max-seq-len", "4096", "--max-input-token-len", "8192"],
        &["--cpu-mem-size", "-1"],
        &["--npu-memory-fraction", "0"],
        &["--npu-memory-fraction", "1.5"],
        &["--npu-memory-fraction", "most"],
        &["--cache-block-size", "96"],
        &["--cache-block-size", "0"],
        &["--max-batch-size", "0"],
        &["--max-batch-size", "5001"],
        &["--max-batch-size", "32", "--max-prefill-batch-size", "64"],
        &["--max-prefill-batch-size", "0"],
        &["--max-batch-size", "64", "--max-preempt-count", "65"],
        &["--prefill-time-ms-per-req", "1001"],
        &["--decode-time-ms-per-req", "-1"],
        &["--prefill-policy-type", "4"],
        &["--decode-policy-type", "9"],
        &["--max-queue-delay-microseconds", "499"],
        &["--max-queue-delay-microseconds", "1000001"],
        &["--dtype", "int8"],
        &["--log-level", "Trace"],
        &["--rope-scaling", "{\"type\": \"yarn\""],
        &["--rope-scaling", "[1, 2]"],
        &["--rope-theta", "-10"],
        &["--override-generation-config", "temperature=0.5"],
        &[
            "--enable-prefix-caching",
            "--rope-scaling",
            "{\"type\": \"yarn\", \"factor\": 4.0}",
        ],
        &["--max-batch-size"],
        &["--metrics=1"],
        &["--tensor-parallel-size", "4"],
        &["--enable-lookahead"],
    ];
    let backend = MindIe::new();
    let report: Vec<String> = cases
        .iter()
        .map(|params| {
            let err = warnings(&backend, &spec("Llama-3.1-8B-Instruct", params)).unwrap_err();
            assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
            format!("{}\n  -> {err}", params.join(" "))
        })
        .collect();
    insta::assert_snapshot!(report.join("\n"));
}

#[test]
fn input_length_is_checked_against_the_derived_sequence_length_at_estimate_time() {
    // Qwen2-7B derives min(32768, 8192) = 8192; 9000 input tokens cannot fit in it.
    let err = fit(
        &spec("Qwen2-7B-Instruct", &["--max-input-token-len", "9000"]),
        &a2("a2-1", [0]),
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::invalid_parameter(
            "--max-input-token-len",
            "must be in the range (0, --max-seq-len (8192)], got 9000"
        )
    );
}

#[test]
fn cpu_offloading_is_refused() {
    let mut spec = spec("Llama-3.1-8B-Instruct", &[]);
    spec.cpu_offloading = Some(true);
    let mindie = MindIe::new();
    let err = mindie
        .capabilities()
        .check_spec(mindie.id(), &spec)
        .unwrap_err();
    assert!(err.to_string().contains("CPU offloading"), "{err}");
}
