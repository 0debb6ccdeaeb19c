//! `config.json` (and `generation_config.json`) of a Hugging Face model, typed.
//!
//! Multimodal models nest their language model under `text_config` (Llava, Mllama, Gemma 3),
//! `llm_config` (InternVL), `language_config` or `thinker_config.text_config` (Qwen-Omni); the
//! text config is resolved from there, the vision tower from `vision_config`. Keys a config
//! may spell several ways (`num_hidden_layers` / `n_layer`, `num_local_experts` /
//! `n_routed_experts` / `num_experts`) are read through alias lists. Absent keys are `None`;
//! keys of the wrong type are an [`Error::Parse`] naming the file, the key and its offset.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::JsonDoc;
use super::quantization::QuantizationConfig;
use crate::{Error, Result};

/// Where multimodal configs keep their language model, in the order they are tried.
const TEXT_CONFIG_PATHS: [&[&str]; 4] = [
    &["text_config"],
    &["llm_config"],
    &["language_config"],
    &["thinker_config", "text_config"],
];

/// Where multimodal configs keep their vision tower.
const VISION_CONFIG_PATHS: [&[&str]; 2] =
    [&["vision_config"], &["thinker_config", "vision_config"]];

/// Most layers accepted before per-layer tables are built (the largest published models have
/// a few hundred); a larger count in a config is refused rather than allocated.
pub const MAX_LAYERS: u64 = 1 << 16;

/// Longest context a config may declare (`max_position_embeddings`): 2^32 tokens, thousands of
/// times the longest published context; beyond it token counts overflow the products of
/// memory estimates. Drivers apply it to the context they derive too (rope scaling).
pub const MAX_CONTEXT: u64 = 1 << 32;

/// Aliases of the dimension keys, canonical name first.
const HIDDEN_SIZE: &[&str] = &["hidden_size", "n_embd", "d_model"];
const LAYERS: &[&str] = &["num_hidden_layers", "n_layer", "num_layers", "n_layers"];
const HEADS: &[&str] = &["num_attention_heads", "n_head", "num_heads"];
const KV_HEADS: &[&str] = &["num_key_value_heads", "num_kv_heads", "n_head_kv"];
const HEAD_DIM: &[&str] = &["head_dim"];
const VOCAB_SIZE: &[&str] = &["vocab_size"];
const MAX_POSITION: &[&str] = &[
    "max_position_embeddings",
    "n_positions",
    "seq_length",
    "max_sequence_length",
];

/// transformers' config-class defaults for keys that published `config.json` files omit
/// because the class supplies them (transformers `models/gemma3/configuration_gemma3.py`
/// `Gemma3TextConfig.__init__`; `Gemma2Config` and `GemmaConfig` tie embeddings by default).
const MODEL_TYPE_DEFAULTS: &[(&str, &str, Fallback)] = &[
    ("gemma3_text", "vocab_size", Fallback::Int(262_208)),
    (
        "gemma3_text",
        "max_position_embeddings",
        Fallback::Int(131_072),
    ),
    ("gemma3_text", "sliding_window_pattern", Fallback::Int(6)),
    ("gemma3_text", "tie_word_embeddings", Fallback::Bool(true)),
    ("gemma2", "tie_word_embeddings", Fallback::Bool(true)),
    ("gemma", "tie_word_embeddings", Fallback::Bool(true)),
];

#[derive(Clone, Copy)]
enum Fallback {
    Int(u64),
    Bool(bool),
}

impl Fallback {
    fn to_value(self) -> Value {
        match self {
            Fallback::Int(n) => Value::from(n),
            Fallback::Bool(b) => Value::from(b),
        }
    }
}

/// A typed `config.json`: the keys the estimators read, not the document (a launcher that
/// writes a changed copy reads the file again: [`HfModel::config_document`](super::HfModel::config_document)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfConfig {
    /// `architectures` (top level): the model class a runtime instantiates.
    pub architectures: Vec<String>,
    /// `model_type` (top level).
    pub model_type: Option<String>,
    /// `torch_dtype` (or the newer `dtype`), top level first, else the text config's.
    pub torch_dtype: Option<String>,
    /// The language model (the whole config for text-only models).
    pub text: TextConfig,
    /// The vision tower of multimodal models.
    pub vision: Option<VisionConfig>,
    /// `quantization_config`, top level first, else the text config's.
    pub quantization: Option<QuantizationConfig>,
}

