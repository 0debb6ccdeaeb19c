//! The vLLM backend on real model configs: selection, parallel-size rules, the memory model's
//! outputs and the conformance suite.

mod common;

use common::*;
use inferkit_core::{Backend, Category, Claim, Error, LaunchArgument, ModelSpec};
use inferkit_vllm::{Vllm, VllmDetails, WeightsFrom};

fn select(spec: &ModelSpec) -> (Claim, Vec<Category>, String) {
    let s = Vllm::new().select(&facts(spec), spec);
    (s.claim, s.categories, s.reason)
}

#[test]
fn conformance_on_llama_3_1_8b() {
    let spec = spec("hf", "Llama-3.1-8B-Instruct", &[]);
    inferkit_core::testkit::check_backend(
        &Vllm::new(),
        &facts(&spec),
        &spec,
        &[rtx4090("w1", 0), rtx4090("w1", 1)],
        &host("w1"),
    );
}

#[test]
fn categories_come_from_architectures() {
    let cases = [
        ("Llama-3.1-8B-Instruct", Category::Llm),
        ("Qwen2-VL-7B-Instruct", Category::Llm),
        ("InternVL3-78B", Category::Llm),
        ("bge-m3", Category::Embedding),
        ("bge-reranker-v2-m3", Category::Reranker),
    ];
    for (name, category) in cases {
        let (claim, categories, reason) = select(&spec("hf", name, &[]));
        assert_eq!(
            (claim, categories),
            (Claim::Supports, vec![category]),
            "{name}: {reason}"
        );
    }
}

#[test]
fn gguf_only_when_chosen_and_only_known_architectures() {
    let mut llama = spec("gguf", "llama-3.2-1b-Q4_K_M.header.gguf", &[]);
    assert_eq!(select(&llama).0, Claim::Refuses);
    llama.backend = Some("vllm".into());
    assert_eq!(select(&llama).0, Claim::Supports);
    let mut bert = spec("gguf", "bge-small-en-v1.5-F16.header.gguf", &[]);
    bert.backend = Some("vllm".into());
    let (claim, _, reason) = select(&bert);
    assert_eq!(claim, Claim::Refuses);
    assert!(
        reason.contains("cannot load GGUF architecture `bert`"),
        "{reason}"
    );
}

#[test]
fn gguf_on_vllm_is_sized_from_the_header_and_served_by_file() {
    let mut spec = spec("gguf", "llama-3.2-1b-Q4_K_M.header.gguf", &[]);
    spec.backend = Some("vllm".into());
    let specs = launch(&spec, &[rtx4090("w1", 0)]).unwrap();
    let args = &specs[0].args;
    assert_eq!(args[0], "serve");
    assert!(
        args[1].ends_with("llama-3.2-1b-Q4_K_M.header.gguf"),
        "{args:?}"
    );
    let estimate = fit(&spec, &[rtx4090("w1", 0)]).unwrap();
    // Llama-3.2-1B Q4_K_M weighs about 0.8 GB.
    let weights = estimate.devices[0].components.weights as f64 / GIB as f64;
    assert!((0.6..1.1).contains(&weights), "{weights} GiB");
}

#[test]
fn tensor_parallel_sizes_follow_heads_and_kv_heads() {
    // Qwen2-7B: 28 heads, 4 KV heads (hard case 11): TP 8 divides neither.
    let spec = spec("hf", "Qwen2-7B-Instruct", &["--tensor-parallel-size", "8"]);
    let devices: Vec<_> = (0..8).map(|i| h100("w1", i)).collect();
    let err = fit(&spec, &devices).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported: tensor parallel 8 does not divide 28 attention heads; valid sizes: 1, 2, 4, 28"
    );
    // Gemma-3-27B: 32 heads (hard case 9): TP 3 is refused, the vision tower's 16 heads
    // rule out 32.
    let spec = spec_gemma3(&["-tp", "3"]);
    let devices: Vec<_> = (0..3).map(|i| h100("w1", i)).collect();
    let err = fit(&spec, &devices).unwrap_err();
    assert!(
        err.to_string().ends_with("valid sizes: 1, 2, 4, 8, 16"),
        "{err}"
    );
}

fn spec_gemma3(params: &[&str]) -> ModelSpec {
    spec("hf", "gemma-3-27b-it", params)
}

