//! Where a model comes from: [`ModelSource`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::hub::Hub;

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
        /// The revision to serve (a branch, tag or commit); the default branch when absent.
        /// A model read from the hub at a named revision carries the commit it resolved to,
        /// so that a backend fetching the repository itself serves the files planned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<String>,
    },
    /// A ModelScope repository, known only by its id (no files read).
    ModelScope {
        /// `org/name`.
        model_id: String,
        /// A file inside the repository (GGUF models).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_path: Option<String>,
        /// The revision to serve, as named (ModelScope names no commit); the default branch
        /// when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<String>,
    },
    /// A model of an Ollama registry (`qwen2.5:7b`, `hf.co/org/repo:Q4_K_M`).
    Ollama {
        /// `[host/]name:tag`, `library/` left out.
        model: String,
    },
    /// A GGUF file at an `http(s)` address.
    Url {
        /// The address.
        url: String,
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

    /// The hub and repository id, when the model is a Hugging Face or ModelScope repository.
    pub fn hub_repository(&self) -> Option<(Hub, &str)> {
        match self {
            ModelSource::Huggingface { repo_id, .. } => Some((Hub::HuggingFace, repo_id)),
            ModelSource::ModelScope { model_id, .. } => Some((Hub::ModelScope, model_id)),
            ModelSource::LocalPath { .. }
            | ModelSource::Ollama { .. }
            | ModelSource::Url { .. } => None,
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
            ModelSource::Ollama { model } => model.clone(),
            ModelSource::Url { url } => {
                let path = url.split(['?', '#']).next().unwrap_or(url);
                path.rsplit('/').next().unwrap_or(path).to_string()
            }
        }
    }
}

/// The host, with its port, of an address: what follows the scheme (when there is one) and
/// any `user@` up to the first `/`, `?` or `#`. It names a hub or registry endpoint (the header cache's folder of
/// it, the folder of Ollama's store its manifests are filed under) and decides whether a
/// redirect stays on the host a token is for.
///
/// ```
/// use inferkit_formats::source::url_host;
///
/// assert_eq!(url_host("https://registry.ollama.ai/"), "registry.ollama.ai");
/// assert_eq!(url_host("http://127.0.0.1:8080/v2/x"), "127.0.0.1:8080");
/// assert_eq!(url_host("https://example.com?file=a.gguf"), "example.com");
/// assert_eq!(url_host("registry.ollama.ai"), "registry.ollama.ai");
/// assert_eq!(url_host("https://user:secret@hub.local:8443/m"), "hub.local:8443");
/// ```
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}
