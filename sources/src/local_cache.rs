//! The caches the usual download tools keep, searched before any network request, so models
//! already downloaded plan with no network at all:
//!
//! - Hugging Face hub cache (`huggingface-cli download`, `transformers`, vLLM):
//!   `$HF_HUB_CACHE` or `$HF_HOME/hub` (default `~/.cache/huggingface/hub`), holding
//!   `models--ORG--NAME/refs/REVISION` (a commit hash) and `snapshots/COMMIT/PATH`.
//! - ModelScope cache (`modelscope download`): `$MODELSCOPE_CACHE` (default
//!   `~/.cache/modelscope/hub`), holding `models/ORG/NAME/...` (older versions: `ORG/NAME/...`,
//!   with `.` in names written as `___`).
//! - Ollama's store: `$OLLAMA_MODELS` (default `~/.ollama/models`), holding
//!   `manifests/HOST/NAMESPACE/NAME/TAG` (JSON) and `blobs/sha256-HEX`.

use std::path::{Path, PathBuf};

use inferkit_formats::{hub, ollama};
use serde::{Deserialize, Serialize};

use crate::listing::{RepoFile, RepoListing};
use crate::reference::{OllamaRef, RepoRef};

/// Where the local caches are. [`CacheDirs::from_env`] reads the tools' own variables;
/// tests and embedding applications set the fields directly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheDirs {
    /// The Hugging Face hub cache (the folder holding `models--*`).
    pub huggingface: Option<PathBuf>,
    /// The ModelScope cache (the folder holding `models/` or `ORG/`).
    pub modelscope: Option<PathBuf>,
    /// Ollama's model store (the folder holding `manifests/` and `blobs/`).
    pub ollama: Option<PathBuf>,
    /// inferkit's own download folder, for models no tool keeps (URLs): `models/` in
    /// [`inferkit_cache`](crate::header_cache::inferkit_cache).
    #[serde(default)]
    pub downloads: Option<PathBuf>,
}

impl CacheDirs {
    /// The caches as the tools find them: `HF_HUB_CACHE`, `HF_HOME`, `MODELSCOPE_CACHE`,
    /// `OLLAMA_MODELS`, `INFERKIT_CACHE`, else their defaults under the home directory.
    pub fn from_env() -> CacheDirs {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home = var("HOME").or_else(|| var("USERPROFILE"));
        let xdg_cache = var("XDG_CACHE_HOME").or_else(|| home.as_ref().map(|h| h.join(".cache")));
        let huggingface = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| xdg_cache.as_ref().map(|c| c.join("huggingface/hub")));
        let modelscope = var("MODELSCOPE_CACHE")
            .or_else(|| home.as_ref().map(|h| h.join(".cache/modelscope/hub")));
        let ollama =
            var("OLLAMA_MODELS").or_else(|| home.as_ref().map(|h| h.join(".ollama/models")));
        CacheDirs {
            huggingface,
            modelscope,
            ollama,
            downloads: crate::header_cache::inferkit_cache().map(|c| c.join("models")),
        }
    }
}

/// A snapshot of a hub repository on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSnapshot {
    /// The folder holding the repository's files.
    pub root: PathBuf,
    /// Its files (regular files or links to them), with sizes.
    pub listing: RepoListing,
}

pub use inferkit_formats::hub::repo_folder_name as hf_repo_folder;

/// The snapshot of `repo` in the Hugging Face hub cache `cache`: the commit its revision
/// (default `main`) points to, or the revision itself when it is a commit hash with a snapshot.
pub fn hf_snapshot(cache: &Path, repo: &RepoRef) -> Option<LocalSnapshot> {
    let folder = hub::repo_folder(cache, &repo.repo);
    let revision = repo
        .revision
        .as_deref()
        .unwrap_or(hub::Hub::HuggingFace.default_revision());
    let commit = match std::fs::read_to_string(hub::ref_path(&folder, revision)) {
        Ok(commit) => commit.trim().to_string(),
        Err(_) if is_commit_hash(revision) => revision.to_string(),
        Err(_) => return None,
    };
    if !is_commit_hash(&commit) {
        return None;
    }
    snapshot_at(hub::snapshot_folder(&folder, &commit), commit)
}

/// The download location of `repo` in the ModelScope cache, when present. ModelScope keeps one
/// copy per repository, so a reference naming a revision is not looked up here.
pub fn modelscope_snapshot(cache: &Path, repo: &RepoRef) -> Option<LocalSnapshot> {
    if repo.revision.is_some() {
        return None;
    }
    let (org, name) = repo.repo.split_once('/')?;
    // modelscope writes `.` in folder names as `___` (its `model_id_to_group_owner_name`).
    let escaped = name.replace('.', "___");
    [
        cache.join("models").join(org).join(name),
        cache.join("models").join(org).join(&escaped),
        cache.join(org).join(name),
        cache.join(org).join(&escaped),
    ]
    .into_iter()
    .find(|dir| {
        dir.join("configuration.json").is_file()
            || dir.join("config.json").is_file()
            || has_gguf(dir)
    })
    .and_then(|dir| snapshot_at(dir, String::new()))
}

fn has_gguf(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".gguf"))
    })
}

