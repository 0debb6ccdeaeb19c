//! Gemma 3n (`src/models/gemma3n.cpp` at 0c1e57098): the residual stream is a stack of
//! `n_altup` copies of the hidden state (AltUp), predicted and corrected around every layer,
//! each layer adds LAuReL's low-rank branch beside its attention and a per-layer input (a
//! slice of one tensor computed before the first layer), its first layers sparsify the FFN
//! gate (`gaussian_topk`), and its last layers attend through an earlier layer's cache.
//!
//! Nodes join the graph in the order `ggml_build_forward_expand` meets them (dumped with
//! `GGML_SCHED_DEBUG=2`); the scheduler's assignment of the ops without weights follows
//! `ggml_backend_sched_split_graph`: they take the backend of the op before them ("expand gpu
//! down", the host excluded), after the host that of the op after them ("expand gpu up"), and
//! llama.cpp pins a layer's norms to its device at full offload.

use super::{Builder, F32, HOST, KvSource, Placement, Split};
use crate::memory::alloc::TensorId;
use crate::memory::shape::ModelShape;

/// Gemma 3n's layers that sparsify their FFN gate (`n_layer_sparsity` in `src/models/models.h`
/// at 0c1e57098, a constant of the builder).
const SPARSE_LAYERS: usize = 10;

/// The AltUp widths of a Gemma 3n model, from its tensors.
#[derive(Clone, Copy)]
struct AltUp {
    /// Stacked copies of the hidden state (`altup.num_inputs`: `altup_router`'s rows).
    n: u64,
    /// Width of one layer's per-layer input (`embedding_length_per_layer_input`).
    per_layer: u64,
}

/// Whether every layer of a run on one buffer must be replayed, not the first few: the split
/// that starts (or resumes) an AltUp model's run on a device copies the per-layer input
/// slices, and the cache views of the cache-sharing layers, of every layer up to where it ends
/// at its start, so the inputs it holds, and where the later tensors land, grow with the run's
/// length.
pub(crate) fn replays_whole_runs(shape: &ModelShape) -> bool {
    ALTUP.contains(&shape.arch.as_str())
}

