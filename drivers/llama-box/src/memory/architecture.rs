//! How sure the estimate of each llama.cpp architecture is: whether the compute graph the
//! builder in [`super::graph`] replays is llama.cpp's graph for that architecture, and whether
//! real llama.cpp buffers of it were measured (`tests/fixtures/llamacpp-memory`,
//! `drivers/llama-box/tests/accuracy.rs`).
//!
//! Weights, KV cache and output buffers are exact for every architecture whose tensors and
//! cache llama.cpp sizes the usual way; the band covers the compute buffers and what a GPU
//! backend allocates beside them (kernels' own buffers, padding) that the CPU measurements do
//! not show.

use inferkit_core::{ErrorBand, FigureBasis};

/// Band of a measured architecture: compute within 5% and device totals within 2% of
/// llama.cpp's CPU and RPC buffers on every measured row, plus the GPU backends' own
/// allocations around them.
const MEASURED_PERCENT: u32 = 5;

/// Band of an architecture whose graph the builder follows from llama.cpp's source without
/// a measurement of its own (or measured with compute beyond 5%): the largest compute error
/// measured on a modelled architecture was 18.9% (phi3 on an RPC device, flash attention on,
/// before its builder's residual order was followed) while device totals stayed within 3%.
const DERIVED_PERCENT: u32 = 15;

/// Band of an architecture sized with the generic decoder template: recurrent, MLA and
/// parallel blocks change the compute working set by up to a few tens of percent; weights
/// and KV stay exact, so the total is off by less.
const UNMODELLED_PERCENT: u32 = 25;

/// Architectures whose every measured row (compute within 5%, device totals within 2%) is a
/// test in `accuracy.rs`.
const MEASURED: &[&str] = &[
    "llama",
    "qwen2",
    "qwen2moe",
    "qwen3",
    "qwen3moe",
    "gemma",
    "gemma2",
    "gemma3",
    "granite",
    "granitemoe",
    "smollm3",
    "olmo2",
    "olmoe",
    "exaone",
    "internlm2",
    "ernie4_5",
    "glm4",
    "cohere2",
    "gptneox",
    "stablelm",
    "starcoder2",
    "mamba",
    "phi2",
    "phimoe",
    "phi3",
    "nomic-bert",
    "gpt-oss",
    "deepseek2",
    "arcee",
    "ernie4_5-moe",
    "glm4moe",
    "mamba2",
    "olmo",
    "seed_oss",
    "starcoder",
    "bert",
    "jina-bert-v2",
    // Post-norms only (no norm before attention or FFN), as in `src/models/exaone4.cpp`.
    "exaone4",
    "gemma3n",
    "minicpm",
    "minicpm3",
    "hunyuan-moe",
    "bailingmoe",
    "dots1",
    "rwkv6",
    "rwkv7",
    "granitehybrid",
    "jamba",
    "nemotron_h",
    "qwen3next",
    // Attention and Mamba-2 side by side in every layer.
    "falcon-h1",
    "llama4",
    "t5encoder",
    // Llama-style decoder with Q scaled by a per-token attention temperature input.
    "mistral3",
    // Attention and FFN side by side on one norm, as cohere2 without its sliding window.
    "command-r",
    // Attention and FFN side by side, the residual added last; Falcon-40B's attention on a
    // norm of its own (`attn_norm_2`).
    "falcon",
    // DeepSeek-V1 MoE: dense leading layers, then softmax-routed experts beside two shared
    // experts without a gate (`src/models/deepseek.cpp`).
    "deepseek",
    // Fused QKV with its bias, RoPE on half the head, fused gate-up SwiGLU
    // (`src/models/chatglm.cpp`): ChatGLM3 and GLM-4 in their original layout.
    "chatglm",
    // Pre-norm encoder: fused QKV, RoPE, global and sliding-window layers (a second mask),
    // GeGLU FFN, final norm (`src/models/modern-bert.cpp`).
    "modern-bert",
];

/// Architectures whose llama.cpp builder (`src/models/<arch>.cpp` at 0c1e57098) is the
/// pre-norm decoder the builder replays (optional biases, Q/K norms, post-norms, fused QKV or
/// gate-up split by views, gated or sequential FFN, routed and shared experts), not measured.
/// Empty since mistral3 and command-r were measured (session 6); an architecture modelled
/// from its builder before it is measured goes here.
const DERIVED: &[&str] = &[];

/// How an architecture's compute graph is covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coverage {
    /// Modelled and measured.
    Measured,
    /// Modelled from llama.cpp's builder, not measured.
    Derived,
    /// Sized with the generic decoder template.
    Unmodelled,
}

impl Coverage {
    /// The coverage of `arch` (`general.architecture`).
    pub(crate) fn of(arch: &str) -> Coverage {
        if MEASURED.contains(&arch) {
            Coverage::Measured
        } else if DERIVED.contains(&arch) {
            Coverage::Derived
        } else {
            Coverage::Unmodelled
        }
    }

    /// The error band every device's figure carries.
    pub(crate) fn band(self) -> ErrorBand {
        let (percent, basis) = match self {
            Coverage::Measured => (MEASURED_PERCENT, FigureBasis::MeasuredArchitecture),
            Coverage::Derived => (DERIVED_PERCENT, FigureBasis::GraphDerived),
            Coverage::Unmodelled => (UNMODELLED_PERCENT, FigureBasis::UnmodelledArchitecture),
        };
        ErrorBand::new(percent, basis)
    }

    /// A sentence for the estimate's notes when the figure is not backed by a measurement.
    pub(crate) fn note(self, arch: &str) -> Option<String> {
        match self {
            Coverage::Measured => None,
            Coverage::Derived => Some(format!(
                "{arch}: compute buffers follow llama.cpp's graph for this architecture but were \
                 not measured; figures carry a {DERIVED_PERCENT}% band"
            )),
            Coverage::Unmodelled => Some(format!(
                "{arch}: no compute graph of its own here; compute buffers are sized with the \
                 generic decoder template and figures carry a {UNMODELLED_PERCENT}% band"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for arch in MEASURED.iter().chain(DERIVED) {
            assert!(seen.insert(arch), "{arch} is listed twice");
        }
    }

    #[test]
    fn bands_widen_as_coverage_weakens() {
        let measured = Coverage::of("llama").band();
        let derived = Coverage::Derived.band();
        let unmodelled = Coverage::of("jais").band();
        assert_eq!(measured.basis, FigureBasis::MeasuredArchitecture);
        assert_eq!(derived.basis, FigureBasis::GraphDerived);
        assert_eq!(unmodelled.basis, FigureBasis::UnmodelledArchitecture);
        assert!(measured.percent < derived.percent && derived.percent < unmodelled.percent);
        assert!(Coverage::of("llama").note("llama").is_none());
        assert!(Coverage::Derived.note("glm4").unwrap().contains("15% band"));
        assert!(Coverage::of("jais").note("jais").unwrap().contains("jais"));
    }
}
