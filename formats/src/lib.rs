//! # inferkit-formats
//!
//! What model files say, read without loading any tensor data: GGUF headers ([`gguf`]), Hugging
//! Face `config.json` and safetensors headers ([`hf`]), and the facts of a model file or
//! directory that every backend is handed ([`facts`]). [`files`] holds the bounded reads they
//! share, [`ollama`] where Ollama's registries and store keep a model, [`hub`] where Hugging
//! Face and ModelScope keep a repository's files.
#![warn(missing_docs)]

pub mod facts;
pub mod files;
pub mod gguf;
pub mod hf;
pub mod hub;
pub mod ollama;
pub mod source;

pub use facts::{DirectoryFacts, ModelFacts, ModelFormat};
pub use inferkit_error::{Error, Result};
pub use source::ModelSource;
