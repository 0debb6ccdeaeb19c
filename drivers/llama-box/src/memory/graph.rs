//! The worst-case graph llama.cpp reserves its compute buffers for (`graph_reserve` with a
//! full ubatch, every token an output), built op by op as `src/llama-graph.cpp` and the
//! per-architecture builders of `src/llama-model.cpp` build it, then allocated with
//! [`Graph::peak`].
//!
//! The builder covers the decoder layer llama.cpp uses for the llama family (llama, qwen2/3,
//! mistral, gemma, phi3...: norm, Q/K/V with optional biases and Q/K norms, RoPE, attention
//! through the KV cache, output projection, optional post-norms, gated or sequential FFN) and
//! MoE FFNs (routed experts, optional shared expert), multi-head latent attention
//! (DeepSeek-V2/V3: absorbed K decompression, K-only cache, `wv_b` after attention), and the
//! BERT-style encoder. Recurrent layers are sized with a Mamba template.
//! [`super::architecture`] says which architectures this covers and how sure each is.
//!
//! Multi-device graphs follow `ggml_backend_sched`: each device runs a split of consecutive
//! layers; the inputs a split reads from another buffer are copied into its own buffer at the
//! start of the split, and with pipeline parallelism every such copy (and every graph input)
//! exists once per scheduler copy and is never freed.

use std::collections::HashMap;

use super::alloc::{Graph, TensorId};
use super::shape::{Mla, ModelShape};
use crate::params::CacheType;

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
    /// Pooled embeddings requested (encoders).
    pub pooled: bool,
    /// The KV cache stays in host memory (`--no-kv-offload`, `offload_kqv = false`).
    pub kv_on_host: bool,
    /// K and V cache element types.
    pub cache_types: (CacheType, CacheType),
}

/// Which buffer runs what: `layers[k] = (model layer, buffer)`, in order; the input layer is
/// always buffer 0 (host).
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub layers: Vec<(usize, usize)>,
    pub output: usize,
    pub buffers: usize,
}

/// Alignment of the CPU and RPC(CPU) buffer types (`TENSOR_ALIGNMENT`).
pub(crate) const CPU_ALIGNMENT: u64 = 32;

/// The host's buffer: graph inputs, the CPU backend's ops and, without KV offload, the cache.
const HOST: usize = 0;

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
    };
    builder.build(placement);
    builder.g.peak(placement.buffers, CPU_ALIGNMENT)
}

#[derive(Default)]
struct Inputs {
    pos: Option<TensorId>,
    out_ids: Option<TensorId>,
    /// Per cache kind (full, swa).
    attn: [Option<AttnInputs>; 2],
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
}

