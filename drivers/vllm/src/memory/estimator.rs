//! The vLLM [`ResourceEstimator`]: per-GPU claim, KV capacity and the largest context that fits,
//! for one model and one set of launch parameters.

use inferkit_core::{
    ChipFamily, Components, DeviceEstimate, DeviceSlot, Error, ErrorBand, EstimateRequest,
    FigureBasis, FitRequest, HostSlot, LaunchArgument, Layout, ResourceEstimate, ResourceEstimator,
    Result, details_map,
};

use crate::flags::Release;
use crate::flags::VllmVersion;
use crate::memory::details::{
    Fp8Cache, LongerContext, MoreGpus, MoreMemory, VllmDetails, WeightsFrom,
};
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

/// `vllm serve`'s (`UsageContext.OPENAI_API_SERVER`) defaults of `max_num_batched_tokens` and
/// `max_num_seqs` on `device` (the offline `LLM` class has its own, which a plan never
/// launches). vLLM compares CUDA's total (`get_device_total_memory`) and the lowercase name:
/// - 0.10.1.1 `vllm/engine/arg_utils.py:1638-1657` (`_set_default_args_v1`): 8192 and 1024 on
///   GPUs of at least 70 GiB whose name has no "a100" (vllm PR #17885), 2048 and 256 elsewhere;
///   the same tiers through 0.27.1 (`get_batch_defaults`, `arg_utils.py:2544`);
/// - 0.28.0 `arg_utils.py:2582-2591`: 16384 and 1024 from 160 GiB (B200, B300);
/// - 0.33.0 `arg_utils.py:2963` and `2983-2987`: GB10 (compute capability 12.1) stays on the
///   small tier whatever its memory.
fn server_batch_defaults(device: &DeviceSlot, release: Release) -> (u64, u64) {
    let total = memory::cuda_total(device);
    let a100 = ChipFamily::of(&device.vendor, &device.name) == ChipFamily::NvidiaA100;
    let gb10 = device.compute_capability.as_deref() == Some("12.1");
    if release >= Release::new(0, 28, 0) && total >= 160 * GIB {
        (16384, 1024)
    } else if total >= 70 * GIB && !a100 && !(gb10 && release >= Release::new(0, 33, 0)) {
        (8192, 1024)
    } else {
        (2048, 256)
    }
}

/// The KV-capacity error band, in percent: a context inferkit chooses leaves the estimated KV
/// cache room for its length plus this share (issue 17: at least 5% until the V1 model has been
/// validated on a GPU; on the published V1 logs of `testdata/vllm-v1` the largest error is
/// 1.8%). vLLM refuses to start when one full-length sequence does not fit (hard cases 23, 24),
/// so a user's context inside the band is flagged.
const ERROR_BAND_PERCENT: u64 = 5;

/// The band of every vLLM device estimate. vLLM takes exactly its fraction of the GPU and sizes
/// the KV cache to what the fraction leaves, so an error moves the KV capacity, not the memory
/// taken: the band is inside the claim, and the context margin ([`with_margin`]) holds it.
const KV_ERROR_BAND: ErrorBand = ErrorBand {
    percent: ERROR_BAND_PERCENT as u32,
    basis: FigureBasis::PublishedLogs,
    inside_claim: true,
};

/// Tokens a KV cache must hold for one sequence of `len` tokens with the error band's margin.
fn with_margin(len: u64) -> u64 {
    len.saturating_mul(100 + ERROR_BAND_PERCENT).div_ceil(100)
}

