//! `config.json` typing against the published configs of named models
//! (tests/fixtures/hf/<model>/config.json).

use std::path::{Path, PathBuf};

use inferkit_formats::Error;
use inferkit_formats::hf::{HfConfig, HfModel, LayerAttention, QuantMethod};
use proptest::prelude::*;
use serde_json::json;

fn fixture(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/hf")
        .join(model)
}

fn config(model: &str) -> HfConfig {
    HfConfig::read(&fixture(model).join("config.json")).unwrap()
}

/// (attention heads, KV heads, layers, head dim) of the text model.
fn geometry(c: &HfConfig) -> (u64, u64, u64, u64) {
    let t = &c.text;
    (
        t.num_attention_heads.unwrap(),
        t.num_key_value_heads.unwrap(),
        t.num_hidden_layers.unwrap(),
        t.head_dim.unwrap(),
    )
}

#[test]
fn llama_3_1_8b() {
    let c = config("Llama-3.1-8B-Instruct");
    assert_eq!(c.architectures, ["LlamaForCausalLM"]);
    assert_eq!(geometry(&c), (32, 8, 32, 128));
    let t = &c.text;
    assert_eq!(t.location, "");
    assert_eq!(t.hidden_size, Some(4096));
    assert_eq!(t.intermediate_size, Some(14336));
    assert_eq!(t.vocab_size, Some(128256));
    assert_eq!(t.max_position_embeddings, Some(131072));
    assert_eq!(t.tie_word_embeddings, Some(false));
    assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
    let rope = t.rope_scaling.as_ref().unwrap();
    assert_eq!(rope.rope_type.as_deref(), Some("llama3"));
    assert_eq!(rope.factor, Some(8.0));
    assert_eq!(rope.original_max_position_embeddings, Some(8192));
    assert_eq!(t.sliding_window, None);
    assert_eq!(t.layer_attention, vec![LayerAttention::Full; 32]);
    assert!(t.moe.is_none() && t.mla.is_none() && c.quantization.is_none() && c.vision.is_none());
    // The published parameter count of Llama-3.1-8B, exactly.
    assert_eq!(c.estimated_parameters(), Some(8_030_261_248));
}

#[test]
fn qwen2_5_72b_window_disabled() {
    let c = config("Qwen2.5-72B-Instruct");
    assert_eq!(geometry(&c), (64, 8, 80, 128));
    assert_eq!(c.text.vocab_size, Some(152064));
    // `sliding_window: 131072` is present but `use_sliding_window` is false.
    assert_eq!(c.text.sliding_window, None);
    assert_eq!(c.text.sliding_layers(), 0);
    // 72.7B as published on the model card: q/k/v biases included.
    assert_eq!(c.estimated_parameters(), Some(72_706_203_648));
}

#[test]
fn qwen2_7b() {
    let c = config("Qwen2-7B-Instruct");
    assert_eq!(geometry(&c), (28, 4, 28, 128));
    assert_eq!(c.text.intermediate_size, Some(18944));
    assert_eq!(c.text.max_position_embeddings, Some(32768));
}

#[test]
fn mixtral_8x7b_moe() {
    let c = config("Mixtral-8x7B-Instruct-v0.1");
    assert_eq!(geometry(&c), (32, 8, 32, 128));
    let moe = c.text.moe.as_ref().unwrap();
    assert_eq!(moe.num_experts, 8);
    assert_eq!(moe.num_experts_per_tok, Some(2));
    assert_eq!(moe.moe_intermediate_size, None);
    assert_eq!(c.text.sliding_window, None);
    // 46.7B: the published total of Mixtral-8x7B.
    assert_eq!(c.estimated_parameters(), Some(46_702_792_704));
}

#[test]
fn deepseek_v3_mla_moe_fp8() {
    let c = config("DeepSeek-V3");
    let t = &c.text;
    assert_eq!(t.num_attention_heads, Some(128));
    assert_eq!(t.num_key_value_heads, Some(128));
    assert_eq!(t.num_hidden_layers, Some(61));
    let mla = t.mla.as_ref().unwrap();
    assert_eq!(
        (
            mla.kv_lora_rank,
            mla.q_lora_rank,
            mla.qk_nope_head_dim,
            mla.qk_rope_head_dim,
            mla.v_head_dim
        ),
        (512, Some(1536), 128, 64, 128)
    );
    let moe = t.moe.as_ref().unwrap();
    assert_eq!(moe.num_experts, 256);
    assert_eq!(moe.num_experts_per_tok, Some(8));
    assert_eq!(moe.moe_intermediate_size, Some(2048));
    assert_eq!(moe.n_shared_experts, Some(1));
    assert_eq!(moe.first_k_dense_replace, Some(3));
    let q = c.quantization.as_ref().unwrap();
    assert_eq!(q.method, QuantMethod::Fp8);
    assert_eq!(q.bits, Some(8));
    assert_eq!(q.weight_block_size, Some(vec![128, 128]));
    let rope = t.rope_scaling.as_ref().unwrap();
    assert_eq!(rope.rope_type.as_deref(), Some("yarn"));
    assert_eq!(rope.factor, Some(40.0));
    // DeepSeek-V3 has 671B parameters without its multi-token-prediction module.
    let estimate = c.estimated_parameters().unwrap();
    assert!(
        (670_500_000_000..671_500_000_000).contains(&estimate),
        "{estimate}"
    );
}

