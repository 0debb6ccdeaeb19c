//! NPU memory of a MindIE instance.
//!
//! MindIE takes `--npu-memory-fraction` of every NPU it runs on (`NPU_MEMORY_FRACTION`), loads
//! its share of the weights (tensor parallel over all NPUs of the instance), and turns the rest
//! of that fraction into KV-cache blocks (`npuMemSize: -1`). Placement must therefore reserve
//! the fraction of each NPU's total memory, and the fraction must hold at least:
//!
//! * the weights / world size;
//! * KV cache for one sequence of `--max-seq-len` tokens (MindIE admits a request only when its
//!   blocks fit) plus one `--cache-block-size` block for each of `--max-batch-size` decoding
//!   requests; GPUStack's selector sizes the same two terms (its `kv` and `compute`);
//! * the runtime workspace MindIE reserves, `RESERVED_MEMORY_GB` of the env (3 GiB by default).
//!
//! Reserving `--max-seq-len × --max-batch-size` tokens up front would be wrong for MindIE:
//! blocks are shared and allocated on demand, so such an estimate (200 GiB of KV for
//! Llama-3.1-8B at the defaults) refuses placements MindIE serves.

pub(crate) mod shape;

use std::collections::BTreeMap;

use inferkit_core::hf::HfModel;
use inferkit_core::{
    Components, DeviceEstimate, DeviceSlot, Error, ErrorBand, EstimateRequest, FigureBasis,
    FitRequest, LaunchArgument, Layout, ResourceEstimate, ResourceEstimator, Result, details_map,
};
use serde::{Deserialize, Serialize};

use self::shape::{Chip, Shape};
use crate::params::{Params, RunDtype};

/// Runtime workspace per NPU when the user's env does not set `RESERVED_MEMORY_GB` (MindIE's
/// reserve for activations; GPUStack `ascend_mindie_resource_fit_selector.py` sizes its
/// footprint from the same variable, 3 GiB by default).
pub const NPU_WORKSPACE: u64 = 3 << 30;

/// The band of MindIE's figures: weights, KV cache and workspace follow MindIE's and GPUStack's
/// sizing rules, but no MindIE run was measured here, so the communication buffers and runtime
/// memory beside the workspace are not counted. MindIE takes exactly its fraction, so the band
/// is held inside it: weights, one sequence's KV cache and the workspace must fit the fraction
/// with this margin.
const ERROR_BAND: ErrorBand = ErrorBand {
    percent: 5,
    basis: FigureBasis::Derived,
    inside_claim: true,
};

/// The environment variable MindIE reads its workspace reserve from, in GiB.
const RESERVED_MEMORY_ENV: &str = "RESERVED_MEMORY_GB";

/// Host RAM of the daemon (GPUStack's selector: 512 MiB plus the swap space).
pub const HOST_BASE_RAM: u64 = 512 << 20;

/// The estimator of one model with one set of parameters.
#[derive(Debug, Clone)]
pub struct MindieEstimator<'a> {
    model: &'a HfModel,
    shape: Shape,
    params: Params,
    workspace: u64,
}

impl<'a> MindieEstimator<'a> {
    /// Binds the model, the parameters and the environment the daemon will get.
    pub fn new(model: &'a HfModel, params: Params, env: &BTreeMap<String, String>) -> Result<Self> {
        Ok(MindieEstimator {
            shape: Shape::of(model)?,
            model,
            params,
            workspace: workspace(env)?,
        })
    }

    /// Bytes `--npu-memory-fraction` lets MindIE use on `slot`.
    fn budget(&self, slot: &DeviceSlot) -> u64 {
        // Truncated like GPUStack's `int(total * fraction)`; the fraction is in (0, 1].
        (slot.total as f64 * self.params.npu_memory_fraction) as u64
    }