impl Builder<'_> {
    /// Whether the architecture is built by [`Builder::build_altup`].
    pub(super) fn altup(&self) -> bool {
        replays_whole_runs(self.shape)
    }

    fn altup_widths(&self) -> AltUp {
        let n = self
            .dims(0, "altup_router.weight")
            .map_or(4, |(_, rows)| rows)
            .max(2);
        let per_layer = self.dims(0, "inp_gate.weight").map_or(1, |(_, rows)| rows);
        AltUp { n, per_layer }
    }

    /// Bytes of `rows` f32 values per token.
    fn per_token(&self, rows: u64) -> u64 {
        rows * self.r.n_tokens * F32
    }

    /// The whole graph of an AltUp model on `placement`.
    pub(super) fn build_altup(&mut self, placement: &Placement) {
        let widths = self.altup_widths();
        let e = self.e();
        let n_layer = self.shape.layers.len() as u64;
        let output = placement.output;
        let first = placement.layers.first().map_or(output, |&(_, b)| b);
        let (tokens, layer_tokens) = self.altup_graph_inputs(placement);
        // Token rows of the embedding tables (host weights).
        self.buffer = HOST;
        let embd = self.g.op(e, &[tokens], HOST);
        let all_layers = self.per_token(widths.per_layer * n_layer);
        let layer_rows = self.g.op(all_layers, &[layer_tokens], HOST);
        // The ops up to `altup_proj` (on the output layer's device) take its device ("expand gpu
        // up" from the host's token rows), in a split that goes on into the layers there.
        let splits = self.altup_splits(placement);
        let rows = self.g.view(layer_rows);
        let stacking = self.stacking_split(placement, &splits);
        self.enter(stacking, &[rows, embd], &[]);
        let selected = self.inplace(&[rows], 1);
        let scaled = self.inplace(&[embd], 1);
        let stacked = self.stack(scaled, widths);
        let mut cur = stacked;
        let mut per_layer = PerLayer {
            scaled,
            selected,
            first,
            bytes: all_layers,
            inputs: None,
            slices: vec![None; self.shape.layers.len()],
            cache_buffers: self.cache_buffers(placement),
            cache_views: vec![None; self.shape.layers.len()],
        };
        let full_offload = output != HOST && placement.layers.iter().all(|&(_, b)| b != HOST);
        for (k, &(il, device)) in placement.layers.iter().enumerate() {
            let later = self.split_reads(
                &placement.layers[k..],
                splits[k],
                false,
                &mut per_layer,
                widths,
            );
            if self.resumes_after_host_attention(il, device) {
                self.resume_reads = self.split_reads(
                    &placement.layers[k..],
                    splits[k],
                    true,
                    &mut per_layer,
                    widths,
                );
            }
            let predictions =
                self.predict(cur, splits[k].reads_listed(), &later, full_offload, widths);
            let active = self.g.view_sized(predictions, e);
            let cache = per_layer.cache_views[il];
            let corrected = self.altup_layer(il, active, predictions, widths, cache);
            let next = splits
                .get(k + 1)
                .map(|&split| (split, &placement.layers[k + 1..]));
            cur = self.add_per_layer_input(il, corrected, &mut per_layer, widths, next);
        }
        self.unstack(cur, output, widths);
    }

    /// The graph inputs Gemma 3n's builder creates before the token rows, in their order:
    /// the token ids, the unused embeddings input, the positions, the attention inputs of
    /// each cache kind a placed layer with a cache of its own uses, the per-layer token ids
    /// and the output ids. Returns the two token-id inputs.
    fn altup_graph_inputs(&mut self, placement: &Placement) -> (TensorId, TensorId) {
        let tokens = self.input(self.r.n_tokens * 4);
        self.input(self.e());
        self.pos();
        for swa in [false, true] {
            let used = placement
                .layers
                .iter()
                .any(|&(l, _)| !self.shape.layers[l].shares_kv && self.shape.layers[l].swa == swa);
            if used {
                self.attn_inputs(swa);
            }
        }
        let layer_tokens = self.input(self.r.n_tokens * 4);
        self.out_ids();
        (tokens, layer_tokens)
    }

    /// The split the ops up to `altup_proj` run in: the first layer's when that runs on the
    /// output layer's device (and runs to the output ids unless a layer splits at its stores
    /// on the host, when the split resuming after the last such layer reads them,
    /// [`Builder::split_reads`]), else one of the output layer's device of its own.
    fn stacking_split(&self, placement: &Placement, splits: &[Split]) -> Split {
        match splits.first() {
            Some(&split) if split.buffer == placement.output => Split {
                outputs: split.outputs
                    && !placement
                        .layers
                        .iter()
                        .any(|&(il, b)| self.resumes_after_host_attention(il, b)),
                ..split
            },
            _ => Split {
                buffer: placement.output,
                kinds: None,
                outputs: false,
            },
        }
    }

    /// What the split starting at `layers[0]` on `device` (`split`) reads from other buffers
    /// besides its first nodes' inputs, copied at its start all the same, in the order its
    /// nodes first read them (`ggml_backend_sched_split_graph` lists a split's inputs so): per
    /// layer, the attention inputs of its kind when it is the first of that kind, then where
    /// the layer ends, with layer 0 the scaled embeddings and the selected token rows its
    /// per-layer inputs are built from, after it the layer's slice of the per-layer inputs;
    /// last, the output ids when the split runs the output. A layer that attends through a
    /// cache in another buffer reads that cache's views instead of the attention inputs
    /// ([`Builder::remote_cache_views`]). With the cache on the host the split ends at the
    /// first layer with stores there (after its attention inputs); `resumed`: the reads of the
    /// split that resumes after `layers[0]`'s stores (graph splits dumped from 0c1e57098 with
    /// `--no-kv-offload`: the cache views and the mask, then the layer's slice and what the
    /// cache-sharing layers after it read).
    fn split_reads(
        &mut self,
        layers: &[(usize, usize)],
        split: Split,
        resumed: bool,
        per_layer: &mut PerLayer,
        widths: AltUp,
    ) -> Vec<TensorId> {
        let device = split.buffer;
        if self.buffer == device && !resumed {
            return Vec::new();
        }
        let slice = self.per_token(widths.per_layer);
        let mut reads = Vec::new();
        let mut seen = [false; 2];
        for (i, &(il, _)) in layers.iter().take_while(|&&(_, b)| b == device).enumerate() {
            let layer = self.shape.layers[il];
            let kind = usize::from(layer.swa);
            if resumed && i == 0 {
                // The split resumes after this layer's stores: its attention inputs are read.
            } else if let Some((k, v)) = self.remote_cache_views(il, device, per_layer) {
                // The positions (Q's RoPE), then the cache views and the mask in the order
                // the attention reads them.
                reads.extend(self.inputs.pos);
                let mask = (!seen[kind]).then(|| self.mask_for(kind));
                seen[kind] = true;
                match self.r.flash_attn {
                    true => reads.extend([k, v].into_iter().chain(mask)),
                    false => reads.extend([k].into_iter().chain(mask).chain([v])),
                }
                if self.resumes_after_host_attention(il, device) {
                    // Without flash attention the split ends at the merged heads, on the host.
                    return reads;
                }
            } else if self.resumes_after_host_attention(il, device) {
                // The split ends at this layer's stores on the host; the one resuming after
                // them reads the rest ([`Builder::resume_reads`]).
                let kinds = self.attention_kinds(&layers[i..=i], device);
                self.attention_inputs_for(kinds, device, &mut reads);
                return reads;
            } else if layer.n_head_kv > 0 && !seen[kind] {
                seen[kind] = true;
                let kinds = self.attention_kinds(&layers[i..=i], device);
                self.attention_inputs_for(kinds, device, &mut reads);
            }
            match per_layer.inputs {
                None => reads.extend([per_layer.scaled, per_layer.selected]),
                Some(inputs) => {
                    let view = self.g.view_sized(inputs, slice);
                    per_layer.slices[il] = Some(view);
                    reads.push(view);
                }
            }
        }
        if split.outputs && self.outputs_resume.is_none() {
            reads.extend(self.inputs.out_ids);
        }
        reads
    }

    /// Whether the split running layer `il` on `device` ends at its attention on the host and
    /// a new one resumes after it: with the cache on the host, a layer with a cache of its own
    /// on a device (its K/V stores; without flash attention its whole attention, which
    /// [`Builder::cached_attention`] runs there), and without flash attention a cache-sharing
    /// layer too, whose merged heads `build_attn_mha` pins to the CPU while its KQ, softmax and
    /// KQV stay on the device ([`Builder::merge_heads`]; graph splits of the 3:1 split dumped
    /// from 0c1e57098 with `--no-kv-offload`, flash attention off: each resuming split copies
    /// `kqv_out` and the layer's slice of the per-layer inputs, then what the next layer reads
    /// before its own attention).
    fn resumes_after_host_attention(&self, il: usize, device: usize) -> bool {
        let layer = self.shape.layers[il];
        self.r.kv_on_host
            && device != HOST
            && layer.n_head_kv > 0
            && (!layer.shares_kv || !self.r.flash_attn)
    }

    /// The buffer of each layer's cache (the host's without KV offload).
    fn cache_buffers(&self, placement: &Placement) -> Vec<usize> {
        let mut buffers = vec![HOST; self.shape.layers.len()];
        if !self.r.kv_on_host {
            for &(il, b) in &placement.layers {
                buffers[il] = b;
            }
        }
        buffers
    }

    /// For a layer on `device` that attends through an earlier layer's cache held in another
    /// buffer (another device's, or the host's without KV offload when flash attention keeps
    /// the attention on the device), views of that cache's K and V (in its buffer), which the
    /// split copies at its start (a run of such layers has no host op to split it); they are
    /// kept for the layer's attention. The layer reads the cache of the last layer of its
    /// kind that has one
    /// (`llama_kv_cache`'s layer reuse for Gemma 3n at 0c1e57098: `n_layer_kv_from_start`
    /// minus 1 for full attention, minus 2 for sliding window).
    fn remote_cache_views(
        &mut self,
        il: usize,
        device: usize,
        per_layer: &mut PerLayer,
    ) -> Option<(TensorId, TensorId)> {
        let layers = &self.shape.layers;
        let layer = layers[il];
        if !layer.shares_kv {
            return None;
        }
        let source = (0..il)
            .rev()
            .find(|&l| !layers[l].shares_kv && layers[l].swa == layer.swa)?;
        let buffer = per_layer.cache_buffers[source];
        if buffer == device {
            return None;
        }
        let n_kv = if layer.swa {
            self.r.n_kv_swa
        } else {
            self.r.n_kv
        };
        let k = self
            .g
            .external(self.cache_view_bytes(n_kv, &layer, false), buffer);
        let v = self
            .g
            .external(self.cache_view_bytes(n_kv, &layer, true), buffer);
        per_layer.cache_views[il] = Some((k, v));
        Some((k, v))
    }

    /// The split of each layer: its device, the cache kinds the layers from it on that device
    /// read, and whether that split also runs the output (which reads the output ids).
    fn altup_splits(&self, placement: &Placement) -> Vec<Split> {
        let layers = &placement.layers;
        (0..layers.len())
            .map(|k| {
                let buffer = layers[k].1;
                Split {
                    buffer,
                    kinds: Some(self.attention_kinds(&layers[k..], buffer)),
                    outputs: placement.output == buffer
                        && layers[k..].iter().all(|&(_, b)| b == buffer),
                }
            })
            .collect()
    }

    /// The AltUp stack before the first layer: the scaled embeddings, then `n - 1` copies
    /// projected by `altup_proj` and rescaled to their magnitude, concatenated.
    fn stack(&mut self, scaled: TensorId, widths: AltUp) -> TensorId {
        let e = self.e();
        let rest = e * (widths.n - 1);
        let repeated = self.op(rest, &[scaled]);
        let projected = self.op(rest, &[repeated]);
        let target = self.magnitude(scaled, 1);
        let matched = self.inplace(&[projected, target], 1);
        let magnitude = self.magnitude(projected, widths.n - 1);
        let divided = self.inplace(&[matched, magnitude], 1);
        self.op(e * widths.n, &[scaled, divided])
    }

    /// `calc_magnitude` of `x` (`rows` hidden states per token): square, row sums, root.
    fn magnitude(&mut self, x: TensorId, rows: u64) -> TensorId {
        let squared = self.inplace(&[x], 1);
        let sums = self.op(self.per_token(rows), &[squared]);
        self.inplace(&[sums], 1)
    }

    /// `altup_compute_router_modalities` on a normed hidden state: scale, router, tanh.
    fn modalities(&mut self, normed: TensorId, widths: AltUp) -> TensorId {
        let scaled = self.inplace(&[normed], 1);
        let routed = self.op(self.per_token(widths.n), &[scaled]);
        self.inplace(&[routed], 1)
    }

    /// `altup_predict` of a layer on `device` from the stack `cur`: the stack permuted into
    /// a contiguous tensor, the router on the active copy, the coefficients, their product with
    /// the permuted stack (made contiguous again) plus the stack.
    ///
    /// The permuted stack is the layer's first op and has no weights: it stays on the device
    /// of the layer before (after the host, it goes to this layer's device), as does the
    /// router's norm unless llama.cpp pins the layer's norms to its device.
    ///
    /// A new split copies, at its start, what its first nodes read from the device before
    /// (the permuted stack, the active copy or its norm, the stack), then what
    /// [`Builder::split_reads`] listed (`later`).
    fn predict(
        &mut self,
        cur: TensorId,
        split: Split,
        later: &[TensorId],
        full_offload: bool,
        widths: AltUp,
    ) -> TensorId {
        let e = self.e();
        let stack = e * widths.n;
        let transposed = self.g.view(cur);
        let active = self.g.view_sized(cur, e);
        if self.buffer == HOST {
            self.enter(split, &[transposed, active, cur], later);
        }
        let permuted = self.op(stack, &[transposed]);
        if full_offload {
            self.enter(split, &[active, permuted, cur], later);
        }
        let normed = self.inplace(&[active], 1);
        self.enter(split, &[normed, permuted, cur], later);
        let normed = self.inplace(&[normed], 1);
        let modalities = self.modalities(normed, widths);
        let coefs = self.op(self.per_token(widths.n * widths.n), &[modalities]);
        let coefs = self.g.view(coefs);
        let product = self.op(stack, &[permuted, coefs]);
        let product = self.g.view(product);
        let product = self.op(stack, &[product]);
        self.inplace(&[product, cur], 2)
    }

    /// The layer between prediction and correction: attention and LAuReL on the normed active
    /// copy, the FFN, and `altup_correct`, which returns the corrected stack.
    fn altup_layer(
        &mut self,
        il: usize,
        active: TensorId,
        predictions: TensorId,
        widths: AltUp,
        cache: Option<(TensorId, TensorId)>,
    ) -> TensorId {
        let e = self.e();
        let t = self.r.n_tokens;
        let normed = self.norm(active, false);
        let attn = self.altup_attention(il, normed, cache);
        let attn = self.norm(attn, false);
        let gated = self.inplace(&[attn, active], 2);
        let low = self.linear(normed, self.out_rows(il, "laurel_l.weight", 1), t, false);
        let laurel = self.linear(low, self.shape.n_embd, t, false);
        let laurel = self.norm(laurel, false);
        let laurel = self.inplace(&[laurel, normed], 2);
        let sum = self.inplace(&[gated, laurel], 2);
        let attn_laurel = self.inplace(&[sum], 1);
        let ffn_in = self.norm(attn_laurel, false);
        let ffn = self.sparse_ffn(il, ffn_in);
        let ffn = self.norm(ffn, false);
        let activated = self.inplace(&[ffn, attn_laurel], 2);
        // altup_correct: the innovation repeated over the stack, times the coefficients of
        // the router on the layer's output, plus the predictions.
        let predicted = self.g.view_sized(predictions, e);
        let innovation = self.inplace(&[activated, predicted], 2);
        let repeated = self.op(e * widths.n, &[innovation]);
        let normed = self.norm(activated, false);
        let modalities = self.modalities(normed, widths);
        let coefs = self.op(self.per_token(widths.n), &[modalities]);
        let coefs = self.inplace(&[coefs], 1);
        let coefs = self.g.view(coefs);
        let coefs = self.op(self.per_token(widths.n), &[coefs]);
        let corrected = self.inplace(&[repeated, coefs], 1);
        self.inplace(&[corrected, predictions], 2)
    }

    /// Attention of a Gemma 3n layer on its normed input: Q with its norm and RoPE, and unless
    /// the layer shares an earlier layer's cache, K (norm, RoPE) and V (RMS norm without
    /// weight), stored; then the cached attention and the output projection. `cache`: the
    /// views of a shared cache in another device's buffer ([`Builder::remote_cache_views`]).
    fn altup_attention(
        &mut self,
        il: usize,
        x: TensorId,
        cache: Option<(TensorId, TensorId)>,
    ) -> TensorId {
        let shape = self.shape;
        let layer = shape.layers[il];
        let t = self.r.n_tokens;
        let pos = self.pos();
        let heads = (layer.n_head.max(1), layer.n_head_kv.max(1));
        let q_rows = self.out_rows(il, "attn_q.weight", heads.0 * layer.head_k);
        let q = self.linear(x, q_rows, t, false);
        let q = self.qk_rope(il, q, q_rows * t * F32, "attn_q_norm.weight", Some(pos));
        let out = if layer.shares_kv {
            self.shared_attention(il, q, cache)
        } else {
            let k_rows = self.out_rows(il, "attn_k.weight", heads.1 * layer.head_k);
            let k = self.linear(x, k_rows, t, false);
            let k = self.qk_rope(il, k, k_rows * t * F32, "attn_k_norm.weight", Some(pos));
            let v_rows = self.out_rows(il, "attn_v.weight", heads.1 * layer.head_v);
            let v = self.linear(x, v_rows, t, false);
            // `build_qkv`'s V is a reshape (a view): its RMS norm takes memory of its own.
            let v = self.g.view(v);
            let v = self.inplace(&[v], 1);
            self.attend(il, q, k, v)
        };
        self.linear(out, shape.n_embd, t, false)
    }

    /// The attention of a layer without a cache of its own (`build_attn` without K and V):
    /// Q over the cache an earlier layer of the same kind wrote. With the cache in host memory
    /// the attention on a device reads copies of the cache views; without flash attention
    /// its merged heads run on the host (pinned there), and the split resuming after them
    /// copies them back. Given `cache` ([`Builder::remote_cache_views`]), it reads the split's
    /// copies of those views.
    fn shared_attention(
        &mut self,
        il: usize,
        q: TensorId,
        cache: Option<(TensorId, TensorId)>,
    ) -> TensorId {
        let layer = self.shape.layers[il];
        let device = self.buffer;
        let n_kv = if layer.swa {
            self.r.n_kv_swa
        } else {
            self.r.n_kv
        };
        let mask = self.mask_for(usize::from(layer.swa));
        let cache_on_host = self.r.kv_on_host && device != HOST;
        let source = match cache_on_host {
            _ if let Some((k, v)) = cache => KvSource::CacheCopies(self.local(k), self.local(v)),
            true => self.cache_copies(n_kv, &layer),
            false => KvSource::Cache,
        };
        let mut out = self.attention(q, source, mask, n_kv, &layer);
        if self.buffer != device {
            // The merged heads ran on the host ([`Builder::merge_heads`]): the device's split
            // resuming after them copies them, then what it reads next.
            self.buffer = device;
            out = self.local(out);
            self.resume_outputs(il);
        }
        self.buffer = device;
        out
    }

    /// Gemma 3n's FFN: up and gate, the gate sparsified on the first layers (mean and standard
    /// deviation per token, the values over a cutoff kept), GELU, the product, down.
    fn sparse_ffn(&mut self, il: usize, x: TensorId) -> TensorId {
        let t = self.r.n_tokens;
        let ff = self.shape.layers[il].n_ff.max(1);
        let up = self.linear(x, self.out_rows(il, "ffn_up.weight", ff), t, false);
        let mut gate = self.linear(x, self.out_rows(il, "ffn_gate.weight", ff), t, false);
        if il < SPARSE_LAYERS {
            let per_token = self.per_token(1);
            let mean = self.op(per_token, &[gate]);
            let centered = self.inplace(&[gate, mean], 1);
            let squared = self.inplace(&[centered], 1);
            let sums = self.op(per_token, &[squared]);
            let std = self.inplace(&[sums], 1);
            let std = self.inplace(&[std], 1);
            let std = self.inplace(&[std], 1);
            let cutoff = self.inplace(&[mean, std], 2);
            let kept = self.inplace(&[gate, cutoff], 1);
            gate = self.inplace(&[kept], 1);
        }
        let gate = self.inplace(&[gate], 1);
        let product = self.inplace(&[up, gate], 2);
        self.linear(product, self.shape.n_embd, t, false)
    }

    /// The per-layer inputs (`project_per_layer_inputs`), built where the first layer reads
    /// its slice, on the device of layer 0: the scaled embeddings projected by
    /// `per_layer_model_proj`, scaled, RMS-normed, added to the selected token rows, scaled,
    /// permuted into one contiguous tensor of every layer's input.
    fn per_layer_inputs(&mut self, per_layer: &mut PerLayer) -> TensorId {
        if let Some(inputs) = per_layer.inputs {
            return inputs;
        }
        let device = self.buffer;
        self.buffer = per_layer.first;
        let projected = self.op(per_layer.bytes, &[per_layer.scaled]);
        let projected = self.inplace(&[projected], 1);
        let projected = self.g.view(projected);
        let normed = self.norm(projected, false);
        let sum = self.inplace(&[normed, per_layer.selected], 2);
        let sum = self.inplace(&[sum], 1);
        let permuted = self.g.view(sum);
        let inputs = self.op(per_layer.bytes, &[permuted]);
        self.buffer = device;
        per_layer.inputs = Some(inputs);
        inputs
    }

    /// The end of a layer: the active copy of the corrected stack scaled, gated down to the
    /// per-layer width, times this layer's slice of the per-layer inputs, projected back and
    /// normed, added to the other copies, and the stack concatenated again. On the host
    /// before a device layer (`next`: its split and the layers from it on), that add and
    /// concatenation have no weights and run on the device ("expand gpu up"), whose split
    /// copies the other copies, the projection and the active copy at its start.
    fn add_per_layer_input(
        &mut self,
        il: usize,
        corrected: TensorId,
        per_layer: &mut PerLayer,
        widths: AltUp,
        next: Option<(Split, &[(usize, usize)])>,
    ) -> TensorId {
        let e = self.e();
        let t = self.r.n_tokens;
        let active = self.g.view_sized(corrected, e);
        let scaled = self.inplace(&[active], 1);
        let gate = self.linear(scaled, widths.per_layer, t, false);
        let gate = self.inplace(&[gate], 1);
        let inputs = self.per_layer_inputs(per_layer);
        let slice = self.per_token(widths.per_layer);
        let this_layer = match per_layer.slices[il] {
            Some(view) => view,
            None => self.g.view_sized(inputs, slice),
        };
        let gated = self.inplace(&[gate, this_layer], 2);
        let projected = self.linear(gated, self.shape.n_embd, t, false);
        let projected = self.norm(projected, false);
        let rest = self.g.view_sized(corrected, e * (widths.n - 1));
        let first = self.g.view_sized(corrected, e);
        if let Some((split, layers)) =
            next.filter(|&(split, _)| self.buffer == HOST && split.buffer != HOST)
        {
            let later = self.split_reads(layers, split, false, per_layer, widths);
            self.enter(split.reads_listed(), &[rest, projected, first], &later);
        }
        // In place only over a split's copy of the other copies (its own tensor): on one
        // buffer `rest` is a view, whose memory ggml-alloc never hands over.
        let rest = self.inplace(&[rest, projected], 1);
        self.op(e * widths.n, &[first, rest])
    }

    /// After the last layer, on the output device: the other copies projected by
    /// `altup_unembd_proj` and rescaled to the active copy's magnitude, summed with it and
    /// averaged, the output rows, the output norm and the LM head with its soft-capping.
    fn unstack(&mut self, cur: TensorId, output: usize, widths: AltUp) {
        let e = self.e();
        let rest_bytes = e * (widths.n - 1);
        let rest = self.g.view_sized(cur, rest_bytes);
        let active = self.g.view_sized(cur, e);
        let first = self.g.view_sized(cur, e);
        let split = Split {
            buffer: output,
            kinds: None,
            outputs: true,
        };
        self.enter(split, &[rest, active, first], &[]);
        let unembedded = self.op(rest_bytes, &[rest]);
        let target = self.magnitude(active, 1);
        let matched = self.inplace(&[unembedded, target], 1);
        let magnitude = self.magnitude(unembedded, widths.n - 1);
        let merged = self.inplace(&[matched, magnitude], 1);
        let mut sum = first;
        for _ in 1..widths.n {
            let copy = self.g.view_sized(merged, e);
            sum = self.inplace(&[sum, copy], 2);
        }
        let mean = self.inplace(&[sum], 1);
        let rows = self.output_rows(mean, true);
        let normed = self.norm(rows, false);
        self.g.mark_output(normed);
        let logits = self.op(self.shape.n_vocab * self.r.n_tokens * F32, &[normed]);
        let logits = self.inplace(&[logits], 1);
        let logits = self.inplace(&[logits], 1);
        let logits = self.inplace(&[logits], 1);
        self.g.mark_output(logits);
    }
}

impl Split {
    /// This split with its attention inputs and output ids left out: [`Builder::split_reads`]
    /// lists them, in the order the split reads them.
    fn reads_listed(self) -> Split {
        Split {
            kinds: None,
            outputs: false,
            ..self
        }
    }
}

/// What the per-layer inputs are built from, and once built, the tensor of every layer's.
struct PerLayer {
    /// The scaled token embeddings.
    scaled: TensorId,
    /// The scaled token rows of `per_layer_token_embd`.
    selected: TensorId,
    /// The buffer of layer 0, where `per_layer_model_proj` lives.
    first: usize,
    /// Bytes of every layer's inputs.
    bytes: u64,
    inputs: Option<TensorId>,
    /// The views of layers' slices a split copied at its start.
    slices: Vec<Option<TensorId>>,
    /// The buffer of each layer's cache.
    cache_buffers: Vec<usize>,
    /// The views of a shared cache in another device's buffer a split copied at its start,
    /// per layer reading it.
    cache_views: Vec<Option<(TensorId, TensorId)>>,
}

/// Architectures whose residual stream is an AltUp stack ([`Builder::build_altup`]).
const ALTUP: [&str; 1] = ["gemma3n"];
