//! # inferkit-llama-box
//!
//! The inferkit driver for [llama-box](https://github.com/gpustack/llama-box) v0.0.171, the
//! llama.cpp and stable-diffusion.cpp server GPUStack 0.7 runs GGUF models with.
//!
//! [`LlamaBox`] is the backend; [`LlamaBoxEstimator`] its memory model as a placement estimator,
//! [`Invocation`] one deployment's checked flags and settings, and [`TextDetails`] /
//! [`ImageDetails`] what its estimates report. What any llama.cpp server driver shares (the
//! argument parser, the settings, the memory model, model selection, the placement-derived
//! launch arguments) is one documented module, [`llamacpp`].
//!
//! Inside, the files have the roles they have in every driver: `select.rs` (what a model is),
//! `params.rs` (the settings that decide memory), `flags/` (the flag table and parser),
//! `memory/` (the estimator), `launch.rs` (the processes of a placement).
//!
//! ```
//! use inferkit_core::Backend;
//! use inferkit_llama_box::LlamaBox;
//!
//! let backend = LlamaBox::new();
//! assert_eq!(backend.id(), "llama-box");
//! assert!(backend.capabilities().multi_worker);
//! ```
#![warn(missing_docs)]

mod flags;
mod launch;
pub mod llamacpp;
mod memory;
mod params;
mod select;

use std::path::PathBuf;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use inferkit_core::flags::FlagTable;
use inferkit_core::gguf::GgufModel;
use inferkit_core::{
    Arch, Assignment, Backend, Capabilities, Category, Claim, Error, EstimateRequest, FitRequest,
    LaunchSpec, Layout, ModelFacts, ModelFormat, ModelSpec, Os, Platform, Prepared,
    ResourceEstimate, ResourceEstimator, Result, Selection, SubordinateGrouping, Vendor,
};

use crate::flags::{Args, Syntax, UNMODELLED_MEMORY_FLAGS};
pub use crate::launch::PROGRAM;
use crate::memory::LlamaCppModel;
pub use crate::memory::{ImageDetails, TextDetails};
use crate::params::{FlashAttn, LlamaSettings};

/// The llama-box backend (id `llama-box`), for llama-box v0.0.171.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LlamaBox {}

impl LlamaBox {
    /// The backend, for registration in a [`inferkit_core::Registry`].
    pub fn new() -> Self {
        LlamaBox {}
    }
}

/// Everything about one deployment that does not depend on where it is placed: the categories,
/// the projector, the model-level flags and the settings the memory model reads from them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    /// The model's categories: the user's, else detected from the GGUF.
    pub categories: Vec<Category>,
    /// The projector to load (`--mmproj`), resolved.
    pub mmproj: Option<PathBuf>,
    /// The user's parameters, checked.
    pub user: Args,
    /// The flags of every launch of this deployment, before the placement's.
    pub args: Args,
    /// The memory-relevant settings those flags give.
    pub settings: LlamaSettings,
}

impl Invocation {
    /// Checks the user's parameters and derives the flags and settings of `spec` for the GGUF
    /// model of `facts`.
    pub fn new(facts: &ModelFacts, spec: &ModelSpec) -> Result<Invocation> {
        let gguf = facts.require_gguf()?;
        let user = user_args(spec)?;
        // Detection also refuses what llama-box cannot serve, whatever the user's categories.
        let detected = select::detect_categories(gguf, &user)?;
        let categories = match spec.categories.is_empty() {
            true => detected,
            false => spec.categories.clone(),
        };
        let mmproj = select::choose_mmproj(facts, &user, &categories);
        let args = launch::model_args(&categories, mmproj.as_deref(), &user);
        let settings = llama_box_settings(&args)?;
        Ok(Invocation {
            categories,
            mmproj,
            user,
            args,
            settings,
        })
    }

    /// The processes that run `assignment`: one RPC server per remote device, then the main
    /// process with these flags, the placement's and the estimate's.
    pub fn launch(
        &self,
        facts: &ModelFacts,
        spec: &ModelSpec,
        assignment: &Assignment,
    ) -> Result<Vec<LaunchSpec>> {
        launch::launch(facts, spec, assignment, &self.args)
    }
}

