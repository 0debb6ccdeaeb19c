//! vLLM's memory use per GPU for a tensor × pipeline parallel layout.
//!
//! vLLM's v1 engine asks for `requested = total × gpu_memory_utilization` on every GPU, where
//! `total` is what CUDA reports (`torch.cuda.mem_get_info`, smaller than the NVML total of
//! inventories, see [`cuda_total`]), and refuses to start when less than that is free; it loads
//! the weights, runs one profiling pass (`profile_run`: the forward pass over
//! `max_num_batched_tokens`, then `_dummy_sampler_run` over `max_num_seqs` sequences) and gives
//! the KV cache `requested − non_kv_cache_memory` (weights + torch peak increase + non-torch
//! increase), less the CUDA-graph estimate from 0.21 on. The KV cache is then cut into blocks
//! of `--block-size` tokens (16 by default). Where, at the two releases whose flag tables this
//! driver has:
//!
//! | what | 0.10.1.1 | 0.33.0 |
//! |---|---|---|
//! | requested memory, refusal | `vllm/v1/worker/gpu_worker.py:175-186` | `vllm/v1/worker/utils.py:724-726` (`request_memory`) |
//! | KV budget | `gpu_worker.py:222` (`determine_available_memory`), `:257-258` | `gpu_worker.py:641`, `:753-757` |
//! | `non_kv_cache_memory` | `vllm/utils/__init__.py:2744` | `vllm/utils/mem_utils.py:321` |
//! | profiling pass | `vllm/v1/worker/gpu_model_runner.py:2566` (`profile_run`), `:2426` (`_dummy_sampler_run`) | `gpu_model_runner.py:6072`, `:5866` |
//! | default block size | `vllm/platforms/cuda.py:137-138` | `vllm/config/cache.py:185` |
//! | KV layout and groups | `vllm/v1/core/kv_cache_utils.py` | `vllm/v1/core/kv_cache_utils.py` |
//!
//! What differs between releases is in [`MemoryRules`].

use inferkit_core::DeviceSlot;
use inferkit_core::units::{GIB, MIB};

use crate::flags::Release;

pub(crate) mod details;
pub(crate) mod estimator;
pub(crate) mod input;
pub(crate) mod parallel;
pub(crate) mod shape;
pub(crate) mod weights;

use self::shape::{LayerAttention, TextShape};

/// Bytes per element vLLM runs a model in with `--dtype auto`: float16 or bfloat16, also for
/// float32 checkpoints, which it downcasts (`_get_and_verify_dtype`, `vllm/config/__init__.py:2779`
/// at 0.10.1.1, `vllm/config/model.py:2467` at 0.33.0).
pub(crate) const MODEL_DTYPE_BYTES: u64 = 2;

/// vLLM's default KV block size in tokens (`CacheConfig.block_size` on CUDA); `--block-size`
/// overrides it.
pub(crate) const DEFAULT_BLOCK_SIZE: u64 = 16;

/// Memory allocated outside torch during profiling on one GPU without tensor parallelism
/// (cuBLAS workspaces, the attention backend's buffers): "non-torch forward increase memory"
/// 0.13-0.14 GiB on four models in the H100 logs of llm-d-benchmark
/// (`config_explorer/empirical-vllm-memory-results.md`, vLLM 0.11.0).
const NON_TORCH: u64 = 136 * MIB;

/// NCCL's communicator buffers on a rank of a parallel group inside one worker: the KV cache
/// of Qwen2-7B on A100 80 GB (vLLM 0.10.1.1, no P2P, dennislee22/vLLM-benchmarking) is 0.12 GiB
/// per GPU smaller at TP 2 than the TP 1 run leaves for the same profile.
const NCCL_BUFFERS: u64 = 128 * MIB;

/// PyTorch symmetric-memory all-reduce buffers, on by default from 0.11 on Hopper and Blackwell
/// (vllm PR #24111, September 2025; SM 9.0 and 10.x): the llm-d H100 logs show 0.54-0.55 GiB
/// of non-torch memory per GPU at TP 2 (vLLM 0.11.0), 0.29 GiB more than NCCL alone explains.
const SYMMETRIC_MEMORY_BUFFERS: u64 = 296 * MIB;

/// NCCL's network transport when the tensor-parallel group spans workers (Ray across nodes):
/// its per-peer send/receive buffers replace the intra-node P2P path. One published log
/// (dennislee22/vLLM-benchmarking, Qwen2-7B TP 2 over two A100 40 GB nodes, vLLM 0.10.1.1)
/// leaves 11.03 GiB of KV cache where the same TP 2 inside one node leaves 0.8 GiB more.
const NON_TORCH_ACROSS_WORKERS: u64 = 768 * MIB;

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

/// Scale and zero-point overhead of group-quantized weights (one fp16 pair per 128 weights).
const GROUP_OVERHEAD_DIVISOR: u64 = 32;

