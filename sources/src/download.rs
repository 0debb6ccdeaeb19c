//! The download step: a hub model's files into the Hugging Face cache layout, so that other
//! tools (and the next download) share them.
//!
//! - Layout: `models--ORG--NAME/blobs/ID`, `snapshots/COMMIT/PATH` as relative links to the
//!   blob, `refs/REVISION` naming the commit; `ID` is the SHA-256 for LFS files and the ETag
//!   otherwise, as `huggingface_hub` names them.
//! - Resumable: a blob grows as `ID.incomplete` (the name `huggingface_hub` uses too) and a
//!   later run continues with `Range` from where it stopped; a file downloaded over several
//!   connections keeps each part's progress in `ID.incomplete.json`.
//! - Several connections for large files ([`DownloadOptions::connections`] ranges at once).
//! - LFS files are verified against the hub's SHA-256 before they enter the cache; a mismatch
//!   removes the download and fails naming the file.
//! - Progress: [`Progress`] events to a callback; [`TerminalProgress`] draws them as a bar
//!   (bytes, rate, time left) on a terminal.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{SourceError, SourceErrorKind};
use crate::http::hub::file_url;
use crate::http::{Http, HttpOptions, Target};
use crate::listing::RepoFile;
use crate::local_cache::hf_repo_folder;
use crate::options::{HubEndpoint, Secret};
use crate::resolve::{HubKind, RemoteModel};

/// How to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadOptions {
    /// Connections per large file.
    pub connections: usize,
    /// Files at least this large are fetched over several connections.
    pub parallel_from: u64,
    /// Files downloaded at once.
    pub files_at_once: usize,
    /// Network settings.
    pub http: HttpOptions,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            connections: 4,
            parallel_from: 64 << 20,
            files_at_once: 4,
            http: HttpOptions::default(),
        }
    }
}

/// Something that happened during a download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// A file starts (or resumes: `done` bytes were already there).
    Started {
        /// Path in the repository.
        file: String,
        /// Its size.
        size: u64,
        /// Bytes already downloaded by an earlier run.
        done: u64,
    },
    /// More bytes of a file arrived.
    Advanced {
        /// Path in the repository.
        file: String,
        /// Bytes of it downloaded so far.
        done: u64,
        /// Its size.
        size: u64,
    },
    /// A file is complete (and verified when the hub lists its SHA-256).
    Finished {
        /// Path in the repository.
        file: String,
    },
    /// A file was already in the cache.
    Cached {
        /// Path in the repository.
        file: String,
    },
}

/// Receives progress events (from several tasks at once).
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Downloads `model` into the Hugging Face cache at `hub_cache` and returns the snapshot
/// folder (`models--ORG--NAME/snapshots/COMMIT`). `revision`, when given, is recorded in
/// `refs/`. Files already complete are not fetched again.
pub async fn download(
    model: &RemoteModel,
    revision: Option<&str>,
    hub_cache: &Path,
    token: Option<&Secret>,
    options: &DownloadOptions,
    progress: ProgressSink,
) -> Result<PathBuf, SourceError> {
    let hub = match model.hub.as_str() {
        "ms" => HubKind::ModelScope,
        _ => HubKind::HuggingFace,
    };
    let label = format!("{}://{}@{}", hub.scheme(), model.repo, model.commit);
    let folder = hub_cache.join(hf_repo_folder(&model.repo));
    let snapshot = folder.join("snapshots").join(&model.commit);
    let endpoint = HubEndpoint {
        url: model.endpoint.clone(),
        token_var: None,
        token: token.cloned(),
    };
    let http = Http::new(options.http.clone())?;
    let permits = Arc::new(tokio::sync::Semaphore::new(options.files_at_once.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for file in &model.files {
        let job = FileJob {
            http: http.clone(),
            url: file_url(hub, &endpoint, &model.repo, &model.commit, &file.path),
            token: endpoint.token.clone(),
            file: file.clone(),
            blobs: folder.join("blobs"),
            link: snapshot.join(&file.path),
            target: Target::new(&label, Some(&file.path)),
            options: options.clone(),
            progress: progress.clone(),
        };
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            job.run().await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| SourceError::new(SourceErrorKind::Io, &label, e.to_string()))??;
    }
    if let Some(revision) = revision.filter(|r| *r != model.commit) {
        let refs = folder.join("refs").join(revision);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(refs.parent().unwrap_or(&folder))?;
            std::fs::write(&refs, &model.commit)
        };
        write().map_err(|e| io_error(&label, &refs, e))?;
    }
    Ok(snapshot)
}