#[test]
fn gemma_3_27b_nested_text_config_and_defaults() {
    let c = config("gemma-3-27b-it");
    assert_eq!(c.model_type.as_deref(), Some("gemma3"));
    let t = &c.text;
    assert_eq!(t.location, "text_config");
    assert_eq!(t.model_type.as_deref(), Some("gemma3_text"));
    assert_eq!(geometry(&c), (32, 16, 62, 128));
    assert_eq!(t.hidden_size, Some(5376));
    // Omitted in the file, supplied by transformers' Gemma3TextConfig.
    assert_eq!(t.vocab_size, Some(262208));
    assert_eq!(t.max_position_embeddings, Some(131072));
    assert_eq!(t.tie_word_embeddings, Some(true));
    assert_eq!(t.sliding_window, Some(1024));
    // Pattern 6: every sixth layer global.
    assert_eq!(t.layer_attention[0], LayerAttention::Sliding);
    assert_eq!(t.layer_attention[5], LayerAttention::Full);
    assert_eq!(t.layer_attention[59], LayerAttention::Full);
    assert_eq!(t.layer_attention[61], LayerAttention::Sliding);
    assert_eq!(t.sliding_layers(), 52);
    assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
    let v = c.vision.as_ref().unwrap();
    assert_eq!(v.model_type.as_deref(), Some("siglip_vision_model"));
    assert_eq!(
        (v.hidden_size, v.num_hidden_layers, v.num_attention_heads),
        (Some(1152), Some(27), Some(16))
    );
    // "27B" (text model only; the 0.4B SigLIP tower is not counted).
    let estimate = c.estimated_parameters().unwrap();
    assert!(
        (26_500_000_000..27_500_000_000).contains(&estimate),
        "{estimate}"
    );
}

#[test]
fn gemma_2_9b_alternating_window() {
    let c = config("gemma-2-9b-it");
    assert_eq!(geometry(&c), (16, 8, 42, 256));
    assert_eq!(c.text.sliding_window, Some(4096));
    assert_eq!(c.text.layer_attention[0], LayerAttention::Sliding);
    assert_eq!(c.text.layer_attention[1], LayerAttention::Full);
    assert_eq!(c.text.sliding_layers(), 21);
    assert_eq!(c.torch_dtype.as_deref(), Some("float32"));
    assert_eq!(c.text.tie_word_embeddings, Some(true));
}

#[test]
fn llama_3_2_vision() {
    let c = config("Llama-3.2-11B-Vision-Instruct");
    assert_eq!(c.text.location, "text_config");
    assert_eq!(geometry(&c), (32, 8, 40, 128));
    assert_eq!(c.text.vocab_size, Some(128256));
    let v = c.vision.as_ref().unwrap();
    assert_eq!(
        (v.hidden_size, v.num_hidden_layers, v.num_attention_heads),
        (Some(1280), Some(32), Some(16))
    );
    assert_eq!((v.image_size, v.patch_size), (Some(560), Some(14)));
}

#[test]
fn qwen2_vl_flat_text_and_vision_width() {
    let c = config("Qwen2-VL-7B-Instruct");
    assert_eq!(c.text.location, "");
    assert_eq!(geometry(&c), (28, 4, 28, 128));
    assert_eq!(
        c.text.rope_scaling.as_ref().unwrap().rope_type.as_deref(),
        Some("mrope")
    );
    let v = c.vision.as_ref().unwrap();
    // `embed_dim` is the tower's width; its `hidden_size` (3584) is the merger's output.
    assert_eq!(v.hidden_size, Some(1280));
    assert_eq!(v.num_hidden_layers, Some(32));
    assert_eq!(v.num_attention_heads, Some(16));
    assert_eq!(v.intermediate_size, Some(5120));
}

