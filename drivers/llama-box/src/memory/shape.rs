//! What the memory model needs from a GGUF header, read once: per-layer attention shapes,
//! which layers slide, which are recurrent, and every tensor with its layer and byte size.

use std::collections::HashMap;

use inferkit_core::gguf::{GgmlType, GgufModel};
use inferkit_core::{Error, Result};

use crate::params::RopeScaling;

/// Where a tensor belongs in llama.cpp's layer model (`llm_tensor_info` layer kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TensorLayer {
    /// Token/position embeddings and other input tensors: always in host memory.
    Input,
    /// Repeating layer `i` (`blk.i.*`).
    Repeating(usize),
    /// Output norm, LM head, classifier head: the "output layer".
    Output,
}

/// One weight tensor, as the placement needs it.
#[derive(Debug, Clone)]
pub(crate) struct Weight {
    pub name: String,
    pub layer: TensorLayer,
    pub ggml_type: GgmlType,
    pub bytes: u64,
    /// Offset in its shard's data section (for the mmap range).
    pub offset: u64,
    pub shard: u32,
    /// `ne[0]` (the input width of a matmul weight).
    pub cols: u64,
    /// `ne[1]` (rows: a matmul's output width; the CPU repack rule).
    pub rows: u64,
}

/// Attention and state shape of one repeating layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct LayerShape {
    /// Query heads.
    pub n_head: u64,
    /// KV heads; 0 for layers without attention (recurrent layers of hybrids).
    pub n_head_kv: u64,
    /// Uses the sliding window.
    pub swa: bool,
    /// Head size of K (`llama_hparams::n_embd_head_k(il)`): `attention.key_length_swa` on a
    /// sliding layer, `attention.key_length` on the others.
    pub head_k: u64,
    /// Head size of V (`llama_hparams::n_embd_head_v(il)`), chosen as [`Self::head_k`] is.
    pub head_v: u64,
    /// Holds recurrent state instead of (or besides) attention KV.
    pub recurrent: bool,
    /// Feed-forward width (dense), 0 when the layer is MoE-only.
    pub n_ff: u64,
    /// Attends through an earlier layer's cache and has none of its own
    /// (`llama_hparams::has_kv` false: Gemma 3n's last layers, Gemma 4's
    /// `attention.shared_kv_layers` last ones).
    pub shares_kv: bool,
    /// Attends without RoPE in a model whose other layers rotate (Llama 4's every
    /// `n_no_rope_layer_step`-th layer, its Q scaled by the attention temperature instead;
    /// SmolLM3's every 4th; Cohere2's global layers).
    pub no_rope: bool,
}

/// Mixture-of-experts shape.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Experts {
    /// Experts per MoE layer (`expert_count`; 0 in a dense model).
    pub count: u64,
    /// Experts each token is routed to (`expert_used_count`).
    pub used: u64,
    /// An expert's FFN width (`expert_feed_forward_length`; 0: the layer's `n_ff`).
    pub ff: u64,
    /// The shared experts' FFN width (`expert_shared_feed_forward_length`).
    pub shared_ff: u64,
    /// `build_moe_ffn`'s `norm_w`: the selected experts' weights are divided by their sum.
    pub weights_norm: bool,
    /// `build_moe_ffn`'s `w_scale` is neither 0 nor 1: the weights are scaled.
    pub weights_scaled: bool,
}

impl Experts {
    /// The experts' counts and widths, and how their weights are normalized and scaled: by
    /// the architecture's builder ([`EXPERT_WEIGHTS_NORMED`]) or its keys
    /// ([`EXPERT_WEIGHTS_KEYS`]).
    fn from_gguf(model: &GgufModel, arch: &str) -> Result<Experts> {
        let keyed = EXPERT_WEIGHTS_KEYS.contains(&arch);
        let metadata = model.metadata();
        Ok(Experts {
            count: model.expert_count()?.unwrap_or(0),
            used: model.expert_used_count()?.unwrap_or(0),
            ff: model.expert_feed_forward_length()?.unwrap_or(0),
            shared_ff: model.expert_shared_feed_forward_length()?.unwrap_or(0),
            weights_norm: EXPERT_WEIGHTS_NORMED.contains(&arch)
                || (keyed
                    && metadata
                        .get_bool(&format!("{arch}.expert_weights_norm"))?
                        .unwrap_or(false)),
            weights_scaled: (keyed || arch == "deepseek")
                && metadata
                    .get_f64(&format!("{arch}.expert_weights_scale"))?
                    .is_some_and(|scale| scale != 0.0 && scale != 1.0),
        })
    }
}

/// Architectures whose builder normalizes the selected experts' weights (`build_moe_ffn`'s
/// `norm_w` is `true` in `src/models/{qwen3moe,qwen3next,granite,granite-hybrid,phi3,
/// ernie4-5-moe,hunyuan-moe}.cpp` at 0c1e57098).
const EXPERT_WEIGHTS_NORMED: [&str; 7] = [
    "qwen3moe",
    "qwen3next",
    "granitemoe",
    "granitehybrid",
    "phimoe",
    "ernie4_5-moe",
    "hunyuan-moe",
];

/// Architectures whose loader reads `expert_weights_norm` and `expert_weights_scale` and whose
/// builder passes them to `build_moe_ffn` (`src/models/{bailingmoe,deepseek2,dots1,glm4-moe,
/// nemotron-h}.cpp` at 0c1e57098; `deepseek.cpp` reads the scale only). Elsewhere the
/// hyper-parameters keep their defaults (no norm, scale 0: none).
const EXPERT_WEIGHTS_KEYS: [&str; 5] =
    ["bailingmoe", "deepseek2", "dots1", "glm4moe", "nemotron_h"];

/// The widths of multi-head latent attention (`src/models/deepseek2.cpp`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mla {
    /// `attention.kv_lora_rank`: the compressed latent, which is also V in the cache.
    pub kv_lora: u64,
    /// `rope.dimension_count`: the RoPE part of each query/key head.
    pub rope: u64,
    /// `attention.value_length_mla`: a value head after the `wv_b` decompression.
    pub head_v: u64,
}

impl Mla {
    /// Set when both MLA head sizes are (`llama_hparams::is_mla`).
    fn from_gguf(model: &GgufModel) -> Result<Option<Mla>> {
        let head_k = model.key_length_mla()?.unwrap_or(0);
        let head_v = model.value_length_mla()?.unwrap_or(0);
        if head_k == 0 || head_v == 0 {
            return Ok(None);
        }
        Ok(Some(Mla {
            kv_lora: model.kv_lora_rank()?.unwrap_or(0),
            rope: model.rope_dimension_count()?.unwrap_or(0),
            head_v,
        }))
    }
}

/// Recurrent state widths per sequence (llama.cpp's `n_embd_r()` / `n_embd_s()`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Recurrent {
    pub r: u64,
    pub s: u64,
}

/// The RoPE parameters the model was trained with (`llama_hparams::*_train`), which llama-box
/// compares with the user's to decide whether a non-causal model's context may exceed the
/// training context.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RopeTrain {
    /// `<arch>.rope.scaling.type`; llama.cpp's default is linear.
    pub scaling: Option<RopeScaling>,
    /// `<arch>.rope.freq_base`, default 10000.
    pub freq_base: f64,
    /// `1 / <arch>.rope.scaling.factor`, default 1.
    pub freq_scale: f64,
    /// `<arch>.rope.scaling.original_context_length`, default the training context.
    pub n_ctx_orig_yarn: u64,
}