fn io_error(label: &str, path: &Path, err: std::io::Error) -> SourceError {
    SourceError::new(
        SourceErrorKind::Io,
        label,
        format!("{}: {err}", path.display()),
    )
}

/// One file's download.
struct FileJob {
    http: Http,
    url: String,
    token: Option<Secret>,
    file: RepoFile,
    blobs: PathBuf,
    link: PathBuf,
    target: Target,
    options: DownloadOptions,
    progress: ProgressSink,
}

/// Progress of the parts of a download over several connections (`ID.incomplete.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Parts {
    size: u64,
    /// `(start, end, done)`: bytes `start..end`, of which `done` are written.
    parts: Vec<(u64, u64, u64)>,
}

impl FileJob {
    async fn run(self) -> Result<(), SourceError> {
        if std::fs::symlink_metadata(&self.link).is_ok()
            && std::fs::metadata(&self.link).is_ok_and(|m| m.len() == self.file.size)
        {
            (self.progress)(&Progress::Cached {
                file: self.file.path.clone(),
            });
            return Ok(());
        }
        let blob_id = match &self.file.sha256 {
            Some(sha) => sha.clone(),
            None => self.small_file_id().await?,
        };
        let blob = self.blobs.join(&blob_id);
        if !std::fs::metadata(&blob).is_ok_and(|m| m.len() == self.file.size) {
            self.fetch_blob(&blob).await?;
        } else {
            (self.progress)(&Progress::Cached {
                file: self.file.path.clone(),
            });
        }
        self.link_snapshot(&blob_id)
    }

    /// A file without an LFS SHA-256 (a small text file): its blob is named by its content's
    /// SHA-256, fetched whole.
    async fn small_file_id(&self) -> Result<String, SourceError> {
        let request =
            crate::http::Request::get(&self.url, self.token.as_ref().map(|t| t.0.as_str()));
        let bytes = self
            .http
            .body(&request, &self.target, self.file.size)
            .await?
            .bytes;
        let id = hex(&Sha256::digest(&bytes));
        let blob = self.blobs.join(&id);
        self.write_new(&blob, &bytes)?;
        Ok(id)
    }

    fn write_new(&self, blob: &Path, bytes: &[u8]) -> Result<(), SourceError> {
        let fail = |e| io_error(&self.target.reference, blob, e);
        std::fs::create_dir_all(&self.blobs).map_err(fail)?;
        let tmp = blob.with_extension("incomplete");
        std::fs::write(&tmp, bytes).map_err(fail)?;
        std::fs::rename(&tmp, blob).map_err(fail)
    }

