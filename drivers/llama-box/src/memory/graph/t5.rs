//! The T5 encoder (`llama_model_t5::graph<true>`, `src/models/t5.cpp`, which `t5encoder`
//! uses): pre-norm layers whose attention adds a relative-position bias to KQ. The bias is a
//! tensor, so `build_attn_mha` never takes the flash-attention path, whatever the setting.

use super::{Builder, F32};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// The encoder's own input (`build_inp_pos_bucket_enc`: an i32 bucket per token pair),
    /// then the mask of attention without a cache; and the view of the buckets each layer's
    /// bias reads (`build_pos_bias` reshapes them anew in every layer): a split on a device
    /// copies each of its layers' views, a tensor of its own (the one-device full offload at
    /// 0c1e57098 copies `pos_bucket_1d` four times for four layers).
    pub(super) fn t5_inputs(&mut self, layers: &[(usize, usize)]) {
        let buckets = self.pos_buckets();
        self.encoder_mask();
        self.inputs.bucket_views = layers
            .iter()
            .map(|&(il, buffer)| (il, buffer, self.g.view(buckets)))
            .collect();
    }

    /// The bucket views of the layers on `buffer` not yet copied there, in layer order: those
    /// the split entered on `buffer` reads.
    pub(super) fn bucket_views_for(&self, buffer: usize) -> Vec<TensorId> {
        self.inputs
            .bucket_views
            .iter()
            .filter(|&&(_, b, view)| b == buffer && !self.copies.contains_key(&(view, buffer)))
            .map(|&(_, _, view)| view)
            // With the merged heads on the host, a device split ends at each layer's attention.
            .take(if self.heads_merged_on_host() {
                1
            } else {
                usize::MAX
            })
            .collect()
    }

    fn pos_buckets(&mut self) -> TensorId {
        if let Some(b) = self.inputs.pos_buckets {
            return b;
        }
        let t = self.r.n_tokens;
        let b = self.input(t * t * 4);
        self.inputs.pos_buckets = Some(b);
        b
    }

    pub(super) fn t5_encoder_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let shape = self.shape;
        let layer = shape.layers[il];
        let t = self.r.n_tokens;
        let (n_head, n_head_kv) = (layer.n_head.max(1), layer.n_head_kv.max(1));
        let (hk, hv) = (shape.head_k, shape.head_v);
        let cur = self.norm(inp, false);
        let q = self.linear(cur, n_head * hk, t, false);
        let k = self.linear(cur, n_head_kv * hk, t, false);
        let v = self.linear(cur, n_head_kv * hv, t, false);
        // V made contiguous after its transpose (`v_cont`, the first operand of KQV, which
        // the graph reaches first: allocated before KQ in llama.cpp's trace at 0c1e57098);
        // KQ; the bias, which the graph orders after KQ (it is the second operand of their
        // sum), added in place; the mask and softmax in place; KQV permuted back into a new
        // tensor.
        let vt = self.g.view(v);
        let v = self.op(n_head_kv * hv * t * F32, &[vt]);
        let q = self.g.view(q);
        let k = self.g.view(k);
        let kq = self.op(t * t * n_head * F32, &[q, k]);
        let bias = self.position_bias(il, n_head);
        let kq = self.inplace(&[kq, bias], 1);
        let mask = self.mask_for(0);
        let kq = self.inplace(&[kq, mask], 1);
        let kqv = self.op(hv * t * n_head * F32, &[v, kq]);
        let device = self.buffer;
        let attn = self.merge_heads(kqv);
        self.resume_after_heads(device, attn, last);
        let cur = self.linear(attn, shape.n_embd, t, false);
        self.ffn_block(il, cur, inp, last)
    }

    /// `build_pos_bias`: the bias rows of every token pair (`get_rows` of the relative
    /// attention table), permuted to `[t, t, n_head]` and made contiguous.
    fn position_bias(&mut self, il: usize, n_head: u64) -> TensorId {
        let t = self.r.n_tokens;
        let buckets = self
            .inputs
            .bucket_views
            .iter()
            .find(|&&(layer, _, _)| layer == il)
            .map(|&(_, _, view)| view);
        let buckets = buckets.unwrap_or_else(|| self.pos_buckets());
        let rows = self.op(n_head * t * t * F32, &[buckets]);
        let permuted = self.g.view(rows);
        self.op(n_head * t * t * F32, &[permuted])
    }
}
