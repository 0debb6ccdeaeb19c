//! The user's MindIE parameters, typed and checked: GPUStack 0.7.1's defaults and its
//! `_validate()` rules (`worker/backends/ascend_mindie.py`), plus the cross-parameter rules.

use inferkit_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::flags::Written;

/// GPUStack caps the derived context length at this many tokens (`ascend_mindie.py`:
/// `max_seq_len = min(derived, 8192)`), unlike vLLM which uses the whole derived length.
pub const MAX_DERIVED_SEQ_LEN: u64 = 8192;

/// Parameters of GPUStack's table that this driver does not translate (speculative decoding,
/// split-fuse, buffered responses, explicit parallel layouts): refused rather than dropped.
const NOT_TRANSLATED: &[&str] = &[
    "--enable-memory-decoding",
    "--memory-decoding-length",
    "--memory-decoding-dynamic-algo",
    "--enable-lookahead",
    "--lookahead-level",
    "--lookahead-window",
    "--lookahead-guess-set-size",
    "--enable-buffer-response",
    "--prefill-expected-time-ms",
    "--decode-expected-time-ms",
    "--enable-split",
    "--policy-type",
    "--split-chunk-tokens",
    "--split-start-batch-size",
    "--enable-multi-token-prediction",
    "--multi-token-prediction-tokens",
    "--pipeline-parallel-size",
    "--data-parallel-size",
    "--tensor-parallel-size",
    "--sequence-parallel-size",
    "--moe-expert-parallel-size",
    "--moe-tensor-parallel-size",
];

/// Floating-point type the model runs in (`--dtype`; `auto` keeps the model's `torch_dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunDtype {
    /// IEEE half precision (`half`, `float16`).
    Float16,
    /// bfloat16.
    Bfloat16,
    /// IEEE single precision (`float`, `float32`).
    Float32,
}

impl RunDtype {
    /// The `torch_dtype` spelling written into the model's `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            RunDtype::Float16 => "float16",
            RunDtype::Bfloat16 => "bfloat16",
            RunDtype::Float32 => "float32",
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            RunDtype::Float32 => 4,
            _ => 2,
        }
    }

    /// Reads a `torch_dtype` / `--dtype` spelling; `None` for `auto` or an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "half" | "float16" | "fp16" => Some(RunDtype::Float16),
            "bfloat16" | "bf16" => Some(RunDtype::Bfloat16),
            "float" | "float32" | "fp32" => Some(RunDtype::Float32),
            _ => None,
        }
    }
}

/// Every MindIE parameter with its value (the user's, else GPUStack's default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// `--log-level` as written (`Info`, `Warning`, ...).
    pub log_level: String,
    /// `--max-link-num`.
    pub max_link_num: u64,
    /// `--token-timeout`, seconds.
    pub token_timeout: u64,
    /// `--e2e-timeout`, seconds.
    pub e2e_timeout: u64,
    /// `--max-seq-len` when given; otherwise derived from the model (capped at
    /// [`MAX_DERIVED_SEQ_LEN`]).
    pub max_seq_len: Option<u64>,
    /// `--max-input-token-len` when given (> 0); otherwise the sequence length.
    pub max_input_token_len: Option<u64>,
    /// `--truncation`.
    pub truncation: bool,
    /// `--cpu-mem-size`, GiB of swap space (forced to 0 without preemption, as GPUStack does).
    pub cpu_mem_size_gib: u64,
    /// `--npu-memory-fraction`.
    pub npu_memory_fraction: f64,
    /// `--trust-remote-code`.
    pub trust_remote_code: bool,
    /// `--cache-block-size`, tokens per KV block.
    pub cache_block_size: u64,
    /// `--max-prefill-batch-size`.
    pub max_prefill_batch_size: u64,
    /// `--prefill-time-ms-per-req`.
    pub prefill_time_ms_per_req: u64,
    /// `--prefill-policy-type`.
    pub prefill_policy_type: u64,
    /// `--max-batch-size`.
    pub max_batch_size: u64,
    /// `--decode-time-ms-per-req`.
    pub decode_time_ms_per_req: u64,
    /// `--decode-policy-type`.
    pub decode_policy_type: u64,
    /// `--max-preempt-count`.
    pub max_preempt_count: u64,
    /// `--support-select-batch`.
    pub support_select_batch: bool,
    /// `--max-queue-delay-microseconds`.
    pub max_queue_delay_microseconds: u64,
    /// `--enable-prefix-caching`.
    pub enable_prefix_caching: bool,
    /// `--metrics`.
    pub metrics: bool,
    /// `--enforce-eager`.
    pub enforce_eager: bool,
    /// `--dtype` (`None`: `auto`).
    pub dtype: Option<RunDtype>,
    /// `--rope-scaling`.
    pub rope_scaling: Option<Map<String, Value>>,
    /// `--rope-theta`.
    pub rope_theta: Option<f64>,
    /// `--override-generation-config`.
    pub override_generation_config: Option<Map<String, Value>>,
}

