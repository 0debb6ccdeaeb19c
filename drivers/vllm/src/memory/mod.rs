//! vLLM's memory use per GPU for a tensor × pipeline parallel layout.
//!
//! vLLM (v1 engine, `vllm/v1/worker/gpu_worker.py`) asks for `requested = total ×
//! gpu_memory_utilization` on every GPU, refuses to start when less than that is free, loads the
//! weights, runs one profiling forward pass of `max_num_batched_tokens` tokens and gives the KV
//! cache `requested − weights − peak activation − non-torch memory` (0.33.0 also subtracts its
//! CUDA-graph estimate, on by default since 0.21; 0.10.1.1 captures graphs after sizing the cache,
//! in the headroom left by the fraction). The KV cache is then cut into blocks of `--block-size` tokens
//! (16 by default; `vllm/v1/core/kv_cache_utils.py`).

pub(crate) mod estimator;
pub(crate) mod parallel;
pub(crate) mod shape;
pub(crate) mod weights;

use self::shape::{LayerAttention, TextShape};

use inferkit_core::units::MIB;

/// Bytes per element vLLM runs a model in with `--dtype auto`: float16 or bfloat16, also for
/// float32 checkpoints, which it downcasts (`_get_and_verify_dtype`).
pub(crate) const MODEL_DTYPE_BYTES: u64 = 2;

/// vLLM's default KV block size in tokens (`CacheConfig.block_size` on CUDA); `--block-size`
/// overrides it.
pub(crate) const DEFAULT_BLOCK_SIZE: u64 = 16;

/// Memory allocated outside torch during profiling (NCCL, cuBLAS workspaces): 0.35 GiB in the
/// Llama-3.1-8B start-up log of vllm#10517 (vllm-memory-observations.md row 1).
const NON_TORCH: u64 = 360 * MIB;

/// The CUDA context, created before vLLM's first free-memory snapshot, so it lies outside the
/// requested fraction. 0.3–0.45 GiB with CUDA 12's lazy module loading; below 0.48 GiB on an
/// RTX 4090, where vllm#13061 started with `--gpu-memory-utilization 0.98`.
pub(crate) const CUDA_CONTEXT: u64 = 400 * MIB;

/// Graph-pool bytes per captured batch size and decoder layer. Fitted to the CUDA-graph figures
/// vLLM logs (0.65 GiB for Gemma-3-4B's 67 sizes × 34 layers, vllm PR #21489); an estimate.
const GRAPH_BYTES_PER_SIZE_AND_LAYER: u64 = 256 * 1024;

/// Activation bytes per token and element: the MLP keeps gate/up (2 × intermediate) and the
/// activated product (1 × intermediate) alive, plus about three hidden-size buffers (residual,
/// hidden state, attention output). Matches the 20k → 29k token step of vllm#10517 (rows 1–2:
/// +0.92 GiB peak for +9000 tokens on Llama-3.1-8B, i.e. 2 × (3 × 14336 + 3 × 4096) B/token).
const ACTIVATION_HIDDEN_BUFFERS: u64 = 3;
const ACTIVATION_MLP_BUFFERS: u64 = 3;

/// Sampler profiling: float32 logits plus float32 probabilities for every sequence slot.
const SAMPLER_BYTES_PER_LOGIT: u64 = 8;

/// Scale and zero-point overhead of group-quantized weights (one fp16 pair per 128 weights).
const GROUP_OVERHEAD_DIVISOR: u64 = 32;

/// Engine settings the memory model depends on, resolved from the launch parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EngineSettings {
    pub tensor_parallel: u64,
    pub pipeline_parallel: u64,
    /// Bytes per KV element (`--kv-cache-dtype`; `auto` = the model dtype).
    pub kv_bytes: u64,
    /// Bytes per activation element (the model dtype or `--dtype`).
    pub act_bytes: u64,
    pub max_num_batched_tokens: u64,
    pub max_num_seqs: u64,
    /// CUDA graphs are captured (no `--enforce-eager`).
    pub cuda_graphs: bool,
    /// Largest captured batch size.
    pub max_capture_size: u64,
    /// Number of captured batch sizes.
    pub capture_sizes: u64,
    /// The graph estimate is inside the requested fraction (0.33.0) or outside it (0.10.1.1).
    pub graphs_in_budget: bool,
    /// vLLM's hybrid KV manager is off (`--disable-hybrid-kv-cache-manager`) or the sliding
    /// window is disabled: every layer keeps the whole context.
    pub all_layers_full: bool,
    /// Tokens per KV block (`--block-size`).
    pub block_size: u64,
}