impl HfConfig {
    /// Reads and types `config.json` at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_doc(&JsonDoc::read(path)?)
    }

    /// Types the text of a `config.json`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        Self::from_doc(&JsonDoc::parse(text.to_owned(), origin)?)
    }

    fn from_doc(doc: &JsonDoc) -> Result<Self> {
        let text_path = find_section(doc, &TEXT_CONFIG_PATHS)?.unwrap_or(&[]);
        let text = Section::new(doc, text_path)?;
        let torch_dtype = match dtype_at(doc, &[])? {
            Some(d) => Some(d),
            None => dtype_at(doc, text_path)?,
        };
        let vision = find_section(doc, &VISION_CONFIG_PATHS)?
            .map(|path| VisionConfig::read(&Section::new(doc, path)?))
            .transpose()?;
        Ok(HfConfig {
            architectures: doc.get(&["architectures"])?.unwrap_or_default(),
            model_type: doc.get(&["model_type"])?,
            torch_dtype,
            text: TextConfig::read(&text)?,
            vision,
            quantization: QuantizationConfig::find(doc, text_path)?,
        })
    }

    /// Approximate parameter count of the language model, from the config alone; see
    /// [`TextConfig::estimated_parameters`].
    pub fn estimated_parameters(&self) -> Option<u64> {
        self.text.estimated_parameters()
    }
}

/// The dimensions every transformer memory estimate needs, present and plausible; see
/// [`HfConfig::dimensions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDimensions {
    /// Decoder layers: 1 to [`MAX_LAYERS`].
    pub layers: u64,
    /// Width of the hidden state.
    pub hidden_size: u64,
    /// Attention heads.
    pub heads: u64,
    /// Key/value heads: at least one, at most `heads`.
    pub kv_heads: u64,
    /// Per-head dimension (`head_dim`, else hidden size / attention heads).
    pub head_dim: u64,
    /// Vocabulary size.
    pub vocab_size: u64,
}

impl HfConfig {
    /// The text model's dimensions, each present and plausible: 1 to [`MAX_LAYERS`] layers,
    /// at least one attention head, between one and that many key/value heads, and a head
    /// dimension, hidden size and vocabulary of at least one; and a declared context
    /// (`max_position_embeddings`), when there is one, of 1 to [`MAX_CONTEXT`] tokens. The shared check of the drivers
    /// that size a model from its config, so that none of them plans a model of zero layers
    /// or divides by zero heads.
    ///
    /// `file` is the config's path. A failure is an [`Error::Parse`] naming the file and the
    /// key; its offset is that of the value when the file can be read again (the check runs
    /// on the typed config, which keeps no positions), else 0.
    pub fn dimensions(&self, file: &Path) -> Result<TextDimensions> {
        let text = &self.text;
        let check = DimensionCheck { text, file };
        let heads = check.within(HEADS, text.num_attention_heads, 1..=u64::MAX)?;
        if let Some(context) = text.max_position_embeddings {
            check.within(MAX_POSITION, Some(context), 1..=MAX_CONTEXT)?;
        }
        Ok(TextDimensions {
            layers: check.within(LAYERS, text.num_hidden_layers, 1..=MAX_LAYERS)?,
            hidden_size: check.within(HIDDEN_SIZE, text.hidden_size, 1..=u64::MAX)?,
            heads,
            kv_heads: check.within(KV_HEADS, text.num_key_value_heads, 1..=heads)?,
            head_dim: check.within(HEAD_DIM, text.head_dim, 1..=u64::MAX)?,
            vocab_size: check.within(VOCAB_SIZE, text.vocab_size, 1..=u64::MAX)?,
        })
    }
}

/// [`HfConfig::dimensions`]' checks of one text config.
struct DimensionCheck<'a> {
    text: &'a TextConfig,
    file: &'a Path,
}