impl Params {
    /// Parses and checks `tokens` (each `--flag`, `value` or `--flag=value`).
    pub fn parse(tokens: &[String]) -> Result<Params> {
        let w = Written::parse(tokens)?;
        if let Some(name) = w.names().find(|n| NOT_TRANSLATED.contains(n)) {
            return Err(Error::invalid_parameter(
                name,
                "is accepted by GPUStack but not translated by inferkit's MindIE driver \
                 (speculative decoding, split-fuse, buffered responses and explicit parallel \
                 sizes are not supported; the world size follows the devices placed)",
            ));
        }
        let params = Params {
            log_level: w.string("--log-level")?.unwrap_or_default(),
            max_link_num: unsigned(&w, "--max-link-num")?,
            token_timeout: unsigned(&w, "--token-timeout")?,
            e2e_timeout: unsigned(&w, "--e2e-timeout")?,
            max_seq_len: explicit(&w, "--max-seq-len")?,
            max_input_token_len: max_input_token_len(&w)?,
            truncation: w.switch("--truncation"),
            cpu_mem_size_gib: unsigned(&w, "--cpu-mem-size")?,
            npu_memory_fraction: w.float("--npu-memory-fraction")?.unwrap_or(0.9),
            trust_remote_code: w.switch("--trust-remote-code"),
            cache_block_size: unsigned(&w, "--cache-block-size")?,
            max_prefill_batch_size: unsigned(&w, "--max-prefill-batch-size")?,
            prefill_time_ms_per_req: unsigned(&w, "--prefill-time-ms-per-req")?,
            prefill_policy_type: unsigned(&w, "--prefill-policy-type")?,
            max_batch_size: unsigned(&w, "--max-batch-size")?,
            decode_time_ms_per_req: unsigned(&w, "--decode-time-ms-per-req")?,
            decode_policy_type: unsigned(&w, "--decode-policy-type")?,
            max_preempt_count: unsigned(&w, "--max-preempt-count")?,
            support_select_batch: w.switch("--support-select-batch"),
            max_queue_delay_microseconds: unsigned(&w, "--max-queue-delay-microseconds")?,
            enable_prefix_caching: w.switch("--enable-prefix-caching"),
            metrics: w.switch("--metrics"),
            enforce_eager: w.switch("--enforce-eager"),
            dtype: w.string("--dtype")?.and_then(|d| RunDtype::from_name(&d)),
            rope_scaling: w.json_object("--rope-scaling")?,
            rope_theta: w.float("--rope-theta")?,
            override_generation_config: w.json_object("--override-generation-config")?,
        };
        let params = params.with_derived_defaults(&w);
        params.check_relations()?;
        Ok(params)
    }

    /// GPUStack's `_default()`: no swap space without preemption. Also, unlike GPUStack, the
    /// prefill batch default (50) follows a smaller `--max-batch-size` instead of refusing it.
    fn with_derived_defaults(mut self, w: &Written) -> Self {
        if self.max_preempt_count == 0 {
            self.cpu_mem_size_gib = 0;
        }
        if !w.has("--max-prefill-batch-size") {
            self.max_prefill_batch_size = self.max_prefill_batch_size.min(self.max_batch_size);
        }
        self
    }

    /// The rules between parameters (GPUStack `_validate()`, and MindIE's own refusals).
    fn check_relations(&self) -> Result<()> {
        let batch = self.max_batch_size;
        // MindIE documents maxPrefillBatchSize in [1, maxBatchSize] and maxPreemptCount in
        // [0, maxBatchSize] (hiascend mindie_service0285); GPUStack checks the same ranges.
        if !(1..=batch).contains(&self.max_prefill_batch_size) {
            return Err(Error::invalid_parameter(
                "--max-prefill-batch-size",
                format!(
                    "must be in the range [1, --max-batch-size ({batch})], got {}",
                    self.max_prefill_batch_size
                ),
            ));
        }
        if self.max_preempt_count > batch {
            return Err(Error::invalid_parameter(
                "--max-preempt-count",
                format!(
                    "must be in the range [0, --max-batch-size ({batch})], got {}",
                    self.max_preempt_count
                ),
            ));
        }
        if let (Some(input), Some(seq)) = (self.max_input_token_len, self.max_seq_len) {
            check_input_len(input, seq)?;
        }
        if let Some(theta) = self.rope_theta
            && theta <= 0.0
        {
            return Err(Error::invalid_parameter(
                "--rope-theta",
                format!("must be greater than 0, got {theta}"),
            ));
        }
        if self.enable_prefix_caching && self.rope_scaling.is_some() {
            // GPUStack: "prefix caching excludes rope scaling" (MindIE's prefix-cache plugin
            // does not support extended context).
            return Err(Error::invalid_parameter(
                "--enable-prefix-caching",
                "cannot be combined with --rope-scaling",
            ));
        }
        Ok(())
    }

