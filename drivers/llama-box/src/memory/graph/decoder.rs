//! The pre-norm decoder layer of the llama family (llama, qwen2/3, mistral, gemma, phi3,
//! granite...): norm, Q/K/V (separate or fused), optional Q/K norms, RoPE, cached attention,
//! output projection, optional post-norms, then the FFN block; and the layers running the
//! attention and the FFN side by side ([`ParallelBlock`]: Command-R, GPT-NeoX, Phi-2, Falcon).

use super::{Builder, F32};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    pub(super) fn decoder_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let shape = self.shape;
        let layer = shape.layers[il];
        if self.is_delta_net(il) {
            return self.delta_net_layer(il, inp);
        }
        if layer.recurrent {
            return match layer.n_head_kv {
                0 => self.recurrent_layer(il, inp, last),
                _ => self.parallel_hybrid_layer(il, inp, last),
            };
        }
        if let Some(kind) = self.parallel_block() {
            return self.parallel_block_layer(il, inp, last, kind);
        }
        if layer.n_head_kv == 0 {
            // An FFN-only layer (Nemotron-H): norm, FFN, residual.
            let cur = self.norm(inp, false);
            let out = self.ffn(il, cur);
            return self.residual(out, inp, last);
        }
        let cur = if self.post_norm_only(il) {
            inp
        } else {
            self.biased_norm(inp, self.has(il, "attn_norm.bias"))
        };
        if let Some(mla) = shape.mla.filter(|_| self.has(il, "attn_kv_a_mqa.weight")) {
            let attn = self.mla_attention(il, cur, mla);
            let cur = self.linear(attn, shape.n_embd, self.r.n_tokens, false);
            return self.ffn_block(il, cur, inp, last);
        }
        let cur = if shape.mla.is_none() && self.has(il, "attn_kv_b.weight") {
            self.low_rank_attention(il, cur)
        } else {
            self.self_attention(il, cur)
        };
        if !self.has_ffn(il) {
            // An attention-only layer (Nemotron-H).
            return self.residual(cur, inp, last);
        }
        self.ffn_block(il, cur, inp, last)
    }

    /// A layer that runs the attention and the FFN side by side on one input, in llama.cpp's
    /// graph order ([`ParallelBlock`]). The attention joins the graph up to `kqv_out` (its K/V
    /// stores); where the output projection comes depends on the layer's first add.
    fn parallel_block_layer(
        &mut self,
        il: usize,
        inp: TensorId,
        last: bool,
        kind: ParallelBlock,
    ) -> TensorId {
        let normed = self.norm(inp, true);
        match kind {
            ParallelBlock::FfnOntoAttention => {
                return self.ffn_onto_attention(il, inp, normed, last);
            }
            ParallelBlock::ResidualLast => return self.residual_last(il, inp, normed, last),
            _ => {}
        }
        let (attn, ffn_sum) = self.self_attention_beside(il, normed, |b| {
            // The FFN joins the graph before the residual it is added to: a shared norm's
            // output rows, then the FFN, then the residual's rows; an FFN norm of its own
            // reads the residual's rows first.
            let (ffn_inp, residual) = match kind {
                ParallelBlock::OwnFfnNorm => {
                    let residual = b.output_rows(inp, last);
                    (b.norm(residual, b.has(il, "ffn_norm.bias")), Some(residual))
                }
                _ => (b.output_rows(normed, last), None),
            };
            let out = b.ffn(il, ffn_inp);
            let residual = residual.unwrap_or_else(|| b.output_rows(inp, last));
            b.inplace(&[out, residual], 2)
        });
        self.close_parallel(attn, last, &[ffn_sum, attn]);
        let attn = self.output_rows(attn, last);
        self.inplace(&[ffn_sum, attn], 2)
    }

    /// A Falcon layer ([`ParallelBlock::ResidualLast`]): the FFN (on its norm's output rows
    /// on the last layer) between the attention and its output projection, the projected
    /// attention's rows, their sum, then the residual's rows and the residual add.
    fn residual_last(
        &mut self,
        il: usize,
        inp: TensorId,
        normed: TensorId,
        last: bool,
    ) -> TensorId {
        let (attn, ffn) = self.self_attention_beside(il, normed, |b| {
            // Falcon-40B attends over `attn_norm_2`; the FFN's norm (`attn_norm`) of the
            // same input joins the graph only with the FFN.
            let ffn_inp = if b.has(il, "attn_norm_2.weight") {
                b.norm(inp, true)
            } else {
                normed
            };
            let ffn_inp = b.output_rows(ffn_inp, last);
            b.ffn(il, ffn_inp)
        });
        self.close_parallel(attn, last, &[ffn, attn, inp]);
        let attn = self.output_rows(attn, last);
        let sum = self.inplace(&[ffn, attn], 2);
        let residual = self.output_rows(inp, last);
        self.inplace(&[sum, residual], 2)
    }

    /// The split of a parallel block's ops after its output projection, the layer's last
    /// matmul: on the host before a device ([`Builder::closing`]), "expand gpu up" runs them
    /// on the device, which copies what they read in the order they read it: `reads` (the
    /// adds' operands, `attn` the projected attention among them), except on the last layer,
    /// whose first op there selects `attn`'s output rows, so `attn` and the output ids come
    /// first (Falcon-40B and Command-R with the output alone offloaded at 0c1e57098: the
    /// projection, `out_ids`, then the FFN's output or sum).
    fn close_parallel(&mut self, attn: TensorId, last: bool, reads: &[TensorId]) {
        let Some((split, _)) = self.closing.take() else {
            return;
        };
        let mut first = Vec::new();
        if last {
            first.extend([attn, self.out_ids()]);
        }
        first.extend(reads.iter().filter(|&&t| !last || t != attn));
        self.enter(split, &first, &[]);
    }

    /// A Phi-2 layer (`src/models/phi2.cpp` at 0c1e57098): the first add reads the projected
    /// attention output first, so the projection (and on the last layer its output rows)
    /// comes before the FFN on the shared norm, which stays alive through the attention; the
    /// residual (its rows on the last layer) is added last.
    fn ffn_onto_attention(
        &mut self,
        il: usize,
        inp: TensorId,
        normed: TensorId,
        last: bool,
    ) -> TensorId {
        let attn = self.self_attention(il, normed);
        let (attn, ffn_inp) = self.select_outputs(attn, normed, last);
        let out = self.ffn(il, ffn_inp);
        let sum = self.inplace(&[attn, out], 2);
        let residual = self.output_rows(inp, last);
        self.residual_add(sum, residual)
    }

    /// How the architecture's layers run the attention and the FFN side by side, if they do.
    pub(super) fn parallel_block(&self) -> Option<ParallelBlock> {
        match self.shape.arch.as_str() {
            "command-r" | "cohere2" => Some(ParallelBlock::SharedNorm),
            "gptneox" if self.shape.parallel_residual => Some(ParallelBlock::OwnFfnNorm),
            "phi2" => Some(ParallelBlock::FfnOntoAttention),
            "falcon" => Some(ParallelBlock::ResidualLast),
            _ => None,
        }
    }

    /// Whether layer `il` has an FFN of its own (Nemotron-H's attention and Mamba layers have
    /// none).
    pub(super) fn has_ffn(&self, il: usize) -> bool {
        self.has(il, "ffn_down.weight") || self.has(il, "ffn_down_exps.weight")
    }

    /// The residual of a single-block layer: the output rows on the last layer, then the add.
    pub(super) fn residual(&mut self, out: TensorId, inp: TensorId, last: bool) -> TensorId {
        let (out, residual) = self.select_outputs(out, inp, last);
        self.residual_add(out, residual)
    }

    /// The attention half of a layer on its normed input: Q/K/V (separate or fused),
    /// optional Q/K norms, RoPE, the rotation of a quantized cache, cached attention and the
    /// output projection (its post-norm comes after the output-row selection: `ffn_block`).
    pub(super) fn self_attention(&mut self, il: usize, cur: TensorId) -> TensorId {
        self.self_attention_beside(il, cur, |_| ()).0
    }

    /// [`Self::self_attention`] with `beside` built after the attention and before its output
    /// projection: llama.cpp's graph holds a branch the layer expands
    /// (`ggml_build_forward_expand`) there, since the attention up to `kqv_out` joins the
    /// graph as `build_attn` expands the K/V stores, the projection only with the layer's
    /// output.
    pub(super) fn self_attention_beside<T>(
        &mut self,
        il: usize,
        cur: TensorId,
        beside: impl FnOnce(&mut Self) -> T,
    ) -> (TensorId, T) {
        let attn = self.attention_core(il, cur);
        let beside = beside(self);
        let out = self.attention_output(il, attn);
        (out, beside)
    }

    /// The output projection of an attention's output (`kqv_out`), after the rotation back of
    /// a quantized cache's V (`build_attn` makes it after the attention, which
    /// `build_attn_mha` expands, so it joins the graph with the projection that reads it:
    /// after whatever the layer expands in between, Falcon-H1's Mamba-2 mixer or a parallel
    /// block's FFN). A [`GATED_QUERY`]'s output is rotated back before its gate.
    pub(super) fn attention_output(&mut self, il: usize, attn: TensorId) -> TensorId {
        let attn = if GATED_QUERY.contains(&self.shape.arch.as_str()) {
            attn
        } else {
            self.rotate_back(il, attn)
        };
        let bias = self.has(il, "attn_output.bias");
        self.linear(attn, self.shape.n_embd, self.r.n_tokens, bias)
    }

    /// The attention of a layer on its normed input up to `kqv_out` (times the gate of a
    /// [`GATED_QUERY`]), before its output projection and the rotation back that comes with
    /// it ([`Self::attention_output`]).
    pub(super) fn attention_core(&mut self, il: usize, cur: TensorId) -> TensorId {
        let shape = self.shape;
        let layer = shape.layers[il];
        let t = self.r.n_tokens;
        let (hk, hv) = (layer.head_k, layer.head_v);
        let q_rows = layer.n_head.max(1) * hk;
        let kv_heads = layer.n_head_kv.max(1);
        let (k_rows, v_rows) = (kv_heads * hk, kv_heads * hv);
        let pos = (self.rotates() && !layer.no_rope).then(|| self.pos());
        let gated = GATED_QUERY.contains(&shape.arch.as_str());
        // `build_attn` (`src/llama-graph.cpp` at 0c1e57098) expands each of Q, K and V with
        // its rotation (a quantized cache's Hadamard matmul; a view is made contiguous first)
        // right after it: with sliding-window caches (`llm_graph_input_attn_kv_iswa`) Q, then
        // K, then V; otherwise Q, then V, then K (K last for RoPE fusion into the cache).
        let rot = self.attn_inputs(layer.swa).rot;
        let k_before_v = shape.layers.iter().any(|l| l.swa);
        let mut q_gate = None;
        let (q, k, v) = if self.has(il, "attn_qkv.weight") {
            // One matmul; Q, K and V are views into its result.
            let rows = self.out_rows(il, "attn_qkv.weight", q_rows + k_rows + v_rows);
            let qkv = self.linear(cur, rows, t, self.has(il, "attn_qkv.bias"));
            // `build_qkv`'s views ([head, heads, tokens], each token's row of `rows` apart)
            // span what `ggml_nbytes` counts, up to their last element: what the scheduler
            // copies when another backend reads one (V, unroped, into a cache on the host).
            let span = |width: u64| (t.saturating_sub(1) * rows + width) * F32;
            let q = self.g.view_sized(qkv, span(q_rows));
            let q = self.qk_rope(il, q, q_rows * t * F32, "attn_q_norm.weight", pos);
            let q = self.rotate(q, rot.k, None);
            let build_k = |b: &mut Self| {
                let k = b.g.view_sized(qkv, span(k_rows));
                let k = b.qk_rope(il, k, k_rows * t * F32, "attn_k_norm.weight", pos);
                b.rotate(k, rot.k, None)
            };
            let build_v = |b: &mut Self| {
                let v = b.g.view_sized(qkv, span(v_rows));
                b.rotate(v, rot.v, Some(v_rows * t * F32))
            };
            let (k, v) = self.k_and_v(k_before_v, build_k, build_v);
            (q, k, v)
        } else {
            let q_out = self.out_rows(il, "attn_q.weight", q_rows);
            let q = self.linear(cur, q_out, t, self.has(il, "attn_q.bias"));
            let mut q = if gated {
                q_gate = Some(q);
                self.gated_query(il, q, q_rows * t * F32, pos)
            } else {
                self.qk_rope(il, q, q_out * t * F32, "attn_q_norm.weight", pos)
            };
            // Temperature tuning: Q times the per-token scale, in place (over a view: on its
            // own), in every layer, or only in those without RoPE when the model has some.
            let scaled = layer.no_rope || !shape.layers.iter().any(|l| l.no_rope);
            if let Some(scale) = self.inputs.attn_scale.filter(|_| scaled) {
                q = self.inplace(&[q, scale], 1);
            }
            let q = self.rotate(q, rot.k, None);
            let v_rows = self.out_rows(il, "attn_v.weight", v_rows);
            let k_rows = self.out_rows(il, "attn_k.weight", k_rows);
            let build_k = |b: &mut Self| {
                let k = b.linear(cur, k_rows, t, b.has(il, "attn_k.bias"));
                let k = b.qk_rope(il, k, k_rows * t * F32, "attn_k_norm.weight", pos);
                b.rotate(k, rot.k, None)
            };
            let build_v = |b: &mut Self| {
                let v = b.linear(cur, v_rows, t, b.has(il, "attn_v.bias"));
                b.rotate(v, rot.v, None)
            };
            let (k, v) = self.k_and_v(k_before_v, build_k, build_v);
            (q, k, v)
        };
        let v = self.g.view(v);
        let attn = self.cached_attention(il, q, k, v);
        if !gated {
            return attn;
        }
        let attn = self.rotate_back(il, attn);
        self.attention_gate(q_gate, q_rows, attn)
    }

    /// K and V, each with its rotation, in the order `build_attn` expands them.
    fn k_and_v(
        &mut self,
        k_before_v: bool,
        build_k: impl FnOnce(&mut Self) -> TensorId,
        build_v: impl FnOnce(&mut Self) -> TensorId,
    ) -> (TensorId, TensorId) {
        if k_before_v {
            let k = build_k(self);
            (k, build_v(self))
        } else {
            let v = build_v(self);
            (build_k(self), v)
        }
    }

    /// The gate of a [`GATED_QUERY`] over the attention's output `attn` (none: `attn`).
    fn attention_gate(
        &mut self,
        q_gate: Option<TensorId>,
        q_rows: u64,
        attn: TensorId,
    ) -> TensorId {
        let t = self.r.n_tokens;
        let Some(q_full) = q_gate else {
            return attn;
        };
        // The gate half of the query projection, made contiguous and passed through a sigmoid
        // after the attention, multiplies its output.
        let gate = self.g.view(q_full);
        let gate = self.op(q_rows * t * F32, &[gate]);
        let gate = self.inplace(&[gate], 1);
        self.elementwise(&[attn, gate], &[0, 1])
    }

    /// `build_attn` from Q, K and V built beforehand (Gemma 3n's layers): the rotations of a
    /// quantized cache, cached attention, and the rotation of its output back. Q, K, V is
    /// `build_attn`'s order with sliding-window caches, which Gemma 3n has; without them it
    /// expands V before K, each rotation with what it rotates ([`Self::attention_core`],
    /// `low_rank_attention`).
    pub(super) fn attend(&mut self, il: usize, q: TensorId, k: TensorId, v: TensorId) -> TensorId {
        let rot = self.attn_inputs(self.shape.layers[il].swa).rot;
        let q = self.rotate(q, rot.k, None);
        let k = self.rotate(k, rot.k, None);
        let v = self.rotate(v, rot.v, None);
        let v = self.g.view(v);
        let attn = self.cached_attention(il, q, k, v);
        self.rotate_back(il, attn)
    }

    /// The rotation back of an attention's output by a quantized cache's V rotation.
    pub(super) fn rotate_back(&mut self, il: usize, attn: TensorId) -> TensorId {
        let rot = self.attn_inputs(self.shape.layers[il].swa).rot;
        self.rotate(attn, rot.v, None)
    }

    /// `llama_mul_mat_hadamard`: a matmul by the rotation matrix into a new tensor of the same
    /// size; a strided view (`strided`: the bytes of its elements, contiguous) is made
    /// contiguous first (`ggml_cont`).
    pub(super) fn rotate(
        &mut self,
        x: TensorId,
        rot: Option<TensorId>,
        strided: Option<u64>,
    ) -> TensorId {
        let Some(rot) = rot else {
            return x;
        };
        let (x, bytes) = match strided {
            Some(bytes) => (self.op(bytes, &[x]), bytes),
            None => (x, self.g.bytes(x)),
        };
        self.op(bytes, &[x, rot])
    }

    /// The query half of a projection holding each head's query and gate side by side
    /// ([`GATED_QUERY`]): a strided view, whose norm is new memory (ggml-alloc never runs an
    /// op in place over a view), its weight applied in place, then RoPE.
    fn gated_query(
        &mut self,
        il: usize,
        q_full: TensorId,
        bytes: u64,
        pos: Option<TensorId>,
    ) -> TensorId {
        let view = self.g.view(q_full);
        if !self.has(il, "attn_q_norm.weight") {
            return match pos {
                Some(pos) => self.op(bytes, &[view, pos]),
                None => view,
            };
        }
        let normed = self.op(bytes, &[view]);
        let q = self.inplace(&[normed], 1);
        // RoPE runs in place over the normed query, a tensor of its own.
        match pos {
            Some(pos) => self.inplace(&[q, pos], 1),
            None => q,
        }
    }

    /// Optional per-head norm, then RoPE (when the model has positions), on a reshaped view.
    /// Both may run in place, but not over the view (ggml-alloc never lends a view's memory):
    /// the norm gets its own tensor and RoPE runs over it; without a norm RoPE gets its own.
    pub(super) fn qk_rope(
        &mut self,
        il: usize,
        x: TensorId,
        bytes: u64,
        norm: &str,
        pos: Option<TensorId>,
    ) -> TensorId {
        let mut x = self.g.view(x);
        if self.has(il, norm) {
            x = self.norm(x, false);
        }
        match pos {
            Some(pos) => self.inplace_sized(bytes, &[x, pos], 1),
            None => x,
        }
    }

    /// The second half of a decoder layer: the output rows of the last layer, the attention
    /// output's post-norm (Gemma-2/3, OLMo-2, EXAONE-4: after the row selection), the
    /// attention residual, the FFN norm, the FFN, its post-norm and residual.
    pub(super) fn ffn_block(
        &mut self,
        il: usize,
        cur: TensorId,
        inp: TensorId,
        last: bool,
    ) -> TensorId {
        let (mut cur, residual) =
            self.select_outputs(cur, inp, last && !self.outputs_after_layers());
        let post_norm_feeds_ffn = POST_ATTENTION_NORM_FEEDS_FFN.contains(&self.shape.arch.as_str());
        if self.has(il, "post_attention_norm.weight") && !post_norm_feeds_ffn {
            cur = self.norm(cur, false);
        }
        let ffn_inp = if self.residual_first() {
            self.inplace(&[residual, cur], 2)
        } else {
            self.inplace(&[cur, residual], 2)
        };
        self.ffn_from(il, ffn_inp)
    }

    /// The FFN half of a layer from its input `ffn_inp` (the attention residual): the FFN
    /// norm, the FFN, its post-norm and residual.
    pub(super) fn ffn_from(&mut self, il: usize, ffn_inp: TensorId) -> TensorId {
        self.expect_residual(ffn_inp);
        let normed = if self.post_norm_only(il) {
            ffn_inp
        } else {
            self.biased_norm(ffn_inp, self.has(il, "ffn_norm.bias"))
        };
        let mut out = self.ffn(il, normed);
        if self.has(il, "post_ffw_norm.weight") {
            out = self.norm(out, false);
        }
        if FFN_ADDED_ONTO_RESIDUAL.contains(&self.shape.arch.as_str()) || self.residual_first() {
            // The residual is the add's first source: its memory, not the FFN output's, is
            // reused in place, which moves where the final norm and the logits land.
            return self.residual_add(ffn_inp, out);
        }
        self.residual_add(out, ffn_inp)
    }

    /// Whether the attention rotates Q and K by position (RoPE): not with learned positions
    /// (GPT-2, StarCoder: `position_embd` added to the token embeddings, `starcoder.cpp` at
    /// 0c1e57098), whose attention reads the positions only through that table.
    pub(super) fn rotates(&self) -> bool {
        self.shape.positional && !self.names.contains_key("position_embd.weight")
    }

    /// Whether both residual adds of a layer read the residual first ([`RESIDUAL_FIRST`]).
    pub(super) fn residual_first(&self) -> bool {
        RESIDUAL_FIRST.contains(&self.shape.arch.as_str())
    }

    /// Whether layer `il` starts with a norm without weights of its own (`ggml_rms_norm` or
    /// `ggml_norm`, its weight applied by the next op), which the scheduler may run on the
    /// previous device.
    pub(super) fn opens_with_norm(&self, il: usize) -> bool {
        (self.shape.causal && !self.post_norm_only(il))
            || (self.pre_norm_encoder() && self.has(il, "attn_norm.weight"))
    }

    /// OLMo-2 and EXAONE-4 layers norm only the attention and FFN outputs: no norm before the
    /// attention or the FFN (`src/models/olmo2.cpp`, `exaone4.cpp`). OLMo (1) has neither
    /// weight but still norms before both (a norm without parameters).
    fn post_norm_only(&self, il: usize) -> bool {
        self.has(il, "post_attention_norm.weight") && !self.has(il, "attn_norm.weight")
    }

    /// Whether the output rows are selected after the last layer, from its output only,
    /// rather than inside it from the attention output and its residual.
    pub(super) fn outputs_after_layers(&self) -> bool {
        OUTPUTS_AFTER_LAYERS.contains(&self.shape.arch.as_str())
    }

    /// Whether the output rows are selected after the output norm ([`ROWS_AFTER_OUTPUT_NORM`]):
    /// the last layer and the split running it read no output ids.
    pub(super) fn rows_after_output_norm(&self) -> bool {
        ROWS_AFTER_OUTPUT_NORM.contains(&self.shape.arch.as_str())
    }
}