/// llama-box v0.0.171's flag table: every flag, its values and aliases, and the flags the
/// platform owns (what [`Prepared::flag_table`] answers for [`PROGRAM`]).
pub fn flag_table() -> &'static FlagTable {
    flags::table()
}

/// llama-box raises a context smaller than this when a projector is loaded
/// (`httpserver.hpp`, "n_ctx is too small for multimodal projection").
const MIN_CTX_WITH_PROJECTOR: u32 = 2048;

/// llama-box v0.0.171's defaults where they differ from llama-server's: flash attention is a
/// plain switch, off unless given (`common_params::flash_attn` is a bool at the llama.cpp
/// commit it vendors), VAE tiling is off unless `--image-vae-tiling` (flag table default), and
/// its patch for non-causal models applies
/// ([`LlamaSettings::non_causal_whole_context`]).
pub fn llama_box_defaults() -> LlamaSettings {
    let mut settings = LlamaSettings {
        flash_attn: FlashAttn::Off,
        non_causal_whole_context: true,
        ..LlamaSettings::default()
    };
    settings.image.vae_tiling = false;
    settings
}

/// The settings llama-box runs with for the argument list `args`: its defaults, the flags in
/// order, then its own adjustments (a projector raises a smaller context to 2048).
pub fn llama_box_settings(args: &Args) -> Result<LlamaSettings> {
    let mut settings = llama_box_defaults();
    args.apply_to(&mut settings)?;
    if settings.mmproj.is_some() && (1..MIN_CTX_WITH_PROJECTOR).contains(&settings.ctx_size) {
        settings.ctx_size = MIN_CTX_WITH_PROJECTOR;
    }
    Ok(settings)
}

/// The user's backend parameters, checked against the flag table and the platform's flags.
fn user_args(spec: &ModelSpec) -> Result<Args> {
    let args = Args::parse(&spec.backend_parameters, Syntax::Parameters)?;
    launch::check_user_args(flags::table(), spec, &args)?;
    Ok(args)
}

impl Backend for LlamaBox {
    fn id(&self) -> &'static str {
        "llama-box"
    }

    fn capabilities(&self) -> &Capabilities {
        static CAPABILITIES: LazyLock<Capabilities> = LazyLock::new(|| {
            let mut caps = Capabilities::default();
            caps.formats = vec![ModelFormat::Gguf];
            caps.vendors = vec![Vendor::Nvidia, Vendor::Amd, Vendor::Ascend, Vendor::Apple];
            caps.platforms = Platform::every(
                &[Os::Linux, Os::Windows, Os::Darwin],
                &[Arch::Amd64, Arch::Arm64],
            );
            caps.categories = vec![
                Category::Llm,
                Category::Embedding,
                Category::Reranker,
                Category::Image,
            ];
            caps.cpu_only = true;
            caps.cpu_offload = true;
            caps.multi_device = true;
            caps.multi_worker = true;
            caps.default_cpu_offloading = true;
            caps.default_distributed = true;
            caps.subordinates = SubordinateGrouping::PerRemoteDevice;
            caps
        });
        &CAPABILITIES
    }

    fn select(&self, facts: &ModelFacts, spec: &ModelSpec) -> Selection {
        let Some(gguf) = facts.gguf.as_ref() else {
            return Selection::new(Claim::Refuses, "llama-box serves GGUF models only");
        };
        let user = Args::parse(&spec.backend_parameters, Syntax::Parameters).unwrap_or_default();
        match select::detect_categories(gguf, &user) {
            Ok(categories) => {
                let kind: Vec<&str> = categories.iter().map(|c| c.as_str()).collect();
                let architecture = gguf.architecture().unwrap_or("diffusion");
                Selection {
                    claim: Claim::Prefers,
                    reason: format!(
                        "GGUF {} model ({architecture}): llama-box serves GGUF files natively",
                        kind.join(", ")
                    ),
                    categories,
                }
            }
            Err(e) => Selection::new(Claim::Refuses, unsupported_reason(e)),
        }
    }

    fn prepare<'a>(
        &'a self,
        facts: &'a ModelFacts,
        spec: &'a ModelSpec,
    ) -> Result<Box<dyn Prepared + 'a>> {
        let invocation = Invocation::new(facts, spec)?;
        let warnings = invocation.user.prepare_warnings(
            flags::table(),
            spec.backend_version.as_deref(),
            UNMODELLED_MEMORY_FLAGS,
        );
        let estimator = LlamaBoxEstimator::new(facts.require_gguf()?, &invocation.settings)?;
        Ok(Box::new(PreparedLlamaBox {
            facts,
            spec,
            invocation,
            warnings,
            estimator,
        }))
    }
}

