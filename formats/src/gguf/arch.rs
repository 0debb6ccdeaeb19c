//! Typed accessors for what memory estimators read from a GGUF model.
//!
//! Keys are llama.cpp's (`src/llama-arch.cpp`, `LLM_KV_*`) and clip's (`tools/mtmd/clip-impl.h`,
//! `KEY_*`); `<arch>` stands for the value of `general.architecture`. Accessors return the
//! value as stored; architecture-specific defaults that llama.cpp hard-codes (for example
//! Gemma-2's sliding-window pattern) are left to the backend drivers.

use serde::{Deserialize, Serialize};

use super::metadata::MAX_LAYERS;
use super::{GgufModel, TensorInfo};
use crate::{Error, Result};

/// Tensor-name prefixes of stable-diffusion.cpp model files: UNet/DiT
/// (`model.diffusion_model.`), VAE (`first_stage_model.`), text encoders
/// (`cond_stage_model.`, `text_encoders.`), FLUX/SD3 transformer blocks. `encoder.`/`decoder.`
/// are not used because T5 and BERT GGUFs carry them too.
const DIFFUSION_PREFIXES: [&str; 6] = [
    "model.diffusion_model.",
    "first_stage_model.",
    "cond_stage_model.",
    "text_encoders.",
    "double_blocks.",
    "joint_blocks.",
];

/// Architectures that are encoder-only embedding models in llama.cpp.
const EMBEDDING_ARCHITECTURES: [&str; 6] = [
    "bert",
    "nomic-bert",
    "nomic-bert-moe",
    "jina-bert-v2",
    "jina-bert-v3",
    "modern-bert",
];

/// Widest hidden state or head accepted (`embedding_length`, `key_length`,
/// `value_length`): 16 Mi, far above any published model (Llama-3.1-405B has 16,384), and low
/// enough that a width times a head count ([`MAX_HEADS`]) stays below 2^40.
pub const MAX_WIDTH: u64 = 1 << 24;

/// Most attention heads per layer accepted (the largest published models have 128).
pub const MAX_HEADS: u64 = 1 << 16;

/// llama.cpp's `LLAMA_POOLING_TYPE_RANK`: the pooling of rerankers.
const POOLING_RANK: u64 = 4;

/// The hyper-parameters of a clip (mmproj) vision or audio encoder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClipEncoder {
    /// `clip.<v|a>.embedding_length`.
    pub embedding_length: Option<u64>,
    /// `clip.<v|a>.block_count`.
    pub block_count: Option<u64>,
    /// `clip.<v|a>.attention.head_count`.
    pub head_count: Option<u64>,
    /// `clip.<v|a>.feed_forward_length`.
    pub feed_forward_length: Option<u64>,
    /// `clip.<v|a>.projection_dim`.
    pub projection_dim: Option<u64>,
    /// `clip.vision.image_size` (vision only).
    pub image_size: Option<u64>,
    /// `clip.vision.patch_size` (vision only).
    pub patch_size: Option<u64>,
    /// `clip.<v|a>.projector_type`, else `clip.projector_type`.
    pub projector_type: Option<String>,
}

impl GgufModel {
    fn arch_key(&self, suffix: &str) -> Result<String> {
        Ok(format!("{}.{suffix}", self.architecture()?))
    }

    fn arch_u64(&self, suffix: &str) -> Result<Option<u64>> {
        self.metadata().get_u64(&self.arch_key(suffix)?)
    }

    fn arch_f64(&self, suffix: &str) -> Result<Option<f64>> {
        self.metadata().get_f64(&self.arch_key(suffix)?)
    }

    // ----- general -----

    /// `general.architecture` (e.g. `llama`, `qwen2`, `clip`); required.
    pub fn architecture(&self) -> Result<&str> {
        self.metadata().require_str("general.architecture")
    }

    /// `general.name`.
    pub fn name(&self) -> Result<Option<&str>> {
        self.metadata().get_str("general.name")
    }

    /// `general.file_type`: llama.cpp's `llama_ftype` (see [`file_type_name`]).
    pub fn file_type(&self) -> Result<Option<u64>> {
        self.metadata().get_u64("general.file_type")
    }

    // ----- transformer shape -----

