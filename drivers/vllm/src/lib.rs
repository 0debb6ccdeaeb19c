//! # inferkit-vllm
//!
//! The vLLM driver of inferkit: flag tables of vLLM 0.10.1.1 and 0.33.0, parameter
//! translation, a memory model of vLLM's start-up profiling, parallel-layout rules and launch
//! specifications (single GPU, tensor/pipeline parallel, Ray across workers).
//!
//! ## Memory claims
//!
//! vLLM takes `total × --gpu-memory-utilization` of every GPU it uses and sizes its KV cache
//! inside that; the CUDA context (and, in 0.10.1.1, the CUDA graphs) come on top. A device's
//! [`DeviceEstimate::claim`](inferkit_core::DeviceEstimate) is that whole footprint, and the
//! fraction is lowered (and passed as `--gpu-memory-utilization`) when a GPU's
//! [`DeviceSlot::allocatable`](inferkit_core::DeviceSlot) is short of it. The fraction's headroom
//! is vLLM's own reserve, so `allocatable` is best given without the generic per-device reserve
//! (total − used − existing allocations).
//!
//! Host memory: `--cpu-offload-gb` moves up to that many GiB of each GPU's weights into pinned
//! host memory, which the estimate's `host` weights count for the GPUs on the main worker.
//! `--swap-space` (0.10.1.1) is never allocated by the V1 engine, but vLLM refuses to start
//! when it exceeds 70% of the host's memory per tensor-parallel group, and so does the
//! estimate. `--hf-overrides` are merged into `config.json` before the model is sized, and the
//! result must pass the same plausibility check as the file itself.
//!
//! ## Across workers
//!
//! Distributed inference across workers is on by default, as GPUStack 0.7.1 sets it for vLLM.
//! GPUStack also needed its server-wide `enable_ray` switch; here the launch carries Ray itself,
//! so the per-model `distributed_inference_across_workers` alone decides. A multi-worker
//! deployment starts a Ray head on the main worker, one Ray worker on every other worker (each
//! offering only its selected GPUs), then `vllm serve --distributed-executor-backend ray` with
//! GPUStack's placement-group environment.
//!
//! Ports: the plan gives an instance `port` and, for subordinate `i`, `port + i`. The Ray
//! head's GCS server listens on the first subordinate's port (on the main worker, where that
//! number is otherwise unused) and each Ray worker's node manager on its own subordinate's port,
//! so no process leaves the instance's block; Ray nodes are health-checked by TCP on those
//! ports. The head runs without its dashboard. Ray's remaining ports (client server, dashboard
//! agent, object manager, worker processes) keep Ray's defaults; two Ray heads on one worker
//! may still meet there.
//!
//! ## Estimate details
//!
//! [`ResourceEstimate::details`](inferkit_core::ResourceEstimate) carries `vllm_version`,
//! `tensor_parallel`, `pipeline_parallel`, `gpu_memory_utilization`, `max_model_len` (the one
//! launched), `largest_max_model_len` (the longest that fits), `kv_cache_blocks` (blocks of the
//! launched `--block-size` tokens, per GPU), `kv_cache_tokens` (vLLM's logged "GPU KV cache
//! size"), `kv_block_bytes`, `concurrency_at_max_model_len` (vLLM's "Maximum concurrency"),
//! `kv_error_band_percent`, `model_max_model_len`, `longer_context` (when the context was cut:
//! the `max_model_len` a larger `gpu_memory_utilization`, `kv_cache_dtype_fp8` or `more_gpus`
//! would allow), `memory_rules` (the vLLM release whose memory rules sized it),
//! `max_num_batched_tokens`, `max_num_seqs`, `cuda_graphs` and `weights_from` (`safetensors`, or
//! `config` when only the config could be read). Encoder-only models (BERT, XLM-RoBERTa
//! embeddings and rerankers) get no KV cache from vLLM: their `kv_cache_*` details are 0 and
//! only the model's own limit bounds `max_model_len`.
//!
//! ```no_run
//! use inferkit_core::{Backend, ModelFacts, ModelSpec};
//! use inferkit_vllm::Vllm;
//!
//! let spec = ModelSpec::local("/models/Llama-3.1-8B-Instruct");
//! let facts = ModelFacts::read(&spec.source)?;
//! let selection = Vllm::new().select(&facts, &spec);
//! println!("{:?}: {}", selection.claim, selection.reason);
//! # Ok::<(), inferkit_core::Error>(())
//! ```
#![warn(missing_docs)]

mod architectures;
mod flags;
mod launch;
mod memory;
mod params;
mod select;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use inferkit_core::flags::FlagTable;
use inferkit_core::{
    Arch, Assignment, Backend, Capabilities, Category, LaunchSpec, ModelFacts, ModelFormat,
    ModelSpec, Os, Platform, Prepared, ResourceEstimator, Result, Selection, SubordinateGrouping,
    Vendor,
};

pub use flags::VllmVersion;
pub use launch::{RAY_HEAD, RAY_WORKER};
pub use memory::details::{
    Fp8Cache, LongerContext, MoreGpus, MoreMemory, VllmDetails, WeightsFrom,
};

use memory::estimator::VllmEstimator;
use params::Params;
use params::settings::LaunchSettings;

