//! Attention through the KV cache (`build_attn` / `build_attn_mha` in `src/llama-graph.cpp`):
//! K/V stores, flash attention or KQ + softmax + KQV, and the host/device split llama.cpp's
//! scheduler makes when the cache stays in host memory.

use super::{Builder, F16, F32, HOST, KvSource, Split};
use crate::memory::alloc::TensorId;
use crate::memory::shape::LayerShape;

impl Builder<'_> {
    /// `build_attn` with a KV cache: store K/V, attend over the cache.
    ///
    /// With the cache in host memory (`--no-kv-offload`) and the layer on a device,
    /// `ggml_backend_sched_split_graph` (0c1e57098) splits the layer: the stores are views of
    /// a host buffer, so they run on the CPU (pass 1, `1.dst`) in a split of their own, whose
    /// inputs (the new K and V rows) are copied into the host buffer first. Flash attention is
    /// then assigned upwards from the output projection (pass 2, "expand gpu up"), so it stays
    /// on the device, which copies the cache views it reads into its own buffer. Without flash
    /// attention `build_attn_mha` pins the attention output to the CPU, so KQ, softmax and KQV
    /// join the host split (pass 2, "expand rest down"), Q is copied there too, and the
    /// device copies the result back for the output projection.
    pub(super) fn cached_attention(
        &mut self,
        il: usize,
        q: TensorId,
        k: TensorId,
        v: TensorId,
    ) -> TensorId {
        let layer = self.shape.layers[il];
        let inputs = self.attn_inputs(layer.swa);
        let device = self.buffer;
        if let Some(next) = self.attention_pulled_to() {
            return self.attention_on(next, il, q, k, v);
        }
        let cache_on_host = self.r.kv_on_host && device != HOST;
        // A Falcon-H1 layer's state reads follow its attention: with the cache (and the
        // states) on the host, the attention stays in the host split (see
        // `parallel_hybrid_layer`), whatever the kernel.
        // So does the attention of a layer after which the next Mamba layer's state reads
        // join the graph (Nemotron-H with `--no-kv-offload`, dumped with
        // `GGML_SCHED_DEBUG=2`): they run on the host and the attention follows them there.
        let reads_after = self.reads_after.take();
        let host_reads = reads_after.filter(|_| self.r.kv_on_host);
        let stays_on_host = cache_on_host && (layer.recurrent || host_reads.is_some());
        let (mut k, mut v, mut q) = (self.g.view(k), self.g.view(v), q);
        if cache_on_host {
            // The host split's inputs are all copied at its start, in the order nodes use them.
            self.buffer = HOST;
            k = self.local(k);
            v = self.local(v);
            if !self.r.flash_attn || stays_on_host {
                q = self.local(q);
            }
        }
        self.store_kv(inputs.idxs, k, v);
        let n_kv = self.attended_cells(layer.swa);
        let mask = self.mask_for(usize::from(layer.swa));
        let source = if cache_on_host && self.r.flash_attn && !stays_on_host {
            self.buffer = device;
            // The split's inputs in the order flash attention reads them: K, V, the mask.
            let copies = self.cache_copies(n_kv, &layer);
            self.local(mask);
            self.resume_outputs(il);
            self.resume_attention_inputs(device);
            copies
        } else {
            KvSource::Cache
        };
        let mut out = self.attention(q, source, mask, n_kv, &layer);
        let mut rows = None;
        if let Some((next, buffer)) = host_reads {
            // The conv-state rows, read in the host split; the device running `next` copies
            // them at the start of the split that reads them: the one resuming here when
            // `next` runs on this device (graph splits dumped from 0c1e57098).
            let read = self.state_rows(HOST, self.shape.recurrent.r, &[]);
            self.state_rows = Some((next, read));
            rows = (buffer == device).then_some(read);
        }
        if stays_on_host && layer.recurrent {
            return out;
        }
        if cache_on_host && (!self.r.flash_attn || stays_on_host) {
            out = self.resume_after_host_attention(device, il, out, rows);
        }
        self.buffer = device;
        if let Some((next, buffer)) = reads_after.filter(|_| !self.r.kv_on_host) {
            // The next Mamba layer's conv-state rows, read on its device in a split of their
            // own before this layer's tail, which comes back here (graph splits dumped from
            // 0c1e57098: Nemotron-H over two devices).
            let read = self.state_rows(buffer, self.shape.recurrent.r, &[]);
            self.state_rows = Some((next, read));
            self.switch(device, &[]);
        }
        out
    }

    /// `cpy_k` / `cpy_v`: the step's K and V rows stored into the cache at the cells its
    /// index inputs name (none for a cache-less layer; MLA caches no V), in the current
    /// buffer, which first copies the index inputs it reads. A step of its own because the
    /// stores are the nodes llama.cpp's scheduler pins to the cache's buffer: where they run
    /// decides the host/device split around them.
    fn store_kv(&mut self, idxs: Option<(TensorId, Option<TensorId>)>, k: TensorId, v: TensorId) {
        let Some((k_idxs, v_idxs)) = idxs else {
            return;
        };
        let k_idxs = self.local(k_idxs);
        self.g.store(&[k, k_idxs], self.buffer);
        if let Some(v_idxs) = v_idxs {
            let v_idxs = self.local(v_idxs);
            self.g.store(&[v, v_idxs], self.buffer);
        }
    }

    /// The cache cells a layer attends over: the sliding-window cache's for a SWA layer, the
    /// full cache's otherwise.
    fn attended_cells(&self, swa: bool) -> u64 {
        if swa { self.r.n_kv_swa } else { self.r.n_kv }
    }

    /// The device split that resumes after attention computed in the host split: it copies
    /// the attention output (and the conv-state rows read there, when the next Mamba layer
    /// runs on this device) at its start, then the layer's resumed outputs. Returns the
    /// device's copy of the output.
    fn resume_after_host_attention(
        &mut self,
        device: usize,
        il: usize,
        out: TensorId,
        rows: Option<TensorId>,
    ) -> TensorId {
        self.buffer = device;
        let out = self.local(out);
        if let Some(rows) = rows {
            self.local(rows);
        }
        self.resume_outputs(il);
        out
    }

    /// The device a host layer's attention runs on: the next recurrent layer's, when that
    /// layer's state reads (on its device) follow `kqv_out` in the graph
    /// ([`Builder::recurrent_reads_after`]).
    ///
    /// `ggml_backend_sched_split_graph` (0c1e57098) gives the attention ops no backend in
    /// pass 1 (no weights; the cache views are not weights), then "expand gpu up" assigns
    /// them the backend of the next assigned node below, the state reads' in-place scale of
    /// a cache on that device, up to the K/V stores on the host (graph order and assignments
    /// dumped with `GGML_SCHED_DEBUG=2` on Nemotron-H). With the cache in host memory
    /// (`--no-kv-offload`) the recurrent states are there too: their reads run on the host
    /// and nothing moves.
    fn attention_pulled_to(&self) -> Option<usize> {
        let next = self.next_recurrent?;
        (self.buffer == HOST && next != HOST && !self.r.kv_on_host).then_some(next)
    }

    /// `build_attn` of a host layer whose attention runs on `device`: the K/V stores in the
    /// host's cache, then a split on `device` that copies the cache views, Q and the mask (in
    /// the order its first nodes read them) and attends; the output projection copies the
    /// result back to the host.
    fn attention_on(
        &mut self,
        device: usize,
        il: usize,
        q: TensorId,
        k: TensorId,
        v: TensorId,
    ) -> TensorId {
        let layer = self.shape.layers[il];
        let inputs = self.attn_inputs(layer.swa);
        let (k, v) = (self.g.view(k), self.g.view(v));
        if let Some((k_idxs, v_idxs)) = inputs.idxs {
            self.g.store(&[k, k_idxs], HOST);
            if let Some(v_idxs) = v_idxs {
                self.g.store(&[v, v_idxs], HOST);
            }
        }
        let n_kv = self.attended_cells(layer.swa);
        let mask = self.mask_for(usize::from(layer.swa));
        self.buffer = device;
        // Flash attention reads Q, K, V and the mask; KQ reads K and Q, the softmax the mask,
        // KQV V.
        let (q, source) = if self.r.flash_attn {
            let q = self.local(q);
            let k = self.cache_copy(n_kv, &layer, false);
            let v = self.cache_copy(n_kv, &layer, true);
            self.local(mask);
            (q, KvSource::CacheCopies(k, v))
        } else {
            let k = self.cache_copy(n_kv, &layer, false);
            let q = self.local(q);
            self.local(mask);
            let v = self.cache_copy(n_kv, &layer, true);
            (q, KvSource::CacheCopies(k, v))
        };
        let out = self.attention(q, source, mask, n_kv, &layer);
        self.buffer = HOST;
        out
    }

    /// The output ids, copied with the other inputs of the device split resuming after layer
    /// `il`'s host split when that split selects the output rows ([`Builder::outputs_resume`]),
    /// then the residual the layer's opening norm left to this split
    /// ([`Builder::deferred_residual`]).
    pub(super) fn resume_outputs(&mut self, il: usize) {
        if self.outputs_resume == Some(il) {
            let ids = self.out_ids();
            self.local(ids);
        }
        if let Some(residual) = self.deferred_residual.take() {
            self.local(residual);
        }
        for read in std::mem::take(&mut self.resume_reads) {
            self.local(read);
        }
    }

    /// The attention inputs the device split resuming after a layer's stores on the host
    /// copies for the layers it runs up to the next stores ([`Builder::resume_kinds`]), after
    /// what the layer itself reads: the positions when the next of them rotates (Llama 4's
    /// 1:3 split at ngl 9 of 8 layers at 0c1e57098, flash attention, `--no-kv-offload`: the
    /// split after layer 3's stores copies the cache views, the mask, then `inp_pos` for
    /// layer 4).
    fn resume_attention_inputs(&mut self, device: usize) {
        let mut reads = Vec::new();
        self.attention_inputs_for(self.resume_kinds, device, &mut reads);
        for read in reads {
            self.local(read);
        }
    }

    /// Whether layer `il` reads and writes the KV cache, through [`Builder::cached_attention`]
    /// or latent attention's own path (`mla_attention`), which split the same way with the
    /// cache on the host.
    pub(super) fn reads_cache(&self, il: usize) -> bool {
        let layer = self.shape.layers[il];
        self.shape.causal && !self.shape.t5_encoder && layer.n_head_kv > 0
    }

    /// Copies, in the current buffer, of one layer's K and V cache views (`get_k`/`get_v`:
    /// `n_kv` cells of every stream) held in another backend's buffer.
    pub(super) fn cache_copies(&mut self, n_kv: u64, layer: &LayerShape) -> KvSource {
        let k = self.cache_copy(n_kv, layer, false);
        let v = self.cache_copy(n_kv, layer, true);
        KvSource::CacheCopies(k, v)
    }

    /// The copy of one layer's K (or V) cache view in the current buffer.
    fn cache_copy(&mut self, n_kv: u64, layer: &LayerShape, v: bool) -> TensorId {
        let bytes = self.cache_view_bytes(n_kv, layer, v);
        self.g.op(bytes, &[], self.buffer)
    }

    /// Bytes of one layer's K (or V) cache view: `n_kv` cells of every stream, each the
    /// layer's KV heads of its own head size.
    pub(super) fn cache_view_bytes(&self, n_kv: u64, layer: &LayerShape, v: bool) -> u64 {
        let (type_k, type_v) = self.r.cache_types;
        let cells = n_kv * self.r.n_stream.max(1);
        let n_head_kv = layer.n_head_kv.max(1);
        match v {
            false => type_k.row_bytes(n_head_kv * layer.head_k) * cells,
            true => type_v.row_bytes(n_head_kv * layer.head_v) * cells,
        }
    }

    /// `build_attn_mha`: flash attention, or KQ + softmax + KQV of `layer`'s heads (at least
    /// one of each) and head sizes, reading K and V from `source`.
    pub(super) fn attention(
        &mut self,
        q: TensorId,
        source: KvSource,
        mask: TensorId,
        n_kv: u64,
        layer: &LayerShape,
    ) -> TensorId {
        let t = self.r.n_tokens;
        let (n_head, n_head_kv) = (layer.n_head.max(1), layer.n_head_kv.max(1));
        let (hk, hv) = (layer.head_k, layer.head_v);
        let q = self.g.view(q);
        if self.r.flash_attn {
            let mut srcs = vec![q, mask];
            match source {
                KvSource::Cache => {}
                KvSource::CacheCopies(k, v) => srcs.extend([k, v]),
                KvSource::Uncached(k, v) => {
                    // K and V of an encoder are f32: cast to f16 for the kernel.
                    let kc = self.op(n_head_kv * hk * t * F16, &[k]);
                    let vc = self.op(n_head_kv * hv * t * F16, &[v]);
                    srcs.extend([kc, vc]);
                }
            }
            let out = self.op(hv * n_head * t * F32, &srcs);
            return self.g.view(out);
        }
        let mut kq_srcs = vec![q];
        let mut kqv_srcs = Vec::new();
        match source {
            KvSource::Cache => {}
            KvSource::CacheCopies(k, v) => {
                kq_srcs.push(k);
                kqv_srcs.push(v);
            }
            KvSource::Uncached(k, v) => {
                // Uncached V is made contiguous after the transpose. It is KQV's first source,
                // so the graph computes it before KQ, which nothing else expanded earlier.
                let vt = self.g.view(v);
                kqv_srcs.push(self.op(n_head_kv * hv * t * F32, &[vt]));
                kq_srcs.push(k);
            }
        }
        let kq = self.op(n_kv * t * n_head * F32, &kq_srcs);
        let kq = self.inplace(&[kq, mask], 1);
        kqv_srcs.push(kq);
        let kqv = self.op(hv * t * n_head * F32, &kqv_srcs);
        self.merge_heads(kqv)
    }

    /// `build_attn_mha`'s merged heads: KQV permuted back and made contiguous
    /// (`ggml_cont_2d`). Without KV offload and without flash attention llama.cpp pins them to
    /// the CPU (`ggml_backend_sched_set_tensor_backend`, 0c1e57098); an encoder's layer on a
    /// device, which reads no cache, then runs only them on the host: the host's split copies
    /// the permuted KQV, and the device copies the merged heads back for the output projection
    /// ([`Builder::resume_after_heads`]). A decoder's attention is already on the host there
    /// ([`Builder::cached_attention`]).
    pub(super) fn merge_heads(&mut self, kqv: TensorId) -> TensorId {
        let permuted = self.g.view(kqv);
        let bytes = self.g.bytes(kqv);
        // Without KV offload and flash attention llama.cpp pins a decoder's merged heads to
        // the CPU as well: a layer attending on a device over copies of host cache views
        // (Gemma 3n's cache-sharing layers) runs them on the host.
        let pinned = self.heads_merged_on_host() || (self.r.kv_on_host && !self.r.flash_attn);
        if pinned && self.buffer != HOST {
            let host = Split {
                buffer: HOST,
                kinds: None,
                outputs: false,
            };
            self.enter(host, &[permuted], &[]);
        }
        self.op(bytes, &[permuted])
    }

    /// Whether an encoder's merged attention heads run on the host ([`Builder::merge_heads`]):
    /// without KV offload, for the T5 encoder (never flash attention: its KQ bias) and the
    /// BERT-style encoders without flash attention.
    pub(super) fn heads_merged_on_host(&self) -> bool {
        let encoder = self.shape.t5_encoder || !self.shape.causal;
        self.r.kv_on_host && encoder && (self.shape.t5_encoder || !self.r.flash_attn)
    }

    /// Back on the encoder layer's device after its merged heads ran on the host: the split
    /// copies them, the next layer's bucket view (T5) and attention inputs
    /// ([`Builder::resume_kinds`]), and, in the last layer, the output ids and the pooling's
    /// input.
    pub(super) fn resume_after_heads(&mut self, device: usize, heads: TensorId, last: bool) {
        if self.buffer != device {
            let resume = Split {
                buffer: device,
                kinds: Some(self.resume_kinds),
                outputs: last,
            };
            self.enter(resume, &[heads], &[]);
        }
    }
}
