//! The vision tower of a projector file, as clip.cpp's loader sees it: hyper-parameters from
//! `clip.vision.*`, optional parts from the tensors present (`clip_model_loader::load_tensors`),
//! the projector type, and the warm-up image it implies (`clip_model_loader::load_hparams`).

use std::collections::BTreeMap;

use inferkit_core::gguf::{GgmlType, GgufModel};
use inferkit_core::{Error, Result};

use super::WarmupImage;

/// clip.cpp's projector types (`clip-impl.h`, `PROJECTOR_TYPE_NAMES`) whose graph is built
/// here from its own builder; any other type is read as a plain ViT ([`ProjectorKind::Other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProjectorKind {
    /// `mlp`: LLaVA-1.5 (CLIP ViT, two linears).
    Mlp,
    /// `mlp_norm`: LLaVA with layer-normed projector.
    MlpNorm,
    /// `qwen2vl_merger`.
    Qwen2Vl,
    /// `qwen2.5vl_merger`: RMS norms, window attention between full-attention layers.
    Qwen25Vl,
    /// `qwen3vl_merger`: fused QKV, learned positions, deepstack mergers.
    Qwen3Vl,
    /// `gemma3`: SigLIP with average pooling.
    Gemma3,
    /// `idefics3` (SmolVLM): SigLIP with pixel shuffle.
    Idefics3,
    /// `pixtral` (Pixtral, Mistral Small 3.x): 2D RoPE, optional patch merger.
    Pixtral,
    /// `internvl`: class token, layer scale, pixel shuffle, MLP.
    InternVl,
    /// `llama4`: unfold convolution, 2D RoPE, pixel shuffle MLP.
    Llama4,
    /// `kimivl`: interpolated positions, 2D RoPE, patch merger.
    KimiVl,
    /// `resampler` (MiniCPM-V): SigLIP, then one cross-attention over learned queries.
    MiniCpmV,
    /// Any other type: the generic ViT of `build_vit` and the `mm.*` matmuls.
    Other,
}

impl ProjectorKind {
    fn from_name(name: &str) -> ProjectorKind {
        match name {
            "mlp" => ProjectorKind::Mlp,
            "mlp_norm" => ProjectorKind::MlpNorm,
            "qwen2vl_merger" => ProjectorKind::Qwen2Vl,
            "qwen2.5vl_merger" => ProjectorKind::Qwen25Vl,
            "qwen3vl_merger" => ProjectorKind::Qwen3Vl,
            "gemma3" => ProjectorKind::Gemma3,
            "idefics3" => ProjectorKind::Idefics3,
            "pixtral" => ProjectorKind::Pixtral,
            "internvl" => ProjectorKind::InternVl,
            "llama4" => ProjectorKind::Llama4,
            "kimivl" => ProjectorKind::KimiVl,
            "resampler" => ProjectorKind::MiniCpmV,
            _ => ProjectorKind::Other,
        }
    }

    /// Types measured against llama.cpp (`measurements-mmproj.jsonl`).
    pub fn is_measured(self) -> bool {
        matches!(
            self,
            ProjectorKind::Mlp
                | ProjectorKind::Qwen2Vl
                | ProjectorKind::Qwen25Vl
                | ProjectorKind::Qwen3Vl
                | ProjectorKind::Gemma3
                | ProjectorKind::Idefics3
                | ProjectorKind::Pixtral
                | ProjectorKind::InternVl
                | ProjectorKind::MiniCpmV
                | ProjectorKind::Llama4
                | ProjectorKind::KimiVl
        )
    }

    /// Types whose own clip.cpp builder is followed.
    pub fn is_modelled(self) -> bool {
        self != ProjectorKind::Other
    }

    fn is_qwen(self) -> bool {
        matches!(
            self,
            ProjectorKind::Qwen2Vl | ProjectorKind::Qwen25Vl | ProjectorKind::Qwen3Vl
        )
    }
}

