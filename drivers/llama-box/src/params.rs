//! Every llama.cpp / llama-box setting that changes how much memory a model takes.
//!
//! [`LlamaSettings`] holds the values llama-server (and llama-box, which keeps its defaults)
//! would run with; the flag parser fills it and the memory model in [`crate::memory`] reads it.
//! Defaults are llama-server's (`common/common.h` of llama.cpp at commit 0c1e57098), not the
//! library's (`llama_context_default_params`), where the two differ (`swa_full`,
//! `flash_attn`).

use serde::{Deserialize, Serialize};

/// Element type of the K or V cache (`--cache-type-k`, `--cache-type-v`).
///
/// These are the types llama.cpp's `common` accepts for the KV cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheType {
    /// 32-bit float.
    F32,
    /// 16-bit float (the default).
    #[default]
    F16,
    /// bfloat16.
    Bf16,
    /// 8-bit blocks of 32.
    Q8_0,
    /// 4-bit blocks of 32, scale only.
    Q4_0,
    /// 4-bit blocks of 32, scale and minimum.
    Q4_1,
    /// 4-bit non-linear blocks of 32.
    Iq4Nl,
    /// 5-bit blocks of 32, scale only.
    Q5_0,
    /// 5-bit blocks of 32, scale and minimum.
    Q5_1,
}

impl CacheType {
    /// All cache types, in llama.cpp's `kv_cache_types` order.
    pub const ALL: [CacheType; 9] = [
        CacheType::F32,
        CacheType::F16,
        CacheType::Bf16,
        CacheType::Q8_0,
        CacheType::Q4_0,
        CacheType::Q4_1,
        CacheType::Iq4Nl,
        CacheType::Q5_0,
        CacheType::Q5_1,
    ];

    /// The name llama.cpp's flags use (`f16`, `q8_0`, `iq4_nl`...).
    pub fn name(self) -> &'static str {
        match self {
            CacheType::F32 => "f32",
            CacheType::F16 => "f16",
            CacheType::Bf16 => "bf16",
            CacheType::Q8_0 => "q8_0",
            CacheType::Q4_0 => "q4_0",
            CacheType::Q4_1 => "q4_1",
            CacheType::Iq4Nl => "iq4_nl",
            CacheType::Q5_0 => "q5_0",
            CacheType::Q5_1 => "q5_1",
        }
    }

    /// Parses a flag value as llama.cpp does (exact, lower-case names).
    pub fn from_name(name: &str) -> Option<CacheType> {
        CacheType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Elements per block.
    pub fn block_size(self) -> u64 {
        match self {
            CacheType::F32 | CacheType::F16 | CacheType::Bf16 => 1,
            _ => 32,
        }
    }

    /// Bytes per block (`ggml_type_size`, from ggml's type traits).
    pub fn type_size(self) -> u64 {
        match self {
            CacheType::F32 => 4,
            CacheType::F16 | CacheType::Bf16 => 2,
            CacheType::Q8_0 => 34,
            CacheType::Q4_0 | CacheType::Iq4Nl => 18,
            CacheType::Q4_1 => 20,
            CacheType::Q5_0 => 22,
            CacheType::Q5_1 => 24,
        }
    }

    /// Whether the type is block-quantized (needs flash attention as a V cache).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes of a row of `elements` values (`ggml_row_size`); `elements` is a multiple of the
    /// block size for every shape llama.cpp accepts. `None` when the size overflows `u64`
    /// (a width read from a hostile header).
    pub fn checked_row_bytes(self, elements: u64) -> Option<u64> {
        (elements / self.block_size()).checked_mul(self.type_size())
    }

    /// [`CacheType::checked_row_bytes`], saturating at `u64::MAX`: a row that large fits
    /// nowhere, which is the right answer for it.
    pub fn row_bytes(self, elements: u64) -> u64 {
        self.checked_row_bytes(elements).unwrap_or(u64::MAX)
    }
}

/// Flash attention mode (`--flash-attn on|off|auto`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashAttn {
    /// Always on.
    On,
    /// Always off.
    Off,
    /// llama.cpp decides at context creation: on when every device supports it (and always for
    /// a quantized V cache). llama-server's default.
    #[default]
    Auto,
}

/// Pooling of an embedding model's outputs (`--pooling`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The model's own choice (GGUF `<arch>.pooling_type`).
    #[default]
    Unspecified,
    /// One embedding per token.
    None,
    /// Mean over the sequence.
    Mean,
    /// The first (CLS) token.
    Cls,
    /// The last token.
    Last,
    /// Reranker score head.
    Rank,
}

/// RoPE frequency scaling method (`--rope-scaling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RopeScaling {
    /// No scaling.
    None,
    /// Linear position interpolation.
    Linear,
    /// YaRN.
    Yarn,
}

impl RopeScaling {
    /// Parses the name llama.cpp uses in flags and GGUF metadata (`none`, `linear`, `yarn`);
    /// other GGUF methods (`longrope`) are `None` here.
    pub fn from_name(name: &str) -> Option<RopeScaling> {
        match name {
            "none" => Some(RopeScaling::None),
            "linear" => Some(RopeScaling::Linear),
            "yarn" => Some(RopeScaling::Yarn),
            _ => None,
        }
    }
}

