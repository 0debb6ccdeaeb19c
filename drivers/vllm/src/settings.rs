//! The launch settings that change memory use, read from the checked user parameters, so that
//! the estimate is computed from the very arguments that will be launched.

use inferkit_core::{Category, DeviceSlot, Error, Result, Vendor};

use crate::flags::VllmVersion;
use crate::params::Params;

/// Memory-relevant settings of one launch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LaunchSettings {
    pub version: VllmVersion,
    pub tensor_parallel: Option<u64>,
    pub pipeline_parallel: Option<u64>,
    pub gpu_memory_utilization: Option<f64>,
    pub max_model_len: Option<u64>,
    pub max_num_batched_tokens: Option<u64>,
    pub max_num_seqs: Option<u64>,
    /// Bytes per KV element when `--kv-cache-dtype` names one (`None`: the model dtype).
    pub kv_bytes: Option<u64>,
    /// Bytes per element when `--dtype` names one.
    pub dtype_bytes: Option<u64>,
    pub enforce_eager: bool,
    /// `--cuda-graph-sizes N` / `--max-cudagraph-capture-size N`.
    pub max_capture_size: Option<u64>,
    /// Every layer keeps the whole context (`--disable-sliding-window` or
    /// `--disable-hybrid-kv-cache-manager`).
    pub all_layers_full: bool,
    /// The vision encoder runs data-parallel (`--mm-encoder-tp-mode data`).
    pub encoder_data_parallel: bool,
    /// A pooling model (embedding, reranker): no chunked prefill.
    pub pooling: bool,
}

impl LaunchSettings {
    /// Reads the settings from checked parameters; `categories` are the deployment's.
    pub(crate) fn from_params(params: &Params, categories: &[Category]) -> Result<Self> {
        let positive = |name: &str| -> Result<Option<u64>> {
            match params.human_int(name)? {
                Some(0) => Err(Error::invalid_parameter(name, "must be at least 1")),
                other => Ok(other),
            }
        };
        let gmu = params.parsed::<f64>("--gpu-memory-utilization")?;
        if let Some(g) = gmu
            && !(g > 0.0 && g <= 1.0)
        {
            return Err(Error::invalid_parameter(
                "--gpu-memory-utilization",
                format!("{g} is not a fraction in (0, 1]"),
            ));
        }
        let max_capture_size = match params.value("--max-cudagraph-capture-size") {
            Some(_) => positive("--max-cudagraph-capture-size")?,
            None => params
                .value("--cuda-graph-sizes")
                .and_then(|v| v.parse().ok()),
        };
        let dtype_bytes = params.value("--dtype").and_then(dtype_bytes);
        Ok(LaunchSettings {
            version: params.version,
            tensor_parallel: positive("--tensor-parallel-size")?,
            pipeline_parallel: positive("--pipeline-parallel-size")?,
            gpu_memory_utilization: gmu,
            max_model_len: positive("--max-model-len")?,
            max_num_batched_tokens: positive("--max-num-batched-tokens")?,
            max_num_seqs: positive("--max-num-seqs")?,
            kv_bytes: params.value("--kv-cache-dtype").and_then(kv_dtype_bytes),
            dtype_bytes,
            enforce_eager: params.switch("--enforce-eager") == Some(true),
            max_capture_size,
            all_layers_full: params.switch("--disable-sliding-window") == Some(true)
                || params.switch("--disable-hybrid-kv-cache-manager") == Some(true),
            encoder_data_parallel: params.value("--mm-encoder-tp-mode") == Some("data"),
            pooling: is_pooling(params, categories),
        })
    }

    /// The settings on these devices: GPUStack's Ascend 310P rules force eager mode and
    /// float16 unless the user set `--dtype`.
    pub(crate) fn on_devices(&self, devices: &[DeviceSlot]) -> LaunchSettings {
        let mut settings = self.clone();
        if is_ascend_310p(devices) {
            settings.enforce_eager = true;
            settings.dtype_bytes = settings.dtype_bytes.or(Some(2));
        }
        settings
    }
}

/// Every device is an Ascend 310P (GPUStack checks the CANN chip of the worker; the inventory's
/// product name carries it, `Ascend310P3`).
pub(crate) fn is_ascend_310p(devices: &[DeviceSlot]) -> bool {
    !devices.is_empty()
        && devices
            .iter()
            .all(|d| d.vendor == Vendor::Ascend && d.name.to_lowercase().contains("310p"))
}

/// Whether vLLM runs the model as a pooling model: the user said so (`--runner pooling`,
/// `--task embed`, `--convert embed`) or the deployment is an embedding/reranker model.
fn is_pooling(params: &Params, categories: &[Category]) -> bool {
    let task_pools = matches!(
        params.value("--task"),
        Some("embed" | "embedding" | "classify" | "score" | "reward")
    );
    params.value("--runner") == Some("pooling")
        || matches!(
            params.value("--convert"),
            Some("embed" | "classify" | "reward")
        )
        || task_pools
        || categories
            .iter()
            .any(|c| matches!(c, Category::Embedding | Category::Reranker))
}

/// Bytes per element of `--kv-cache-dtype`; `auto` follows the model dtype.
fn kv_dtype_bytes(value: &str) -> Option<u64> {
    match value {
        v if v.starts_with("fp8") => Some(1),
        "bfloat16" | "float16" | "half" => Some(2),
        "float32" | "float" => Some(4),
        _ => None,
    }
}

/// Bytes per element of `--dtype`; `auto` follows the checkpoint.
fn dtype_bytes(value: &str) -> Option<u64> {
    match value {
        "float32" | "float" => Some(4),
        "bfloat16" | "float16" | "half" => Some(2),
        _ => None,
    }
}
