//! Where Hugging Face and ModelScope keep a repository's files, in one place for every reader
//! and writer of them (the hub client, the download step, the local cache reader, the
//! Kubernetes download script).
//!
//! - The address of the file `PATH` of repository `ORG/NAME` at commit `COMMIT`
//!   ([`Hub::file_url`]): `{endpoint}/ORG/NAME/resolve/COMMIT/PATH` on Hugging Face (LFS files
//!   redirect from there to a CDN host),
//!   `{endpoint}/api/v1/models/ORG/NAME/repo?Revision=COMMIT&FilePath=PATH` on ModelScope; the
//!   commit, and on ModelScope the path, percent-encoded ([`percent_encode`]).
//! - The Hugging Face cache (which inferkit writes for both hubs, so the files are shared with
//!   `huggingface_hub`): a repository's folder `models--ORG--NAME` ([`repo_folder`]) holds
//!   `blobs/ID` (the content, `ID` the SHA-256 of an LFS file, else its ETag),
//!   `snapshots/COMMIT/PATH` (relative links to the blobs, [`blob_link`]) and
//!   `refs/REVISION` (the commit a branch or tag named).
//!
//! Sources: huggingface_hub `constants.py` (`HUGGINGFACE_CO_URL_TEMPLATE`, `DEFAULT_REVISION`),
//! `file_download.py` (`hf_hub_url` quotes the revision with no safe character and the file
//! name keeping `/`; `repo_folder_name`; `_create_symlink` links relatively); modelscope
//! `hub/file_download.py` (`get_file_download_url`) and `hub/constants.py`
//! (`DEFAULT_MODEL_REVISION`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A hub of Git repositories of model files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hub {
    /// Hugging Face (`hf`), or a mirror of it.
    #[serde(rename = "hf")]
    HuggingFace,
    /// ModelScope (`ms`).
    #[serde(rename = "ms")]
    ModelScope,
}

impl Hub {
    /// The hub a scheme names (`hf`, `ms`), as model references and plans write it.
    ///
    /// ```
    /// use inferkit_formats::hub::Hub;
    ///
    /// assert_eq!(Hub::from_scheme("ms"), Some(Hub::ModelScope));
    /// assert_eq!(Hub::from_scheme("ollama"), None);
    /// ```
    pub fn from_scheme(scheme: &str) -> Option<Hub> {
        match scheme {
            "hf" => Some(Hub::HuggingFace),
            "ms" => Some(Hub::ModelScope),
            _ => None,
        }
    }

    /// The scheme that names the hub: `hf`, `ms`.
    pub fn scheme(self) -> &'static str {
        match self {
            Hub::HuggingFace => "hf",
            Hub::ModelScope => "ms",
        }
    }

    /// The revision a reference that names none means: `main`, `master`.
    pub fn default_revision(self) -> &'static str {
        match self {
            Hub::HuggingFace => "main",
            Hub::ModelScope => "master",
        }
    }

    /// The address of the file at `path` of `repo` at `commit` on the hub at `endpoint` (its
    /// base URL).
    ///
    /// ```
    /// use inferkit_formats::hub::Hub;
    ///
    /// let repo = "Qwen/Qwen2.5-0.5B";
    /// assert_eq!(
    ///     Hub::HuggingFace.file_url("https://huggingface.co/", repo, "main", "a b.gguf"),
    ///     "https://huggingface.co/Qwen/Qwen2.5-0.5B/resolve/main/a%20b.gguf"
    /// );
    /// assert_eq!(
    ///     Hub::ModelScope.file_url("https://modelscope.cn", repo, "master", "q4/a.gguf"),
    ///     "https://modelscope.cn/api/v1/models/Qwen/Qwen2.5-0.5B/repo?\
    ///      Revision=master&FilePath=q4%2Fa.gguf"
    /// );
    /// ```
    pub fn file_url(self, endpoint: &str, repo: &str, commit: &str, path: &str) -> String {
        let base = endpoint.trim_end_matches('/');
        let commit = percent_encode(commit, false);
        match self {
            Hub::HuggingFace => format!(
                "{base}/{repo}/resolve/{commit}/{}",
                percent_encode(path, true)
            ),
            Hub::ModelScope => format!(
                "{base}/api/v1/models/{repo}/repo?Revision={commit}&FilePath={}",
                percent_encode(path, false)
            ),
        }
    }
}