#[test]
fn internvl_tp_is_decided_by_its_text_config() {
    // Hard case 10: the InternViT tower's 25 heads must not veto TP 8 of the Qwen2.5-72B LLM.
    let spec = spec("hf", "InternVL3-78B", &[]);
    let devices: Vec<_> = (0..8).map(|i| h100("w1", i)).collect();
    let estimate = fit(&spec, &devices).unwrap();
    assert_eq!(estimate.details["tensor_parallel"], 8);
}

#[test]
fn three_gpus_fall_back_to_pipeline_stages() {
    let spec = spec("hf", "Llama-3.1-8B-Instruct", &[]);
    let devices: Vec<_> = (0..3).map(|i| rtx4090("w1", i)).collect();
    let estimate = fit(&spec, &devices).unwrap();
    assert_eq!(
        (
            estimate.details["tensor_parallel"].as_u64(),
            estimate.details["pipeline_parallel"].as_u64()
        ),
        (Some(1), Some(3))
    );
}

#[test]
fn max_model_len_is_the_largest_fitting_multiple_of_256() {
    let spec = spec("hf", "Llama-3.1-8B-Instruct", &[]);
    let estimate = fit(&spec, &[rtx4090("w1", 0)]).unwrap();
    let first = &estimate.launch_parameters[0];
    assert_eq!(first.flag, "--max-model-len");
    let len: u64 = first.value().unwrap().parse().unwrap();
    assert!(
        len.is_multiple_of(256) && len < 131_072 && len > 16_384,
        "{len}"
    );
    assert!(
        estimate
            .notes
            .iter()
            .any(|n| n.contains("--max-model-len set to"))
    );
    // Issue 17: the estimated KV capacity holds the chosen length plus the 5% error band, and
    // one 256-token step more would not.
    let tokens = estimate.details["kv_cache_tokens"].as_u64().unwrap();
    assert!(len * 105 <= tokens * 100, "{tokens} tokens for {len}");
    assert!(
        (len + 256) * 105 > tokens * 100,
        "{tokens} tokens for {len}"
    );
    let concurrency = estimate.details["concurrency_at_max_model_len"]
        .as_f64()
        .unwrap();
    assert!((1.05..1.1).contains(&concurrency), "{concurrency}");
    let kv_note = format!("KV cache: {tokens} tokens (");
    let full_length = format!("for --max-model-len {len}: {concurrency:.2} sequences");
    assert!(
        estimate
            .notes
            .iter()
            .any(|n| n.contains(&kv_note) && n.contains(&full_length)),
        "{:?}",
        estimate.notes
    );
    // What would give more: each alternative is a longer context than the one chosen.
    let longer = &estimate.details["longer_context"];
    for key in ["gpu_memory_utilization", "kv_cache_dtype_fp8", "more_gpus"] {
        let alternative = longer[key]["max_model_len"].as_u64().unwrap_or(0);
        assert!(alternative > len, "{key}: {longer}");
    }
    assert_eq!(longer["more_gpus"]["tensor_parallel"], 2);
    assert!(
        estimate
            .notes
            .iter()
            .any(|n| n.starts_with("--kv-cache-dtype fp8 would allow --max-model-len")),
        "{:?}",
        estimate.notes
    );
}

#[test]
fn fp8_kv_cache_doubles_the_tokens() {
    let bf16 = fit(
        &spec("hf", "Llama-3.1-8B-Instruct", &["--max-model-len", "8192"]),
        &[rtx4090("w1", 0)],
    )
    .unwrap();
    let fp8 = fit(
        &spec(
            "hf",
            "Llama-3.1-8B-Instruct",
            &["--max-model-len", "8192", "--kv-cache-dtype", "fp8"],
        ),
        &[rtx4090("w1", 0)],
    )
    .unwrap();
    let blocks =
        |e: &inferkit_core::ResourceEstimate| e.details["kv_cache_blocks"].as_u64().unwrap();
    // Twice the blocks, give or take the one that flooring the halved block size gains.
    assert!(
        blocks(&fp8).abs_diff(2 * blocks(&bf16)) <= 1,
        "{} vs {}",
        blocks(&fp8),
        blocks(&bf16)
    );
}

#[test]
fn deepseek_mla_caches_one_latent_per_token_on_every_rank() {
    // 61 layers, kv_lora_rank 512 + rope 64, bf16 cache; TP 8 × PP 2 → 31 layers on stage 0.
    let spec = spec("hf", "DeepSeek-V3", &["-tp", "8", "-pp", "2"]);
    let devices: Vec<_> = (0..16)
        .map(|i| {
            gpu(
                if i < 8 { "w1" } else { "w2" },
                i % 8,
                150_754_820_096,
                "NVIDIA H200",
            )
        })
        .collect();
    let estimate = fit(&spec, &devices).unwrap();
    assert_eq!(estimate.details["kv_block_bytes"], 16 * 576 * 2 * 31);
}

