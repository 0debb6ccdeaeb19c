//! # inferkit-llama-server
//!
//! The inferkit driver for upstream llama.cpp's `llama-server` at commit 0c1e57098, with
//! `ggml-rpc-server` for devices on other workers.
//!
//! It owns only what differs from llama-box: the flag tables ([`flag_table`],
//! [`rpc_flag_table`]) and their reader ([`parse`]) with llama-server's defaults, the context
//! offer ([`LlamaServerEstimator`]) and the command lines. What a GGUF file is, which projector
//! goes with it, and the llama.cpp memory model are shared with llama-box through
//! [`inferkit_llama_box::llamacpp`].
//!
//! Inside, the files have the roles they have in every driver: `flags/` (the tables and their
//! reader), `estimate.rs` (the estimator, on llama-box's memory model), `launch.rs` (the
//! processes of a placement); selection and settings are llama-box's.
//!
//! ```
//! use inferkit_core::Backend;
//! use inferkit_llama_server::LlamaServer;
//!
//! let backend = LlamaServer::new();
//! assert_eq!(backend.id(), "llama-server");
//! assert!(backend.capabilities().multi_worker);
//! ```
#![warn(missing_docs)]

mod estimate;
mod flags;
mod launch;

use std::path::PathBuf;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use inferkit_core::flags::FlagTable;
use inferkit_core::{
    Arch, Assignment, Backend, Capabilities, Category, Claim, Error, LaunchSpec, ModelFacts,
    ModelFormat, ModelSpec, Os, Platform, Prepared, ResourceEstimator, Result, Selection,
    SubordinateGrouping, Vendor,
};
use inferkit_llama_box::llamacpp::{self, Args, LlamaSettings};

pub use crate::estimate::LlamaServerEstimator;
use crate::flags::UNMODELLED_MEMORY_FLAGS;
pub use crate::flags::{
    Input, PromptCache, parse, rpc_table as rpc_flag_table, table as flag_table,
};
pub use crate::launch::{PROGRAM, RPC_PROGRAM};

/// The llama-server backend (id `llama-server`). GGUF models go to llama-box unless this
/// backend is asked for (`--backend llama-server`) or registered in its place.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LlamaServer {}

impl LlamaServer {
    /// The backend, for registration in a [`inferkit_core::Registry`].
    pub fn new() -> Self {
        LlamaServer {}
    }
}

/// Everything about one deployment that does not depend on its placement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    /// The model's categories: the user's, else detected from the GGUF.
    pub categories: Vec<Category>,
    /// The projector to load (`--mmproj`), resolved.
    pub mmproj: Option<PathBuf>,
    /// The user's parameters, checked.
    pub user: Args,
    /// The model's flags: the category's endpoint, the projector, then the user's.
    pub args: Args,
    /// The settings llama-server runs with for those flags.
    pub settings: LlamaSettings,
    /// The host prompt cache those flags give.
    pub prompt_cache: PromptCache,
}

impl Invocation {
    /// Checks the user's parameters and derives the flags and settings of `spec`.
    pub fn new(facts: &ModelFacts, spec: &ModelSpec) -> Result<Invocation> {
        let gguf = facts.require_gguf()?;
        let user = flags::parse(flags::table(), &spec.backend_parameters, Input::Parameters)?;
        llamacpp::check_user_args(flags::table(), spec, &user)?;
        let categories = match spec.categories.is_empty() {
            true => text_categories(gguf)?,
            false => spec.categories.clone(),
        };
        if categories.contains(&Category::Image) {
            return Err(Error::unsupported(IMAGE_MODELS));
        }
        let mmproj = llamacpp::choose_mmproj(facts, &user, &categories);
        let args = launch::model_args(&categories, mmproj.as_deref(), &user);
        let settings = flags::settings(&args)?;
        let prompt_cache = flags::prompt_cache(&args, categories.contains(&Category::Llm))?;
        Ok(Invocation {
            categories,
            mmproj,
            user,
            args,
            settings,
            prompt_cache,
        })
    }
}

const IMAGE_MODELS: &str = "llama-server serves text models; image (stable-diffusion.cpp) GGUF \
                            models need llama-box";

/// The categories of a text GGUF model (llama-box's detection), refusing image models.
fn text_categories(gguf: &inferkit_core::gguf::GgufModel) -> Result<Vec<Category>> {
    if gguf.is_diffusion() {
        return Err(Error::unsupported(IMAGE_MODELS));
    }
    llamacpp::detect_categories(gguf, &Args::default())
}

impl Backend for LlamaServer {
    fn id(&self) -> &'static str {
        "llama-server"
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
            caps.categories = vec![Category::Llm, Category::Embedding, Category::Reranker];
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

    /// [`Claim::Supports`] for text GGUF models: llama-box, which prefers them, stays the
    /// default.
    fn select(&self, facts: &ModelFacts, _spec: &ModelSpec) -> Selection {
        let Some(gguf) = facts.gguf.as_ref() else {
            return Selection::new(Claim::Refuses, "llama-server serves GGUF models only");
        };
        match text_categories(gguf) {
            Ok(categories) => {
                let kind: Vec<&str> = categories.iter().map(|c| c.as_str()).collect();
                Selection {
                    claim: Claim::Supports,
                    reason: format!(
                        "GGUF {} model ({}): upstream llama.cpp's llama-server serves it",
                        kind.join(", "),
                        gguf.architecture().unwrap_or("unknown architecture")
                    ),
                    categories,
                }
            }
            Err(Error::Unsupported { reason }) => Selection::new(Claim::Refuses, reason),
            Err(other) => Selection::new(Claim::Refuses, other.to_string()),
        }
    }

    fn prepare<'a>(
        &'a self,
        facts: &'a ModelFacts,
        spec: &'a ModelSpec,
    ) -> Result<Box<dyn Prepared + 'a>> {
        let invocation = Invocation::new(facts, spec)?;
        let estimator = LlamaServerEstimator::new(
            facts.require_gguf()?,
            &invocation.settings,
            invocation.prompt_cache,
        )?;
        Ok(Box::new(PreparedLlamaServer {
            facts,
            spec,
            warnings: invocation.user.prepare_warnings(
                flags::table(),
                spec.backend_version.as_deref(),
                UNMODELLED_MEMORY_FLAGS,
            ),
            invocation,
            estimator,
        }))
    }
}

/// A llama-server deployment of one GGUF model.
struct PreparedLlamaServer<'a> {
    facts: &'a ModelFacts,
    spec: &'a ModelSpec,
    invocation: Invocation,
    warnings: Vec<String>,
    estimator: LlamaServerEstimator<'a>,
}

impl Prepared for PreparedLlamaServer<'_> {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn flag_table(&self, program: &str) -> Option<&'static FlagTable> {
        match program {
            launch::PROGRAM => Some(flags::table()),
            launch::RPC_PROGRAM => Some(flags::rpc_table()),
            _ => None,
        }
    }

    fn estimator(&self) -> &dyn ResourceEstimator {
        &self.estimator
    }

    fn launch(&self, assignment: &Assignment) -> Result<Vec<LaunchSpec>> {
        let context = self.estimator.context_size();
        launch::launch(
            self.facts,
            self.spec,
            assignment,
            &self.invocation.args,
            context,
        )
    }
}