impl DimensionCheck<'_> {
    /// The value of the key `aliases[0]` (read through `aliases`), when present and in `range`.
    fn within(
        &self,
        aliases: &[&str],
        value: Option<u64>,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64> {
        let value = value.ok_or_else(|| self.error(aliases, "is missing".to_string()))?;
        if range.contains(&value) {
            return Ok(value);
        }
        let bound = match *range.end() {
            u64::MAX => format!("at least {}", range.start()),
            end => format!("between {} and {end}", range.start()),
        };
        Err(self.error(aliases, format!("is {value}; it must be {bound}")))
    }

    /// An [`Error::Parse`] about the key, at its offset when the file reads again.
    fn error<'k>(&'k self, aliases: &[&'k str], what: String) -> Error {
        let section: Vec<&'k str> = self
            .text
            .location
            .split('.')
            .filter(|p| !p.is_empty())
            .collect();
        let qualified = |alias: &'k str| [section.as_slice(), &[alias]].concat();
        let Ok(doc) = JsonDoc::read(self.file) else {
            return Error::parse(
                self.file,
                0,
                format!("`{}`: {what}", qualified(aliases[0]).join(".")),
            );
        };
        // Nested configs inherit some keys from the top level.
        let candidates = aliases
            .iter()
            .map(|a| qualified(a))
            .chain(aliases.iter().map(|a| vec![*a]));
        let path = candidates
            .into_iter()
            .find(|path| doc.at(path).is_some())
            .unwrap_or_else(|| qualified(aliases[0]));
        doc.invalid(&path, what)
    }
}