impl RopeTrain {
    fn from_gguf(model: &GgufModel, n_ctx_train: u64) -> Result<RopeTrain> {
        let scaling = match model.rope_scaling_type()? {
            None => Some(RopeScaling::Linear),
            Some(name) => RopeScaling::from_name(name),
        };
        let factor = model.rope_scaling_factor()?.filter(|f| *f != 0.0);
        Ok(RopeTrain {
            scaling,
            freq_base: model.rope_freq_base()?.unwrap_or(10_000.0),
            freq_scale: factor.map_or(1.0, |f| 1.0 / f),
            n_ctx_orig_yarn: model
                .rope_scaling_original_context_length()?
                .filter(|n| *n != 0)
                .unwrap_or(n_ctx_train),
        })
    }
}

/// The model as the memory model sees it.
#[derive(Debug, Clone)]
pub(crate) struct ModelShape {
    pub arch: String,
    pub n_embd: u64,
    pub n_vocab: u64,
    pub n_ctx_train: u64,
    pub rope: RopeTrain,
    /// Head sizes of the full-attention layers (`n_embd_head_k_full` / `_v_full`); each layer's
    /// own are [`LayerShape::head_k`] and [`LayerShape::head_v`].
    pub head_k: u64,
    pub head_v: u64,
    pub layers: Vec<LayerShape>,
    pub n_swa: u64,
    pub causal: bool,
    pub experts: Experts,
    pub recurrent: Recurrent,
    /// Multi-head latent attention (DeepSeek-V2/V3, Kimi, ...): llama.cpp caches only K
    /// (the compressed latent and the RoPE part) and reads V as a view of it
    /// (`llama_hparams::is_mla`: both MLA head sizes set).
    pub mla: Option<Mla>,
    /// Attention layers rotate Q and K by position (RoPE); Nemotron-H, Jamba and Granite
    /// 4.0-H (`rope.scaling.finetuned` false: `hparams.has_rope`) attend without positions.
    pub positional: bool,
    /// The LM head reads a scaled copy of the normed output (MiniCPM3's `lm_head scaling`,
    /// `src/models/minicpm3.cpp`).
    pub scaled_head_input: bool,
    /// Q is multiplied by a per-token attention temperature, a graph input (`inp_attn_scale`
    /// at 0c1e57098): in every layer of `src/models/mistral3.cpp` when
    /// `attention.temperature_scale` is set, in the layers without RoPE of
    /// `src/models/llama4.cpp` ([`LayerShape::no_rope`]).
    pub attn_temperature: bool,
    /// GPT-NeoX layers with `use_parallel_residual` set run the attention and the FFN side by
    /// side, each on its own norm of the layer input (`src/models/gptneox.cpp` at 0c1e57098).
    pub parallel_residual: bool,
    /// The token embeddings are scaled (`<arch>.embedding_scale` set and not 0:
    /// `build_inp_embd` in `src/llama-graph.cpp` at 0c1e57098), the graph's first node: a
    /// device running the first layer reads the embeddings before anything else.
    pub embeddings_scaled: bool,
    /// The T5 encoder (`t5encoder`): its own graph, layers named `enc.blk.N`.
    pub t5_encoder: bool,
    /// Prefix of repeating layers' tensor names: `blk`, or `enc.blk` (T5 encoder).
    pub layer_prefix: &'static str,
    /// No `output.weight`: the LM head reads the token embedding (duplicated on the output
    /// device).
    pub tied_output: bool,
    /// A reranker's classifier head reads mean-pooled rows (`<arch>.classifier.pooling_type`
    /// 1, or absent on ModernBERT: `src/models/modern-bert.cpp` at 0c1e57098), not the CLS
    /// row.
    pub classifier_mean_pooling: bool,
    /// Bytes of `token_embd.weight` (the tied LM head's copy) and its type.
    pub token_embd: Option<(u64, GgmlType, u64)>,
    /// `<arch>.pooling_type` (llama.cpp's `llama_pooling_type`: 0 none, the default, 1 mean,
    /// 2 cls, 3 last, 4 rank): what pools an encoder's embeddings unless `--pooling` says.
    pub pooling_type: u64,
    pub weights: Vec<Weight>,
}

/// Hybrids whose every layer runs attention and a Mamba-2 mixer side by side, each with its
/// own memory (`filter_attn` and `filter_recr` both true in `llama_model::create_memory`).
pub(crate) const PARALLEL_HYBRIDS: [&str; 1] = ["falcon-h1"];

/// Whether layer `il` of a recurrent or hybrid architecture holds recurrent state
/// (`hparams.is_recr_impl`, set per architecture in `src/models/<arch>.cpp` at 0c1e57098):
/// every layer of Falcon-H1; Nemotron-H's layers without attention and without an FFN (its
/// FFN-only layers hold nothing); Qwen3-Next's layers other than every
/// `full_attention_interval`-th; otherwise the layers without KV heads.
fn is_recurrent_layer(arch: &str, il: u64, n_head_kv: u64, n_ff: u64, interval: u64) -> bool {
    match arch {
        "falcon-h1" => true,
        "nemotron_h" => n_head_kv == 0 && n_ff == 0,
        "qwen3next" => !(il + 1).is_multiple_of(interval),
        _ => n_head_kv == 0,
    }
}

/// Architectures whose layers from a fixed index on reuse an earlier layer's KV cache
/// (`hparams.n_layer_kv_from_start`, hard-coded per architecture in `src/models/*.cpp` at
/// 0c1e57098: gemma3n sets 20 whatever the layer count). Gemma 4 reads it from a key
/// ([`layer_shapes`]).
const KV_FROM_START: [(&str, usize); 1] = [("gemma3n", 20)];

/// Encoder-only architectures: no KV cache, no LM head.
const ENCODERS: [&str; 6] = [
    "bert",
    "nomic-bert",
    "nomic-bert-moe",
    "jina-bert-v2",
    "jina-bert-v3",
    "modern-bert",
];