    /// `<arch>.block_count`: number of repeating layers; required, at most [`MAX_LAYERS`], and
    /// when the file has layer tensors, exactly the layers `blk.0` to `blk.<block_count - 1>`
    /// they hold (see [`GgufModel::tensor_layers`]): llama.cpp refuses any other file at load
    /// with a missing or unused tensor.
    pub fn block_count(&self) -> Result<u64> {
        let key = self.arch_key("block_count")?;
        let blocks = self.metadata().require_u64(&key)?;
        if blocks > MAX_LAYERS {
            let what = format!("{key} is {blocks} (at most {MAX_LAYERS} layers are accepted)");
            return Err(self.invalid_key(&key, what));
        }
        let layers = self.tensor_layers();
        let (Some(&first), Some(&last)) = (layers.first(), layers.last()) else {
            return Ok(blocks);
        };
        if first != 0 || last.checked_add(1) != Some(blocks) || layers.len() as u64 != blocks {
            let what = format!(
                "{key} is {blocks} but the tensors hold {} repeating layers, blk.{first} to blk.{last}",
                layers.len()
            );
            return Err(self.invalid_key(&key, what));
        }
        Ok(blocks)
    }

    /// An [`Error::Parse`] at the offset of the metadata key `key`.
    fn invalid_key(&self, key: &str, what: String) -> Error {
        let offset = self.metadata().entry(key).map_or(0, |e| e.offset);
        Error::parse(self.metadata().file(), offset, what)
    }

    /// The integer `<arch>.<suffix>`, when present, at most `max`.
    fn bounded_u64(&self, suffix: &str, max: u64) -> Result<Option<u64>> {
        let key = self.arch_key(suffix)?;
        match self.metadata().get_u64(&key)? {
            Some(v) if v > max => {
                Err(self.invalid_key(&key, format!("{key} is {v} (at most {max} is accepted)")))
            }
            other => Ok(other),
        }
    }

    /// `<arch>.context_length`: the training context length.
    pub fn context_length(&self) -> Result<Option<u64>> {
        self.arch_u64("context_length")
    }

    /// `<arch>.embedding_length` (n_embd); required, at most [`MAX_WIDTH`].
    pub fn embedding_length(&self) -> Result<u64> {
        self.bounded_u64("embedding_length", MAX_WIDTH)?
            .ok_or_else(|| {
                let key = format!("{}.embedding_length", self.architecture().unwrap_or(""));
                self.metadata().missing(&key)
            })
    }

    /// `<arch>.feed_forward_length` per layer (a scalar is repeated; an array must have
    /// `block_count` elements).
    pub fn feed_forward_length_per_layer(&self) -> Result<Option<Vec<u64>>> {
        self.per_layer("feed_forward_length")
    }

    /// The largest per-layer `<arch>.feed_forward_length`.
    pub fn feed_forward_length(&self) -> Result<Option<u64>> {
        Ok(self
            .feed_forward_length_per_layer()?
            .and_then(|v| v.into_iter().max()))
    }

    fn per_layer(&self, suffix: &str) -> Result<Option<Vec<u64>>> {
        let layers = self.block_count()?;
        self.metadata()
            .get_per_layer(&self.arch_key(suffix)?, layers)
    }

    /// `<arch>.attention.head_count` per layer; required, each at most [`MAX_HEADS`]. Layers
    /// without attention (in hybrid models) have 0; a model whose every layer has 0 is refused
    /// unless it is recurrent (Mamba, RWKV), as no attention model has zero heads.
    pub fn head_count_per_layer(&self) -> Result<Vec<u64>> {
        let key = self.arch_key("attention.head_count")?;
        let heads = self
            .per_layer("attention.head_count")?
            .ok_or_else(|| self.metadata().missing(&key))?;
        self.check_heads(&key, &heads)?;
        if heads.iter().all(|&h| h == 0) && !self.is_recurrent()? {
            return Err(self.invalid_key(
                &key,
                format!("{key} is 0: an attention model needs at least one head"),
            ));
        }
        Ok(heads)
    }

    /// Refuses a per-layer head count above [`MAX_HEADS`].
    fn check_heads(&self, key: &str, heads: &[u64]) -> Result<()> {
        match heads.iter().find(|&&h| h > MAX_HEADS) {
            Some(h) => Err(self.invalid_key(
                key,
                format!("{key} is {h} (at most {MAX_HEADS} heads are accepted)"),
            )),
            None => Ok(()),
        }
    }

