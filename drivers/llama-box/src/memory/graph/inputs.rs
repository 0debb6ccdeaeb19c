//! The graph inputs llama.cpp creates before the layers (`build_inp_*`): positions, output
//! ids, the KV-cache row indices and attention masks per cache kind.

use super::{AttnInputs, Builder, F16, F32, KQ_MASK_PAD};
use crate::memory::alloc::TensorId;

impl Builder<'_> {
    pub(super) fn pos(&mut self) -> TensorId {
        if let Some(p) = self.inputs.pos {
            return p;
        }
        let p = self.input(self.r.n_tokens * 4);
        self.inputs.pos = Some(p);
        p
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
        let inputs = AttnInputs {
            mask,
            idxs: Some((k_idxs, v_idxs)),
        };
        self.inputs.attn[kind] = Some(inputs);
        inputs
    }

    /// The encoder's mask input (`build_attn_inp_no_cache`).
    pub(super) fn encoder_mask(&mut self) {
        let t = self.r.n_tokens;
        let mask = self.input(t * t.div_ceil(KQ_MASK_PAD) * KQ_MASK_PAD * self.mask_type());
        self.inputs.attn[0] = Some(AttnInputs { mask, idxs: None });
    }

    /// Bytes per mask element: flash attention takes an f16 mask, built as such.
    pub(super) fn mask_type(&self) -> u64 {
        if self.r.flash_attn { F16 } else { F32 }
    }

    /// The mask of a cache kind (0 full, 1 sliding).
    pub(super) fn mask_for(&self, kind: usize) -> TensorId {
        self.inputs.attn[kind].map_or(0, |a| a.mask)
    }

    pub(super) fn max_v_gqa(&self) -> u64 {
        let max_kv = self
            .shape
            .layers
            .iter()
            .map(|l| l.n_head_kv)
            .max()
            .unwrap_or(0);
        max_kv * self.shape.head_v
    }
}
