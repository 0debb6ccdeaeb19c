//! The worst-case graph llama.cpp reserves its compute buffers for (`graph_reserve` with a
//! full ubatch, every token an output), built op by op as `src/llama-graph.cpp` and the
//! per-architecture builders of `src/models/*.cpp` build it, then allocated with
//! [`Graph::peak`].
//!
//! One module per family of layers, each an `impl` block of the same [`Builder`]:
//! - `decoder`: the pre-norm decoder layer of the llama family (llama, qwen2/3, mistral,
//!   gemma, phi3...: norm, Q/K/V with optional biases and Q/K norms, RoPE, output projection,
//!   optional post-norms), through `attention` (the KV cache, flash attention or not);
//! - `ffn`: gated, fused gate-up or sequential FFNs, routed experts, shared expert;
//! - `low_rank`: low-rank Q/KV projections decompressed before a regular cache (MiniCPM3);
//! - `mla`: multi-head latent attention (DeepSeek-V2/V3: absorbed K decompression, K-only
//!   cache, `wv_b` after attention);
//! - `encoder`: the BERT-style encoder;
//! - `t5`: the T5 encoder (relative-position bias, never flash attention);
//! - `recurrent`: the Mamba layers of Mamba models (Mamba-1 and Mamba-2), Granite 4.0-H and
//!   Jamba (before an FFN; Jamba's Mamba-1 with dt/B/C norms) and Falcon-H1 (beside
//!   attention) op by op, with their state reads and stores where the states live;
//!   Nemotron-H's Mamba-2 mixer;
//! - `delta_net`: Qwen3-Next's gated delta-net layers op by op (conv and delta-net states
//!   read and stored where they live, the fused gated delta-net op, the gated norm);
//! - `rwkv`: RWKV-6 and RWKV-7 layers op by op (time mix, channel mix, token-shift and WKV states);
//! - `altup`: Gemma 3n's whole graph (the AltUp stack predicted and corrected around every
//!   layer, LAuReL, the per-layer inputs, the sparsified FFN gate, layers sharing a cache);
//! - `inputs` and `split`: the graph inputs, and the copies the scheduler makes between
//!   devices.
//!
//! [`super::architecture`] says which architectures this covers and how sure each is.
//!
//! Multi-device graphs follow `ggml_backend_sched`: each device runs a split of consecutive
//! layers; the inputs a split reads from another buffer are copied into its own buffer at the
//! start of the split, and with pipeline parallelism every such copy (and every graph input)
//! exists once per scheduler copy and is never freed.

use std::collections::HashMap;

use super::alloc::{Graph, TensorId};
use super::shape::ModelShape;
use crate::params::CacheType;

mod altup;
pub(crate) use altup::replays_whole_runs;
mod attention;
mod decoder;
mod delta_net;
mod encoder;
mod ffn;
mod inputs;
mod low_rank;
mod mla;
mod recurrent;
mod rwkv;
mod split;
mod state;
mod t5;

const F32: u64 = 4;
const F16: u64 = 2;
/// `GGML_KQ_MASK_PAD` at 0c1e57098: mask rows are padded to 64 tokens.
const KQ_MASK_PAD: u64 = 64;

/// The ubatch and cache geometry of one reserve.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reserve {
    /// Tokens in the ubatch.
    pub n_tokens: u64,
    /// KV streams (1 when unified).
    pub n_stream: u64,
    /// Sequences in the worst-case ubatch (`n_seq_max`, unified cache or not).
    pub n_seqs: u64,
    /// Cells per stream of the full-attention cache.
    pub n_kv: u64,
    /// Cells per stream of the sliding-window cache.
    pub n_kv_swa: u64,
    /// Flash attention on.
    pub flash_attn: bool,
    /// V stored transposed (cache without flash attention).
    pub v_trans: bool,
    /// Pipeline-parallel scheduler copies (1, or 4 with several devices at full offload).
    pub n_copies: u64,
    /// What pools an encoder's embeddings.
    pub pooling: Pooling,
    /// The KV cache stays in host memory (`--no-kv-offload`, `offload_kqv = false`).
    pub kv_on_host: bool,
    /// K and V cache element types.
    pub cache_types: (CacheType, CacheType),
}

