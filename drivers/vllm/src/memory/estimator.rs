//! The vLLM [`ResourceEstimator`]: per-GPU claim, KV capacity and the largest context that fits,
//! for one model and one set of launch parameters.

use std::collections::BTreeMap;

use serde_json::json;

use inferkit_core::{
    Components, DeviceEstimate, DeviceSlot, Error, EstimateRequest, FitRequest, HostSlot, Layout,
    ResourceEstimate, ResourceEstimator, Result,
};

use crate::flags::VllmVersion;
use crate::memory::parallel;
use crate::memory::shape::TextShape;
use crate::memory::weights::TensorTable;
use crate::memory::{self, EngineSettings, StageCost, gib};
use crate::params::settings::LaunchSettings;

use inferkit_core::units::GIB;

/// `max_model_len` chosen by inferkit is a multiple of this.
const CONTEXT_STEP: u64 = 256;

/// Below this context (or the model's own maximum, if smaller) a placement is refused rather
/// than launched with a uselessly short `--max-model-len`.
const MIN_CONTEXT: u64 = 2048;

/// vLLM raises its batching defaults on GPUs of at least this much memory, A100 excepted
/// (`EngineArgs.get_batch_defaults`, vllm PR #17885).
const LARGE_GPU: u64 = 70 * GIB;

/// A context needing more than this share of the KV blocks is at the boundary where vLLM's
/// profiled peak decides whether it starts (hard case 23, vllm#10517); a context inferkit
/// chooses stays below it, one the user sets is flagged.
const NEAR_LIMIT_PERCENT: u64 = 98;

/// Share of the host's memory a tensor-parallel group's swap space may take before vLLM
/// refuses to start (`CacheConfig.verify_with_parallel_config`).
const SWAP_SPACE_HOST_SHARE: f64 = 0.7;

/// gpu_memory_utilization is lowered in steps of 0.01 (two decimals on the command line).
const GMU_STEP: f64 = 0.01;

/// What the estimator knows about the model.
#[derive(Debug, Clone)]
pub(crate) struct ModelInput {
    pub shape: TextShape,
    /// The checkpoint's tensors; `None` falls back to the config-derived parameter count.
    pub tensors: Option<TensorTable>,
}

/// The vLLM estimator, bound to one model and one set of launch parameters.
#[derive(Debug, Clone)]
pub(crate) struct VllmEstimator {
    model: ModelInput,
    launch: LaunchSettings,
}

/// One GPU of the layout with its stage cost.
struct Rank<'d> {
    slot: &'d DeviceSlot,
    cost: StageCost,
}

impl VllmEstimator {
    pub(crate) fn new(model: ModelInput, launch: LaunchSettings) -> Self {
        VllmEstimator { model, launch }
    }

    fn version(&self) -> VllmVersion {
        self.launch.version
    }

    /// TP × PP of a request's layout.
    fn parallel_of(&self, request: &EstimateRequest) -> Result<(u64, u64)> {
        let (tp, pp) = match request.layout {
            Layout::Single => (1, 1),
            Layout::Parallel {
                tensor_parallel,
                pipeline_parallel,
            } => (u64::from(tensor_parallel), u64::from(pipeline_parallel)),
            Layout::CpuOnly | Layout::Layers { .. } => {
                return Err(Error::Unsupported(
                    "vLLM runs on GPUs only, as tensor/pipeline parallel layouts".into(),
                ));
            }
        };
        if tp * pp != request.devices.len() as u64 || tp == 0 || pp == 0 {
            return Err(Error::invalid_parameter(
                "layout",
                format!(
                    "tensor parallel {tp} × pipeline parallel {pp} needs {} GPUs, {} given",
                    tp * pp,
                    request.devices.len()
                ),
            ));
        }
        parallel::check(&self.model.shape, tp, self.launch.encoder_data_parallel)?;
        if pp > self.model.shape.layer_count() {
            return Err(Error::Unsupported(format!(
                "pipeline parallel {pp} exceeds the model's {} layers",
                self.model.shape.layer_count()
            )));
        }
        Ok((tp, pp))
    }