/// How a layer runs the attention and the FFN side by side (`parallel_block_layer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ParallelBlock {
    /// Command-R / Cohere2 (`src/models/command-r.cpp`, `cohere2.cpp` at 0c1e57098): one
    /// layer norm (`ggml_norm`, a tensor of its own) feeds the attention and the FFN; the
    /// output is (FFN + residual) + attention output, whose first source, the FFN sum, puts
    /// the FFN and its residual add before the attention's output projection. The last layer
    /// selects the output rows of the norm (for the FFN), then, after the FFN, of the residual,
    /// then of the projected attention output.
    SharedNorm,
    /// GPT-NeoX with `use_parallel_residual` (`src/models/gptneox.cpp` at 0c1e57098): as
    /// [`Self::SharedNorm`], but the FFN reads a norm of its own (`ffn_norm`) of the layer
    /// input (its output rows on the last layer).
    OwnFfnNorm,
    /// Phi-2 (`src/models/phi2.cpp` at 0c1e57098): (attention output + FFN) + residual, the
    /// FFN on the attention's norm.
    FfnOntoAttention,
    /// Falcon (`src/models/falcon.cpp` at 0c1e57098): (FFN + attention output) + residual.
    /// The first add's first source, the FFN on the attention's norm (Falcon-40B: on a norm
    /// of its own, `attn_norm`, while the attention reads `attn_norm_2`), joins the graph
    /// before the attention's output projection; the residual is added last.
    ResidualLast,
}

