//! The BERT-style encoders: `src/models/bert.cpp` (bert, nomic-bert, jina-bert-v2): summed
//! input embeddings and post-norm layers attending without a cache, Q/K/V separate or fused,
//! rotated or not; `src/models/modern-bert.cpp`: pre-norm layers with fused QKV, RoPE, global
//! and sliding-window layers, a GeGLU FFN and a final norm.

use super::{Builder, F32, HOST, KvSource, Pooling, Split};
use crate::memory::alloc::TensorId;

/// Encoders that rotate Q and K (RoPE) instead of adding position embeddings
/// (`src/models/bert.cpp` at 0c1e57098).
const ROPE_ENCODERS: [&str; 3] = ["nomic-bert", "nomic-bert-moe", "jina-bert-v3"];

/// Encoders whose layers norm their input before the attention and the FFN
/// (`src/models/modern-bert.cpp` at 0c1e57098).
const PRE_NORM_ENCODERS: [&str; 1] = ["modern-bert"];

impl Builder<'_> {
    /// BERT input: token + type + position embeddings, then a layer norm, on the first
    /// layer's buffer. The token and position tables are the input layer's (the host's, which
    /// looks their rows up); the norm's weights are the first layer's
    /// (`LLM_TENSOR_TOKEN_EMBD_NORM` is a repeating-layer tensor in `src/llama-arch.cpp` at
    /// 0c1e57098), so when that layer runs on a device the adds and the norm run there too:
    /// its split copies the token rows, the type row (a view of the host's table) and the
    /// position rows first (bge-small's 1:1 full offload: `embd`, `token_types.weight
    /// (view)`, the position rows, then the mask).
    pub(super) fn encoder_embeddings(&mut self, tokens_embd: TensorId, first: Split) -> TensorId {
        let type_row = self
            .shape
            .weights
            .iter()
            .find(|w| w.name == "token_types.weight")
            .map(|w| w.bytes / w.rows.max(1))
            .map(|bytes| self.g.external(bytes, HOST));
        let learned_positions = self.names.contains_key("position_embd.weight");
        let mut cur = tokens_embd;
        // On the host the position rows join the graph with their add, after the type row's;
        // a device's split copies them before either add.
        let mut positions = None;
        if first.buffer != HOST {
            positions = learned_positions.then(|| self.position_rows());
            let copied: Vec<TensorId> = [Some(cur), type_row, positions]
                .into_iter()
                .flatten()
                .collect();
            self.enter(first, &copied, &[]);
        }
        if let Some(row) = type_row {
            cur = self.inplace(&[cur, row], 1);
        }
        if learned_positions {
            let p = positions.unwrap_or_else(|| self.position_rows());
            cur = self.inplace(&[cur, p], 2);
        }
        if self.names.contains_key("token_embd_norm.weight") {
            cur = self.norm(cur, true);
        }
        cur
    }

    /// `get_rows` of the learned position table (BERT): on the host, which holds it.
    fn position_rows(&mut self) -> TensorId {
        let pos = self.pos();
        let e = self.e();
        self.g.op(e, &[pos], HOST)
    }

    /// The pooling's graph input, created after the output ids (`build_inp_mean`,
    /// `build_inp_cls` at 0c1e57098: one f32 weight per token and sequence, one i32 row index
    /// per sequence).
    pub(super) fn pooling_input(&mut self) {
        let (t, seqs) = (self.r.n_tokens, self.r.n_seqs.max(1));
        self.inputs.pooling = match self.r.pooling {
            Pooling::None => None,
            _ if self.mean_pooled() => Some(self.input(t * seqs * F32)),
            Pooling::Mean | Pooling::Rows | Pooling::Rank => Some(self.input(seqs * 4)),
        };
    }

    /// Whether the pooling averages the tokens: mean pooling, or a reranker whose classifier
    /// reads mean-pooled rows (`pooling_type_cls`, ModernBERT's default:
    /// [`crate::memory::shape::ModelShape::classifier_mean_pooling`]).
    fn mean_pooled(&self) -> bool {
        match self.r.pooling {
            Pooling::Mean => true,
            Pooling::Rank => self.shape.classifier_mean_pooling,
            Pooling::None | Pooling::Rows => false,
        }
    }

    /// A BERT-style encoder's outputs: the last layer's embeddings, then their pooling, in
    /// the last layer's split; a reranker's classifier head, whose weights are the output
    /// layer's (`cls` is an output-layer tensor), on the output layer's buffer.
    pub(super) fn encoder_output(&mut self, embd: TensorId, output: Split) {
        self.g.mark_output(embd);
        let Some(mut pooled) = self.pool(embd) else {
            return;
        };
        let head = ["cls.weight", "cls.output.weight"]
            .iter()
            .any(|name| self.names.contains_key(name));
        if self.r.pooling == Pooling::Rank && head {
            self.enter(output, &[pooled], &[]);
            pooled = self.classifier_head(pooled);
        }
        self.g.mark_output(pooled);
    }

    /// The reranker's head (`build_pooling`'s `RANK` case): `cls` with its bias and a tanh
    /// (GELU for modern-bert, the same size) and the head norm when there is one, then
    /// `cls.output` with its bias, one row per sequence.
    fn classifier_head(&mut self, pooled: TensorId) -> TensorId {
        let seqs = self.r.n_seqs.max(1);
        let mut cur = pooled;
        if let Some(&(_, rows)) = self.names.get("cls.weight") {
            cur = self.linear(cur, rows, seqs, self.names.contains_key("cls.bias"));
            cur = self.inplace(&[cur], 1);
            if self.names.contains_key("cls.norm.weight") {
                let bytes = self.g.bytes(cur);
                let n = self.op(bytes, &[cur]);
                cur = self.inplace(&[n], 1);
            }
        }
        if let Some(&(_, rows)) = self.names.get("cls.output.weight") {
            cur = self.linear(cur, rows, seqs, self.names.contains_key("cls.output.bias"));
        }
        cur
    }

    /// `build_pooling`'s mean or row selection (`[n_embd, n_seqs]`), when the embeddings
    /// are pooled.
    pub(super) fn pool(&mut self, embd: TensorId) -> Option<TensorId> {
        // No input without pooling ([`Self::pooling_input`]).
        let input = self.inputs.pooling?;
        let pooled_bytes = self.shape.n_embd * self.r.n_seqs.max(1) * F32;
        let rows = if self.mean_pooled() {
            let transposed = self.g.view(embd);
            self.op(self.e(), &[transposed])
        } else {
            embd
        };
        Some(self.op(pooled_bytes, &[rows, input]))
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
        let (q_rows, k_rows) = (heads.0 * layer.head_k, heads.1 * layer.head_k);
        let v_rows = heads.1 * layer.head_v;
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
        let device = self.buffer;
        let attn = self.attention(q, KvSource::Uncached(k, v), mask, t, &layer);
        self.resume_after_heads(device, attn, last);
        let cur = self.linear(attn, shape.n_embd, t, self.has(il, "attn_output.bias"));
        let (cur, residual) = self.select_outputs(cur, inp, last);
        let cur = self.inplace(&[cur, residual], 2);
        let mut ffn_inp = self.norm(cur, true);
        if self.has(il, "attn_norm_2.weight") {
            // jina-bert-v2 adds the layer input once more and norms again (`attn_norm_2`):
            // the input stays live until then.
            let cur = self.inplace(&[ffn_inp, residual], 2);
            ffn_inp = self.norm(cur, true);
        }
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
        let (q_rows, k_rows) = (heads.0 * layer.head_k, heads.1 * layer.head_k);
        let rows = self.out_rows(
            il,
            "attn_qkv.weight",
            q_rows + k_rows + heads.1 * layer.head_v,
        );
        let qkv = self.linear(cur, rows, t, self.has(il, "attn_qkv.bias"));
        let (q, k, v) = (self.g.view(qkv), self.g.view(qkv), self.g.view(qkv));
        let pos = self.pos();
        let q = self.op(q_rows * t * F32, &[q, pos]);
        let k = self.op(k_rows * t * F32, &[k, pos]);
        let k = self.g.view(k);
        let mask = self.mask_for(usize::from(layer.swa));
        let device = self.buffer;
        let attn = self.attention(q, KvSource::Uncached(k, v), mask, t, &layer);
        self.resume_after_heads(device, attn, last);
        let cur = self.linear(attn, shape.n_embd, t, self.has(il, "attn_output.bias"));
        let (cur, residual) = self.select_outputs(cur, inp, last);
        let ffn_inp = self.inplace(&[cur, residual], 2);
        let normed = self.norm_with(ffn_inp, true, self.has(il, "ffn_norm.bias"));
        let out = self.dense_ffn(il, normed, layer.n_ff.max(1), "");
        // A host layer's closing add runs on the next device, which copies both operands
        // first (split inputs `node_26`, `ffn_inp-0` of the 3:1 split at ngl 22).
        self.residual_add(out, ffn_inp)
    }
}