/// The user's RoPE overrides. Each `None` (or 0) keeps the model's own value. They change memory
/// only through llama-box's rule for non-causal models (see
/// [`LlamaSettings::non_causal_whole_context`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RopeSettings {
    /// `--rope-scaling {none,linear,yarn}`.
    pub scaling: Option<RopeScaling>,
    /// `--rope-freq-base N`.
    pub freq_base: Option<f64>,
    /// `--rope-freq-scale N`, or `1/N` from `--rope-scale N`.
    pub freq_scale: Option<f64>,
    /// `--yarn-orig-ctx N` (0 = the model's).
    pub yarn_orig_ctx: u32,
}

/// How the diffusion model's VAE decodes (stable-diffusion.cpp settings, llama-box image
/// models).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSettings {
    /// Largest image width in pixels (`--image-max-width`, llama-box default 1024).
    pub width: u32,
    /// Largest image height in pixels (`--image-max-height`, llama-box default 1024).
    pub height: u32,
    /// Images generated at once (`--image-max-batch`, llama-box default 4).
    pub batch: u32,
    /// Decode the VAE in tiles (`--image-vae-tiling`, on by default in llama-box; turned off by
    /// `--image-no-vae-tiling`).
    pub vae_tiling: bool,
    /// Keep the VAE on the CPU (`--image-no-vae-model-offload` / `--image-vae-on-cpu`).
    pub vae_on_cpu: bool,
    /// Keep the text encoders (CLIP/T5) on the CPU (`--image-clip-on-cpu`).
    pub text_encoder_on_cpu: bool,
    /// Free compute buffers after each stage instead of keeping them
    /// (`--image-free-compute-memory-immediately`).
    pub free_compute_immediately: bool,
    /// Component files given beside the diffusion model (FLUX and SD3 ship their text
    /// encoders and VAE separately), as named on the command line.
    pub components: ImageComponents,
}

/// Separate component files of an image model (`--image-clip-l-model`,
/// `--image-clip-g-model`, `--image-t5xxl-model`, `--image-vae-model`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageComponents {
    /// CLIP ViT-L text encoder.
    pub clip_l: Option<String>,
    /// OpenCLIP ViT-bigG text encoder.
    pub clip_g: Option<String>,
    /// T5-XXL text encoder.
    pub t5xxl: Option<String>,
    /// VAE.
    pub vae: Option<String>,
}

impl ImageComponents {
    /// The text-encoder files given, in a fixed order.
    pub fn text_encoders(&self) -> impl Iterator<Item = &str> {
        [&self.clip_l, &self.clip_g, &self.t5xxl]
            .into_iter()
            .filter_map(|p| p.as_deref())
    }
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings {
            width: 1024,
            height: 1024,
            batch: 4,
            vae_tiling: true,
            vae_on_cpu: false,
            text_encoder_on_cpu: false,
            free_compute_immediately: false,
            components: ImageComponents::default(),
        }
    }
}

/// One `--override-tensor PATTERN=BUFFER_TYPE` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorOverride {
    /// Regular expression matched (searched, not anchored) against tensor names.
    pub pattern: String,
    /// Buffer type name: `CPU` keeps matching tensors in host memory; a device name (`CUDA0`,
    /// `RPC[host:port]`) puts them there.
    pub buffer_type: String,
}