    fn components(&self, dtype: RunDtype, world: u64, seq: u64) -> Result<(Components, u64)> {
        let weights = shape::weight_bytes(self.model, dtype)?.div_ceil(world);
        let per_token = self.shape.kv_bytes_per_token(dtype, world);
        let tokens = seq.saturating_add(
            self.params
                .max_batch_size
                .saturating_mul(self.params.cache_block_size),
        );
        let components = Components {
            weights,
            kv: per_token.saturating_mul(tokens),
            overhead: self.workspace,
            ..Components::default()
        };
        Ok((components, per_token))
    }

    /// Parameters the launch must carry to match this estimate: the derived sequence length
    /// and the 310P dtype, when the user did not set them.
    fn launch_parameters(&self, seq: u64, chip: Chip) -> Vec<LaunchArgument> {
        let mut args = Vec::new();
        if self.params.max_seq_len.is_none() {
            args.push(LaunchArgument::new("--max-seq-len", [seq.to_string()]));
        }
        if chip == Chip::Ascend310P && self.params.dtype.is_none() {
            args.push(LaunchArgument::new("--dtype", ["float16"]));
        }
        args
    }
}

/// What a MindIE estimate reports beside the bytes, each under its JSON key in
/// `estimate.details` (read back with
/// [`ResourceEstimate::details_as`](inferkit_core::ResourceEstimate::details_as)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MindieDetails {
    /// The Ascend generation of the NPUs.
    pub chip: Chip,
    /// The type the model runs in.
    pub dtype: RunDtype,
    /// NPUs of the instance (`worldSize`).
    pub world_size: u64,
    /// The `--max-seq-len` launched.
    pub max_seq_len: u64,
    /// KV cache bytes per token on one NPU.
    pub kv_bytes_per_token: u64,
    /// Tokens of KV cache the space the weights leave holds, on the tightest NPU.
    pub kv_capacity_tokens: u64,
    /// The `--npu-memory-fraction` launched.
    pub npu_memory_fraction: f64,
}

impl ResourceEstimator for MindieEstimator<'_> {
    fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        let chip = Chip::of_all(&request.devices)?;
        let world = world_size(&request.layout, &request.devices)?;
        check_world_size(self.shape.heads, &request.devices)?;
        let dtype = shape::run_dtype(&self.params, &self.shape, chip)?;
        let seq = self
            .params
            .resolved_seq_len(self.shape.max_position_embeddings)?;
        let (components, per_token) = self.components(dtype, world, seq)?;
        let devices: Vec<DeviceEstimate> = request
            .devices
            .iter()
            .enumerate()
            .map(|(rank, slot)| {
                DeviceEstimate::new(
                    slot.id.clone(),
                    format!("npu{rank}"),
                    components,
                    self.budget(slot).max(components.total()),
                )
                .with_error_band(ERROR_BAND)
            })
            .collect();
        let spare = request
            .devices
            .iter()
            .map(|slot| {
                self.budget(slot)
                    .saturating_sub(components.weights.saturating_add(components.overhead))
            })
            .min()
            .unwrap_or(0);
        let details = MindieDetails {
            chip,
            dtype,
            world_size: world,
            max_seq_len: seq,
            kv_bytes_per_token: per_token,
            kv_capacity_tokens: spare / per_token.max(1),
            npu_memory_fraction: self.params.npu_memory_fraction,
        };
        let mut estimate = ResourceEstimate::new(resolved_layout(world), devices);
        estimate.host = Components {
            kv: self.params.cpu_mem_size_gib.saturating_mul(1 << 30),
            overhead: HOST_BASE_RAM,
            ..Components::default()
        };
        estimate.launch_parameters = self.launch_parameters(seq, chip);
        estimate.details = details_map(&details);
        estimate.notes = vec![format!(
            "MindIE claims {}% of each NPU (--npu-memory-fraction) and fills what the \
             weights leave with KV blocks",
            (self.params.npu_memory_fraction * 100.0).round()
        )];
        Ok(estimate)
    }

    fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        let world = u32::try_from(request.devices.len()).unwrap_or(u32::MAX);
        let estimate = self.estimate(&EstimateRequest {
            devices: request.devices.clone(),
            host: request.host.clone(),
            layout: resolved_layout(u64::from(world)),
        })?;
        for (device, slot) in estimate.devices.iter().zip(&request.devices) {
            let needed = ERROR_BAND.headroom_over(device.components.total());
            let budget = self.budget(slot);
            if needed > budget {
                return Err(Error::DoesNotFit {
                    needed,
                    available: budget,
                    reason: format!(
                        "{} ({}): weights, KV cache and workspace (with the estimate's {}) \
                         exceed --npu-memory-fraction={} of its memory",
                        slot.id, slot.name, ERROR_BAND, self.params.npu_memory_fraction
                    ),
                });
            }
        }
        estimate.check_fits(&request.devices, &request.host)?;
        Ok(estimate)
    }
}

