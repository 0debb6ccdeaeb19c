//! Recurrent layers, sized with the Mamba template (`build_mamba_layer` /
//! `build_mamba2_layer` of `src/models/mamba-base.cpp`), alone, followed by an FFN (the
//! hybrids: Granite 4.0-H, Jamba, Nemotron-H) or beside attention (Falcon-H1).

use super::{Builder, F32};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// A recurrent layer: norm, the Mamba mixer, then the FFN block when the layer has one
    /// (hybrids), else the residual.
    pub(super) fn recurrent_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let cur = self.norm(inp, false);
        let out = self.mamba_mixer(il, cur);
        if self.has_ffn(il) {
            return self.ffn_block(il, out, inp, last);
        }
        self.residual(out, inp, last)
    }

    /// A Falcon-H1 layer (`src/models/falcon-h1.cpp`): attention and the Mamba-2 mixer on the
    /// same normed input (normed twice), their sum added to the residual, which alone is kept
    /// for the output rows, then the FFN.
    pub(super) fn parallel_hybrid_layer(
        &mut self,
        il: usize,
        inp: TensorId,
        last: bool,
    ) -> TensorId {
        let cur = self.norm(inp, false);
        let attn = self.self_attention(il, cur);
        let cur = self.norm(inp, false);
        let ssm = self.mamba_mixer(il, cur);
        let mixed = self.inplace(&[attn, ssm], 2);
        let mut ffn_inp = self.inplace(&[mixed, inp], 2);
        if last {
            let ids = self.out_ids();
            let e = self.e();
            ffn_inp = self.op(e, &[ffn_inp, ids]);
        }
        self.expect_residual(ffn_inp);
        let normed = self.norm(ffn_inp, false);
        let out = self.ffn(il, normed);
        self.residual_add(out, ffn_inp)
    }

    /// The Mamba mixer on a normed input: input projection to x and z, the causal convolution
    /// over the conv state and the ubatch, the selective scan (its output carries the tokens'
    /// y and the new states), the gate and the output projection. Widths come from the
    /// tensors; RWKV layers are sized with the same template.
    fn mamba_mixer(&mut self, il: usize, cur: TensorId) -> TensorId {
        let t = self.r.n_tokens;
        let e = self.shape.n_embd;
        let in_rows = self.out_rows(il, "ssm_in.weight", 2 * e);
        let inner = self
            .dims(il, "ssm_out.weight")
            .map_or(in_rows / 2, |(cols, _)| cols)
            .max(1);
        let state = (self.shape.recurrent.s / inner).max(1);
        let kernel = (self.shape.recurrent.r / inner.max(1)).max(1);
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
        self.linear(y, e, t, false)
    }
}