impl ModelShape {
    /// Reads the shape from a parsed GGUF.
    pub fn from_gguf(model: &GgufModel) -> Result<ModelShape> {
        let arch = model.architecture()?.to_owned();
        let n_layer = usize::try_from(model.block_count()?)
            .map_err(|_| invalid(model, "block_count does not fit in memory"))?;
        if n_layer > 100_000 {
            return Err(invalid(model, "block_count above 100000"));
        }
        let n_embd = model.embedding_length()?;
        let counts = LayerCounts::from_gguf(model)?;
        let n_swa = sliding_window(model, &arch)?;
        let swa_layers = swa_layers(model, &arch, n_layer)?;
        let recurrent = recurrent_widths(model, n_embd)?;
        let mut layers =
            layer_shapes(model, &arch, n_layer, &counts, &swa_layers, recurrent.s > 0)?;
        let no_rope_layers = layers.iter().any(|l| l.no_rope);
        let weights = classify_weights(model, n_layer)?;
        let token_embd = model
            .tensor("token_embd.weight")
            .map(|t| (t.bytes, t.ggml_type, t.dims.get(1).copied().unwrap_or(1)));
        let causal = model.causal_attention()? && !ENCODERS.contains(&arch.as_str());
        let n_vocab = model
            .vocab_size()?
            .or_else(|| token_embd.map(|t| t.2))
            .unwrap_or(0);
        let n_ctx_train = model.context_length()?.unwrap_or(4096);
        let rope = RopeTrain::from_gguf(model, n_ctx_train)?;
        // `llama_hparams::n_embd_head_k(il)` / `n_embd_head_v(il)` (`src/llama-hparams.cpp` at
        // 0c1e57098): a sliding layer's own head sizes, the full ones otherwise. The per-layer
        // KV head counts multiply them unchanged (`n_embd_k_gqa(il)`).
        let (head_k, head_v) = (model.key_length()?, model.value_length()?);
        let swa_heads = (model.key_length_swa()?, model.value_length_swa()?);
        for layer in &mut layers {
            (layer.head_k, layer.head_v) = if layer.swa {
                swa_heads
            } else {
                (head_k, head_v)
            };
        }
        Ok(ModelShape {
            n_embd,
            n_vocab,
            n_ctx_train,
            rope,
            head_k,
            head_v,
            layers,
            n_swa,
            causal,
            experts: Experts::from_gguf(model, &arch)?,
            recurrent,
            mla: Mla::from_gguf(model)?,
            scaled_head_input: arch == "minicpm3",
            parallel_residual: arch == "gptneox"
                && model
                    .metadata()
                    .get_bool(&format!("{arch}.use_parallel_residual"))?
                    .unwrap_or(false),
            // Llama 4 builds the input whatever its hyper-parameters; only its layers without
            // RoPE read it.
            attn_temperature: (arch == "mistral3"
                && model
                    .attention_temperature_scale()?
                    .is_some_and(|scale| scale != 0.0))
                || (arch == "llama4" && no_rope_layers),
            embeddings_scaled: model
                .metadata()
                .get_f64(&format!("{arch}.embedding_scale"))?
                .is_some_and(|scale| scale != 0.0),
            t5_encoder: arch == "t5encoder",
            layer_prefix: if arch == "t5encoder" {
                "enc.blk"
            } else {
                "blk"
            },
            positional: positional(model, &arch)?,
            tied_output: causal && model.tensor("output.weight").is_none(),
            classifier_mean_pooling: classifier_mean_pooling(model, &arch)?,
            token_embd,
            pooling_type: model.pooling_type()?.unwrap_or(0),
            weights,
            arch,
        })
    }

    /// Repeating layers.
    pub fn n_layer(&self) -> usize {
        self.layers.len()
    }

    /// One number per repeating layer, equal for layers that build the same compute graph:
    /// the same attention shape and the same tensors (names within the block, shapes).
    /// Layers of a dense prefix, sliding-window and recurrent layers each get a class of their
    /// own.
    pub fn layer_classes(&self) -> Vec<usize> {
        let mut tensors: Vec<Vec<(&str, u64, u64)>> = vec![Vec::new(); self.n_layer()];
        for w in &self.weights {
            if let TensorLayer::Repeating(l) = w.layer {
                let suffix = w.name.splitn(3, '.').nth(2).unwrap_or(&w.name);
                tensors[l].push((suffix, w.cols, w.rows));
            }
        }
        let mut classes = HashMap::new();
        tensors
            .into_iter()
            .zip(&self.layers)
            .map(|(mut layer_tensors, shape)| {
                layer_tensors.sort_unstable();
                let next = classes.len();
                *classes.entry((*shape, layer_tensors)).or_insert(next)
            })
            .collect()
    }
}

/// A GGUF's per-layer values (its arrays, or a scalar for every layer): attention heads, KV
/// heads and FFN widths, read together where the shape reads them.
struct LayerCounts {
    heads: Vec<u64>,
    heads_kv: Vec<u64>,
    ff: Vec<u64>,
}

impl LayerCounts {
    fn from_gguf(model: &GgufModel) -> Result<LayerCounts> {
        Ok(LayerCounts {
            heads: model.head_count_per_layer()?,
            heads_kv: model.head_count_kv_per_layer()?,
            ff: model.feed_forward_length_per_layer()?.unwrap_or_default(),
        })
    }
}

/// The `n_layer` repeating layers' shapes: heads, KV heads and FFN width (`counts`), which
/// layers slide (`swa_layers`), are recurrent (of an architecture with recurrent states,
/// `is_recurrent_arch`), reuse an earlier layer's cache or attend without RoPE: the facts
/// llama.cpp's builders read per layer.
fn layer_shapes(
    model: &GgufModel,
    arch: &str,
    n_layer: usize,
    counts: &LayerCounts,
    swa_layers: &[bool],
    is_recurrent_arch: bool,
) -> Result<Vec<LayerShape>> {
    let kv_layers = match arch {
        // Gemma 4 (`src/models/gemma4.cpp` at 0c1e57098): `n_layer_kv_from_start` is
        // `n_layer_all - attention.shared_kv_layers` (an optional key, 0 by default).
        "gemma4" => n_layer.saturating_sub(
            usize::try_from(
                model
                    .metadata()
                    .get_u64(&format!("{arch}.attention.shared_kv_layers"))?
                    .unwrap_or(0),
            )
            .unwrap_or(usize::MAX),
        ),
        _ => KV_FROM_START
            .iter()
            .find(|(name, _)| *name == arch)
            .map_or(n_layer, |&(_, n)| n),
    };
    let attention_interval = model
        .metadata()
        .get_u64(&format!("{arch}.full_attention_interval"))?
        .unwrap_or(4)
        .max(1);
    // Llama 4 (`src/models/llama4.cpp` at 0c1e57098): every 4th layer attends without RoPE
    // (`n_no_rope_layer_step`, 4 by default in `llama-hparams.h`), only the last one when
    // the model has no chunked attention (the step is then `n_layer`). SmolLM3
    // (`src/models/smollm3.cpp`): every 4th, the step set to 4 whatever the GGUF holds.
    let no_rope_step = match arch {
        "llama4" if swa_layers.iter().any(|&swa| swa) => Some(4),
        "smollm3" => Some(4),
        "llama4" => Some(n_layer),
        _ => None,
    };
    let layers = (0..n_layer)
        .map(|i| {
            let n_head_kv = counts.heads_kv.get(i).copied().unwrap_or(0);
            let n_ff = counts.ff.get(i).copied().unwrap_or(0);
            let recurrent = is_recurrent_arch
                && is_recurrent_layer(arch, i as u64, n_head_kv, n_ff, attention_interval);
            LayerShape {
                n_head: counts.heads.get(i).copied().unwrap_or(0),
                // Recurrent layers have no attention, except Falcon-H1's, which run both.
                n_head_kv: if recurrent && !PARALLEL_HYBRIDS.contains(&arch) {
                    0
                } else {
                    n_head_kv
                },
                swa: swa_layers.get(i).copied().unwrap_or(false),
                // Set by `ModelShape::from_gguf`, which reads the head sizes after the rest.
                head_k: 0,
                head_v: 0,
                recurrent,
                n_ff,
                shares_kv: i >= kv_layers,
                // Cohere2 rotates on its sliding-window layers only (`src/models/cohere2.cpp`
                // at 0c1e57098).
                no_rope: no_rope_step.is_some_and(|step| (i + 1) % step.max(1) == 0)
                    || (arch == "cohere2" && !swa_layers.get(i).copied().unwrap_or(false)),
            }
        })
        .collect();
    Ok(layers)
}