/// Bytes per GPU of one pipeline stage, before the KV cache is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StageCost {
    pub weights: u64,
    pub activation: u64,
    pub non_torch: u64,
    /// CUDA-graph pool estimate.
    pub graphs: u64,
    /// Bytes of one KV block across this rank's share of the stage's layers, per
    /// KV cache group member (see [`KvLayout`]).
    pub kv: KvLayout,
}

/// How vLLM v1 lays out the KV cache of one rank (`kv_cache_utils.py`): layers of one attention
/// type form groups of `group_size` layers; every group draws blocks from one shared pool, and
/// one pool block costs `page_bytes × group_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KvLayout {
    /// Tokens per block (`--block-size`).
    pub block_tokens: u64,
    /// Bytes of one layer's page (one block of tokens) on this rank.
    pub page_bytes: u64,
    /// Layers per group.
    pub group_size: u64,
    /// Groups of full-attention layers.
    pub full_groups: u64,
    /// Groups of sliding-window layers, with their window in tokens.
    pub sliding_groups: u64,
    pub window: u64,
}

impl KvLayout {
    /// Tokens per block; at least 1, so that an empty layout (encoder-only model) divides safely.
    fn block(&self) -> u64 {
        self.block_tokens.max(1)
    }

    /// Bytes of one pool block.
    pub(crate) fn block_bytes(&self) -> u64 {
        self.page_bytes.saturating_mul(self.group_size)
    }

    /// Pool blocks one sequence of `tokens` needs (sliding groups only keep their window).
    pub(crate) fn blocks_for(&self, tokens: u64) -> u64 {
        let full = tokens.div_ceil(self.block());
        let sliding = full.min(self.window.div_ceil(self.block()) + 1);
        self.full_groups
            .saturating_mul(full)
            .saturating_add(self.sliding_groups.saturating_mul(sliding))
    }

    /// Longest sequence `blocks` pool blocks hold: either every group pays per block (short
    /// sequences, within the window), or the sliding groups are capped at their window.
    pub(crate) fn tokens_for(&self, blocks: u64) -> u64 {
        let groups = (self.full_groups + self.sliding_groups).max(1);
        let short = blocks / groups * self.block();
        let capped = self.sliding_groups * (self.window.div_ceil(self.block()) + 1);
        if self.full_groups == 0 {
            // Every layer is windowed: past the window a sequence needs no more blocks.
            return if blocks >= capped { u64::MAX } else { short };
        }
        let long = blocks.saturating_sub(capped) / self.full_groups * self.block();
        short.max(long)
    }

    /// vLLM's logged "GPU KV cache size" in tokens: blocks per group × block size.
    pub(crate) fn logged_tokens(&self, blocks: u64) -> u64 {
        let groups = (self.full_groups + self.sliding_groups).max(1);
        blocks / groups * self.block()
    }
}

/// Layers of pipeline stage `stage` as vLLM splits them (`get_pp_indices`): an even share, the
/// remainder going one each to the stages before the last.
pub(crate) fn stage_layers(layers: u64, pp: u64, stage: u64) -> std::ops::Range<u64> {
    let pp = pp.max(1);
    let base = layers / pp;
    let remainder = layers % pp;
    let extra = |s: u64| u64::from(remainder > 0 && s + 1 + remainder >= pp && s + 1 < pp);
    let start: u64 = (0..stage).map(|s| base + extra(s)).sum();
    start..start + base + extra(stage)
}

/// Parameter counts of one rank, split into what quantization compresses (linear layers) and
/// what stays in the checkpoint dtype (embeddings, norms, routers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ParamCount {
    pub linear: u64,
    pub other: u64,
}

