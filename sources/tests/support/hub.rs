//! A fake Hugging Face hub, ModelScope and CDN on loopback servers, serving fixture files as
//! if they were the whole files, with the hub's listing endpoints, pagination, LFS redirects
//! to a second host, gated repositories and injected faults.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::server::{Reply, Req, Server, critical_path, percent_decode};

/// The token the fake hub accepts.
/// Source options with every hub at `endpoint`: no tool cache, the header cache at `cache`,
/// no proxy from the environment and fast retries.
pub fn source_options(endpoint: &str, cache: &Path) -> inferkit_sources::SourceOptions {
    use inferkit_sources::{HttpOptions, HubEndpoint, SourceOptions};
    SourceOptions {
        offline: false,
        caches: Default::default(),
        header_cache: Some(cache.to_path_buf()),
        ref_max_age: Duration::from_secs(600),
        huggingface: HubEndpoint::new(endpoint),
        modelscope: HubEndpoint::new(endpoint),
        ollama: HubEndpoint::new(endpoint),
        http: HttpOptions {
            backoff: Duration::from_millis(10),
            env_proxy: false,
            ..HttpOptions::default()
        },
    }
}

pub const TOKEN: &str = "hf_test_secret_token";

/// A repository.
#[derive(Debug, Clone, Default)]
pub struct Repo {
    pub commit: String,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Every request needs the token.
    pub private: bool,
    /// Listing is public, files need the token.
    pub gated: bool,
    /// Revisions other than `main` that name the commit (`refs/pr/1`).
    pub revisions: Vec<String>,
    /// Each file's SHA-256, computed once when it is added (hashing on every request would
    /// weigh on the timings the benchmark measures).
    pub sha256: BTreeMap<String, String>,
}

impl Repo {
    pub fn new(commit: &str) -> Repo {
        Repo {
            commit: commit.into(),
            ..Repo::default()
        }
    }

    pub fn revision(mut self, name: &str) -> Repo {
        self.revisions.push(name.into());
        self
    }

    fn knows(&self, revision: &str) -> bool {
        revision == "main"
            || revision == self.commit
            || self.revisions.iter().any(|r| r == revision)
    }

    pub fn file(mut self, path: &str, bytes: Vec<u8>) -> Repo {
        self.sha256.insert(path.into(), sha256_hex(&bytes));
        self.files.insert(path.into(), bytes);
        self
    }

    /// Every file of a fixture folder, under `prefix`.
    pub fn folder(mut self, dir: &Path, prefix: &str) -> Repo {
        for entry in std::fs::read_dir(dir).expect("fixture folder") {
            let entry = entry.expect("entry");
            if entry.path().is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                self = self.file(
                    &format!("{prefix}{name}"),
                    std::fs::read(entry.path()).expect("read"),
                );
            }
        }
        self
    }
}

/// Faults to inject, each consumed when it fires.
#[derive(Debug, Default)]
pub struct Faults {
    /// Path → (times to answer 429, Retry-After seconds).
    pub throttle: HashMap<String, (u32, u64)>,
    /// Paths whose next body is cut after this many bytes.
    pub drop_after: HashMap<String, usize>,
    /// Paths answered 503 once.
    pub unavailable: HashSet<String>,
    /// Paths whose listed SHA-256 is wrong.
    pub wrong_sha: HashSet<String>,
}

/// Hub state shared by the servers.
#[derive(Default)]
pub struct HubState {
    pub repos: Mutex<HashMap<String, Repo>>,
    pub faults: Mutex<Faults>,
    pub page_size: Mutex<usize>,
    cdn: OnceLock<String>,
}

/// The running hub (Hugging Face and ModelScope routes) and its CDN.
pub struct FakeHub {
    pub hub: Server,
    pub cdn: Server,
    pub state: Arc<HubState>,
}

pub fn fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path)
}

pub fn read_fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixture(path)).expect(path)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl FakeHub {
    pub async fn start(delay: Duration) -> FakeHub {
        let state = Arc::new(HubState::default());
        *state.page_size.lock().unwrap() = 1000;
        let s = state.clone();
        let cdn = Server::start(Arc::new(move |req: &Req| cdn_route(&s, req)), delay).await;
        state.cdn.set(cdn.url()).expect("once");
        let s = state.clone();
        let hub = Server::start(Arc::new(move |req: &Req| hub_route(&s, req)), delay).await;
        FakeHub { hub, cdn, state }
    }

    pub fn add(&self, name: &str, repo: Repo) {
        self.state.repos.lock().unwrap().insert(name.into(), repo);
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.state.faults.lock().unwrap()
    }

    pub fn set_page_size(&self, size: usize) {
        *self.state.page_size.lock().unwrap() = size;
    }

    pub fn requests(&self) -> u64 {
        self.hub.requests() + self.cdn.requests()
    }

    pub fn body_bytes(&self) -> u64 {
        self.hub.body_bytes() + self.cdn.body_bytes()
    }

    /// The requests to the hub and its CDN a client waited for one after another (see
    /// [`critical_path`]).
    pub fn round_trips(&self) -> usize {
        let mut spans = self.hub.spans();
        spans.extend(self.cdn.spans());
        critical_path(&spans)
    }

    pub fn reset(&self) {
        self.hub.reset();
        self.cdn.reset();
    }
}