/// Whether the graph takes a position input (RoPE or learned positions).
fn positional(model: &GgufModel, arch: &str) -> Result<bool> {
    Ok(match arch {
        // Jamba's attention layers take no positions ("No RoPE", `src/models/jamba.cpp`);
        // jina-bert-v2 attends with ALiBi, and `src/models/bert.cpp` builds no position
        // input for it.
        "nemotron_h" | "t5encoder" | "jamba" | "jina-bert-v2" => false,
        "granitehybrid" => model
            .metadata()
            .get_bool(&format!("{arch}.rope.scaling.finetuned"))?
            .unwrap_or(true),
        _ => true,
    })
}

/// Whether a classifier head pools by mean (`classifier.pooling_type` 1; ModernBERT's
/// default when the key is absent).
fn classifier_mean_pooling(model: &GgufModel, arch: &str) -> Result<bool> {
    Ok(
        match model
            .metadata()
            .get_u64(&format!("{arch}.classifier.pooling_type"))?
        {
            Some(kind) => kind == 1,
            None => arch == "modern-bert",
        },
    )
}

fn invalid(model: &GgufModel, what: &str) -> Error {
    Error::parse(model.path(), 0, what)
}

/// How an architecture's `load_arch_hparams` (`src/models/<arch>.cpp` at 0c1e57098) sets the
/// window `hparams.n_swa` and whether it turns sliding-window attention on
/// (`hparams.swa_type != LLAMA_SWA_TYPE_NONE`). "The key" is
/// `<arch>.attention.sliding_window`. Where llama.cpp reads the key as required and it is
/// absent, llama.cpp refuses the file; the estimate then sizes every layer as full attention
/// (the larger cache).
#[derive(Debug, Clone, Copy)]
enum SwaWindow {
    /// The key, on whenever present (`ml.get_key(LLM_KV_ATTENTION_SLIDING_WINDOW, n_swa)`,
    /// `swa_type` set unconditionally): a window of 0 still makes the iSWA cache.
    Key,
    /// The key, on only when present and above 0 (`found_swa && hparams.n_swa > 0`).
    KeyIfPositive,
    /// The key, else this default; always on.
    KeyOr(u64),
    /// This window whenever the key is present and above 0, whatever its value; off otherwise.
    FixedIfKeyPositive(u64),
    /// This window unless the key is present and 0 (then off); the key's value is not read.
    FixedUnlessKeyZero(u64),
    /// On only at this layer count, with the key or else this default window.
    KeyOrAtLayers(usize, u64),
}

/// Which layers of an architecture with sliding-window attention on slide (`is_swa_impl`).
#[derive(Debug, Clone, Copy)]
enum SwaLayers {
    /// `load_swa_pattern(ml, n)`: the GGUF's `sliding_window_pattern` array, else its scalar
    /// in place of `n`; layer `i` slides iff `n == 0 || i % n < n - 1`.
    Period(u64),
    /// `load_swa_pattern(ml, n, true)`: as [`SwaLayers::Period`], but layer `i` slides iff
    /// `n == 0 || i % n != 0` (each period opens with its full-attention layer).
    DenseFirst(u64),
    /// `ml.get_arr(LLM_KV_ATTENTION_SLIDING_WINDOW_PATTERN, is_swa_impl)`: the GGUF's array,
    /// required (no array: none slide, see [`SwaWindow`]).
    Array,
    /// `set_swa_pattern(0)`: every layer.
    All,
    /// Every attention layer: `is_swa_impl[il] = !is_recr_impl[il]`, a layer being recurrent
    /// iff it has no KV heads.
    Attention,
}