/// A Git commit hash: 40 hexadecimal digits.
pub fn is_commit_hash(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn snapshot_at(root: PathBuf, commit: String) -> Option<LocalSnapshot> {
    let mut files = Vec::new();
    list_files(&root, "", 0, &mut files);
    if files.is_empty() {
        return None;
    }
    let mut listing = RepoListing { commit, files };
    listing.sort();
    Some(LocalSnapshot { root, listing })
}

/// Deepest folder level listed (hub repositories nest a few levels at most).
const MAX_DEPTH: usize = 4;

/// Lists regular files under `dir` (following the cache's symbolic links), skipping partial
/// downloads and hidden files.
fn list_files(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<RepoFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".incomplete") {
            continue;
        }
        let path = format!("{prefix}{name}");
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue; // a dangling link: the blob was deleted
        };
        if meta.is_dir() && depth < MAX_DEPTH {
            list_files(&entry.path(), &format!("{path}/"), depth + 1, out);
        } else if meta.is_file() {
            out.push(RepoFile {
                path,
                size: meta.len(),
                sha256: None,
                url: None,
            });
        }
    }
}

/// What an Ollama manifest says about a model: its GGUF blob and projector blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OllamaModel {
    /// Digest of the manifest (`sha256:HEX`), when known (from a registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// The GGUF model layer.
    pub model: OllamaLayer,
    /// Projector layers (vision models).
    pub projectors: Vec<OllamaLayer>,
    /// Every other blob the manifest names (template, parameters, license, the config
    /// blob): not read for planning, but part of the model in Ollama's store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<OllamaLayer>,
}

/// One layer of an Ollama manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OllamaLayer {
    /// `sha256:HEX`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl OllamaLayer {
    /// The blob's file name in Ollama's store (`sha256-HEX`).
    pub fn blob_name(&self) -> String {
        ollama::blob_file_name(&self.digest)
    }

    /// The hex SHA-256 of the blob.
    pub fn sha256(&self) -> Option<&str> {
        self.digest.strip_prefix("sha256:")
    }
}

/// Media type of the GGUF layer of an Ollama manifest.
pub const OLLAMA_MODEL_LAYER: &str = "application/vnd.ollama.image.model";
/// Media type of a projector layer.
pub const OLLAMA_PROJECTOR_LAYER: &str = "application/vnd.ollama.image.projector";

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    config: Option<ManifestLayer>,
    #[serde(default)]
    layers: Vec<ManifestLayer>,
}

#[derive(Deserialize)]
struct ManifestLayer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

/// Reads the layers of an Ollama manifest. `None` when it is not JSON or has no model layer.
pub fn parse_ollama_manifest(text: &str) -> Option<OllamaModel> {
    let manifest: Manifest = serde_json::from_str(text).ok()?;
    let layer = |l: &ManifestLayer| OllamaLayer {
        digest: l.digest.clone(),
        size: l.size,
    };
    let model = manifest
        .layers
        .iter()
        .find(|l| l.media_type == OLLAMA_MODEL_LAYER)
        .map(layer)?;
    let projectors = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == OLLAMA_PROJECTOR_LAYER)
        .map(layer)
        .collect();
    let others = manifest
        .layers
        .iter()
        .filter(|l| l.digest != model.digest && l.media_type != OLLAMA_PROJECTOR_LAYER)
        .chain(&manifest.config)
        .map(layer)
        .collect();
    Some(OllamaModel {
        manifest_digest: None,
        model,
        projectors,
        others,
    })
}

/// The model `reference` in Ollama's store at `store`, with the path of its GGUF blob, when
/// both the manifest and the blob are there.
pub fn ollama_local(
    store: &Path,
    reference: &OllamaRef,
    default_host: &str,
) -> Option<(OllamaModel, PathBuf)> {
    let host = reference.host.as_deref().unwrap_or(default_host);
    let manifest = ollama::manifest_path(store, host, &reference.name, &reference.tag);
    let text = std::fs::read_to_string(manifest).ok()?;
    let model = parse_ollama_manifest(&text)?;
    let blob = ollama::blobs_folder(store).join(model.model.blob_name());
    blob.is_file().then_some((model, blob))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_folder_names() {
        assert_eq!(
            hf_repo_folder("Qwen/Qwen2.5-7B"),
            "models--Qwen--Qwen2.5-7B"
        );
        assert!(is_commit_hash("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit_hash("main"));
    }

    #[test]
    fn ollama_manifest_layers() {
        let text = r#"{"schemaVersion":2,
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:dd","size":3},
            "layers":[
            {"mediaType":"application/vnd.ollama.image.model","digest":"sha256:aa","size":10},
            {"mediaType":"application/vnd.ollama.image.projector","digest":"sha256:bb","size":5},
            {"mediaType":"application/vnd.ollama.image.template","digest":"sha256:cc","size":1}]}"#;
        let model = parse_ollama_manifest(text).unwrap();
        assert_eq!(model.model.blob_name(), "sha256-aa");
        assert_eq!(model.projectors.len(), 1);
        let others: Vec<String> = model.others.iter().map(OllamaLayer::blob_name).collect();
        assert_eq!(others, ["sha256-cc", "sha256-dd"]);
        assert!(parse_ollama_manifest(r#"{"layers":[]}"#).is_none());
    }
}
