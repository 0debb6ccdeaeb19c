//! Qwen3-Next's gated delta-net layers (`build_layer_attn_linear` of `src/models/qwen3next.cpp`
//! and `build_conv_state` / `build_recurrent_attn` of `delta-net-base.cpp` at 0c1e57098), op
//! by op in the order llama.cpp's graph holds them, with the fused gated delta-net op
//! (`ggml_gated_delta_net`: `fused_gdn_ch`, which the CPU and RPC backends resolve to on).

use super::{Builder, F32, Split};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// Whether layer `il` is a Qwen3-Next gated delta-net layer with the fused QKV and gate
    /// projections (`attn_qkv`, `attn_gate`: the path `build_qkvz` takes when `wqkv` is
    /// loaded), which [`Self::delta_net_layer`] builds op by op. Files with only the legacy
    /// `ssm_in` projection keep the Mamba template.
    pub(super) fn is_delta_net(&self, il: usize) -> bool {
        self.shape.arch == "qwen3next"
            && self.shape.layers[il].recurrent
            && self.has(il, "attn_qkv.weight")
            && self.has(il, "attn_gate.weight")
            && self.has(il, "ssm_ba.weight")
    }

    /// A gated delta-net layer on its device, from its input `inp`:
    /// - the layer norm, expanded first (`ggml_build_forward_expand` in `qwen3next.cpp`), so
    ///   the layer's other ops join the graph after it;
    /// - `build_rs` of the conv states where the states live (the layer's device, or the host
    ///   with `--no-kv-offload`); the QKV projection, the conv window (states, then the
    ///   transposed projection) whose last columns are stored: with the states on the host
    ///   the host split copies that strided view in, whose span is the whole window;
    /// - `build_rs` of the delta-net states, then, as the state store pulls them in: the
    ///   convolution and its SiLU, Q and K L2-normed (`ggml_rms_norm` of a view: new memory,
    ///   then an in-place scale) and repeated to the value heads when there are fewer, the
    ///   beta/alpha projection, alpha's contiguous copy, bias, softplus and decay, beta's
    ///   contiguous copy and sigmoid, and the fused op, whose output carries the tokens'
    ///   attention output and the new states (stored, copied into a host split when the
    ///   states live there);
    /// - the tail, which joins the graph with the next layer's norm: the gated norm (RMS norm
    ///   of the output, a view: new memory; the gate projection and its SiLU), the output
    ///   projection and its reshape, which the attention residual add cannot take (ggml-alloc
    ///   never reuses a view), then the FFN block. Qwen3-Next selects the output rows after
    ///   the output norm, not in its last layer.
    pub(super) fn delta_net_layer(&mut self, il: usize, inp: TensorId) -> TensorId {
        let cur = self.norm(inp, false);
        let device = self.buffer;
        let state = self.state_buffer(device);
        let t = self.r.n_tokens;
        let seqs = self.r.n_seqs.max(1);
        let (d_inner, conv_dim) = self.ssm_widths(il);
        // The beta/alpha projection: two values per value head.
        let h_v = (self.out_rows(il, "ssm_ba.weight", 2) / 2).max(1);
        let s_v = d_inner / h_v;
        let key_dim = conv_dim.saturating_sub(d_inner) / 2;
        let h_k = (key_dim / s_v.max(1)).max(1);
        let rows = self.state_rows(state, self.shape.recurrent.r, &[]);
        self.switch(device, &[rows]);
        let qkv = self.linear(cur, conv_dim, t, false);
        let conv_input = self.conv_window(rows, qkv, conv_dim, state);
        let states = self.state_rows(state, self.shape.recurrent.s, &[]);
        self.switch(device, &[states]);
        let conv = self.op(conv_dim * t * F32, &[conv_input]);
        let conv = self.inplace(&[conv], 1);
        let repeated = s_v * h_v * t * F32;
        let mut qk = [conv; 2];
        for x in &mut qk {
            let view = self.g.view(conv);
            let normed = self.op(key_dim * t * F32, &[view]);
            let scaled = self.inplace(&[normed], 1);
            *x = if h_k == h_v {
                scaled
            } else {
                self.op(repeated, &[scaled])
            };
        }
        let v = self.g.view(conv);
        let ba = self.linear(cur, 2 * h_v, t, false);
        let a = self.g.view(ba);
        let alpha = self.op(h_v * t * F32, &[a]);
        let alpha = self.inplace(&[alpha], 1);
        let alpha = self.inplace(&[alpha], 1);
        let gate = self.inplace(&[alpha], 1);
        let b = self.g.view(ba);
        let beta = self.op(h_v * t * F32, &[b]);
        let beta = self.inplace(&[beta], 1);
        let out = self.fused_state_op(
            &[qk[0], qk[1], v, gate, beta, states],
            s_v * h_v * t * F32,
            s_v * s_v * h_v * seqs * F32,
            state,
        );
        // Back on the device after host stores, the split copies the attention inputs of the
        // layers up to its end (the next delta-net layer's stores or the next device).
        let split = Split {
            buffer: device,
            kinds: Some(self.resume_kinds),
            outputs: false,
        };
        self.enter(split, &[], &[]);
        // The tail.
        let output = self.g.view_sized(out, s_v * h_v * t * F32);
        let normed = self.op(s_v * h_v * t * F32, &[output]);
        let normed = self.inplace(&[normed], 1);
        let z = self.linear(cur, d_inner, t, false);
        let z = self.inplace(&[z], 1);
        let gated = self.elementwise(&[normed, z], &[0, 1]);
        let gated = self.g.view(gated);
        let projected = self.linear(gated, self.shape.n_embd, t, false);
        let projected = self.g.view(projected);
        let ffn_inp = self.elementwise(&[projected, inp], &[0, 1]);
        self.ffn_from(il, ffn_inp)
    }
}