fn is_lfs(path: &str) -> bool {
    path.ends_with(".gguf") || path.ends_with(".safetensors") || path.ends_with(".bin")
}

/// `org/name` and the rest of a path starting with `org/name/`.
fn split_repo(path: &str) -> Option<(String, &str)> {
    let mut parts = path.splitn(3, '/');
    let org = parts.next()?;
    let name = parts.next()?;
    Some((format!("{org}/{name}"), parts.next().unwrap_or("")))
}

fn authorized(req: &Req) -> bool {
    req.header("authorization") == Some(&format!("Bearer {TOKEN}"))
}

fn hub_route(state: &HubState, req: &Req) -> Reply {
    let path = percent_decode(req.path());
    if let Some(rest) = path.strip_prefix("/api/v1/models/") {
        return modelscope_route(state, req, rest);
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        return api_route(state, req, rest);
    }
    if let Some(rest) = path.strip_prefix("/v2/") {
        return registry_route(state, rest);
    }
    let Some((repo_id, rest)) = split_repo(path.trim_start_matches('/')) else {
        return Reply::status(404);
    };
    let Some(rest) = rest.strip_prefix("resolve/") else {
        return Reply::status(404);
    };
    let Some((commit, file)) = rest.split_once('/') else {
        return Reply::status(404);
    };
    let repos = state.repos.lock().unwrap();
    let Some(repo) = repos.get(&repo_id) else {
        return Reply::status(404);
    };
    if (repo.private || repo.gated) && !authorized(req) {
        return Reply::status(401);
    }
    if commit != repo.commit && commit != "main" {
        return Reply::status(404);
    }
    if !repo.files.contains_key(file) {
        return Reply::status(404).header("X-Error-Code", "EntryNotFound");
    }
    if is_lfs(file) {
        let cdn = state.cdn.get().expect("cdn");
        return Reply::status(302).header("Location", format!("{cdn}/blob/{repo_id}/{file}"));
    }
    serve_file(state, req, repo, file)
}

fn serve_file(state: &HubState, req: &Req, repo: &Repo, file: &str) -> Reply {
    let mut faults = state.faults.lock().unwrap();
    if let Some((left, after)) = faults.throttle.get_mut(file)
        && *left > 0
    {
        *left -= 1;
        return Reply::status(429).header("Retry-After", after.to_string());
    }
    if faults.unavailable.remove(file) {
        return Reply::status(503);
    }
    let bytes = &repo.files[file];
    let mut reply = Reply::file(bytes, req, &repo.sha256[file][..16]);
    if let Some(after) = faults.drop_after.remove(file) {
        reply.drop_after = Some(after);
    }
    reply
}

fn cdn_route(state: &HubState, req: &Req) -> Reply {
    let path = percent_decode(req.path());
    let Some(rest) = path.strip_prefix("/blob/") else {
        return Reply::status(404);
    };
    let Some((repo_id, file)) = split_repo(rest) else {
        return Reply::status(404);
    };
    let repos = state.repos.lock().unwrap();
    match repos.get(&repo_id) {
        Some(repo) if repo.files.contains_key(file) => serve_file(state, req, repo, file),
        _ => Reply::status(404),
    }
}

