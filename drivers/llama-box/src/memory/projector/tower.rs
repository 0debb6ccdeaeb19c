//! The encoders of a projector file, as clip.cpp's loader sees them: hyper-parameters from
//! `clip.vision.*` or `clip.audio.*`, optional parts from the tensors present
//! (`clip_model_loader::load_tensors`), the projector type, and the warm-up input it implies
//! (`clip_model_loader::load_hparams`).

use std::collections::BTreeMap;

use inferkit_core::gguf::{ClipEncoder, GgmlType, GgufModel};
use inferkit_core::{Error, Result};

use super::{WarmupAudio, WarmupImage};

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
    /// `ldp` (MobileVLM): the LLaVA tower, an MLP and two MobileNetV3-style blocks.
    Ldp,
    /// `ldpv2` (MobileVLM V2): the LLaVA tower, an MLP, 2×2 average pooling and a PEG.
    LdpV2,
    /// `adapter` (GLM-Edge-V): SigLIP, a stride-2 convolution, a GLU and BOI/EOI tokens.
    GlmEdge,
    /// `ultravox`: Whisper encoder, 8 stacked frames, RMS-normed SwiGLU projector.
    Ultravox,
    /// `qwen2a` (Qwen2-Audio, Qwen2.5-Omni's audio): Whisper encoder, 2× average pool, linear.
    Qwen2Audio,
    /// `voxtral`: Whisper encoder, 2× average pool, 4 stacked frames, GELU MLP.
    Voxtral,
    /// Any other type: the generic ViT of `build_vit` and the `mm.*` matmuls.
    Other,
}

impl ProjectorKind {
    fn from_name(name: &str, modality: Modality) -> ProjectorKind {
        match name {
            // Qwen2.5-Omni's one type names both towers (`clip.cpp`, "legacy method").
            "qwen2.5o" if modality == Modality::Audio => ProjectorKind::Qwen2Audio,
            "qwen2.5o" => ProjectorKind::Qwen25Vl,
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
            "ldp" => ProjectorKind::Ldp,
            "ldpv2" => ProjectorKind::LdpV2,
            "adapter" => ProjectorKind::GlmEdge,
            "ultravox" => ProjectorKind::Ultravox,
            "qwen2a" => ProjectorKind::Qwen2Audio,
            "voxtral" => ProjectorKind::Voxtral,
            _ => ProjectorKind::Other,
        }
    }

    /// Types measured against llama.cpp (`measurements-mmproj.jsonl`).
    pub fn is_measured(self) -> bool {
        self.is_audio()
            || matches!(
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
                    | ProjectorKind::Ldp
                    | ProjectorKind::LdpV2
                    | ProjectorKind::GlmEdge
            )
    }

    /// Types whose own clip.cpp builder is followed.
    pub fn is_modelled(self) -> bool {
        self != ProjectorKind::Other
    }

    /// The Whisper-encoder audio types (`clip_graph_whisper_enc`).
    pub fn is_audio(self) -> bool {
        matches!(
            self,
            ProjectorKind::Ultravox | ProjectorKind::Qwen2Audio | ProjectorKind::Voxtral
        )
    }

    /// Types built by `clip_graph_llava` with a LLaVA projector (the tower stops one layer
    /// early and the patches are gathered before the projector).
    fn is_llava(self) -> bool {
        matches!(
            self,
            ProjectorKind::Mlp | ProjectorKind::MlpNorm | ProjectorKind::Ldp | ProjectorKind::LdpV2
        )
    }

    fn is_qwen(self) -> bool {
        matches!(
            self,
            ProjectorKind::Qwen2Vl | ProjectorKind::Qwen25Vl | ProjectorKind::Qwen3Vl
        )
    }
}

/// Which encoder of the file a tower is: clip.cpp loads each into its own context, with its
/// own weights and compute buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Modality {
    /// `clip.vision.*`, tensors `v.*`.
    Vision,
    /// `clip.audio.*`, tensors `a.*`.
    Audio,
}

