//! The download step of a plan: planned when a GGUF model that is on no disk of this machine
//! (a hub's, an Ollama registry's, a URL's) goes to a backend that takes files, performed by
//! `serve` before the processes start (resumable, verified, with a progress bar on a
//! terminal).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use inferkit::{DeploymentPlan, DownloadFile, DownloadStep, Error, ModelFacts, Result};
use inferkit_sources::download::{DownloadOptions, TerminalProgress, download, files_folder};
use inferkit_sources::listing::RepoFile;
use inferkit_sources::{ModelRef, RemoteModel, Resolved, Secret, SourceOptions};

/// A download the plan will carry, and the header copies the plan is made from meanwhile.
#[derive(Debug)]
pub struct PlannedDownload {
    step: DownloadStep,
    /// The folder holding the header copies, laid out as the repository.
    headers: PathBuf,
    /// The header copy of the model's first file (what the planners read as the model).
    model: PathBuf,
    /// Header copies named otherwise than the downloaded file (Ollama's blobs are read as
    /// `[mmproj-]sha256-HEX.gguf`, stored as `sha256-HEX`), by path under `headers`.
    renames: Vec<(String, String)>,
    /// Every file of the selection (shards and projectors), for the files the plan uses.
    available: Vec<RepoFile>,
}

/// The download a plan of `resolved` needs: a GGUF model read from a hub, a registry or a URL,
/// not on this machine, with a cache to put it in. `None` for anything else (a local model;
/// a folder, which vLLM fetches by repository id itself).
pub fn planned(
    resolved: &Resolved,
    reference: &ModelRef,
    options: &SourceOptions,
) -> Option<PlannedDownload> {
    let facts = &resolved.facts;
    let remote = resolved.remote.as_ref()?;
    let model = facts.gguf.as_ref()?.shards().first()?.path.clone();
    if facts.path.is_some() {
        return None;
    }
    // Hub header copies are laid out as the repository; Ollama's and a URL's are flat.
    let depth = repository_path(facts).map_or(1, |first| Path::new(first).components().count());
    let headers = model.ancestors().nth(depth)?.to_path_buf();
    let (cache, revision, token_env) = match reference {
        ModelRef::HuggingFace(repo) => (
            options.caches.huggingface.clone(),
            repo.revision.clone(),
            options.huggingface.token_var.clone(),
        ),
        ModelRef::ModelScope(repo) => (
            options.caches.huggingface.clone(),
            repo.revision.clone(),
            options.modelscope.token_var.clone(),
        ),
        // The configured registry's token goes to that registry only.
        ModelRef::Ollama(model) => (
            options.caches.ollama.clone(),
            Some(model.tag.clone()),
            options
                .ollama
                .token_var
                .clone()
                .filter(|_| model.host.is_none()),
        ),
        ModelRef::Url { .. } => (options.caches.downloads.clone(), None, None),
        ModelRef::Local { .. } => return None,
    };
    let cache = cache?;
    let mut shards = Vec::new();
    for shard in facts.gguf.as_ref()?.shards() {
        let listed = shard.path.strip_prefix(&headers).ok()?.to_str()?;
        shards.push(download_file(remote.file(listed)?));
    }
    let mut renames = Vec::new();
    // Ollama's store needs every blob of the manifest, read by the backend or not; the
    // header copies are named as GGUF files.
    if remote.hub == "ollama" {
        shards = remote.files.iter().map(download_file).collect();
        for file in &remote.files {
            for listed in [
                format!("{}.gguf", file.path),
                format!("mmproj-{}.gguf", file.path),
            ] {
                renames.push((listed, file.path.clone()));
            }
        }
    }
    let step = DownloadStep {
        workers: Vec::new(),
        hub: remote.hub.clone(),
        endpoint: remote.endpoint.clone(),
        repo: remote.repo.clone(),
        revision,
        commit: remote.commit.clone(),
        snapshot: files_folder(remote, &cache),
        cache,
        bytes: shards.iter().map(|f| f.size).sum(),
        files: shards,
        token_env,
    };
    Some(PlannedDownload {
        step,
        headers,
        model,
        renames,
        available: remote.files.clone(),
    })
}