impl Builder<'_> {
    fn has(&self, layer: usize, suffix: &str) -> bool {
        self.dims(layer, suffix).is_some()
    }

    /// `(ne[0], ne[1])` of a layer's weight.
    fn dims(&self, layer: usize, suffix: &str) -> Option<(u64, u64)> {
        self.names
            .get(format!("blk.{layer}.{suffix}").as_str())
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

    fn build(&mut self, placement: &Placement) {
        let tokens = self.input(self.r.n_tokens * 4);
        // build_inp_embd keeps both inputs (token ids and an f32 embeddings input) in the
        // graph so that its topology does not depend on the batch (ggml_build_forward_select);
        // the unused embeddings input is a leaf that is never freed.
        self.input(self.e());
        // llama.cpp creates every graph input before the layers (build_inp_*).
        self.pos();
        if self.shape.causal {
            for swa in [false, true] {
                let used = placement.layers.iter().any(|&(l, _)| {
                    let layer = self.shape.layers[l];
                    !layer.recurrent && layer.swa == swa
                });
                if used {
                    self.attn_inputs(swa);
                }
            }
        } else {
            self.encoder_mask();
        }
        self.out_ids();
        let mut cur = self.g.op(self.e(), &[tokens], 0);
        if !self.shape.causal {
            cur = self.encoder_embeddings(cur);
        } else if self.names.contains_key("position_embd.weight") {
            // Learned positions (GPT-2, StarCoder): get_rows of the position table, added.
            let pos = self.pos();
            let e = self.e();
            let p = self.op(e, &[pos]);
            cur = self.inplace(&[cur, p], 2);
        }
        let last = placement.layers.len().saturating_sub(1);
        for (k, &(layer, buffer)) in placement.layers.iter().enumerate() {
            let kinds = self.attention_kinds(&placement.layers[k..], buffer);
            self.enter(buffer, cur, Some(kinds));
            cur = self.local(cur);
            cur = if self.shape.causal {
                self.decoder_layer(layer, cur, k == last)
            } else {
                self.encoder_layer(layer, cur, k == last)
            };
        }
        self.enter(placement.output, cur, None);
        let cur = self.local(cur);
        self.output(cur);
    }

    /// A graph input; inputs live on the host and are copied to devices that use them.
    fn input(&mut self, bytes: u64) -> TensorId {
        if self.r.n_copies > 1 {
            // Pipeline parallelism: one pinned copy per scheduler copy (ggml-backend.c).
            for _ in 1..self.r.n_copies {
                self.g.pinned_input(bytes, 0);
            }
            self.g.pinned_input(bytes, 0)
        } else {
            self.g.input(bytes, 0)
        }
    }

    /// Which attention inputs (full, sliding) the split starting with `layers[0]` on
    /// `buffer` reads: the layers up to the next buffer change.
    fn attention_kinds(&self, layers: &[(usize, usize)], buffer: usize) -> [bool; 2] {
        let mut kinds = [false; 2];
        for &(l, _) in layers.iter().take_while(|&&(_, b)| b == buffer) {
            let layer = self.shape.layers[l];
            if !layer.recurrent {
                kinds[usize::from(layer.swa)] = true;
            }
        }
        kinds
    }

    /// Starts a split on `buffer`: the scheduler copies the split's inputs first (the
    /// residual stream, and, when the split holds layers, the attention inputs of the cache
    /// kinds its layers read: `kinds`).
    fn enter(&mut self, buffer: usize, residual: TensorId, kinds: Option<[bool; 2]>) {
        if buffer == self.buffer {
            return;
        }
        self.buffer = buffer;
        let mut needed = vec![residual];
        let Some(kinds) = kinds else {
            self.copy_to(residual, buffer);
            return;
        };
        needed.extend(self.inputs.pos);
        // With the cache on the host only the host reads the row indices (the stores run
        // there), and a device reads the mask only from the split its flash attention starts,
        // so the copy is made there (`cached_attention`).
        let cache_here = !self.r.kv_on_host || buffer == HOST;
        let used = self.inputs.attn.iter().zip(kinds);
        for a in used.filter_map(|(a, used)| a.filter(|_| used)) {
            if let Some((k_idxs, v_idxs)) = a.idxs.filter(|_| cache_here) {
                needed.push(k_idxs);
                needed.extend(v_idxs);
            }
            if cache_here || a.idxs.is_none() {
                needed.push(a.mask);
            }
        }
        for src in needed {
            self.copy_to(src, buffer);
        }
    }

    fn copy_to(&mut self, src: TensorId, buffer: usize) -> TensorId {
        if self.g.buffer(src) == buffer {
            return src;
        }
        if let Some(&copy) = self.copies.get(&(src, buffer)) {
            return copy;
        }
        let bytes = self.g.bytes(src);
        let copy = if self.r.n_copies > 1 {
            let mut last = 0;
            for _ in 0..self.r.n_copies {
                last = self.g.pinned_input(bytes, buffer);
            }
            last
        } else {
            // The source is kept alive by a dependency until the copy is made.
            self.g.dependency(src, buffer);
            self.g.op(bytes, &[], buffer)
        };
        self.copies.insert((src, buffer), copy);
        copy
    }

    fn local(&mut self, t: TensorId) -> TensorId {
        let buffer = self.buffer;
        self.copy_to(t, buffer)
    }

    fn op(&mut self, bytes: u64, srcs: &[TensorId]) -> TensorId {
        let srcs: Vec<TensorId> = srcs.iter().map(|&s| self.local(s)).collect();
        self.g.op(bytes, &srcs, self.buffer)
    }

    fn inplace(&mut self, srcs: &[TensorId], same_layout: usize) -> TensorId {
        let srcs: Vec<TensorId> = srcs.iter().map(|&s| self.local(s)).collect();
        self.g.inplace(&srcs, same_layout, self.buffer)
    }

    /// `build_norm`: the norm op, then in-place weight and bias.
    fn norm(&mut self, x: TensorId, layer_norm: bool) -> TensorId {
        let n = if layer_norm {
            // GGML_OP_NORM is not in ggml_op_can_inplace.
            let bytes = self.g.bytes(x);
            self.op(bytes, &[x])
        } else {
            self.inplace(&[x], 1)
        };
        let n = self.inplace(&[n], 1);
        if layer_norm { self.inplace(&[n], 1) } else { n }
    }

    /// A matmul with an optional in-place bias add.
    fn linear(&mut self, x: TensorId, rows: u64, tokens: u64, bias: bool) -> TensorId {
        let y = self.op(rows * tokens * F32, &[x]);
        if bias { self.inplace(&[y], 1) } else { y }
    }

    fn pos(&mut self) -> TensorId {
        if let Some(p) = self.inputs.pos {
            return p;
        }
        let p = self.input(self.r.n_tokens * 4);
        self.inputs.pos = Some(p);
        p
    }

    fn out_ids(&mut self) -> TensorId {
        if let Some(o) = self.inputs.out_ids {
            return o;
        }
        let o = self.input(self.r.n_tokens * 4);
        self.inputs.out_ids = Some(o);
        o
    }

    /// The KV-cache attention inputs of a cache kind (`build_attn_inp_kv`).
    fn attn_inputs(&mut self, swa: bool) -> AttnInputs {
        let kind = usize::from(swa);
        if let Some(existing) = self.inputs.attn[kind] {
            return existing;
        }
        let r = self.r;
        let n_kv = if swa { r.n_kv_swa } else { r.n_kv };
        let per_stream = (r.n_tokens / r.n_stream.max(1)).max(1);
        let mask =
            n_kv * per_stream.div_ceil(KQ_MASK_PAD) * KQ_MASK_PAD * r.n_stream * self.mask_type();
        let k_idxs = self.input(r.n_tokens * 8);
        // A transposed V cache is written element by element: one index per value. MLA
        // caches only K (`build_attn_inp_k`).
        let v_rows = if r.v_trans { self.max_v_gqa() } else { 1 };
        let v_idxs = match self.shape.mla {
            Some(_) => None,
            None => Some(self.input(r.n_tokens * v_rows * 8)),
        };
        let mask = self.input(mask);
        let inputs = AttnInputs {
            mask,
            idxs: Some((k_idxs, v_idxs)),
        };
        self.inputs.attn[kind] = Some(inputs);
        inputs
    }

    /// The encoder's mask input (`build_attn_inp_no_cache`).
    fn encoder_mask(&mut self) {
        let t = self.r.n_tokens;
        let mask = self.input(t * t.div_ceil(KQ_MASK_PAD) * KQ_MASK_PAD * self.mask_type());
        self.inputs.attn[0] = Some(AttnInputs { mask, idxs: None });
    }

    /// Bytes per mask element: flash attention takes an f16 mask, built as such.
    fn mask_type(&self) -> u64 {
        if self.r.flash_attn { F16 } else { F32 }
    }

    /// The mask of a cache kind (0 full, 1 sliding).
    fn mask_for(&self, kind: usize) -> TensorId {
        self.inputs.attn[kind].map_or(0, |a| a.mask)
    }

    fn max_v_gqa(&self) -> u64 {
        let max_kv = self
            .shape
            .layers
            .iter()
            .map(|l| l.n_head_kv)
            .max()
            .unwrap_or(0);
        max_kv * self.shape.head_v
    }

    fn decoder_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let shape = self.shape;
        let layer = shape.layers[il];
        if layer.recurrent {
            return self.recurrent_layer(il, inp, last);
        }
        let t = self.r.n_tokens;
        let (hk, hv) = (shape.head_k, shape.head_v);
        let q_rows = layer.n_head.max(1) * hk;
        let kv_heads = layer.n_head_kv.max(1);
        let (k_rows, v_rows) = (kv_heads * hk, kv_heads * hv);
        let cur = self.norm(inp, self.has(il, "attn_norm.bias"));
        if let Some(mla) = shape.mla.filter(|_| self.has(il, "attn_kv_a_mqa.weight")) {
            let attn = self.mla_attention(il, cur, mla);
            let cur = self.linear(attn, shape.n_embd, t, false);
            return self.ffn_block(il, cur, inp, last);
        }
        let pos = self.pos();
        let (q, k, v) = if self.has(il, "attn_qkv.weight") {
            // One matmul; Q, K and V are views into its result.
            let rows = self.out_rows(il, "attn_qkv.weight", q_rows + k_rows + v_rows);
            let qkv = self.linear(cur, rows, t, self.has(il, "attn_qkv.bias"));
            let q = self.g.view(qkv, true);
            let k = self.g.view(qkv, false);
            let v = self.g.view(qkv, false);
            let q = self.qk_rope(il, q, q_rows * t * F32, "attn_q_norm.weight", pos);
            let k = self.qk_rope(il, k, k_rows * t * F32, "attn_k_norm.weight", pos);
            (q, k, v)
        } else {
            // build_attn expands Q, then V, then K (K last for RoPE fusion into the cache).
            let q_rows = self.out_rows(il, "attn_q.weight", q_rows);
            let q = self.linear(cur, q_rows, t, self.has(il, "attn_q.bias"));
            let q = self.qk_rope(il, q, q_rows * t * F32, "attn_q_norm.weight", pos);
            let v_rows = self.out_rows(il, "attn_v.weight", v_rows);
            let v = self.linear(cur, v_rows, t, self.has(il, "attn_v.bias"));
            let k_rows = self.out_rows(il, "attn_k.weight", k_rows);
            let k = self.linear(cur, k_rows, t, self.has(il, "attn_k.bias"));
            let k = self.qk_rope(il, k, k_rows * t * F32, "attn_k_norm.weight", pos);
            (q, k, v)
        };
        let v = self.g.view(v, true);
        let attn = self.cached_attention(il, q, k, v);
        let mut cur = self.linear(attn, shape.n_embd, t, self.has(il, "attn_output.bias"));
        if self.has(il, "post_attention_norm.weight") {
            cur = self.norm(cur, false);
        }
        self.ffn_block(il, cur, inp, last)
    }

    /// The second half of a pre-norm decoder layer: the attention residual, the FFN norm, the
    /// FFN and its residual.
    fn ffn_block(&mut self, il: usize, cur: TensorId, inp: TensorId, last: bool) -> TensorId {
        let (cur, residual) = self.select_outputs(cur, inp, last);
        let ffn_inp = self.inplace(&[cur, residual], 2);
        let normed = self.norm(ffn_inp, self.has(il, "ffn_norm.bias"));
        let mut out = self.ffn(il, normed);
        if self.has(il, "post_ffw_norm.weight") {
            out = self.norm(out, false);
        }
        self.inplace(&[out, ffn_inp], 2)
    }

    /// A Mamba-style recurrent layer (`build_mamba_layer`): input projection to x and z,
    /// the causal convolution over the conv state and the ubatch, the selective scan (its
    /// output carries the tokens' y and the new states), the gate and the output projection.
    /// Widths come from the tensors; RWKV layers are sized with the same template.
    fn recurrent_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let t = self.r.n_tokens;
        let e = self.shape.n_embd;
        let in_rows = self.out_rows(il, "ssm_in.weight", 2 * e);
        let inner = self
            .dims(il, "ssm_out.weight")
            .map_or(in_rows / 2, |(cols, _)| cols)
            .max(1);
        let state = (self.shape.recurrent.s / inner).max(1);
        let kernel = (self.shape.recurrent.r / inner.max(1)).max(1);
        let cur = self.norm(inp, false);
        let xz = self.linear(cur, in_rows, t, false);
        let x = self.g.view(xz, true);
        let window = self.op((kernel + t) * inner * F32, &[x]);
        let conv = self.op(inner * t * F32, &[window]);
        let conv = self.inplace(&[conv], 1);
        let scan = self.op(
            (inner * t + state * inner * self.r.n_stream.max(1)) * F32,
            &[conv],
        );
        let y = self.g.view(scan, true);
        let z = self.g.view(xz, false);
        let gate = self.op(inner * t * F32, &[z]);
        let y = self.op(inner * t * F32, &[y, gate]);
        let out = self.linear(y, e, t, false);
        let (out, residual) = self.select_outputs(out, inp, last);
        self.inplace(&[out, residual], 2)
    }

    /// Multi-head latent attention with the absorbed K decompression
    /// (`llama_model_deepseek2::graph` with `is_mla`): the query (directly, or through the
    /// compressed `q_a`/`q_b` path) splits into a no-RoPE part, multiplied by `wk_b` into the
    /// latent space, and a RoPE part; the latent and its RoPE part form the only cache row, V
    /// is a view of it, and `wv_b` decompresses the attention output per head
    /// (`build_attn_mha`'s `v_mla`).
    fn mla_attention(&mut self, il: usize, cur: TensorId, mla: Mla) -> TensorId {
        let t = self.r.n_tokens;
        let layer = self.shape.layers[il];
        let n_head = layer.n_head.max(1);
        let q = if self.has(il, "attn_q_a.weight") {
            let rank = self.out_rows(il, "attn_q_a.weight", 1);
            let compressed = self.linear(cur, rank, t, false);
            let compressed = self.norm(compressed, false);
            let rows = self.out_rows(il, "attn_q_b.weight", 1);
            self.linear(compressed, rows, t, false)
        } else {
            let rows = self.out_rows(il, "attn_q.weight", 1);
            self.linear(cur, rows, t, false)
        };
        let pos = self.pos();
        let latent = mla.kv_lora + mla.rope;
        let rows = self.out_rows(il, "attn_kv_a_mqa.weight", latent);
        let kv_pe = self.linear(cur, rows, t, false);
        let k_pe = self.g.view(kv_pe, false);
        let k_pe = self.op(mla.rope * t * F32, &[k_pe, pos]);
        // The latent's RMS norm reads a view, so it gets a tensor of its own.
        let kv_cmpr = self.g.view(kv_pe, true);
        let kv_cmpr = self.op(mla.kv_lora * t * F32, &[kv_cmpr]);
        let kv_cmpr = self.inplace(&[kv_cmpr], 1);
        let q_nope = self.g.view(q, true);
        let q_pe = self.g.view(q, false);
        let q_pe = self.op(n_head * mla.rope * t * F32, &[q_pe, pos]);
        let q_nope = self.g.view(q_nope, false);
        let absorbed = self.op(n_head * mla.kv_lora * t * F32, &[q_nope]);
        let absorbed = self.g.view(absorbed, false);
        let q = self.op(n_head * latent * t * F32, &[absorbed, q_pe]);
        let kv_cmpr = self.g.view(kv_cmpr, true);
        let k = self.op(latent * t * F32, &[kv_cmpr, k_pe]);
        let inputs = self.attn_inputs(layer.swa);
        if let Some((k_idxs, _)) = inputs.idxs {
            let k_idxs = self.local(k_idxs);
            self.g.store(&[k, k_idxs], self.buffer);
        }
        let mask = self.mask_for(usize::from(layer.swa));
        let n_kv = if layer.swa {
            self.r.n_kv_swa
        } else {
            self.r.n_kv
        };
        let q = self.g.view(q, false);
        let latent_out = if self.r.flash_attn {
            let out = self.op(mla.kv_lora * n_head * t * F32, &[q, mask]);
            self.g.view(out, false)
        } else {
            let kq = self.op(n_kv * t * n_head * F32, &[q]);
            let kq = self.inplace(&[kq, mask], 1);
            // V, a view of the K cache, made contiguous after the transpose.
            let cells = n_kv * self.r.n_stream.max(1);
            let v = self.op(self.r.cache_types.0.row_bytes(mla.kv_lora) * cells, &[]);
            self.op(mla.kv_lora * t * n_head * F32, &[v, kq])
        };
        let decompressed = self.op(mla.head_v * n_head * t * F32, &[latent_out]);
        let permuted = self.g.view(decompressed, false);
        self.op(mla.head_v * n_head * t * F32, &[permuted])
    }

    /// Optional per-head norm, then RoPE, on a reshaped view. RoPE gets its own tensor: the
    /// measured buffers show no in-place reuse for it at this llama.cpp version.
    fn qk_rope(
        &mut self,
        il: usize,
        x: TensorId,
        bytes: u64,
        norm: &str,
        pos: TensorId,
    ) -> TensorId {
        let mut x = self.g.view(x, true);
        if self.has(il, norm) {
            x = self.norm(x, false);
        }
        self.op(bytes, &[x, pos])
    }

    /// The last layer keeps only the output rows (`inp_out_ids`) of both streams.
    fn select_outputs(
        &mut self,
        cur: TensorId,
        residual: TensorId,
        last: bool,
    ) -> (TensorId, TensorId) {
        if !last {
            return (cur, residual);
        }
        let ids = self.out_ids();
        let e = self.e();
        let cur = self.op(e, &[cur, ids]);
        let residual = self.op(e, &[residual, ids]);
        (cur, residual)
    }

    /// `build_attn` with a KV cache: store K/V, attend over the cache.
    ///
    /// With the cache in host memory (`--no-kv-offload`) and the layer on a device,
    /// `ggml_backend_sched_split_graph` (0c1e57098) splits the layer: the stores are views of
    /// a host buffer, so they run on the CPU (pass 1, `1.dst`) in a split of their own, whose
    /// inputs (the new K and V rows) are copied into the host buffer first. Flash attention is
    /// then assigned upwards from the output projection (pass 2, "expand gpu up"), so it stays
    /// on the device, which copies the cache views it reads into its own buffer. Without flash
    /// attention `build_attn_mha` pins the attention output to the CPU, so KQ, softmax and KQV
    /// join the host split (pass 2, "expand rest down"), Q is copied there too, and the
    /// device copies the result back for the output projection.
    fn cached_attention(&mut self, il: usize, q: TensorId, k: TensorId, v: TensorId) -> TensorId {
        let layer = self.shape.layers[il];
        let inputs = self.attn_inputs(layer.swa);
        let device = self.buffer;
        let cache_on_host = self.r.kv_on_host && device != HOST;
        let (mut k, mut v, mut q) = (self.g.view(k, true), self.g.view(v, true), q);
        if cache_on_host {
            // The host split's inputs are all copied at its start, in the order nodes use them.
            self.buffer = HOST;
            k = self.local(k);
            v = self.local(v);
            if !self.r.flash_attn {
                q = self.local(q);
            }
        }
        if let Some((k_idxs, v_idxs)) = inputs.idxs {
            let k_idxs = self.local(k_idxs);
            self.g.store(&[k, k_idxs], self.buffer);
            if let Some(v_idxs) = v_idxs {
                let v_idxs = self.local(v_idxs);
                self.g.store(&[v, v_idxs], self.buffer);
            }
        }
        let n_kv = if layer.swa {
            self.r.n_kv_swa
        } else {
            self.r.n_kv
        };
        let mask = self.mask_for(usize::from(layer.swa));
        let heads = (layer.n_head.max(1), layer.n_head_kv.max(1));
        let source = if cache_on_host && self.r.flash_attn {
            self.buffer = device;
            self.cache_copies(n_kv, heads.1)
        } else {
            KvSource::Cache
        };
        let out = self.attention(q, source, mask, n_kv, heads);
        self.buffer = device;
        out
    }

    /// Copies, in the current buffer, of one layer's K and V cache views (`get_k`/`get_v`:
    /// `n_kv` cells of every stream) held in another backend's buffer.
    fn cache_copies(&mut self, n_kv: u64, n_head_kv: u64) -> KvSource {
        let (type_k, type_v) = self.r.cache_types;
        let cells = n_kv * self.r.n_stream.max(1);
        let k_bytes = type_k.row_bytes(n_head_kv * self.shape.head_k) * cells;
        let v_bytes = type_v.row_bytes(n_head_kv * self.shape.head_v) * cells;
        let k = self.g.op(k_bytes, &[], self.buffer);
        let v = self.g.op(v_bytes, &[], self.buffer);
        KvSource::CacheCopies(k, v)
    }

    /// `build_attn_mha`: flash attention, or KQ + softmax + KQV, reading K and V from
    /// `source`.
    fn attention(
        &mut self,
        q: TensorId,
        source: KvSource,
        mask: TensorId,
        n_kv: u64,
        (n_head, n_head_kv): (u64, u64),
    ) -> TensorId {
        let t = self.r.n_tokens;
        let (hk, hv) = (self.shape.head_k, self.shape.head_v);
        let q = self.g.view(q, true);
        if self.r.flash_attn {
            let mut srcs = vec![q, mask];
            match source {
                KvSource::Cache => {}
                KvSource::CacheCopies(k, v) => srcs.extend([k, v]),
                KvSource::Uncached(k, v) => {
                    // K and V of an encoder are f32: cast to f16 for the kernel.
                    let kc = self.op(n_head_kv * hk * t * F16, &[k]);
                    let vc = self.op(n_head_kv * hv * t * F16, &[v]);
                    srcs.extend([kc, vc]);
                }
            }
            let out = self.op(hv * n_head * t * F32, &srcs);
            return self.g.view(out, true);
        }
        let mut kq_srcs = vec![q];
        let mut kqv_srcs = Vec::new();
        match source {
            KvSource::Cache => {}
            KvSource::CacheCopies(k, v) => {
                kq_srcs.push(k);
                kqv_srcs.push(v);
            }
            KvSource::Uncached(k, _) => kq_srcs.push(k),
        }
        let kq = self.op(n_kv * t * n_head * F32, &kq_srcs);
        let kq = self.inplace(&[kq, mask], 1);
        if let KvSource::Uncached(_, v) = source {
            // Uncached V is made contiguous after the transpose.
            let vt = self.g.view(v, false);
            let vc = self.op(n_head_kv * hv * t * F32, &[vt]);
            kqv_srcs.push(vc);
        }
        kqv_srcs.push(kq);
        let kqv = self.op(hv * t * n_head * F32, &kqv_srcs);
        let permuted = self.g.view(kqv, false);
        self.op(hv * n_head * t * F32, &[permuted])
    }

    fn ffn(&mut self, il: usize, x: TensorId) -> TensorId {
        if self.has(il, "ffn_gate_inp.weight") {
            let routed = self.moe(il, x);
            if self.has(il, "ffn_up_shexp.weight") {
                let shared = self.shared_expert(il, x);
                return self.inplace(&[routed, shared], 2);
            }
            return routed;
        }
        let ff = self.shape.layers[il].n_ff.max(1);
        self.dense_ffn(il, x, ff, "")
    }

    /// `build_ffn`: gated (PAR: gate, up, GLU) or sequential (up, activation in place).
    fn dense_ffn(&mut self, il: usize, x: TensorId, ff: u64, suffix: &str) -> TensorId {
        let t = self.r.n_tokens;
        let gate_name = format!("ffn_gate{suffix}.weight");
        let up_name = format!("ffn_up{suffix}.weight");
        let up_bias = self.has(il, &format!("ffn_up{suffix}.bias"));
        let up_rows = self.out_rows(il, &up_name, ff);
        // Width the down projection reads (its `ne[0]`).
        let inner = self
            .dims(il, &format!("ffn_down{suffix}.weight"))
            .map_or(ff, |(cols, _)| cols);
        let act = if self.has(il, &gate_name) {
            let gate_bias = self.has(il, &format!("ffn_gate{suffix}.bias"));
            let gate = self.linear(x, self.out_rows(il, &gate_name, ff), t, gate_bias);
            let up = self.linear(x, up_rows, t, up_bias);
            // GGML_OP_GLU is not in-place.
            self.op(inner * t * F32, &[gate, up])
        } else if up_rows == 2 * inner {
            // Gate and up fused in one matmul (Phi-3): the GLU splits it into a new tensor.
            let up = self.linear(x, up_rows, t, up_bias);
            self.op(inner * t * F32, &[up])
        } else {
            let up = self.linear(x, up_rows, t, up_bias);
            self.inplace(&[up], 1)
        };
        let bias = self.has(il, &format!("ffn_down{suffix}.bias"));
        self.linear(act, self.shape.n_embd, t, bias)
    }

    /// `build_moe_ffn`: router, top-k, expert matmuls, weighting and the sum over experts.
    fn moe(&mut self, il: usize, x: TensorId) -> TensorId {
        let ex = self.shape.experts;
        let t = self.r.n_tokens;
        let (n, k) = (ex.count.max(1), ex.used.max(1));
        let fallback = if ex.ff > 0 {
            ex.ff
        } else {
            self.shape.layers[il].n_ff.max(1)
        };
        let ff = self.out_rows(il, "ffn_up_exps.weight", fallback);
        let logits = self.op(n * t * F32, &[x]);
        let probs = self.inplace(&[logits], 1);
        let order = self.op(n * t * 4, &[probs]);
        let selected = self.g.view(order, true);
        let probs_view = self.g.view(probs, true);
        let weights = self.op(k * t * F32, &[probs_view, selected]);
        let xv = self.g.view(x, true);
        let gate = self.op(ff * k * t * F32, &[xv, selected]);
        let up = self.op(ff * k * t * F32, &[xv, selected]);
        let act = self.op(ff * k * t * F32, &[gate, up]);
        let experts = self.op(self.shape.n_embd * k * t * F32, &[act, selected]);
        let experts = self.inplace(&[experts, weights], 1);
        let first = self.g.view(experts, true);
        let e = self.e();
        if k == 1 {
            return self.op(e, &[first]);
        }
        let mut sum = first;
        for i in 1..k {
            let view = self.g.view(experts, false);
            sum = if i == 1 {
                self.op(e, &[sum, view])
            } else {
                self.inplace(&[sum, view], 1)
            };
        }
        sum
    }

    fn shared_expert(&mut self, il: usize, x: TensorId) -> TensorId {
        let t = self.r.n_tokens;
        let ff = if self.shape.experts.shared_ff > 0 {
            self.shape.experts.shared_ff
        } else {
            self.shape.layers[il].n_ff.max(1)
        };
        let gate = if self.has(il, "ffn_gate_inp_shexp.weight") {
            let g = self.op(t * F32, &[x]);
            Some(self.inplace(&[g], 1))
        } else {
            None
        };
        let out = self.dense_ffn(il, x, ff, "_shexp");
        match gate {
            Some(g) => self.inplace(&[out, g], 1),
            None => out,
        }
    }

    /// BERT input: token + type + position embeddings, then a layer norm.
    fn encoder_embeddings(&mut self, tokens_embd: TensorId) -> TensorId {
        let mut cur = self.inplace(&[tokens_embd], 1);
        if self.names.contains_key("position_embd.weight") {
            let pos = self.pos();
            let e = self.e();
            let p = self.op(e, &[pos]);
            cur = self.inplace(&[cur, p], 2);
        }
        if self.names.contains_key("token_embd_norm.weight") {
            cur = self.norm(cur, true);
        }
        cur
    }

    /// A BERT-style post-norm encoder layer (attention without cache).
    fn encoder_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let shape = self.shape;
        let layer = shape.layers[il];
        let t = self.r.n_tokens;
        let heads = (layer.n_head.max(1), layer.n_head_kv.max(1));
        let q = self.linear(inp, heads.0 * shape.head_k, t, self.has(il, "attn_q.bias"));
        let k = self.linear(inp, heads.1 * shape.head_k, t, self.has(il, "attn_k.bias"));
        let v = self.linear(inp, heads.1 * shape.head_v, t, self.has(il, "attn_v.bias"));
        let q = self.g.view(q, true);
        let k = self.g.view(k, true);
        let v = self.g.view(v, true);
        let k = self.g.view(k, false);
        let mask = self.mask_for(0);
        let attn = self.attention(q, KvSource::Uncached(k, v), mask, t, heads);
        let cur = self.linear(attn, shape.n_embd, t, self.has(il, "attn_output.bias"));
        let (cur, residual) = self.select_outputs(cur, inp, last);
        let cur = self.inplace(&[cur, residual], 2);
        let ffn_inp = self.norm(cur, true);
        let out = self.dense_ffn(il, ffn_inp, layer.n_ff.max(1), "");
        let cur = self.inplace(&[out, ffn_inp], 2);
        self.norm(cur, true)
    }

    /// Output norm and LM head (decoders), or pooling (encoders).
    fn output(&mut self, inp: TensorId) {
        let t = self.r.n_tokens;
        if !self.shape.causal {
            self.g.mark_output(inp);
            if self.r.pooled {
                let transposed = self.g.view(inp, false);
                let cont = self.op(self.e(), &[transposed]);
                let pooled = self.op(self.shape.n_embd * self.r.n_stream.max(1) * F32, &[cont]);
                self.g.mark_output(pooled);
            }
            return;
        }
        let embd = self.norm(inp, self.names.contains_key("output_norm.bias"));
        self.g.mark_output(embd);
        let logits = self.op(self.shape.n_vocab * t * F32, &[embd]);
        self.g.mark_output(logits);
    }
}
