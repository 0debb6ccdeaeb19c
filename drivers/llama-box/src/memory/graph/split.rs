//! Multi-device graphs as `ggml_backend_sched` splits them: graph inputs, and the copies a
//! split makes of what it reads from another buffer.

use super::{Builder, HOST};
use crate::memory::alloc::TensorId;

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

    /// Which attention inputs (full, sliding) the split starting with `layers[0]` on
    /// `buffer` reads: the layers up to the next buffer change.
    pub(super) fn attention_kinds(&self, layers: &[(usize, usize)], buffer: usize) -> [bool; 2] {
        let mut kinds = [false; 2];
        for &(l, _) in layers.iter().take_while(|&&(_, b)| b == buffer) {
            let layer = self.shape.layers[l];
            if layer.n_head_kv > 0 {
                kinds[usize::from(layer.swa)] = true;
            }
        }
        kinds
    }

    /// Starts a split on `buffer`: the scheduler copies the split's inputs first (the
    /// residual stream, and, when the split holds layers, the attention inputs of the cache
    /// kinds its layers read: `kinds`).
    pub(super) fn enter(&mut self, buffer: usize, residual: TensorId, kinds: Option<[bool; 2]>) {
        if buffer == self.buffer {
            return;
        }
        self.buffer = buffer;
        let mut needed = vec![residual];
        let Some(kinds) = kinds else {
            self.copy_to(residual, buffer);
            return;
        };
        needed.extend(self.inputs.pos);
        // With the cache on the host only the host reads the row indices (the stores run
        // there), and a device reads the mask only from the split its flash attention starts,
        // so the copy is made there (`cached_attention`).
        let cache_here = !self.r.kv_on_host || buffer == HOST;
        let used = self.inputs.attn.iter().zip(kinds);
        for a in used.filter_map(|(a, used)| a.filter(|_| used)) {
            if let Some((k_idxs, v_idxs)) = a.idxs.filter(|_| cache_here) {
                needed.push(k_idxs);
                needed.extend(v_idxs);
            }
            if cache_here || a.idxs.is_none() {
                needed.push(a.mask);
            }
        }
        for src in needed {
            self.copy_to(src, buffer);
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