    /// Engine settings for this layout and context length.
    fn engine(
        &self,
        devices: &[DeviceSlot],
        tp: u64,
        pp: u64,
        max_model_len: u64,
    ) -> EngineSettings {
        let large = devices
            .first()
            .is_some_and(|d| d.total >= LARGE_GPU && !d.name.to_lowercase().contains("a100"));
        let launch = &self.launch.on_devices(devices);
        let max_num_seqs = launch
            .max_num_seqs
            .unwrap_or(if large { 1024 } else { 256 });
        let default_tokens = if large { 8192 } else { 2048 };
        // Pooling models run without chunked prefill, so one batch must hold a whole sequence.
        let max_num_batched_tokens = launch.max_num_batched_tokens.unwrap_or(if launch.pooling {
            default_tokens.max(max_model_len)
        } else {
            default_tokens
        });
        let (max_capture_size, capture_sizes) =
            self.capture_sizes(max_num_seqs, max_num_batched_tokens);
        let act_bytes = launch.dtype_bytes.unwrap_or(memory::MODEL_DTYPE_BYTES);
        EngineSettings {
            tensor_parallel: tp,
            pipeline_parallel: pp,
            kv_bytes: launch.kv_bytes.unwrap_or(act_bytes),
            act_bytes,
            max_num_batched_tokens,
            max_num_seqs,
            cuda_graphs: !launch.enforce_eager,
            max_capture_size,
            capture_sizes,
            graphs_in_budget: self.version() >= VllmVersion::V0_33_0,
            all_layers_full: launch.all_layers_full,
            block_size: launch.block_size.unwrap_or(memory::DEFAULT_BLOCK_SIZE),
        }
    }

    /// Largest captured batch and number of captured sizes: 0.10.1.1 captures 1, 2, 4 and every
    /// multiple of 8 up to `cuda_graph_sizes` (512); 0.33.0 caps at 2 × max_num_seqs (≤ 512),
    /// multiples of 8 below 256 and of 16 from 256.
    fn capture_sizes(&self, max_num_seqs: u64, max_tokens: u64) -> (u64, u64) {
        let largest = match self.version() {
            VllmVersion::V0_10_1_1 => self.launch.max_capture_size.unwrap_or(512),
            VllmVersion::V0_33_0 => self
                .launch
                .max_capture_size
                .unwrap_or(max_num_seqs.saturating_mul(2).min(512)),
        }
        .min(max_tokens)
        .max(1);
        let small = [1, 2, 4].iter().filter(|s| **s <= largest).count() as u64;
        let count = match self.version() {
            VllmVersion::V0_10_1_1 => small + largest / 8,
            VllmVersion::V0_33_0 => small + largest.min(255) / 8 + largest.saturating_sub(240) / 16,
        };
        (largest, count)
    }

    /// Weight bytes of one rank on its GPU: what it loads less what `--cpu-offload-gb` moves
    /// to the host, plus the rotary cos/sin cache vLLM builds at load time.
    fn weights(&self, tp: u64, pp: u64, stage: u64) -> u64 {
        let act_bytes = self.launch.dtype_bytes.unwrap_or(memory::MODEL_DTYPE_BYTES);
        self.loaded(tp, pp, stage)
            .saturating_sub(self.offloaded(tp, pp, stage))
            .saturating_add(memory::rope_cache_bytes(&self.model.shape, act_bytes))
    }

    /// Weight bytes one rank loads: from the tensor headers, else from the config.
    fn loaded(&self, tp: u64, pp: u64, stage: u64) -> u64 {
        let shape = &self.model.shape;
        let stored = match &self.model.tensors {
            Some(table) => table.rank_bytes(tp, pp, stage),
            None => memory::stored_bytes(shape, memory::rank_params(shape, tp, pp, stage)),
        };
        let act_bytes = self.launch.dtype_bytes.unwrap_or(memory::MODEL_DTYPE_BYTES);
        // `--dtype float32` upcasts unquantized weights. Saturating: the shards of a hostile
        // checkpoint can declare close to `u64::MAX` bytes, which then fit nowhere.
        match shape.quantization {
            None => (stored / memory::MODEL_DTYPE_BYTES).saturating_mul(act_bytes),
            Some(_) => stored,
        }
    }

    /// Host bytes one rank's `--cpu-offload-gb` moves off its GPU: that budget, at most the
    /// rank's weights (vLLM moves parameters to pinned host memory until the budget is spent,
    /// `maybe_offload_to_cpu` in `vllm/model_executor/models/utils.py`).
    fn offloaded(&self, tp: u64, pp: u64, stage: u64) -> u64 {
        match self.launch.cpu_offload_bytes {
            0 => 0,
            budget => self.loaded(tp, pp, stage).min(budget),
        }
    }

