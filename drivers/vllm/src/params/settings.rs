//! The launch settings that change memory use, read from the checked user parameters, so that
//! the estimate is computed from the very arguments that will be launched.

use inferkit_core::{Category, ChipFamily, DeviceSlot, Error, Result};

use crate::flags::Release;
use crate::flags::VllmVersion;
use crate::params::Params;

/// Memory-relevant settings of one launch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LaunchSettings {
    pub version: VllmVersion,
    /// The release whose memory rules apply: the flag table's own version unless
    /// [`LaunchSettings::with_release`] names another one.
    pub release: Release,
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
    /// `--cpu-offload-gb` in bytes: weights per GPU moved to pinned host memory.
    pub cpu_offload_bytes: u64,
    /// `--swap-space` in bytes per GPU (0.10.1.1; 0.33.0 has no such flag).
    pub swap_space_bytes: u64,
    /// `--block-size`: tokens per KV block.
    pub block_size: Option<u64>,
}

const GIB: f64 = (1u64 << 30) as f64;

/// Data parallelism runs several engines, each on the devices of one (tensor × pipeline
/// parallel); a plan sizes and places one engine. Planned as one, `--data-parallel-size 2` would
/// start two engines on the devices of one and fail at start: refused, with what to do instead.
fn refuse_data_parallel(params: &Params) -> Result<()> {
    for flag in ["--data-parallel-size", "--data-parallel-size-local"] {
        match params.parsed::<u64>(flag)? {
            Some(engines) if engines > 1 => {
                return Err(Error::invalid_parameter(
                    flag,
                    format!(
                        "{engines} engines need {engines} times the devices of one, and a plan \
                         places one engine: plan {engines} instances instead"
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
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
        refuse_data_parallel(params)?;
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
        let block_size = block_size(params)?;
        Ok(LaunchSettings {
            version: params.version,
            release: release_of(params.version),
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
            cpu_offload_bytes: gib_flag(params, "--cpu-offload-gb")?,
            swap_space_bytes: gib_flag(params, "--swap-space")?,
            block_size,
        })
    }

    /// The same launch on another vLLM release of the same flag table (`backend_version`
    /// `0.17.1` is launched with the flags of the nearest table but sized by 0.17's rules).
    pub(crate) fn with_release(mut self, release: Release) -> Self {
        self.release = release;
        self
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

/// The flag table and the release whose memory rules a `backend_version` targets: a version
/// with a flag table is itself; another release from 0.8 to 0.33 is checked against the nearest
/// table (0.10.1.1 before 0.11, 0.33.0 from 0.11 on) and sized by its own release band.
pub(crate) fn target(backend_version: Option<&str>) -> Result<(VllmVersion, Release)> {
    match VllmVersion::from_spec(backend_version) {
        Ok(table) => Ok((table, release_of(table))),
        Err(unknown) => {
            let release = backend_version
                .and_then(Release::parse)
                .filter(|r| (Release::new(0, 8, 0)..Release::new(0, 34, 0)).contains(r))
                .ok_or(unknown)?;
            let table = if release < Release::new(0, 11, 0) {
                VllmVersion::V0_10_1_1
            } else {
                VllmVersion::V0_33_0
            };
            Ok((table, release))
        }
    }
}

/// The release a flag table describes.
pub(crate) fn release_of(version: VllmVersion) -> Release {
    match version {
        VllmVersion::V0_10_1_1 => Release::new(0, 10, 1),
        VllmVersion::V0_33_0 => Release::new(0, 33, 0),
    }
}

/// A size flag in GiB (`--cpu-offload-gb`, `--swap-space`) in bytes: the user's value, else
/// the version's default, else 0 (a flag the version lacks). vLLM refuses negative sizes;
/// infinite, NaN and sizes past `u64` bytes are refused here too.
fn gib_flag(params: &Params, name: &str) -> Result<u64> {
    let default = || {
        params
            .version
            .default_of(name)
            .and_then(|d| d.parse::<f64>().ok())
    };
    let Some(gib) = params.parsed::<f64>(name)?.or_else(default) else {
        return Ok(0);
    };
    let bytes = gib * GIB;
    if !(bytes >= 0.0 && bytes < u64::MAX as f64) {
        return Err(Error::invalid_parameter(
            name,
            format!(
                "{gib} is not a size in GiB between 0 and {}",
                u64::MAX as f64 / GIB
            ),
        ));
    }
    Ok(bytes as u64)
}

/// `--block-size`, a positive count of tokens. 0.10.1.1 allows only its `BlockSize` literal
/// (1 to 128, `vllm/config/cache.py:24`), which its flag table lists and the parameter check
/// applies; 0.33.0 takes any positive integer (`block_size: int = Field(default=None, gt=0)`,
/// `vllm/config/cache.py:187`).
fn block_size(params: &Params) -> Result<Option<u64>> {
    let Some(size) = params.value("--block-size") else {
        return Ok(None);
    };
    match size.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(Error::invalid_parameter(
            "--block-size",
            format!("`{size}` is not a positive number of tokens"),
        )),
    }
}

/// Every device is an Ascend 310P (GPUStack checks the CANN chip of the worker; the inventory's
/// product name carries it, `Ascend310P3`).
pub(crate) fn is_ascend_310p(devices: &[DeviceSlot]) -> bool {
    !devices.is_empty()
        && devices
            .iter()
            .all(|d| ChipFamily::of(&d.vendor, &d.name) == ChipFamily::Ascend310P)
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
