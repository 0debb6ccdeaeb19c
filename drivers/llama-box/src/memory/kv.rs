//! The context llama.cpp actually creates (`llama_context` constructor) and the KV cache /
//! recurrent state per layer (`llama_kv_cache`, `llama_kv_cache_iswa`,
//! `llama_memory_recurrent`).

use inferkit_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::shape::ModelShape;
use crate::params::{LlamaSettings, RopeScaling};

/// llama.cpp pads the context and each sequence's share to 256 cells
/// (`llama-context.cpp`, ref. PR 17046), and the sliding-window cache likewise.
const CTX_PAD: u64 = 256;

/// The context sizes llama.cpp resolves from the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextSize {
    /// Total context after padding and rounding.
    pub n_ctx: u64,
    /// Cells per sequence.
    pub n_ctx_seq: u64,
    /// Parallel sequences.
    pub n_seq_max: u64,
    /// KV streams: 1 when unified, else one per sequence.
    pub n_stream: u64,
    /// Logical batch.
    pub n_batch: u64,
    /// Physical batch.
    pub n_ubatch: u64,
    /// Cells per stream of the full-attention cache.
    pub kv_size: u64,
    /// Cells per stream of the sliding-window cache.
    pub kv_size_swa: u64,
}

impl ContextSize {
    pub(crate) fn resolve(shape: &ModelShape, settings: &LlamaSettings) -> Result<ContextSize> {
        let mut requested = match settings.ctx_size {
            0 => shape.n_ctx_train,
            n => u64::from(n),
        };
        let whole_context = settings.non_causal_whole_context && !shape.causal;
        if whole_context && !rope_customised(shape, settings) {
            requested = requested.min(shape.n_ctx_train);
        }
        let n_seq_max = u64::from(settings.n_parallel.max(1));
        if n_seq_max > 256 {
            // LLAMA_MAX_SEQ
            return Err(Error::invalid_parameter(
                "--parallel",
                "n_seq_max must be <= 256 (LLAMA_MAX_SEQ)",
            ));
        }
        let mut n_ctx = requested.div_ceil(CTX_PAD) * CTX_PAD;
        let n_ctx_seq = if settings.kv_unified {
            n_ctx
        } else {
            let per_seq = (n_ctx / n_seq_max).div_ceil(CTX_PAD) * CTX_PAD;
            n_ctx = per_seq * n_seq_max;
            per_seq
        };
        if n_ctx == 0 {
            return Err(Error::invalid_parameter("--ctx-size", "n_ctx_seq == 0"));
        }
        // Decoders never batch more than the context; encoders take the batch as given.
        let n_batch = if shape.causal {
            n_ctx.min(u64::from(settings.n_batch))
        } else {
            u64::from(settings.n_batch)
        };
        let n_ubatch = n_batch.min(u64::from(settings.n_ubatch)).max(1);
        // llama-box's patch: a non-causal model decodes its whole context in one micro-batch.
        let (n_batch, n_ubatch) = match whole_context {
            true => (n_ctx, n_ctx),
            false => (n_batch, n_ubatch),
        };
        let n_stream = if settings.kv_unified { 1 } else { n_seq_max };
        let kv_size = n_ctx_seq;
        let swa_streams = if settings.kv_unified { n_seq_max } else { 1 };
        let kv_size_swa = if settings.swa_full {
            kv_size
        } else {
            let wanted = shape.n_swa * swa_streams + n_ubatch;
            kv_size.min(wanted.div_ceil(CTX_PAD) * CTX_PAD)
        };
        Ok(ContextSize {
            n_ctx,
            n_ctx_seq,
            n_seq_max,
            n_stream,
            n_batch,
            n_ubatch,
            kv_size,
            kv_size_swa,
        })
    }

    /// Tokens of the worst-case ubatch llama.cpp reserves for (`graph_reserve`).
    pub fn n_ubatch_reserve(&self) -> u64 {
        self.n_ctx.min(self.n_ubatch)
    }
}

/// Whether the RoPE settings differ from the model's (llama-box's `is_rope_customized` in
/// `patches/llama.cpp/embedding.patch`, v0.0.171): then a non-causal model keeps a context
/// longer than its training context. As in `llama_context`, an unset value is the model's, and
/// scaling type `none` forces a frequency scale of 1. Compared in `f32`, as llama.cpp does.
fn rope_customised(shape: &ModelShape, settings: &LlamaSettings) -> bool {
    let train = &shape.rope;
    let user = &settings.rope;
    let scaling = user.scaling.or(train.scaling);
    let freq_base = user.freq_base.unwrap_or(train.freq_base);
    let freq_scale = match scaling {
        Some(RopeScaling::None) => 1.0,
        _ => user.freq_scale.unwrap_or(train.freq_scale),
    };
    let differs = |a: f64, b: f64| a as f32 != b as f32;
    scaling != train.scaling
        || differs(freq_base, train.freq_base)
        || differs(freq_scale, train.freq_scale)
        || (scaling == Some(RopeScaling::Yarn)
            && user.yarn_orig_ctx != 0
            && u64::from(user.yarn_orig_ctx) != train.n_ctx_orig_yarn)
}

/// KV (or recurrent state) bytes of each repeating layer, all streams together. A K row is
/// the layer's KV heads times its own K head size (`n_embd_k_gqa(il)`); so is a V row, except
/// in a transposed V cache (`v_trans`: flash attention off), where every layer's V row is the
/// widest layer's (`n_embd_v_gqa_max()`, [TAG_V_CACHE_VARIABLE] in `llama_kv_cache`'s
/// constructor, `src/llama-kv-cache.cpp` at 0c1e57098).
pub(crate) fn layer_bytes(
    shape: &ModelShape,
    ctx: &ContextSize,
    settings: &LlamaSettings,
    v_trans: bool,
) -> Vec<u64> {
    let v_row_max = shape
        .layers
        .iter()
        .map(|l| l.n_head_kv.saturating_mul(l.head_v))
        .max()
        .unwrap_or(0);
    shape
        .layers
        .iter()
        .map(|layer| {
            // Saturating throughout: the header's dimensions are bounded by the GGUF reader,
            // but a huge user context could still overflow, and a saturated size simply fits
            // nowhere.
            // Recurrent state: one slot per sequence, r and s rows in f32.
            let state = match layer.recurrent {
                true => (shape.recurrent.r.saturating_add(shape.recurrent.s))
                    .saturating_mul(4)
                    .saturating_mul(ctx.n_seq_max),
                false => 0,
            };
            if !shape.causal || layer.n_head_kv == 0 || layer.shares_kv {
                return state;
            }
            let cells = match layer.swa {
                true => ctx.kv_size_swa,
                false => ctx.kv_size,
            }
            .saturating_mul(ctx.n_stream);
            let k = settings
                .type_k
                .row_bytes(layer.n_head_kv.saturating_mul(layer.head_k));
            // MLA's V is a view of the K cache: no V tensor (`has_v = !is_mla`).
            let v = match shape.mla {
                Some(_) => 0,
                None => settings.type_v.row_bytes(match v_trans {
                    true => v_row_max,
                    false => layer.n_head_kv.saturating_mul(layer.head_v),
                }),
            };
            k.saturating_add(v)
                .saturating_mul(cells)
                .saturating_add(state)
        })
        .collect()
}
