//! The download step: a model's files where other tools look for them, so that they (and the
//! next download) share them.
//!
//! - Layouts, by [`RemoteModel::hub`]:
//!   - `hf`, `ms`: the Hugging Face cache, `models--ORG--NAME/blobs/ID`,
//!     `snapshots/COMMIT/PATH` as relative links to the blob, `refs/REVISION` naming the
//!     commit; `ID` is the SHA-256 for LFS files and the ETag otherwise, as `huggingface_hub`
//!     names them.
//!   - `ollama`: Ollama's store, `blobs/sha256-HEX` for every blob of the manifest, then
//!     `manifests/HOST/NAMESPACE/NAME/TAG` (the registry's manifest, checked against the
//!     digest the plan was made from), written last so that `ollama` never sees half a model.
//!   - `url`: inferkit's download folder, `KEY/VERSION/NAME` with `KEY` the URL's file name
//!     and a hash of the whole URL and `VERSION` a digest of the files' sizes and ETags (so a
//!     file changed at the same address goes to a new folder).
//! - Resumable: a file grows as `NAME.incomplete` (the name `huggingface_hub` uses too) and a
//!   later run continues with `Range` from where it stopped; a file downloaded over several
//!   connections keeps each part's progress in `NAME.incomplete.json`.
//! - Several connections for large files ([`DownloadOptions::connections`] ranges at once).
//! - Files with a known SHA-256 (LFS files, ModelScope files, Ollama blobs) are verified
//!   before they enter the cache; a mismatch removes the download and fails naming the file.
//! - Progress: [`Progress`] events to a callback; [`TerminalProgress`] draws them as a bar
//!   (bytes, rate, time left) on a terminal.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inferkit_formats::hub::{self, Hub};
use inferkit_formats::ollama;
use inferkit_formats::source::url_host;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{SourceError, SourceErrorKind};
use crate::http::registry::{blob_url, manifest_bytes};
use crate::http::{Http, HttpOptions, Target};
use crate::listing::RepoFile;
use crate::options::Secret;
use crate::resolve::{RemoteModel, url_key};

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

/// The folder the files of `model` are in once [`download`] put them under `cache`: the
/// snapshot (`models--ORG--NAME/snapshots/COMMIT`) of a hub model, Ollama's `blobs`, a URL
/// model's `KEY/VERSION`.
pub fn files_folder(model: &RemoteModel, cache: &Path) -> PathBuf {
    match model.hub.as_str() {
        "ollama" => ollama::blobs_folder(cache),
        "url" => cache.join(url_key(&model.repo)).join(&model.commit),
        _ => hub::snapshot_folder(&hub::repo_folder(cache, &model.repo), &model.commit),
    }
}

