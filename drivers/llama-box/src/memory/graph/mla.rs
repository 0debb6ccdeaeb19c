//! Multi-head latent attention (DeepSeek-V2/V3, `src/models/deepseek2.cpp`).

use super::{Builder, F32, HOST};
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
        let latent_out = self.latent_attention(il, q, k, mla);
        let device = self.buffer;
        let cache_on_host = self.r.kv_on_host && device != HOST;
        // `wv_b`'s product runs where its weight is; without flash attention and with the
        // cache on the host, `build_attn_mha` pins the attention's output (the contiguous
        // copy) to the CPU: the host copies the product in, and the device copies the result
        // back for the output projection.
        let decompressed = self.op(mla.head_v * n_head * t * F32, &[latent_out]);
        let permuted = self.g.view(decompressed);
        if cache_on_host && !self.r.flash_attn {
            self.buffer = HOST;
            let out = self.op(mla.head_v * n_head * t * F32, &[permuted]);
            self.buffer = device;
            let out = self.local(out);
            self.resume_outputs(il);
            return out;
        }
        self.op(mla.head_v * n_head * t * F32, &[permuted])
    }

    /// The latent attention of layer `il` from its query `q` and new cache row `k` (the
    /// latent and its RoPE part): K stored into the cache, then flash attention or KQ,
    /// softmax and KQV over the cache, whose V is a view of K. Returns the attention's output
    /// in the latent space, per head.
    fn latent_attention(&mut self, il: usize, q: TensorId, k: TensorId, mla: Mla) -> TensorId {
        let t = self.r.n_tokens;
        let layer = self.shape.layers[il];
        let n_head = layer.n_head.max(1);
        // With the cache on the host (`--no-kv-offload`) and the layer on a device, the K
        // store runs on the host, which copies the new K rows; the attention stays on the
        // device, whose split copies the cache views it reads (graph splits dumped with
        // `GGML_SCHED_DEBUG=2` at 0c1e57098, the 1:1 full offload).
        let device = self.buffer;
        let cache_on_host = self.r.kv_on_host && device != HOST;
        let inputs = self.attn_inputs(layer.swa);
        if let Some((k_idxs, _)) = inputs.idxs {
            if cache_on_host {
                self.buffer = HOST;
            }
            let k = self.g.view(k);
            let k = self.local(k);
            let k_idxs = self.local(k_idxs);
            self.g.store(&[k, k_idxs], self.buffer);
            self.buffer = device;
        }
        let mask = self.mask_for(usize::from(layer.swa));
        let n_kv = if layer.swa {
            self.r.n_kv_swa
        } else {
            self.r.n_kv
        };
        let cells = n_kv * self.r.n_stream.max(1);
        let q = self.g.view(q);
        if self.r.flash_attn {
            // The split's inputs in the order flash attention reads them: K, V, the mask.
            let mut srcs = vec![q, mask];
            if cache_on_host {
                srcs.extend(self.latent_cache_copies(mla, cells));
                self.local(mask);
                self.resume_outputs(il);
            }
            let out = self.op(mla.kv_lora * n_head * t * F32, &srcs);
            self.g.view(out)
        } else {
            // V, a view of the K cache, made contiguous after the transpose (`v_cont` in
            // `build_attn_mha`): the first source of the product, so the graph runs it
            // before KQ and its softmax, and a device split copies the V view first.
            let (mut v_srcs, mut kq_srcs) = (Vec::new(), vec![q]);
            if cache_on_host {
                let [k, v] = self.latent_cache_copies(mla, cells);
                v_srcs.push(v);
                kq_srcs.push(k);
                self.local(mask);
            }
            let v = self.op(self.r.cache_types.0.row_bytes(mla.kv_lora) * cells, &v_srcs);
            let kq = self.op(n_kv * t * n_head * F32, &kq_srcs);
            let kq = self.inplace(&[kq, mask], 1);
            self.op(mla.kv_lora * t * n_head * F32, &[v, kq])
        }
    }

    /// Copies, in the current buffer, of one layer's latent cache views held in the host's
    /// cache: K (`get_k`: `cells` rows of the latent and its RoPE part), then V, the view of
    /// each row's latent part (its size spans the rows' stride: what a copy of it takes).
    fn latent_cache_copies(&mut self, mla: Mla, cells: u64) -> [TensorId; 2] {
        let type_k = self.r.cache_types.0;
        let row = type_k.row_bytes(mla.kv_lora + mla.rope);
        let k = self.g.op(row * cells, &[], self.buffer);
        let v_bytes = (cells.max(1) - 1) * row + type_k.row_bytes(mla.kv_lora);
        let v = self.g.op(v_bytes, &[], self.buffer);
        [k, v]
    }
}