fn dtype_at(doc: &JsonDoc, path: &[&str]) -> Result<Option<String>> {
    for key in ["torch_dtype", "dtype"] {
        if let Some(d) = doc.get(&[path, &[key]].concat())? {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// The first of `paths` that holds an object; a non-object there is a type error.
fn find_section<'p>(doc: &JsonDoc, paths: &[&'p [&'p str]]) -> Result<Option<&'p [&'p str]>> {
    for path in paths {
        if doc.is_object(path)? {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// One object of the config (the top level or a nested text/vision config), read by alias.
struct Section<'a> {
    doc: &'a JsonDoc,
    path: &'a [&'a str],
    model_type: Option<String>,
}

impl<'a> Section<'a> {
    fn new(doc: &'a JsonDoc, path: &'a [&'a str]) -> Result<Self> {
        let model_type = doc.get(&[path, &["model_type"]].concat())?;
        Ok(Section {
            doc,
            path,
            model_type,
        })
    }

    fn key_path<'k>(&self, key: &'k str) -> Vec<&'k str>
    where
        'a: 'k,
    {
        [self.path, &[key]].concat()
    }

    /// The first alias present in this section, else the model type's documented default.
    fn get<T: DeserializeOwned>(&self, aliases: &[&str]) -> Result<Option<T>> {
        for alias in aliases {
            if let Some(v) = self.doc.get(&self.key_path(alias))? {
                return Ok(Some(v));
            }
        }
        Ok(self.default_for(aliases[0]))
    }

    /// Like [`Section::get`], but a nested section falls back to the top level (multimodal
    /// configs keep `vocab_size` or `tie_word_embeddings` there).
    fn get_inherited<T: DeserializeOwned>(&self, aliases: &[&str]) -> Result<Option<T>> {
        let own = self.get(aliases)?;
        if own.is_some() || self.path.is_empty() {
            return Ok(own);
        }
        Section::new(self.doc, &[])?.get(aliases)
    }

    fn default_for<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let model_type = self.model_type.as_deref()?;
        MODEL_TYPE_DEFAULTS
            .iter()
            .find(|(t, k, _)| *t == model_type && *k == key)
            .and_then(|(_, _, v)| T::deserialize(v.to_value()).ok())
    }

    fn invalid(&self, key: &str, what: impl std::fmt::Display) -> Error {
        self.doc.invalid(&self.key_path(key), what)
    }
}

/// How one layer attends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum LayerAttention {
    /// Full (global) attention over the whole context.
    Full,
    /// Sliding-window attention over the last `sliding_window` tokens.
    Sliding,
    /// Another kind, as `layer_types` names it (`linear_attention`, ...).
    Other(String),
}

impl From<String> for LayerAttention {
    fn from(s: String) -> Self {
        match s.as_str() {
            "full_attention" => LayerAttention::Full,
            "sliding_attention" => LayerAttention::Sliding,
            _ => LayerAttention::Other(s),
        }
    }
}

impl From<LayerAttention> for String {
    fn from(a: LayerAttention) -> Self {
        match a {
            LayerAttention::Full => "full_attention".into(),
            LayerAttention::Sliding => "sliding_attention".into(),
            LayerAttention::Other(s) => s,
        }
    }
}

/// `rope_scaling`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `rope_type` (or the older `type`): `llama3`, `yarn`, `linear`, `dynamic`, `mrope`, ...
    pub rope_type: Option<String>,
    /// `factor`.
    pub factor: Option<f64>,
    /// `original_max_position_embeddings`.
    pub original_max_position_embeddings: Option<u64>,
    /// The whole object.
    pub raw: Value,
}

/// Mixture-of-experts settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoeConfig {
    /// Routed experts per MoE layer (`num_local_experts`, `n_routed_experts` or `num_experts`).
    pub num_experts: u64,
    /// Experts each token is routed to (`num_experts_per_tok` or `experts_per_token`).
    pub num_experts_per_tok: Option<u64>,
    /// Intermediate size of one expert, when it differs from `intermediate_size`.
    pub moe_intermediate_size: Option<u64>,
    /// Shared experts per MoE layer (`n_shared_experts`, DeepSeek).
    pub n_shared_experts: Option<u64>,
    /// Intermediate size of the shared expert (`shared_expert_intermediate_size`, Qwen MoE).
    pub shared_expert_intermediate_size: Option<u64>,
    /// Leading layers that stay dense (`first_k_dense_replace`, DeepSeek).
    pub first_k_dense_replace: Option<u64>,
}

/// Multi-head latent attention dimensions (DeepSeek V2/V3, Kimi K2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlaConfig {
    /// Rank of the compressed KV latent (`kv_lora_rank`): what the KV cache stores per token.
    pub kv_lora_rank: u64,
    /// Rank of the compressed query (`q_lora_rank`); `None` when queries are not compressed.
    pub q_lora_rank: Option<u64>,
    /// Per-head query/key dimension without rotary embedding.
    pub qk_nope_head_dim: u64,
    /// Per-head rotary dimension, shared by all heads in the cache.
    pub qk_rope_head_dim: u64,
    /// Per-head value dimension.
    pub v_head_dim: u64,
}

/// The language-model part of a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Where it was found, dot-separated (`""` for the top level, `text_config`, `llm_config`).
    pub location: String,
    /// `model_type` of this section.
    pub model_type: Option<String>,
    /// `hidden_size` (`n_embd`, `d_model`).
    pub hidden_size: Option<u64>,
    /// `num_hidden_layers` (`n_layer`, `num_layers`, `n_layers`).
    pub num_hidden_layers: Option<u64>,
    /// `num_attention_heads` (`n_head`, `num_heads`).
    pub num_attention_heads: Option<u64>,
    /// `num_key_value_heads` (`num_kv_heads`, `n_head_kv`); defaults to the attention heads.
    pub num_key_value_heads: Option<u64>,
    /// `head_dim`; defaults to hidden size / attention heads.
    pub head_dim: Option<u64>,
    /// `intermediate_size` (`ffn_hidden_size`, `n_inner`).
    pub intermediate_size: Option<u64>,
    /// `vocab_size` (inherited from the top level by nested configs).
    pub vocab_size: Option<u64>,
    /// `max_position_embeddings` (`n_positions`, `seq_length`, `max_sequence_length`).
    pub max_position_embeddings: Option<u64>,
    /// `rope_theta`.
    pub rope_theta: Option<f64>,
    /// `rope_scaling`.
    pub rope_scaling: Option<RopeScaling>,
    /// `tie_word_embeddings` (inherited from the top level by nested configs).
    pub tie_word_embeddings: Option<bool>,
    /// `attention_bias`.
    pub attention_bias: Option<bool>,
    /// The sliding window in tokens, when sliding-window attention is in use
    /// (`None` when `use_sliding_window` is false, as in Qwen2, or `sliding_window` is null).
    pub sliding_window: Option<u64>,
    /// How each layer attends, one entry per layer (empty when the layer count is unknown):
    /// from `layer_types`; else `sliding_window_pattern` (every n-th layer global, Gemma 3);
    /// Gemma 2's alternation (even layers sliding); Qwen2's `max_window_layers` (layers from
    /// that index on sliding); else every layer sliding when a window is set, full otherwise.
    pub layer_attention: Vec<LayerAttention>,
    /// Mixture-of-experts settings, for MoE models.
    pub moe: Option<MoeConfig>,
    /// Multi-head latent attention dimensions, for MLA models.
    pub mla: Option<MlaConfig>,
}