/// A llama-box deployment of one GGUF model: its invocation and memory model.
struct PreparedLlamaBox<'a> {
    facts: &'a ModelFacts,
    spec: &'a ModelSpec,
    invocation: Invocation,
    warnings: Vec<String>,
    estimator: LlamaBoxEstimator,
}

impl Prepared for PreparedLlamaBox<'_> {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn flag_table(&self, program: &str) -> Option<&'static FlagTable> {
        (program == launch::PROGRAM).then(flags::table)
    }

    fn estimator(&self) -> &dyn ResourceEstimator {
        &self.estimator
    }

    fn launch(&self, assignment: &Assignment) -> Result<Vec<LaunchSpec>> {
        self.invocation.launch(self.facts, self.spec, assignment)
    }
}

/// The llama.cpp memory model of one model and its launch settings, as a
/// [`ResourceEstimator`].
#[derive(Debug, Clone)]
pub struct LlamaBoxEstimator {
    model: LlamaCppModel,
    /// The user's `--gpu-layers`: placement may not choose another offload.
    fixed_offload: Option<u32>,
}

impl LlamaBoxEstimator {
    /// An estimator for `gguf` run with `settings` (for example [`Invocation::settings`]).
    pub fn new(gguf: &GgufModel, settings: &LlamaSettings) -> Result<LlamaBoxEstimator> {
        Ok(LlamaBoxEstimator {
            model: LlamaCppModel::new(gguf, settings)?,
            fixed_offload: settings.gpu_layers,
        })
    }

    /// The same estimator with `--ctx-size` `ctx_size` (`gguf` is the model it was built
    /// from): equal to [`LlamaBoxEstimator::new`] with that context, without building again
    /// what the context does not change.
    pub fn with_ctx_size(&self, gguf: &GgufModel, ctx_size: u32) -> Result<LlamaBoxEstimator> {
        Ok(LlamaBoxEstimator {
            model: self.model.with_ctx_size(gguf, ctx_size)?,
            fixed_offload: self.fixed_offload,
        })
    }

    /// Repeating layers + the output layer: the `--gpu-layers` of a full offload.
    pub fn total_layers(&self) -> u32 {
        self.model.total_layers()
    }

    /// The context llama.cpp resolves from the settings (text models).
    pub fn context(&self) -> Option<&memory::ContextSize> {
        self.model.context()
    }
}

impl ResourceEstimator for LlamaBoxEstimator {
    fn estimate(&self, request: &EstimateRequest) -> Result<ResourceEstimate> {
        self.model
            .estimate(&request.devices, &request.host, &request.layout)
    }

    /// The memory model's best fit, or exactly the user's `--gpu-layers` when given.
    fn fit(&self, request: &FitRequest) -> Result<ResourceEstimate> {
        let Some(offload) = self.fixed_offload else {
            return self.model.fit(request);
        };
        let layout = match (request.devices.is_empty(), offload) {
            (true, _) | (false, 0) => Layout::CpuOnly,
            (false, n) => Layout::Layers {
                offload_layers: n.min(self.model.total_layers()),
                total_layers: self.model.total_layers(),
                split: Vec::new(),
            },
        };
        let devices = match layout {
            Layout::CpuOnly => Vec::new(),
            _ => request.devices.clone(),
        };
        let estimate = self.model.estimate(&devices, &request.host, &layout)?;
        estimate.check_fits(&devices, &request.host)?;
        Ok(estimate)
    }
}

/// The sentence of an error, without its kind prefix.
fn unsupported_reason(error: Error) -> String {
    match error {
        Error::Unsupported { reason } => reason,
        other => other.to_string(),
    }
}