    /// The fraction to launch with: the user's, else the version default lowered to what every
    /// GPU has free (vLLM refuses to start when `total × fraction` is not free).
    fn utilization(&self, ranks: &[Rank], graphs_in_budget: bool) -> Result<(f64, bool)> {
        let default: f64 = self
            .version()
            .default_of("--gpu-memory-utilization")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.9);
        let wanted = self.launch.gpu_memory_utilization.unwrap_or(default);
        let affordable = ranks
            .iter()
            .map(|r| {
                let free = r
                    .slot
                    .allocatable
                    .saturating_sub(r.cost.outside_budget(graphs_in_budget));
                free as f64 / r.slot.total.max(1) as f64
            })
            .fold(f64::INFINITY, f64::min);
        if wanted <= affordable {
            return Ok((wanted, false));
        }
        if self.launch.gpu_memory_utilization.is_some() {
            let tight = tightest(ranks);
            return Err(Error::DoesNotFit {
                needed: (tight.slot.total as f64 * wanted) as u64
                    + tight.cost.outside_budget(graphs_in_budget),
                available: tight.slot.allocatable,
                reason: format!(
                    "--gpu-memory-utilization {wanted} asks for {wanted} × {} of {} but only {} is free there",
                    gib(tight.slot.total),
                    tight.slot.id,
                    gib(tight.slot.allocatable)
                ),
            });
        }
        Ok(((affordable / GMU_STEP).floor() * GMU_STEP, true))
    }

    /// Evaluates the layout at one context length.
    fn evaluate<'d>(
        &self,
        devices: &'d [DeviceSlot],
        layout: (u64, u64),
        weights: &[u64],
        len: u64,
    ) -> Result<Evaluation<'d>> {
        let (tp, pp) = layout;
        let engine = self.engine(devices, tp, pp, len);
        let ranks: Vec<Rank<'d>> = devices
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let stage = i as u64 / tp;
                let cost =
                    memory::stage_cost(&self.model.shape, &engine, stage, weights[stage as usize]);
                Rank { slot, cost }
            })
            .collect();
        let (gmu, lowered) = self.utilization(&ranks, engine.graphs_in_budget)?;
        let blocks = ranks
            .iter()
            .map(|r| kv_blocks(r, gmu, engine.graphs_in_budget))
            .min()
            .unwrap_or(0);
        let needed = ranks
            .iter()
            .map(|r| r.cost.kv.blocks_for(len))
            .max()
            .unwrap_or(0);
        // Weights and activations must fit in the fraction also when there is no KV cache to
        // run short of (encoder-only models).
        let within = ranks
            .iter()
            .all(|r| r.cost.in_budget(engine.graphs_in_budget) <= requested_bytes(r.slot, gmu));
        let fits = within && needed <= blocks;
        let comfortable =
            within && needed.saturating_mul(100) <= blocks.saturating_mul(NEAR_LIMIT_PERCENT);
        Ok(Evaluation {
            engine,
            ranks,
            gmu,
            lowered,
            blocks,
            fits,
            comfortable,
            len,
        })
    }

    /// Weight bytes per stage (one rank's share).
    fn stage_weights(&self, tp: u64, pp: u64) -> Vec<u64> {
        (0..pp).map(|stage| self.weights(tp, pp, stage)).collect()
    }

    /// The largest multiple of 256 up to `cap` that fits, or `None`.
    fn largest_fit<'d>(
        &self,
        devices: &'d [DeviceSlot],
        layout: (u64, u64),
        weights: &[u64],
        cap: u64,
    ) -> Result<Option<Evaluation<'d>>> {
        let at_cap = self.evaluate(devices, layout, weights, cap)?;
        if at_cap.comfortable {
            return Ok(Some(at_cap));
        }
        let (mut low, mut high) = (0u64, cap / CONTEXT_STEP);
        let mut best = None;
        while low < high {
            let mid = (low + high).div_ceil(2);
            let eval = self.evaluate(devices, layout, weights, mid * CONTEXT_STEP)?;
            if eval.comfortable {
                low = mid;
                best = Some(eval);
            } else {
                high = mid - 1;
            }
        }
        if best.as_ref().is_none_or(|b| b.len != low * CONTEXT_STEP) && low > 0 {
            best = Some(self.evaluate(devices, layout, weights, low * CONTEXT_STEP)?);
        }
        Ok(best)
    }

    /// The estimate of one layout.
    fn plan(&self, devices: &[DeviceSlot], layout: (u64, u64)) -> Result<ResourceEstimate> {
        let shape = &self.model.shape;
        let weights = self.stage_weights(layout.0, layout.1);
        let model_max = shape.max_position;
        let cap = self.launch.max_model_len.unwrap_or(model_max);
        let floor = MIN_CONTEXT.min(cap);
        let mut notes = Vec::new();
        let chosen = match self.launch.max_model_len {
            Some(len) => {
                if len > model_max {
                    notes.push(format!(
                        "--max-model-len {len} exceeds the model's {model_max}; vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 is set"
                    ));
                }
                let eval = self.evaluate(devices, layout, &weights, len)?;
                if !eval.fits {
                    let largest = self
                        .largest_fit(devices, layout, &weights, len)?
                        .map_or(0, |e| e.len);
                    return Err(self.too_small(&eval, &format!(
                        "--max-model-len {len} needs {} KV blocks per GPU but {} fit; the largest context that fits is {largest}",
                        eval.ranks.iter().map(|r| r.cost.kv.blocks_for(len)).max().unwrap_or(0),
                        eval.blocks
                    )));
                }
                eval
            }
            None => match self.largest_fit(devices, layout, &weights, cap)? {
                Some(eval) if eval.len >= floor => {
                    if eval.len < model_max {
                        notes.push(format!(
                            "--max-model-len set to {}: the largest context (a multiple of {CONTEXT_STEP}) whose KV cache fits these GPUs with a {}% margin; the model allows {model_max}",
                            eval.len,
                            100 - NEAR_LIMIT_PERCENT
                        ));
                    }
                    eval
                }
                _ => {
                    // Nothing fits with the margin: the shortest acceptable context, if it fits
                    // at all (the report flags it as near the limit).
                    let eval = self.evaluate(devices, layout, &weights, floor)?;
                    if !eval.fits {
                        let what = if shape.encoder_only() {
                            "weights and activations exceed the requested fraction".to_string()
                        } else {
                            format!(
                                "not even a {floor}-token context fits: {} KV blocks per GPU",
                                eval.blocks
                            )
                        };
                        return Err(self.too_small(&eval, &what));
                    }
                    eval
                }
            },
        };
        Ok(self.report(chosen, layout, model_max, notes))
    }

    /// Pinned host memory of the ranks on this worker's GPUs (`--cpu-offload-gb`); ranks on
    /// other workers claim their own hosts' memory.
    fn host_weights(&self, ranks: &[Rank], layout: (u64, u64)) -> u64 {
        let (tp, pp) = layout;
        ranks
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.slot.remote)
            .map(|(i, _)| self.offloaded(tp, pp, i as u64 / tp))
            .fold(0, u64::saturating_add)
    }

    /// vLLM 0.10.1.1 refuses to start when the swap space of a tensor-parallel group exceeds
    /// 70% of the host's memory (`CacheConfig.verify_with_parallel_config`, "Too large swap
    /// space"); the V1 engine it runs never allocates that space, so it is not claimed. An
    /// unknown host (total 0) is not checked.
    fn check_swap_space(&self, host: &HostSlot, tp: u64) -> Result<()> {
        let swap = self.launch.swap_space_bytes.saturating_mul(tp);
        let limit = (host.total as f64 * SWAP_SPACE_HOST_SHARE) as u64;
        if host.total == 0 || swap <= limit {
            return Ok(());
        }
        Err(Error::DoesNotFit {
            needed: swap,
            available: limit,
            reason: format!(
                "--swap-space of {} per GPU × {tp} GPUs exceeds 70% of the {} of RAM on {}: vLLM {} refuses to start (\"Too large swap space\")",
                gib(self.launch.swap_space_bytes),
                gib(host.total),
                host.worker,
                self.version()
            ),
        })
    }

    fn too_small(&self, eval: &Evaluation, what: &str) -> Error {
        let graphs_in = eval.engine.graphs_in_budget;
        let tight = eval
            .ranks
            .iter()
            .min_by_key(|r| kv_blocks(r, eval.gmu, graphs_in))
            .unwrap_or(&eval.ranks[0]);
        let granted = requested_bytes(tight.slot, eval.gmu);
        let needed = tight.cost.in_budget(graphs_in).saturating_add(
            tight
                .cost
                .kv
                .blocks_for(eval.len)
                .saturating_mul(tight.cost.kv.block_bytes()),
        );
        // The fraction that would hold this context (hard case 8: say what would work).
        let wanted = needed as f64 / tight.slot.total.max(1) as f64;
        let advice = if wanted < 1.0 {
            format!(
                "; it needs --gpu-memory-utilization {:.2} with that much free, or more GPUs",
                (wanted / GMU_STEP).ceil() * GMU_STEP
            )
        } else {
            "; it needs more GPUs or a shorter context".to_string()
        };
        Error::DoesNotFit {
            needed,
            available: granted,
            reason: format!(
                "{what}. On {} ({}) gpu_memory_utilization {:.2} grants {} of which weights take {}, activations {}, non-torch memory {}{}{advice}",
                tight.slot.id,
                tight.slot.name,
                eval.gmu,
                gib(granted),
                gib(tight.cost.weights),
                gib(tight.cost.activation),
                gib(tight.cost.non_torch),
                if graphs_in {
                    format!(", CUDA graphs {}", gib(tight.cost.graphs))
                } else {
                    String::new()
                },
            ),
        }
    }

    fn report(
        &self,
        eval: Evaluation,
        layout: (u64, u64),
        model_max: u64,
        mut notes: Vec<String>,
    ) -> ResourceEstimate {
        let graphs_in = eval.engine.graphs_in_budget;
        let devices = eval
            .ranks
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let requested = requested_bytes(r.slot, eval.gmu);
                let kv = eval.blocks.saturating_mul(r.cost.kv.block_bytes());
                let in_budget = r.cost.in_budget(graphs_in);
                let slack = requested.saturating_sub(in_budget.saturating_add(kv));
                DeviceEstimate {
                    device: r.slot.id.clone(),
                    name: format!("gpu{i}"),
                    components: Components {
                        weights: r.cost.weights,
                        kv,
                        compute: r.cost.activation,
                        output: 0,
                        // Graphs and the CUDA context are counted once, wherever vLLM budgets them.
                        overhead: [r.cost.non_torch, r.cost.graphs, memory::CUDA_CONTEXT, slack]
                            .into_iter()
                            .fold(0, u64::saturating_add),
                    },
                    claim: requested.saturating_add(r.cost.outside_budget(graphs_in)),
                    layers: 0,
                    error_band: None,
                }
            })
            .collect();
        let mut launch_parameters = Vec::new();
        if self.launch.max_model_len.is_none() && eval.len < model_max {
            launch_parameters.extend(["--max-model-len".to_string(), eval.len.to_string()]);
        }
        if eval.lowered {
            launch_parameters.extend([
                "--gpu-memory-utilization".to_string(),
                format!("{:.2}", eval.gmu),
            ]);
            notes.push(format!(
                "--gpu-memory-utilization lowered to {:.2}: vLLM refuses to start unless that fraction of each GPU's total memory is free",
                eval.gmu
            ));
        }
        let first = &eval.ranks[0].cost.kv;
        let kv_tokens = eval
            .ranks
            .iter()
            .map(|r| r.cost.kv.logged_tokens(eval.blocks))
            .min()
            .unwrap_or(0);
        let largest = eval
            .ranks
            .iter()
            .map(|r| r.cost.kv.tokens_for(eval.blocks))
            .min()
            .unwrap_or(0);
        let largest_len = (largest.min(model_max) / CONTEXT_STEP) * CONTEXT_STEP;
        let details: BTreeMap<String, serde_json::Value> = [
            ("vllm_version", json!(self.version().as_str())),
            ("tensor_parallel", json!(layout.0)),
            ("pipeline_parallel", json!(layout.1)),
            (
                "gpu_memory_utilization",
                json!((eval.gmu * 100.0).round() / 100.0),
            ),
            ("max_model_len", json!(eval.len)),
            ("largest_max_model_len", json!(largest_len.max(eval.len))),
            ("kv_cache_blocks", json!(eval.blocks)),
            ("kv_cache_tokens", json!(kv_tokens)),
            ("kv_block_bytes", json!(first.block_bytes())),
            (
                "max_num_batched_tokens",
                json!(eval.engine.max_num_batched_tokens),
            ),
            ("max_num_seqs", json!(eval.engine.max_num_seqs)),
            ("cuda_graphs", json!(eval.engine.cuda_graphs)),
            (
                "weights_from",
                json!(if self.model.tensors.is_some() {
                    "safetensors"
                } else {
                    "config"
                }),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let needed = eval
            .ranks
            .iter()
            .map(|r| r.cost.kv.blocks_for(eval.len))
            .max()
            .unwrap_or(0);
        if needed.saturating_mul(100) > eval.blocks.saturating_mul(NEAR_LIMIT_PERCENT) {
            notes.push(format!(
                "max-model-len {} uses {needed} of {} KV blocks: within {}% of the limit, where vLLM's profiled activation peak decides whether it starts (vllm#10517)",
                eval.len,
                eval.blocks,
                100 - NEAR_LIMIT_PERCENT
            ));
        }
        notes.push(if self.model.shape.encoder_only() {
            format!(
                "no KV cache: vLLM gives the encoder-only attention of {} none, so only the model's {model_max} positions bound the context",
                self.model.shape.architectures.join(", ")
            )
        } else {
            format!(
                "KV cache: {} blocks of {} tokens per GPU, {} tokens in vLLM's count",
                eval.blocks,
                eval.ranks[0].cost.kv.block_tokens,
                kv_tokens
            )
        });
        let host = Components {
            weights: self.host_weights(&eval.ranks, layout),
            ..Components::default()
        };
        ResourceEstimate {
            layout: Layout::Parallel {
                tensor_parallel: layout.0 as u32,
                pipeline_parallel: layout.1 as u32,
            },
            devices,
            host,
            launch_parameters,
            details,
            notes,
        }
    }
}