impl TextConfig {
    fn read(s: &Section) -> Result<Self> {
        let hidden_size = s.get(HIDDEN_SIZE)?;
        let num_hidden_layers = s.get::<u64>(LAYERS)?;
        if num_hidden_layers.is_some_and(|n| n > MAX_LAYERS) {
            return Err(s.invalid("num_hidden_layers", "more layers than any known model"));
        }
        let num_attention_heads: Option<u64> = s.get(HEADS)?;
        if num_attention_heads == Some(0) {
            return Err(s.invalid("num_attention_heads", "is zero"));
        }
        let explicit_kv = s.get(KV_HEADS)?;
        let head_dim = match s.get(HEAD_DIM)? {
            Some(d) => Some(d),
            None => hidden_size.zip(num_attention_heads).map(|(h, n)| h / n),
        };
        let sliding_window = sliding_window(s)?;
        let model_type = s.model_type.clone();
        Ok(TextConfig {
            location: s.path.join("."),
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads: explicit_kv.or(num_attention_heads),
            head_dim,
            intermediate_size: s.get(&["intermediate_size", "ffn_hidden_size", "n_inner"])?,
            vocab_size: s.get_inherited(VOCAB_SIZE)?,
            max_position_embeddings: s.get(MAX_POSITION)?,
            rope_theta: s.get(&["rope_theta"])?,
            rope_scaling: rope_scaling(s)?,
            tie_word_embeddings: s.get_inherited(&["tie_word_embeddings"])?,
            attention_bias: s.get(&["attention_bias"])?,
            layer_attention: layer_attention(s, num_hidden_layers, sliding_window)?,
            sliding_window,
            moe: moe(s)?,
            mla: mla(s)?,
            model_type,
        })
    }

    /// Number of layers using sliding-window attention.
    pub fn sliding_layers(&self) -> usize {
        self.layer_attention
            .iter()
            .filter(|a| **a == LayerAttention::Sliding)
            .count()
    }

    /// Approximate parameter count of a llama-like decoder (dense, MoE or MLA) from the
    /// config alone, for directories without readable weights.
    ///
    /// Counts token embeddings, the output head (unless tied), attention projections (GQA, or
    /// MLA with its low-rank projections and norms), q/k/v biases where the family has them
    /// (`attention_bias`, Qwen2), gated MLPs (three matrices) or MoE layers (routed experts,
    /// shared experts, router) from `first_k_dense_replace` on, and RMSNorm weights. It does
    /// not count vision towers, multi-token-prediction layers, expert biases, or the different
    /// layouts of non-llama families (BERT, GPT-2), so it is approximate for those. `None`
    /// when a needed size is missing or the count overflows.
    pub fn estimated_parameters(&self) -> Option<u64> {
        let hidden = self.hidden_size?;
        let layers = self.num_hidden_layers?;
        let embeddings = mul(&[self.vocab_size?, hidden])?;
        let head = if self.tie_word_embeddings == Some(true) {
            0
        } else {
            embeddings
        };
        let norms = mul(&[2, hidden])?;
        let per_layer_common = self.attention_parameters()?.checked_add(norms)?;
        let dense_layers = self
            .moe
            .as_ref()
            .map_or(layers, |m| m.first_k_dense_replace.unwrap_or(0).min(layers));
        let moe_layers = layers - dense_layers;
        let dense = mul(&[dense_layers, self.dense_mlp_parameters()?])?;
        let sparse = match moe_layers {
            0 => 0,
            n => mul(&[n, self.moe_mlp_parameters()?])?,
        };
        sum(&[
            embeddings,
            head,
            mul(&[layers, per_layer_common])?,
            dense,
            sparse,
            hidden,
        ])
    }