/// What `build_pooling` adds after an encoder's layers (`src/llama-graph.cpp` at 0c1e57098).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    /// No pooling (`NONE`, or embeddings not requested): the token embeddings are the output.
    None,
    /// `MEAN`: the transposed embeddings, made contiguous, times the `mean` input
    /// (`[n_tokens, n_seqs]` f32).
    Mean,
    /// `CLS` and `LAST`: the rows the `cls` input (`n_seqs` i32) names.
    Rows,
    /// `RANK`: the `cls` rows, then the classifier head (`cls`, `cls.output`).
    Rank,
}

impl Pooling {
    /// The pooling llama.cpp applies: `--pooling` when given, else the model's
    /// `pooling_type` (`cparams.pooling_type` at context creation).
    pub(crate) fn of(requested: crate::params::Pooling, model_type: u64) -> Pooling {
        use crate::params::Pooling as P;
        match requested {
            P::Unspecified => match model_type {
                1 => Pooling::Mean,
                2 | 3 => Pooling::Rows,
                4 => Pooling::Rank,
                _ => Pooling::None,
            },
            P::None => Pooling::None,
            P::Mean => Pooling::Mean,
            P::Cls | P::Last => Pooling::Rows,
            P::Rank => Pooling::Rank,
        }
    }
}

/// Which buffer runs what: `layers[k] = (model layer, buffer)`, in order; the input layer is
/// always buffer 0 (host).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Placement {
    pub layers: Vec<(usize, usize)>,
    pub output: usize,
    pub buffers: usize,
}

/// Alignment of the CPU and RPC(CPU) buffer types (`TENSOR_ALIGNMENT`).
pub(crate) const CPU_ALIGNMENT: u64 = 32;

/// The host's buffer: graph inputs, the CPU backend's ops and, without KV offload, the cache.
const HOST: usize = 0;

/// Architectures whose norms with a bias are RMS norms (`LLM_NORM_RMS` with the bias, in
/// place: `src/models/phi3.cpp` at 0c1e57098, which builds Phi-3 and PhiMoE); the others'
/// are `ggml_norm` (LLM_NORM).
const RMS_NORM_WITH_BIAS: [&str; 2] = ["phi3", "phimoe"];

/// Architectures whose norms are `ggml_norm` (LLM_NORM) without weight or bias, not in place
/// (OLMo: `build_norm(cur, NULL, NULL, LLM_NORM, il)` in `src/models/olmo.cpp` at 0c1e57098).
const PARAMETERLESS_NORM: [&str; 1] = ["olmo"];

/// Compute-buffer peak per buffer for this reserve and placement.
pub(crate) fn compute_peaks(
    shape: &ModelShape,
    reserve: &Reserve,
    placement: &Placement,
) -> Vec<u64> {
    let names: HashMap<&str, (u64, u64)> = shape
        .weights
        .iter()
        .map(|w| (w.name.as_str(), (w.cols, w.rows)))
        .collect();
    let mut builder = Builder {
        g: Graph::default(),
        shape,
        r: *reserve,
        names,
        copies: HashMap::new(),
        inputs: Inputs::default(),
        buffer: 0,
        opening: None,
        closing: None,
        next_recurrent: None,
        state_rows: None,
        next_state_reads: None,
        reads_after: None,
        pending_mix: None,
        first_value: None,
        outputs_resume: None,
        norms_pinned: false,
        defer_residual: false,
        deferred_residual: None,
        resume_reads: Vec::new(),
        state_read_buffers: Vec::new(),
        resume_kinds: Kinds::default(),
    };
    builder.build(placement);
    builder.g.peak(placement.buffers, CPU_ALIGNMENT)
}

#[derive(Default)]
struct Inputs {
    pos: Option<TensorId>,
    /// The per-token attention temperature (`inp_attn_scale`).
    attn_scale: Option<TensorId>,
    out_ids: Option<TensorId>,
    /// Per cache kind (full, swa).
    attn: [Option<AttnInputs>; 2],
    /// The T5 encoder's relative-position buckets.
    pos_buckets: Option<TensorId>,
    /// The pooling's input (`mean` or `cls`, [`Pooling`]).
    pooling: Option<TensorId>,
    /// The T5 encoder's per-layer views of its buckets (`pos_bucket_1d`, made by each
    /// layer's `build_pos_bias`): (layer, its buffer, view), in layer order.
    bucket_views: Vec<(usize, usize, TensorId)>,
    /// The recurrent state's row indices (`rs_s_copy`): its views of the ubatch's rows and of
    /// the extra rows (`s_copy_main`, `s_copy_extra`).
    state_copy: Option<[TensorId; 2]>,
}

