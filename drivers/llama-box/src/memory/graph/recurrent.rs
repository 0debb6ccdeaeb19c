//! Recurrent layers: those of Mamba models (Mamba-1 and Mamba-2, no attention), Granite
//! 4.0-H's (Mamba-2, each followed by an FFN), Jamba's (Mamba-1 with dt/B/C norms, each
//! followed by an FFN) and Falcon-H1's (Mamba-2 beside attention) op by op with the
//! scheduler's splits ([`Builder::mamba_layer`], [`Builder::parallel_hybrid_layer`]).
//! Nemotron-H's Mamba layers (Mamba-2, between attention and FFN-only layers) take the
//! op-by-op path too; [`Builder::recurrent_layer`], the Mamba template, sizes what is left
//! (none of the modelled architectures).

use super::{Builder, F32, HOST, Split};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    /// Whether layer `il` is a Mamba layer without an FFN, of a model without attention layers
    /// (the Mamba, Falcon-Mamba and Mamba-2 architectures) or of Nemotron-H
    /// ([`MAMBA_BESIDE_ATTENTION`]), which [`Self::mamba_layer`] builds op by op.
    pub(super) fn is_mamba(&self, il: usize) -> bool {
        let layer = self.shape.layers[il];
        layer.recurrent
            && self.has(il, "ssm_in.weight")
            && (self.shape.layers.iter().all(|l| l.n_head_kv == 0)
                || MAMBA_BESIDE_ATTENTION.contains(&self.shape.arch.as_str()))
            && !self.has_ffn(il)
    }

    /// Whether layer `il` is a Mamba layer followed by an FFN in a hybrid whose mixer
    /// [`Self::mamba_layer`] builds op by op ([`HYBRID_MAMBA`]).
    pub(super) fn is_hybrid_mamba(&self, il: usize) -> bool {
        let layer = self.shape.layers[il];
        HYBRID_MAMBA.contains(&self.shape.arch.as_str())
            && layer.recurrent
            && layer.n_head_kv == 0
            && self.has(il, "ssm_in.weight")
            && self.has_ffn(il)
    }

    /// Whether Mamba layer `il` is a hybrid's (Granite 4.0-H's, Jamba's, Nemotron-H's): the split
    /// its state reads start also copies the attention inputs of its layers.
    fn beside_attention(&self, il: usize) -> bool {
        self.is_hybrid_mamba(il) || self.shape.layers.iter().any(|l| l.n_head_kv > 0)
    }

    /// A Mamba layer (`build_mamba_layer` / `build_mamba2_layer` of
    /// `src/models/mamba-base.cpp` at 0c1e57098) on `split`, in the order its ops join the
    /// graph and the splits `ggml_backend_sched` makes of them (graph and allocations dumped
    /// from 0c1e57098, `GGML_SCHED_DEBUG=2`):
    /// - `build_rs` reads the conv states first (`get_rows` of the ubatch's rows; the extra
    ///   rows, none at reserve, are stored back), where the states live: the layer's device,
    ///   or the host with `--no-kv-offload`. The next Mamba layer's reads (`next`, past
    ///   Nemotron-H's FFN-only layers, which expand nothing, or after a hybrid layer's dense
    ///   FFN, which expands nothing either: Jamba Mini's layers 0 and 2) join the graph before
    ///   this layer's tail (its ops only join when the next layer's norm reads the output);
    /// - norm, input projection (z, x or xBC, and Mamba-2's dt), the conv window (states,
    ///   then x) whose last columns are stored, the convolution with its bias and SiLU; then
    ///   Mamba-1's `ssm_x` (dt, B, C) and contiguous dt through `ssm_dt`, Mamba-2's contiguous
    ///   dt, each with its bias; the scan (its output carries y and the new states, stored;
    ///   the extra state rows are read and stored back);
    /// - the tail: the contiguous z (on the next layer's device when its reads moved the
    ///   graph there), y + x·D, the SwiGLU gate, Mamba-2's grouped norm, the output projection
    ///   and the residual; in a hybrid ([`Self::is_hybrid_mamba`]) the FFN block instead,
    ///   with the next Mamba layer's reads after its routed experts (`Builder::ffn`), or
    ///   before the tail when the FFN is dense.
    ///
    /// Stores into host states run in host splits, which copy what they store; the device
    /// then copies the host's state rows, and for the scan both views of the host's states
    /// and the row indices. ggml-alloc never hands a view's memory to an in-place op
    /// (`ggml_gallocr_is_own` is false for views), so ops reading views take new memory.
    pub(super) fn mamba_layer(
        &mut self,
        il: usize,
        inp: TensorId,
        last: bool,
        split: Split,
        next: Option<(usize, usize)>,
    ) -> TensorId {
        let device = split.buffer;
        let head = self.mamba_head(il, inp, split);
        let inp = head.input;
        // The tail, after the next layer's reads.
        let bytes = head.d_inner * self.r.n_tokens * F32;
        // z: a strided view of the projection.
        let z = self.gate_view(&head);
        let next = next.filter(|&(layer, _)| self.is_mamba(layer) || self.is_hybrid_mamba(layer));
        // The gate's cont follows the reads onto another device (not onto the host, the
        // scheduler's last resort), whose split copies z in with the row indices.
        let mut moved = false;
        if let Some((layer, buffer)) = next {
            let state = self.state_buffer(buffer);
            moved = state != device && state != HOST;
            let after = if moved { vec![z] } else { Vec::new() };
            let rows = self.state_rows(state, self.shape.recurrent.r, &after);
            self.state_rows = Some((layer, rows));
        }
        let z = if moved { self.op(bytes, &[z]) } else { z };
        let mut inputs = vec![z];
        if let (Some((_, buffer)), Some((_, rows))) = (next, self.state_rows)
            && buffer == device
        {
            inputs.push(rows);
        }
        if last && split.outputs {
            inputs.push(self.out_ids());
        }
        self.switch(device, &inputs);
        // Jamba's last layer: the residual add reads the residual's output rows first, so
        // they join the graph before the tail.
        let residual_rows = (last && self.residual_first() && self.has_ffn(il))
            .then(|| self.output_rows(inp, true));
        let z = if moved { z } else { self.op(bytes, &[z]) };
        let out = self.mamba_tail(il, &head, z);
        if let Some(residual) = residual_rows {
            let out = self.output_rows(out, true);
            let ffn_inp = self.inplace(&[residual, out], 2);
            return self.ffn_from(il, ffn_inp);
        }
        if self.has_ffn(il) {
            // Mamba-1's projection reaches the residual add through a reshape (a view), whose
            // memory the add never takes: Jamba's first layer on a device, whose residual is
            // the split's copy of the embeddings, adds into memory of its own (its 1:1 split
            // at 0c1e57098: `node_64`, 8 MiB at a new offset).
            let out = if head.mamba2 { out } else { self.g.view(out) };
            return self.ffn_block(il, out, inp, last);
        }
        let (out, residual) = self.select_outputs(out, inp, last && !self.rows_after_output_norm());
        // Mamba-1 adds its projection through a reshape (a view): the add takes the
        // residual's memory, except on the last layer, whose output rows are copies.
        self.residual_add_reusing(out, residual, head.mamba2 || last)
    }

    /// The head of [`Self::mamba_layer`] on `split`: the state reads, the norm, the input
    /// projection, the conv window and its store, the convolution, dt and the scan with its
    /// stores (in host splits when the states live on the host).
    fn mamba_head(&mut self, il: usize, mut inp: TensorId, split: Split) -> MambaHead {
        let device = split.buffer;
        let state = self.state_buffer(device);
        let t = self.r.n_tokens;
        let seqs = self.r.n_seqs.max(1);
        let (d_inner, conv_dim) = self.ssm_widths(il);
        let mamba2 = !self.has(il, "ssm_x.weight");
        let d_state = self.shape.recurrent.s / d_inner;
        // A device split that runs to the end reads the output ids last.
        let mut inputs = vec![inp];
        if split.outputs && state == device {
            inputs.push(self.out_ids());
        }
        let rows = self.conv_state_rows(il, &mut inp, split, state, &inputs);
        inputs.insert(1, rows);
        self.switch(device, &inputs);
        let cur = self.norm(inp, false);
        let xz_rows = self.out_rows(il, "ssm_in.weight", 2 * d_inner);
        let xz = self.linear(cur, xz_rows, t, false);
        let x = self.g.view(xz);
        let conv_x = self.conv_window(rows, x, conv_dim, state);
        let [main, extra] = self.state_copy_input();
        let host_states = (state != device).then(|| {
            self.switch(device, &[]);
            let bytes = self.shape.recurrent.s * seqs * F32;
            let scan_view = self.g.op(bytes, &[], device);
            self.local(main);
            let extra_view = self.g.op(bytes, &[], device);
            self.local(extra);
            (scan_view, extra_view)
        });
        let conv = self.op(conv_dim * t * F32, &[conv_x]);
        let conv = self.inplace(&[conv], 1);
        let conv = self.inplace(&[conv], 1);
        let (x, dt, bc) = if mamba2 {
            // dt is the projection's last n_head columns.
            let n_head = xz_rows.saturating_sub(d_inner + conv_dim).max(1);
            let dt = self.g.view(xz);
            let dt = self.op(n_head * t * F32, &[dt]);
            let dt = self.inplace(&[dt], 1);
            (self.g.view(conv), dt, vec![self.g.view(conv)])
        } else {
            let (dt, bc) = self.mamba1_dt_bc(il, conv, d_inner, d_state);
            (conv, dt, bc)
        };
        // Sources in ggml's order (they are released in it): the states, x, dt, B and C,
        // the row indices.
        let mut srcs: Vec<TensorId> = host_states
            .map(|(scan_view, _)| scan_view)
            .into_iter()
            .collect();
        srcs.extend([x, dt]);
        srcs.extend(bc);
        srcs.push(main);
        let scan = self.op((d_inner * t + d_state * d_inner * seqs) * F32, &srcs);
        let mut srcs: Vec<TensorId> = host_states
            .map(|(_, extra_view)| extra_view)
            .into_iter()
            .collect();
        srcs.push(extra);
        let extra_rows = self.op(0, &srcs);
        let states = self.g.view_sized(scan, d_state * d_inner * seqs * F32);
        self.store_states(state, &[extra_rows, states]);
        MambaHead {
            input: inp,
            xz,
            xz_rows,
            x,
            scan,
            d_inner,
            mamba2,
        }
    }

    /// The conv-state rows a Mamba layer reads (`build_rs`'s get_rows of the state cache),
    /// wherever they come from: read earlier on the host for this layer (taken from
    /// `state_rows`), read at the start of a split the layer opens beside attention layers
    /// (which copies the row indices and the embeddings first, and may scale `inp` there),
    /// or read in the current split after `inputs` when the states sit on the layer's
    /// device.
    fn conv_state_rows(
        &mut self,
        il: usize,
        inp: &mut TensorId,
        split: Split,
        state: usize,
        inputs: &[TensorId],
    ) -> TensorId {
        let device = split.buffer;
        match self.state_rows.take() {
            Some((layer, rows)) if layer == il => rows,
            _ if self.beside_attention(il) && state == device => {
                // The split copies the state row indices, the attention inputs of its layers
                // and the output ids; the scaled embeddings come first.
                let [main, extra] = self.state_copy_input();
                let first = if il == 0 && self.shape.embeddings_scaled {
                    [*inp, main, extra]
                } else {
                    [main, extra, *inp]
                };
                self.enter(split, &first, &[]);
                if il == 0 && self.shape.embeddings_scaled {
                    // The scale runs here, in place on the copy of the embeddings unless
                    // that is a pipeline copy (pinned), and becomes the layer's input.
                    *inp = self.inplace(&[*inp], 1);
                }
                self.state_rows(state, self.shape.recurrent.r, &[])
            }
            _ => {
                let after = if state == device { inputs } else { &[] };
                self.state_rows(state, self.shape.recurrent.r, after)
            }
        }
    }

    /// Mamba-1's dt, B and C, out of the `ssm_x` projection of the convolved `x`: dt through
    /// its rank-`dt_rank` projection (RMS-normed first in Jamba, whose B and C are each normed
    /// out of their view too; plain views otherwise). Mamba-2 reads them from the input
    /// projection instead.
    fn mamba1_dt_bc(
        &mut self,
        il: usize,
        conv: TensorId,
        d_inner: u64,
        d_state: u64,
    ) -> (TensorId, Vec<TensorId>) {
        let t = self.r.n_tokens;
        let dt_rank = self.dims(il, "ssm_dt.weight").map_or(1, |(cols, _)| cols);
        let x_db = self.linear(conv, self.out_rows(il, "ssm_x.weight", 1), t, false);
        let dt = self.g.view(x_db);
        // dt's contiguous copy, or its RMS norm (Jamba's dt/B/C norms), whose weight applies
        // in place.
        let dt = self.op(dt_rank * t * F32, &[dt]);
        let normed = self.has(il, "ssm_dt_norm.weight");
        let dt = if normed { self.inplace(&[dt], 1) } else { dt };
        let dt = self.linear(dt, d_inner, t, false);
        let dt = self.inplace(&[dt], 1);
        let bc = if normed {
            // B and C, each normed out of its view of the projection.
            let [b, c] = [(); 2].map(|()| {
                let view = self.g.view(x_db);
                let n = self.op(d_state * t * F32, &[view]);
                self.inplace(&[n], 1)
            });
            vec![b, c]
        } else {
            vec![self.g.view(x_db)]
        };
        (dt, bc)
    }

    /// The strided view of the input projection that holds z.
    fn gate_view(&mut self, head: &MambaHead) -> TensorId {
        let t = self.r.n_tokens;
        self.g.view_sized(
            head.xz,
            (head.d_inner + t.saturating_sub(1) * head.xz_rows) * F32,
        )
    }

    /// The tail of [`Self::mamba_layer`] from the contiguous z: y + x·D, the SwiGLU gate,
    /// Mamba-2's grouped norm and the output projection.
    fn mamba_tail(&mut self, il: usize, head: &MambaHead, z: TensorId) -> TensorId {
        let device = self.buffer;
        let t = self.r.n_tokens;
        let bytes = head.d_inner * t * F32;
        let x = head.x;
        let scan = head.scan;
        // x·D: in place on Mamba-1's x, new memory for Mamba-2's (a view of xBC).
        let x_d = if head.mamba2 {
            self.op(bytes, &[x])
        } else {
            self.inplace(&[x], 1)
        };
        let y = self.g.view(scan);
        let y = self.g.inplace_on(bytes, &[y, x_d], &[x_d], device);
        let mut y = self.op(bytes, &[z, y]);
        if self.has(il, "ssm_norm.weight") {
            // The grouped RMS norm reads a reshape (new memory); its weight is applied in
            // place.
            let grouped = self.g.view(y);
            let normed = self.op(bytes, &[grouped]);
            y = self.inplace(&[normed], 1);
        }
        let y = self.g.view(y);
        self.linear(y, self.shape.n_embd, t, false)
    }

    /// A recurrent layer sized with the Mamba template: norm, the Mamba mixer, then the FFN
    /// block when the layer has one, else the residual. The modelled architectures' recurrent
    /// layers all take their own paths; this sizes those of architectures that are not.
    pub(super) fn recurrent_layer(&mut self, il: usize, inp: TensorId, last: bool) -> TensorId {
        let cur = self.norm(inp, false);
        let out = self.mamba_mixer(il, cur);
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
    /// so llama.cpp's graph holds the mixer's head ([`Self::mamba_head`]: state reads,
    /// projection, convolution, scan and stores) between the attention (up to `kqv_out`) and
    /// the attention's output projection, then the mixer's tail (graph order and splits
    /// dumped from 0c1e57098, `GGML_SCHED_DEBUG=2`). With the states and the cache on the
    /// host the attention runs in the host split of the K/V stores, which goes on with the
    /// state reads; the output projection's split on the device copies its output after the
    /// state stores.
    pub(super) fn parallel_hybrid_layer(
        &mut self,
        il: usize,
        inp: TensorId,
        last: bool,
    ) -> TensorId {
        let device = self.buffer;
        let cur = self.norm(inp, false);
        let attn = self.attention_core(il, cur);
        let split = Split {
            buffer: device,
            kinds: None,
            outputs: false,
        };
        let head = self.mamba_head(il, inp, split);
        // The split resuming on the device copies the attention output, then the output
        // ids when it selects the output rows.
        self.switch(device, &[attn]);
        self.resume_outputs(il);
        let attn = self.attention_output(il, attn);
        let z = self.gate_view(&head);
        let z = self.op(head.d_inner * self.r.n_tokens * F32, &[z]);
        let ssm = self.mamba_tail(il, &head, z);
        let mixed = self.inplace(&[attn, ssm], 2);
        let ffn_inp = self.inplace(&[mixed, inp], 2);
        let ffn_inp = self.output_rows(ffn_inp, last);
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
        // build_mamba_layer shapes the ubatch as {n_seq_tokens, n_seqs}: the worst-case
        // ubatch holds every one of `n_seq_max` sequences (llama_context::sched_reserve), a
        // unified cache or not, and each keeps its own conv window and state.
        let seqs = self.r.n_seqs.max(1);
        let xz = self.linear(cur, in_rows, t, false);
        let x = self.g.view(xz);
        let window = self.op((kernel * seqs + t) * inner * F32, &[x]);
        let conv = self.op(inner * t * F32, &[window]);
        let conv = self.inplace(&[conv], 1);
        let scan = self.op((inner * t + state * inner * seqs) * F32, &[conv]);
        let y = self.g.view(scan);
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
        let z = self.g.view(projection);
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

/// Hybrids whose Mamba layers, each followed by an FFN, run op by op
/// ([`Builder::mamba_layer`]): Granite 4.0-H's Mamba-2 mixer (`src/models/granite-hybrid.cpp`
/// at 0c1e57098) and Jamba's Mamba-1 mixer with dt/B/C norms (`src/models/jamba.cpp`,
/// `build_mamba_layer` of `mamba-base.cpp`).
const HYBRID_MAMBA: [&str; 2] = ["granitehybrid", "jamba"];

/// Hybrids whose Mamba layers, without an FFN, sit between attention and FFN-only layers and
/// run op by op ([`Builder::mamba_layer`]): Nemotron-H (`src/models/nemotron-h.cpp` at
/// 0c1e57098).
const MAMBA_BESIDE_ATTENTION: [&str; 1] = ["nemotron_h"];

/// The tensors of [`Builder::mamba_head`] its tail reads.
struct MambaHead {
    /// The layer's input as the head read it (Granite 4.0-H's first layer: the scaled
    /// embeddings).
    input: TensorId,
    /// The input projection (z, x or xBC, Mamba-2's dt).
    xz: TensorId,
    /// Its width.
    xz_rows: u64,
    /// The convolved x (Mamba-2: a view of xBC), read again for x·D.
    x: TensorId,
    /// The scan's output: y, then the new states.
    scan: TensorId,
    /// Width of the mixer (`ssm.inner_size`).
    d_inner: u64,
    /// Mamba-2 (no `ssm_x`).
    mamba2: bool,
}
