//! Where Ollama keeps a model, in one place for every reader and writer of it (the local
//! store, the registry client, the download step, the Kubernetes download script).
//!
//! An Ollama model is a manifest naming its blobs by digest (`sha256:HEX`):
//!
//! - in a registry (the Docker distribution API), the manifest of `NAME:TAG` is at
//!   `{registry}/v2/{NAME}/manifests/{TAG}` and a blob at `{registry}/v2/{NAME}/blobs/{DIGEST}`;
//! - in Ollama's store (`OLLAMA_MODELS`), the manifest is at
//!   `manifests/{HOST}/{NAME}/{TAG}`, under the registry's host (with its port, when it has
//!   one), and a blob at `blobs/sha256-HEX`, the digest with `-` for `:`.
//!
//! `NAME` is `namespace/name` (`library/qwen2.5`). Source: ollama/ollama `server/modelpath.go`
//! (`GetManifestPath`, `GetBlobsPath`, `BaseURL`) and `server/images.go` (the registry
//! requests of a pull).

use std::path::{Path, PathBuf};

/// The address of the manifest of `name:tag` in the registry at `registry` (its base URL).
///
/// ```
/// use inferkit_formats::ollama::manifest_url;
///
/// assert_eq!(
///     manifest_url("https://registry.ollama.ai/", "library/qwen2.5", "0.5b"),
///     "https://registry.ollama.ai/v2/library/qwen2.5/manifests/0.5b"
/// );
/// ```
pub fn manifest_url(registry: &str, name: &str, tag: &str) -> String {
    format!(
        "{}/v2/{name}/manifests/{tag}",
        registry.trim_end_matches('/')
    )
}

/// The address of the blob of digest `digest` (`sha256:HEX`) of `name` in the registry at
/// `registry`.
pub fn blob_url(registry: &str, name: &str, digest: &str) -> String {
    format!(
        "{}/v2/{name}/blobs/{digest}",
        registry.trim_end_matches('/')
    )
}

/// The manifest of `name:tag` from the registry at `host` (the host of its base URL, with its
/// port: [`url_host`](crate::source::url_host)) in the store at `store`.
pub fn manifest_path(store: &Path, host: &str, name: &str, tag: &str) -> PathBuf {
    store.join("manifests").join(host).join(name).join(tag)
}

/// The folder of the store at `store` that holds every blob.
pub fn blobs_folder(store: &Path) -> PathBuf {
    store.join("blobs")
}

/// The file name in the store of the blob of digest `digest`: `sha256:HEX` → `sha256-HEX`.
pub fn blob_file_name(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The digest of the blob stored as `file_name`: `sha256-HEX` → `sha256:HEX`.
pub fn blob_digest(file_name: &str) -> String {
    file_name.replacen('-', ":", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store and registry paths of `qwen2.5:0.5b` and of a blob (the digest of no bytes)
    /// as an Ollama client writes and requests them.
    #[test]
    fn a_model_is_filed_under_its_registrys_host_and_its_blobs_by_digest() {
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let store = Path::new("/root/.ollama/models");
        let host = crate::source::url_host("https://registry.ollama.ai/");
        assert_eq!(
            manifest_path(store, host, "library/qwen2.5", "0.5b"),
            Path::new("/root/.ollama/models/manifests/registry.ollama.ai/library/qwen2.5/0.5b")
        );
        let file = blob_file_name(digest);
        assert_eq!(
            blobs_folder(store).join(&file),
            Path::new(
                "/root/.ollama/models/blobs/\
                 sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
        );
        assert_eq!(blob_digest(&file), digest);
        assert_eq!(
            blob_url("https://registry.ollama.ai", "library/qwen2.5", digest),
            format!("https://registry.ollama.ai/v2/library/qwen2.5/blobs/{digest}")
        );
    }
}