/// Downloads `model` under `cache` (a Hugging Face cache, Ollama's store or inferkit's
/// download folder, by [`RemoteModel::hub`]) and returns [`files_folder`]. `revision`, when
/// given, is recorded as the Hugging Face cache's `refs/REVISION` or, for Ollama, names the
/// tag. Files already complete are not fetched again.
pub async fn download(
    model: &RemoteModel,
    revision: Option<&str>,
    cache: &Path,
    token: Option<&Secret>,
    options: &DownloadOptions,
    progress: ProgressSink,
) -> Result<PathBuf, SourceError> {
    let layout = Layout::of(model, revision, cache)?;
    let label = layout.label(model);
    let folder = files_folder(model, cache);
    let http = Http::new(options.http.clone())?;
    // Ollama's manifest first: a tag that moved since planning fails before any download.
    let manifest = match layout {
        Layout::Ollama { tag } => Some(ollama_manifest(model, tag, &http, token, &label).await?),
        _ => None,
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(options.files_at_once.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for file in &model.files {
        let job = FileJob {
            http: http.clone(),
            url: layout.file_url(model, file, &label)?,
            token: layout.token(token),
            file: file.clone(),
            place: layout.place(cache, &folder, &file.path),
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
    layout.finish(model, cache, manifest.as_deref(), &label)?;
    Ok(folder)
}

/// The registry's manifest of `model` at `tag`, when its digest is still the one planned.
async fn ollama_manifest(
    model: &RemoteModel,
    tag: &str,
    http: &Http,
    token: Option<&Secret>,
    label: &str,
) -> Result<Vec<u8>, SourceError> {
    let target = Target::new(label, Some("manifest"));
    let token = token.map(|t| t.0.as_str());
    let registry = &model.endpoint;
    let (bytes, digest) = manifest_bytes(http, registry, &model.repo, tag, token, &target).await?;
    if digest != model.commit {
        return Err(target.error(
            SourceErrorKind::Integrity,
            format!(
                "the registry's manifest is now sha256:{digest}, the plan was made from \
                 sha256:{}; plan again",
                model.commit
            ),
        ));
    }
    Ok(bytes)
}

/// How a hub's files are named, addressed and stored.
enum Layout<'a> {
    Hub { hub: Hub, revision: Option<&'a str> },
    Ollama { tag: &'a str },
    Url,
}

impl<'a> Layout<'a> {
    fn of(
        model: &RemoteModel,
        revision: Option<&'a str>,
        cache: &Path,
    ) -> Result<Layout<'a>, SourceError> {
        if let Some(hub) = Hub::from_scheme(&model.hub) {
            return Ok(Layout::Hub { hub, revision });
        }
        match model.hub.as_str() {
            "ollama" => Ok(Layout::Ollama {
                tag: revision.unwrap_or("latest"),
            }),
            "url" => Ok(Layout::Url),
            other => Err(SourceError::new(
                SourceErrorKind::Io,
                cache.display().to_string(),
                format!("no download layout for models of `{other}`"),
            )),
        }
    }

    fn label(&self, model: &RemoteModel) -> String {
        match self {
            Layout::Hub { hub, .. } => {
                format!("{}://{}@{}", hub.scheme(), model.repo, model.commit)
            }
            Layout::Ollama { tag } => format!("ollama://{}:{tag}", model.repo),
            Layout::Url => model.repo.clone(),
        }
    }

    fn file_url(
        &self,
        model: &RemoteModel,
        file: &RepoFile,
        label: &str,
    ) -> Result<String, SourceError> {
        match self {
            Layout::Hub { hub, .. } => {
                Ok(hub.file_url(&model.endpoint, &model.repo, &model.commit, &file.path))
            }
            Layout::Ollama { .. } => Ok(blob_url(&model.endpoint, &model.repo, &file.path)),
            Layout::Url => file.url.clone().ok_or_else(|| {
                SourceError::new(SourceErrorKind::Io, label, "the file has no address")
                    .in_file(&file.path)
            }),
        }
    }

    /// A URL model's files are no hub's: no token goes to them.
    fn token(&self, token: Option<&Secret>) -> Option<Secret> {
        match self {
            Layout::Url => None,
            _ => token.cloned(),
        }
    }

    fn place(&self, cache: &Path, folder: &Path, path: &str) -> Place {
        match self {
            Layout::Hub { .. } => Place::HubCache {
                blobs: hub::blobs_folder(hub::snapshot_repo_folder(folder).unwrap_or(cache)),
                link: folder.join(path),
            },
            Layout::Ollama { .. } | Layout::Url => Place::File(folder.join(path)),
        }
    }

    /// What follows the files: the Hugging Face ref, Ollama's manifest.
    fn finish(
        &self,
        model: &RemoteModel,
        cache: &Path,
        manifest: Option<&[u8]>,
        label: &str,
    ) -> Result<(), SourceError> {
        match (self, manifest) {
            (
                Layout::Hub {
                    revision: Some(revision),
                    ..
                },
                _,
            ) if *revision != model.commit => {
                let refs = hub::ref_path(&hub::repo_folder(cache, &model.repo), revision);
                write_file(&refs, model.commit.as_bytes(), label)
            }
            (Layout::Ollama { tag }, Some(manifest)) => {
                let host = url_host(&model.endpoint);
                let path = ollama::manifest_path(cache, host, &model.repo, tag);
                write_file(&path, manifest, label)
            }
            _ => Ok(()),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file, creating its folder.
fn write_file(path: &Path, bytes: &[u8], label: &str) -> Result<(), SourceError> {
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = PathBuf::from(format!("{}.incomplete", path.display()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| io_error(label, path, e))
}

fn io_error(label: &str, path: &Path, err: std::io::Error) -> SourceError {
    SourceError::new(
        SourceErrorKind::Io,
        label,
        format!("{}: {err}", path.display()),
    )
}

/// Where one file goes.
enum Place {
    /// Into a Hugging Face cache: a blob in `blobs`, linked from `link` in the snapshot.
    HubCache { blobs: PathBuf, link: PathBuf },
    /// To this path.
    File(PathBuf),
}

/// One file's download.
struct FileJob {
    http: Http,
    url: String,
    token: Option<Secret>,
    file: RepoFile,
    place: Place,
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
        let (blobs, link) = match &self.place {
            Place::File(path) => return self.fetch_unless_there(path).await,
            Place::HubCache { blobs, link } => (blobs, link),
        };
        if std::fs::symlink_metadata(link).is_ok() && self.is_complete(link) {
            self.cached();
            return Ok(());
        }
        let blob_id = match &self.file.sha256 {
            Some(sha) => sha.clone(),
            None => self.small_file_id(blobs).await?,
        };
        self.fetch_unless_there(&blobs.join(&blob_id)).await?;
        self.link_snapshot(link, &blob_id)
    }

    fn is_complete(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.len() == self.file.size)
    }

    fn cached(&self) {
        (self.progress)(&Progress::Cached {
            file: self.file.path.clone(),
        });
    }

    async fn fetch_unless_there(&self, path: &Path) -> Result<(), SourceError> {
        if !self.is_complete(path) {
            return self.fetch_blob(path).await;
        }
        self.cached();
        Ok(())
    }

    /// A file without an LFS SHA-256 (a small text file): its blob is named by its content's
    /// SHA-256, fetched whole.
    async fn small_file_id(&self, blobs: &Path) -> Result<String, SourceError> {
        let request =
            crate::http::Request::get(&self.url, self.token.as_ref().map(|t| t.0.as_str()));
        let bytes = self
            .http
            .body(&request, &self.target, self.file.size)
            .await?
            .bytes;
        let id = hex(&Sha256::digest(&bytes));
        write_file(&blobs.join(&id), &bytes, &self.target.reference)?;
        Ok(id)
    }

    async fn fetch_blob(&self, blob: &Path) -> Result<(), SourceError> {
        let fail = |e| io_error(&self.target.reference, blob, e);
        std::fs::create_dir_all(blob.parent().unwrap_or(Path::new("."))).map_err(fail)?;
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
    fn link_snapshot(&self, link: &Path, blob_id: &str) -> Result<(), SourceError> {
        let fail = |e| io_error(&self.target.reference, link, e);
        let parent = link.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(fail)?;
        let relative = hub::blob_link(&self.file.path, blob_id);
        let _ = std::fs::remove_file(link);
        symlink(Path::new(&relative), link).map_err(fail)
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Without symbolic links, the snapshot holds a copy (as huggingface_hub does on Windows
/// without developer mode).
#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
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
