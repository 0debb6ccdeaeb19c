//! Recurrent states (`build_rs` and the stores of `llama-memory-recurrent` at 0c1e57098) as
//! the layers that keep them read and store them: where they live, the rows a ubatch reads,
//! the conv window whose last columns are stored back, and the fused ops whose output carries
//! the new states. Shared by Mamba and Mamba-2 layers ([`Builder::mamba_layer`]), RWKV-6/7
//! layers ([`Builder::rwkv_layer`]) and gated delta-net layers ([`Builder::delta_net_layer`]).

use super::{Builder, F32, HOST, Split};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// The opening widths of a layer with a conv state (a Mamba layer, a gated delta net),
    /// from its tensors: the inner width (`ssm_out`'s input columns) and the convolved width
    /// (`ssm_conv1d`'s rows: x for Mamba-1, xBC for Mamba-2, QKV for the gated delta net; the
    /// inner width without one). Both at least 1.
    pub(super) fn ssm_widths(&self, il: usize) -> (u64, u64) {
        let d_inner = self
            .dims(il, "ssm_out.weight")
            .map_or(1, |(cols, _)| cols)
            .max(1);
        let conv_dim = self
            .dims(il, "ssm_conv1d.weight")
            .map_or(d_inner, |(_, rows)| rows)
            .max(1);
        (d_inner, conv_dim)
    }

    /// Where layer states live: the host with `--no-kv-offload`, else the layer's buffer.
    pub(super) fn state_buffer(&self, layer_buffer: usize) -> usize {
        if self.r.kv_on_host {
            HOST
        } else {
            layer_buffer
        }
    }

    /// Moves the graph to a split on `buffer` (nothing when it runs there already), which
    /// copies `inputs` in at its start.
    pub(super) fn switch(&mut self, buffer: usize, inputs: &[TensorId]) {
        let split = Split {
            buffer,
            kinds: None,
            outputs: false,
        };
        self.enter(split, inputs, &[]);
    }

    /// `build_rs` of a state of `size` values per sequence on `state`: the ubatch's rows
    /// (`get_rows` by the row indices) and the extra rows, stored back. A split it starts
    /// also copies `after`.
    pub(super) fn state_rows(&mut self, state: usize, size: u64, after: &[TensorId]) -> TensorId {
        let [main, extra] = self.state_copy_input();
        let mut inputs = vec![main, extra];
        inputs.extend(after);
        self.switch(state, &inputs);
        let rows = self.op(size * self.r.n_seqs.max(1) * F32, &[main]);
        let extra_rows = self.op(0, &[extra]);
        self.g.store(&[extra_rows], self.buffer);
        rows
    }

    /// Copies into the states on `state` (`ggml_cpy` into a view of the cache): they run
    /// where the cache is, in a split that copies `srcs` in when they are elsewhere.
    pub(super) fn store_states(&mut self, state: usize, srcs: &[TensorId]) {
        self.switch(state, srcs);
        for &src in srcs {
            let src = self.local(src);
            self.g.store(&[src], self.buffer);
        }
    }

    /// The conv window of a layer whose conv states are `rows` (`kept` = d_conv - 1 columns
    /// per channel) over its `conv_dim`-wide input `x`: the states then the transposed input
    /// per sequence (`ggml_concat`), whose last `kept` columns of every channel, a strided view
    /// spanning the window, are stored back where the states live (`state`). Mamba's x or xBC
    /// (`mamba-base.cpp`), the gated delta net's QKV (`build_conv_state` of
    /// `delta-net-base.cpp`).
    pub(super) fn conv_window(
        &mut self,
        rows: TensorId,
        x: TensorId,
        conv_dim: u64,
        state: usize,
    ) -> TensorId {
        let seqs = self.r.n_seqs.max(1);
        let kept = self.shape.recurrent.r / conv_dim;
        let window = kept + self.r.n_tokens / seqs;
        let conv = self.op(window * conv_dim * seqs * F32, &[rows, x]);
        let last = self.g.view_sized(
            conv,
            (kept + (conv_dim * seqs).saturating_sub(1) * window) * F32,
        );
        self.store_states(state, &[last]);
        conv
    }

    /// A fused op over the states read from `state` (RWKV's WKV, the gated delta net) on
    /// `srcs`: its output carries the tokens' `out_bytes`, then the new states (`state_bytes`),
    /// which are stored where the states live, in a split of their own when that is not the
    /// layer's device (the caller goes back to it).
    pub(super) fn fused_state_op(
        &mut self,
        srcs: &[TensorId],
        out_bytes: u64,
        state_bytes: u64,
        state: usize,
    ) -> TensorId {
        let out = self.op(out_bytes + state_bytes, srcs);
        let new_state = self.g.view_sized(out, state_bytes);
        self.store_states(state, &[new_state]);
        out
    }
}
