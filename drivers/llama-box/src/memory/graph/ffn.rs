//! Feed-forward blocks (`build_ffn`, `build_moe_ffn`): dense gated, fused gate-up or
//! sequential FFNs, routed experts and the optional shared expert.

use super::{Builder, F32, HOST};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    pub(super) fn ffn(&mut self, il: usize, x: TensorId) -> TensorId {
        if self.has(il, "ffn_gate_inp.weight") {
            let closing = self.closing.is_some();
            let mut here = self.buffer;
            let routed = self.moe(il, x);
            if closing && self.closing.is_none() {
                // A host layer's weighting and sum moved to the next device with its closing
                // add ([`Builder::close_early`]): what follows runs there (Jamba's 3:1 split at
                // 0c1e57098: `l_out-0` in place on the copied residual on the device).
                here = self.buffer;
            }
            // The next hybrid Mamba layer's state reads join after the routed experts' sum
            // (Granite 4.0-H: before the shared expert; Jamba: before the residual add).
            self.read_next_states(here);
            if self.has(il, "ffn_up_shexp.weight") {
                let shared = self.shared_expert(il, x, routed);
                return self.inplace(&[routed, shared], 2);
            }
            return routed;
        }
        let ff = self.shape.layers[il].n_ff.max(1);
        self.dense_ffn(il, x, ff, "")
    }

    /// `build_ffn`: gated (PAR: gate, up, GLU) or sequential (up, activation in place).
    pub(super) fn dense_ffn(&mut self, il: usize, x: TensorId, ff: u64, suffix: &str) -> TensorId {
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
    pub(super) fn moe(&mut self, il: usize, x: TensorId) -> TensorId {
        let ex = self.shape.experts;
        let t = self.r.n_tokens;
        let k = ex.used.max(1);
        let fallback = if ex.ff > 0 {
            ex.ff
        } else {
            self.shape.layers[il].n_ff.max(1)
        };
        // Experts with merged gate and up matrices (`ffn_gate_up_exps`) take one product of
        // both halves, read through two views (`build_moe_ffn`'s merged path at 0c1e57098).
        let merged = self.has(il, "ffn_gate_up_exps.weight");
        let ff = if merged {
            self.out_rows(il, "ffn_gate_up_exps.weight", 2 * fallback) / 2
        } else {
            self.out_rows(il, "ffn_up_exps.weight", fallback)
        };
        // Llama 4 (`weight_before_ffn` of `build_moe_ffn` at 0c1e57098): the experts are
        // picked from the logits, so the sigmoid gets its own tensor, and the input,
        // repeated per used expert, is weighted before the experts, not their outputs.
        let weight_before = self.shape.arch == "llama4";
        let (selected, weights) = self.moe_router(il, x, weight_before);
        let mut input = self.g.view(x);
        if weight_before {
            let repeated = self.op(self.shape.n_embd * k * t * F32, &[input]);
            input = self.inplace(&[repeated, weights], 1);
        }
        let (gate, up) = if merged {
            let gate_up = self.op(2 * ff * k * t * F32, &[input, selected]);
            (self.g.view(gate_up), self.g.view(gate_up))
        } else {
            let gate = self.op(ff * k * t * F32, &[input, selected]);
            (gate, self.op(ff * k * t * F32, &[input, selected]))
        };
        let act = self.op(ff * k * t * F32, &[gate, up]);
        let mut experts = self.op(self.shape.n_embd * k * t * F32, &[act, selected]);
        if !self.has(il, "ffn_up_shexp.weight") {
            self.close_early(&[experts, weights]);
        }
        if let Some(buffer) = self.next_reads_elsewhere() {
            // The weighting and sum run where the next layer's state reads follow them, a
            // split that copies them in with the row indices.
            let [main, extra] = self.state_copy_input();
            self.switch(buffer, &[experts, weights, main, extra]);
        }
        if !weight_before {
            experts = self.inplace(&[experts, weights], 1);
        }
        let first = self.g.view(experts);
        let e = self.e();
        if k == 1 {
            return self.op(e, &[first]);
        }
        let mut sum = first;
        for i in 1..k {
            let view = self.g.view(experts);
            sum = if i == 1 {
                self.op(e, &[sum, view])
            } else {
                self.inplace(&[sum, view], 1)
            };
        }
        sum
    }

    /// `build_moe_ffn`'s router: the logits and probabilities over the experts, the top-k
    /// selection (from the logits with `weight_before`, Llama 4's order) and the selected
    /// experts' weights, normalized and scaled as the architecture asks ([`Experts`]).
    /// Returns the selection (a view of the order) and the weights.
    ///
    /// [`Experts`]: crate::memory::shape::Experts
    fn moe_router(&mut self, il: usize, x: TensorId, weight_before: bool) -> (TensorId, TensorId) {
        let ex = self.shape.experts;
        let t = self.r.n_tokens;
        let (n, k) = (ex.count.max(1), ex.used.max(1));
        let logits = self.op(n * t * F32, &[x]);
        let (probs, order) = if weight_before {
            let probs = self.op(n * t * F32, &[logits]);
            (probs, self.op(n * t * 4, &[logits]))
        } else {
            let probs = self.inplace(&[logits], 1);
            // A selection bias (`exp_probs_b`, DeepSeek-V3 style): the experts are picked from
            // the biased probabilities, a tensor of their own, the unbiased ones weight them.
            let selection = if self.has(il, "exp_probs_b.bias") {
                self.op(n * t * F32, &[probs])
            } else {
                probs
            };
            (probs, self.op(n * t * 4, &[selection]))
        };
        let selected = self.g.view(order);
        let probs_view = self.g.view(probs);
        let mut weights = self.op(k * t * F32, &[probs_view, selected]);
        // `build_moe_ffn` expands the weights before the experts: their sum over the selected
        // experts, clamped in place, divides a view of them into a tensor of its own; a
        // scale runs in place unless it follows that division (a view again).
        if ex.weights_norm {
            let rows = self.g.view(weights);
            let sum = self.op(t * F32, &[rows]);
            let sum = self.inplace(&[sum], 1);
            let normed = self.inplace(&[rows, sum], 1);
            weights = self.g.view(normed);
        }
        if ex.weights_scaled {
            weights = self.inplace(&[weights], 1);
        }
        (selected, weights)
    }

    /// The shared expert, whose output (gated or not) is added to `routed`. Its ops after the
    /// down projection have no weights (see [`Builder::close_early`]). A gated one
    /// (`ffn_gate_inp_shexp`: Qwen2-MoE, Qwen3-Next) multiplies the FFN's output by the
    /// sigmoid of its gate: `ggml_mul` visits the FFN first, so the gate's matmul joins the
    /// graph after it (reading the FFN input last) and its sigmoid, without weights, runs
    /// with the closing ops, whose split copies the gate first (`qwen3next.cpp`,
    /// `qwen2moe.cpp` at 0c1e57098; llama.cpp's allocation trace).
    pub(super) fn shared_expert(&mut self, il: usize, x: TensorId, routed: TensorId) -> TensorId {
        let t = self.r.n_tokens;
        let ff = if self.shape.experts.shared_ff > 0 {
            self.shape.experts.shared_ff
        } else {
            self.shape.layers[il].n_ff.max(1)
        };
        let out = self.dense_ffn(il, x, ff, "_shexp");
        if !self.has(il, "ffn_gate_inp_shexp.weight") {
            self.close_early(&[routed, out]);
            return out;
        }
        let gate = self.op(t * F32, &[x]);
        self.close_early(&[gate, out, routed]);
        let gate = self.inplace(&[gate], 1);
        self.inplace(&[out, gate], 1)
    }

    /// The device the next layer's state reads ([`Builder::next_state_reads`]) run on when
    /// the current split is the host's: the ops without weights before them follow them
    /// there ("expand gpu up"; a device's stay on it).
    fn next_reads_elsewhere(&self) -> Option<usize> {
        let (_, buffer) = self.next_state_reads?;
        let state = self.state_buffer(buffer);
        (self.buffer == HOST && state != HOST).then_some(state)
    }

    /// The next layer's state reads ([`Builder::next_state_reads`]), where its states live
    /// (the layer's buffer, or the host with `--no-kv-offload`), then back to the split of
    /// the layer's buffer `here`, which copies in the rows it will read itself when they
    /// were read elsewhere.
    fn read_next_states(&mut self, here: usize) {
        let Some((layer, buffer)) = self.next_state_reads.take() else {
            return;
        };
        let state = self.state_buffer(buffer);
        let rows = self.state_rows(state, self.shape.recurrent.r, &[]);
        self.state_rows = Some((layer, rows));
        let inputs: Vec<TensorId> = (buffer == here && state != here)
            .then_some(rows)
            .into_iter()
            .collect();
        self.switch(here, &inputs);
    }
}