    /// Whether the model has recurrent layers (a Mamba state or an RWKV wkv head), which
    /// attend without heads.
    fn is_recurrent(&self) -> Result<bool> {
        Ok(self.ssm_state_size()?.is_some() || self.wkv_head_size()?.is_some())
    }

    /// Query heads of layer 0 (llama.cpp's `n_head()`).
    pub fn head_count(&self) -> Result<u64> {
        Ok(first(&self.head_count_per_layer()?))
    }

    /// `<arch>.attention.head_count_kv` per layer; defaults to the query head count.
    pub fn head_count_kv_per_layer(&self) -> Result<Vec<u64>> {
        match self.per_layer("attention.head_count_kv")? {
            Some(kv) => {
                self.check_heads(&self.arch_key("attention.head_count_kv")?, &kv)?;
                Ok(kv)
            }
            None => self.head_count_per_layer(),
        }
    }

    /// KV heads of layer 0 (llama.cpp's `n_head_kv()`).
    pub fn head_count_kv(&self) -> Result<u64> {
        Ok(first(&self.head_count_kv_per_layer()?))
    }

    /// `<arch>.attention.key_length` (head size of K); defaults to n_embd / n_head.
    pub fn key_length(&self) -> Result<u64> {
        self.head_size("attention.key_length")
    }

    /// `<arch>.attention.value_length` (head size of V); defaults to n_embd / n_head.
    pub fn value_length(&self) -> Result<u64> {
        self.head_size("attention.value_length")
    }

    /// `<arch>.attention.key_length_swa`: head size of K in the sliding-window layers;
    /// defaults to [`Self::key_length`] (`llama_model::load_hparams`,
    /// `src/llama-model.cpp` at 0c1e57098, reads it for every architecture;
    /// Gemma 4 sets it).
    pub fn key_length_swa(&self) -> Result<u64> {
        match self.bounded_u64("attention.key_length_swa", MAX_WIDTH)? {
            Some(v) => Ok(v),
            None => self.key_length(),
        }
    }

    /// `<arch>.attention.value_length_swa`: head size of V in the sliding-window layers;
    /// defaults to [`Self::value_length`] (read as [`Self::key_length_swa`] is).
    pub fn value_length_swa(&self) -> Result<u64> {
        match self.bounded_u64("attention.value_length_swa", MAX_WIDTH)? {
            Some(v) => Ok(v),
            None => self.value_length(),
        }
    }

    fn head_size(&self, suffix: &str) -> Result<u64> {
        match self.bounded_u64(suffix, MAX_WIDTH)? {
            Some(v) => Ok(v),
            None => Ok(self
                .embedding_length()?
                .checked_div(self.head_count()?)
                .unwrap_or(0)),
        }
    }

    /// `<arch>.attention.q_lora_rank` (MLA query compression).
    pub fn q_lora_rank(&self) -> Result<Option<u64>> {
        self.arch_u64("attention.q_lora_rank")
    }

    /// `<arch>.attention.kv_lora_rank` (MLA: the compressed KV width cached per token).
    pub fn kv_lora_rank(&self) -> Result<Option<u64>> {
        self.arch_u64("attention.kv_lora_rank")
    }

    /// `<arch>.attention.key_length_mla` (MLA K head size after decompression).
    pub fn key_length_mla(&self) -> Result<Option<u64>> {
        self.arch_u64("attention.key_length_mla")
    }

    /// `<arch>.attention.value_length_mla` (MLA V head size after decompression).
    pub fn value_length_mla(&self) -> Result<Option<u64>> {
        self.arch_u64("attention.value_length_mla")
    }

    // ----- rope -----

    /// `<arch>.rope.dimension_count`: rotated dimensions per head.
    pub fn rope_dimension_count(&self) -> Result<Option<u64>> {
        self.arch_u64("rope.dimension_count")
    }

    /// `<arch>.rope.freq_base` (llama.cpp's default when absent is 10000).
    pub fn rope_freq_base(&self) -> Result<Option<f64>> {
        self.arch_f64("rope.freq_base")
    }

