//! Recurrent layers, sized with the Mamba template (`build_mamba_layer`).

use super::{Builder, F32};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// A Mamba-style recurrent layer (`build_mamba_layer`): input projection to x and z,
    /// the causal convolution over the conv state and the ubatch, the selective scan (its
    /// output carries the tokens' y and the new states), the gate and the output projection.
    /// Widths come from the tensors; RWKV layers are sized with the same template.
    pub(super) fn recurrent_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let t = self.r.n_tokens;
        let e = self.shape.n_embd;
        let in_rows = self.out_rows(il, "ssm_in.weight", 2 * e);
        let inner = self
            .dims(il, "ssm_out.weight")
            .map_or(in_rows / 2, |(cols, _)| cols)
            .max(1);
        let state = (self.shape.recurrent.s / inner).max(1);
        let kernel = (self.shape.recurrent.r / inner.max(1)).max(1);
        let cur = self.norm(inp, false);
        let xz = self.linear(cur, in_rows, t, false);
        let x = self.g.view(xz, true);
        let window = self.op((kernel + t) * inner * F32, &[x]);
        let conv = self.op(inner * t * F32, &[window]);
        let conv = self.inplace(&[conv], 1);
        let scan = self.op(
            (inner * t + state * inner * self.r.n_stream.max(1)) * F32,
            &[conv],
        );
        let y = self.g.view(scan, true);
        let z = self.g.view(xz, false);
        let gate = self.op(inner * t * F32, &[z]);
        let y = self.op(inner * t * F32, &[y, gate]);
        let out = self.linear(y, e, t, false);
        let (out, residual) = self.select_outputs(out, inp, last);
        self.inplace(&[out, residual], 2)
    }
}
