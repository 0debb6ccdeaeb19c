//! Attention through low-rank Q and KV projections decompressed before a regular cache
//! (`src/models/minicpm3.cpp`; DeepSeek-V2 files without the MLA head sizes take the same
//! shape): unlike multi-head latent attention, K and V are cached per head.

use super::{Builder, F32};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// Q through `attn_q_a`, its norm and `attn_q_b`, then RoPE; the compressed KV and the
    /// shared RoPE key from `attn_kv_a_mqa`; the KV decompressed by `attn_kv_b` into each
    /// head's no-RoPE key and V (made contiguous); K the no-RoPE key concatenated with the
    /// RoPE key repeated per head. The graph orders Q, then V, then K (`build_attn`), each
    /// with its rotation for a quantized cache right after it (`build_attn` rotates them
    /// before it expands them, so a rotation joins the graph with the tensor it rotates).
    pub(super) fn low_rank_attention(&mut self, il: usize, cur: TensorId) -> TensorId {
        let shape = self.shape;
        let t = self.r.n_tokens;
        let n_head = shape.layers[il].n_head.max(1);
        let (hk, hv) = (shape.head_k, shape.head_v);
        let pos = self.pos();
        let rot = self.attn_inputs(shape.layers[il].swa).rot;
        let q = if self.has(il, "attn_q_a.weight") {
            let rank = self.out_rows(il, "attn_q_a.weight", 1);
            let q = self.linear(cur, rank, t, false);
            let q = self.norm(q, false);
            self.linear(q, n_head * hk, t, false)
        } else {
            self.linear(cur, n_head * hk, t, false)
        };
        let q = self.op(n_head * hk * t * F32, &[q, pos]);
        let q = self.rotate(q, rot.k, None);
        let latent = self.out_rows(il, "attn_kv_a_mqa.weight", 1);
        let kv_lora = self
            .dims(il, "attn_kv_a_norm.weight")
            .map_or(latent, |(cols, _)| cols);
        let rope = latent.saturating_sub(kv_lora);
        let nope = hk.saturating_sub(rope);
        let kv_pe = self.linear(cur, latent, t, false);
        // The latent's RMS norm reads a view, so it gets a tensor of its own.
        let kv = self.g.view(kv_pe);
        let kv = self.op(kv_lora * t * F32, &[kv]);
        let kv = self.inplace(&[kv], 1);
        let kv = self.linear(kv, n_head * (nope + hv), t, false);
        let v = self.g.view(kv);
        let v = self.op(n_head * hv * t * F32, &[v]);
        let v = self.rotate(v, rot.v, None);
        let k_pe = self.g.view(kv_pe);
        let k_pe = self.op(rope * t * F32, &[k_pe, pos]);
        let repeated = self.op(rope * n_head * t * F32, &[k_pe]);
        let k_nope = self.g.view(kv);
        let k = self.op(n_head * hk * t * F32, &[k_nope, repeated]);
        let k = self.rotate(k, rot.k, None);
        let v = self.g.view(v);
        let attn = self.cached_attention(il, q, k, v);
        let attn = self.rotate_back(il, attn);
        self.linear(attn, shape.n_embd, t, false)
    }
}
