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

/// Band of the devices of an offloaded layout of an architecture in [`OFFLOAD_GAPS`]: the
/// largest device-total error measured there, with headroom.
const OFFLOAD_GAP_PERCENT: u32 = 25;

/// Measured architectures whose host rows are within [`MEASURED_PERCENT`] but whose offloaded
/// layouts (the RPC device rows of `measurements-archs-offload.jsonl`) are not on every device,
/// with the largest compute and device-total errors measured there (percent). For the
/// recurrent ones the scheduler splits their layers around the state reads and stores (and,
/// with the cache on the host, runs those on the host), which the replay follows for the
/// models of Mamba layers, Granite 4.0-H's Mamba layers with their FFN, Nemotron-H's Mamba
/// layers and Falcon-H1's attention and Mamba-2 side by side (`graph::recurrent`), RWKV-6/7
/// (`graph::rwkv`) and Qwen3-Next's gated delta-net layers (`graph::delta_net`) only:
/// offloaded, every device carries [`OFFLOAD_GAP_PERCENT`]. Qwen3-Next's and Gemma 3n's
/// (AltUp stack, per-layer inputs, cache-sharing layers: `graph::altup`) left it in session 8,
/// when their device rows came within 5% compute and 2% device total, and so did Jamba's
/// (Mamba-1 layers with routed experts, op by op), once a host layer's experts' weighting, the
/// next layer's state reads and its residual add ran on the next device as the scheduler
/// puts them (the 3:1 split at ngl 6: layer 0 on the host), and Llama 4's (every row exact),
/// once its routed experts weighted their input (`weight_before_ffn`), its layers without
/// RoPE read the attention-temperature input and its sliding-window attention expanded Q, K
/// and V each with its rotation. GPT-NeoX (parallel residual) and Phi-2 left it in session 8
/// too, once their layers ran the attention and the FFN side by side in llama.cpp's graph
/// order (`graph::decoder`'s `ParallelBlock`): every offloaded device row within 0.1%.
/// PhiMoE left it in session 8 once its norms with a bias were in-place RMS norms (every row
/// exact), and StarCoder once its attention took no RoPE (learned positions) and its embedding
/// add ran with the first layer (every row within 0.1%), and OLMo once its norms without
/// weight or bias were `ggml_norm`, not in place and not pinned to the layer's device (every
/// row within 1.8%). Cohere2 left it too once its global (non-sliding) layers ran without RoPE
/// (`LayerShape::no_rope`) and a parallel block's last layer selected the residual's output
/// rows after the FFN (every row exact). SmolLM3 left it in session 9 once its every 4th layer
/// attended without RoPE and a split copied the positions only when some of its layers rotate
/// (every row exact). DeepSeek-V2's latent attention runs in llama.cpp's graph order since
/// session 9 (Q, then V, then K; without flash attention V's contiguous copy before KQ), which
/// made its rows without flash attention exact (were 6.8% under); what it keeps here comes
/// from the measuring host's AMX buffer (below).
const OFFLOAD_GAPS: &[(&str, u32, u32)] = &[
    // The host of the partial offloads (one device at ngl 1, the 3:1 split at ngl 3) with
    // flash attention: up to 5.2% over (4 MiB) at 4 sequences; device totals within 0.63%.
    // The measuring host's CPU has AMX tiles: llama.cpp copies its F16 matmul weights into
    // the AMX buffer type, whose matmul takes no permuted input, so `wk_b`'s and `wv_b`'s
    // products run on the first device (weights copied), and the flash-attention output is
    // freed on the host before `wv_b`'s result comes back. Measured without extra buffer
    // types (no AMX buffer, as on a CPU or build without AMX: llama-box's release builds,
    // `GGML_NATIVE=off` with AVX2 or AVX-512), the same 36 contexts and layouts are exact on
    // every device.
    ("deepseek2", 6, 1),
];

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

    /// The error band of every device of an offloaded layout of `arch`.
    pub(crate) fn offloaded_band(self, arch: &str) -> ErrorBand {
        match offload_gap(arch) {
            Some(_) if self == Coverage::Measured => {
                ErrorBand::new(OFFLOAD_GAP_PERCENT, FigureBasis::MeasuredArchitecture)
            }
            _ => self.band(),
        }
    }

    /// A sentence for the estimate's notes when an offloaded layout of `arch` carries the
    /// wider band of [`OFFLOAD_GAPS`].
    pub(crate) fn offload_note(self, arch: &str) -> Option<String> {
        let (compute, total) = offload_gap(arch).filter(|_| self == Coverage::Measured)?;
        Some(format!(
            "{arch}: offloaded layouts measured with compute up to {compute}% and device totals \
             up to {total}% off (the host's rows are within {MEASURED_PERCENT}%); devices carry \
             a {OFFLOAD_GAP_PERCENT}% band"
        ))
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

/// The measured errors of `arch`'s offloaded layouts (compute, device total, in percent),
/// when in [`OFFLOAD_GAPS`].
pub(crate) fn offload_gap(arch: &str) -> Option<(u32, u32)> {
    OFFLOAD_GAPS
        .iter()
        .find(|(name, ..)| *name == arch)
        .map(|&(_, compute, total)| (compute, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_do_not_overlap() {
        for arch in MEASURED {
            assert!(!DERIVED.contains(arch), "{arch} is in both lists");
        }
        for (arch, compute, total) in OFFLOAD_GAPS {
            assert!(
                MEASURED.contains(arch),
                "{arch}: offload gap of an unmeasured architecture"
            );
            assert!(
                *compute > MEASURED_PERCENT || *total > 2,
                "{arch}: within the measured band"
            );
            assert!(
                *total < OFFLOAD_GAP_PERCENT,
                "{arch}: beyond its offloaded band"
            );
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
        // Offloaded, an architecture measured beyond the band on devices widens it; the others
        // keep theirs.
        assert_eq!(Coverage::of("llama").offloaded_band("llama"), measured);
        assert!(Coverage::of("llama").offload_note("llama").is_none());
        for &(arch, _, _) in OFFLOAD_GAPS {
            let coverage = Coverage::of(arch);
            assert_eq!(coverage.band(), measured);
            assert_eq!(coverage.offloaded_band(arch).percent, OFFLOAD_GAP_PERCENT);
        }
        // The note names the measured figures of a declared architecture (deepseek2: 5.2%
        // compute, 0.63% device total, session 9), not the table's own echo.
        let note = Coverage::of("deepseek2")
            .offload_note("deepseek2")
            .expect("offload note");
        assert!(
            note.contains("compute up to 6%") && note.contains("totals up to 1%"),
            "{note}"
        );
        // Replayed with their splits, the hybrids of Mamba-2 layers, Qwen3-Next's gated
        // delta-net layers, Gemma 3n's AltUp layers, Jamba's, Llama 4's and SmolLM3's (layers
        // without RoPE) keep the measured band.
        for arch in [
            "falcon-h1",
            "granitehybrid",
            "qwen3next",
            "gemma3n",
            "jamba",
            "llama4",
            "smollm3",
        ] {
            assert_eq!(Coverage::of(arch).offloaded_band(arch), measured);
            assert!(Coverage::of(arch).offload_note(arch).is_none());
        }
        assert!(Coverage::of("jais").note("jais").unwrap().contains("jais"));
    }
}