    fn attention_parameters(&self) -> Option<u64> {
        let hidden = self.hidden_size?;
        let heads = self.num_attention_heads?;
        if let Some(mla) = &self.mla {
            return mla.parameters(hidden, heads);
        }
        let head_dim = self.head_dim?;
        let kv = self.num_key_value_heads?;
        let q = mul(&[heads, head_dim])?;
        let k = mul(&[kv, head_dim])?;
        let weights = mul(&[hidden, sum(&[q, k, k, q])?])?;
        let qkv_bias = self.attention_bias == Some(true)
            || matches!(
                self.model_type.as_deref(),
                Some("qwen2" | "qwen2_moe" | "qwen2_vl")
            );
        let bias = if qkv_bias { sum(&[q, k, k])? } else { 0 };
        let o_bias = if self.attention_bias == Some(true) {
            hidden
        } else {
            0
        };
        sum(&[weights, bias, o_bias])
    }

    fn dense_mlp_parameters(&self) -> Option<u64> {
        mul(&[3, self.hidden_size?, self.intermediate_size?])
    }

    fn moe_mlp_parameters(&self) -> Option<u64> {
        let moe = self.moe.as_ref()?;
        let hidden = self.hidden_size?;
        let expert_size = moe.moe_intermediate_size.or(self.intermediate_size)?;
        let expert = mul(&[3, hidden, expert_size])?;
        let routed = mul(&[moe.num_experts, expert])?;
        let router = mul(&[hidden, moe.num_experts])?;
        let shared = match (moe.n_shared_experts, moe.shared_expert_intermediate_size) {
            (Some(n), _) => mul(&[n, expert])?,
            (None, Some(size)) => sum(&[mul(&[3, hidden, size])?, hidden])?,
            (None, None) => 0,
        };
        sum(&[routed, router, shared])
    }
}

impl MlaConfig {
    fn parameters(&self, hidden: u64, heads: u64) -> Option<u64> {
        let qk_head = self.qk_nope_head_dim.checked_add(self.qk_rope_head_dim)?;
        let q = match self.q_lora_rank {
            Some(rank) => sum(&[mul(&[hidden, rank])?, rank, mul(&[rank, heads, qk_head])?])?,
            None => mul(&[hidden, heads, qk_head])?,
        };
        let kv_down = mul(&[
            hidden,
            self.kv_lora_rank.checked_add(self.qk_rope_head_dim)?,
        ])?;
        let kv_up = mul(&[
            self.kv_lora_rank,
            heads,
            self.qk_nope_head_dim.checked_add(self.v_head_dim)?,
        ])?;
        let out = mul(&[heads, self.v_head_dim, hidden])?;
        sum(&[q, kv_down, self.kv_lora_rank, kv_up, out])
    }
}

fn mul(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f))
}

fn sum(terms: &[u64]) -> Option<u64> {
    terms.iter().try_fold(0u64, |acc, &t| acc.checked_add(t))
}

fn rope_scaling(s: &Section) -> Result<Option<RopeScaling>> {
    let Some(raw) = s.get::<Map<String, Value>>(&["rope_scaling"])? else {
        return Ok(None);
    };
    let key = |k: &'static str| [s.path, &["rope_scaling", k]].concat();
    let rope_type = match s.doc.get(&key("rope_type"))? {
        Some(t) => Some(t),
        None => s.doc.get(&key("type"))?,
    };
    Ok(Some(RopeScaling {
        rope_type,
        factor: s.doc.get(&key("factor"))?,
        original_max_position_embeddings: s.doc.get(&key("original_max_position_embeddings"))?,
        raw: Value::Object(raw),
    }))
}

