//! Where inferkit models live, and how their facts are read without downloading them.
//!
//! A model reference ([`ModelRef`]) is a local path or one of
//! `hf://ORG/NAME[@REVISION][:QUANT]`, `hf://ORG/NAME[@REVISION]/PATH/IN/REPO`, `ms://...`
//! (the same forms on ModelScope), `ollama://NAME[:TAG]` and `http(s)://...`. Resolving it
//! yields the same [`ModelFacts`](inferkit_formats::ModelFacts) the files would give on a local
//! disk, reading, in this order:
//!
//! 1. the local path;
//! 2. the caches of the usual download tools ([`local_cache`]): the Hugging Face hub cache,
//!    ModelScope's cache and Ollama's store;
//! 3. inferkit's cache of fetched headers ([`header_cache`]), keyed by repository, resolved
//!    commit and file;
//! 4. the hub, by HTTP range requests for headers only (feature `http`, [`Resolver`]).
//!
//! Offline mode ([`SourceOptions::offline`]) stops before step 4 and names the missing file.
//!
//! The planning core does not depend on this crate: facts are read first, then planned.
//!
//! ```
//! use inferkit_sources::{FileChoice, ModelRef};
//!
//! let model = ModelRef::parse("hf://bartowski/Llama-3.3-70B-Instruct-GGUF:Q4_K_M")?;
//! let ModelRef::HuggingFace(repo) = &model else { unreachable!() };
//! assert_eq!(repo.repo, "bartowski/Llama-3.3-70B-Instruct-GGUF");
//! assert_eq!(repo.file, FileChoice::Quant("Q4_K_M".into()));
//! # Ok::<(), inferkit_sources::SourceError>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod download;
mod error;
pub mod header_cache;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod listing;
pub mod local_cache;
pub mod model_files;
mod options;
mod reference;
mod resolve;

pub use error::{SourceError, SourceErrorKind};
#[cfg(feature = "http")]
pub use http::{Resolver, TransferStats};
pub use options::{
    HF_DEFAULT_ENDPOINT, HttpOptions, HubEndpoint, MS_DEFAULT_ENDPOINT, Secret, SourceOptions,
};
pub use reference::{DEFAULT_QUANT, FileChoice, ModelRef, OllamaRef, RepoRef};
pub use resolve::{Origin, RemoteModel, Resolved, resolve_cached};
