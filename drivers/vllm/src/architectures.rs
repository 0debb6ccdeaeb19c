//! Model categories from `architectures`, as GPUStack's `detect_model_type` does with its
//! registry synced from vLLM 0.10.1.1 (embedding list first, then rerankers, then LLMs).

use inferkit_core::Category;

/// Pooling architectures vLLM serves as embedding models.
const EMBEDDING: &[&str] = &[
    "BertModel",
    "Gemma2Model",
    "Gemma3TextModel",
    "GritLM",
    "GteModel",
    "GteNewModel",
    "LlamaModel",
    "MistralModel",
    "ModernBertModel",
    "NomicBertModel",
    "Qwen2Model",
    "Qwen3Model",
    "RobertaForMaskedLM",
    "RobertaModel",
    "XLMRobertaModel",
];

/// Cross-encoder architectures vLLM serves as rerankers.
const RERANKER: &[&str] = &[
    "BertForSequenceClassification",
    "GemmaForSequenceClassification",
    "GteNewForSequenceClassification",
    "JinaVLForRanking",
    "LlamaForSequenceClassification",
    "ModernBertForSequenceClassification",
    "Qwen2ForSequenceClassification",
    "Qwen3ForSequenceClassification",
    "RobertaForSequenceClassification",
    "XLMRobertaForSequenceClassification",
];

/// Architectures whose attention layers vLLM builds as `AttentionType.ENCODER_ONLY`
/// (`model_executor/models/bert.py`, `roberta.py`, `modernbert.py`, `bert_with_rope.py`). The
/// v1 engine gives such layers no KV cache spec (`GPUModelRunner.get_kv_cache_spec`: "encoder-only
/// attention does not need KV cache"), and with no spec at all it skips memory profiling and
/// allocates no KV cache (`EngineCore._initialize_kv_caches`), in 0.10.1.1 and 0.33.0 alike.
const ENCODER_ONLY: &[&str] = &[
    "BertForSequenceClassification",
    "BertModel",
    "GteModel",
    "GteNewForSequenceClassification",
    "GteNewModel",
    "ModernBertForSequenceClassification",
    "ModernBertModel",
    "NomicBertModel",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaModel",
    "XLMRobertaForSequenceClassification",
    "XLMRobertaModel",
];

/// Whether vLLM runs the model with encoder-only attention, hence without a KV cache.
pub(crate) fn is_encoder_only(architectures: &[String]) -> bool {
    architectures
        .iter()
        .any(|a| ENCODER_ONLY.contains(&a.as_str()))
}

/// Generative architectures without one of the usual class-name suffixes.
const LLM_NAMES: &[&str] = &[
    "ChatGLMModel",
    "InternVLChatModel",
    "MiniCPMV",
    "QWenLMHeadModel",
    "Step3VLForConditionalGeneration",
];

/// Class-name suffixes of generative models (`LlamaForCausalLM`, `Qwen2VLForConditionalGeneration`).
const LLM_SUFFIXES: &[&str] = &["ForCausalLM", "ForConditionalGeneration", "LMHeadModel"];

/// The category of the first architecture found, embedding list first.
pub(crate) fn category_of(architectures: &[String]) -> Option<Category> {
    let has = |list: &[&str]| architectures.iter().any(|a| list.contains(&a.as_str()));
    if has(EMBEDDING) {
        return Some(Category::Embedding);
    }
    if has(RERANKER) {
        return Some(Category::Reranker);
    }
    let generative = architectures
        .iter()
        .any(|a| LLM_NAMES.contains(&a.as_str()) || LLM_SUFFIXES.iter().any(|s| a.ends_with(s)));
    generative.then_some(Category::Llm)
}

/// GGUF architectures (`general.architecture`) vLLM can load: its GGUF loader maps the file to
/// a Hugging Face config through transformers' GGUF support, so only those families work.
pub(crate) const GGUF_ARCHITECTURES: &[&str] = &[
    "bloom",
    "deepseek2",
    "falcon",
    "gemma2",
    "gemma3",
    "gpt2",
    "llama",
    "mistral",
    "phi3",
    "qwen2",
    "qwen2moe",
    "qwen3",
    "qwen3moe",
    "stablelm",
    "starcoder2",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn of(names: &[&str]) -> Option<Category> {
        category_of(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn lists_are_checked_in_gpustack_order() {
        assert_eq!(of(&["XLMRobertaModel"]), Some(Category::Embedding));
        assert_eq!(
            of(&["XLMRobertaForSequenceClassification"]),
            Some(Category::Reranker)
        );
        assert_eq!(
            of(&["Qwen2VLForConditionalGeneration"]),
            Some(Category::Llm)
        );
        assert_eq!(of(&["InternVLChatModel"]), Some(Category::Llm));
        assert_eq!(of(&["WhisperEncoder"]), None);
    }

    #[test]
    fn bert_family_is_encoder_only_and_decoder_embeddings_are_not() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_encoder_only(&names(&["XLMRobertaModel"])));
        assert!(is_encoder_only(&names(&["BertForSequenceClassification"])));
        // Qwen3-Embedding and e5-mistral pool a causal decoder, which keeps a KV cache.
        assert!(!is_encoder_only(&names(&["Qwen3Model"])));
        assert!(!is_encoder_only(&names(&["MistralModel"])));
    }
}