    /// `<arch>.rope.scaling.type` (`none`, `linear`, `yarn`, `longrope`).
    pub fn rope_scaling_type(&self) -> Result<Option<&str>> {
        let key = self.arch_key("rope.scaling.type")?;
        self.metadata().get_str(&key)
    }

    /// `<arch>.rope.scaling.factor`.
    pub fn rope_scaling_factor(&self) -> Result<Option<f64>> {
        self.arch_f64("rope.scaling.factor")
    }

    /// `<arch>.rope.scaling.original_context_length`.
    pub fn rope_scaling_original_context_length(&self) -> Result<Option<u64>> {
        self.arch_u64("rope.scaling.original_context_length")
    }

    /// `<arch>.attention.temperature_scale`: Llama-4-style attention temperature tuning
    /// (Ministral 3's `llama_4_scaling_beta`); 0 or absent when off.
    pub fn attention_temperature_scale(&self) -> Result<Option<f64>> {
        self.arch_f64("attention.temperature_scale")
    }

    // ----- sliding window -----

    /// `<arch>.attention.sliding_window`: the window in tokens (an array gives its first
    /// element, as llama.cpp reads one window for all sliding layers).
    pub fn sliding_window(&self) -> Result<Option<u64>> {
        let key = self.arch_key("attention.sliding_window")?;
        if let Some(array) = self.metadata().get(&key).and_then(|v| v.as_array()) {
            return Ok(array.to_u64_vec().and_then(|v| v.first().copied()));
        }
        self.metadata().get_u64(&key)
    }

    /// Which layers use the sliding window, from `<arch>.attention.sliding_window_pattern`:
    /// an array of one bool (or integer) per layer, or a scalar period `n` under which layer
    /// `i` slides iff `i % n < n - 1` (llama.cpp's `set_swa_pattern`). `None` when the key is
    /// absent.
    pub fn sliding_window_layers(&self) -> Result<Option<Vec<bool>>> {
        let key = self.arch_key("attention.sliding_window_pattern")?;
        let layers = self.block_count()?;
        if let Some(period) = self.metadata().get(&key).and_then(|v| v.as_u64()) {
            let slides = |i: u64| period > 0 && i % period < period - 1;
            return Ok(Some((0..layers).map(slides).collect()));
        }
        let per_layer = self.metadata().get_per_layer(&key, layers)?;
        Ok(per_layer.map(|v| v.into_iter().map(|x| x != 0).collect()))
    }

    // ----- mixture of experts -----

    /// `<arch>.expert_count`.
    pub fn expert_count(&self) -> Result<Option<u64>> {
        self.arch_u64("expert_count")
    }

    /// `<arch>.expert_used_count`: experts active per token.
    pub fn expert_used_count(&self) -> Result<Option<u64>> {
        self.arch_u64("expert_used_count")
    }

    /// `<arch>.expert_shared_count`.
    pub fn expert_shared_count(&self) -> Result<Option<u64>> {
        self.arch_u64("expert_shared_count")
    }

    /// `<arch>.expert_feed_forward_length`.
    pub fn expert_feed_forward_length(&self) -> Result<Option<u64>> {
        self.arch_u64("expert_feed_forward_length")
    }

    /// `<arch>.expert_shared_feed_forward_length`.
    pub fn expert_shared_feed_forward_length(&self) -> Result<Option<u64>> {
        self.arch_u64("expert_shared_feed_forward_length")
    }

    // ----- recurrent (Mamba, RWKV) -----

    /// `<arch>.ssm.conv_kernel`.
    pub fn ssm_conv_kernel(&self) -> Result<Option<u64>> {
        self.arch_u64("ssm.conv_kernel")
    }

    /// `<arch>.ssm.inner_size`.
    pub fn ssm_inner_size(&self) -> Result<Option<u64>> {
        self.arch_u64("ssm.inner_size")
    }

    /// `<arch>.ssm.state_size`.
    pub fn ssm_state_size(&self) -> Result<Option<u64>> {
        self.arch_u64("ssm.state_size")
    }

    /// `<arch>.ssm.time_step_rank`.
    pub fn ssm_time_step_rank(&self) -> Result<Option<u64>> {
        self.arch_u64("ssm.time_step_rank")
    }

    /// `<arch>.ssm.group_count` (Mamba-2).
    pub fn ssm_group_count(&self) -> Result<Option<u64>> {
        self.arch_u64("ssm.group_count")
    }

