//! [`DownloadStep`]: model files a plan fetches before its processes start, for backends that
//! take files (llama-box, llama-server) when the model is on a hub and not yet on the worker.
//!
//! The step is data: what to fetch (repository, commit, files with sizes and SHA-256), from
//! where (the hub's endpoint), where to (a Hugging Face cache, in its layout, so other tools
//! share the files) and which variable holds the token (never the token). `inferkit serve`
//! performs it before starting the processes; an orchestrator can run it as a separate step
//! (an init container) with the same data.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::launch::LaunchSpec;

/// Files of a hub repository to fetch into a Hugging Face cache before the processes start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DownloadStep {
    /// The workers whose processes read the files.
    pub workers: Vec<String>,
    /// `hf` (Hugging Face) or `ms` (ModelScope).
    pub hub: String,
    /// The hub's base URL (`https://huggingface.co`, a mirror).
    pub endpoint: String,
    /// `org/name`.
    pub repo: String,
    /// The revision asked for (recorded under `refs/` of the cache), when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The commit the files are fetched at.
    pub commit: String,
    /// The Hugging Face cache the files go into (the folder holding `models--ORG--NAME`).
    pub cache: PathBuf,
    /// Where the processes read the files: `models--ORG--NAME/snapshots/COMMIT` in `cache`.
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
    /// Path in the repository.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The hub's SHA-256 of the content (large files), checked before the file is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl DownloadStep {
    /// The address of the file at `path` of the repository, at [`DownloadStep::commit`]:
    /// `{endpoint}/{repo}/resolve/{commit}/{path}` on Hugging Face (LFS files redirect from
    /// there to a CDN host), `{endpoint}/api/v1/models/{repo}/repo?Revision=..&FilePath=..` on
    /// ModelScope.
    pub fn file_url(&self, path: &str) -> String {
        let base = self.endpoint.trim_end_matches('/');
        let (repo, commit) = (&self.repo, percent_encode(&self.commit, false));
        match self.hub.as_str() {
            "ms" => format!(
                "{base}/api/v1/models/{repo}/repo?Revision={commit}&FilePath={}",
                percent_encode(path, false)
            ),
            _ => format!(
                "{base}/{repo}/resolve/{commit}/{}",
                percent_encode(path, true)
            ),
        }
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

/// Percent-encodes `text` for a URL path or query value (`/` kept when `keep_slash`).
fn percent_encode(text: &str, keep_slash: bool) -> String {
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