/// Percent-encodes `text` for a URL path or query value: every byte but ASCII letters,
/// digits and `-._~` (and `/` when `keep_slash`).
///
/// ```
/// use inferkit_formats::hub::percent_encode;
///
/// assert_eq!(percent_encode("refs/pr/1", false), "refs%2Fpr%2F1");
/// assert_eq!(percent_encode("Q4 K/m.gguf", true), "Q4%20K/m.gguf");
/// ```
pub fn percent_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name of the folder of `repo` (`ORG/NAME`) in a Hugging Face cache: `models--ORG--NAME`.
///
/// ```
/// use inferkit_formats::hub::repo_folder_name;
///
/// assert_eq!(repo_folder_name("Qwen/Qwen2.5-7B"), "models--Qwen--Qwen2.5-7B");
/// ```
pub fn repo_folder_name(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// The folder of `repo` in the Hugging Face cache at `cache`.
pub fn repo_folder(cache: &Path, repo: &str) -> PathBuf {
    cache.join(repo_folder_name(repo))
}

/// The snapshot of commit `commit` in the repository folder `repo_folder`: the files, as
/// laid out in the repository.
pub fn snapshot_folder(repo_folder: &Path, commit: &str) -> PathBuf {
    repo_folder.join("snapshots").join(commit)
}

/// The file of the repository folder `repo_folder` that names the commit of `revision`.
pub fn ref_path(repo_folder: &Path, revision: &str) -> PathBuf {
    repo_folder.join("refs").join(revision)
}

/// The folder of the repository folder `repo_folder` that holds the files' content.
pub fn blobs_folder(repo_folder: &Path) -> PathBuf {
    repo_folder.join("blobs")
}

/// The repository folder a snapshot (`…/models--ORG--NAME/snapshots/COMMIT`) is in; `None`
/// for a path with fewer than two parents.
pub fn snapshot_repo_folder(snapshot: &Path) -> Option<&Path> {
    snapshot.parent().and_then(Path::parent)
}

/// The target of the link `snapshots/COMMIT/PATH` to the blob `blob_id`: `../../blobs/ID`,
/// one more `../` per folder in `PATH`, relative as `huggingface_hub` links.
///
/// ```
/// use inferkit_formats::hub::blob_link;
///
/// assert_eq!(blob_link("q4/model.gguf", "ab12"), "../../../blobs/ab12");
/// ```
pub fn blob_link(path: &str, blob_id: &str) -> String {
    let depth = path.matches('/').count() + 2;
    format!("{}blobs/{blob_id}", "../".repeat(depth))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache paths of a file of `Qwen/Qwen2.5-0.5B-Instruct-GGUF` as huggingface_hub
    /// writes them, and its addresses on both hubs.
    #[test]
    fn a_file_is_linked_from_its_snapshot_to_its_blob() {
        let commit = "9217f5db79a29953eb74d5343926648285ec7e67";
        // The SHA-256 of no bytes.
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let repo = "Qwen/Qwen2.5-0.5B-Instruct-GGUF";
        let folder = repo_folder(Path::new("/root/.cache/huggingface/hub"), repo);
        assert_eq!(
            folder,
            Path::new("/root/.cache/huggingface/hub/models--Qwen--Qwen2.5-0.5B-Instruct-GGUF")
        );
        let snapshot = snapshot_folder(&folder, commit);
        assert_eq!(snapshot_repo_folder(&snapshot), Some(folder.as_path()));
        let link = snapshot.join("q4/qwen2.5-0.5b-instruct-q4_k_m.gguf");
        let target = blob_link("q4/qwen2.5-0.5b-instruct-q4_k_m.gguf", sha);
        // The link resolves, relative to its folder, to the blob.
        let mut resolved = link.parent().unwrap().to_path_buf();
        for part in target.split('/') {
            match part {
                ".." => assert!(resolved.pop()),
                part => resolved.push(part),
            }
        }
        assert_eq!(resolved, blobs_folder(&folder).join(sha));
        assert_eq!(ref_path(&folder, "main"), folder.join("refs/main"));
        assert_eq!(
            Hub::HuggingFace.file_url("https://hf-mirror.com", repo, "refs/pr/1", "a+b.gguf"),
            "https://hf-mirror.com/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/refs%2Fpr%2F1/a%2Bb.gguf"
        );
        for hub in [Hub::HuggingFace, Hub::ModelScope] {
            assert_eq!(Hub::from_scheme(hub.scheme()), Some(hub));
        }
    }
}