/// Architectures whose `post_attention_norm` weight norms the FFN input (after the attention
/// residual) in place of an `ffn_norm`: gpt-oss and Qwen3-Next (`src/models/openai-moe.cpp`,
/// `qwen3next.cpp` at 0c1e57098).
const POST_ATTENTION_NORM_FEEDS_FFN: [&str; 2] = ["gpt-oss", "qwen3next"];

/// Architectures whose FFN residual add reads the residual first (`ggml_add(ctx0, residual,
/// cur)` in `src/models/phi3.cpp` at 0c1e57098, which builds Phi-3 and PhiMoE; the others add
/// the FFN output first).
const FFN_ADDED_ONTO_RESIDUAL: [&str; 2] = ["phi3", "phimoe"];

/// Architectures whose two residual adds both read the residual first (`ggml_add(ctx0,
/// inpL, cur)` and `ggml_add(ctx0, ffn_inp, cur)` in `src/models/jamba.cpp` at 0c1e57098):
/// ggml-alloc then runs each add in place on the residual, not on the block's output (a
/// Mamba-1 mixer's output is a reshape, whose memory the add would take otherwise).
const RESIDUAL_FIRST: [&str; 1] = ["jamba"];

/// Architectures that select the output rows after the last layer (`openai-moe.cpp`: unless
/// `embeddings_nextn_masked`, which is off by default).
const OUTPUTS_AFTER_LAYERS: [&str; 1] = ["gpt-oss"];

/// Architectures that select the output rows from the normed output, itself a graph output
/// (`t_h_nextn`): Nemotron-H and Qwen3-Next (`src/models/nemotron-h.cpp`, `qwen3next.cpp`,
/// unless `embeddings_nextn_masked`, off by default).
const ROWS_AFTER_OUTPUT_NORM: [&str; 2] = ["nemotron_h", "qwen3next"];

/// Architectures whose query projection holds each head's query and an output gate side by
/// side (`build_layer_attn` of `src/models/qwen3next.cpp` at 0c1e57098): the query is a view
/// of it, and the gate's contiguous copy and sigmoid multiply the attention output before the
/// output projection, keeping the projection alive through the attention.
const GATED_QUERY: [&str; 1] = ["qwen3next"];
