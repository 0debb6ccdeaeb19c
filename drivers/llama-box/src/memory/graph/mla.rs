//! Multi-head latent attention (DeepSeek-V2/V3, `src/models/deepseek2.cpp`).

use super::{Builder, F32};
use crate::memory::alloc::TensorId;
use crate::memory::shape::Mla;

impl Builder<'_> {
    /// Multi-head latent attention with the absorbed K decompression
    /// (`llama_model_deepseek2::graph` with `is_mla`): the query (directly, or through the
    /// compressed `q_a`/`q_b` path) splits into a no-RoPE part, multiplied by `wk_b` into the
    /// latent space, and a RoPE part; the latent and its RoPE part form the only cache row, V
    /// is a view of it, and `wv_b` decompresses the attention output per head
    /// (`build_attn_mha`'s `v_mla`).
    pub(super) fn mla_attention(&mut self, il: usize, cur: TensorId, mla: Mla) -> TensorId {
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
        // `build_attn` for a K-only cache expands Q, then V, then K (llama-graph.cpp at
        // 0c1e57098), so the graph, in ggml's depth-first order, runs the query's absorption
        // and RoPE first, then the latent projection and its norm (V), then the key's RoPE
        // part and the concatenated K: not deepseek2.cpp's statement order.
        let q_nope = self.g.view(q);
        let absorbed = self.op(n_head * mla.kv_lora * t * F32, &[q_nope]);
        let absorbed = self.g.view(absorbed);
        let q_pe = self.g.view(q);
        let q_pe = self.op(n_head * mla.rope * t * F32, &[q_pe, pos]);
        let q = self.op(n_head * latent * t * F32, &[absorbed, q_pe]);
        let rows = self.out_rows(il, "attn_kv_a_mqa.weight", latent);
        let kv_pe = self.linear(cur, rows, t, false);
        // The latent's RMS norm reads a view, so it gets a tensor of its own.
        let kv_cmpr = self.g.view(kv_pe);
        let kv_cmpr = self.op(mla.kv_lora * t * F32, &[kv_cmpr]);
        let kv_cmpr = self.inplace(&[kv_cmpr], 1);
        let k_pe = self.g.view(kv_pe);
        let k_pe = self.op(mla.rope * t * F32, &[k_pe, pos]);
        let kv_cmpr = self.g.view(kv_cmpr);
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
        let q = self.g.view(q);
        let latent_out = if self.r.flash_attn {
            let out = self.op(mla.kv_lora * n_head * t * F32, &[q, mask]);
            self.g.view(out)
        } else {
            // V, a view of the K cache, made contiguous after the transpose (`v_cont` in
            // `build_attn_mha`): the first source of the product, so the graph runs it
            // before KQ and its softmax.
            let cells = n_kv * self.r.n_stream.max(1);
            let v = self.op(self.r.cache_types.0.row_bytes(mla.kv_lora) * cells, &[]);
            let kq = self.op(n_kv * t * n_head * F32, &[q]);
            let kq = self.inplace(&[kq, mask], 1);
            self.op(mla.kv_lora * t * n_head * F32, &[v, kq])
        };
        let decompressed = self.op(mla.head_v * n_head * t * F32, &[latent_out]);
        let permuted = self.g.view(decompressed);
        self.op(mla.head_v * n_head * t * F32, &[permuted])
    }
}