/// The vLLM backend driver.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Vllm {
    /// Multi-node plans also set `GPUSTACK_RAY_PLACEMENT_GROUP_BUNDLES`, the placement group
    /// only GPUStack's patched vLLM reads (off: upstream vLLM builds its own).
    #[serde(default)]
    gpustack_placement_bundles: bool,
}

impl Vllm {
    /// The driver, launching upstream vLLM.
    pub fn new() -> Self {
        Vllm::default()
    }

    /// The driver for GPUStack's vLLM build: multi-node plans also pin every rank to its node
    /// through `GPUSTACK_RAY_PLACEMENT_GROUP_BUNDLES` and `VLLM_RAY_BUNDLE_INDICES`.
    pub fn with_gpustack_placement_bundles(mut self) -> Self {
        self.gpustack_placement_bundles = true;
        self
    }

    /// The user's parameters checked against the target version (`backend_version`, default
    /// [`VllmVersion::DEFAULT`]).
    fn params(spec: &ModelSpec) -> Result<Params> {
        let (table, release) = params::settings::target(spec.backend_version.as_deref())?;
        let mut params = Params::parse(table, &spec.backend_parameters)?;
        if release != params::settings::release_of(table) {
            params.notes.push(format!(
                "vLLM {release}: flags checked against {table}'s table, memory sized by {release}'s rules"
            ));
        }
        Ok(params)
    }

    fn categories(facts: &ModelFacts, spec: &ModelSpec) -> Vec<Category> {
        if !spec.categories.is_empty() {
            return spec.categories.clone();
        }
        select::detect_category(facts, spec).into_iter().collect()
    }
}

impl Backend for Vllm {
    fn id(&self) -> &'static str {
        "vllm"
    }

    fn capabilities(&self) -> &Capabilities {
        static CAPABILITIES: LazyLock<Capabilities> = LazyLock::new(|| {
            let mut caps = Capabilities::default();
            caps.formats = vec![ModelFormat::Safetensors, ModelFormat::Gguf];
            caps.vendors = vec![Vendor::Nvidia, Vendor::Amd, Vendor::Ascend];
            caps.platforms = Platform::every(&[Os::Linux], &[Arch::Amd64, Arch::Arm64]);
            caps.categories = vec![Category::Llm, Category::Embedding, Category::Reranker];
            caps.multi_device = true;
            caps.multi_worker = true;
            // GPUStack 0.7.1 defaults distributed inference to on for vLLM (`set_defaults`).
            // It also required its `enable_ray` server switch before spanning workers; there
            // is no such switch here because the launch brings its own Ray head and workers
            // (see the crate docs), so only the per-model setting decides.
            caps.default_distributed = true;
            // GPUStack 0.7.1's code adds only `os=linux` (behaviour spec §1.5), although its
            // docs mention `arch=amd64` too: an arch selector would keep vllm-ascend off the
            // arm64 (Kunpeng) hosts Ascend NPUs sit in (hard case 20's fallback) and off GH200.
            caps.default_worker_selector =
                BTreeMap::from([("os".to_string(), "linux".to_string())]);
            caps.subordinates = SubordinateGrouping::PerRemoteWorker;
            // --gpu-memory-utilization is vLLM's own headroom.
            caps.own_device_headroom = true;
            caps
        });
        &CAPABILITIES
    }

    fn select(&self, facts: &ModelFacts, spec: &ModelSpec) -> Selection {
        select::select(facts, spec)
    }

    fn prepare<'a>(
        &'a self,
        facts: &'a ModelFacts,
        spec: &'a ModelSpec,
    ) -> Result<Box<dyn Prepared + 'a>> {
        let params = Self::params(spec)?;
        let (_, release) = params::settings::target(spec.backend_version.as_deref())?;
        let launch = LaunchSettings::from_params(&params, &Self::categories(facts, spec))?
            .with_release(release);
        let overrides = params.json_object("--hf-overrides")?;
        let input = select::input(facts, spec, overrides.as_ref())?;
        Ok(Box::new(PreparedVllm {
            facts,
            spec,
            estimator: VllmEstimator::new(input, launch),
            params,
            gpustack_placement_bundles: self.gpustack_placement_bundles,
        }))
    }
}

/// A vLLM deployment of one model: the checked parameters and the memory model they give.
struct PreparedVllm<'a> {
    facts: &'a ModelFacts,
    spec: &'a ModelSpec,
    params: Params,
    estimator: VllmEstimator,
    gpustack_placement_bundles: bool,
}

impl Prepared for PreparedVllm<'_> {
    fn warnings(&self) -> &[String] {
        &self.params.notes
    }

    fn flag_table(&self, program: &str) -> Option<&'static FlagTable> {
        (program == launch::PROGRAM).then(|| self.params.version.table())
    }

    fn estimator(&self) -> &dyn ResourceEstimator {
        &self.estimator
    }

    fn launch(&self, assignment: &Assignment) -> Result<Vec<LaunchSpec>> {
        let model = select::serve_target(self.facts, self.spec)?;
        launch::launch_specs(&launch::LaunchInput {
            spec: self.spec,
            assignment,
            params: &self.params,
            model,
            hub_env: select::hub_env(self.facts, self.spec),
            revision: select::hub_revision(self.facts, self.spec),
            ascend_310p: params::settings::is_ascend_310p(&assignment.devices),
            gpustack_placement_bundles: self.gpustack_placement_bundles,
        })
    }
}