/// Every architecture whose `load_arch_hparams` at 0c1e57098 sets a sliding window, with the
/// file and the lines that set it. Every other architecture keeps llama.cpp's defaults
/// (`swa_type` none, no layer sliding) whatever its GGUF says; Phi-3 reads the key and turns
/// it off (`src/models/phi3.cpp`: "Phi SWA is currently disabled", `n_swa = 0`). DFlash
/// (`src/models/dflash.cpp`) is a speculative-decoding draft whose rule depends on
/// `hyper_connection_count`; it is not listed. The SWA type (standard, chunked for Llama 4,
/// symmetric for ModernBERT and EmbeddingGemma) does not change the cache's size
/// (`src/llama-kv-cache-iswa.cpp`: `size_swa` from `n_swa` alone).
const SWA_RULES: [(&str, SwaWindow, SwaLayers); 28] = [
    // afmoe.cpp: `get_key(SLIDING_WINDOW, n_swa, false); if (n_swa > 0) { ...
    // load_swa_pattern(ml, 4);`
    ("afmoe", SwaWindow::KeyIfPositive, SwaLayers::Period(4)),
    // cohere2.cpp: `load_swa_pattern(ml, 4); ... get_key(SLIDING_WINDOW, n_swa);`
    ("cohere2", SwaWindow::Key, SwaLayers::Period(4)),
    // cohere2moe.cpp: `get_key(SLIDING_WINDOW, n_swa); ... load_swa_pattern(ml, 4, true);`
    ("cohere2moe", SwaWindow::Key, SwaLayers::DenseFirst(4)),
    // deepseek4.cpp: `get_key(SLIDING_WINDOW, n_swa); ... set_swa_pattern(0);`
    ("deepseek4", SwaWindow::Key, SwaLayers::All),
    // dots3note.cpp: `get_key(SLIDING_WINDOW, n_swa); ... get_arr(SLIDING_WINDOW_PATTERN, ..)`
    ("dots3note", SwaWindow::Key, SwaLayers::Array),
    // exaone-moe.cpp: `n_swa = 128; load_swa_pattern(ml, 4); ... get_key(SLIDING_WINDOW, n_swa);`
    ("exaone-moe", SwaWindow::KeyOr(128), SwaLayers::Period(4)),
    // exaone4.cpp: `if (n_layer() == 64) { n_swa = 4096; load_swa_pattern(ml, 4); }
    // get_key(SLIDING_WINDOW, n_swa, false);` (the 1.2B, 30 layers, has none)
    (
        "exaone4",
        SwaWindow::KeyOrAtLayers(64, 4096),
        SwaLayers::Period(4),
    ),
    // gemma-embedding.cpp: `swa_type = SYMMETRIC; load_swa_pattern(ml, 6); ...
    // get_key(SLIDING_WINDOW, n_swa);`
    ("gemma-embedding", SwaWindow::Key, SwaLayers::Period(6)),
    // gemma2.cpp: `n_swa = 4096; // default value of gemma 2`, `load_swa_pattern(ml, 2)`,
    // `get_key(SLIDING_WINDOW, n_swa, false)`
    ("gemma2", SwaWindow::KeyOr(4096), SwaLayers::Period(2)),
    // gemma3.cpp: `if (found_swa && n_swa > 0) { ... load_swa_pattern(ml, 6);`
    ("gemma3", SwaWindow::KeyIfPositive, SwaLayers::Period(6)),
    // gemma3n.cpp: `load_swa_pattern(ml, 5); ... get_key(SLIDING_WINDOW, n_swa);`
    ("gemma3n", SwaWindow::Key, SwaLayers::Period(5)),
    // gemma4.cpp: `get_arr(SLIDING_WINDOW_PATTERN, is_swa_impl); ... get_key(SLIDING_WINDOW, n_swa);`
    ("gemma4", SwaWindow::Key, SwaLayers::Array),
    // gemma4-assistant.cpp: as gemma4.cpp.
    ("gemma4-assistant", SwaWindow::Key, SwaLayers::Array),
    // openai-moe.cpp (LLM_ARCH_OPENAI_MOE is "gpt-oss"): `get_key(SLIDING_WINDOW, n_swa); ...
    // load_swa_pattern(ml, 2);`
    ("gpt-oss", SwaWindow::Key, SwaLayers::Period(2)),
    // granite-swa.cpp: `get_arr(SLIDING_WINDOW_PATTERN, is_swa_impl);
    // get_key(SLIDING_WINDOW, n_swa);`
    ("granite_swa", SwaWindow::Key, SwaLayers::Array),
    // laguna.cpp: `n_swa = 0; get_key(SLIDING_WINDOW, n_swa, false); if (n_swa > 0) { ...
    // load_swa_pattern(ml, 4, /*dense_first=*/true);`
    ("laguna", SwaWindow::KeyIfPositive, SwaLayers::DenseFirst(4)),
    // lfm2.cpp: `if (is_swa && n_swa > 0) { ... is_swa_impl[il] = !is_recr_impl[il];` with
    // `is_recr_impl[il] = n_head_kv(il) == 0` (lfm2moe.cpp sets no window)
    ("lfm2", SwaWindow::KeyIfPositive, SwaLayers::Attention),
    // llama4.cpp: `if (found_swa && n_swa == 0) { swa_type = NONE; } else { swa_type =
    // CHUNKED; n_swa = 8192; load_swa_pattern(ml, 4);`
    (
        "llama4",
        SwaWindow::FixedUnlessKeyZero(8192),
        SwaLayers::Period(4),
    ),
    // maple.cpp: `get_key(SLIDING_WINDOW, n_swa); ... get_arr(SLIDING_WINDOW_PATTERN, ..)`
    ("maple", SwaWindow::Key, SwaLayers::Array),
    // mellum.cpp: `get_key(SLIDING_WINDOW, n_swa, false); if (n_swa > 0) { ...
    // load_swa_pattern(ml, 4);`
    ("mellum", SwaWindow::KeyIfPositive, SwaLayers::Period(4)),
    // mimo2.cpp: `get_key(SLIDING_WINDOW, n_swa); ... get_arr(SLIDING_WINDOW_PATTERN, ..)`
    ("mimo2", SwaWindow::Key, SwaLayers::Array),
    // modern-bert.cpp: `if (found_swa && n_swa > 0) { swa_type = SYMMETRIC; ...
    // load_swa_pattern(ml, 3, true);` (transformers' `global_attn_every_n_layers`)
    (
        "modern-bert",
        SwaWindow::KeyIfPositive,
        SwaLayers::DenseFirst(3),
    ),
    // muse-glimmer.cpp: `get_key(SLIDING_WINDOW, n_swa); ... load_swa_pattern(ml, 4);`
    ("muse-glimmer", SwaWindow::Key, SwaLayers::Period(4)),
    // olmo2.cpp (OLMo 3 converts to "olmo2"): `if (found_swa && n_swa > 0) { ...
    // load_swa_pattern(ml, 4);`
    ("olmo2", SwaWindow::KeyIfPositive, SwaLayers::Period(4)),
    // plamo3.cpp: `if (found_swa && n_swa > 0) { ... load_swa_pattern(ml, 8);`
    ("plamo3", SwaWindow::KeyIfPositive, SwaLayers::Period(8)),
    // smallthinker.cpp: `if (found_swa && n_swa > 0) { ... n_swa = 4096;
    // load_swa_pattern(ml, 4, true);`
    (
        "smallthinker",
        SwaWindow::FixedIfKeyPositive(4096),
        SwaLayers::DenseFirst(4),
    ),
    // spark2-5.cpp (LLM_ARCH_SPARK2_5 is "spark2_5"): `get_key(SLIDING_WINDOW, n_swa); ...
    // get_arr(SLIDING_WINDOW_PATTERN, is_swa_impl);`
    ("spark2_5", SwaWindow::Key, SwaLayers::Array),
    // step35.cpp: `get_key(SLIDING_WINDOW, n_swa); ... get_arr(SLIDING_WINDOW_PATTERN, ..)`
    ("step35", SwaWindow::Key, SwaLayers::Array),
];

/// The architecture's rule, if llama.cpp gives it a sliding window.
fn swa_rule(arch: &str) -> Option<(SwaWindow, SwaLayers)> {
    SWA_RULES
        .iter()
        .find(|(name, _, _)| *name == arch)
        .map(|&(_, window, layers)| (window, layers))
}

/// The window llama.cpp uses when sliding-window attention is on, `None` when it is off.
fn swa_window(model: &GgufModel, arch: &str, n_layer: usize) -> Result<Option<u64>> {
    let key = model.sliding_window()?;
    let Some((window, _)) = swa_rule(arch) else {
        return Ok(None);
    };
    Ok(match window {
        SwaWindow::Key => key,
        SwaWindow::KeyIfPositive => key.filter(|&w| w > 0),
        SwaWindow::KeyOr(default) => Some(key.unwrap_or(default)),
        SwaWindow::FixedIfKeyPositive(fixed) => key.filter(|&w| w > 0).map(|_| fixed),
        SwaWindow::FixedUnlessKeyZero(fixed) => (key != Some(0)).then_some(fixed),
        SwaWindow::KeyOrAtLayers(layers, default) => {
            (n_layer == layers).then_some(key.unwrap_or(default))
        }
    })
}

/// The sliding window (`hparams.n_swa`): llama.cpp's when it turns sliding-window attention
/// on, else the GGUF's (no layer then uses it).
fn sliding_window(model: &GgufModel, arch: &str) -> Result<u64> {
    let n_layer = usize::try_from(model.block_count()?).unwrap_or(usize::MAX);
    Ok(match swa_window(model, arch, n_layer)? {
        Some(window) => window,
        None => model.sliding_window()?.unwrap_or(0),
    })
}

/// Which layers slide, by the architecture's rule in [`SWA_RULES`]; none where llama.cpp
/// leaves sliding-window attention off.
fn swa_layers(model: &GgufModel, arch: &str, n_layer: usize) -> Result<Vec<bool>> {
    let (Some(_), Some((_, rule))) = (swa_window(model, arch, n_layer)?, swa_rule(arch)) else {
        return Ok(vec![false; n_layer]);
    };
    let key = format!("{arch}.attention.sliding_window_pattern");
    let value = model.metadata().get(&key);
    let array = match value.and_then(|v| v.as_array()) {
        Some(_) => model.sliding_window_layers()?,
        None => None,
    };
    // `load_swa_pattern`: the array wins, then the scalar, then the architecture's period.
    let period = |default: u64| value.and_then(|v| v.as_u64()).unwrap_or(default);
    let n = n_layer as u64;
    Ok(match (rule, array) {
        (SwaLayers::Period(_) | SwaLayers::DenseFirst(_) | SwaLayers::Array, Some(layers)) => {
            layers
        }
        (SwaLayers::Array, None) => vec![false; n_layer],
        (SwaLayers::Period(default), None) => {
            let p = period(default);
            (0..n).map(|i| p == 0 || i % p < p - 1).collect()
        }
        (SwaLayers::DenseFirst(default), None) => {
            let p = period(default);
            (0..n).map(|i| p == 0 || i % p != 0).collect()
        }
        (SwaLayers::All, _) => vec![true; n_layer],
        (SwaLayers::Attention, _) => model
            .head_count_kv_per_layer()?
            .into_iter()
            .chain(std::iter::repeat(0))
            .take(n_layer)
            .map(|kv| kv != 0)
            .collect(),
    })
}

