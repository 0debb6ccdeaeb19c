//! The model architectures MindIE serves, as data.
//!
//! Source: the MindIE 2.0.RC1 model lists that `gpustack-inference-backends.md` § Ascend MindIE
//! points to (hiascend.com `mindie/20RC1/modellist/mindie_modellist_0001.html` for LLMs and
//! `mindie_modellist_0002.html` for multimodal understanding), mapped to the `architectures`
//! class names of the models' `config.json`. GPUStack serves LLMs and VLMs with MindIE;
//! embedding and generation models are not supported. Qwen3 is left out: MindIE 2.0.RC1 fails
//! on Qwen3-32B where vLLM-Ascend works (gpustack/gpustack#2221, hard case 20).

/// One supported architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Architecture {
    /// `architectures[0]` of `config.json`.
    pub class: &'static str,
    /// The families MindIE's model list names for it.
    pub families: &'static str,
    /// Multimodal understanding (image + text in, text out).
    pub vision: bool,
}

const fn llm(class: &'static str, families: &'static str) -> Architecture {
    Architecture {
        class,
        families,
        vision: false,
    }
}

const fn vlm(class: &'static str, families: &'static str) -> Architecture {
    Architecture {
        class,
        families,
        vision: true,
    }
}

/// Every architecture MindIE 2.0.RC1 lists, LLMs first.
pub(crate) const SUPPORTED: &[Architecture] = &[
    llm(
        "LlamaForCausalLM",
        "LLaMA 1/2/3/3.1/3.3, Yi, DeepSeek-R1-Distill-Llama",
    ),
    llm("MistralForCausalLM", "Mistral"),
    llm("MixtralForCausalLM", "Mixtral"),
    llm("QWenLMHeadModel", "Qwen"),
    llm(
        "Qwen2ForCausalLM",
        "Qwen1.5, Qwen2, Qwen2.5, QwQ, DeepSeek-R1-Distill-Qwen",
    ),
    llm("Qwen2MoeForCausalLM", "Qwen1.5-MoE, Qwen2-MoE"),
    llm("DeepseekForCausalLM", "DeepSeek-MoE"),
    llm("DeepseekV2ForCausalLM", "DeepSeek-V2"),
    llm("DeepseekV3ForCausalLM", "DeepSeek-V3, DeepSeek-R1"),
    llm("ChatGLMModel", "ChatGLM2, ChatGLM3, GLM-4"),
    llm("BaichuanForCausalLM", "Baichuan2"),
    llm("InternLM2ForCausalLM", "InternLM2, InternLM2.5"),
    llm("GemmaForCausalLM", "Gemma"),
    llm("BloomForCausalLM", "BLOOM"),
    llm("GPTBigCodeForCausalLM", "StarCoder"),
    llm("Starcoder2ForCausalLM", "StarCoder2"),
    llm("Phi3ForCausalLM", "Phi-3"),
    vlm("Qwen2VLForConditionalGeneration", "Qwen2-VL"),
    vlm("Qwen2_5_VLForConditionalGeneration", "Qwen2.5-VL"),
    vlm("InternVLChatModel", "InternVL2, InternVL2.5"),
    vlm("LlavaForConditionalGeneration", "LLaVA 1.5"),
    vlm("LlavaNextForConditionalGeneration", "LLaVA-NeXT"),
];

/// The supported entry of the first listed architecture.
pub(crate) fn find(architectures: &[String]) -> Option<&'static Architecture> {
    let first = architectures.first()?;
    SUPPORTED.iter().find(|a| a.class == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_unique() {
        let mut names: Vec<_> = SUPPORTED.iter().map(|a| a.class).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SUPPORTED.len());
    }

    #[test]
    fn only_the_first_architecture_counts() {
        let listed = vec![
            "Qwen3ForCausalLM".to_string(),
            "LlamaForCausalLM".to_string(),
        ];
        assert_eq!(find(&listed), None);
        assert_eq!(
            find(&["Qwen2ForCausalLM".to_string()]).map(|a| a.vision),
            Some(false)
        );
    }
}