impl Release {
    /// The memory rules of this release's band.
    pub(crate) fn rules(self) -> MemoryRules {
        MemoryRules {
            sampler: SamplerPath::of(self),
            symmetric_memory: self >= Release::new(0, 11, 0),
            // "CUDA graph memory profiling is enabled (default since v0.21.0)", the start-up
            // line of `gpu_worker.py` (`vllm/v1/worker/gpu_worker.py:781-794` at 0.33.0, where
            // `VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS` defaults to 1, `vllm/envs.py:2219`);
            // the estimate came with vllm PR #30515, off by default until then, so graphs were
            // captured after sizing the KV cache, in the headroom the fraction leaves.
            graphs_in_budget: self >= Release::new(0, 21, 0),
        }
    }
}

/// How the sampler's dummy run (`_dummy_sampler_run`: top-k = vocabulary − 1, top-p = 0.9,
/// temperature 0.5 for `min(max_num_seqs, max_num_batched_tokens)` sequences) applies top-k and
/// top-p, which decides its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SamplerPath {
    /// FlashInfer's fused top-k/top-p kernel, on by default through 0.10 where FlashInfer is
    /// installed, as in vLLM's images (`VLLM_USE_FLASHINFER_SAMPLER` unset counts as on, vllm
    /// PR #11394) until vllm PR #26859 (October 2025) turned it off.
    FlashInfer,
    /// PyTorch's sort-based `apply_top_k_top_p`: a full sort of the float32 logits (values and
    /// int64 indices, plus the sort's own buffers), masks, softmax and a scatter back.
    TorchSort,
    /// The Triton top-k/top-p kernels of vllm PR #33538 (February 2026), which work in place
    /// on the float32 logits with small per-program buffers.
    Triton,
}

impl SamplerPath {
    fn of(release: Release) -> Self {
        if release < Release::new(0, 11, 0) {
            SamplerPath::FlashInfer
        } else if release < Release::new(0, 17, 0) {
            SamplerPath::TorchSort
        } else {
            SamplerPath::Triton
        }
    }

    /// Bytes per logit (sequence × vocabulary entry) at the sampler's peak, the logits of the
    /// LM head in the model dtype included.
    fn bytes_per_logit(self) -> u64 {
        match self {
            // Model-dtype logits (2), their float32 copy (4), FlashInfer's masked logits and
            // probabilities (4 + 4).
            SamplerPath::FlashInfer => 14,
            // The torch peak increase of the llm-d H100 logs (vLLM 0.11.0, 1024 sequences):
            // 4.76 GiB for Llama-3.1-8B (vocabulary 128,256), 5.56 and 5.64 GiB for Qwen3-0.6B
            // and Qwen3-32B (151,936), i.e. 38.3-38.4 bytes per logit once the batch's hidden
            // states are taken off; vllm PR #32558 measured 1.25 GB for 256 × 131,072 logits.
            SamplerPath::TorchSort => 38,
            // Model-dtype logits (2) and the kernel's 384 MB for 256 × 131,072 float32 logits
            // in vllm PR #32558's benchmark (11.5 bytes per logit).
            SamplerPath::Triton => 14,
        }
    }
}

/// The parts of vLLM's start-up accounting that changed between releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryRules {
    pub sampler: SamplerPath,
    /// Symmetric-memory all-reduce is on by default (on GPUs that support it).
    pub symmetric_memory: bool,
    /// The CUDA-graph estimate is inside the requested fraction (0.21 on) or the graphs are
    /// captured in the headroom outside it (before).
    pub graphs_in_budget: bool,
}

/// Device memory CUDA does not show, in hundredths of a GiB, per GPU family (a substring of the
/// lowercase product name) where a log shows both NVML's total (what inventories carry) and
/// `cudaMemGetInfo`'s, which `--gpu-memory-utilization` applies to. Used where the inventory
/// does not carry NVML's own `reserved` figure.
const DRIVER_RESERVED: &[(&str, u64)] = &[
    // H100 80GB HBM3: 79.65 GiB (nvidia-smi) vs 79.18 GiB (vLLM's "total memory", llm-d).
    ("h100", 47),
    // A100-SXM4-80GB: 80.00 vs 79.25 GiB, the total that two gpu_memory_utilization values of
    // one configuration imply (dennislee22/vLLM-benchmarking, 0.25 and 0.5).
    ("a100", 75),
    // GeForce RTX 3090: 24.00 vs 23.54 GiB ("GPU 0 has a total capacity of 23.54 GiB",
    // TheBuccaneer/vllm-offload-profiles); the RTX A5000 is the same GA102 board.
    ("3090", 46),
    ("a5000", 46),
];

/// NVML's total less the total CUDA reports: the reserve the probe read from NVML
/// (`nvmlDeviceGetMemoryInfo_v2`'s `reserved`, [`DeviceSlot::reserved`]) when the inventory
/// carries it, else the family's figure, else the larger of the smallest figure seen and 1% of
/// the GPU, so that the fraction is not applied to memory CUDA cannot reach.
pub(crate) fn driver_reserved(slot: &DeviceSlot) -> u64 {
    let reserved = slot.reserved.unwrap_or_else(|| {
        let name = slot.name.to_lowercase();
        DRIVER_RESERVED
            .iter()
            .find(|(family, _)| name.contains(family))
            .map_or_else(
                || (46 * GIB / 100).max(slot.total / 100),
                |(_, hundredths)| hundredths * GIB / 100,
            )
    });
    reserved.min(slot.total / 4)
}