impl std::ops::AddAssign for ParamCount {
    fn add_assign(&mut self, rhs: Self) {
        self.linear = self.linear.saturating_add(rhs.linear);
        self.other = self.other.saturating_add(rhs.other);
    }
}

/// Parameters one rank of stage `stage` holds, sharded the way vLLM shards them: column/row
/// parallel linear layers split by TP, vocabulary-parallel embedding and LM head split by TP,
/// KV projections replicated once TP exceeds the KV heads, norms, routers and MLA's
/// down-projections replicated.
pub(crate) fn rank_params(shape: &TextShape, tp: u64, pp: u64, stage: u64) -> ParamCount {
    let tp = tp.max(1);
    let h = shape.hidden_size;
    let mut count = ParamCount::default();
    let layers = stage_layers(shape.layer_count(), pp, stage);
    for layer in layers {
        count += attention_params(shape, tp);
        count += mlp_params(shape, tp, layer);
        count.other += 2 * h;
    }
    let embedding = shape.vocab_size * h / tp;
    if stage == 0 {
        count.other += embedding;
        count += vision_params(shape, tp);
    }
    if stage + 1 == pp.max(1) {
        count.other += h;
        // A tied LM head shares the embedding unless the two live on different stages; encoder
        // models (BERT, XLM-RoBERTa) pool hidden states and have no LM head.
        if !shape.encoder_only() && (!shape.tie_embeddings || pp > 1) {
            count.other += embedding;
        }
    }
    count
}

fn attention_params(shape: &TextShape, tp: u64) -> ParamCount {
    let h = shape.hidden_size;
    let heads = shape.heads;
    match shape.mla {
        Some(m) => {
            let qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
            let (q_replicated, q_sharded) = match m.q_lora_rank {
                Some(r) => (h * r + r, r * heads * qk / tp),
                None => (0, h * heads * qk / tp),
            };
            let kv_a = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank;
            let kv_b = m.kv_lora_rank * heads * (m.qk_nope_head_dim + m.v_head_dim) / tp;
            let o = heads * m.v_head_dim * h / tp;
            ParamCount {
                linear: q_replicated + q_sharded + kv_a + kv_b + o,
                other: 0,
            }
        }
        None => {
            let kv_rank = shape.kv_heads.div_ceil(tp);
            let q = h * heads * shape.head_dim / tp;
            let kv = 2 * h * kv_rank * shape.head_dim;
            ParamCount {
                linear: 2 * q + kv,
                other: 0,
            }
        }
    }
}

fn mlp_params(shape: &TextShape, tp: u64, layer: u64) -> ParamCount {
    let h = shape.hidden_size;
    match shape.moe {
        Some(m) if layer >= m.dense_layers => ParamCount {
            linear: m.experts * 3 * h * m.expert_intermediate / tp
                + 3 * h * m.shared_intermediate / tp,
            other: h * m.experts,
        },
        _ => ParamCount {
            linear: 3 * h * shape.intermediate_size / tp,
            other: 0,
        },
    }
}

/// A transformer vision tower (attention 4·d² + MLP 2·d·i per layer), sharded like the text
/// model: vLLM's vision encoders use the same parallel linear layers.
fn vision_params(shape: &TextShape, tp: u64) -> ParamCount {
    let Some(v) = shape.vision else {
        return ParamCount::default();
    };
    let per_layer = 4 * v.hidden_size * v.hidden_size + 2 * v.hidden_size * v.intermediate_size;
    ParamCount {
        linear: v.layers.saturating_mul(per_layer) / tp,
        other: v.layers * 4 * v.hidden_size,
    }
}

/// vLLM's rotary embedding keeps a cos/sin table of `max_position × rotary_dim` in the model
/// dtype, shared by all layers (`get_rope` caches instances); 32 MiB for Llama-3.1-8B, the gap
/// between its safetensors (14.96 GiB) and vLLM's logged 14.99 GiB of weights.
pub(crate) fn rope_cache_bytes(shape: &TextShape, act_bytes: u64) -> u64 {
    let rotary_dim = shape.mla.map_or(shape.head_dim, |m| m.qk_rope_head_dim);
    shape
        .max_position
        .saturating_mul(rotary_dim)
        .saturating_mul(act_bytes)
}