/// One context length evaluated on one layout.
struct Evaluation<'d> {
    engine: EngineSettings,
    ranks: Vec<Rank<'d>>,
    gmu: f64,
    lowered: bool,
    blocks: u64,
    fits: bool,
    /// Fits with the margin of [`NEAR_LIMIT_PERCENT`].
    comfortable: bool,
    len: u64,
}

/// Bytes vLLM requests on a GPU: `total × gpu_memory_utilization`.
fn requested_bytes(slot: &DeviceSlot, gmu: f64) -> u64 {
    (slot.total as f64 * gmu) as u64
}

/// Bytes left for the KV cache on one rank: the requested fraction minus everything else in it.
fn kv_budget(rank: &Rank, gmu: f64, graphs_in_budget: bool) -> u64 {
    requested_bytes(rank.slot, gmu).saturating_sub(rank.cost.in_budget(graphs_in_budget))
}

/// KV blocks that budget holds on one rank; none where the model has no KV cache.
fn kv_blocks(rank: &Rank, gmu: f64, graphs_in_budget: bool) -> u64 {
    kv_budget(rank, gmu, graphs_in_budget)
        .checked_div(rank.cost.kv.block_bytes())
        .unwrap_or(0)
}

fn tightest<'a, 'd>(ranks: &'a [Rank<'d>]) -> &'a Rank<'d> {
    ranks
        .iter()
        .min_by_key(|r| r.slot.allocatable)
        .unwrap_or(&ranks[0])
}