    async fn fetch_blob(&self, blob: &Path) -> Result<(), SourceError> {
        let fail = |e| io_error(&self.target.reference, blob, e);
        std::fs::create_dir_all(&self.blobs).map_err(fail)?;
        let partial = PathBuf::from(format!("{}.incomplete", blob.display()));
        let sidecar = PathBuf::from(format!("{}.incomplete.json", blob.display()));
        let parts = self.parts(&partial, &sidecar);
        let done: u64 = parts.parts.iter().map(|p| p.2).sum();
        (self.progress)(&Progress::Started {
            file: self.file.path.clone(),
            size: self.file.size,
            done,
        });
        {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&partial)
                .map_err(fail)?;
            file.set_len(self.file.size).map_err(fail)?;
        }
        let state = Arc::new(Mutex::new(PartState {
            parts,
            last_saved: Instant::now(),
            sidecar: sidecar.clone(),
        }));
        let mut tasks = tokio::task::JoinSet::new();
        let count = state.lock().map(|s| s.parts.parts.len()).unwrap_or(0);
        for index in 0..count {
            let part = PartJob {
                http: self.http.clone(),
                url: self.url.clone(),
                token: self.token.clone(),
                target: self.target.clone(),
                partial: partial.clone(),
                index,
                state: state.clone(),
                progress: self.progress.clone(),
                file: self.file.path.clone(),
            };
            tasks.spawn(part.run());
        }
        let mut failure = None;
        while let Some(done) = tasks.join_next().await {
            let result = done
                .map_err(|e| self.target.error(SourceErrorKind::Io, e.to_string()))
                .and_then(|r| r);
            if let Err(err) = result {
                failure.get_or_insert(err);
            }
        }
        if let Ok(state) = state.lock() {
            state.save();
        }
        if let Some(err) = failure {
            return Err(err);
        }
        self.verify(&partial)?;
        std::fs::rename(&partial, blob).map_err(fail)?;
        let _ = std::fs::remove_file(&sidecar);
        (self.progress)(&Progress::Finished {
            file: self.file.path.clone(),
        });
        Ok(())
    }

    /// The parts still to fetch: from the sidecar of an interrupted download, else one part
    /// continuing a single-connection partial file, split across connections when large.
    fn parts(&self, partial: &Path, sidecar: &Path) -> Parts {
        let size = self.file.size;
        if let Some(parts) = std::fs::read(sidecar)
            .ok()
            .and_then(|b| serde_json::from_slice::<Parts>(&b).ok())
            .filter(|p| p.size == size)
        {
            return parts;
        }
        let have = std::fs::metadata(partial).map_or(0, |m| m.len()).min(size);
        let connections = if size >= self.options.parallel_from {
            self.options.connections.max(1) as u64
        } else {
            1
        };
        let rest = size - have;
        let step = rest.div_ceil(connections).max(1);
        let mut parts = vec![(0, have, have)];
        let mut start = have;
        while start < size {
            let end = (start + step).min(size);
            parts.push((start, end, 0));
            start = end;
        }
        Parts { size, parts }
    }

    fn verify(&self, partial: &Path) -> Result<(), SourceError> {
        let Some(expected) = &self.file.sha256 else {
            return Ok(());
        };
        let fail = |e| io_error(&self.target.reference, partial, e);
        let mut file = std::fs::File::open(partial).map_err(fail)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(fail)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = hex(&hasher.finalize());
        if actual.eq_ignore_ascii_case(expected) {
            return Ok(());
        }
        let _ = std::fs::remove_file(partial);
        let _ = std::fs::remove_file(format!("{}.json", partial.display()));
        Err(self.target.error(
            SourceErrorKind::Integrity,
            format!("SHA-256 is {actual}, the hub lists {expected}; the download was removed"),
        ))
    }

    /// `snapshots/COMMIT/PATH` → `../../blobs/ID` (relative, as huggingface_hub links).
    fn link_snapshot(&self, blob_id: &str) -> Result<(), SourceError> {
        let fail = |e| io_error(&self.target.reference, &self.link, e);
        let parent = self.link.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(fail)?;
        let depth = self.file.path.matches('/').count() + 2;
        let mut relative = PathBuf::new();
        for _ in 0..depth {
            relative.push("..");
        }
        relative.push("blobs");
        relative.push(blob_id);
        let _ = std::fs::remove_file(&self.link);
        link(&relative, &self.link).map_err(fail)
    }
}

