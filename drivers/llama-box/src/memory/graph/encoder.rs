//! The BERT-style encoder (bert, nomic-bert, jina-bert-v2): summed input embeddings and
//! post-norm layers attending without a cache.

use super::{Builder, KvSource};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// BERT input: token + type + position embeddings, then a layer norm.
    pub(super) fn encoder_embeddings(&mut self, tokens_embd: TensorId) -> TensorId {
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
    pub(super) fn encoder_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
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
}