/// The model's first file as a path in the repository (the source names it).
fn repository_path(facts: &ModelFacts) -> Option<&str> {
    match &facts.source {
        inferkit::ModelSource::Huggingface { filename, .. } => filename.as_deref(),
        inferkit::ModelSource::ModelScope { file_path, .. } => file_path.as_deref(),
        _ => None,
    }
}

fn download_file(file: &RepoFile) -> DownloadFile {
    DownloadFile {
        path: file.path.clone(),
        size: file.size,
        sha256: file.sha256.clone(),
        url: file.url.clone(),
    }
}

impl PlannedDownload {
    /// The facts to plan with: the model read from its header copies, as if it were there.
    pub fn facts(&self, facts: &ModelFacts) -> ModelFacts {
        {
            let mut model_facts = facts.clone();
            model_facts.path = Some(self.model.clone());
            model_facts
        }
    }

    /// Adds the step to `plan`: the processes read the files where the download puts them,
    /// and the step fetches the shards and every other file of the selection a process
    /// names (the projector the backend loads, not its siblings).
    pub fn attach(mut self, plan: &mut DeploymentPlan) {
        for (listed, stored) in &self.renames {
            let (from, to) = (self.headers.join(listed), self.headers.join(stored));
            let (from, to) = (from.display().to_string(), to.display().to_string());
            for arg in plan.processes.iter_mut().flat_map(|p| p.args.iter_mut()) {
                if *arg == from {
                    arg.clone_from(&to);
                }
            }
        }
        self.step.relocate(&mut plan.processes, &self.headers);
        if self.step.workers.is_empty() {
            return;
        }
        let named: Vec<DownloadFile> = self
            .available
            .iter()
            .filter(|file| !self.step.files.iter().any(|f| f.path == file.path))
            .filter(|file| {
                let target = self.step.snapshot.join(&file.path).display().to_string();
                plan.processes.iter().any(|p| p.args.contains(&target))
            })
            .map(download_file)
            .collect();
        self.step.files.extend(named);
        self.step.bytes = self.step.files.iter().map(|f| f.size).sum();
        plan.downloads.push(self.step);
    }
}

/// The step in words: what, how much, from where, into where, on which workers; one line
/// per file after the first.
pub fn describe(step: &DownloadStep) -> Vec<String> {
    let source = match step.hub.as_str() {
        "url" => step.repo.clone(),
        "ollama" => format!(
            "ollama://{}:{} (sha256:{}) from {}",
            step.repo,
            step.revision.as_deref().unwrap_or("latest"),
            step.commit,
            step.endpoint
        ),
        hub => format!(
            "{hub}://{}@{} from {}",
            step.repo, step.commit, step.endpoint
        ),
    };
    let mut lines = vec![format!(
        "download {} file(s), {}, of {source} into {} (on {})",
        step.files.len(),
        gib(step.bytes),
        step.snapshot.display(),
        step.workers.join(", ")
    )];
    lines.extend(
        step.files
            .iter()
            .map(|f| format!("  {} ({})", f.path, gib(f.size))),
    );
    lines
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Performs `step`: every file into the cache it names, in that cache's layout (a complete
/// file is kept, a partial one resumed, a file with a known SHA-256 verified), with a
/// progress bar on a terminal. The token is read from the variable the step names.
pub fn perform(step: &DownloadStep) -> Result<()> {
    let model = RemoteModel {
        hub: step.hub.clone(),
        repo: step.repo.clone(),
        commit: step.commit.clone(),
        endpoint: step.endpoint.clone(),
        files: step
            .files
            .iter()
            .map(|f| RepoFile {
                path: f.path.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
                url: f.url.clone(),
            })
            .collect(),
    };
    let token = step
        .token_env
        .as_deref()
        .and_then(|name| std::env::var(name).ok())
        .filter(|value| !value.trim().is_empty())
        .map(|value| Secret(value.trim().to_string()));
    let bar = Arc::new(TerminalProgress::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::unsupported(format!("cannot start the HTTP client: {e}")))?;
    runtime.block_on(download(
        &model,
        step.revision.as_deref(),
        &step.cache,
        token.as_ref(),
        &DownloadOptions::default(),
        Arc::new(move |event| bar.show(event)),
    ))?;
    Ok(())
}