    /// `<arch>.wkv.head_size` (RWKV).
    pub fn wkv_head_size(&self) -> Result<Option<u64>> {
        self.arch_u64("wkv.head_size")
    }

    // ----- vocabulary, pooling, model kind -----

    /// Vocabulary size: the length of `tokenizer.ggml.tokens` (what llama.cpp uses), else
    /// `<arch>.vocab_size`.
    pub fn vocab_size(&self) -> Result<Option<u64>> {
        match self.metadata().array_len("tokenizer.ggml.tokens")? {
            Some(n) => Ok(Some(n)),
            None => self.arch_u64("vocab_size"),
        }
    }

    /// `<arch>.pooling_type`: llama.cpp's `llama_pooling_type` (0 none, 1 mean, 2 cls,
    /// 3 last, 4 rank).
    pub fn pooling_type(&self) -> Result<Option<u64>> {
        self.arch_u64("pooling_type")
    }

    /// `<arch>.attention.causal` (default true).
    pub fn causal_attention(&self) -> Result<bool> {
        let key = self.arch_key("attention.causal")?;
        Ok(self.metadata().get_bool(&key)?.unwrap_or(true))
    }

    /// Whether the file looks like an embedding model: an encoder-only architecture (BERT
    /// family), non-causal attention, or mean/cls/last pooling.
    pub fn is_embedding(&self) -> Result<bool> {
        let arch = self.architecture()?;
        Ok(EMBEDDING_ARCHITECTURES.contains(&arch)
            || !self.causal_attention()?
            || matches!(self.pooling_type()?, Some(1..=3)))
    }

    /// Whether the file looks like a reranker: rank pooling, or a classifier head
    /// (`cls.output.weight`) on a BERT-family model.
    pub fn is_reranker(&self) -> Result<bool> {
        Ok(self.pooling_type()? == Some(POOLING_RANK)
            || (EMBEDDING_ARCHITECTURES.contains(&self.architecture()?)
                && self.tensor("cls.output.weight").is_some()))
    }

    // ----- multimodal projector (clip / mmproj) -----

    /// Whether this is a clip (mmproj) file: `general.architecture == "clip"` or `clip.*` keys.
    pub fn is_clip(&self) -> bool {
        self.metadata()
            .get_str("general.architecture")
            .ok()
            .flatten()
            == Some("clip")
            || self.metadata().has_prefix("clip.")
    }