/// `n_embd_r` / `n_embd_s` of llama.cpp's `llama_hparams` for Mamba and RWKV families.
fn recurrent_widths(model: &GgufModel, n_embd: u64) -> Result<Recurrent> {
    if let Some(head) = model.wkv_head_size()? {
        // RWKV: token shift (2 rows, or 1 for RWKV7-style "token_shift_count") and wkv state.
        let shift = model
            .metadata()
            .get_u64(&format!("{}.token_shift_count", model.architecture()?))?
            .unwrap_or(2);
        return Ok(Recurrent {
            r: shift * n_embd,
            s: head * n_embd,
        });
    }
    let (Some(kernel), Some(inner), Some(state)) = (
        model.ssm_conv_kernel()?,
        model.ssm_inner_size()?,
        model.ssm_state_size()?,
    ) else {
        return Ok(Recurrent::default());
    };
    let groups = model.ssm_group_count()?.unwrap_or(0);
    // n_embd_s = d_state * d_inner for Mamba-1 and Mamba-2 alike.
    let s = state * inner;
    Ok(Recurrent {
        r: kernel.saturating_sub(1) * (inner + 2 * groups * state),
        s,
    })
}

fn classify_weights(model: &GgufModel, n_layer: usize) -> Result<Vec<Weight>> {
    model
        .tensors()
        .iter()
        .map(|t| {
            let layer = tensor_layer(&t.name, n_layer).ok_or_else(|| {
                invalid(
                    model,
                    &format!("tensor {} names a layer past block_count", t.name),
                )
            })?;
            Ok(Weight {
                name: t.name.clone(),
                layer,
                ggml_type: t.ggml_type,
                bytes: t.bytes,
                offset: t.offset,
                shard: t.shard,
                cols: t.dims.first().copied().unwrap_or(1),
                rows: t.dims.get(1).copied().unwrap_or(1),
            })
        })
        .collect()
}

/// llama.cpp's layer of a tensor name; `None` for a `blk.N` past the last layer.
fn tensor_layer(name: &str, n_layer: usize) -> Option<TensorLayer> {
    // The T5 encoder's layers are `enc.blk.N`, its output norm `enc.output_norm`.
    let name = name.strip_prefix("enc.").unwrap_or(name);
    if let Some(rest) = name.strip_prefix("blk.") {
        let index: usize = rest.split('.').next()?.parse().ok()?;
        return (index < n_layer).then_some(TensorLayer::Repeating(index));
    }
    let output = name.starts_with("output") || name.starts_with("cls");
    let base = name.split('.').next().unwrap_or(name);
    Some(if output || OUTPUT_LAYER_TENSORS.contains(&base) {
        TensorLayer::Output
    } else if FIRST_LAYER_TENSORS.contains(&base) {
        TensorLayer::Repeating(0)
    } else {
        TensorLayer::Input
    })
}

/// Tensors outside `blk.N` that llama.cpp puts on the output layer's device
/// (`LLM_TENSOR_LAYER_OUTPUT` in `src/llama-arch.cpp` at 0c1e57098): Gemma 3n's AltUp
/// projections.
const OUTPUT_LAYER_TENSORS: [&str; 2] = ["altup_proj", "altup_unembd_proj"];

