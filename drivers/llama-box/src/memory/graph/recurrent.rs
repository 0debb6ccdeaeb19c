//! Recurrent layers, sized with the Mamba template (`build_mamba_layer` /
//! `build_mamba2_layer` of `src/models/mamba-base.cpp`), alone or followed by an FFN (the
//! hybrids: Granite 4.0-H, Jamba); beside attention (Falcon-H1) and alone in Nemotron-H's
//! Mamba layers, the Mamba-2 mixer follows `build_mamba2_layer` tensor by tensor.

use super::{Builder, F32, HOST, Split};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// A recurrent layer: norm, the Mamba mixer, then the FFN block when the layer has one
    /// (hybrids), else the residual. Nemotron-H's layers run the Mamba-2 mixer as
    /// `build_mamba2_layer` builds it (`src/models/nemotron-h.cpp`): its state reads join the
    /// graph before the norm, so a host layer's tail before them moves to their device
    /// (`state_reads_after`).
    pub(super) fn recurrent_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let out = if MAMBA2_MIXER.contains(&self.shape.arch.as_str()) {
            let scan = self.mamba2_scan(il, inp);
            self.mamba2_output(il, scan)
        } else {
            let cur = self.norm(inp, false);
            self.mamba_mixer(il, cur)
        };
        if self.has_ffn(il) {
            return self.ffn_block(il, out, inp, last);
        }
        self.residual(out, inp, last)
    }

    /// A Falcon-H1 layer (`src/models/falcon-h1.cpp`): attention and the Mamba-2 mixer on the
    /// same input (normed twice), their sum added to the residual, which alone is kept for the
    /// output rows, then the FFN.
    ///
    /// The mixer stores its states with `ggml_build_forward_expand` while the layer is built,
    /// so llama.cpp's graph holds its projection, convolution and scan between the attention
    /// (up to `kqv_out`) and the attention's output projection (node order dumped from
    /// 0c1e57098's allocator); the projection (z is read by the gate), the convolved x and
    /// the scan's output stay alive until the gate.
    pub(super) fn parallel_hybrid_layer(
        &mut self,
        il: usize,
        inp: TensorId,
        last: bool,
    ) -> TensorId {
        let cur = self.norm(inp, false);
        let (attn, scan) = self.self_attention_beside(il, cur, |b| b.mamba2_scan(il, inp));
        let ssm = self.mamba2_output(il, scan);
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

    /// `build_mamba2_layer` (`src/models/mamba-base.cpp`) up to its state stores, in the
    /// order they join the graph: the conv states read for the ubatch's sequences, the norm
    /// of the layer input, the input projection (z, xBC, dt), the conv window (states then
    /// xBC) whose last columns are stored, the convolution with its bias and SiLU, dt with
    /// its bias, and the scan, whose output carries y and then the new states (stored).
    fn mamba2_scan(&mut self, il: usize, inp: TensorId) -> Mamba2Scan {
        let t = self.r.n_tokens;
        // The worst-case ubatch holds one row of tokens per parallel sequence.
        let seqs = self.r.n_seqs.max(1);
        let d_inner = self.dims(il, "ssm_out.weight").map_or(1, |(cols, _)| cols);
        let conv_dim = self
            .dims(il, "ssm_conv1d.weight")
            .map_or(1, |(_, rows)| rows);
        let projection = self.out_rows(il, "ssm_in.weight", 2 * d_inner);
        let n_head = projection.saturating_sub(d_inner + conv_dim).max(1);
        let d_state = (self.shape.recurrent.s / d_inner.max(1)).max(1);
        let window = self.shape.recurrent.r / conv_dim.max(1);
        let conv_states = self.op(self.shape.recurrent.r * seqs * F32, &[]);
        let cur = self.norm(inp, false);
        let zx_bc_dt = self.linear(cur, projection, t, false);
        let x_bc = self.g.view(zx_bc_dt, false);
        let conv_x = self.op(
            (window + t / seqs) * conv_dim * seqs * F32,
            &[conv_states, x_bc],
        );
        let last_conv = self.g.view(conv_x, false);
        self.g.store(&[last_conv], self.buffer);
        let conv = self.op(conv_dim * t * F32, &[conv_x]);
        let conv = if self.has(il, "ssm_conv1d.bias") {
            self.inplace(&[conv], 1)
        } else {
            conv
        };
        let conv = self.inplace(&[conv], 1);
        let x = self.g.view(conv, true);
        let bc = self.g.view(conv, false);
        let dt = self.g.view(zx_bc_dt, false);
        let dt = self.op(n_head * t * F32, &[dt]);
        let dt = self.inplace(&[dt], 1);
        let scan = self.op((d_inner * t + d_state * d_inner * seqs) * F32, &[x, dt, bc]);
        let states = self.g.view(scan, false);
        self.g.store(&[states], self.buffer);
        Mamba2Scan {
            zx_bc_dt,
            x,
            scan,
            d_inner,
        }
    }

    /// The rest of `build_mamba2_layer`: y + x·D (in place over the scan's output), the gate
    /// by a contiguous z, the grouped RMS norm and the output projection.
    fn mamba2_output(&mut self, il: usize, scan: Mamba2Scan) -> TensorId {
        let bytes = scan.d_inner * self.r.n_tokens * F32;
        let z = self.gate_input(scan.zx_bc_dt, bytes);
        let x_d = self.op(bytes, &[scan.x]);
        let y = self.g.view(scan.scan, true);
        let y = self.inplace_sized(bytes, &[y, x_d], 2);
        let mut y = self.op(bytes, &[z, y]);
        if self.has(il, "ssm_norm.weight") {
            let grouped = self.g.view(y, true);
            y = self.norm(grouped, false);
        }
        let y = self.g.view(y, true);
        self.linear(y, self.shape.n_embd, self.r.n_tokens, false)
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
        // build_mamba_layer shapes the ubatch as {n_seq_tokens, n_seqs}: the worst-case
        // ubatch holds every one of `n_seq_max` sequences (llama_context::sched_reserve), a
        // unified cache or not, and each keeps its own conv window and state.
        let seqs = self.r.n_seqs.max(1);
        let xz = self.linear(cur, in_rows, t, false);
        let x = self.g.view(xz, true);
        let window = self.op((kernel * seqs + t) * inner * F32, &[x]);
        let conv = self.op(inner * t * F32, &[window]);
        let conv = self.inplace(&[conv], 1);
        let scan = self.op((inner * t + state * inner * seqs) * F32, &[conv]);
        let y = self.g.view(scan, true);
        let gate = self.gate_input(xz, inner * t * F32);
        let y = self.op(inner * t * F32, &[y, gate]);
        self.linear(y, e, t, false)
    }

    /// The contiguous z of a mixer's gate (`ggml_cont` of a view of the input projection
    /// `projection`), the first op of the layer's tail without weights.
    ///
    /// When the next layer is recurrent and on another device, its state reads (`build_rs`:
    /// the conv state's `get_rows` and copies) join the graph before this layer's tail, which
    /// only joins when the next layer's ops that read it are expanded (graph order dumped at
    /// 0c1e57098, `GGML_SCHED_DEBUG=2`). The scheduler then gives this cont the next device
    /// (it follows that device's ops), which copies the projection in, and the rest of the
    /// tail comes back here and copies the cont back: with pipeline parallelism both copies
    /// stay allocated once per scheduler copy. The copy is of the view the cont reads (the
    /// whole projection): once copied, nothing here reads it any more.
    fn gate_input(&mut self, projection: TensorId, bytes: u64) -> TensorId {
        let z = self.g.view(projection, false);
        let Some(next) = self.next_recurrent.filter(|&b| b != HOST) else {
            return self.op(bytes, &[z]);
        };
        let here = Split {
            buffer: self.buffer,
            kinds: None,
            outputs: false,
        };
        self.enter(
            Split {
                buffer: next,
                kinds: None,
                outputs: false,
            },
            &[z],
            &[],
        );
        let z = self.op(bytes, &[z]);
        self.enter(here, &[z], &[]);
        z
    }
}

/// Architectures whose recurrent layers (without attention beside them) run the Mamba-2 mixer
/// ([`Builder::mamba2_scan`] and [`Builder::mamba2_output`]) rather than the Mamba template.
const MAMBA2_MIXER: [&str; 1] = ["nemotron_h"];

/// The tensors of a Mamba-2 mixer that outlive its scan.
struct Mamba2Scan {
    /// The input projection (z, xBC, dt): z is read by the gate.
    zx_bc_dt: TensorId,
    /// The convolved x (a view), read again for the skip term x·D.
    x: TensorId,
    /// The scan's output: y, then the new states.
    scan: TensorId,
    /// Width of the mixer (`ssm.inner_size`).
    d_inner: u64,
}