fn sliding_window(s: &Section) -> Result<Option<u64>> {
    if s.get::<bool>(&["use_sliding_window"])? == Some(false) {
        return Ok(None);
    }
    s.get(&["sliding_window"])
}

fn layer_attention(
    s: &Section,
    layers: Option<u64>,
    window: Option<u64>,
) -> Result<Vec<LayerAttention>> {
    let Some(layers) = layers else {
        return Ok(Vec::new());
    };
    if let Some(types) = s.get::<Vec<LayerAttention>>(&["layer_types"])? {
        if types.len() as u64 != layers {
            return Err(s.invalid(
                "layer_types",
                format!("has {} entries for {layers} layers", types.len()),
            ));
        }
        return Ok(types);
    }
    let sliding_if = |is_sliding: &dyn Fn(u64) -> bool| {
        (0..layers)
            .map(|i| match window.is_some() && is_sliding(i) {
                true => LayerAttention::Sliding,
                false => LayerAttention::Full,
            })
            .collect()
    };
    if let Some(pattern) = s.get::<u64>(&["sliding_window_pattern"])? {
        if pattern == 0 {
            return Err(s.invalid("sliding_window_pattern", "is zero"));
        }
        // Gemma 3: `is_sliding = bool((layer_idx + 1) % sliding_window_pattern)`.
        return Ok(sliding_if(&|i| !(i + 1).is_multiple_of(pattern)));
    }
    if s.model_type.as_deref() == Some("gemma2") {
        // Gemma 2: `is_sliding = not bool(layer_idx % 2)`.
        return Ok(sliding_if(&|i| i.is_multiple_of(2)));
    }
    if let Some(first) = s.get::<u64>(&["max_window_layers"])? {
        // Qwen2: layers from `max_window_layers` on use the window.
        return Ok(sliding_if(&|i| i >= first));
    }
    Ok(sliding_if(&|_| true))
}

fn moe(s: &Section) -> Result<Option<MoeConfig>> {
    let experts: Option<u64> = s.get(&["num_local_experts", "n_routed_experts", "num_experts"])?;
    let Some(num_experts) = experts.filter(|&n| n > 0) else {
        return Ok(None);
    };
    Ok(Some(MoeConfig {
        num_experts,
        num_experts_per_tok: s.get(&["num_experts_per_tok", "experts_per_token"])?,
        moe_intermediate_size: s.get(&["moe_intermediate_size"])?,
        n_shared_experts: s.get(&["n_shared_experts"])?,
        shared_expert_intermediate_size: s.get(&["shared_expert_intermediate_size"])?,
        first_k_dense_replace: s.get(&["first_k_dense_replace"])?,
    }))
}

fn mla(s: &Section) -> Result<Option<MlaConfig>> {
    let Some(kv_lora_rank) = s.get(&["kv_lora_rank"])? else {
        return Ok(None);
    };
    let required = |key: &str| -> Result<u64> {
        s.get(&[key])?
            .ok_or_else(|| s.invalid("kv_lora_rank", format!("MLA config without `{key}`")))
    };
    Ok(Some(MlaConfig {
        kv_lora_rank,
        q_lora_rank: s.get(&["q_lora_rank"])?,
        qk_nope_head_dim: required("qk_nope_head_dim")?,
        qk_rope_head_dim: required("qk_rope_head_dim")?,
        v_head_dim: required("v_head_dim")?,
    }))
}

