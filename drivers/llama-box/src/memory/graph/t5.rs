//! The T5 encoder (`llama_model_t5::graph<true>`, `src/models/t5.cpp`, which `t5encoder`
//! uses): pre-norm layers whose attention adds a relative-position bias to KQ. The bias is a
//! tensor, so `build_attn_mha` never takes the flash-attention path, whatever the setting.

use super::{Builder, F32};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// The encoder's own input (`build_inp_pos_bucket_enc`: an i32 bucket per token pair),
    /// then the mask of attention without a cache.
    pub(super) fn t5_inputs(&mut self) {
        self.pos_buckets();
        self.encoder_mask();
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
        // KQ; the bias, which the graph orders after KQ (it is the second operand of their
        // sum), added in place; the mask and softmax in place; V made contiguous after its
        // transpose; KQV permuted back into a new tensor.
        let q = self.g.view(q);
        let k = self.g.view(k);
        let kq = self.op(t * t * n_head * F32, &[q, k]);
        let bias = self.position_bias(n_head);
        let kq = self.inplace(&[kq, bias], 1);
        let mask = self.mask_for(0);
        let kq = self.inplace(&[kq, mask], 1);
        let vt = self.g.view(v);
        let v = self.op(n_head_kv * hv * t * F32, &[vt]);
        let kqv = self.op(hv * t * n_head * F32, &[v, kq]);
        let permuted = self.g.view(kqv);
        let attn = self.op(hv * n_head * t * F32, &[permuted]);
        let cur = self.linear(attn, shape.n_embd, t, false);
        self.ffn_block(il, cur, inp, last)
    }

    /// `build_pos_bias`: the bias rows of every token pair (`get_rows` of the relative
    /// attention table), permuted to `[t, t, n_head]` and made contiguous.
    fn position_bias(&mut self, n_head: u64) -> TensorId {
        let t = self.r.n_tokens;
        let buckets = self.pos_buckets();
        let rows = self.op(n_head * t * t * F32, &[buckets]);
        let permuted = self.g.view(rows);
        self.op(n_head * t * t * F32, &[permuted])
    }
}