#[test]
fn sliding_window_layers_only_keep_their_window() {
    // Gemma-3-27B: 52 sliding layers (window 1024) and 10 full layers.
    let estimate = fit(
        &spec_gemma3(&["--max-model-len", "32768"]),
        &[h100("w1", 0)],
    )
    .unwrap();
    // Groups of 10 layers (the full count): one page per layer per group member.
    assert_eq!(
        estimate.details["kv_block_bytes"],
        16 * 2 * 16 * 128 * 2 * 10
    );
}

#[test]
fn short_free_memory_lowers_gpu_memory_utilization() {
    let spec = spec("hf", "Llama-3.1-8B-Instruct", &[]);
    let mut gpu = h100("w1", 0);
    gpu.allocatable = 40 * GIB;
    let estimate = fit(&spec, &[gpu.clone()]).unwrap();
    let lowered = estimate
        .launch_parameters
        .iter()
        .find(|p| p.flag == "--gpu-memory-utilization")
        .unwrap();
    let gmu: f64 = lowered.value().unwrap().parse().unwrap();
    assert!(gmu < 0.5 && gmu > 0.45, "{gmu}");
    assert!(estimate.devices[0].claim <= gpu.allocatable);
    // A fraction the user set is kept, and refused when it is not free (hard case 8).
    let spec = spec_with(&["--gpu-memory-utilization", "0.9"]);
    let Err(Error::DoesNotFit { reason, .. }) = fit(&spec, &[gpu]) else {
        panic!("0.9 of an H100 is not free");
    };
    // CUDA's view: the H100's 80 GiB inventory total less the driver's 0.47 GiB reserve.
    assert!(reason.contains("0.9 × 79.18 GiB"), "{reason}");
    assert!(reason.contains("only 39.53 GiB is free"), "{reason}");
}

fn spec_with(params: &[&str]) -> ModelSpec {
    spec("hf", "Llama-3.1-8B-Instruct", params)
}

#[test]
fn too_small_gpus_say_why_with_numbers() {
    let spec = spec("hf", "Qwen2.5-72B-Instruct", &[]);
    let Err(Error::DoesNotFit {
        needed,
        available,
        reason,
    }) = fit(&spec, &[h100("w1", 0)])
    else {
        panic!("72B bf16 does not fit one H100");
    };
    assert!(needed > available, "{needed} vs {available}");
    assert!(reason.contains("weights take"), "{reason}");
}

#[test]
fn cpu_offloading_is_refused() {
    let mut spec = spec("hf", "Llama-3.1-8B-Instruct", &[]);
    spec.cpu_offloading = Some(true);
    let vllm = Vllm::new();
    let err = vllm
        .capabilities()
        .check_spec(vllm.id(), &spec)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("CPU offloading is only supported for GGUF models")
    );
}

#[test]
fn validate_reports_translations() {
    let spec = spec("hf", "bge-m3", &["--task=embed", "--swap-space", "4"]);
    let notes = warnings(&spec).unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
}

/// vllm-memory-observations.md row 3 (vllm#13061): DeepSeek-R1-Distill-Qwen-14B, TP 2 on two
/// RTX 4090, gpu_memory_utilization 0.98: 13.9476 GiB of weights per GPU, 96 KiB of KV per
/// token per GPU, and the default 131072-token context does not fit (capacity 81,536 tokens).
#[test]
fn r1_distill_qwen_14b_on_two_4090s() {
    let mut spec = inferkit_core::ModelSpec::local(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/DeepSeek-R1-Distill-Qwen-14B"),
    );
    spec.backend_parameters = vec!["--gpu-memory-utilization".into(), "0.98".into()];
    let devices = [rtx4090("w1", 0), rtx4090("w1", 1)];
    let estimate = fit(&spec, &devices).unwrap();
    let weights = estimate.devices[0].components.weights as f64 / GIB as f64;
    assert!(
        (weights - 13.9476).abs() / 13.9476 < 0.02,
        "{weights} GiB per GPU"
    );
    assert_eq!(estimate.details["kv_block_bytes"], 16 * 96 * 1024);
    let len = estimate.details["max_model_len"].as_u64().unwrap();
    assert!(len < 131_072, "{len}");
    assert_eq!(
        estimate.launch_parameters[..1],
        [LaunchArgument::new("--max-model-len", [len.to_string()])]
    );
}