fn api_route(state: &HubState, req: &Req, rest: &str) -> Reply {
    let Some((repo_id, rest)) = split_repo(rest) else {
        return Reply::status(404);
    };
    let repos = state.repos.lock().unwrap();
    let Some(repo) = repos.get(&repo_id) else {
        return Reply::status(401); // the hub answers 401 for unknown and private repositories
    };
    if repo.private && !authorized(req) {
        return Reply::status(401);
    }
    if let Some(revision) = rest.strip_prefix("revision/") {
        if !repo.knows(revision) {
            return Reply::status(404);
        }
        return Reply::json(format!(
            "{{\"id\":\"{repo_id}\",\"sha\":\"{}\"}}",
            repo.commit
        ));
    }
    let Some(revision) = rest.strip_prefix("tree/") else {
        return Reply::status(404);
    };
    if !repo.knows(revision) {
        return Reply::status(404);
    }
    let page_size = *state.page_size.lock().unwrap();
    let cursor: usize = req
        .query("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let wrong = &state.faults.lock().unwrap().wrong_sha;
    let entries: Vec<String> = repo
        .files
        .iter()
        .skip(cursor)
        .take(page_size)
        .map(|(path, bytes)| {
            let lfs = if is_lfs(path) {
                let sha = if wrong.contains(path) {
                    "0".repeat(64)
                } else {
                    repo.sha256[path].clone()
                };
                format!(
                    ",\"lfs\":{{\"oid\":\"{sha}\",\"size\":{},\"pointerSize\":134}}",
                    bytes.len()
                )
            } else {
                String::new()
            };
            format!(
                "{{\"type\":\"file\",\"oid\":\"x\",\"size\":{},\"path\":\"{path}\"{lfs}}}",
                bytes.len()
            )
        })
        .collect();
    let mut reply = Reply::json(format!("[{}]", entries.join(",")));
    if cursor + page_size < repo.files.len() {
        let host = req.header("host").unwrap_or("127.0.0.1");
        reply = reply.header(
            "Link",
            format!(
                "<http://{host}/api/models/{repo_id}/tree/{revision}?recursive=true&cursor={}>; rel=\"next\"",
                cursor + page_size
            ),
        );
    }
    reply
}

/// An Ollama model: its GGUF and projector blobs and a manifest naming them under `tag`.
pub fn ollama_model(tag: &str, model: Vec<u8>, projector: Option<Vec<u8>>) -> Repo {
    let mut layers = vec![layer("application/vnd.ollama.image.model", &model)];
    let mut repo = Repo::new("ollama").file(&format!("sha256-{}", sha256_hex(&model)), model);
    if let Some(projector) = projector {
        layers.push(layer("application/vnd.ollama.image.projector", &projector));
        repo = repo.file(&format!("sha256-{}", sha256_hex(&projector)), projector);
    }
    let template = b"{{ .Prompt }}".to_vec();
    layers.push(layer("application/vnd.ollama.image.template", &template));
    let config = br#"{"model_format":"gguf","model_family":"qwen2"}"#.to_vec();
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{},\"layers\":[{}]}}",
        layer("application/vnd.docker.container.image.v1+json", &config),
        layers.join(",")
    );
    repo.file(&format!("sha256-{}", sha256_hex(&template)), template)
        .file(&format!("sha256-{}", sha256_hex(&config)), config)
        .file(&format!("manifests/{tag}"), manifest.into_bytes())
}

fn layer(media_type: &str, bytes: &[u8]) -> String {
    format!(
        "{{\"mediaType\":\"{media_type}\",\"digest\":\"sha256:{}\",\"size\":{}}}",
        sha256_hex(bytes),
        bytes.len()
    )
}

/// `/v2/NAMESPACE/NAME/manifests/TAG` and `/v2/NAMESPACE/NAME/blobs/DIGEST` (redirected to
/// the CDN, as the Ollama registry does).
fn registry_route(state: &HubState, rest: &str) -> Reply {
    let Some((repo_id, rest)) = split_repo(rest) else {
        return Reply::status(404);
    };
    let repos = state.repos.lock().unwrap();
    let Some(repo) = repos.get(&repo_id) else {
        return Reply::status(404);
    };
    if let Some(tag) = rest.strip_prefix("manifests/") {
        return match repo.files.get(&format!("manifests/{tag}")) {
            Some(manifest) => Reply::json(String::from_utf8_lossy(manifest).into_owned()),
            None => Reply::status(404),
        };
    }
    match rest.strip_prefix("blobs/sha256:") {
        Some(hex) if repo.files.contains_key(&format!("sha256-{hex}")) => {
            let cdn = state.cdn.get().expect("cdn");
            Reply::status(307).header("Location", format!("{cdn}/blob/{repo_id}/sha256-{hex}"))
        }
        _ => Reply::status(404),
    }
}

fn modelscope_route(state: &HubState, req: &Req, rest: &str) -> Reply {
    let Some((repo_id, rest)) = split_repo(rest) else {
        return Reply::status(404);
    };
    let repos = state.repos.lock().unwrap();
    let Some(repo) = repos.get(&repo_id) else {
        return Reply::json(r#"{"Code":10010205001,"Message":"model not found","Success":false}"#);
    };
    match rest {
        "repo/files" => {
            let files: Vec<String> = repo
                .files
                .iter()
                .map(|(path, bytes)| {
                    let name = path.rsplit('/').next().unwrap_or(path);
                    format!(
                        "{{\"Name\":\"{name}\",\"Path\":\"{path}\",\"Type\":\"blob\",\"Size\":{},\"Sha256\":\"{}\",\"Revision\":\"{}\"}}",
                        bytes.len(),
                        repo.sha256[path],
                        repo.commit
                    )
                })
                .collect();
            Reply::json(format!(
                "{{\"Code\":200,\"Data\":{{\"Files\":[{}]}},\"Success\":true}}",
                files.join(",")
            ))
        }
        "repo" => {
            let file = req.query("FilePath").unwrap_or_default();
            if !repo.files.contains_key(&file) {
                return Reply::status(404);
            }
            serve_file(state, req, repo, &file)
        }
        _ => Reply::status(404),
    }
}
