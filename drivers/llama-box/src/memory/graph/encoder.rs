//! The BERT-style encoders: `src/models/bert.cpp` (bert, nomic-bert, jina-bert-v2): summed
//! input embeddings and post-norm layers attending without a cache, Q/K/V separate or fused,
//! rotated or not; `src/models/modern-bert.cpp`: pre-norm layers with fused QKV, RoPE, global
//! and sliding-window layers, a GeGLU FFN and a final norm.

use super::{Builder, F32, KvSource};
use crate::memory::alloc::TensorId;

/// Encoders that rotate Q and K (RoPE) instead of adding position embeddings
/// (`src/models/bert.cpp` at 0c1e57098).
const ROPE_ENCODERS: [&str; 3] = ["nomic-bert", "nomic-bert-moe", "jina-bert-v3"];

/// Encoders whose layers norm their input before the attention and the FFN
/// (`src/models/modern-bert.cpp` at 0c1e57098).
const PRE_NORM_ENCODERS: [&str; 1] = ["modern-bert"];

impl Builder<'_> {
    /// BERT input: token + type (row 0, added in place) + position embeddings, then a layer
    /// norm.
    pub(super) fn encoder_embeddings(&mut self, tokens_embd: TensorId) -> TensorId {
        let mut cur = tokens_embd;
        if self.names.contains_key("token_types.weight") {
            cur = self.inplace(&[cur], 1);
        }
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

    /// Whether the encoder's layers are pre-norm ([`PRE_NORM_ENCODERS`]).
    pub(super) fn pre_norm_encoder(&self) -> bool {
        !self.shape.causal && PRE_NORM_ENCODERS.contains(&self.shape.arch.as_str())
    }

    /// A BERT-style post-norm encoder layer (attention without cache), or a pre-norm one.
    pub(super) fn encoder_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        if self.pre_norm_encoder() {
            return self.pre_norm_encoder_layer(il, inp, last);
        }
        let shape = self.shape;
        let layer = shape.layers[il];
        let t = self.r.n_tokens;
        let heads = (layer.n_head.max(1), layer.n_head_kv.max(1));
        let (q_rows, k_rows) = (heads.0 * shape.head_k, heads.1 * shape.head_k);
        let v_rows = heads.1 * shape.head_v;
        let (mut q, mut k, v) = if self.has(il, "attn_qkv.weight") {
            // `build_qkv`'s fused path: one matmul, Q, K and V are views into it.
            let rows = self.out_rows(il, "attn_qkv.weight", q_rows + k_rows + v_rows);
            let qkv = self.linear(inp, rows, t, self.has(il, "attn_qkv.bias"));
            let q = self.g.view(qkv);
            (q, self.g.view(qkv), self.g.view(qkv))
        } else {
            let q = self.linear(inp, q_rows, t, self.has(il, "attn_q.bias"));
            let k = self.linear(inp, k_rows, t, self.has(il, "attn_k.bias"));
            let v = self.linear(inp, v_rows, t, self.has(il, "attn_v.bias"));
            (self.g.view(q), self.g.view(k), self.g.view(v))
        };
        if ROPE_ENCODERS.contains(&shape.arch.as_str()) {
            let pos = self.pos();
            q = self.op(q_rows * t * F32, &[q, pos]);
            k = self.op(k_rows * t * F32, &[k, pos]);
        }
        let k = self.g.view(k);
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

    /// A ModernBERT layer (`src/models/modern-bert.cpp` at 0c1e57098): the attention norm
    /// (none on layer 0, whose checkpoint has an identity there), the fused QKV split by
    /// views, RoPE on Q and K, attention without a cache over the layer's mask (the
    /// sliding-window one on local layers), the output projection, the residual, the FFN
    /// norm, the FFN (GeGLU over the fused `ffn_up`), the residual. No biases; norms are
    /// `ggml_norm` with a weight.
    fn pre_norm_encoder_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let shape = self.shape;
        let layer = shape.layers[il];
        let t = self.r.n_tokens;
        let heads = (layer.n_head.max(1), layer.n_head_kv.max(1));
        let cur = if self.has(il, "attn_norm.weight") {
            self.norm_with(inp, true, self.has(il, "attn_norm.bias"))
        } else {
            inp
        };
        let (q_rows, k_rows) = (heads.0 * shape.head_k, heads.1 * shape.head_k);
        let rows = self.out_rows(
            il,
            "attn_qkv.weight",
            q_rows + k_rows + heads.1 * shape.head_v,
        );
        let qkv = self.linear(cur, rows, t, self.has(il, "attn_qkv.bias"));
        let (q, k, v) = (self.g.view(qkv), self.g.view(qkv), self.g.view(qkv));
        let pos = self.pos();
        let q = self.op(q_rows * t * F32, &[q, pos]);
        let k = self.op(k_rows * t * F32, &[k, pos]);
        let k = self.g.view(k);
        let mask = self.mask_for(usize::from(layer.swa));
        let attn = self.attention(q, KvSource::Uncached(k, v), mask, t, heads);
        let cur = self.linear(attn, shape.n_embd, t, self.has(il, "attn_output.bias"));
        let (cur, residual) = self.select_outputs(cur, inp, last);
        let ffn_inp = self.inplace(&[cur, residual], 2);
        let normed = self.norm_with(ffn_inp, true, self.has(il, "ffn_norm.bias"));
        let out = self.dense_ffn(il, normed, layer.n_ff.max(1), "");
        self.inplace(&[out, ffn_inp], 2)
    }
}