#[test]
fn gpt_oss_alternating_window_groups_twelve_layers() {
    // 24 layers alternating sliding (window 128) and full: two groups of 12, so one pool block
    // costs 12 pages and a long sequence pays full price only in the full group.
    let estimate = fit(
        &spec("hf", "gpt-oss-20b", &["--max-model-len", "65536"]),
        &[h100("w1", 0)],
    )
    .unwrap();
    assert_eq!(estimate.details["kv_block_bytes"], 16 * 2 * 8 * 64 * 2 * 12);
    let blocks = estimate.details["kv_cache_blocks"].as_u64().unwrap();
    // vLLM's logged token count: blocks per group × 16.
    assert_eq!(
        estimate.details["kv_cache_tokens"].as_u64().unwrap(),
        blocks / 2 * 16
    );
}

#[test]
fn vision_towers_narrow_the_tensor_parallel_sizes() {
    // Qwen2-VL-7B: the text model takes 1, 2, 4, 28; the 16-head vision tower drops 28.
    let spec = spec("hf", "Qwen2-VL-7B-Instruct", &["-tp", "8"]);
    let devices: Vec<_> = (0..8).map(|i| h100("w1", i)).collect();
    let err = fit(&spec, &devices).unwrap_err();
    assert!(err.to_string().ends_with("valid sizes: 1, 2, 4"), "{err}");
}

/// `--backend-version 0.17.1` has no flag table of its own: its flags are checked against
/// 0.33.0's and its memory sized by 0.17's rules (the Triton sampler, no graphs in the
/// fraction), which the estimate and its warnings say; a version outside 0.8-0.33 is refused.
#[test]
fn a_release_between_the_tables_is_sized_by_its_own_rules() {
    let versioned = |version: &str| {
        let mut spec = spec_with(&["--max-model-len", "8192"]);
        spec.backend_version = Some(version.to_string());
        spec
    };
    let at = |version: &str| fit(&versioned(version), &[h100("w1", 0)]).unwrap();
    let (v17, v33, v11) = (at("0.17.1"), at("0.33.0"), at("0.11.0"));
    assert_eq!(v17.details["vllm_version"], "0.33.0");
    assert_eq!(v17.details["memory_rules"], "0.17.1");
    assert_eq!(v33.details["memory_rules"], "0.33.0");
    // 0.33 counts CUDA graphs inside the fraction; 0.11's sort-based sampler over 1024
    // sequences costs about 2.9 GiB more than 0.17's Triton kernels.
    let tokens =
        |e: &inferkit_core::ResourceEstimate| e.details["kv_cache_tokens"].as_u64().unwrap();
    assert!(
        tokens(&v17) > tokens(&v33),
        "{} {}",
        tokens(&v17),
        tokens(&v33)
    );
    assert!(tokens(&v17) > tokens(&v11) + 2 * (1 << 30) / (128 * 1024));
    let spec = versioned("0.17.1");
    let facts = facts(&spec);
    let backend = Vllm::new();
    let warnings = backend.prepare(&facts, &spec).unwrap().warnings().to_vec();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("flags checked against 0.33.0's table")),
        "{warnings:?}"
    );
    assert!(fit(&versioned("0.7.3"), &[h100("w1", 0)]).is_err());
    assert!(fit(&versioned("0.40.0"), &[h100("w1", 0)]).is_err());
}

/// The details of an estimate read back as `VllmDetails`, the type the estimator wrote them
/// from, with the same values as the JSON keys.
#[test]
fn details_read_back_as_their_type() {
    let spec = spec("hf", "Llama-3.1-8B-Instruct", &[]);
    let estimate = fit(&spec, &[rtx4090("w1", 0)]).unwrap();
    let details: VllmDetails = estimate.details_as().unwrap();
    assert_eq!(
        details.kv_cache_tokens,
        estimate.details["kv_cache_tokens"].as_u64().unwrap()
    );
    assert_eq!(details.weights_from, WeightsFrom::Safetensors);
    let launched = &estimate.launch_parameters[0];
    assert_eq!(launched.flag, "--max-model-len");
    assert_eq!(
        launched.value(),
        Some(details.max_model_len.to_string().as_str())
    );
    // The context was cut, so the estimate says what would hold more.
    assert!(details.longer_context.is_some());
    assert!(details.max_model_len < details.model_max_model_len);
}