/// Norm flavour of the tower's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Norm {
    /// `ggml_norm` (a new tensor), then weight and bias in place.
    Layer,
    /// `ggml_rms_norm` (in place), then the weight in place.
    Rms,
}

/// What the graph builder needs to know about the tower.
#[derive(Debug, Clone)]
pub(super) struct Tower {
    pub kind: ProjectorKind,
    pub warmup: WarmupImage,
    pub n_embd: u64,
    pub n_ff: u64,
    pub n_head: u64,
    /// Layers the graph runs (LLaVA stops before the last one).
    pub n_layer: u64,
    pub patch: u64,
    /// Patches merged per side into one output token.
    pub n_merge: u64,
    pub norm: Norm,
    /// Qwen2.5-VL: every `window_pattern`-th layer attends fully, the others in windows.
    pub window_pattern: u64,
    /// Layers whose output feeds a Qwen3-VL deepstack merger.
    pub deepstack: Vec<u64>,
    /// MiniCPM-V's resampler queries (`clip.minicpmv_query_num`, 64 by default).
    pub queries: u64,
    /// Block 0's tensors by suffix (`attn_q.bias`, `ffn_gate.weight`, ...), dims.
    block: BTreeMap<String, Vec<u64>>,
    /// Every other tensor by name, dims and whether it is F32.
    other: BTreeMap<String, (Vec<u64>, bool)>,
}

impl Tower {
    pub fn read(model: &GgufModel) -> Result<Tower> {
        let unsupported = |what: &str| {
            Error::unsupported(format!(
                "{}: projector without {what}",
                model.path().display()
            ))
        };
        let vision = model
            .clip_vision()?
            .ok_or_else(|| unsupported("a vision encoder"))?;
        let n_embd = vision
            .embedding_length
            .ok_or_else(|| unsupported("embedding_length"))?;
        let patch = vision
            .patch_size
            .filter(|&p| p > 0)
            .ok_or_else(|| unsupported("patch_size"))?;
        let image_size = vision
            .image_size
            .filter(|&s| s > 0)
            .ok_or_else(|| unsupported("image_size"))?;
        let type_name = vision.projector_type.clone().unwrap_or_default();
        let kind = ProjectorKind::from_name(&type_name);
        let meta = model.metadata();

        let mut block = BTreeMap::new();
        let mut other = BTreeMap::new();
        for t in model.tensors() {
            if let Some(suffix) = t.name.strip_prefix("v.blk.0.") {
                block.insert(suffix.to_owned(), t.dims.clone());
            } else if !t.name.starts_with("v.blk.") {
                other.insert(
                    t.name.clone(),
                    (t.dims.clone(), t.ggml_type == GgmlType::F32),
                );
            }
        }
        // The FFN width from the tensors (some converters swap up/down names).
        let n_ff = ["ffn_up.weight", "ffn_down.weight"]
            .iter()
            .filter_map(|n| block.get(*n))
            .flat_map(|dims: &Vec<u64>| dims.iter().copied().take(2))
            .filter(|&d| d != n_embd)
            .max()
            .or(vision.feed_forward_length)
            .unwrap_or(4 * n_embd);
        let block_count = vision.block_count.unwrap_or(0);

        let scale_factor = meta.get_u64("clip.vision.projector.scale_factor")?;
        let spatial_merge = meta.get_u64("clip.vision.spatial_merge_size")?;
        let n_merge = match kind {
            k if k.is_qwen() => spatial_merge.unwrap_or(2),
            ProjectorKind::Gemma3 => scale_factor.unwrap_or(4),
            ProjectorKind::Pixtral => spatial_merge.unwrap_or(1),
            _ => scale_factor.unwrap_or(1),
        }
        .max(1);

        // `is_feature_layer`/`max_feature_layer` in `clip_graph_llava::build`: LLaVA-type
        // projectors stop one layer early unless feature layers are given.
        let n_layer = match kind {
            ProjectorKind::Mlp | ProjectorKind::MlpNorm => {
                let deepest = meta
                    .get_array("clip.vision.feature_layer")?
                    .and_then(|a| a.to_u64_vec())
                    .and_then(|v| v.into_iter().max());
                match deepest {
                    Some(l) => l.min(block_count),
                    None => block_count.saturating_sub(1),
                }
            }
            _ => block_count,
        };

        let warmup = warmup_image(kind, image_size, patch, n_merge);
        let mut deepstack: Vec<u64> = model
            .tensors()
            .iter()
            .filter_map(|t| {
                t.name
                    .strip_prefix("v.deepstack.")?
                    .strip_suffix(".fc1.weight")?
                    .parse()
                    .ok()
            })
            .collect();
        deepstack.sort_unstable();
        Ok(Tower {
            kind,
            warmup,
            n_embd,
            n_ff,
            n_head: vision.head_count.unwrap_or(1).max(1),
            n_layer,
            patch,
            n_merge,
            norm: if block.contains_key("ln1.bias") || !block.contains_key("ln1.weight") {
                Norm::Layer
            } else {
                Norm::Rms
            },
            window_pattern: meta.get_u64("clip.vision.n_wa_pattern")?.unwrap_or(0),
            deepstack,
            queries: meta
                .get_u64("clip.minicpmv_query_num")?
                .unwrap_or(64)
                .max(1),
            block,
            other,
        })
    }