    /// The sequence length for a model whose own limit is `derived` (None: unknown): the
    /// user's, else the derived one capped at [`MAX_DERIVED_SEQ_LEN`]. Also checks
    /// `--max-input-token-len` against it.
    pub fn resolved_seq_len(&self, derived: Option<u64>) -> Result<u64> {
        let seq = self
            .max_seq_len
            .unwrap_or_else(|| derived.map_or(MAX_DERIVED_SEQ_LEN, |d| d.min(MAX_DERIVED_SEQ_LEN)));
        if let Some(input) = self.max_input_token_len {
            check_input_len(input, seq)?;
        }
        Ok(seq)
    }
}

fn check_input_len(input: u64, seq: u64) -> Result<()> {
    if input > seq {
        return Err(Error::invalid_parameter(
            "--max-input-token-len",
            format!("must be in the range (0, --max-seq-len ({seq})], got {input}"),
        ));
    }
    Ok(())
}

/// `--max-input-token-len`: -1 or 0 (GPUStack: `<= 0`) mean "the sequence length".
fn max_input_token_len(w: &Written) -> Result<Option<u64>> {
    Ok(w.int("--max-input-token-len")?
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0))
}

/// A parameter the user wrote, else `None` (its table default is only GPUStack's fallback).
fn explicit(w: &Written, name: &str) -> Result<Option<u64>> {
    match w.has(name) {
        true => unsigned(w, name).map(Some),
        false => Ok(None),
    }
}

/// A non-negative integer parameter with a default (the table's ranges exclude negatives).
fn unsigned(w: &Written, name: &str) -> Result<u64> {
    let value = w.int(name)?.unwrap_or(0);
    u64::try_from(value)
        .map_err(|_| Error::invalid_parameter(name, format!("must not be negative, got {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: &[&str]) -> Result<Params> {
        Params::parse(&tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn gpustack_defaults() {
        let p = parse(&[]).unwrap();
        assert_eq!(p.max_batch_size, 200);
        assert_eq!(p.max_prefill_batch_size, 50);
        assert_eq!(p.cache_block_size, 128);
        assert_eq!(p.token_timeout, 600);
        assert_eq!(p.max_queue_delay_microseconds, 5000);
        assert_eq!(p.npu_memory_fraction, 0.9);
        assert_eq!(p.max_seq_len, None);
        assert_eq!(p.max_input_token_len, None);
        assert_eq!(p.dtype, None);
    }

    #[test]
    fn swap_space_needs_preemption() {
        let p = parse(&["--cpu-mem-size", "8"]).unwrap();
        assert_eq!(p.cpu_mem_size_gib, 0);
        let p = parse(&["--cpu-mem-size", "8", "--max-preempt-count", "4"]).unwrap();
        assert_eq!(p.cpu_mem_size_gib, 8);
    }

    #[test]
    fn the_prefill_batch_default_follows_a_small_batch() {
        assert_eq!(
            parse(&["--max-batch-size", "16"])
                .unwrap()
                .max_prefill_batch_size,
            16
        );
        assert!(parse(&["--max-batch-size", "16", "--max-prefill-batch-size", "50"]).is_err());
    }

    #[test]
    fn derived_sequence_length_is_capped() {
        let p = parse(&[]).unwrap();
        assert_eq!(p.resolved_seq_len(Some(131_072)).unwrap(), 8192);
        assert_eq!(p.resolved_seq_len(Some(4096)).unwrap(), 4096);
        let p = parse(&["--max-seq-len", "32768"]).unwrap();
        assert_eq!(p.resolved_seq_len(Some(131_072)).unwrap(), 32768);
        let p = parse(&["--max-input-token-len", "6000"]).unwrap();
        assert!(p.resolved_seq_len(Some(4096)).is_err());
    }

    #[test]
    fn dtype_aliases() {
        assert_eq!(
            parse(&["--dtype", "half"]).unwrap().dtype,
            Some(RunDtype::Float16)
        );
        assert_eq!(
            parse(&["--dtype=float"]).unwrap().dtype,
            Some(RunDtype::Float32)
        );
        assert_eq!(parse(&["--dtype", "auto"]).unwrap().dtype, None);
    }
}
