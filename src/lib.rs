//! # inferkit
//!
//! Plan, size and launch AI model inference on GPU fleets: which backend serves a model, how
//! much memory it takes on each device, where it goes, and exactly how it is started.
//!
//! This facade re-exports [`inferkit_core`] and composes the drivers enabled by features
//! (`llama-box`, `llama-server`, `vllm`, `vox-box`, `mindie`, all on by default) into
//! [`default_registry`].
//!
//! ```no_run
//! use inferkit::{default_registry, plan, Cluster, ModelSpec, PlanOptions};
//!
//! let cluster = Cluster::from_json_file("examples/clusters/h100x8.json".as_ref())?;
//! let spec = ModelSpec::local("/models/Qwen2.5-7B-Instruct-Q4_K_M.gguf");
//! let plan = plan(&default_registry(), &spec, &cluster, &PlanOptions::default())?;
//! for process in &plan.processes {
//!     println!("{}: {}", process.worker, process.command_line());
//! }
//! # Ok::<(), inferkit::Error>(())
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's Rust code blocks run as doc tests, so its library snippet keeps compiling.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use inferkit_core::*;

#[cfg(all(feature = "process", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "process", unix))))]
pub use inferkit_launch as process;
#[cfg(feature = "probe")]
#[cfg_attr(docsrs, doc(cfg(feature = "probe")))]
pub use inferkit_probe as probe;

#[cfg(feature = "llama-box")]
#[cfg_attr(docsrs, doc(cfg(feature = "llama-box")))]
pub use inferkit_llama_box as llama_box;
#[cfg(feature = "llama-server")]
#[cfg_attr(docsrs, doc(cfg(feature = "llama-server")))]
pub use inferkit_llama_server as llama_server;
#[cfg(feature = "mindie")]
#[cfg_attr(docsrs, doc(cfg(feature = "mindie")))]
pub use inferkit_mindie as mindie;
#[cfg(feature = "vllm")]
#[cfg_attr(docsrs, doc(cfg(feature = "vllm")))]
pub use inferkit_vllm as vllm;
#[cfg(feature = "vox-box")]
#[cfg_attr(docsrs, doc(cfg(feature = "vox-box")))]
pub use inferkit_vox_box as vox_box;

/// A registry of every driver enabled by features, in the order llama-box, llama-server, vLLM,
/// vox-box, MindIE (an earlier driver wins a tie in automatic selection; llama-server only
/// supports GGUF models where llama-box prefers them, so it runs them when asked for). MindIE
/// is registered with its defaults (single worker, under `/usr/local/Ascend`); register a
/// configured [`mindie::MindIe`] instead to span workers.
pub fn default_registry() -> Registry {
    let registry = Registry::new();
    #[cfg(feature = "llama-box")]
    let registry = registry.with(inferkit_llama_box::LlamaBox::new());
    #[cfg(feature = "llama-server")]
    let registry = registry.with(inferkit_llama_server::LlamaServer::new());
    #[cfg(feature = "vllm")]
    let registry = registry.with(inferkit_vllm::Vllm::new());
    #[cfg(feature = "vox-box")]
    let registry = registry.with(inferkit_vox_box::VoxBox::new());
    #[cfg(feature = "mindie")]
    let registry = registry.with(inferkit_mindie::MindIe::new());
    registry
}