#[cfg(unix)]
fn link(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Without symbolic links, the snapshot holds a copy (as huggingface_hub does on Windows
/// without developer mode).
#[cfg(not(unix))]
fn link(target: &Path, link: &Path) -> std::io::Result<()> {
    let source = link.parent().unwrap_or(Path::new(".")).join(target);
    std::fs::copy(source, link).map(|_| ())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct PartState {
    parts: Parts,
    last_saved: Instant,
    sidecar: PathBuf,
}

impl PartState {
    fn save(&self) {
        if let Ok(text) = serde_json::to_vec(&self.parts) {
            let _ = std::fs::write(&self.sidecar, text);
        }
    }

    fn done(&self) -> u64 {
        self.parts.parts.iter().map(|p| p.2).sum()
    }
}

/// One connection writing one range of the file.
struct PartJob {
    http: Http,
    url: String,
    token: Option<Secret>,
    target: Target,
    partial: PathBuf,
    index: usize,
    state: Arc<Mutex<PartState>>,
    progress: ProgressSink,
    file: String,
}

/// How often the parts' progress is saved.
const SAVE_EVERY: Duration = Duration::from_secs(2);

impl PartJob {
    async fn run(self) -> Result<(), SourceError> {
        let fail = |e| io_error(&self.target.reference, &self.partial, e);
        let mut attempt = 0;
        let mut stalled = 0;
        loop {
            let (start, end, done) = self.part();
            if start + done >= end {
                return Ok(());
            }
            // A server that keeps ending the body early without an error gets the same
            // number of tries as one that drops the connection.
            if stalled > self.http.options().retries {
                return Err(self.target.error(
                    SourceErrorKind::Network,
                    format!("the body keeps ending at byte {} of {end}", start + done),
                ));
            }
            let mut request =
                crate::http::Request::get(&self.url, self.token.as_ref().map(|t| t.0.as_str()))
                    .range(start + done, Some(end));
            request.bounded = false;
            let mut response = self.http.send(&request, &self.target).await?;
            if response.status() != reqwest::StatusCode::PARTIAL_CONTENT && start + done > 0 {
                return Err(self.target.error(
                    SourceErrorKind::Network,
                    "the server ignored the Range header (answered 200, not 206)",
                ));
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.partial)
                .map_err(fail)?;
            file.seek(SeekFrom::Start(start + done)).map_err(fail)?;
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        let (_, end, done) = self.part();
                        let room = (end - start - done).min(chunk.len() as u64) as usize;
                        file.write_all(&chunk[..room]).map_err(fail)?;
                        self.http.count_bytes(room);
                        self.advance(room as u64);
                        if room < chunk.len() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(err)
                        if attempt < self.http.options().retries
                            && crate::http::is_transient(&err) =>
                    {
                        attempt += 1;
                        tokio::time::sleep(self.http.backoff(attempt)).await;
                        break;
                    }
                    Err(err) => {
                        return Err(self
                            .target
                            .error(SourceErrorKind::Network, crate::http::describe(&err)));
                    }
                }
            }
            file.flush().map_err(fail)?;
            if self.part().2 == done {
                stalled += 1;
            }
        }
    }

    fn part(&self) -> (u64, u64, u64) {
        self.state
            .lock()
            .map(|s| s.parts.parts[self.index])
            .unwrap_or((0, 0, 0))
    }

    fn advance(&self, by: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.parts.parts[self.index].2 += by;
        let done = state.done();
        let size = state.parts.size;
        if state.last_saved.elapsed() >= SAVE_EVERY {
            state.save();
            state.last_saved = Instant::now();
        }
        drop(state);
        (self.progress)(&Progress::Advanced {
            file: self.file.clone(),
            done,
            size,
        });
    }
}

/// Draws progress on standard error as one updating line per file: bytes, rate and time
/// left. Does nothing when standard error is not a terminal.
#[derive(Debug)]
pub struct TerminalProgress {
    started: Instant,
    last_draw: Mutex<Instant>,
    terminal: bool,
}

impl TerminalProgress {
    /// A bar on standard error, when it is a terminal.
    pub fn new() -> Self {
        use std::io::IsTerminal;
        TerminalProgress {
            started: Instant::now(),
            last_draw: Mutex::new(Instant::now() - Duration::from_secs(1)),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Shows `event`.
    pub fn show(&self, event: &Progress) {
        if !self.terminal {
            return;
        }
        let line = match event {
            Progress::Advanced { file, done, size } => {
                let Ok(mut last) = self.last_draw.lock() else {
                    return;
                };
                if last.elapsed() < Duration::from_millis(200) {
                    return;
                }
                *last = Instant::now();
                format!("\r{}", bar_line(file, *done, *size, self.started.elapsed()))
            }
            Progress::Finished { file } => format!("\r\x1b[2K{file}: done\n"),
            Progress::Cached { file } => format!("\r\x1b[2K{file}: already downloaded\n"),
            Progress::Started { .. } => return,
        };
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// `file  1.2/4.0 GiB  [#####-----]  85.3 MiB/s  ETA 0:34`.
pub fn bar_line(file: &str, done: u64, size: u64, elapsed: Duration) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let fraction = if size == 0 {
        1.0
    } else {
        done as f64 / size as f64
    };
    let filled = (fraction * 20.0).round() as usize;
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    let eta = if rate > 0.0 {
        (size.saturating_sub(done)) as f64 / rate
    } else {
        0.0
    };
    let eta = eta as u64;
    format!(
        "{file}  {:.1}/{:.1} GiB  [{}{}]  {:.1} MiB/s  ETA {}:{:02}",
        done as f64 / GIB,
        size as f64 / GIB,
        "#".repeat(filled.min(20)),
        "-".repeat(20 - filled.min(20)),
        rate / MIB,
        eta / 60,
        eta % 60
    )
}