/// Tensors outside `blk.N` created as layer 0's (`LLM_TENSOR_LAYER_REPEATING` with block 0):
/// the token-embedding norm ("do the norms on the first layer") and Gemma 3n's per-layer
/// input projection and its norm.
const FIRST_LAYER_TENSORS: [&str; 3] = [
    "token_embd_norm",
    "per_layer_model_proj",
    "per_layer_proj_norm",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_bert_slides_all_but_every_third_layer_from_the_first() {
        let model = crate::memory::fixture("modernbert-base-F16.header.gguf");
        let shape = ModelShape::from_gguf(&model).expect("shape");
        // transformers' ModernBERT: `full_attention` iff `i % global_attn_every_n_layers == 0`;
        // llama.cpp's `set_swa_pattern(3, dense_first)`.
        let global: Vec<usize> = (0..shape.n_layer())
            .filter(|&i| !shape.layers[i].swa)
            .collect();
        assert_eq!(global, [0, 3, 6, 9, 12, 15, 18, 21]);
        assert_eq!(shape.n_swa, 128);
        assert!(!shape.causal && shape.positional);
        assert_eq!(shape.pooling_type, 1);
        assert!(shape.classifier_mean_pooling);
    }

    #[test]
    fn tensor_names_map_to_llama_cpp_layers() {
        assert_eq!(
            tensor_layer("blk.3.attn_q.weight", 4),
            Some(TensorLayer::Repeating(3))
        );
        assert_eq!(tensor_layer("blk.4.attn_q.weight", 4), None);
        assert_eq!(
            tensor_layer("enc.blk.2.attn_rel_b.weight", 4),
            Some(TensorLayer::Repeating(2))
        );
        assert_eq!(
            tensor_layer("enc.output_norm.weight", 4),
            Some(TensorLayer::Output)
        );
        assert_eq!(
            tensor_layer("output_norm.weight", 4),
            Some(TensorLayer::Output)
        );
        assert_eq!(
            tensor_layer("cls.output.weight", 4),
            Some(TensorLayer::Output)
        );
        assert_eq!(
            tensor_layer("token_embd.weight", 4),
            Some(TensorLayer::Input)
        );
    }

    #[test]
    fn smollm3_every_fourth_layer_attends_without_rope() {
        // `src/models/smollm3.cpp` at 0c1e57098: layer `il` rotates iff `(il + 1) % 4 != 0`,
        // and no layer reads an attention-temperature input.
        let model = crate::memory::fixture("smollm3-3b-F16.header.gguf");
        let shape = ModelShape::from_gguf(&model).expect("shape");
        let no_rope: Vec<bool> = shape.layers.iter().map(|l| l.no_rope).collect();
        assert_eq!(no_rope, [false, false, false, true]);
        assert!(shape.positional && !shape.attn_temperature);
    }

    /// A GGUF header (version 3, no tensors) holding `kvs`: enough for `ModelShape`.
    fn header(kvs: &[(String, Kv)]) -> GgufModel {
        use inferkit_core::gguf::{GgufHeader, ReadOptions};
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        bytes.extend((kvs.len() as u64).to_le_bytes());
        let string = |bytes: &mut Vec<u8>, s: &str| {
            bytes.extend((s.len() as u64).to_le_bytes());
            bytes.extend(s.as_bytes());
        };
        for (key, value) in kvs {
            string(&mut bytes, key);
            match value {
                // GGUF value types: 4 u32, 7 bool, 8 string, 9 array.
                Kv::U32(v) => {
                    bytes.extend(4u32.to_le_bytes());
                    bytes.extend(v.to_le_bytes());
                }
                Kv::Str(s) => {
                    bytes.extend(8u32.to_le_bytes());
                    string(&mut bytes, s);
                }
                Kv::Bools(v) => {
                    bytes.extend(9u32.to_le_bytes());
                    bytes.extend(7u32.to_le_bytes());
                    bytes.extend((v.len() as u64).to_le_bytes());
                    bytes.extend(v.iter().map(|&b| u8::from(b)));
                }
                Kv::U32s(v) => {
                    bytes.extend(9u32.to_le_bytes());
                    bytes.extend(4u32.to_le_bytes());
                    bytes.extend((v.len() as u64).to_le_bytes());
                    v.iter().for_each(|x| bytes.extend(x.to_le_bytes()));
                }
            }
        }
        let path = std::path::Path::new("swa.gguf");
        let header = GgufHeader::from_slice(&bytes, path, &ReadOptions::default()).expect("header");
        GgufModel::from_headers(vec![(path.into(), header)]).expect("model")
    }

    enum Kv {
        U32(u32),
        Str(&'static str),
        Bools(Vec<bool>),
        U32s(Vec<u32>),
    }

    /// The shape of an `arch` model with `n_layer` layers of `n_head_kv` KV heads of 128
    /// dimensions (32 query heads, width 4096, trained on 32768 tokens), plus `extra` keys.
    fn shaped(arch: &'static str, n_layer: u32, extra: Vec<(&str, Kv)>) -> ModelShape {
        let base = [
            ("block_count", Kv::U32(n_layer)),
            ("embedding_length", Kv::U32(4096)),
            ("context_length", Kv::U32(32768)),
            ("attention.head_count", Kv::U32(32)),
            ("attention.head_count_kv", Kv::U32(8)),
            ("attention.key_length", Kv::U32(128)),
            ("attention.value_length", Kv::U32(128)),
        ];
        // A key in `extra` replaces the base one.
        let replaced: Vec<&str> = extra.iter().map(|(k, _)| *k).collect();
        let base = base.into_iter().filter(|(k, _)| !replaced.contains(k));
        let kvs: Vec<(String, Kv)> =
            std::iter::once(("general.architecture".into(), Kv::Str(arch)))
                .chain(base.chain(extra).map(|(k, v)| (format!("{arch}.{k}"), v)))
                .collect();
        ModelShape::from_gguf(&header(&kvs)).expect("shape")
    }

    /// The sliding layers and each layer's KV bytes at an 8192-token context, one sequence,
    /// f16 K and V, ubatch 512 (llama-server's defaults otherwise).
    fn sliding_and_kv(shape: &ModelShape) -> (Vec<bool>, Vec<u64>) {
        use crate::memory::kv::{ContextSize, layer_bytes};
        let settings = crate::LlamaSettings {
            ctx_size: 8192,
            ..Default::default()
        };
        let ctx = ContextSize::resolve(shape, &settings).expect("context");
        let swa = shape.layers.iter().map(|l| l.swa).collect();
        (swa, layer_bytes(shape, &ctx, &settings, false))
    }

    // A full layer at 8192 cells: 8 KV heads x 128 dims x 2 bytes (f16) x 2 (K and V) x 8192
    // = 4096 x 8192 = 33554432 bytes. A sliding layer holds `GGML_PAD(min(8192, n_swa + 512),
    // 256)` cells (`llama_kv_cache_iswa`), 4096 bytes each.
    const FULL: u64 = 4096 * 8192;

    fn cells(n: u64) -> u64 {
        4096 * n
    }

    #[test]
    fn afmoe_mellum_muse_glimmer_slide_three_of_four_from_the_first() {
        for arch in ["afmoe", "mellum", "muse-glimmer"] {
            let shape = shaped(arch, 8, vec![("attention.sliding_window", Kv::U32(2048))]);
            let (swa, kv) = sliding_and_kv(&shape);
            // `load_swa_pattern(ml, 4)`: layer i slides iff i % 4 < 3.
            assert_eq!(
                swa,
                [true, true, true, false, true, true, true, false],
                "{arch}"
            );
            // 2048 + 512 = 2560 cells, a multiple of 256.
            let s = cells(2560);
            assert_eq!(kv, [s, s, s, FULL, s, s, s, FULL], "{arch}");
        }
        // AFMoE and Mellum turn it off with a window of 0 or none; a full cache everywhere.
        for arch in ["afmoe", "mellum"] {
            let shape = shaped(arch, 4, vec![]);
            assert_eq!(sliding_and_kv(&shape).1, [FULL; 4], "{arch}");
        }
    }

    #[test]
    fn cohere2moe_and_laguna_open_each_period_with_the_full_layer() {
        for arch in ["cohere2moe", "laguna"] {
            let shape = shaped(arch, 8, vec![("attention.sliding_window", Kv::U32(4096))]);
            let (swa, kv) = sliding_and_kv(&shape);
            // `load_swa_pattern(ml, 4, true)`: layer i slides iff i % 4 != 0.
            assert_eq!(
                swa,
                [false, true, true, true, false, true, true, true],
                "{arch}"
            );
            // 4096 + 512 = 4608 cells.
            let s = cells(4608);
            assert_eq!(kv, [FULL, s, s, s, FULL, s, s, s], "{arch}");
        }
        // Laguna M.1 has no window: full attention.
        let m1 = shaped("laguna", 4, vec![]);
        assert_eq!(sliding_and_kv(&m1).0, [false; 4]);
    }

    #[test]
    fn exaone_moe_defaults_to_a_128_token_window() {
        // `n_swa = 128` before the (required) key; an 8-layer model keeps period 4.
        let shape = shaped("exaone-moe", 4, vec![]);
        assert_eq!(shape.n_swa, 128);
        let (swa, kv) = sliding_and_kv(&shape);
        assert_eq!(swa, [true, true, true, false]);
        // 128 + 512 = 640, padded to 768 cells.
        assert_eq!(kv, [cells(768), cells(768), cells(768), FULL]);
    }

    #[test]
    fn exaone4_slides_only_at_64_layers() {
        // EXAONE 4.0 32B (64 layers, no key): 4096-token window, period 4.
        let big = shaped("exaone4", 64, vec![]);
        let (swa, kv) = sliding_and_kv(&big);
        assert_eq!(big.n_swa, 4096);
        assert_eq!(swa.iter().filter(|&&s| s).count(), 48);
        assert_eq!(&kv[..4], [cells(4608), cells(4608), cells(4608), FULL]);
        // Any other depth: swa_type stays none even with a window in the GGUF.
        let small = shaped(
            "exaone4",
            30,
            vec![("attention.sliding_window", Kv::U32(4096))],
        );
        assert_eq!(sliding_and_kv(&small).1, [FULL; 30]);
    }

    #[test]
    fn gemma2_without_a_window_key_uses_4096() {
        // `n_swa = 4096; // default value of gemma 2`, period 2.
        let shape = shaped("gemma2", 4, vec![]);
        let (swa, kv) = sliding_and_kv(&shape);
        assert_eq!(swa, [true, false, true, false]);
        assert_eq!(kv, [cells(4608), FULL, cells(4608), FULL]);
    }

    #[test]
    fn plamo3_slides_seven_of_eight() {
        let shape = shaped(
            "plamo3",
            8,
            vec![("attention.sliding_window", Kv::U32(2048))],
        );
        let (swa, kv) = sliding_and_kv(&shape);
        assert_eq!(swa, [true, true, true, true, true, true, true, false]);
        assert_eq!(kv[..2], [cells(2560), cells(2560)]);
        assert_eq!(kv[7], FULL);
    }

    #[test]
    fn smallthinker_window_is_4096_whatever_the_gguf_says() {
        // `n_swa = 4096` once the key is present and positive; dense first, period 4.
        let shape = shaped(
            "smallthinker",
            4,
            vec![("attention.sliding_window", Kv::U32(1024))],
        );
        assert_eq!(shape.n_swa, 4096);
        let (swa, kv) = sliding_and_kv(&shape);
        assert_eq!(swa, [false, true, true, true]);
        assert_eq!(kv, [FULL, cells(4608), cells(4608), cells(4608)]);
        // No key: no sliding at all.
        assert_eq!(
            sliding_and_kv(&shaped("smallthinker", 4, vec![])).1,
            [FULL; 4]
        );
    }

    #[test]
    fn olmo2_slides_with_a_window_and_gemma_embedding_reads_its_pattern() {
        let olmo = shaped(
            "olmo2",
            4,
            vec![("attention.sliding_window", Kv::U32(4096))],
        );
        assert_eq!(sliding_and_kv(&olmo).0, [true, true, true, false]);
        // A scalar pattern replaces the period: 2 gives alternate layers.
        let gemma = shaped(
            "gemma-embedding",
            4,
            vec![
                ("attention.sliding_window", Kv::U32(512)),
                ("attention.sliding_window_pattern", Kv::U32(2)),
            ],
        );
        assert_eq!(
            gemma.layers.iter().map(|l| l.swa).collect::<Vec<_>>(),
            [true, false, true, false]
        );
    }

    #[test]
    fn an_array_pattern_wins_and_unlisted_architectures_ignore_it() {
        let extra = || {
            vec![
                ("attention.sliding_window", Kv::U32(1024)),
                (
                    "attention.sliding_window_pattern",
                    Kv::Bools(vec![true, false, false, true]),
                ),
            ]
        };
        for arch in ["step35", "gemma4", "afmoe"] {
            let (swa, kv) = sliding_and_kv(&shaped(arch, 4, extra()));
            assert_eq!(swa, [true, false, false, true], "{arch}");
            // 1024 + 512 = 1536 cells.
            assert_eq!(kv, [cells(1536), FULL, FULL, cells(1536)], "{arch}");
        }
        // Llama (no SWA in `load_arch_hparams`): the key is never read.
        assert_eq!(sliding_and_kv(&shaped("llama", 4, extra())).1, [FULL; 4]);
    }

    /// `llama_hparams::n_embd_head_k(il)` / `n_embd_head_v(il)`: a sliding layer's K and V
    /// rows are its own KV heads (`head_count_kv[il]`) times `key_length_swa` /
    /// `value_length_swa`, each defaulting to the full-attention size.
    #[test]
    fn sliding_layers_cache_their_own_head_sizes() {
        let keys = |swa_heads: Vec<(&'static str, Kv)>| {
            let mut keys = vec![
                ("attention.sliding_window", Kv::U32(1024)),
                (
                    "attention.sliding_window_pattern",
                    Kv::Bools(vec![true, false, false, true]),
                ),
                ("attention.head_count_kv", Kv::U32s(vec![8, 2, 2, 8])),
                ("attention.key_length", Kv::U32(512)),
                ("attention.value_length", Kv::U32(512)),
            ];
            keys.extend(swa_heads);
            keys
        };
        let own = shaped(
            "gemma4",
            4,
            keys(vec![
                ("attention.key_length_swa", Kv::U32(256)),
                ("attention.value_length_swa", Kv::U32(256)),
            ]),
        );
        let heads: Vec<(u64, u64)> = own.layers.iter().map(|l| (l.head_k, l.head_v)).collect();
        assert_eq!(heads, [(256, 256), (512, 512), (512, 512), (256, 256)]);
        // Sliding: 8 KV heads x 256 dims x 2 bytes (f16) x 2 (K and V) = 8192 bytes a cell,
        // 1024 + 512 = 1536 cells. Full: 2 x 512 x 2 x 2 = 4096 bytes a cell, 8192 cells.
        let (sliding, full) = (8192 * 1536, 4096 * 8192);
        assert_eq!(sliding_and_kv(&own).1, [sliding, full, full, sliding]);
        // Flash attention off (a transposed V cache): every V row is the widest layer's,
        // max(8 x 256, 2 x 512) = 2048 values. Full layers: K 2 x 512 x 2 = 2048 bytes plus V
        // 2048 x 2 = 4096 bytes a cell; sliding ones unchanged (4096 + 4096).
        let settings = crate::LlamaSettings {
            ctx_size: 8192,
            ..Default::default()
        };
        let ctx = crate::memory::kv::ContextSize::resolve(&own, &settings).expect("context");
        let full_padded = 6144 * 8192;
        assert_eq!(
            crate::memory::kv::layer_bytes(&own, &ctx, &settings, true),
            [sliding, full_padded, full_padded, sliding]
        );
        // Only K's sliding size set: V keeps the full 512. 8 x (256 + 512) x 2 = 12288 bytes.
        let k_only = shaped(
            "gemma4",
            4,
            keys(vec![("attention.key_length_swa", Kv::U32(256))]),
        );
        let sliding = 12288 * 1536;
        assert_eq!(sliding_and_kv(&k_only).1, [sliding, full, full, sliding]);
        // Neither key: the sliding layers take the full sizes, 8 x 512 x 2 x 2 = 16384 bytes.
        let default = shaped("gemma4", 4, keys(vec![]));
        assert!(
            default
                .layers
                .iter()
                .all(|l| (l.head_k, l.head_v) == (512, 512))
        );
        let sliding = 16384 * 1536;
        assert_eq!(sliding_and_kv(&default).1, [sliding, full, full, sliding]);
        // `attention.shared_kv_layers` 2: the last two layers (from 4 - 2, llama.cpp's
        // `n_layer_kv_from_start`) attend through an earlier layer's cache and hold none.
        let mut shared_keys = keys(vec![]);
        shared_keys.push(("attention.shared_kv_layers", Kv::U32(2)));
        let shared = shaped("gemma4", 4, shared_keys);
        assert_eq!(sliding_and_kv(&shared).1, [sliding, full, 0, 0]);
    }

    #[test]
    fn deepseek4_slides_every_layer_and_lfm2_every_attention_layer() {
        let ds = shaped(
            "deepseek4",
            3,
            vec![("attention.sliding_window", Kv::U32(128))],
        );
        // `set_swa_pattern(0)`: all; 128 + 512 = 640 -> 768 cells.
        assert_eq!(sliding_and_kv(&ds).1, [cells(768); 3]);
        let lfm2 = shaped(
            "lfm2",
            4,
            vec![
                ("attention.sliding_window", Kv::U32(1024)),
                ("attention.head_count_kv", Kv::U32s(vec![0, 8, 0, 8])),
            ],
        );
        assert_eq!(
            lfm2.layers.iter().map(|l| l.swa).collect::<Vec<_>>(),
            [false, true, false, true]
        );
    }
}
