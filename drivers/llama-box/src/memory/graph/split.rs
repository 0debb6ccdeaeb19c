//! Multi-device graphs as `ggml_backend_sched` splits them: graph inputs, and the copies a
//! split makes of what it reads from another buffer.

use super::{Builder, HOST, KindLayers, Kinds, Split};
use crate::memory::alloc::TensorId;
use crate::memory::shape::PARALLEL_HYBRIDS;

impl Builder<'_> {
    /// A graph input; inputs live on the host and are copied to devices that use them.
    pub(super) fn input(&mut self, bytes: u64) -> TensorId {
        if self.r.n_copies > 1 {
            // Pipeline parallelism: one pinned copy per scheduler copy (ggml-backend.c).
            for _ in 1..self.r.n_copies {
                self.g.pinned_input(bytes, 0);
            }
            self.g.pinned_input(bytes, 0)
        } else {
            self.g.input(bytes, 0)
        }
    }

    /// The attention layers of each kind (full, sliding) the split starting with `layers[0]`
    /// on `buffer` runs, whose inputs it reads: the layers up to the next buffer change, or up
    /// to a gated delta-net layer on a device whose states live on the host: its state stores
    /// run in host splits, and the device split resuming after the last of them reads the
    /// next layers' inputs ([`Builder::resume_kinds`]); or only the first attention layer of
    /// an encoder whose merged heads run on the host ([`Builder::heads_merged_on_host`]): the
    /// split ends at them, and the one resuming after them reads the next layer's (ModernBERT
    /// over one device at full offload without KV offload: its sliding-window mask is copied
    /// after layer 0's heads, so the host's copy of those heads does not fit where the mask
    /// was; the host's compute was 23% under); or, with the cache on the host, only the first
    /// layer reading it on a device: its K/V stores end the split, and the one resuming after
    /// them reads the next layers' ([`Builder::resume_kinds`] in `cached_attention`).
    pub(super) fn attention_kinds(&self, layers: &[(usize, usize)], buffer: usize) -> Kinds {
        let mut kinds = Kinds::default();
        for &(l, _) in layers.iter().take_while(|&&(_, b)| b == buffer) {
            if self.is_delta_net(l) && self.state_buffer(buffer) != buffer {
                break;
            }
            let layer = self.shape.layers[l];
            if layer.n_head_kv > 0 {
                let kind = &mut kinds[usize::from(layer.swa)];
                kind.rope |= !layer.no_rope;
                kind.no_rope |= layer.no_rope;
                kind.first.get_or_insert(l);
                if self.heads_merged_on_host()
                    || (self.r.kv_on_host && buffer != HOST && self.reads_cache(l))
                {
                    break;
                }
            }
        }
        kinds
    }

    /// Starts a split on `split.buffer`: the scheduler copies all the split's inputs at its
    /// start, in the order its nodes first read them: the activations its first node reads
    /// (`first`); the state row indices when its layers read their states there
    /// ([`Builder::state_read_buffers`]), before the attention inputs of the cache kinds its
    /// layers read (`split.kinds`, when it holds layers: the first attention layer's first),
    /// as gated delta-net layers read them first, or after them, as a parallel hybrid
    /// (Falcon-H1) reads its attention inputs first; the output ids when it runs the last
    /// layer; then the activations read later (`later`: the next Mamba layer's state rows).
    pub(super) fn enter(&mut self, split: Split, first: &[TensorId], later: &[TensorId]) {
        self.enter_reading(split, first, None, later);
    }

    /// [`Self::enter`] for a layer whose opening norm ran on the previous device: the split
    /// reads the layer's `residual` with its residual add, after the attention inputs the
    /// layer reads and before those only the next layers read and the last layer's output ids (Llama 4's 1:4 split at ngl 8 of 8 layers at 0c1e57098: `norm-3`, the scale,
    /// the full kind's indices and mask, `l_out-2`, then the positions, the chunked kind's
    /// indices and mask, the output ids); when that layer is the last, after the output ids,
    /// which its row selection reads first.
    pub(super) fn enter_with_residual(
        &mut self,
        split: Split,
        first: &[TensorId],
        residual: TensorId,
    ) {
        self.enter_reading(split, first, Some(residual), &[]);
    }

    /// [`Self::enter`], reading a layer's `residual` as [`Self::enter_with_residual`] says.
    fn enter_reading(
        &mut self,
        split: Split,
        first: &[TensorId],
        mut residual: Option<TensorId>,
        later: &[TensorId],
    ) {
        if split.buffer == self.buffer {
            return;
        }
        let buffer = split.buffer;
        self.buffer = buffer;
        let mut needed = first.to_vec();
        let rows = (split.kinds.is_some() && self.state_read_buffers.contains(&buffer))
            .then(|| self.state_copy_input());
        let attention_first = PARALLEL_HYBRIDS.contains(&self.shape.arch.as_str());
        if !attention_first {
            needed.extend(rows.iter().flatten());
        }
        if let Some(kinds) = split.kinds {
            // A T5 layer's bias reads its own view of the buckets: the split copies the first
            // layer's before the mask, the others' after it (the order its layers read them).
            let views = self.bucket_views_for(buffer);
            needed.extend(views.first());
            // What the split's first attention layer reads, then its residual (read by its
            // add), then what the later layers read; each input is copied once, where it is
            // first listed (SmolLM3's 1:4 split at ngl 8 of 8 layers at 0c1e57098, the second
            // device from layer 3, without RoPE: `norm-3`, the indices and the mask, `l_out-2`,
            // then `inp_pos` for layer 4).
            let last = self.shape.layers.len().saturating_sub(1);
            let first = (0..2)
                .filter_map(|kind| kinds[kind].first.map(|il| (il, kind)))
                .min();
            if let Some((il, kind)) = first {
                let layer = self.shape.layers[il];
                let mut own = Kinds::default();
                own[kind] = KindLayers {
                    rope: !layer.no_rope,
                    no_rope: layer.no_rope,
                    first: Some(il),
                };
                self.attention_inputs_for(own, buffer, &mut needed);
                if il != last {
                    needed.extend(residual.take());
                }
            }
            self.attention_inputs_for(kinds, buffer, &mut needed);
            needed.extend(views.iter().skip(1));
        }
        if attention_first {
            needed.extend(rows.iter().flatten());
        }
        if split.outputs && self.outputs_resume.is_none() {
            // The last layer's row selection reads the output ids: copied with the rest of
            // the split's inputs at its start; an encoder's pooling, in the same split,
            // reads its input after them.
            needed.extend(self.inputs.out_ids);
            if !self.shape.causal {
                needed.extend(self.inputs.pooling);
            }
        }
        needed.extend(residual);
        needed.extend(later);
        for src in needed {
            self.copy_to(src, buffer);
        }
    }

    /// Whether layer `il` reads its states by the row indices within the split its layers
    /// start, which then copies them ([`Builder::enter`]): a gated delta-net layer (its
    /// `build_rs` right after the opening norm) and a parallel hybrid's (Falcon-H1's Mamba-2
    /// head, after the attention). Mamba and RWKV layers make their own splits around their
    /// state reads.
    pub(super) fn reads_states_by_rows(&self, il: usize) -> bool {
        let layer = self.shape.layers[il];
        self.is_delta_net(il) || (layer.recurrent && layer.n_head_kv > 0)
    }

    /// Enters the split of `split.buffer` for the layer reading `cur` (or the output layer),
    /// where ggml_backend_sched (0c1e57098, `ggml_backend_sched_split_graph`) puts the
    /// boundary: ops without weights take the backend of a neighbour. Leaving a device for
    /// another, "expand gpu down" keeps the layer's opening norm on the device before
    /// (`norm` makes that split when it runs: see [`Builder::opening`]); leaving the host,
    /// "expand gpu up" already moved the previous layer's closing residual add onto this
    /// device ([`Builder::closing`]). The output norm is never pinned
    /// ([`Builder::norms_pinned`]: the graph callback pins the norms of layers, `il != -1`):
    /// on an output device of its own it runs on the device before (Falcon-40B and
    /// Command-R over two devices at 0c1e57098, the cache on the host: the output device's
    /// split copies `norm`, not the residual).
    pub(super) fn enter_layer(&mut self, split: Split, cur: TensorId, opens_with_norm: bool) {
        if split.buffer == self.buffer {
            return;
        }
        let pinned = self.norms_pinned && split.kinds.is_some();
        if opens_with_norm && !pinned && self.buffer != HOST && split.buffer != HOST {
            self.opening = Some(split);
        } else {
            self.enter(split, &[cur], &[]);
        }
    }

    /// A layer's closing residual add of `first` and `second` (the layer's output and its
    /// residual, in the order the builder passes them to `ggml_add`), in the split the
    /// scheduler gives it: the next device's when this layer runs on the host (`closing`),
    /// which then copies both operands.
    pub(super) fn residual_add(&mut self, first: TensorId, second: TensorId) -> TensorId {
        self.residual_add_reusing(first, second, true)
    }

    /// [`Self::residual_add`], in place on `second` only unless `first_too` (or `first` is
    /// copied in from another buffer). A Mamba layer's
    /// state rows read before the add (see [`super::Builder::state_rows`]) are copied with
    /// the add's operands.
    pub(super) fn residual_add_reusing(
        &mut self,
        first: TensorId,
        second: TensorId,
        first_too: bool,
    ) -> TensorId {
        if let Some((split, _)) = self.closing.take() {
            let rows = self.state_rows.map(|(_, rows)| rows);
            self.enter(split, &[first, second], rows.as_slice());
        }
        // A copy from another buffer is a tensor of its own, which the add may take.
        if first_too || self.g.buffer(first) != self.buffer {
            return self.inplace(&[first, second], 2);
        }
        let srcs = [self.local(first), self.local(second)];
        let bytes = self.g.bytes(srcs[0]);
        self.g.inplace_on(bytes, &srcs, &srcs[1..], self.buffer)
    }

    /// Where a host layer's trailing ops without weights start before its residual add (the
    /// routed experts' weighting and sum): they move to the next device with the closing
    /// add, unless the next Mamba layer's state reads follow them on the host (states there),
    /// which copies `srcs` and the residual to come (see [`Builder::residual_add`]),
    /// then the next Mamba layer's state rows read before them. When the next hybrid Mamba
    /// layer reads its states there right after the experts' sum
    /// ([`Builder::next_state_reads`]), the split copies the state row indices between
    /// `srcs` and the residual, the order its nodes read them (Jamba's 3:1 split at 0c1e57098:
    /// `ffn_moe_down-0`, `ffn_moe_weights-0`, both `rs_s_copy` views, then the residual).
    pub(super) fn close_early(&mut self, srcs: &[TensorId]) {
        if self
            .next_state_reads
            .is_some_and(|(_, b)| self.state_buffer(b) == HOST)
        {
            // The next layer's state reads run on the host right after these ops, which stay
            // there with them; the closing add alone moves, copying the residual, the sum and
            // the rows read (Jamba's 3:1 split at ngl 6 at 0c1e57098 with `--no-kv-offload`:
            // `node_56`, `ffn_moe_out-0`, then the conv-state rows).
            return;
        }
        if let Some((split, residual)) = self.closing.take() {
            let mut first = srcs.to_vec();
            let reads_here = self
                .next_state_reads
                .is_some_and(|(_, b)| self.state_buffer(b) == split.buffer);
            if reads_here {
                first.extend(self.state_copy_input());
            }
            first.extend(residual);
            let rows = self.state_rows.map(|(_, rows)| rows);
            self.enter(split, &first, rows.as_slice());
        }
    }

    /// Names the residual the current layer's closing add will read.
    pub(super) fn expect_residual(&mut self, residual: TensorId) {
        if let Some((_, pending)) = self.closing.as_mut() {
            *pending = Some(residual);
        }
    }

    /// With the cache on the host, the last layer's device split ends at the last layer whose
    /// attention reads the cache ([`Builder::cached_attention`]): its K/V stores run on the
    /// host, and the device split that follows them, which selects the output rows, copies the
    /// output ids at its start. `None` when the last layers run on the host, none of them
    /// reads the cache on their device, or a hybrid's Mamba layer stores its states on the
    /// host after the last that does.
    pub(super) fn outputs_resume(&self, layers: &[(usize, usize)]) -> Option<usize> {
        let &(_, buffer) = layers.last()?;
        if !self.r.kv_on_host || buffer == HOST {
            return None;
        }
        // A Mamba layer replayed with its splits ([`Builder::mamba_layer`]) after it stores its
        // states on the host too, and copies the output ids itself when it is the last.
        layers
            .iter()
            .rev()
            .take_while(|&&(_, b)| b == buffer)
            .map(|&(l, _)| l)
            .find(|&l| self.reads_cache(l) || self.is_mamba(l) || self.is_hybrid_mamba(l))
            .filter(|&l| self.reads_cache(l))
    }

    /// The attention inputs a split on `buffer` running the attention layers `kinds` copies:
    /// none when its layers have no attention.
    pub(super) fn attention_inputs_for(
        &self,
        kinds: Kinds,
        buffer: usize,
        needed: &mut Vec<TensorId>,
    ) {
        // Only attention layers read the positions (RoPE) and the attention scale. In a model
        // with layers without RoPE (Llama 4's full-attention layers, Cohere2's global ones,
        // SmolLM3's every 4th), the split's layers of a kind read the positions only if some
        // of them rotate, the scale only if some do not, each copied before the kind's inputs,
        // the kinds in the order the split's layers first read them. SmolLM3's one-device
        // split at ngl 2 (layer 3, without RoPE, and the LM head) copies no `inp_pos` at
        // 0c1e57098.
        let per_kind = self
            .shape
            .layers
            .iter()
            .any(|l| l.n_head_kv > 0 && l.no_rope);
        if kinds.iter().any(|k| k.any()) && !per_kind {
            needed.extend(self.inputs.pos.filter(|_| self.rotates()));
            needed.extend(self.inputs.attn_scale);
        }
        // With the cache on the host only the host reads the row indices (the stores run
        // there), and a device reads the mask only from the split its flash attention starts,
        // so the copy is made there (`cached_attention`).
        let cache_here = !self.r.kv_on_host || buffer == HOST;
        // Each kind's inputs where its first layer reads them: Llama 4's and Cohere2's
        // periods open with sliding (chunked) layers, and a split starting at a full-attention
        // layer reads that kind's first (Llama 4's 1:3 split at ngl 9 of 8 layers at
        // 0c1e57098: the scale, the full kind's indices and mask, then the positions and the
        // chunked kind's).
        let order: [usize; 2] = match kinds.map(|k| k.first) {
            [Some(full), Some(sliding)] if per_kind && sliding < full => [1, 0],
            _ => [0, 1],
        };
        for kind in order.into_iter().filter(|&kind| kinds[kind].any()) {
            let Some(a) = self.inputs.attn[kind] else {
                continue;
            };
            if per_kind {
                if kinds[kind].rope {
                    needed.extend(self.inputs.pos);
                }
                // With the cache on the host too: Llama 4's 3:1 split at 0c1e57098 copies
                // `inp_attn_scale` in the split resuming before layer 3, its 1:3 split at ngl 9
                // of 8 layers in the one starting at layer 3, before its Q.
                if kinds[kind].no_rope {
                    needed.extend(self.inputs.attn_scale);
                }
            }
            if let Some((k_idxs, v_idxs)) = a.idxs.filter(|_| cache_here) {
                needed.push(k_idxs);
                needed.extend(v_idxs);
            }
            if cache_here || a.idxs.is_none() {
                needed.push(a.mask);
            }
        }
    }

    pub(super) fn copy_to(&mut self, src: TensorId, buffer: usize) -> TensorId {
        if self.g.buffer(src) == buffer {
            return src;
        }
        if let Some(&copy) = self.copies.get(&(src, buffer)) {
            return copy;
        }
        let bytes = self.g.bytes(src);
        let copy = if self.r.n_copies > 1 {
            // ggml_backend_sched adds the dependency with any number of copies.
            self.g.dependency(src, buffer);
            let mut last = 0;
            for _ in 0..self.r.n_copies {
                last = self.g.pinned_input(bytes, buffer);
            }
            last
        } else {
            // The source is kept alive by a dependency until the copy is made.
            self.g.dependency(src, buffer);
            self.g.op(bytes, &[], buffer)
        };
        self.copies.insert((src, buffer), copy);
        copy
    }

    pub(super) fn local(&mut self, t: TensorId) -> TensorId {
        let buffer = self.buffer;
        self.copy_to(t, buffer)
    }
}