/// The total `--gpu-memory-utilization` applies to on this GPU.
pub(crate) fn cuda_total(slot: &DeviceSlot) -> u64 {
    slot.total.saturating_sub(driver_reserved(slot))
}

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
    /// The graph estimate is inside the requested fraction (0.21 on) or outside it.
    pub graphs_in_budget: bool,
    /// How the sampler's dummy run applies top-k/top-p.
    pub sampler: SamplerPath,
    /// A pooling model: the profiling pass runs the pooler, not the sampler.
    pub pooling: bool,
    /// The parallel group spans workers (NCCL over the network).
    pub across_workers: bool,
    /// Tensor-parallel all-reduce through PyTorch symmetric memory.
    pub symmetric_memory: bool,
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

/// Torch's peak increase during the profiling pass on one rank (`profile_run`): the largest
/// of the forward pass over `max_num_batched_tokens` and the sampler's dummy run over
/// `min(max_num_seqs, max_num_batched_tokens)` sequences (`_dummy_run` makes one request per
/// token up to `max_num_seqs`), during which the forward pass's hidden states stay alive;
/// pooling models run the pooler on those hidden states instead, encoder-only models have no
/// sampler. A multimodal model first runs its vision encoder over the same token budget and
/// keeps the embeddings in the encoder cache until the pass ends.
pub(crate) fn activation_bytes(shape: &TextShape, settings: &EngineSettings) -> u64 {
    let tokens = settings.max_num_batched_tokens;
    let tp = settings.tensor_parallel.max(1);
    let act = settings.act_bytes;
    let forward = tokens
        .saturating_mul(activation_per_token(shape, tp))
        .saturating_mul(act);
    let hidden_states = tokens.saturating_mul(shape.hidden_size).saturating_mul(act);
    let sampler = sampler_bytes(shape, settings).saturating_add(hidden_states);
    let (encoder_peak, encoder_cache) = match shape.vision {
        Some(v) => (
            tokens.saturating_mul(
                (ACTIVATION_MLP_BUFFERS * v.intermediate_size / tp
                    + ACTIVATION_HIDDEN_BUFFERS * v.hidden_size)
                    .saturating_mul(act),
            ),
            hidden_states,
        ),
        None => (0, 0),
    };
    forward
        .max(sampler)
        .saturating_add(encoder_cache)
        .max(encoder_peak)
}

/// The sampler's dummy run on one rank: every rank computes the full-vocabulary logits (the LM
/// head's output is all-gathered in V1) and samples from them.
fn sampler_bytes(shape: &TextShape, settings: &EngineSettings) -> u64 {
    if shape.encoder_only() || settings.pooling {
        return 0;
    }
    settings
        .max_num_seqs
        .min(settings.max_num_batched_tokens)
        .saturating_mul(shape.vocab_size)
        .saturating_mul(settings.sampler.bytes_per_logit())
}

/// Memory outside torch after the profiling pass: NCCL communicators and all-reduce buffers
/// when the model spans GPUs, over the network when it spans workers.
fn non_torch_bytes(settings: &EngineSettings) -> u64 {
    let world = settings
        .tensor_parallel
        .saturating_mul(settings.pipeline_parallel);
    if world <= 1 {
        return NON_TORCH;
    }
    let symmetric = if settings.symmetric_memory && settings.tensor_parallel > 1 {
        SYMMETRIC_MEMORY_BUFFERS
    } else {
        0
    };
    let network = if settings.across_workers {
        NON_TORCH_ACROSS_WORKERS
    } else {
        0
    };
    NON_TORCH + NCCL_BUFFERS + symmetric + network
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
        non_torch: non_torch_bytes(settings),
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
    fn nvml_s_reserve_replaces_the_family_figure() {
        let mut h100 = inferkit_core::testkit::gpu("w", 0, 80);
        h100.name = "NVIDIA H100 80GB HBM3".into();
        assert_eq!(driver_reserved(&h100), 47 * GIB / 100);
        h100.reserved = Some(514 * MIB);
        assert_eq!(driver_reserved(&h100), 514 * MIB);
        assert_eq!(cuda_total(&h100), 80 * GIB - 514 * MIB);
        // An unknown GPU without NVML's figure: 1% of it, at least the smallest figure seen.
        let mut other = inferkit_core::testkit::gpu("w", 0, 96);
        other.name = "NVIDIA RTX PRO 6000".into();
        assert_eq!(driver_reserved(&other), 96 * GIB / 100);
        // A figure beyond reason (a quarter of the GPU) is capped.
        other.reserved = Some(40 * GIB);
        assert_eq!(driver_reserved(&other), 24 * GIB);
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