impl ResourceEstimator for VllmEstimator {
    fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        if request.devices.is_empty() {
            return Err(Error::Unsupported("vLLM needs at least one GPU".into()));
        }
        let layout = self.parallel_of(request)?;
        self.check_swap_space(&request.host, layout.0)?;
        self.plan(&request.devices, layout)
    }

    fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        if request.devices.is_empty() {
            return Err(Error::Unsupported("vLLM needs at least one GPU".into()));
        }
        let layout = match (self.launch.tensor_parallel, self.launch.pipeline_parallel) {
            (None, None) => parallel::auto_layout(
                &self.model.shape,
                &request.devices,
                self.launch.encoder_data_parallel,
            )?,
            (tp, pp) => (tp.unwrap_or(1), pp.unwrap_or(1)),
        };
        let estimate = self.estimate(&EstimateRequest {
            devices: request.devices.clone(),
            host: request.host.clone(),
            layout: Layout::Parallel {
                tensor_parallel: u32::try_from(layout.0).unwrap_or(u32::MAX),
                pipeline_parallel: u32::try_from(layout.1).unwrap_or(u32::MAX),
            },
        })?;
        estimate.check_fits(&request.devices, &request.host)?;
        Ok(estimate)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use inferkit_core::hf::HfModel;
    use inferkit_core::{DeviceId, HostSlot, Vendor};

    use super::*;
    use crate::params::Params;

    fn fixture(name: &str) -> ModelInput {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/hf")
            .join(name);
        crate::select::hf_input(&HfModel::open(&dir).unwrap(), None).unwrap()
    }

    fn gpu(index: u32, total: u64, name: &str) -> DeviceSlot {
        DeviceSlot {
            id: DeviceId {
                worker: "w1".into(),
                index,
            },
            vendor: Vendor::Nvidia,
            name: name.into(),
            total,
            allocatable: total,
            remote: false,
            compute_capability: Some("8.6".into()),
        }
    }

    fn estimator(model: ModelInput, version: VllmVersion, raw: &[&str]) -> VllmEstimator {
        let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
        let params = Params::parse(version, &raw).unwrap();
        VllmEstimator::new(model, LaunchSettings::from_params(&params, &[]).unwrap())
    }

    fn run(e: &VllmEstimator, devices: Vec<DeviceSlot>, tp: u32) -> Result<ResourceEstimate> {
        e.estimate(&EstimateRequest {
            devices,
            host: HostSlot::default(),
            layout: Layout::Parallel {
                tensor_parallel: tp,
                pipeline_parallel: 1,
            },
        })
    }

    /// RTX 3090 as vLLM logged it in vllm#10517: 23.58 GiB total.
    fn rtx3090() -> DeviceSlot {
        gpu(0, (23.58 * GIB as f64) as u64, "NVIDIA GeForce RTX 3090")
    }

    fn blocks(e: &ResourceEstimate) -> u64 {
        e.details["kv_cache_blocks"].as_u64().unwrap()
    }

    /// vllm-memory-observations.md rows 1 and 2 (vllm#10517): the log predates V1, whose
    /// `max_num_batched_tokens` was `max(max_model_len, 2048)`, so the test passes it explicitly.
    #[test]
    fn llama_3_1_8b_on_rtx_3090_reproduces_the_logged_kv_blocks() {
        let row = |len: &str| {
            let e = estimator(
                fixture("Llama-3.1-8B-Instruct"),
                VllmVersion::V0_10_1_1,
                &["--max-model-len", len, "--max-num-batched-tokens", len],
            );
            run(&e, vec![rtx3090()], 1)
        };
        let ok = row("20000").unwrap();
        let got = blocks(&ok) as f64;
        assert!(
            (got - 1952.0).abs() / 1952.0 <= 0.02,
            "row 1: {got} blocks, logged 1952"
        );
        let weights = ok.devices[0].components.weights as f64 / GIB as f64;
        assert!(
            (weights - 14.9888).abs() < 0.01,
            "weights {weights} GiB, logged 14.9888"
        );
        // Row 2: 29000 tokens raise the profiling peak; 1478 blocks are left, short of one
        // 29000-token sequence, and vLLM refuses to start.
        let Err(Error::DoesNotFit { reason, .. }) = row("29000") else {
            panic!("row 2 must not fit");
        };
        assert!(
            reason.contains("--max-model-len 29000 needs 1813 KV blocks"),
            "{reason}"
        );
        assert!(reason.contains("but 14"), "{reason}");
    }

    /// The estimate follows the launched `--block-size`: twice the tokens per block gives half
    /// the blocks in the same memory, and the same capacity in tokens.
    #[test]
    fn block_size_comes_from_the_launch_parameters() {
        let with = |extra: &[&str]| {
            let mut raw = vec!["--max-model-len", "8192"];
            raw.extend_from_slice(extra);
            let e = estimator(fixture("Llama-3.1-8B-Instruct"), VllmVersion::V0_33_0, &raw);
            run(&e, vec![rtx3090()], 1).unwrap()
        };
        let default = with(&[]);
        let doubled = with(&["--block-size", "32"]);
        assert_eq!(blocks(&doubled), blocks(&default) / 2);
        assert!(
            doubled
                .notes
                .iter()
                .any(|n| n.contains("blocks of 32 tokens")),
            "{:?}",
            doubled.notes
        );
    }
}