#[test]
fn internvl3_llm_config() {
    let c = config("InternVL3-78B");
    assert_eq!(c.architectures, ["InternVLChatModel"]);
    assert_eq!(c.text.location, "llm_config");
    assert_eq!(c.text.model_type.as_deref(), Some("qwen2"));
    assert_eq!(geometry(&c), (64, 8, 80, 128));
    assert_eq!(c.text.vocab_size, Some(151674));
    let v = c.vision.as_ref().unwrap();
    assert_eq!(
        (v.hidden_size, v.num_hidden_layers, v.num_attention_heads),
        (Some(3200), Some(45), Some(25))
    );
}

#[test]
fn qwen2_5_awq_quantization() {
    let c = config("Qwen2.5-7B-Instruct-AWQ");
    let q = c.quantization.as_ref().unwrap();
    assert_eq!(q.method, QuantMethod::Awq);
    assert_eq!((q.bits, q.group_size), (Some(4), Some(128)));
    assert_eq!(q.raw["version"], "gemm");
    assert_eq!(c.torch_dtype.as_deref(), Some("float16"));
}

#[test]
fn qwen3_fp8_quantization() {
    let c = config("Qwen3-8B-FP8");
    assert_eq!(geometry(&c), (32, 8, 36, 128));
    let q = c.quantization.as_ref().unwrap();
    assert_eq!(q.method, QuantMethod::Fp8);
    assert_eq!(q.bits, Some(8));
    assert_eq!(q.group_size, None);
    assert_eq!(q.weight_block_size, Some(vec![128, 128]));
    assert_eq!(c.text.sliding_window, None);
}

#[test]
fn bge_embedding_and_reranker() {
    for (model, arch) in [
        ("bge-m3", "XLMRobertaModel"),
        ("bge-reranker-v2-m3", "XLMRobertaForSequenceClassification"),
    ] {
        let c = config(model);
        assert_eq!(c.architectures, [arch]);
        // No num_key_value_heads or head_dim: multi-head attention, 1024 / 16.
        assert_eq!(geometry(&c), (16, 16, 24, 64), "{model}");
        assert_eq!(c.text.vocab_size, Some(250002));
        assert_eq!(c.text.max_position_embeddings, Some(8194));
        assert_eq!(c.torch_dtype.as_deref(), Some("float32"));
    }
}

#[test]
fn gpt_oss_20b_mxfp4_and_layer_types() {
    let c = config("gpt-oss-20b");
    assert_eq!(geometry(&c), (64, 8, 24, 64));
    let moe = c.text.moe.as_ref().unwrap();
    assert_eq!((moe.num_experts, moe.num_experts_per_tok), (32, Some(4)));
    assert_eq!(c.text.sliding_window, Some(128));
    assert_eq!(c.text.layer_attention[0], LayerAttention::Sliding);
    assert_eq!(c.text.layer_attention[23], LayerAttention::Full);
    assert_eq!(c.text.sliding_layers(), 12);
    let q = c.quantization.as_ref().unwrap();
    assert_eq!((q.method.clone(), q.bits), (QuantMethod::Mxfp4, Some(4)));
    assert_eq!(c.text.attention_bias, Some(true));
}

#[test]
fn generation_config_eos_list() {
    let m = HfModel::open(&fixture("Llama-3.1-8B-Instruct")).unwrap();
    let document = m.generation_document().unwrap().unwrap();
    assert_eq!(document["temperature"], 0.6);
    let g = m.generation.unwrap();
    assert_eq!(g.eos_token_id, [128001, 128008, 128009]);
    assert_eq!(g.max_length, None);
}

/// The typed config keeps the keys the estimators read; the document is read again on demand
/// (a launcher rewriting `config.json`), not kept.
#[test]
fn the_config_document_is_read_again_not_kept() {
    let m = HfModel::open(&fixture("Llama-3.1-8B-Instruct")).unwrap();
    let typed = serde_json::to_value(&m.config).unwrap();
    assert!(typed.get("raw").is_none(), "{typed}");
    let document = m.config_document().unwrap();
    assert_eq!(document["rope_scaling"]["rope_type"], "llama3");
    assert_eq!(document["bos_token_id"], 128000);
}

fn parse(text: &str) -> Result<HfConfig, Error> {
    HfConfig::parse(text, Path::new("x/config.json"))
}