/// `RESERVED_MEMORY_GB` of the user's env (a positive number of GiB), else [`NPU_WORKSPACE`].
fn workspace(env: &BTreeMap<String, String>) -> Result<u64> {
    let Some(text) = env.get(RESERVED_MEMORY_ENV) else {
        return Ok(NPU_WORKSPACE);
    };
    match text.trim().parse::<f64>() {
        Ok(gib) if gib > 0.0 && gib <= 1024.0 => Ok((gib * (1u64 << 30) as f64) as u64),
        _ => Err(Error::invalid_parameter(
            format!("env {RESERVED_MEMORY_ENV}"),
            format!("`{text}` is not a number of GiB in (0, 1024]"),
        )),
    }
}

fn resolved_layout(world: u64) -> Layout {
    match world {
        1 => Layout::Single,
        n => Layout::Parallel {
            tensor_parallel: u32::try_from(n).unwrap_or(u32::MAX),
            pipeline_parallel: 1,
        },
    }
}

/// MindIE runs tensor parallel over every NPU of the instance; other layouts are refused.
fn world_size(layout: &Layout, devices: &[DeviceSlot]) -> Result<u64> {
    let world = devices.len() as u64;
    let matches = match layout {
        Layout::Single => world == 1,
        Layout::Parallel {
            tensor_parallel,
            pipeline_parallel,
        } => u64::from(*tensor_parallel) == world && *pipeline_parallel == 1,
        _ => false,
    };
    if !matches {
        return Err(Error::unsupported(format!(
            "MindIE runs tensor parallel over all {world} NPUs of an instance; layout {layout:?} \
             is not supported"
        )));
    }
    Ok(world)
}

/// GPUStack's selector rules: every worker brings the same number of NPUs, that number is a
/// power of two, and the world size divides the attention heads.
fn check_world_size(heads: u64, devices: &[DeviceSlot]) -> Result<()> {
    let mut per_worker: BTreeMap<&str, u64> = BTreeMap::new();
    for slot in devices {
        *per_worker.entry(slot.id.worker.as_str()).or_default() += 1;
    }
    let counts: Vec<u64> = per_worker.values().copied().collect();
    if counts.windows(2).any(|w| w[0] != w[1]) {
        return Err(Error::unsupported(format!(
            "MindIE needs the same number of NPUs on every worker, got {per_worker:?}"
        )));
    }
    let local = counts.first().copied().unwrap_or(0);
    let world = devices.len() as u64;
    if local.is_power_of_two() && heads.is_multiple_of(world) {
        return Ok(());
    }
    let valid: Vec<String> = (0..=local.max(1).ilog2())
        .map(|p| 1u64 << p)
        .filter(|n| heads.is_multiple_of(n * per_worker.len() as u64))
        .map(|n| n.to_string())
        .collect();
    Err(Error::unsupported(format!(
        "MindIE's world size ({world} NPUs, {local} per worker) must be a power of two per \
         worker that divides the model's {heads} attention heads; valid NPU counts per worker: \
         {}",
        valid.join(", ")
    )))
}
