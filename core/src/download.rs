//! [`DownloadStep`]: model files a plan fetches before its processes start, for backends that
//! take files (llama-box, llama-server) when the model is not yet on the worker.
//!
//! The step is data: what to fetch (repository, commit, files with sizes and SHA-256), from
//! where (the hub's endpoint), where to (the cache of the tool the model comes from, in its
//! layout, so that tool shares the files) and which variable holds the token (never the
//! token). `inferkit serve` performs it before starting the processes; an orchestrator can run
//! it as a separate step (an init container) with the same data.
//!
//! By [`DownloadStep::hub`]:
//!
//! | `hub` | `repo` / `revision` / `commit` | `cache` and `snapshot` | a file's `path` and address |
//! |---|---|---|---|
//! | `hf`, `ms` | `org/name` / as asked / resolved commit | Hugging Face cache; `models--ORG--NAME/snapshots/COMMIT` | path in the repository; the hub's `resolve` address |
//! | `ollama` | `namespace/name` / tag / SHA-256 of the manifest | Ollama's store (`OLLAMA_MODELS`); its `blobs` | `sha256-HEX`; `{endpoint}/v2/{repo}/blobs/sha256:HEX`, then the manifest into `manifests/HOST/{repo}/{tag}` |
//! | `url` | the URL / none / digest of sizes and ETags | inferkit's download folder; `KEY/VERSION` in it | the file name; [`DownloadFile::url`] |

use std::path::{Path, PathBuf};

use inferkit_formats::hub::Hub;
use serde::{Deserialize, Serialize};

use crate::launch::LaunchSpec;

/// Files of a hub repository to fetch into a Hugging Face cache before the processes start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DownloadStep {
    /// The workers whose processes read the files.
    pub workers: Vec<String>,
    /// Where the model comes from, which decides the layout (see the module's table): `hf`
    /// (Hugging Face), `ms` (ModelScope), `ollama` (an Ollama registry) or `url`.
    pub hub: String,
    /// The hub's base URL (`https://huggingface.co`, a mirror, `https://registry.ollama.ai`);
    /// empty for `url`.
    pub endpoint: String,
    /// `org/name`; for `ollama` `namespace/name` (`library/qwen2.5`); for `url` the URL.
    pub repo: String,
    /// The revision asked for (recorded under `refs/` of a Hugging Face cache), when one was;
    /// for `ollama` the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The commit the files are fetched at; for `ollama` the manifest's SHA-256 (hex), checked
    /// again before the manifest is written; for `url` a digest of the files' sizes and ETags.
    pub commit: String,
    /// The cache the files go into: a Hugging Face cache (the folder holding
    /// `models--ORG--NAME`), Ollama's store (holding `manifests/` and `blobs/`) or inferkit's
    /// download folder.
    pub cache: PathBuf,
    /// Where the processes read the files: `models--ORG--NAME/snapshots/COMMIT`, `blobs` or
    /// `KEY/VERSION` in `cache`.
    pub snapshot: PathBuf,
    /// The files, by path in the repository.
    pub files: Vec<DownloadFile>,
    /// Bytes to fetch in all (the files' sizes; a resumed or cached file takes less).
    pub bytes: u64,
    /// The environment variable whose value authenticates to the hub (`HF_TOKEN`), when one
    /// was set at planning; the launcher reads it, the plan never holds the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