fn parse_error(text: &str) -> (u64, String) {
    match parse(text) {
        Err(Error::Parse { file, offset, what }) => {
            assert_eq!(file, Path::new("x/config.json"));
            (offset, what)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn wrong_type_names_file_key_and_offset() {
    let text = r#"{"model_type": "gemma3", "text_config": {"num_hidden_layers": "62"}}"#;
    let (offset, what) = parse_error(text);
    assert!(what.contains("text_config.num_hidden_layers"), "{what}");
    let value = text.find("\"62\"").unwrap() as u64;
    assert!((value..=value + 4).contains(&offset), "{offset} vs {value}");
}

#[test]
fn syntax_error_offset() {
    let text = "{\n  \"hidden_size\": 4096,\n  \"num_hidden_layers\": 32,,\n}";
    let (offset, _) = parse_error(text);
    assert_eq!(offset, text.find(",,").unwrap() as u64 + 1);
}

#[test]
fn nested_section_of_wrong_type() {
    let (_, what) = parse_error(r#"{"text_config": 5}"#);
    assert!(what.contains("text_config"), "{what}");
}

#[test]
fn layer_types_must_match_layer_count() {
    let (_, what) = parse_error(
        r#"{"num_hidden_layers": 3, "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention"]}"#,
    );
    assert!(
        what.contains("layer_types") && what.contains("3 layers"),
        "{what}"
    );
}

#[test]
fn quantization_without_method() {
    let (_, what) = parse_error(r#"{"quantization_config": {"bits": 4}}"#);
    assert!(what.contains("quant_method"), "{what}");
}

#[test]
fn hostile_layer_count_is_refused_not_allocated() {
    let (_, what) = parse_error(r#"{"num_hidden_layers": 18446744073709551615}"#);
    assert!(what.contains("num_hidden_layers"), "{what}");
}

#[test]
fn compressed_tensors_and_bitsandbytes_bits() {
    let ct = parse(
        r#"{"quantization_config": {"quant_method": "compressed-tensors", "format": "pack-quantized",
            "config_groups": {"group_0": {"targets": ["Linear"],
                "weights": {"num_bits": 4, "group_size": 128, "type": "int", "strategy": "group"}}}}}"#,
    )
    .unwrap();
    let q = ct.quantization.unwrap();
    assert_eq!(q.method, QuantMethod::CompressedTensors);
    assert_eq!((q.bits, q.group_size), (Some(4), Some(128)));

    let bnb =
        parse(r#"{"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true}}"#)
            .unwrap();
    let q = bnb.quantization.unwrap();
    assert_eq!((q.method, q.bits), (QuantMethod::BitsAndBytes, Some(4)));
}

#[test]
fn mistral_window_on_every_layer() {
    // mistralai/Mistral-7B-v0.1: a 4096-token window on all 32 layers.
    let c = parse(
        r#"{"model_type": "mistral", "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "hidden_size": 4096, "sliding_window": 4096}"#,
    )
    .unwrap();
    assert_eq!(c.text.sliding_window, Some(4096));
    assert_eq!(c.text.layer_attention, vec![LayerAttention::Sliding; 32]);
}

#[test]
fn qwen2_max_window_layers_when_enabled() {
    let c = parse(
        r#"{"model_type": "qwen2", "num_hidden_layers": 4, "use_sliding_window": true,
            "sliding_window": 4096, "max_window_layers": 2}"#,
    )
    .unwrap();
    use LayerAttention::{Full, Sliding};
    assert_eq!(c.text.layer_attention, [Full, Full, Sliding, Sliding]);
}

proptest! {
    /// Any sizes, however large, give a config or a typed error, and the estimate never
    /// overflows into a panic.
    #[test]
    fn arbitrary_sizes_never_panic(
        sizes in proptest::collection::vec(any::<u64>(), 9),
        layers in 0u64..70_000,
        mla in any::<bool>(),
        window in proptest::option::of(any::<u64>()),
    ) {
        let mut config = json!({
            "model_type": "deepseek_v3",
            "hidden_size": sizes[0], "num_hidden_layers": layers,
            "num_attention_heads": sizes[1], "num_key_value_heads": sizes[2],
            "intermediate_size": sizes[3], "vocab_size": sizes[4],
            "n_routed_experts": sizes[5], "moe_intermediate_size": sizes[6],
            "n_shared_experts": sizes[7], "first_k_dense_replace": sizes[8],
            "sliding_window": window, "sliding_window_pattern": sizes[7],
        });
        if mla {
            config["kv_lora_rank"] = json!(sizes[2]);
            config["q_lora_rank"] = json!(sizes[3]);
            config["qk_nope_head_dim"] = json!(sizes[6]);
            config["qk_rope_head_dim"] = json!(sizes[8]);
            config["v_head_dim"] = json!(sizes[0]);
        }
        if let Ok(c) = parse(&config.to_string()) {
            let _ = c.estimated_parameters();
        }
    }

    /// Arbitrary text never panics the config reader.
    #[test]
    fn arbitrary_text_never_panics(text in r#"[{}\[\]":,0-9a-z_ ]{0,160}"#) {
        let _ = parse(&text);
    }
}