/// Bytes of a parameter count as stored: quantized linear layers at their bit width plus group
/// scales, everything else in the checkpoint dtype.
pub(crate) fn stored_bytes(shape: &TextShape, params: ParamCount) -> u64 {
    let other = params.other.saturating_mul(MODEL_DTYPE_BYTES);
    let linear = match &shape.quantization {
        Some(q) if q.bits < 16 => {
            let packed = params.linear.saturating_mul(q.bits) / 8;
            let scales = if q.bits < 8 {
                packed / GROUP_OVERHEAD_DIVISOR
            } else {
                0
            };
            packed + scales
        }
        _ => params.linear.saturating_mul(MODEL_DTYPE_BYTES),
    };
    linear.saturating_add(other)
}

/// The KV layout of one rank of stage `stage`; empty (no groups, zero-byte blocks) for an
/// encoder-only model, which vLLM gives no KV cache.
pub(crate) fn kv_layout(shape: &TextShape, settings: &EngineSettings, stage: u64) -> KvLayout {
    if shape.encoder_only() {
        return KvLayout::default();
    }
    let layers = stage_layers(shape.layer_count(), settings.pipeline_parallel, stage);
    let mut full = 0u64;
    let mut sliding = 0u64;
    let mut window = 0u64;
    for layer in layers {
        match shape.layers[layer as usize] {
            LayerAttention::Sliding(w) if !settings.all_layers_full => {
                sliding += 1;
                window = window.max(w);
            }
            _ => full += 1,
        }
    }
    let block_tokens = settings.block_size;
    let page_bytes = block_tokens.saturating_mul(per_token_layer_bytes(shape, settings));
    if sliding == 0 || full == 0 {
        return KvLayout {
            block_tokens,
            page_bytes,
            group_size: full + sliding,
            full_groups: u64::from(full > 0),
            sliding_groups: u64::from(sliding > 0),
            window,
        };
    }
    // vLLM groups hybrid models by the smaller type's layer count, or the larger one when they
    // differ by less than 25% (kv_cache_utils `_get_kv_cache_groups_uniform_page_size`); each
    // type is padded into whole groups.
    let (fewer, more) = (full.min(sliding), full.max(sliding));
    let group_size = if more * 4 < fewer * 5 { more } else { fewer };
    KvLayout {
        block_tokens,
        page_bytes,
        group_size,
        full_groups: full.div_ceil(group_size),
        sliding_groups: sliding.div_ceil(group_size),
        window,
    }
}

/// KV bytes per token and layer on one rank: K and V of the rank's KV heads (replicated once TP
/// exceeds them), or MLA's single latent "head" of `kv_lora_rank + qk_rope_head_dim`, which
/// every TP rank keeps whole.
pub(crate) fn per_token_layer_bytes(shape: &TextShape, settings: &EngineSettings) -> u64 {
    match shape.mla {
        Some(m) => (m.kv_lora_rank + m.qk_rope_head_dim) * settings.kv_bytes,
        None => {
            let heads = shape.kv_heads.div_ceil(settings.tensor_parallel.max(1));
            2 * heads * shape.head_dim * settings.kv_bytes
        }
    }
}

/// Peak activation of the profiling pass on one rank: `max_num_batched_tokens` through the
/// widest MLP, or the sampler's logits for `max_num_seqs` sequences, whichever is larger
/// (encoder models have no sampler).
pub(crate) fn activation_bytes(shape: &TextShape, settings: &EngineSettings) -> u64 {
    let tokens = settings.max_num_batched_tokens;
    let per_token = activation_per_token(shape, settings.tensor_parallel.max(1));
    let forward = tokens
        .saturating_mul(per_token)
        .saturating_mul(settings.act_bytes);
    let logits = if shape.encoder_only() {
        0
    } else {
        shape.vocab_size
    };
    let sampler = settings
        .max_num_seqs
        .saturating_mul(logits)
        .saturating_mul(SAMPLER_BYTES_PER_LOGIT);
    forward.max(sampler)
}

