//! RWKV-6 layers (`src/models/rwkv6.cpp` and `rwkv6-base.cpp` at 0c1e57098), op by op in the
//! order llama.cpp's graph holds them (dumped with `GGML_SCHED_DEBUG=2` and the allocator's
//! allocations): a layer's token-shift and WKV state reads (`build_rs`) join the graph
//! first, then the previous layer's channel mix (its output only joins when this layer's
//! norm reads it), then the layer's time mix up to the WKV state store, its FFN norm and the
//! token-shift store. The last layer's channel mix follows it, on its output rows.

use super::{Builder, F32, HOST, Split};
use crate::memory::alloc::TensorId;

/// A layer's channel mix, built once the next layer's state reads joined the graph.
#[derive(Clone, Copy)]
pub(super) struct ChannelMix {
    layer: usize,
    device: usize,
    /// The time mix's output plus the layer input (the channel mix's residual).
    ffn_inp: TensorId,
    ffn_norm: TensorId,
    /// The layer's token-shift rows (the channel mix reads their second half).
    shift: TensorId,
}

/// What a layer's time mix reads: the layer, its attention norm, x_prev - x (`sx`), the WKV
/// state rows, the buffer the states live in and the layer's device.
#[derive(Clone, Copy)]
struct TimeMix {
    il: usize,
    att_norm: TensorId,
    sx: TensorId,
    wkv_state: TensorId,
    state: usize,
    device: usize,
}