#[cfg(test)]
mod hostile_tests {
    use inferkit_core::{DeviceId, HostSlot, Vendor};

    use super::*;
    use crate::params::Params;

    fn llama() -> ModelInput {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/hf/Llama-3.1-8B-Instruct");
        crate::select::hf_input(&inferkit_core::hf::HfModel::open(&dir).unwrap(), None).unwrap()
    }

    fn launch(version: VllmVersion, raw: &[&str]) -> Result<LaunchSettings> {
        let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
        LaunchSettings::from_params(&Params::parse(version, &raw)?, &[])
    }

    fn a100(remote: bool) -> DeviceSlot {
        DeviceSlot {
            id: DeviceId {
                worker: "w1".into(),
                index: 0,
            },
            vendor: Vendor::Nvidia,
            name: "NVIDIA A100-SXM4-80GB".into(),
            total: 80 * GIB,
            allocatable: 80 * GIB,
            remote,
            compute_capability: Some("8.0".into()),
        }
    }

    fn single(e: &VllmEstimator, host: HostSlot) -> Result<ResourceEstimate> {
        e.estimate(&EstimateRequest {
            devices: vec![a100(false)],
            host,
            layout: Layout::Single,
        })
    }

    fn host(total: u64) -> HostSlot {
        HostSlot {
            worker: "w1".into(),
            total,
            allocatable: total,
        }
    }