/// The llama.cpp settings that decide memory use, with llama-server's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlamaSettings {
    /// Total context size `n_ctx` (`--ctx-size`, `-c`) shared by all sequences; 0 = the model's
    /// training context (`<arch>.context_length`). llama-server default: 4096.
    pub ctx_size: u32,
    /// Parallel sequences (`--parallel`, `-np`), llama.cpp's `n_seq_max`. Default 1 (llama-server
    /// auto-sizes only when given -1; llama-box uses 1 for embedding/reranker models).
    pub n_parallel: u32,
    /// Logical batch size (`--batch-size`, `-b`). Default 2048.
    pub n_batch: u32,
    /// Physical batch size (`--ubatch-size`, `-ub`). Default 512.
    pub n_ubatch: u32,
    /// K cache type (`--cache-type-k`, `-ctk`). Default f16.
    pub type_k: CacheType,
    /// V cache type (`--cache-type-v`, `-ctv`). Default f16.
    pub type_v: CacheType,
    /// Flash attention (`--flash-attn`, `-fa`). Default auto.
    pub flash_attn: FlashAttn,
    /// One KV buffer shared by all sequences (`--kv-unified`). Default off: one stream per
    /// sequence.
    pub kv_unified: bool,
    /// Full-size cache for sliding-window layers (`--swa-full`). Default off in llama-server.
    pub swa_full: bool,
    /// Memory-map the model file (`--mmap` / `--no-mmap`). Default on.
    pub use_mmap: bool,
    /// Repack host weights into the CPU backend's interleaved layouts (`--repack`, default on;
    /// `--no-repack` turns it off). Repacked tensors leave the memory map and are copied.
    pub repack: bool,
    /// Layers to offload (`--gpu-layers`, `-ngl`), counting the output layer first; `None` means
    /// all (llama-box's default, llama.cpp's -1).
    pub gpu_layers: Option<u32>,
    /// Share of layers per device (`--tensor-split`, `-ts`), in device order (RPC devices first);
    /// empty = split by free memory.
    pub tensor_split: Vec<f64>,
    /// Device for the whole model with split mode none, and for intermediate results
    /// (`--main-gpu`, `-mg`). Default 0.
    pub main_gpu: u32,
    /// Keep the KV cache in host memory (`--no-kv-offload`, `-nkvo`). Default off.
    pub no_kv_offload: bool,
    /// `--override-tensor` rules, in the order given (first match wins, as in llama.cpp).
    pub override_tensors: Vec<TensorOverride>,
    /// Embedding endpoint (`--embeddings`): outputs embeddings instead of logits.
    pub embeddings: bool,
    /// Reranking endpoint (`--rerank`, `--reranking`): implies embeddings with rank pooling.
    pub reranking: bool,
    /// Pooling override (`--pooling`).
    pub pooling: Pooling,
    /// Multimodal projector file (`--mmproj`), already resolved to a path.
    pub mmproj: Option<String>,
    /// Offload the projector to the GPU when any layer is offloaded (default on). llama-box
    /// v0.0.171 has no flag to turn it off (llama-server's later `--no-mmproj-offload` does):
    /// its projector follows `--gpu-layers` (on the GPU unless it is 0).
    pub mmproj_offload: bool,
    /// Skip the warm-up run (`--no-warmup`). Memory is still needed by the first request.
    pub no_warmup: bool,
    /// RPC servers (`--rpc host:port,...`), devices that come before local GPUs.
    pub rpc_servers: Vec<String>,
    /// Image generation settings (stable-diffusion.cpp models only).
    pub image: ImageSettings,
    /// RoPE overrides.
    pub rope: RopeSettings,
    /// llama-box's rule for non-causal (embedding, reranker) models, from its
    /// `patches/llama.cpp/embedding.patch` (v0.0.171): the context is capped at the training
    /// context unless the RoPE settings differ from the model's, the batch and micro-batch are
    /// the whole context, and no logits buffer is allocated. Off for llama-server (default);
    /// [`crate::llama_box_defaults`] turns it on.
    pub non_causal_whole_context: bool,
}

impl Default for LlamaSettings {
    fn default() -> Self {
        LlamaSettings {
            ctx_size: 4096,
            n_parallel: 1,
            n_batch: 2048,
            n_ubatch: 512,
            type_k: CacheType::F16,
            type_v: CacheType::F16,
            flash_attn: FlashAttn::Auto,
            kv_unified: false,
            swa_full: false,
            use_mmap: true,
            repack: true,
            gpu_layers: None,
            tensor_split: Vec::new(),
            main_gpu: 0,
            no_kv_offload: false,
            override_tensors: Vec::new(),
            embeddings: false,
            reranking: false,
            pooling: Pooling::Unspecified,
            mmproj: None,
            mmproj_offload: true,
            no_warmup: false,
            rpc_servers: Vec::new(),
            image: ImageSettings::default(),
            rope: RopeSettings::default(),
            non_causal_whole_context: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_type_names_round_trip_and_sizes_match_ggml() {
        for t in CacheType::ALL {
            assert_eq!(CacheType::from_name(t.name()), Some(t));
        }
        assert_eq!(CacheType::from_name("q8"), None);
        // 128-wide head rows: f16 256 B, q8_0 4 blocks × 34 B, q4_0 4 × 18 B.
        assert_eq!(CacheType::F16.row_bytes(128), 256);
        assert_eq!(CacheType::Q8_0.row_bytes(128), 136);
        assert_eq!(CacheType::Q4_0.row_bytes(128), 72);
        // 2^62 F32 elements (an `embedding_length` of 2^62 in a hostile header) once
        // overflowed the multiplication.
        assert_eq!(CacheType::F32.checked_row_bytes(1 << 62), None);
        assert_eq!(CacheType::F32.row_bytes(1 << 62), u64::MAX);
        assert_eq!(
            CacheType::Q8_0.checked_row_bytes(1 << 62),
            Some((1 << 57) * 34)
        );
        assert!(CacheType::Q5_1.is_quantized() && !CacheType::Bf16.is_quantized());
    }

    #[test]
    fn settings_deserialize_with_llama_server_defaults() {
        let s: LlamaSettings = serde_json::from_str(r#"{"ctx_size": 8192, "type_v": "q8_0"}"#)
            .expect("valid settings");
        assert_eq!(s.ctx_size, 8192);
        assert_eq!(s.type_v, CacheType::Q8_0);
        assert_eq!(s.n_ubatch, 512);
        assert_eq!(s.flash_attn, FlashAttn::Auto);
        assert!(!s.swa_full && s.use_mmap);
    }
}
