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
}