    /// Sixteen tensors of 2^60 bytes: the table saturates at `u64::MAX`, and loading it (the
    /// dtype conversion, the rotary cache on top) overflowed before.
    #[test]
    fn weights_near_u64_max_do_not_fit_rather_than_overflow() {
        let mut model = llama();
        let names: Vec<String> = (0..16)
            .map(|i| format!("model.layers.{i}.mlp.up_proj.weight"))
            .collect();
        let dims = [1u64 << 29, 1 << 30];
        model.tensors = Some(TensorTable::new(
            &model.shape,
            names
                .iter()
                .map(|n| (n.as_str(), dims.as_slice(), 1u64 << 60)),
        ));
        for dtype in [&[][..], &["--dtype", "float32"]] {
            let e = VllmEstimator::new(
                model.clone(),
                launch(VllmVersion::V0_10_1_1, dtype).unwrap(),
            );
            let err = single(&e, host(0)).unwrap_err();
            assert!(matches!(err, Error::DoesNotFit { .. }), "{err:?}");
        }
    }

    #[test]
    fn absurd_sizes_and_block_sizes_name_the_flag() {
        let cases: [(VllmVersion, &[&str], &str); 7] = [
            (
                VllmVersion::V0_10_1_1,
                &["--cpu-offload-gb", "1e30"],
                "--cpu-offload-gb",
            ),
            (
                VllmVersion::V0_33_0,
                &["--cpu-offload-gb", "-1"],
                "--cpu-offload-gb",
            ),
            (
                VllmVersion::V0_33_0,
                &["--cpu-offload-gb", "inf"],
                "--cpu-offload-gb",
            ),
            (
                VllmVersion::V0_10_1_1,
                &["--swap-space", "1e308"],
                "--swap-space",
            ),
            (
                VllmVersion::V0_10_1_1,
                &["--swap-space", "NaN"],
                "--swap-space",
            ),
            (
                VllmVersion::V0_10_1_1,
                &["--block-size", "0"],
                "--block-size",
            ),
            (VllmVersion::V0_33_0, &["--block-size", "0"], "--block-size"),
        ];
        for (version, raw, flag) in cases {
            match launch(version, raw) {
                Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, flag, "{raw:?}"),
                other => panic!("{version} {raw:?}: {other:?}"),
            }
        }
        assert!(launch(VllmVersion::V0_33_0, &["--block-size", "256"]).is_ok());
        assert!(launch(VllmVersion::V0_33_0, &["--block-size", "24"]).is_err());
    }

    /// `--cpu-offload-gb 4` moves 4 GiB of each GPU's weights into pinned host memory.
    #[test]
    fn cpu_offload_moves_weights_to_the_host() {
        let plain = VllmEstimator::new(llama(), launch(VllmVersion::V0_33_0, &[]).unwrap());
        let offload = VllmEstimator::new(
            llama(),
            launch(VllmVersion::V0_33_0, &["--cpu-offload-gb", "4"]).unwrap(),
        );
        let before = single(&plain, host(0)).unwrap();
        let after = single(&offload, host(0)).unwrap();
        assert_eq!(before.host.weights, 0);
        assert_eq!(after.host.weights, 4 * GIB);
        assert_eq!(
            before.devices[0].components.weights - after.devices[0].components.weights,
            4 * GIB
        );
    }

    /// vLLM 0.10.1.1 refuses a swap space above 70% of the host's RAM, and its default of
    /// 4 GiB per GPU counts too.
    #[test]
    fn swap_space_beyond_the_host_is_refused_on_0_10_1_1() {
        let e = |raw: &[&str]| {
            VllmEstimator::new(llama(), launch(VllmVersion::V0_10_1_1, raw).unwrap())
        };
        let err = single(&e(&["--swap-space", "12"]), host(16 * GIB)).unwrap_err();
        assert!(
            matches!(err, Error::DoesNotFit { needed, .. } if needed == 12 * GIB),
            "{err:?}"
        );
        assert!(single(&e(&["--swap-space", "8"]), host(16 * GIB)).is_ok());
        assert!(single(&e(&[]), host(5 * GIB)).is_err());
        assert!(single(&e(&[]), host(6 * GIB)).is_ok());
    }

    /// `--hf-overrides` reshape the model vLLM builds; implausible dimensions name the flag.
    #[test]
    fn hf_overrides_apply_and_are_checked() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/hf/Llama-3.1-8B-Instruct");
        let model = inferkit_core::hf::HfModel::open(&dir).unwrap();
        let input = |raw: &[&str]| {
            let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
            let params = Params::parse(VllmVersion::V0_33_0, &raw)?;
            let overrides = params.json_object("--hf-overrides")?;
            crate::select::hf_input(&model, overrides.as_ref())
        };
        let sixteen = input(&["--hf-overrides", r#"{"num_hidden_layers": 16}"#]).unwrap();
        assert_eq!(sixteen.shape.layer_count(), 16);
        let sub_key = input(&["--hf-overrides.num_hidden_layers", "8"]).unwrap();
        assert_eq!(sub_key.shape.layer_count(), 8);
        let bad: [&[&str]; 5] = [
            &["--hf-overrides", r#"{"num_hidden_layers": 99999999}"#],
            &["--hf-overrides", r#"{"num_hidden_layers": 0}"#],
            &["--hf-overrides.num_hidden_layers", "0"],
            &["--hf-overrides", r#"{"num_key_value_heads": 64}"#],
            &["--hf-overrides", "[1]"],
        ];
        for bad in bad {
            match input(bad) {
                Err(Error::InvalidParameter { name, reason }) => {
                    assert_eq!(name, "--hf-overrides", "{bad:?}: {reason}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
