//! Where a model comes from: [`ModelSource`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ModelSource {
    /// A file (`.gguf`, first shard of a split GGUF) or a model directory on the worker's disk.
    LocalPath {
        /// The path.
        path: PathBuf,
    },
    /// A Hugging Face repository, known only by its id (no files read).
    Huggingface {
        /// `org/name`.
        repo_id: String,
        /// A file inside the repository (GGUF models).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
    },
    /// A ModelScope repository, known only by its id (no files read).
    ModelScope {
        /// `org/name`.
        model_id: String,
        /// A file inside the repository (GGUF models).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_path: Option<String>,
    },
}

impl ModelSource {
    /// The local path, when the model is on disk.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        match self {
            ModelSource::LocalPath { path } => Some(path),
            _ => None,
        }
    }

    /// The file or repository name, for display and default model names.
    pub fn display_name(&self) -> String {
        match self {
            ModelSource::LocalPath { path } => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            ModelSource::Huggingface { repo_id, .. } => repo_id.clone(),
            ModelSource::ModelScope { model_id, .. } => model_id.clone(),
        }
    }
}
