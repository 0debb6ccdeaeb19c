//! What a vLLM estimate reports beside the bytes: the `details` of its
//! [`ResourceEstimate`](inferkit_core::ResourceEstimate), as a type.

use serde::{Deserialize, Serialize};

/// The details of a vLLM estimate, each under its JSON key in `estimate.details`. Read them
/// back with [`ResourceEstimate::details_as`](inferkit_core::ResourceEstimate::details_as).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VllmDetails {
    /// The flag table's vLLM version (`0.33.0`).
    pub vllm_version: String,
    /// The release whose memory rules apply (`0.17.1`).
    pub memory_rules: String,
    /// `--tensor-parallel-size`.
    pub tensor_parallel: u64,
    /// `--pipeline-parallel-size`.
    pub pipeline_parallel: u64,
    /// The `--gpu-memory-utilization` launched, to two decimals.
    pub gpu_memory_utilization: f64,
    /// The `--max-model-len` launched.
    pub max_model_len: u64,
    /// The longest `--max-model-len` the KV cache would hold (a multiple of 256, at least
    /// `max_model_len`).
    pub largest_max_model_len: u64,
    /// KV cache blocks per GPU.
    pub kv_cache_blocks: u64,
    /// vLLM's logged "GPU KV cache size" in tokens (the least of the ranks).
    pub kv_cache_tokens: u64,
    /// Sequences of `max_model_len` tokens the KV cache holds at once (vLLM's "Maximum
    /// concurrency"), to two decimals.
    pub concurrency_at_max_model_len: f64,
    /// The estimate's declared error on the KV cache, in percent.
    pub kv_error_band_percent: u64,
    /// The model's own context length.
    pub model_max_model_len: u64,
    /// Bytes of one KV block on the first GPU.
    pub kv_block_bytes: u64,
    /// The scheduler's `--max-num-batched-tokens`.
    pub max_num_batched_tokens: u64,
    /// The scheduler's `--max-num-seqs`.
    pub max_num_seqs: u64,
    /// Whether CUDA graphs are captured (no `--enforce-eager`).
    pub cuda_graphs: bool,
    /// Where the weight bytes come from.
    pub weights_from: WeightsFrom,
    /// What would hold more context, when the chosen `max_model_len` is shorter than the
    /// model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longer_context: Option<LongerContext>,
}

/// Where the weight bytes of an estimate come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightsFrom {
    /// The safetensors headers: the checkpoint's real tensors.
    Safetensors,
    /// The config's dimensions (no safetensors headers were read).
    Config,
}

/// Changes that would hold a longer context than the estimate chose, each with the
/// `--max-model-len` it would allow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LongerContext {
    /// A larger `--gpu-memory-utilization` (what the GPUs have free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_utilization: Option<MoreMemory>,
    /// `--kv-cache-dtype fp8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_dtype_fp8: Option<Fp8Cache>,
    /// More GPUs of the same kind in tensor parallel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_gpus: Option<MoreGpus>,
}

/// A larger `--gpu-memory-utilization` and the context it allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoreMemory {
    /// The fraction, to two decimals.
    pub gpu_memory_utilization: f64,
    /// The `--max-model-len` it allows.
    pub max_model_len: u64,
}

/// An fp8 KV cache and the context it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fp8Cache {
    /// The `--max-model-len` it allows.
    pub max_model_len: u64,
}

/// A larger tensor-parallel size and the context it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoreGpus {
    /// The tensor-parallel size.
    pub tensor_parallel: u64,
    /// The `--max-model-len` it allows.
    pub max_model_len: u64,
}