/// Where attention reads K and V from.
#[derive(Clone, Copy)]
enum KvSource {
    /// The KV cache, in a buffer outside the graph that the current backend reads directly.
    Cache,
    /// Copies of the cache views in the current buffer (the cache is in another backend's).
    CacheCopies(TensorId, TensorId),
    /// An encoder's K and V activations (no cache).
    Uncached(TensorId, TensorId),
}

#[derive(Clone, Copy)]
struct AttnInputs {
    /// The f32 mask input.
    mask: TensorId,
    /// KV-cache row indices; `None` for encoders (no cache).
    /// KV-cache row indices of K and V (V has none with MLA: it is a view of K); `None`
    /// for encoders (no cache).
    idxs: Option<(TensorId, Option<TensorId>)>,
    /// The Hadamard matrices a quantized cache rotates K (with Q) and V by.
    rot: Rotation,
}

/// `attn_rot_k` / `attn_rot_v` of `llama_kv_cache` (0c1e57098): with a quantized cache type and
/// a head size divisible by 64, Q and K (and V, whose attention output is rotated back) are
/// multiplied by a Hadamard matrix before the cache store (`llama_mul_mat_hadamard`).
#[derive(Clone, Copy, Default)]
struct Rotation {
    k: Option<TensorId>,
    v: Option<TensorId>,
}

struct Builder<'a> {
    g: Graph,
    shape: &'a ModelShape,
    r: Reserve,
    /// Weight name → (`ne[0]`, `ne[1]`): matmul output widths come from the tensors.
    names: HashMap<&'a str, (u64, u64)>,
    /// Cross-buffer copies made by the scheduler: (source, buffer) → copy.
    copies: HashMap<(TensorId, usize), TensorId>,
    inputs: Inputs,
    buffer: usize,
    /// The split a layer's opening norm starts once it ran on the current device.
    opening: Option<Split>,
    /// The split the current (host) layer's closing ops without weights run in, and the
    /// residual they add once the FFN block knows it.
    closing: Option<(Split, Option<TensorId>)>,
    /// The device of the next recurrent layer when it is on another device than the current
    /// layer and its state reads join the graph before the current layer's tail
    /// ([`Builder::recurrent_reads_after`]; see `recurrent::gate_input` and
    /// `attention::cached_attention`).
    next_recurrent: Option<usize>,
    /// A Mamba layer's conv-state rows read before the previous layer's tail (`build_rs`
    /// joins the graph first): (layer, rows).
    state_rows: Option<(usize, TensorId)>,
    /// The next layer, a hybrid's Mamba layer ([`Builder::is_hybrid_mamba`]), and its buffer,
    /// whose state reads join the graph after the current layer's routed experts (see
    /// [`Builder::ffn`]).
    next_state_reads: Option<(usize, usize)>,
    /// The next Mamba layer replayed op by op and its buffer, when its state reads join the
    /// graph right after the current layer's attention ([`Builder::recurrent_reads_after`]):
    /// a hybrid's ([`Builder::is_hybrid_mamba`]) wherever they run, a Mamba layer without an
    /// FFN ([`Builder::is_mamba`]) when they run elsewhere: on the host with the states
    /// there, in the attention's host split, else on that layer's device (see
    /// `cached_attention`).
    reads_after: Option<(usize, usize)>,
    /// An RWKV-6 layer's channel mix, built after the next layer's state reads.
    pending_mix: Option<rwkv::ChannelMix>,
    /// RWKV-7's first layer's value, which every later layer mixes in.
    first_value: Option<TensorId>,
    /// With the cache on the host, the layer whose attention the last device split resumes
    /// from: the output ids are copied with that split's inputs, not at the start of the
    /// device's first split (see `cached_attention`).
    outputs_resume: Option<usize>,
    /// A layer's norms run on the layer's device: llama.cpp's graph callback
    /// (`llama_context::graph_get_cb` at 0c1e57098) pins every tensor named `norm` there at
    /// full offload (every layer and the output on devices) or with under 32 tokens, so a
    /// device's split starts with the residual, not with its first layer's normed input.
    norms_pinned: bool,
    /// The current layer runs on a device and reads the cache in host memory: its split is cut
    /// by the host split of its K/V stores, and the residual its opening norm leaves to be
    /// read later is copied by the device split that resumes after them (after the output
    /// ids), not by the split the norm starts (measured: Qwen1.5-MoE's output device, 6.6%
    /// over before).
    defer_residual: bool,
    /// That residual, until `cached_attention` resumes the device split.
    deferred_residual: Option<TensorId>,
    /// What the device split resuming after a layer's host split reads besides the cache
    /// views and the mask, in order (an AltUp model's per-layer slices and the cache views of
    /// the cache-sharing layers that follow: [`Builder::split_reads`]).
    resume_reads: Vec<TensorId>,
    /// The buffers holding layers that read their states there by the row indices within
    /// the split they start (not the host with `--no-kv-offload`,
    /// [`Builder::reads_states_by_rows`]): that split copies the row indices among its
    /// inputs ([`Builder::enter`]). A property of the split entered, not of the layer being
    /// built: the host layer before a device closes with an add in the device's split.
    state_read_buffers: Vec<usize>,
    /// The attention kinds the device split resuming after the current layer's host split
    /// reads: after a gated delta-net layer's state stores (when the states live on the
    /// host), after an encoder layer's merged heads ([`Builder::heads_merged_on_host`]), or
    /// after a layer's K/V stores in a cache on the host: those of the layers after it up to
    /// the split's end ([`Builder::attention_kinds`]).
    resume_kinds: Kinds,
}