    /// The projector type: `clip.projector_type`, else the vision's, else the audio's.
    pub fn projector_type(&self) -> Result<Option<&str>> {
        for key in [
            "clip.projector_type",
            "clip.vision.projector_type",
            "clip.audio.projector_type",
        ] {
            if let Some(v) = self.metadata().get_str(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// `clip.has_vision_encoder` (false when absent).
    pub fn has_vision_encoder(&self) -> Result<bool> {
        Ok(self
            .metadata()
            .get_bool("clip.has_vision_encoder")?
            .unwrap_or(false))
    }

    /// `clip.has_audio_encoder` (false when absent).
    pub fn has_audio_encoder(&self) -> Result<bool> {
        Ok(self
            .metadata()
            .get_bool("clip.has_audio_encoder")?
            .unwrap_or(false))
    }

    /// The vision encoder of a clip file (`clip.vision.*`), when it has one.
    pub fn clip_vision(&self) -> Result<Option<ClipEncoder>> {
        if !self.has_vision_encoder()? {
            return Ok(None);
        }
        let mut encoder = self.clip_encoder("clip.vision")?;
        encoder.image_size = self.metadata().get_u64("clip.vision.image_size")?;
        encoder.patch_size = self.metadata().get_u64("clip.vision.patch_size")?;
        Ok(Some(encoder))
    }

    /// The audio encoder of a clip file (`clip.audio.*`), when it has one.
    pub fn clip_audio(&self) -> Result<Option<ClipEncoder>> {
        if !self.has_audio_encoder()? {
            return Ok(None);
        }
        self.clip_encoder("clip.audio").map(Some)
    }

    fn clip_encoder(&self, prefix: &str) -> Result<ClipEncoder> {
        let metadata = self.metadata();
        let get = |suffix: &str| metadata.get_u64(&format!("{prefix}.{suffix}"));
        let projector_type = match metadata.get_str(&format!("{prefix}.projector_type"))? {
            Some(own) => Some(own),
            None => metadata.get_str("clip.projector_type")?,
        };
        Ok(ClipEncoder {
            embedding_length: get("embedding_length")?,
            block_count: get("block_count")?,
            head_count: get("attention.head_count")?,
            feed_forward_length: get("feed_forward_length")?,
            projection_dim: get("projection_dim")?,
            image_size: None,
            patch_size: None,
            projector_type: projector_type.map(str::to_owned),
        })
    }

    // ----- image diffusion (stable-diffusion.cpp) -----

    /// Whether the tensors are those of a stable-diffusion.cpp model (UNet/DiT, VAE or text
    /// encoder prefixes).
    pub fn is_diffusion(&self) -> bool {
        self.diffusion().0 != 0
    }

    /// The diffusion tensor-name prefixes present (e.g. `model.diffusion_model.`,
    /// `first_stage_model.`), in a fixed order.
    pub fn diffusion_markers(&self) -> Vec<&'static str> {
        let found = self.diffusion().0;
        DIFFUSION_PREFIXES
            .into_iter()
            .enumerate()
            .filter(|(i, _)| found & (1 << i) != 0)
            .map(|(_, prefix)| prefix)
            .collect()
    }
}

/// The [`DIFFUSION_PREFIXES`] that some tensor name starts with, one bit each (bit `i` for
/// prefix `i`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DiffusionMarkers(u8);

impl DiffusionMarkers {
    /// The prefixes `tensors` carry, in one pass over their names.
    pub(crate) fn of(tensors: &[TensorInfo]) -> Self {
        let mut found = 0u8;
        for tensor in tensors {
            for (i, prefix) in DIFFUSION_PREFIXES.iter().enumerate() {
                if tensor.name.starts_with(prefix) {
                    found |= 1 << i;
                }
            }
        }
        DiffusionMarkers(found)
    }
}

fn first(per_layer: &[u64]) -> u64 {
    per_layer.first().copied().unwrap_or(0)
}

/// The short name of a `general.file_type` value (llama.cpp's `llama_ftype`, as the `gguf`
/// package's `LlamaFileType` names it without `MOSTLY_`), e.g. 15 -> `Q4_K_M`.
pub fn file_type_name(file_type: u64) -> Option<&'static str> {
    // From gguf-py `LlamaFileType` (gguf 0.19.0); 4-6 and 33-35 were removed upstream.
    const NAMES: [(u64, &str); 36] = [
        (0, "F32"),
        (1, "F16"),
        (2, "Q4_0"),
        (3, "Q4_1"),
        (7, "Q8_0"),
        (8, "Q5_0"),
        (9, "Q5_1"),
        (10, "Q2_K"),
        (11, "Q3_K_S"),
        (12, "Q3_K_M"),
        (13, "Q3_K_L"),
        (14, "Q4_K_S"),
        (15, "Q4_K_M"),
        (16, "Q5_K_S"),
        (17, "Q5_K_M"),
        (18, "Q6_K"),
        (19, "IQ2_XXS"),
        (20, "IQ2_XS"),
        (21, "Q2_K_S"),
        (22, "IQ3_XS"),
        (23, "IQ3_XXS"),
        (24, "IQ1_S"),
        (25, "IQ4_NL"),
        (26, "IQ3_S"),
        (27, "IQ3_M"),
        (28, "IQ2_S"),
        (29, "IQ2_M"),
        (30, "IQ4_XS"),
        (31, "IQ1_M"),
        (32, "BF16"),
        (36, "TQ1_0"),
        (37, "TQ2_0"),
        (38, "MXFP4_MOE"),
        (39, "NVFP4"),
        (40, "Q1_0"),
        (1024, "GUESSED"),
    ];
    NAMES
        .iter()
        .find(|(id, _)| *id == file_type)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::gguf::{GgufHeader, Metadata, MetadataEntry, ReadOptions, Value};

    /// Llama-3.2-1B's header (16 layers, 32 heads, 8 KV heads, n_embd 2048) with `edit`
    /// applied to its metadata entries.
    fn llama_with(edit: impl Fn(&mut MetadataEntry)) -> GgufModel {
        let path: PathBuf =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/llama-3.2-1b-F16.header.gguf");
        let file = std::fs::File::open(&path).unwrap();
        let mut header = GgufHeader::read(file, None, &path, &ReadOptions::default()).unwrap();
        let entries = header
            .metadata
            .iter()
            .cloned()
            .map(|mut e| {
                edit(&mut e);
                e
            })
            .collect();
        header.metadata = Metadata::new(path.clone(), entries);
        GgufModel::from_headers(vec![(path, header)]).unwrap()
    }

    fn set(key: &'static str, value: Value) -> impl Fn(&mut MetadataEntry) {
        move |e| {
            if e.key == key {
                e.value = value.clone();
            }
        }
    }

    /// The error must name the key and point at its entry.
    fn assert_names(err: Error, key: &str) {
        match err {
            Error::Parse { offset, what, .. } => {
                assert!(what.contains(key) && offset > 0, "{what} at {offset}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_real_header_passes() {
        let model = llama_with(|_| {});
        assert_eq!(model.block_count().unwrap(), 16);
        assert_eq!(model.tensor_layers().len(), 16);
        assert_eq!(model.head_count().unwrap(), 32);
        assert_eq!(model.key_length().unwrap(), 64);
    }

    /// The sliding layers' head sizes default to the full ones (the real header has no
    /// `_swa` key), are read when present and bounded like `key_length`.
    #[test]
    fn sliding_head_sizes_default_to_the_full_ones() {
        let model = llama_with(|_| {});
        assert_eq!(model.key_length_swa().unwrap(), 64);
        assert_eq!(model.value_length_swa().unwrap(), 64);
        let own = llama_with(|e| {
            if e.key == "llama.attention.key_length" {
                e.key = "llama.attention.key_length_swa".into();
                e.value = Value::U32(256);
            }
        });
        // key_length is now absent: 2048 / 32 heads = 64; the sliding K head is 256.
        assert_eq!(own.key_length().unwrap(), 64);
        assert_eq!(own.key_length_swa().unwrap(), 256);
        assert_eq!(own.value_length_swa().unwrap(), 64);
        let huge = llama_with(|e| {
            if e.key == "llama.attention.value_length" {
                e.key = "llama.attention.value_length_swa".into();
                e.value = Value::U64(1 << 62);
            }
        });
        assert_names(
            huge.value_length_swa().unwrap_err(),
            "llama.attention.value_length_swa",
        );
    }

    #[test]
    fn zero_heads_are_refused() {
        let model = llama_with(set("llama.attention.head_count", Value::U32(0)));
        assert_names(
            model.head_count().unwrap_err(),
            "llama.attention.head_count",
        );
        // The KV head count defaults to the query heads.
        let no_kv = llama_with(|e| {
            set("llama.attention.head_count", Value::U32(0))(e);
            if e.key == "llama.attention.head_count_kv" {
                e.key = "unused".into();
            }
        });
        assert_names(
            no_kv.head_count_kv().unwrap_err(),
            "llama.attention.head_count",
        );
    }

    /// llama.cpp loads `blk.0` to `blk.<block_count - 1>` and fails on a missing tensor.
    #[test]
    fn block_count_must_match_the_layer_tensors() {
        for blocks in [4096, 17, 15] {
            let model = llama_with(set("llama.block_count", Value::U32(blocks)));
            let err = model.block_count().unwrap_err();
            assert_names(err.clone(), "llama.block_count");
            assert!(err.to_string().contains("16 repeating layers"), "{err}");
            assert!(model.head_count_per_layer().is_err());
        }
    }

    /// Widths near 2^62 once overflowed `heads × head size × element size` downstream.
    #[test]
    fn implausible_widths_are_refused() {
        let huge = Value::U64(1 << 62);
        let wide = llama_with(set("llama.embedding_length", huge.clone()));
        assert_names(
            wide.embedding_length().unwrap_err(),
            "llama.embedding_length",
        );
        let long_keys = llama_with(set("llama.attention.key_length", huge.clone()));
        assert_names(
            long_keys.key_length().unwrap_err(),
            "llama.attention.key_length",
        );
        let many_heads = llama_with(set("llama.attention.head_count_kv", huge));
        assert_names(
            many_heads.head_count_kv().unwrap_err(),
            "llama.attention.head_count_kv",
        );
    }
}