impl Builder<'_> {
    /// Whether layer `il` is an RWKV-6 or RWKV-7 layer with fused token-shift lerps (the
    /// form the converter writes), which [`Self::rwkv_layer`] builds op by op.
    pub(super) fn is_rwkv(&self, il: usize) -> bool {
        let v6 = ["time_mix_first", "time_mix_w2", "time_mix_decay_w1"];
        self.has(il, "time_mix_lerp_fused.weight") && (self.has_all(il, &v6) || self.is_rwkv7(il))
    }

    /// Whether layer `il` is an RWKV-7 layer (decay, in-context learning rate and value
    /// LoRAs).
    fn is_rwkv7(&self, il: usize) -> bool {
        let v7 = [
            "time_mix_w1",
            "time_mix_a1",
            "time_mix_v1",
            "time_mix_k_k",
            "time_mix_r_k",
        ];
        self.has_all(il, &v7)
    }

    fn has_all(&self, il: usize, names: &[&str]) -> bool {
        names
            .iter()
            .all(|name| self.has(il, &format!("{name}.weight")))
    }

    /// An element-wise op on `srcs` (the output has the first's size), in place on the first
    /// of `parents` (indices into `srcs`) ggml-alloc may take: never a view.
    pub(super) fn elementwise(&mut self, srcs: &[TensorId], parents: &[usize]) -> TensorId {
        let srcs: Vec<TensorId> = srcs.iter().map(|&s| self.local(s)).collect();
        let bytes = self.g.bytes(srcs[0]);
        let parents: Vec<TensorId> = parents
            .iter()
            .map(|&i| srcs[i])
            .filter(|&p| !self.g.is_view(p))
            .collect();
        self.g.inplace_on(bytes, &srcs, &parents, self.buffer)
    }

    /// `build_norm` with `LLM_NORM` and a bias: `ggml_norm` (never in place), then the weight
    /// and the bias in place.
    fn biased_layer_norm(&mut self, x: TensorId) -> TensorId {
        let bytes = self.g.bytes(x);
        let n = self.op(bytes, &[x]);
        let n = self.elementwise(&[n], &[0]);
        self.elementwise(&[n], &[0])
    }

    /// An RWKV-6 or RWKV-7 layer on `split` (see the module's documentation). `inp` is the token
    /// embeddings for the first layer (normed here, `token_embd_norm`); later layers take
    /// their input from the previous layer's channel mix.
    ///
    /// Splits, as `ggml_backend_sched` makes them: the state reads run where the states live
    /// (the host with `--no-kv-offload`). The previous layer's channel mix starts (its
    /// concat and difference, without weights) on the reads' device when that is another
    /// device, else on its own; its weighted ops run on its own device, its closing product
    /// and residual add there too unless that is the host (then on this layer's device).
    /// A split's inputs are copied at its start, in the order its ops read them: the
    /// token-shift halves and the WKV state rows this layer reads from the host among them.
    pub(super) fn rwkv_layer(
        &mut self,
        il: usize,
        inp: TensorId,
        last: bool,
        split: Split,
    ) -> TensorId {
        let device = split.buffer;
        let state = self.state_buffer(device);
        let t = self.r.n_tokens;
        let seqs = self.r.n_seqs.max(1);
        let e = self.shape.n_embd;
        let big = e * t * F32;
        let pending = self.take_pending_mix(state);
        let mut after = Vec::new();
        match pending {
            Some((mix, views, head)) if head != mix.device => after.extend(views),
            Some(_) => {}
            None => {
                after.push(inp);
                if split.outputs && state == device {
                    after.push(self.out_ids());
                }
            }
        }
        let shift = self.state_rows(state, self.shape.recurrent.r, &after);
        let wkv_state = self.state_rows(state, self.shape.recurrent.s, &[]);
        // The first half of the token shift (the time mix's last token).
        let att_shift = self.g.view_sized(shift, e * (2 * seqs - 1) * F32);
        let reads = self.rwkv_split_reads(split, state, att_shift, wkv_state);
        let inp = self.rwkv_input(pending, inp, device, &reads);
        // The layer reads its input through a reshape: a split on another device copies that.
        let inp_2d = self.g.view(inp);
        let mut inputs = vec![inp_2d];
        inputs.extend(&reads);
        self.switch(device, &inputs);
        let att_norm = self.biased_layer_norm(inp_2d);
        // x_prev: the state's last token, then every token but the last.
        let att_prev = self.g.view(att_norm);
        let x_prev = self.op(big, &[att_shift, att_prev]);
        let sx = self.elementwise(&[x_prev, att_norm], &[0]);
        let mix = TimeMix {
            il,
            att_norm,
            sx,
            wkv_state,
            state,
            device,
        };
        let out = if self.is_rwkv7(il) {
            self.rwkv7_time_mix(mix)
        } else {
            self.rwkv6_time_mix(mix)
        };
        let out = self.g.view(out);
        let residual = inp_2d;
        // In place on the input when a split copied it in (a copy is memory of its own).
        let ffn_inp = self.elementwise(&[out, residual], &[0, 1]);
        let ffn_norm = self.biased_layer_norm(ffn_inp);
        self.store_token_shift(state, att_norm, ffn_norm);
        let mix = ChannelMix {
            layer: il,
            device,
            ffn_inp,
            ffn_norm,
            shift,
        };
        if last {
            let views = self.mix_views(mix);
            return self.channel_mix(mix, views, device, device, &[], true);
        }
        self.pending_mix = Some(mix);
        ffn_inp
    }

    /// The previous layer's channel mix, waiting for this layer's state reads, with the
    /// views it reads first and the device it starts on: the reads' device when the states
    /// live on another device than the mix's, else its own.
    fn take_pending_mix(&mut self, state: usize) -> Option<(ChannelMix, [TensorId; 3], usize)> {
        let mix = self.pending_mix.take()?;
        let head = if state != HOST && state != mix.device {
            state
        } else {
            mix.device
        };
        Some((mix, self.mix_views(mix), head))
    }

    /// A layer's input: the previous layer's channel mix, finished with the layer's split
    /// reads, or for the first layer the token embeddings normed (`token_embd_norm`) in the
    /// layer's split, which copies them and `reads` in.
    fn rwkv_input(
        &mut self,
        pending: Option<(ChannelMix, [TensorId; 3], usize)>,
        inp: TensorId,
        device: usize,
        reads: &[TensorId],
    ) -> TensorId {
        match pending {
            Some((mix, views, head)) => self.channel_mix(mix, views, head, device, reads, false),
            None => {
                let mut inputs = vec![inp];
                inputs.extend(reads);
                self.switch(device, &inputs);
                self.biased_layer_norm(inp)
            }
        }
    }

    /// What a layer's split copies in at its start, in the order its ops read them: the
    /// host's state rows (the first token-shift half, RWKV-7's first-layer value, the WKV
    /// state) when the states live elsewhere than the layer's device, else RWKV-7's
    /// first-layer value and the output ids when the split runs to the end.
    fn rwkv_split_reads(
        &mut self,
        split: Split,
        state: usize,
        att_shift: TensorId,
        wkv_state: TensorId,
    ) -> Vec<TensorId> {
        let first: Vec<TensorId> = self.first_value.into_iter().collect();
        if state != split.buffer {
            [vec![att_shift], first, vec![wkv_state]].concat()
        } else if split.outputs {
            [first, vec![self.out_ids()]].concat()
        } else {
            first
        }
    }

    /// The token-shift store (`build_rwkv_token_shift_store`): both norms' last token per
    /// sequence, concatenated into the state rows where the states live.
    fn store_token_shift(&mut self, state: usize, att_norm: TensorId, ffn_norm: TensorId) {
        let e = self.shape.n_embd;
        let seqs = self.r.n_seqs.max(1);
        let last_att = self.g.view_sized(att_norm, e * seqs * F32);
        let last_ffn = self.g.view_sized(ffn_norm, e * seqs * F32);
        let shift_bytes = self.shape.recurrent.r * seqs * F32;
        let shifted = self.op(shift_bytes, &[last_att, last_ffn]);
        self.store_states(state, &[shifted]);
    }

    /// `build_rwkv6_time_mix` from x_prev - x (`sx`) to the output projection: the fused
    /// lerps through their LoRA, k, v and r, the decay, the WKV (its new state stored where
    /// the states live), the group norm and the SiLU gate.
    fn rwkv6_time_mix(&mut self, mix: TimeMix) -> TensorId {
        let TimeMix {
            il, att_norm, sx, ..
        } = mix;
        let t = self.r.n_tokens;
        let e = self.shape.n_embd;
        let sx_2d = self.g.view(sx);
        let att_2d = self.g.view(att_norm);
        let xxx = self.elementwise(&[sx_2d], &[0]);
        let xxx = self.elementwise(&[xxx, att_2d], &[0]);
        let lora_rows = self.out_rows(il, "time_mix_w1.weight", 1);
        let lora = self.linear(xxx, lora_rows, t, false);
        let lora = self.elementwise(&[lora], &[0]);
        let permuted = self.g.view(lora);
        let lora = self.op(lora_rows * t * F32, &[permuted]);
        // Five lerps, one per fused slice (w, k, v, r, g): `time_mix_w1->ne[1] / 5`.
        let mixed = self.linear(lora, 5 * e, t, false);
        let mixed = self.elementwise(&[mixed], &[0]);
        let sx_3d = self.g.view(sx);
        let mixed = self.elementwise(&[mixed, sx_3d], &[0]);
        let att_3d = self.g.view(att_norm);
        let mixed = self.elementwise(&[mixed, att_3d], &[0]);
        // k, v, r (their biases in place when present), then the decay w.
        let mut krv = Vec::new();
        for name in ["key", "value", "receptance"] {
            let x = self.g.view(mixed);
            let rows = self.out_rows(il, &format!("time_mix_{name}.weight"), e);
            let bias = self.has(il, &format!("time_mix_{name}.bias"));
            krv.push(self.linear(x, rows, t, bias));
        }
        let xw = self.g.view(mixed);
        let mut w = self.lora(il, xw, ["time_mix_decay_w1", "time_mix_decay_w2"], true);
        for _ in 0..4 {
            // + decay, exp, neg, exp.
            w = self.elementwise(&[w], &[0]);
        }
        let mut srcs: Vec<TensorId> = krv.iter().map(|&x| self.g.view(x)).collect();
        srcs.push(self.g.view(w));
        let wkv = self.wkv(mix, srcs);
        let heads = self.g.view(wkv);
        let cur = self.group_norm(heads);
        // The gate.
        let xg = self.g.view(mixed);
        let g = self.linear(xg, e, t, false);
        let g = self.elementwise(&[g], &[0]);
        let cur = self.elementwise(&[cur, g], &[0, 1]);
        self.linear(cur, e, t, false)
    }

    /// `build_rwkv7_time_mix` from x_prev - x (`sx`) to the output projection, in the order
    /// its ops join the graph (the WKV's sources r, w, k, v, -kk, kk·a): sx repeated once
    /// per fused lerp, r, the decay w through its LoRA, k with the in-context learning rate a
    /// (k + a·ka - ka), v (mixed with the first layer's v from the second layer on: that v
    /// stays alive until the last layer), the normalised kk, the WKV (its new state stored
    /// where the states live), the group norm, the bonus v·sum(k·r·r_k) and the gate.
    fn rwkv7_time_mix(&mut self, mix: TimeMix) -> TensorId {
        let TimeMix {
            il, att_norm, sx, ..
        } = mix;
        let t = self.r.n_tokens;
        let e = self.shape.n_embd;
        let big = e * t * F32;
        let gated = self.has(il, "time_mix_g1.weight") && self.has(il, "time_mix_g2.weight");
        // r, w, k, v, a and, when gated, g (`ggml_repeat` to one slice per lerp).
        let lerps = if gated { 6 } else { 5 };
        let repeated = self.op(lerps * big, &[sx]);
        let mixed = self.elementwise(&[repeated], &[0]);
        let mixed = self.elementwise(&[mixed, att_norm], &[0]);
        let slice = |b: &mut Self| b.g.view(mixed);
        let xr = self.g.view(mixed);
        let r = self.linear(xr, e, t, false);
        let xw = slice(self);
        let mut w = self.lora(il, xw, ["time_mix_w1", "time_mix_w2"], true);
        for _ in 0..4 {
            // + w0, sigmoid, scale, exp.
            w = self.elementwise(&[w], &[0]);
        }
        let xk = slice(self);
        let k = self.linear(xk, e, t, false);
        let xa = slice(self);
        let a = self.lora(il, xa, ["time_mix_a1", "time_mix_a2"], false);
        let a = self.elementwise(&[a], &[0]);
        let a = self.elementwise(&[a], &[0]);
        let ka = self.elementwise(&[k], &[0]);
        let a_ka = self.elementwise(&[a, ka], &[0, 1]);
        let diff = self.elementwise(&[a_ka, ka], &[0, 1]);
        let k_mixed = self.elementwise(&[k, diff], &[0, 1]);
        let xv = slice(self);
        let mut v = self.linear(xv, e, t, false);
        match self.first_value {
            None => self.first_value = Some(v),
            Some(first) => {
                let to_first = self.elementwise(&[first, v], &[0, 1]);
                let gate = self.lora(il, xv, ["time_mix_v1", "time_mix_v2"], false);
                let gate = self.elementwise(&[gate], &[0]);
                let gate = self.elementwise(&[gate], &[0]);
                let mixed_v = self.elementwise(&[to_first, gate], &[0, 1]);
                v = self.elementwise(&[v, mixed_v], &[0, 1]);
            }
        }
        // kk = l2_norm(k·k_k) (through a reshape: new memory), then -kk and kk·a.
        let kk = self.elementwise(&[k], &[0]);
        let kk = self.g.view(kk);
        let kk = self.op(big, &[kk]);
        let neg = self.elementwise(&[kk], &[0]);
        let a_3d = self.g.view(a);
        let kk_a = self.elementwise(&[kk, a_3d], &[0, 1]);
        let mut srcs: Vec<TensorId> = [r, w, k_mixed, v].iter().map(|&x| self.g.view(x)).collect();
        srcs.extend([neg, kk_a]);
        let wkv = self.wkv(mix, srcs);
        let heads = self.g.view(wkv);
        let mut cur = heads;
        if self.has(il, "time_mix_ln.weight") {
            cur = self.group_norm(heads);
        }
        // The bonus: v · sum over each head of k·r·r_k.
        let k_3d = self.g.view(k_mixed);
        let r_3d = self.g.view(r);
        let kr = self.op(big, &[k_3d, r_3d]);
        let kr = self.elementwise(&[kr], &[0]);
        let head_size = (self.shape.recurrent.s / e.max(1)).max(1);
        let rk = self.op(e / head_size * t * F32, &[kr]);
        let v_3d = self.g.view(v);
        let bonus = self.op(big, &[v_3d, rk]);
        let bonus = self.g.view(bonus);
        cur = self.elementwise(&[cur, bonus], &[0, 1]);
        if gated {
            let xg = slice(self);
            let g = self.lora(il, xg, ["time_mix_g1", "time_mix_g2"], true);
            cur = self.elementwise(&[cur, g], &[0, 1]);
        }
        self.linear(cur, e, t, false)
    }

    /// The group norm of the WKV output `heads` (its per-head reshape): `ggml_norm` of a view
    /// (new memory), the reshape back, the weight (on a view: new memory) and the bias in
    /// place.
    fn group_norm(&mut self, heads: TensorId) -> TensorId {
        let big = self.shape.n_embd * self.r.n_tokens * F32;
        let normed = self.op(big, &[heads]);
        let normed = self.g.view(normed);
        let cur = self.op(big, &[normed]);
        self.elementwise(&[cur], &[0])
    }

    /// The fused WKV op over `srcs` and the state rows: the tokens' output and the new states,
    /// which are stored where the states live; the layer goes on on its device.
    fn wkv(&mut self, mix: TimeMix, mut srcs: Vec<TensorId>) -> TensorId {
        srcs.push(mix.wkv_state);
        let big = self.shape.n_embd * self.r.n_tokens * F32;
        let state_bytes = self.shape.recurrent.s * self.r.n_seqs.max(1) * F32;
        let wkv = self.fused_state_op(&srcs, big, state_bytes, mix.state);
        self.switch(mix.device, &[]);
        wkv
    }

    /// A low-rank projection `second · act(first · x)`: the activation (tanh or sigmoid),
    /// when there is one, in place between the two matmuls.
    fn lora(
        &mut self,
        il: usize,
        x: TensorId,
        [first, second]: [&str; 2],
        activation: bool,
    ) -> TensorId {
        let t = self.r.n_tokens;
        let rank = self.out_rows(il, &format!("{first}.weight"), 1);
        let mut h = self.linear(x, rank, t, false);
        if activation {
            h = self.elementwise(&[h], &[0]);
        }
        let rows = self.out_rows(il, &format!("{second}.weight"), self.shape.n_embd);
        self.linear(h, rows, t, false)
    }

    /// The views of a layer's tensors its channel mix reads first: the second half of the
    /// token shift, the FFN norm but its last token (x_prev's tail: a strided view) and the
    /// FFN norm.
    fn mix_views(&mut self, mix: ChannelMix) -> [TensorId; 3] {
        let e = self.shape.n_embd;
        let seqs = self.r.n_seqs.max(1);
        let t = self.r.n_tokens;
        let shift = self.g.view_sized(mix.shift, e * (2 * seqs - 1) * F32);
        let tail = self
            .g
            .view_sized(mix.ffn_norm, e * t.saturating_sub(1) * F32);
        let norm = self.g.view(mix.ffn_norm);
        [shift, tail, norm]
    }

    /// A layer's channel mix (`build_rwkv6_channel_mix`) and residual: x_prev from the
    /// token-shift rows and the FFN norm, the receptance and key lerps, the squared-ReLU key
    /// and the value. Its concat and difference run on `head`, the weighted ops on the
    /// layer's device, the closing product and add there unless that is the host (then on
    /// `next`, whose split also copies `reads`). The last layer works on its output rows.
    fn channel_mix(
        &mut self,
        mix: ChannelMix,
        [shift, tail, norm]: [TensorId; 3],
        head: usize,
        next: usize,
        reads: &[TensorId],
        last: bool,
    ) -> TensorId {
        let t = self.r.n_tokens;
        let e = self.shape.n_embd;
        let big = e * t * F32;
        let il = mix.layer;
        let mut inputs = vec![shift, tail];
        if last {
            inputs.push(self.out_ids());
        }
        if head == next && mix.device == next {
            inputs.extend(reads);
        }
        self.switch(head, &inputs);
        let x_prev = self.op(big, &[shift, tail]);
        let x_prev = self.g.view(x_prev);
        let (x_prev, ffn_norm) = self.select_outputs(x_prev, norm, last);
        // A copy of the FFN norm from another device is memory of its own: the difference
        // may take it.
        let sx = self.elementwise(&[x_prev, ffn_norm], &[0, 1]);
        self.switch(mix.device, &[sx]);
        // RWKV-6 gates the value by the receptance's sigmoid; RWKV-7 has no receptance.
        let receptance = self.has(il, "channel_mix_receptance.weight");
        let r = receptance.then(|| {
            let xr = self.elementwise(&[sx], &[0]);
            let xr = self.elementwise(&[xr, ffn_norm], &[0]);
            let r = self.linear(xr, e, t, false);
            self.elementwise(&[r], &[0])
        });
        let xk = self.elementwise(&[sx], &[0]);
        let xk = self.elementwise(&[xk, ffn_norm], &[0]);
        let n_ff = self.out_rows(il, "channel_mix_key.weight", e);
        let k = self.linear(xk, n_ff, t, false);
        let k = self.elementwise(&[k], &[0]);
        let k = self.elementwise(&[k], &[0]);
        let v = self.linear(k, e, t, false);
        let residual = self.g.view(mix.ffn_inp);
        let tail_device = if mix.device == HOST { next } else { mix.device };
        let mut inputs: Vec<TensorId> = r.into_iter().collect();
        inputs.push(v);
        if !last {
            inputs.push(residual);
        }
        if tail_device == next {
            inputs.extend(reads);
        }
        self.switch(tail_device, &inputs);
        let cur = match r {
            Some(r) => self.elementwise(&[r, v], &[0, 1]),
            None => v,
        };
        let residual = self.output_rows(residual, last);
        self.elementwise(&[cur, residual], &[0, 1])
    }
}