/// The attention layers of one cache kind (full or sliding) a split holds: whether some of
/// them rotate Q and K (they read the positions) and whether some attend without RoPE
/// ([`super::shape::LayerShape::no_rope`]: they read the attention scale, when the model has
/// one). Neither: the split reads nothing of that kind. `first`: the first such layer, whose
/// kind's inputs the split reads first.
#[derive(Clone, Copy, Default)]
struct KindLayers {
    rope: bool,
    no_rope: bool,
    first: Option<usize>,
}

impl KindLayers {
    /// Whether the split holds attention layers of this kind.
    fn any(self) -> bool {
        self.rope || self.no_rope
    }
}

/// The attention layers of each cache kind (full, sliding) a split holds.
type Kinds = [KindLayers; 2];

/// A scheduler split: the buffer it runs on and, when it holds layers, the attention layers
/// of each cache kind (full, sliding) it runs.
#[derive(Clone, Copy)]
struct Split {
    buffer: usize,
    kinds: Option<Kinds>,
    /// The split runs the last layer, which reads the output ids (`inp_out_ids`).
    outputs: bool,
}

impl Builder<'_> {
    fn has(&self, layer: usize, suffix: &str) -> bool {
        self.dims(layer, suffix).is_some()
    }

    /// `(ne[0], ne[1])` of a layer's weight.
    fn dims(&self, layer: usize, suffix: &str) -> Option<(u64, u64)> {
        self.names
            .get(format!("{}.{layer}.{suffix}", self.shape.layer_prefix).as_str())
            .copied()
    }

    /// Output width of a layer's matmul weight, else `default`.
    fn out_rows(&self, layer: usize, suffix: &str, default: u64) -> u64 {
        self.dims(layer, suffix).map_or(default, |(_, rows)| rows)
    }

    /// Bytes of an `[n_embd, n_tokens]` f32 activation.
    fn e(&self) -> u64 {
        self.shape.n_embd * self.r.n_tokens * F32
    }

    /// The whole graph of one placement: inputs and embeddings, every placed layer in the
    /// scheduler split it opens, then the output head ([`Builder::finish`]).
    fn build(&mut self, placement: &Placement) {
        if self.altup() {
            return self.build_altup(placement);
        }
        let tokens = self.graph_inputs(placement);
        let mut cur = self.g.op(self.e(), &[tokens], 0);
        if placement
            .layers
            .iter()
            .any(|&(l, _)| self.shape.layers[l].recurrent)
        {
            // Its views join the graph after the token embeddings.
            self.state_copy_input();
        }
        let mut positions = None;
        if self.shape.causal && self.names.contains_key("position_embd.weight") {
            // Learned positions (GPT-2, StarCoder): get_rows of the position table, added
            // below, once the first layer's split is known.
            let pos = self.pos();
            let e = self.e();
            positions = Some(self.op(e, &[pos]));
        }
        let last = placement.layers.len().saturating_sub(1);
        let splits = self.layer_splits(placement);
        if !self.shape.causal {
            cur = self.encoder_embeddings(cur, splits[0]);
        }
        if let Some(p) = positions {
            // The add has no weights: the scheduler runs it with the first layer ("expand gpu
            // up"), whose split on a device copies both embeddings first (StarCoder's 1:1
            // full offload at 0c1e57098: `embd`, `pos_embd`, then the attention inputs).
            if splits[0].buffer != HOST {
                self.enter(splits[0], &[cur, p], &[]);
            }
            cur = self.inplace(&[cur, p], 2);
        }
        self.note_placement(placement);
        for (k, &(layer, _)) in placement.layers.iter().enumerate() {
            self.next_state_reads = self.hybrid_reads_after(&placement.layers[k..]);
            if self.is_rwkv(layer) {
                cur = self.rwkv_layer(layer, cur, k == last, splits[k]);
            } else if self.is_mamba(layer) || self.is_hybrid_mamba(layer) {
                cur = self.placed_mamba_layer(placement, &splits, k, cur);
            } else {
                cur = self.placed_layer(placement, &splits, k, cur);
            }
        }
        self.finish(cur, splits[placement.layers.len()]);
    }

    /// The scheduler split each placed layer opens (one per layer, the same split again
    /// when its neighbour shares the buffer), then the output's: which buffer runs it, the
    /// attention layers of each cache kind it holds, and whether it runs to the output ids.
    /// One place for the facts every layer builder reads about where its split ends.
    fn layer_splits(&self, placement: &Placement) -> Vec<Split> {
        let split_at = |k: usize| match placement.layers.get(k) {
            Some(&(_, buffer)) => Split {
                buffer,
                kinds: Some(self.attention_kinds(&placement.layers[k..], buffer)),
                outputs: placement.layers[k..].iter().all(|&(_, b)| b == buffer)
                    && (placement.output == buffer || !self.rows_after_output_norm())
                    && !(self.r.kv_on_host
                        && placement.layers[k..]
                            .iter()
                            .any(|&(l, _)| self.is_mamba(l) || self.is_hybrid_mamba(l)))
                    // A device split of an encoder ends at each attention whose merged heads
                    // run on the host; the last layer's resumes with the output ids.
                    && !(self.heads_merged_on_host() && buffer != HOST),
            },
            None => Split {
                buffer: placement.output,
                kinds: None,
                outputs: false,
            },
        };
        (0..=placement.layers.len()).map(split_at).collect()
    }

    /// What the layer builders read about the placement as a whole: the buffers whose
    /// recurrent states are read by rows, the buffer where the output ids resume, and
    /// whether `build_norm`'s results are pinned (named) nodes.
    fn note_placement(&mut self, placement: &Placement) {
        self.state_read_buffers = placement
            .layers
            .iter()
            .filter(|&&(l, b)| self.reads_states_by_rows(l) && self.state_buffer(b) == b)
            .map(|&(_, b)| b)
            .collect();
        self.outputs_resume = self.outputs_resume(&placement.layers);
        let full_offload =
            placement.output != HOST && placement.layers.iter().all(|&(_, b)| b != HOST);
        // `build_norm` names its result `norm` only when the norm has a weight or a bias.
        self.norms_pinned = (full_offload || self.r.n_tokens < 32)
            && !PARAMETERLESS_NORM.contains(&self.shape.arch.as_str());
    }

    /// The `k`-th placed layer, a Mamba (or hybrid Mamba) one, which makes its own splits
    /// around its state reads and stores.
    fn placed_mamba_layer(
        &mut self,
        placement: &Placement,
        splits: &[Split],
        k: usize,
        cur: TensorId,
    ) -> TensorId {
        let layer = placement.layers[k].0;
        let last = k + 1 == placement.layers.len();
        // The next Mamba layer (past FFN-only layers) reads its states before this layer's
        // tail.
        let next = self.recurrent_reads_after(&placement.layers[k..]);
        // With the states on the host, the host's stores split the next device's layers: its
        // split does not run to the end.
        let mut next_split = splits[k + 1];
        next_split.outputs &= !self.r.kv_on_host;
        self.closing =
            (splits[k].buffer == HOST && next_split.buffer != HOST).then_some((next_split, None));
        let cur = self.mamba_layer(layer, cur, last, splits[k], next);
        self.closing = None;
        cur
    }

    /// The `k`-th placed layer, one with attention (or an FFN only): it enters its split,
    /// learns what the split's boundary and the next recurrent layer's state reads ask of it,
    /// then builds the decoder, encoder or T5 encoder layer.
    fn placed_layer(
        &mut self,
        placement: &Placement,
        splits: &[Split],
        k: usize,
        mut cur: TensorId,
    ) -> TensorId {
        let layer = placement.layers[k].0;
        let last = k + 1 == placement.layers.len();
        self.resume_kinds = self.attention_kinds(&placement.layers[k + 1..], splits[k].buffer);
        // State rows read on the host for a Mamba layer on this split's device are copied at
        // its start, after the layer input.
        let rows = self.state_rows.filter(|&(l, _)| {
            placement.layers[k..]
                .iter()
                .any(|&(pl, b)| pl == l && b == splits[k].buffer)
        });
        match rows {
            Some((_, rows)) if splits[k].buffer != self.buffer => {
                self.enter(splits[k], &[cur], &[rows]);
            }
            _ => self.enter_layer(splits[k], cur, self.opens_with_norm(layer)),
        }
        if self.opening.is_none() {
            cur = self.local(cur);
        }
        let next = splits[k + 1];
        self.closing = (splits[k].buffer == HOST && next.buffer != HOST).then_some((next, None));
        let reads_after = self.recurrent_reads_after(&placement.layers[k..]);
        self.next_recurrent = reads_after
            .filter(|&(_, b)| b != splits[k].buffer)
            .map(|(_, b)| b);
        // A hybrid's Mamba layer after an attention layer with a dense FFN (Jamba Mini's
        // layer 5 after layer 4) reads its states right after the attention wherever it
        // runs: the conv-state rows then hold their place in the buffer through the FFN
        // (Jamba's 1:1 split at 0c1e57098: `node_298` between `kqv_out-4` and `ffn_inp-4`).
        self.reads_after = reads_after.filter(|&(l, b)| {
            self.is_hybrid_mamba(l)
                || (self.is_mamba(l) && (self.r.kv_on_host || (b != splits[k].buffer && b != HOST)))
        });
        self.defer_residual =
            self.r.kv_on_host && splits[k].buffer != HOST && self.reads_cache(layer);
        let cur = if self.shape.t5_encoder {
            self.t5_encoder_layer(layer, cur, last)
        } else if self.shape.causal {
            self.decoder_layer(layer, cur, last && !self.rows_after_output_norm())
        } else {
            self.encoder_layer(layer, cur, last)
        };
        // A layer that does not close with a residual add leaves the boundary as it is.
        self.closing = None;
        self.deferred_residual = None;
        cur
    }

    /// The graph inputs that llama.cpp's `build_inp_*` create before the token embeddings,
    /// in their order; returns the token ids.
    fn graph_inputs(&mut self, placement: &Placement) -> TensorId {
        let tokens = self.input(self.r.n_tokens * 4);
        // build_inp_embd keeps both inputs (token ids and an f32 embeddings input) in the
        // graph so that its topology does not depend on the batch (ggml_build_forward_select);
        // the unused embeddings input is a leaf that is never freed.
        self.input(self.e());
        // llama.cpp creates every graph input before the layers (build_inp_*).
        // Positions are an input of the attention layers (none in Mamba or RWKV).
        if self.shape.positional && self.shape.layers.iter().any(|l| l.n_head_kv > 0) {
            self.pos();
        }
        if self.shape.attn_temperature {
            self.inputs.attn_scale = Some(self.input(self.r.n_tokens * F32));
        }
        if self.shape.t5_encoder {
            self.t5_inputs(&placement.layers);
        } else if self.shape.causal {
            for swa in [false, true] {
                let used = placement.layers.iter().any(|&(l, _)| {
                    let layer = self.shape.layers[l];
                    layer.n_head_kv > 0 && layer.swa == swa
                });
                if used {
                    self.attn_inputs(swa);
                }
            }
        } else {
            self.encoder_mask();
        }
        self.out_ids();
        if !self.shape.causal || self.shape.t5_encoder {
            // `build_pooling` runs after the layers, its input is the graph's last leaf.
            self.pooling_input();
        }
        tokens
    }

    /// After the layers: the output layer's split (`output`), then the graph's outputs (the
    /// output norm and LM head, or an encoder's pooling).
    fn finish(&mut self, mut cur: TensorId, output: Split) {
        if !self.shape.causal {
            // A BERT-style encoder's output layer holds no weights but a reranker's head: the
            // pooling runs where the last layer does, and an output device runs at most that
            // head (nomic-bert's 3:1 split at 0c1e57098: no compute buffer on the second
            // device).
            if self.names.contains_key("output_norm.weight") {
                // ModernBERT's final norm (`final_norm_out`): its weight is the output layer's,
                // so the norm opens the output split, which the pooling then runs in.
                self.enter_layer(output, cur, true);
                if self.opening.is_none() {
                    cur = self.local(cur);
                }
                cur = self.norm_with(cur, true, self.names.contains_key("output_norm.bias"));
            }
            return self.encoder_output(cur, output);
        }
        if self.shape.t5_encoder {
            // The output norm runs on the output device, which copies the pooling's input
            // after the layers' output.
            let pooling: Vec<TensorId> = self.inputs.pooling.into_iter().collect();
            self.enter(output, &[cur], &pooling);
        } else {
            self.enter_layer(output, cur, self.shape.causal);
        }
        if self.opening.is_none() {
            cur = self.local(cur);
        }
        self.output(cur);
    }

    /// The next layer and its buffer when it is a hybrid's Mamba layer whose state reads
    /// (`build_rs`) join the graph inside the first of `layers`: after its routed experts'
    /// sum, the last node `build_moe_ffn` expands, and before its shared expert and residual
    /// (Granite 4.0-H: graph order dumped from 0c1e57098's allocator; Jamba, without a
    /// shared expert: before the residual).
    fn hybrid_reads_after(&self, layers: &[(usize, usize)]) -> Option<(usize, usize)> {
        let (&(current, _), rest) = layers.split_first()?;
        let &(next, buffer) = rest.first()?;
        (self.is_hybrid_mamba(next) && self.has(current, "ffn_down_exps.weight"))
            .then_some((next, buffer))
    }

    /// The next recurrent layer and its buffer when its state reads join the graph right after
    /// what the first of `layers` expands, before that layer's tail.
    ///
    /// A recurrent layer (without attention beside it) expands its state reads (`build_rs`)
    /// before anything that reads its input, and a layer with only a dense FFN expands
    /// nothing (Nemotron-H's): the tail of the current layer (after its last expanded node:
    /// the state stores, or `kqv_out` of an attention) joins the graph only when the
    /// recurrent layer's conv-state store pulls in its input. A layer that expands nodes
    /// reading its input (attention, routed experts) pulls the tail in first.
    fn recurrent_reads_after(&self, layers: &[(usize, usize)]) -> Option<(usize, usize)> {
        let (&(current, _), rest) = layers.split_first()?;
        let routed = |il: usize| self.has(il, "ffn_down_exps.weight");
        if routed(current) {
            return None;
        }
        for &(il, b) in rest {
            let layer = self.shape.layers[il];
            if layer.recurrent && layer.n_head_kv == 0 {
                return Some((il, b));
            }
            if layer.recurrent || layer.n_head_kv > 0 || routed(il) {
                return None;
            }
        }
        None
    }

    fn op(&mut self, bytes: u64, srcs: &[TensorId]) -> TensorId {
        let srcs: Vec<TensorId> = srcs.iter().map(|&s| self.local(s)).collect();
        self.g.op(bytes, &srcs, self.buffer)
    }

    fn inplace(&mut self, srcs: &[TensorId], same_layout: usize) -> TensorId {
        let bytes = self.g.bytes(srcs[0]);
        self.inplace_sized(bytes, srcs, same_layout)
    }

    /// [`Builder::inplace`] for an output of `bytes` smaller than its first source (an op
    /// over the leading view of a larger tensor).
    fn inplace_sized(&mut self, bytes: u64, srcs: &[TensorId], same_layout: usize) -> TensorId {
        let srcs: Vec<TensorId> = srcs.iter().map(|&s| self.local(s)).collect();
        self.g.inplace_sized(bytes, &srcs, same_layout, self.buffer)
    }

    /// `build_norm`: the norm op, then in-place weight and bias. A layer's opening norm
    /// pending on the previous device ([`Builder::opening`]) runs there, and the new split
    /// starts with its result (its weight is on the new device), reading `x`, the residual,
    /// later.
    fn norm(&mut self, x: TensorId, layer_norm: bool) -> TensorId {
        self.norm_with(x, layer_norm, layer_norm)
    }

    /// `build_norm` of a norm with a bias of its own (`bias`): `ggml_norm` (LLM_NORM), except
    /// for the architectures of [`RMS_NORM_WITH_BIAS`], whose in-place `ggml_rms_norm` is
    /// followed by the weight and the bias; always `ggml_norm` for [`PARAMETERLESS_NORM`].
    fn biased_norm(&mut self, x: TensorId, bias: bool) -> TensorId {
        let arch = self.shape.arch.as_str();
        let layer_norm =
            (bias && !RMS_NORM_WITH_BIAS.contains(&arch)) || PARAMETERLESS_NORM.contains(&arch);
        self.norm_with(x, layer_norm, bias)
    }

    /// [`Self::norm`], with the in-place bias add when `bias`.
    fn norm_with(&mut self, x: TensorId, layer_norm: bool, bias: bool) -> TensorId {
        let n = if layer_norm {
            // GGML_OP_NORM is not in ggml_op_can_inplace.
            let bytes = self.g.bytes(x);
            self.op(bytes, &[x])
        } else {
            self.inplace(&[x], 1)
        };
        if let Some(split) = self.opening.take() {
            // The output layer reads only the norm; a layer reads its residual later.
            match split.kinds {
                Some(_) if self.defer_residual => {
                    self.deferred_residual = Some(x);
                    self.enter(split, &[n], &[]);
                }
                Some(_) => self.enter_with_residual(split, &[n], x),
                None => self.enter(split, &[n], &[]),
            }
        }
        if PARAMETERLESS_NORM.contains(&self.shape.arch.as_str()) {
            // No weight to multiply by: the norm is the result (on a device whose split copies
            // it from the previous one, an in-place op there would take new memory when the
            // copy is a pipeline copy: OLMo's 1:1 split, 4 MiB over on the second device).
            return n;
        }
        let n = self.inplace(&[n], 1);
        if bias { self.inplace(&[n], 1) } else { n }
    }

    /// A matmul with an optional in-place bias add.
    fn linear(&mut self, x: TensorId, rows: u64, tokens: u64, bias: bool) -> TensorId {
        let y = self.op(rows * tokens * F32, &[x]);
        if bias { self.inplace(&[y], 1) } else { y }
    }

    /// The output rows of `x` (`get_rows` by `inp_out_ids`) when `last`; `x` otherwise.
    fn output_rows(&mut self, x: TensorId, last: bool) -> TensorId {
        if !last {
            return x;
        }
        let ids = self.out_ids();
        let e = self.e();
        self.op(e, &[x, ids])
    }

    /// The last layer keeps only the output rows of both streams, `cur`'s first.
    fn select_outputs(
        &mut self,
        cur: TensorId,
        residual: TensorId,
        last: bool,
    ) -> (TensorId, TensorId) {
        let cur = self.output_rows(cur, last);
        (cur, self.output_rows(residual, last))
    }

    /// Output norm and LM head (decoders), or pooling (encoders).
    fn output(&mut self, inp: TensorId) {
        let t = self.r.n_tokens;
        if self.shape.t5_encoder {
            // The T5 encoder ends with its output norm: no LM head.
            let embd = self.norm(inp, false);
            self.g.mark_output(embd);
            if let Some(pooled) = self.pool(embd) {
                self.g.mark_output(pooled);
            }
            return;
        }
        let inp = if self.outputs_after_layers() {
            // The last layer's output is the graph's `t_h_nextn` (`openai-moe.cpp`), an output
            // that keeps its memory; the output rows are selected from it.
            self.g.mark_output(inp);
            self.output_rows(inp, true)
        } else {
            inp
        };
        // Parallel-block layers (Command-R, Cohere2, GPT-NeoX, Phi-2, Falcon) norm with
        // `ggml_norm` (LLM_NORM), with or without a bias: not in place.
        let mut embd = if self.parallel_block().is_some() {
            self.norm(inp, true)
        } else {
            self.biased_norm(inp, self.names.contains_key("output_norm.bias"))
        };
        self.g.mark_output(embd);
        if self.rows_after_output_norm() {
            // The normed output is the graph's `t_h_nextn`, an output; the output rows are
            // selected from it into `t_embd`, another.
            embd = self.output_rows(embd, true);
            self.g.mark_output(embd);
        }
        // An output cannot be overwritten in place: a scale of it is a tensor of its own.
        let head_input = match self.shape.scaled_head_input {
            true => self.op(self.e(), &[embd]),
            false => embd,
        };
        let logits = self.op(self.shape.n_vocab * t * F32, &[head_input]);
        self.g.mark_output(logits);
    }
}