/// Share of the host's memory a tensor-parallel group's swap space may take before vLLM
/// refuses to start (`CacheConfig.verify_with_parallel_config`, `vllm/config/cache.py:213` at
/// 0.10.1.1; 0.33.0 has no swap space).
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
            _ => {
                return Err(Error::unsupported(
                    "vLLM runs on GPUs only, as tensor/pipeline parallel layouts",
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
            return Err(Error::unsupported(format!(
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
        let launch = &self.launch.on_devices(devices);
        let (default_tokens, default_seqs) = devices
            .first()
            .map_or((2048, 256), |d| server_batch_defaults(d, launch.release));
        let max_num_seqs = launch.max_num_seqs.unwrap_or(default_seqs);
        // Pooling models run without chunked prefill, so one batch must hold a whole sequence.
        let max_num_batched_tokens = launch.max_num_batched_tokens.unwrap_or(if launch.pooling {
            default_tokens.max(max_model_len)
        } else {
            default_tokens
        });
        let (max_capture_size, capture_sizes) =
            self.capture_sizes(max_num_seqs, max_num_batched_tokens);
        let act_bytes = launch.dtype_bytes.unwrap_or(memory::MODEL_DTYPE_BYTES);
        let rules = launch.release.rules();
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
            graphs_in_budget: rules.graphs_in_budget,
            sampler: rules.sampler,
            pooling: launch.pooling,
            across_workers: devices.iter().any(|d| d.id.worker != devices[0].id.worker),
            symmetric_memory: rules.symmetric_memory && devices.iter().all(hopper_or_newer),
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
        let affordable = affordable(ranks, graphs_in_budget);
        if wanted <= affordable {
            return Ok((wanted, false));
        }
        if self.launch.gpu_memory_utilization.is_some() {
            let tight = tightest(ranks);
            return Err(Error::DoesNotFit {
                needed: requested_bytes(tight.slot, wanted)
                    + tight.cost.outside_budget(graphs_in_budget),
                available: tight.slot.allocatable,
                reason: format!(
                    "--gpu-memory-utilization {wanted} asks for {wanted} × {} (the total CUDA reports) of {} but only {} is free there",
                    gib(memory::cuda_total(tight.slot)),
                    tight.slot.id,
                    gib(cuda_free(tight.slot))
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
        let comfortable = within
            && ranks
                .iter()
                .all(|r| r.cost.kv.blocks_for(with_margin(len)) <= blocks);
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
                            "--max-model-len set to {}: the largest multiple of {CONTEXT_STEP} whose KV cache holds it with the estimate's {ERROR_BAND_PERCENT}% error band; the model allows {model_max}",
                            eval.len
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
        let cut = self.launch.max_model_len.is_none() && chosen.len < model_max;
        let longer = cut.then(|| self.alternatives(devices, layout, model_max));
        Ok(self.report(chosen, layout, model_max, notes, longer))
    }

    /// What would hold more of the model's context when the chosen one was cut (issue 17): a
    /// larger `--gpu-memory-utilization`, an fp8 KV cache, or one more GPU. Each is the
    /// estimate rerun with that one change; an alternative that fits no better is left out.
    fn alternatives(
        &self,
        devices: &[DeviceSlot],
        layout: (u64, u64),
        model_max: u64,
    ) -> (Vec<String>, LongerContext) {
        let mut notes = Vec::new();
        let mut longer = LongerContext::default();
        let longest = |e: &VllmEstimator, devices: &[DeviceSlot], layout: (u64, u64)| {
            let weights = e.stage_weights(layout.0, layout.1);
            e.largest_fit(devices, layout, &weights, model_max)
                .ok()
                .flatten()
                .map(|eval| (eval.len, eval.gmu))
        };
        let current = longest(self, devices, layout).map_or(0, |(len, _)| len);
        // The largest fraction every GPU has free, at most 0.98.
        let ceiling = self
            .evaluate(
                devices,
                layout,
                &self.stage_weights(layout.0, layout.1),
                current,
            )
            .map(|e| affordable(&e.ranks, e.engine.graphs_in_budget).min(0.98))
            .unwrap_or(0.0);
        let ceiling = (ceiling / GMU_STEP).floor() * GMU_STEP;
        let mut more_memory = self.clone();
        more_memory.launch.gpu_memory_utilization = Some(ceiling);
        if let Some((len, gmu)) =
            longest(&more_memory, devices, layout).filter(|(l, _)| *l > current)
        {
            notes.push(format!(
                "--gpu-memory-utilization {gmu:.2} (what these GPUs have free) would allow --max-model-len {len}"
            ));
            longer.gpu_memory_utilization = Some(MoreMemory {
                gpu_memory_utilization: (gmu * 100.0).round() / 100.0,
                max_model_len: len,
            });
        }
        if self.launch.kv_bytes.is_none_or(|b| b > 1) {
            let mut fp8 = self.clone();
            fp8.launch.kv_bytes = Some(1);
            if let Some((len, _)) = longest(&fp8, devices, layout).filter(|(l, _)| *l > current) {
                notes.push(format!(
                    "--kv-cache-dtype fp8 would allow --max-model-len {len}"
                ));
                longer.kv_cache_dtype_fp8 = Some(Fp8Cache { max_model_len: len });
            }
        }
        if let Some((gpus, len)) = self.with_more_gpus(devices, layout, model_max, current) {
            notes.push(format!(
                "tensor parallel {gpus} ({} more GPU{} like {}) would allow --max-model-len {len}",
                gpus - layout.0,
                if gpus - layout.0 == 1 { "" } else { "s" },
                devices[0].name
            ));
            longer.more_gpus = Some(MoreGpus {
                tensor_parallel: gpus,
                max_model_len: len,
            });
        }
        (notes, longer)
    }

    /// The next tensor-parallel size the model accepts, on copies of the last GPU, and the
    /// context it holds; `None` for pipeline-parallel layouts or when it holds no more.
    fn with_more_gpus(
        &self,
        devices: &[DeviceSlot],
        layout: (u64, u64),
        model_max: u64,
        current: u64,
    ) -> Option<(u64, u64)> {
        let (tp, pp) = layout;
        if pp != 1 {
            return None;
        }
        let next = parallel::valid_sizes(&self.model.shape, self.launch.encoder_data_parallel)
            .into_iter()
            .find(|&t| t > tp)?;
        let last = devices.last()?;
        let mut more = devices.to_vec();
        for k in 1..=(next - tp) {
            let mut copy = last.clone();
            copy.id.index = last.id.index.saturating_add(u32::try_from(k).ok()?);
            more.push(copy);
        }
        let weights = self.stage_weights(next, 1);
        let eval = self
            .largest_fit(&more, (next, 1), &weights, model_max)
            .ok()??;
        (eval.len > current).then_some((next, eval.len))
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
        let wanted = needed as f64 / memory::cuda_total(tight.slot).max(1) as f64;
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

    /// The estimate of the chosen evaluation: bytes per GPU, the launch parameters it needs,
    /// and what it means for the context and concurrency.
    fn report(
        &self,
        eval: Evaluation,
        layout: (u64, u64),
        model_max: u64,
        mut notes: Vec<String>,
        longer: Option<(Vec<String>, LongerContext)>,
    ) -> ResourceEstimate {
        let launch_parameters = self.required_parameters(&eval, model_max, &mut notes);
        let mut details = self.details(&eval, layout, model_max);
        notes.extend(self.kv_notes(&eval, &details, model_max));
        if let Some((alternatives, longer)) = longer {
            notes.extend(alternatives);
            details.longer_context = Some(longer);
        }
        {
            let mut estimate = ResourceEstimate::new(
                Layout::Parallel {
                    tensor_parallel: layout.0 as u32,
                    pipeline_parallel: layout.1 as u32,
                },
                device_estimates(&eval),
            );
            estimate.host = Components {
                weights: self.host_weights(&eval.ranks, layout),
                ..Components::default()
            };
            estimate.launch_parameters = launch_parameters;
            estimate.details = details_map(&details);
            estimate.notes = notes;
            estimate
        }
    }

    /// `--max-model-len` where the user set none and the fitting one is shorter than the
    /// model's, and a lowered `--gpu-memory-utilization` (with a note saying why).
    fn required_parameters(
        &self,
        eval: &Evaluation,
        model_max: u64,
        notes: &mut Vec<String>,
    ) -> Vec<LaunchArgument> {
        let mut parameters = Vec::new();
        if self.launch.max_model_len.is_none() && eval.len < model_max {
            parameters.push(LaunchArgument::new(
                "--max-model-len",
                [eval.len.to_string()],
            ));
        }
        if eval.lowered {
            parameters.push(LaunchArgument::new(
                "--gpu-memory-utilization",
                [format!("{:.2}", eval.gmu)],
            ));
            notes.push(format!(
                "--gpu-memory-utilization lowered to {:.2}: vLLM refuses to start unless that fraction of each GPU's total memory is free",
                eval.gmu
            ));
        }
        parameters
    }

    fn details(&self, eval: &Evaluation, layout: (u64, u64), model_max: u64) -> VllmDetails {
        let fewest = |tokens: &dyn Fn(&Rank) -> u64| eval.ranks.iter().map(tokens).min();
        let kv_tokens = fewest(&|r| r.cost.kv.logged_tokens(eval.blocks)).unwrap_or(0);
        let largest = fewest(&|r| r.cost.kv.tokens_for(eval.blocks)).unwrap_or(0);
        let largest_len = (largest.min(model_max) / CONTEXT_STEP) * CONTEXT_STEP;
        // vLLM's "Maximum concurrency for N tokens per request": pool blocks over the blocks
        // one full-length sequence takes.
        let per_sequence = blocks_per_sequence(eval);
        let concurrency = if per_sequence == 0 {
            0.0
        } else {
            (eval.blocks as f64 / per_sequence as f64 * 100.0).floor() / 100.0
        };
        VllmDetails {
            vllm_version: self.version().as_str().to_string(),
            memory_rules: self.launch.release.to_string(),
            tensor_parallel: layout.0,
            pipeline_parallel: layout.1,
            gpu_memory_utilization: (eval.gmu * 100.0).round() / 100.0,
            max_model_len: eval.len,
            largest_max_model_len: largest_len.max(eval.len),
            kv_cache_blocks: eval.blocks,
            kv_cache_tokens: kv_tokens,
            concurrency_at_max_model_len: concurrency,
            kv_error_band_percent: ERROR_BAND_PERCENT,
            model_max_model_len: model_max,
            kv_block_bytes: eval.ranks[0].cost.kv.block_bytes(),
            max_num_batched_tokens: eval.engine.max_num_batched_tokens,
            max_num_seqs: eval.engine.max_num_seqs,
            cuda_graphs: eval.engine.cuda_graphs,
            weights_from: if self.model.tensors.is_some() {
                WeightsFrom::Safetensors
            } else {
                WeightsFrom::Config
            },
            longer_context: None,
        }
    }

    /// What the KV cache holds, and a warning when the context only fits inside the error band.
    fn kv_notes(&self, eval: &Evaluation, details: &VllmDetails, model_max: u64) -> Vec<String> {
        let mut notes = Vec::new();
        if !eval.comfortable {
            notes.push(format!(
                "max-model-len {} uses {} of {} KV blocks: inside the estimate's {ERROR_BAND_PERCENT}% error band, where vLLM's profiled peak decides whether it starts (vllm#10517)",
                eval.len,
                blocks_per_sequence(eval),
                eval.blocks
            ));
        }
        notes.push(if self.model.shape.encoder_only() {
            format!(
                "no KV cache: vLLM gives the encoder-only attention of {} none, so only the model's {model_max} positions bound the context",
                self.model.shape.architectures.join(", ")
            )
        } else {
            format!(
                "KV cache: {} tokens ({} blocks of {} tokens per GPU) for --max-model-len {}: {:.2} sequences of full length at once",
                details.kv_cache_tokens,
                eval.blocks,
                eval.ranks[0].cost.kv.block_tokens,
                eval.len,
                details.concurrency_at_max_model_len
            )
        });
        notes
    }
}

/// The blocks one sequence of `--max-model-len` tokens takes on the most loaded rank.
fn blocks_per_sequence(eval: &Evaluation) -> u64 {
    eval.ranks
        .iter()
        .map(|r| r.cost.kv.blocks_for(eval.len))
        .max()
        .unwrap_or(0)
}

/// Bytes per GPU of an evaluation, by component; the claim is the fraction vLLM takes plus
/// what it allocates outside that budget.
fn device_estimates(eval: &Evaluation) -> Vec<DeviceEstimate> {
    let graphs_in = eval.engine.graphs_in_budget;
    eval.ranks
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let requested = requested_bytes(r.slot, eval.gmu);
            let kv = eval.blocks.saturating_mul(r.cost.kv.block_bytes());
            let in_budget = r.cost.in_budget(graphs_in);
            let slack = requested.saturating_sub(in_budget.saturating_add(kv));
            DeviceEstimate::new(
                r.slot.id.clone(),
                format!("gpu{i}"),
                Components {
                    weights: r.cost.weights,
                    kv,
                    compute: r.cost.activation,
                    output: 0,
                    // Graphs and the CUDA context are counted once, wherever vLLM budgets them.
                    overhead: [r.cost.non_torch, r.cost.graphs, memory::CUDA_CONTEXT, slack]
                        .into_iter()
                        .fold(0, u64::saturating_add),
                },
                requested.saturating_add(r.cost.outside_budget(graphs_in)),
            )
            .with_error_band(KV_ERROR_BAND)
        })
        .collect()
}

/// One context length evaluated on one layout.
struct Evaluation<'d> {
    engine: EngineSettings,
    ranks: Vec<Rank<'d>>,
    gmu: f64,
    lowered: bool,
    blocks: u64,
    fits: bool,
    /// Fits with the margin of [`ERROR_BAND_PERCENT`].
    comfortable: bool,
    len: u64,
}

/// Bytes vLLM requests on a GPU: `total × gpu_memory_utilization`, of the total CUDA reports.
fn requested_bytes(slot: &DeviceSlot, gmu: f64) -> u64 {
    (memory::cuda_total(slot) as f64 * gmu) as u64
}

/// An NVIDIA GPU of compute capability 9.0 or later (Hopper, Blackwell).
fn hopper_or_newer(slot: &DeviceSlot) -> bool {
    slot.vendor == inferkit_core::Vendor::Nvidia
        && slot
            .compute_capability
            .as_deref()
            .and_then(|c| c.split('.').next())
            .and_then(|major| major.parse::<u32>().ok())
            .is_some_and(|major| major >= 9)
}

/// Free memory as CUDA sees it: the inventory's allocatable memory (NVML's total less what is
/// used) less the driver's reserve, which NVML counts in neither.
fn cuda_free(slot: &DeviceSlot) -> u64 {
    slot.allocatable
        .saturating_sub(memory::driver_reserved(slot))
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

/// The largest fraction every rank has free, as vLLM checks it at start-up: CUDA's free memory
/// less what the process uses outside the fraction, over CUDA's total.
fn affordable(ranks: &[Rank], graphs_in_budget: bool) -> f64 {
    ranks
        .iter()
        .map(|r| {
            let free = cuda_free(r.slot).saturating_sub(r.cost.outside_budget(graphs_in_budget));
            free as f64 / memory::cuda_total(r.slot).max(1) as f64
        })
        .fold(f64::INFINITY, f64::min)
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
            return Err(Error::unsupported("vLLM needs at least one GPU"));
        }
        let layout = self.parallel_of(request)?;
        self.check_swap_space(&request.host, layout.0)?;
        self.plan(&request.devices, layout)
    }

    fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        if request.devices.is_empty() {
            return Err(Error::unsupported("vLLM needs at least one GPU"));
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
mod log_rows;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use inferkit_core::hf::HfModel;
    use inferkit_core::{DeviceId, HostSlot, Vendor};

    use super::*;
    use crate::params::Params;

    fn fixture(name: &str) -> ModelInput {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/hf")
            .join(name);
        crate::memory::input::hf_input(&HfModel::open(&dir).unwrap(), None).unwrap()
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
            reserved: None,
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

    #[test]
    fn server_batching_defaults_follow_the_gpu_and_the_release() {
        let v0_10 = Release::new(0, 10, 1);
        let v0_28 = Release::new(0, 28, 0);
        let v0_33 = Release::new(0, 33, 0);
        let h100 = gpu(0, 80 * GIB, "NVIDIA H100 80GB HBM3");
        let a100 = gpu(0, 80 * GIB, "NVIDIA A100-SXM4-80GB");
        let b200 = gpu(0, 179 * GIB, "NVIDIA B200");
        let gb10 = DeviceSlot {
            compute_capability: Some("12.1".into()),
            ..gpu(0, 119 * GIB, "NVIDIA GB10")
        };
        assert_eq!(server_batch_defaults(&rtx3090(), v0_33), (2048, 256));
        assert_eq!(server_batch_defaults(&a100, v0_33), (2048, 256));
        assert_eq!(server_batch_defaults(&h100, v0_10), (8192, 1024));
        assert_eq!(server_batch_defaults(&b200, v0_10), (8192, 1024));
        assert_eq!(server_batch_defaults(&b200, v0_28), (16384, 1024));
        assert_eq!(server_batch_defaults(&gb10, v0_28), (8192, 1024));
        assert_eq!(server_batch_defaults(&gb10, v0_33), (2048, 256));
    }

    /// RTX 3090 as inventories carry it (NVML's 24 GiB; CUDA reports 23.54 GiB of it).
    fn rtx3090() -> DeviceSlot {
        gpu(0, 24 * GIB, "NVIDIA GeForce RTX 3090")
    }

    fn blocks(e: &ResourceEstimate) -> u64 {
        e.details["kv_cache_blocks"].as_u64().unwrap()
    }

    /// vllm-memory-observations.md rows 1 and 2 (vllm#10517, a V0 engine whose
    /// `max_num_batched_tokens` was `max(max_model_len, 2048)`, passed explicitly here): the
    /// weights, and the activation slope of the forward pass. V0's non-torch memory and sampler
    /// differ from V1's, so the absolute pool is checked by the V1 logs (`log_rows`).
    #[test]
    fn llama_3_1_8b_on_rtx_3090_reproduces_the_logged_activation_slope() {
        let row = |len: &str, batched: &str| {
            let e = estimator(
                fixture("Llama-3.1-8B-Instruct"),
                VllmVersion::V0_10_1_1,
                &["--max-model-len", len, "--max-num-batched-tokens", batched],
            );
            run(&e, vec![rtx3090()], 1)
        };
        let short = row("20000", "20000").unwrap();
        let weights = short.devices[0].components.weights as f64 / GIB as f64;
        assert!(
            (weights - 14.9888).abs() < 0.01,
            "weights {weights} GiB, logged 14.9888"
        );
        // 9000 more batched tokens cost the 1952 − 1478 = 474 blocks the two logs differ by.
        let long = row("20000", "29000").unwrap();
        let step = (blocks(&short) - blocks(&long)) as f64;
        assert!(
            (step - 474.0).abs() / 474.0 <= 0.03,
            "{step} blocks, logged 474"
        );
        // Row 2: 29000 tokens leave fewer blocks than one 29000-token sequence needs (1813),
        // and vLLM refuses to start.
        let Err(Error::DoesNotFit { reason, .. }) = row("29000", "29000") else {
            panic!("row 2 must not fit");
        };
        assert!(
            reason.contains("--max-model-len 29000 needs 1813 KV blocks"),
            "{reason}"
        );
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
            .join("testdata/hf/Llama-3.1-8B-Instruct");
        crate::memory::input::hf_input(&inferkit_core::hf::HfModel::open(&dir).unwrap(), None)
            .unwrap()
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
            reserved: None,
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
            os: None,
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
        // 0.33.0 takes any positive block size; 0.10.1.1 only its `BlockSize` literal.
        assert!(launch(VllmVersion::V0_33_0, &["--block-size", "256"]).is_ok());
        assert!(launch(VllmVersion::V0_33_0, &["--block-size", "24"]).is_ok());
        assert!(launch(VllmVersion::V0_10_1_1, &["--block-size", "24"]).is_err());
        assert!(launch(VllmVersion::V0_10_1_1, &["--block-size", "256"]).is_err());
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
            .join("testdata/hf/Llama-3.1-8B-Instruct");
        let model = inferkit_core::hf::HfModel::open(&dir).unwrap();
        let input = |raw: &[&str]| {
            let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
            let params = Params::parse(VllmVersion::V0_33_0, &raw)?;
            let overrides = params.json_object("--hf-overrides")?;
            crate::memory::input::hf_input(&model, overrides.as_ref())
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