/// One file of a [`DownloadStep`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DownloadFile {
    /// Path in the repository (for `ollama` the blob's name, `sha256-HEX`); the file is at
    /// this path under [`DownloadStep::snapshot`].
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The hub's SHA-256 of the content (large files, Ollama blobs), checked before the file
    /// is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The address to fetch, for a `url` step (a hub's files are at the address its own rule
    /// gives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl DownloadStep {
    /// The address of the file at `path` of the repository, at [`DownloadStep::commit`], by
    /// the hub's rule ([`Hub::file_url`]): `{endpoint}/{repo}/resolve/{commit}/{path}` on
    /// Hugging Face (LFS files redirect from there to a CDN host),
    /// `{endpoint}/api/v1/models/{repo}/repo?Revision=..&FilePath=..` on ModelScope (`ms`).
    pub fn file_url(&self, path: &str) -> String {
        let hub = Hub::from_scheme(&self.hub).unwrap_or(Hub::HuggingFace);
        hub.file_url(&self.endpoint, &self.repo, &self.commit, path)
    }

    /// Points the processes at the downloaded files: every argument under `planned_from` (the
    /// folder the plan read the files' headers from, laid out as the repository) is moved
    /// under [`DownloadStep::snapshot`], and the workers running those processes are recorded.
    pub fn relocate(&mut self, processes: &mut [LaunchSpec], planned_from: &Path) {
        for process in processes {
            let mut reads_model = false;
            for arg in &mut process.args {
                let moved = Path::new(arg.as_str())
                    .strip_prefix(planned_from)
                    .map(|rest| self.snapshot.join(rest).display().to_string());
                if let Ok(moved) = moved {
                    *arg = moved;
                    reads_model = true;
                }
            }
            if reads_model && !self.workers.contains(&process.worker) {
                self.workers.push(process.worker.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::launch::ProcessRole;

    fn process(worker: &str, args: &[&str]) -> LaunchSpec {
        LaunchSpec {
            worker: worker.into(),
            role: ProcessRole::Main,
            program: "llama-box".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: BTreeMap::new(),
            files: Vec::new(),
            run_time_files: Vec::new(),
            health: None,
        }
    }

    #[test]
    fn moves_model_paths_to_the_snapshot_and_names_the_workers_reading_them() {
        let mut step = DownloadStep {
            workers: Vec::new(),
            hub: "hf".into(),
            endpoint: "https://huggingface.co".into(),
            repo: "Qwen/Qwen2.5-VL-7B-Instruct-GGUF".into(),
            revision: None,
            commit: "c0ffee".into(),
            cache: "/hf".into(),
            snapshot: "/hf/models--Qwen--Qwen2.5-VL-7B-Instruct-GGUF/snapshots/c0ffee".into(),
            files: Vec::new(),
            bytes: 0,
            token_env: None,
        };
        let headers = Path::new("/cache/inferkit/hf/files/c0ffee");
        let mut processes = vec![
            process("rpc-host", &["--rpc-server-main", "--port", "50052"]),
            process(
                "main",
                &[
                    "--model",
                    "/cache/inferkit/hf/files/c0ffee/q4/model-Q4_K_M.gguf",
                    "--mmproj",
                    "/cache/inferkit/hf/files/c0ffee/mmproj-F16.gguf",
                    "--alias",
                    "/cache/inferkit/hf/files/c0ffee-not-this",
                ],
            ),
        ];
        step.relocate(&mut processes, headers);
        assert_eq!(
            processes[1].args,
            [
                "--model",
                "/hf/models--Qwen--Qwen2.5-VL-7B-Instruct-GGUF/snapshots/c0ffee/q4/model-Q4_K_M.gguf",
                "--mmproj",
                "/hf/models--Qwen--Qwen2.5-VL-7B-Instruct-GGUF/snapshots/c0ffee/mmproj-F16.gguf",
                "--alias",
                "/cache/inferkit/hf/files/c0ffee-not-this",
            ]
        );
        assert_eq!(processes[0].args[0], "--rpc-server-main");
        assert_eq!(step.workers, ["main"]);
    }

    #[test]
    fn file_urls_follow_each_hubs_download_address() {
        let mut step = DownloadStep {
            workers: Vec::new(),
            hub: "hf".into(),
            endpoint: "https://hf-mirror.com/".into(),
            repo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF".into(),
            revision: None,
            commit: "9217f5db79a29953eb74d5343926648285ec7e67".into(),
            cache: "/hf".into(),
            snapshot: "/hf/s".into(),
            files: Vec::new(),
            bytes: 0,
            token_env: None,
        };
        assert_eq!(
            step.file_url("q4/qwen2.5 0.5b+Q4_K_M.gguf"),
            "https://hf-mirror.com/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/\
             9217f5db79a29953eb74d5343926648285ec7e67/q4/qwen2.5%200.5b%2BQ4_K_M.gguf"
        );
        step.hub = "ms".into();
        step.endpoint = "https://modelscope.cn".into();
        step.commit = "master".into();
        assert_eq!(
            step.file_url("q4/a.gguf"),
            "https://modelscope.cn/api/v1/models/Qwen/Qwen2.5-0.5B-Instruct-GGUF/repo?\
             Revision=master&FilePath=q4%2Fa.gguf"
        );
    }
}