/// The vision tower of a multimodal config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// Where it was found, dot-separated (`vision_config`).
    pub location: String,
    /// `model_type` (`siglip_vision_model`, `intern_vit_6b`, ...).
    pub model_type: Option<String>,
    /// Width of the tower (`embed_dim` first, as Qwen2-VL's `hidden_size` is the merger's
    /// output width; else `hidden_size`, `width`).
    pub hidden_size: Option<u64>,
    /// Layers (`num_hidden_layers`, `depth`, `num_layers`).
    pub num_hidden_layers: Option<u64>,
    /// Attention heads (`num_attention_heads`, `num_heads`, `attention_heads`).
    pub num_attention_heads: Option<u64>,
    /// MLP width (`intermediate_size`, else `mlp_ratio` × width).
    pub intermediate_size: Option<u64>,
    /// Input image side in pixels.
    pub image_size: Option<u64>,
    /// Patch side in pixels.
    pub patch_size: Option<u64>,
}

impl VisionConfig {
    fn read(s: &Section) -> Result<Self> {
        let hidden_size = s.get(&["embed_dim", "hidden_size", "width"])?;
        let intermediate_size = match s.get(&["intermediate_size"])? {
            Some(n) => Some(n),
            None => s
                .get::<f64>(&["mlp_ratio"])?
                .zip(hidden_size)
                .map(|(ratio, width)| (ratio * width as f64).round() as u64),
        };
        Ok(VisionConfig {
            location: s.path.join("."),
            model_type: s.model_type.clone(),
            hidden_size,
            num_hidden_layers: s.get(&["num_hidden_layers", "depth", "num_layers"])?,
            num_attention_heads: s.get(&["num_attention_heads", "num_heads", "attention_heads"])?,
            intermediate_size,
            image_size: s.get(&["image_size"])?,
            patch_size: s.get(&["patch_size"])?,
        })
    }
}

/// A typed `generation_config.json` (the document itself:
/// [`HfModel::generation_document`](super::HfModel::generation_document)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// `max_length`.
    pub max_length: Option<u64>,
    /// `eos_token_id`, one or several.
    pub eos_token_id: Vec<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u64),
    Many(Vec<u64>),
}

impl GenerationConfig {
    /// Reads and types `generation_config.json` at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let doc = JsonDoc::read(path)?;
        let eos_token_id = match doc.get::<OneOrMany>(&["eos_token_id"])? {
            None => Vec::new(),
            Some(OneOrMany::One(id)) => vec![id],
            Some(OneOrMany::Many(ids)) => ids,
        };
        Ok(GenerationConfig {
            max_length: doc.get(&["max_length"])?,
            eos_token_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dimensions(json: &str) -> Result<TextDimensions> {
        let origin = Path::new("in-memory/config.json");
        HfConfig::parse(json, origin)?.dimensions(origin)
    }

    #[test]
    fn plausible_dimensions_are_read_with_their_defaults() {
        let dims = dimensions(
            r#"{"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
                "num_key_value_heads": 8, "vocab_size": 128256}"#,
        )
        .unwrap();
        assert_eq!(
            dims,
            TextDimensions {
                layers: 32,
                hidden_size: 4096,
                heads: 32,
                kv_heads: 8,
                head_dim: 128,
                vocab_size: 128256,
            }
        );
    }

    #[test]
    fn implausible_or_missing_dimensions_name_the_key() {
        let cases = [
            (
                r#"{"hidden_size": 64, "num_attention_heads": 8, "num_hidden_layers": 0, "vocab_size": 10}"#,
                "`num_hidden_layers`: is 0; it must be between 1 and 65536",
            ),
            (
                r#"{"hidden_size": 64, "num_attention_heads": 8, "num_key_value_heads": 9, "num_hidden_layers": 2, "vocab_size": 10}"#,
                "`num_key_value_heads`: is 9; it must be between 1 and 8",
            ),
            (
                r#"{"hidden_size": 4, "num_attention_heads": 8, "num_hidden_layers": 2, "vocab_size": 10}"#,
                "`head_dim`: is 0; it must be at least 1",
            ),
            (
                r#"{"text_config": {"hidden_size": 64, "num_attention_heads": 8, "num_hidden_layers": 2}}"#,
                "`text_config.vocab_size`: is missing",
            ),
        ];
        for (json, expected) in cases {
            match dimensions(json) {
                Err(Error::Parse { what, .. }) => assert_eq!(what, expected, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }
}