/// Activation elements per token on one rank.
fn activation_per_token(shape: &TextShape, tp: u64) -> u64 {
    let h = shape.hidden_size;
    let dense = ACTIVATION_MLP_BUFFERS * shape.intermediate_size / tp;
    // Fused MoE keeps [tokens, top-k, 2·I], [tokens·top-k, I] and [tokens, top-k, H] caches.
    let moe = shape.moe.map_or(0, |m| {
        m.experts_per_token * (ACTIVATION_MLP_BUFFERS * m.expert_intermediate / tp + h)
    });
    ACTIVATION_HIDDEN_BUFFERS * h + dense.max(moe)
}

/// CUDA-graph pool of one rank of a stage.
fn graph_bytes(shape: &TextShape, settings: &EngineSettings, stage_layers: u64) -> u64 {
    if !settings.cuda_graphs {
        return 0;
    }
    let per_token =
        activation_per_token(shape, settings.tensor_parallel.max(1)) * settings.act_bytes;
    let pools = settings
        .capture_sizes
        .saturating_mul(stage_layers)
        .saturating_mul(GRAPH_BYTES_PER_SIZE_AND_LAYER);
    settings
        .max_capture_size
        .saturating_mul(per_token)
        .saturating_add(pools)
}

/// Everything but the KV cache for one rank of `stage`; `weights` comes from the caller
/// (safetensors headers or the config-derived count).
pub(crate) fn stage_cost(
    shape: &TextShape,
    settings: &EngineSettings,
    stage: u64,
    weights: u64,
) -> StageCost {
    let layers = stage_layers(shape.layer_count(), settings.pipeline_parallel, stage);
    StageCost {
        weights,
        activation: activation_bytes(shape, settings),
        non_torch: NON_TORCH,
        graphs: graph_bytes(shape, settings, layers.end - layers.start),
        kv: kv_layout(shape, settings, stage),
    }
}

impl StageCost {
    /// Bytes inside the requested fraction before the KV cache.
    pub(crate) fn in_budget(&self, graphs_in_budget: bool) -> u64 {
        let graphs = if graphs_in_budget { self.graphs } else { 0 };
        self.weights
            .saturating_add(self.activation)
            .saturating_add(self.non_torch)
            .saturating_add(graphs)
    }

    /// Bytes the process uses outside the requested fraction.
    pub(crate) fn outside_budget(&self, graphs_in_budget: bool) -> u64 {
        CUDA_CONTEXT.saturating_add(if graphs_in_budget { 0 } else { self.graphs })
    }
}

pub(crate) use inferkit_core::units::gib;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_blocks_and_tokens_are_inverse() {
        let full = KvLayout {
            block_tokens: 16,
            page_bytes: 1,
            group_size: 32,
            full_groups: 1,
            sliding_groups: 0,
            window: 0,
        };
        assert_eq!(full.blocks_for(20_000), 1250);
        assert_eq!(full.tokens_for(1952), 31_232);
        // Gemma-3: one full group and six sliding groups of a 1024-token window.
        let hybrid = KvLayout {
            block_tokens: 16,
            page_bytes: 1,
            group_size: 10,
            full_groups: 1,
            sliding_groups: 6,
            window: 1024,
        };
        assert_eq!(hybrid.blocks_for(32_768), 2048 + 6 * 65);
        for len in [16, 1000, 32_768, 131_072] {
            assert!(hybrid.tokens_for(hybrid.blocks_for(len)) >= len);
        }
        assert_eq!(hybrid.logged_tokens(7000), 1000 * 16);
    }

    #[test]
    fn pipeline_stages_follow_vllm_get_pp_indices() {
        // 62 layers over 4 stages: [15, 16, 16, 15].
        let sizes: Vec<u64> = (0..4)
            .map(|s| stage_layers(62, 4, s))
            .map(|r| r.end - r.start)
            .collect();
        assert_eq!(sizes, [15, 16, 16, 15]);
        assert_eq!(stage_layers(62, 4, 3), 47..62);
        assert_eq!(stage_layers(32, 2, 1), 16..32);
        assert_eq!(stage_layers(7, 1, 0), 0..7);
    }
}
