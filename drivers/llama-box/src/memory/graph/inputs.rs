//! The graph inputs llama.cpp creates before the layers (`build_inp_*`): positions, output
//! ids, the KV-cache row indices and attention masks per cache kind.

use super::{AttnInputs, Builder, F16, F32, KQ_MASK_PAD, Rotation};
use crate::memory::alloc::TensorId;
use crate::memory::shape::LayerShape;

impl Builder<'_> {
    pub(super) fn pos(&mut self) -> TensorId {
        if let Some(p) = self.inputs.pos {
            return p;
        }
        let p = self.input(self.r.n_tokens * 4);
        self.inputs.pos = Some(p);
        p
    }

    /// `build_rs_inp`: the state's row indices (`rs_s_copy`, one i32 per state row: the
    /// worst-case ubatch holds every sequence, so no extra rows) and its two views, `[main,
    /// extra]`, which a split reading states by them copies in that order.
    pub(super) fn state_copy_input(&mut self) -> [TensorId; 2] {
        if let Some(views) = self.inputs.state_copy {
            return views;
        }
        let rows = self.r.n_seqs.max(1) * 4;
        let copy = self.input(rows);
        let views = [self.g.view_sized(copy, rows), self.g.view_sized(copy, 0)];
        self.inputs.state_copy = Some(views);
        views
    }

    pub(super) fn out_ids(&mut self) -> TensorId {
        if let Some(o) = self.inputs.out_ids {
            return o;
        }
        let o = self.input(self.r.n_tokens * 4);
        self.inputs.out_ids = Some(o);
        o
    }

    /// The KV-cache attention inputs of a cache kind (`build_attn_inp_kv`).
    pub(super) fn attn_inputs(&mut self, swa: bool) -> AttnInputs {
        let kind = usize::from(swa);
        if let Some(existing) = self.inputs.attn[kind] {
            return existing;
        }
        let r = self.r;
        let n_kv = if swa { r.n_kv_swa } else { r.n_kv };
        let per_stream = (r.n_tokens / r.n_stream.max(1)).max(1);
        let mask =
            n_kv * per_stream.div_ceil(KQ_MASK_PAD) * KQ_MASK_PAD * r.n_stream * self.mask_type();
        let k_idxs = self.input(r.n_tokens * 8);
        // A transposed V cache is written element by element: one index per value. MLA
        // caches only K (`build_attn_inp_k`).
        let v_rows = if r.v_trans { self.max_v_gqa() } else { 1 };
        let v_idxs = match self.shape.mla {
            Some(_) => None,
            None => Some(self.input(r.n_tokens * v_rows * 8)),
        };
        let mask = self.input(mask);
        let rot = self.rotation_inputs(swa);
        let inputs = AttnInputs {
            mask,
            idxs: Some((k_idxs, v_idxs)),
            rot,
        };
        self.inputs.attn[kind] = Some(inputs);
        inputs
    }

    /// The encoder's mask inputs (`build_attn_inp_no_cache`): one over every token pair, and
    /// a second of the same size for the sliding-window layers when the model has any
    /// (ModernBERT's local layers).
    pub(super) fn encoder_mask(&mut self) {
        let t = self.r.n_tokens;
        let bytes = t * t.div_ceil(KQ_MASK_PAD) * KQ_MASK_PAD * self.mask_type();
        let sliding = self.shape.layers.iter().any(|l| l.swa);
        for kind in 0..=usize::from(sliding) {
            let mask = self.input(bytes);
            self.inputs.attn[kind] = Some(AttnInputs {
                mask,
                idxs: None,
                rot: Rotation::default(),
            });
        }
    }

    /// The rotation matrices of a quantized cache (`build_input_k_rot` / `build_input_v_rot`):
    /// K's is the largest power of two (from 64) dividing the head size, V's always 64. Latent
    /// attention's K-only cache (`build_attn_inp_k_impl` at 0c1e57098) builds neither.
    /// `llama_kv_cache`'s constructor (`src/llama-kv-cache.cpp` at 0c1e57098)
    /// turns each on only when the layers of the cache (`swa` or full) with a cache of their
    /// own share one head size (`n_embd_head_k_all`), which sizes K's matrix, and layer 0's
    /// (`n_embd_head_k()`) is a multiple of 64.
    fn rotation_inputs(&mut self, swa: bool) -> Rotation {
        let (type_k, type_v) = self.r.cache_types;
        let layers = &self.shape.layers;
        let cached = || {
            layers
                .iter()
                .filter(move |l| l.swa == swa && l.n_head_kv > 0 && !l.shares_kv)
        };
        // `n_embd_head_k_all`: the head size every such layer shares, 0 if they differ.
        let common = |head: fn(&LayerShape) -> u64| {
            let first = cached().next().map_or(0, head);
            if cached().all(|l| head(l) == first) {
                first
            } else {
                0
            }
        };
        let (hk, hv) = (common(|l| l.head_k), common(|l| l.head_v));
        let layer0 = layers.first().copied().unwrap_or_default();
        let latent = self.shape.mla.is_some();
        let k = (!latent && type_k.is_quantized() && hk > 0 && layer0.head_k.is_multiple_of(64))
            .then(|| {
                let mut n = 64;
                while hk.is_multiple_of(n * 2) {
                    n *= 2;
                }
                self.input(n * n * F32)
            });
        let v = (!latent && type_v.is_quantized() && hv > 0 && layer0.head_v.is_multiple_of(64))
            .then(|| self.input(64 * 64 * F32));
        Rotation { k, v }
    }

    /// Bytes per mask element: flash attention takes an f16 mask, built as such.
    pub(super) fn mask_type(&self) -> u64 {
        if self.r.flash_attn { F16 } else { F32 }
    }

    /// The mask of a cache kind (0 full, 1 sliding).
    pub(super) fn mask_for(&self, kind: usize) -> TensorId {
        self.inputs.attn[kind].map_or(0, |a| a.mask)
    }

    /// `llama_hparams::n_embd_v_gqa_max`: the widest layer's V row (KV heads times its own
    /// V head size).
    pub(super) fn max_v_gqa(&self) -> u64 {
        self.shape
            .layers
            .iter()
            .map(|l| l.n_head_kv * l.head_v)
            .max()
            .unwrap_or(0)
    }
}