impl Modality {
    fn tensor_prefix(self) -> &'static str {
        match self {
            Modality::Vision => "v.",
            Modality::Audio => "a.",
        }
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

/// The input clip.cpp warms a tower up with (`clip_model_loader::warmup`).
#[derive(Debug, Clone)]
pub(super) enum Warmup {
    Image(WarmupImage),
    Audio(WarmupAudio),
}

/// What the graph builder needs to know about the tower.
#[derive(Debug, Clone)]
pub(super) struct Tower {
    pub kind: ProjectorKind,
    pub modality: Modality,
    pub warmup: Warmup,
    pub n_embd: u64,
    pub n_ff: u64,
    pub n_head: u64,
    /// Layers the graph runs (LLaVA stops before the last one).
    pub n_layer: u64,
    /// Patch side (1 for audio).
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
    /// Audio: mel bins per frame (`clip.audio.num_mel_bins`).
    pub n_mel: u64,
    /// Audio: encoder frames stacked into one token (`clip.audio.projector.stack_factor`).
    pub stack_factor: u64,
    /// Block 0's tensors by suffix (`attn_q.bias`, `ffn_gate.weight`, ...), dims.
    block: BlockTensors,
    /// Every other tensor by name, dims and whether it is F32.
    other: OtherTensors,
}

/// A tower's block 0 tensors: suffix to dims.
type BlockTensors = BTreeMap<String, Vec<u64>>;

/// The tensors outside a tower's blocks: name to dims and whether it is F32.
type OtherTensors = BTreeMap<String, (Vec<u64>, bool)>;

/// Mel frames of the warm-up audio: `clip_hparams::warmup_audio_size` (`clip-model.h`), 30 s
/// of 10 ms hops, Whisper's full window.
const WARMUP_AUDIO_FRAMES: u64 = 3000;

impl Tower {
    /// Reads the tower of `modality` (the file must have that encoder).
    pub fn read(model: &GgufModel, modality: Modality) -> Result<Tower> {
        let unsupported = |what: &str| unsupported(model, what);
        let encoder = match modality {
            Modality::Vision => model.clip_vision()?,
            Modality::Audio => model.clip_audio()?,
        }
        .ok_or_else(|| unsupported("that encoder"))?;
        let n_embd = encoder
            .embedding_length
            .ok_or_else(|| unsupported("embedding_length"))?;
        let type_name = encoder.projector_type.clone().unwrap_or_default();
        let kind = ProjectorKind::from_name(&type_name, modality);
        let meta = model.metadata();

        let (block, other) = tower_tensors(model, modality);
        // The FFN width from the tensors (some converters swap up/down names).
        let n_ff = ["ffn_up.weight", "ffn_down.weight"]
            .iter()
            .filter_map(|n| block.get(*n))
            .flat_map(|dims: &Vec<u64>| dims.iter().copied().take(2))
            .filter(|&d| d != n_embd)
            .max()
            .or(encoder.feed_forward_length)
            .unwrap_or(4 * n_embd);
        let block_count = encoder.block_count.unwrap_or(0);

        let scale_factor = meta.get_u64("clip.vision.projector.scale_factor")?;
        let spatial_merge = meta.get_u64("clip.vision.spatial_merge_size")?;
        let n_merge = match kind {
            k if k.is_qwen() => spatial_merge.unwrap_or(2),
            ProjectorKind::Gemma3 => scale_factor.unwrap_or(4),
            ProjectorKind::Pixtral => spatial_merge.unwrap_or(1),
            _ => scale_factor.unwrap_or(1),
        }
        .max(1);

        let n_layer = layers_run(model, kind, block_count)?;
        let (warmup, patch) = warmup(model, &encoder, kind, modality, n_merge)?;
        let deepstack = deepstack_layers(model);
        Ok(Tower {
            kind,
            modality,
            warmup,
            n_embd,
            n_ff,
            n_head: encoder.head_count.unwrap_or(1).max(1),
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
            n_mel: meta.get_u64("clip.audio.num_mel_bins")?.unwrap_or(128),
            stack_factor: meta
                .get_u64("clip.audio.projector.stack_factor")?
                .unwrap_or(1)
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

    /// Whether the tower has its own tensor `suffix` (`pre_ln.weight` is `v.pre_ln.weight` in
    /// a vision tower, `a.pre_ln.weight` in an audio one).
    pub fn has_own(&self, suffix: &str) -> bool {
        self.has(&format!("{}{suffix}", self.modality.tensor_prefix()))
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

    /// Side of the warm-up image in pixels (0 for audio).
    pub fn image_side(&self) -> u64 {
        match &self.warmup {
            Warmup::Image(image) => image.side,
            Warmup::Audio(_) => 0,
        }
    }

    /// Mel frames of the warm-up audio (0 for images).
    pub fn audio_frames(&self) -> u64 {
        match &self.warmup {
            Warmup::Image(_) => 0,
            Warmup::Audio(audio) => audio.frames,
        }
    }

    /// Patches per side of the warm-up image.
    pub fn patches_per_side(&self) -> u64 {
        self.image_side() / self.patch
    }
}

/// The warm-up image side (`hparams.warmup_image_size`): `image_size` by default; a token
/// budget for the dynamic-resolution types (`set_warmup_n_tokens`: tokens per side × patch ×
/// merge).
/// The typed error of a projector whose file lacks `what`.
fn unsupported(model: &GgufModel, what: &str) -> Error {
    Error::unsupported(format!(
        "{}: projector without {what}",
        model.path().display()
    ))
}

/// A tower's tensors, as [`Tower`] keeps them: block 0's by suffix, and every tensor outside
/// the tower's blocks (embeddings, projection, merger...) by name, with whether it is F32.
fn tower_tensors(model: &GgufModel, modality: Modality) -> (BlockTensors, OtherTensors) {
    let (block_prefix, own_prefix) = match modality {
        Modality::Vision => ("v.blk.0.", "v.blk."),
        Modality::Audio => ("a.blk.0.", "a.blk."),
    };
    let mut block = BTreeMap::new();
    let mut other = BTreeMap::new();
    for t in model.tensors() {
        if let Some(suffix) = t.name.strip_prefix(block_prefix) {
            block.insert(suffix.to_owned(), t.dims.clone());
        } else if !t.name.starts_with(own_prefix) {
            other.insert(
                t.name.clone(),
                (t.dims.clone(), t.ggml_type == GgmlType::F32),
            );
        }
    }
    (block, other)
}

/// The layers the tower's graph runs of its `block_count`: `is_feature_layer` /
/// `max_feature_layer` in `clip_graph_llava::build`: LLaVA-type projectors stop one layer
/// early unless feature layers are given (then at the deepest one).
fn layers_run(model: &GgufModel, kind: ProjectorKind, block_count: u64) -> Result<u64> {
    if !kind.is_llava() {
        return Ok(block_count);
    }
    let deepest = model
        .metadata()
        .get_array("clip.vision.feature_layer")?
        .and_then(|a| a.to_u64_vec())
        .and_then(|v| v.into_iter().max());
    Ok(match deepest {
        Some(l) => l.min(block_count),
        None => block_count.saturating_sub(1),
    })
}

/// The input clip.cpp warms the tower up with and the patch side: the warm-up image of the
/// encoder's image size (a vision tower must give it and its patch size), or 30 s of audio
/// (patch 1).
fn warmup(
    model: &GgufModel,
    encoder: &ClipEncoder,
    kind: ProjectorKind,
    modality: Modality,
    n_merge: u64,
) -> Result<(Warmup, u64)> {
    Ok(match modality {
        Modality::Vision => {
            let patch = encoder
                .patch_size
                .filter(|&p| p > 0)
                .ok_or_else(|| unsupported(model, "patch_size"))?;
            let image_size = encoder
                .image_size
                .filter(|&s| s > 0)
                .ok_or_else(|| unsupported(model, "image_size"))?;
            let image = warmup_image(kind, image_size, patch, n_merge);
            (Warmup::Image(image), patch)
        }
        Modality::Audio => {
            let audio = WarmupAudio {
                frames: WARMUP_AUDIO_FRAMES,
                source: "clip.cpp warmup_audio_size (30 s of 10 ms mel frames)".into(),
            };
            (Warmup::Audio(audio), 1)
        }
    })
}

/// The layers whose output feeds a Qwen3-VL deepstack merger (`v.deepstack.<il>.*`), in
/// order.
fn deepstack_layers(model: &GgufModel) -> Vec<u64> {
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
    deepstack
}

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