    /// Whether block 0 has the tensor `suffix` (`attn_q.bias`, `ls1.weight`, ...).
    pub fn block_has(&self, suffix: &str) -> bool {
        self.block.contains_key(suffix)
    }

    /// Whether the file has the (non-block) tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.other.contains_key(name)
    }

    /// Dimension `i` (ggml order) of the non-block tensor `name`.
    pub fn dim(&self, name: &str, i: usize) -> Option<u64> {
        self.other.get(name).and_then(|(d, _)| d.get(i).copied())
    }

    /// Whether the non-block tensor `name` is stored as F32.
    pub fn is_f32(&self, name: &str) -> bool {
        self.other.get(name).is_some_and(|(_, f32)| *f32)
    }

    /// Output widths of `mm.<i>.weight` matmuls in index order (LLaVA-style projections).
    pub fn numbered_projection(&self) -> Vec<u64> {
        let mut layers: Vec<(u64, u64)> = self
            .other
            .iter()
            .filter_map(|(name, (dims, _))| {
                let index = name.strip_prefix("mm.")?.strip_suffix(".weight")?;
                Some((index.parse().ok()?, *dims.get(1)?))
            })
            .collect();
        layers.sort_unstable();
        layers.into_iter().map(|(_, out)| out).collect()
    }

    /// Patches per side of the warm-up image.
    pub fn patches_per_side(&self) -> u64 {
        self.warmup.side / self.patch
    }
}

/// The warm-up image side (`hparams.warmup_image_size`): `image_size` by default; a token
/// budget for the dynamic-resolution types (`set_warmup_n_tokens`: tokens per side × patch ×
/// merge).
fn warmup_image(kind: ProjectorKind, image_size: u64, patch: u64, n_merge: u64) -> WarmupImage {
    let tokens_per_side = match kind {
        // "avoid OOM on warmup": 46×46 merged tokens.
        k if k.is_qwen() => Some(46),
        // 256 tokens.
        ProjectorKind::Pixtral | ProjectorKind::KimiVl => Some(16),
        _ => None,
    };
    match tokens_per_side {
        Some(n) => WarmupImage {
            side: n * patch * n_merge,
            source: format!("{n}x{n} image tokens (clip.cpp set_warmup_n_tokens)"),
        },
        None => WarmupImage {
            side: image_size,
            source: "clip.vision.image_size".into(),
        },
    }
}
