//! From a [`ModelRef`] to [`ModelFacts`]: local paths and caches here (no network), the hubs in
//! [`crate::http`].

use std::path::{Path, PathBuf};

use inferkit_formats::hub::Hub;
use inferkit_formats::source::url_host;
use inferkit_formats::{DirectoryFacts, ModelFacts, ModelSource};
use serde::{Deserialize, Serialize};

use crate::error::{SourceError, SourceErrorKind};
use crate::header_cache::{HeaderCache, RepoCache};
use crate::listing::{RepoFile, RepoListing, Selection, select};
use crate::local_cache::{
    LocalSnapshot, OllamaLayer, OllamaModel, hf_snapshot, is_commit_hash, modelscope_snapshot,
    ollama_local,
};
use crate::model_files::{Needed, facts_from_files, needed_files};
use crate::options::SourceOptions;
use crate::reference::{FileChoice, ModelRef, OllamaRef, RepoRef};

/// A model found, with its facts and where they came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolved {
    /// What the files say, exactly as for the same files on a local disk (only `source`
    /// and `path` differ: a model not on this machine has no path).
    pub facts: ModelFacts,
    /// Where the facts were read.
    pub origin: Origin,
    /// For a hub model: the repository, commit and files a download needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteModel>,
}

/// Where a model's facts were read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// A local path given by the user.
    Local,
    /// A download tool's cache on this machine.
    ToolCache {
        /// The file or folder there.
        path: PathBuf,
    },
    /// The fetched-header cache (no network request made).
    HeaderCache,
    /// The network.
    Network,
}

/// A model's files where it lives: what a download step fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteModel {
    /// `hf` (Hugging Face), `ms` (ModelScope), `ollama` (an Ollama registry) or `url`.
    pub hub: String,
    /// `org/name`; for Ollama `namespace/name` (`library/qwen2.5`); for a URL, the URL.
    pub repo: String,
    /// The resolved commit; for Ollama the manifest's SHA-256; for a URL a digest of the
    /// files' sizes and ETags.
    pub commit: String,
    /// The hub's base URL (the registry's for Ollama; unused for a URL).
    pub endpoint: String,
    /// The files making up the model (for GGUF: the shards and projectors; for a folder:
    /// every file in it; for Ollama every blob of the manifest, by its name in Ollama's
    /// store, `sha256-HEX`; for a URL the shards, each with its address).
    pub files: Vec<RepoFile>,
}

impl RemoteModel {
    /// The file of the model that a path of its listing names: the same path, except for
    /// Ollama, whose blobs are listed as `[mmproj-]sha256-HEX.gguf` (so that they are read
    /// as GGUF files) and stored as `sha256-HEX`.
    pub fn file(&self, listed: &str) -> Option<&RepoFile> {
        let name = match self.hub.as_str() {
            "ollama" => ollama_blob_name(listed),
            _ => listed,
        };
        self.files.iter().find(|f| f.path == name)
    }
}

/// The name in Ollama's store (`sha256-HEX`) of a blob that [`ollama_listing`] lists.
pub(crate) fn ollama_blob_name(listed: &str) -> &str {
    let name = listed.strip_prefix("mmproj-").unwrap_or(listed);
    name.strip_suffix(".gguf").unwrap_or(name)
}

/// Resolves `reference` from local paths and caches only: `Ok(None)` when the network would
/// be needed (in offline mode, an error naming what is missing instead).
pub fn resolve_cached(
    reference: &ModelRef,
    options: &SourceOptions,
) -> Result<Option<Resolved>, SourceError> {
    match reference {
        ModelRef::Local { path } => resolve_local(path, reference).map(Some),
        ModelRef::HuggingFace(repo) => repo_cached(Hub::HuggingFace, repo, reference, options),
        ModelRef::ModelScope(repo) => repo_cached(Hub::ModelScope, repo, reference, options),
        ModelRef::Ollama(model) => ollama_cached(model, reference, options),
        ModelRef::Url { url } => url_cached(url, options),
    }
}

fn resolve_local(path: &Path, reference: &ModelRef) -> Result<Resolved, SourceError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let facts = ModelFacts::read(&ModelSource::LocalPath { path }).map_err(|e| {
        SourceError::new(
            SourceErrorKind::NotAModel,
            reference.to_string(),
            e.to_string(),
        )
    })?;
    Ok(Resolved {
        facts,
        origin: Origin::Local,
        remote: None,
    })
}

/// The model source a hub reference yields in the facts, the files read at `commit`.
pub(crate) fn hub_source(
    hub: Hub,
    repo: &RepoRef,
    commit: &str,
    selection: &Selection,
) -> ModelSource {
    let file = match selection {
        Selection::Gguf { shards, .. } => Some(shards[0].clone()),
        Selection::Folder { dir } if dir.is_empty() => None,
        Selection::Folder { dir } => Some(dir.clone()),
    };
    match hub {
        Hub::HuggingFace => ModelSource::Huggingface {
            repo_id: repo.repo.clone(),
            filename: file,
            revision: served_revision(hub, repo, commit),
        },
        Hub::ModelScope => ModelSource::ModelScope {
            model_id: repo.repo.clone(),
            file_path: file,
            revision: served_revision(hub, repo, commit),
        },
    }
}

/// The revision a backend that downloads the repository itself is given: none for the
/// default branch; on Hugging Face the commit a named revision resolved to (a branch may
/// move after planning); on ModelScope, which names no commit, the revision as named.
fn served_revision(hub: Hub, repo: &RepoRef, commit: &str) -> Option<String> {
    let named = repo.revision.as_ref()?;
    Some(match hub {
        Hub::HuggingFace => commit.to_string(),
        Hub::ModelScope => named.clone(),
    })
}

pub(crate) fn repo_cache(hub: Hub, repo: &RepoRef, options: &SourceOptions) -> Option<RepoCache> {
    let root = options.header_cache.as_ref()?;
    Some(HeaderCache::new(root).repo(hub.scheme(), options.hub_endpoint(hub).host(), &repo.repo))
}

fn repo_cached(
    hub: Hub,
    repo: &RepoRef,
    reference: &ModelRef,
    options: &SourceOptions,
) -> Result<Option<Resolved>, SourceError> {
    let label = reference.to_string();
    if let Some(resolved) = tool_cache(hub, repo, options, &label)? {
        return Ok(Some(resolved));
    }
    let revision = repo.revision.as_deref().unwrap_or(hub.default_revision());
    let Some(cache) = repo_cache(hub, repo, options) else {
        return offline_miss(options, &label, None, "no header cache is configured");
    };
    let pinned = is_commit_hash(revision);
    let Some((listing, selection)) =
        from_header_cache(&cache, revision, pinned, &repo.file, options, &label)?
    else {
        return Ok(None);
    };
    let source = hub_source(hub, repo, &listing.commit, &selection);
    let mut resolved = cached_resolution(&cache, &listing, &selection, source, &label)?;
    resolved.remote = Some(remote_model(hub, repo, options, &listing, &selection));
    Ok(Some(resolved))
}

/// The listing and selection of a model whose every needed file is in the header cache:
/// `revision` resolved through the cache's refs (a `pinned` revision is its own commit).
/// `Ok(None)` when something is missing (offline: an error naming it).
pub(crate) fn from_header_cache(
    cache: &RepoCache,
    revision: &str,
    pinned: bool,
    choice: &FileChoice,
    options: &SourceOptions,
    label: &str,
) -> Result<Option<(RepoListing, Selection)>, SourceError> {
    let commit = match pinned {
        true => Some(revision.to_string()),
        false => cache
            .read_ref(revision)
            .filter(|r| options.offline || r.is_fresh(options.ref_max_age))
            .map(|r| r.commit),
    };
    let Some(listing) = commit.and_then(|commit| cache.listing(&commit)) else {
        return offline_miss(options, label, None, "the listing is in no cache").map(|_| None);
    };
    let selection = select_in(&listing, choice, label)?;
    let needed = needed_files(&listing, &selection);
    if let Some(missing) = needed
        .iter()
        .find(|n| !is_cached(cache, &listing.commit, n))
    {
        return offline_miss(
            options,
            label,
            Some(&missing.file.path),
            "not in the header cache",
        )
        .map(|_| None);
    }
    Ok(Some((listing, selection)))
}

/// The facts of a model whose files are in the header cache.
pub(crate) fn cached_resolution(
    cache: &RepoCache,
    listing: &RepoListing,
    selection: &Selection,
    source: ModelSource,
    label: &str,
) -> Result<Resolved, SourceError> {
    let facts = facts_from_files(
        &cache.files_dir(&listing.commit),
        listing,
        selection,
        source,
        label,
    )?;
    Ok(Resolved {
        facts,
        origin: Origin::HeaderCache,
        remote: None,
    })
}

/// An Ollama model from Ollama's own store, else from the header cache.
fn ollama_cached(
    model: &OllamaRef,
    reference: &ModelRef,
    options: &SourceOptions,
) -> Result<Option<Resolved>, SourceError> {
    let label = reference.to_string();
    let host = model.host.as_deref().unwrap_or(options.ollama.host());
    if let Some((layers, blob)) = options
        .caches
        .ollama
        .as_deref()
        .and_then(|store| ollama_local(store, model, host))
    {
        let mut facts = ModelFacts::read(&ModelSource::LocalPath { path: blob.clone() })
            .map_err(|e| SourceError::new(SourceErrorKind::NotAModel, &label, e.to_string()))?;
        let (listing, _) = ollama_listing(&layers, "");
        facts.directory = Some(directory_from_listing_names(&listing));
        facts.source = ollama_source(model);
        return Ok(Some(Resolved {
            facts,
            origin: Origin::ToolCache { path: blob },
            remote: None,
        }));
    }
    let Some(cache) = ollama_cache(model, options) else {
        return offline_miss(options, &label, None, "no header cache is configured");
    };
    let Some((listing, selection)) = from_header_cache(
        &cache,
        &model.tag,
        false,
        &FileChoice::Auto,
        options,
        &label,
    )?
    else {
        return Ok(None);
    };
    let mut resolved =
        cached_resolution(&cache, &listing, &selection, ollama_source(model), &label)?;
    resolved.remote = Some(ollama_remote(model, options, &listing));
    Ok(Some(resolved))
}

/// A URL's model from the header cache.
fn url_cached(url: &str, options: &SourceOptions) -> Result<Option<Resolved>, SourceError> {
    let Some(cache) = url_cache(url, options) else {
        return offline_miss(options, url, None, "no header cache is configured");
    };
    let Some((listing, selection)) =
        from_header_cache(&cache, URL_REVISION, false, &FileChoice::Auto, options, url)?
    else {
        return Ok(None);
    };
    let mut resolved = cached_resolution(&cache, &listing, &selection, url_source(url), url)?;
    resolved.remote = Some(url_remote(url, &listing));
    Ok(Some(resolved))
}

/// The ref under which a URL's version (from its ETags and sizes) is kept.
pub(crate) const URL_REVISION: &str = "url";

pub(crate) fn ollama_cache(model: &OllamaRef, options: &SourceOptions) -> Option<RepoCache> {
    let root = options.header_cache.as_ref()?;
    let host = model.host.as_deref().unwrap_or(options.ollama.host());
    Some(HeaderCache::new(root).repo("ollama", host, &model.name))
}

pub(crate) fn url_cache(url: &str, options: &SourceOptions) -> Option<RepoCache> {
    let root = options.header_cache.as_ref()?;
    let host = url_host(url);
    Some(HeaderCache::new(root).repo("url", host, &url_key(url)))
}

/// The cache key of a URL: its file name and a hash of the whole address.
pub(crate) fn url_key(url: &str) -> String {
    use sha2::Digest;
    let name = url
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or("file");
    let digest = sha2::Sha256::digest(url.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}-{hex}")
}

/// The registry's base URL for `reference`: its own host, else the configured registry.
pub(crate) fn ollama_registry(reference: &OllamaRef, options: &SourceOptions) -> String {
    match &reference.host {
        Some(host) => format!("https://{host}"),
        None => options.ollama.url.trim_end_matches('/').to_string(),
    }
}

/// An Ollama model's blobs, by their names in Ollama's store.
pub(crate) fn ollama_remote(
    model: &OllamaRef,
    options: &SourceOptions,
    listing: &RepoListing,
) -> RemoteModel {
    let mut files: Vec<RepoFile> = listing
        .files
        .iter()
        .map(|f| RepoFile {
            path: ollama_blob_name(&f.path).to_string(),
            ..f.clone()
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    RemoteModel {
        hub: "ollama".into(),
        repo: model.name.clone(),
        commit: listing.commit.clone(),
        endpoint: ollama_registry(model, options),
        files,
    }
}

/// A URL model's shards, each with its address.
pub(crate) fn url_remote(url: &str, listing: &RepoListing) -> RemoteModel {
    RemoteModel {
        hub: "url".into(),
        repo: url.into(),
        commit: listing.commit.clone(),
        endpoint: String::new(),
        files: listing.files.clone(),
    }
}

pub(crate) fn ollama_source(model: &OllamaRef) -> ModelSource {
    ModelSource::Ollama {
        model: model.to_string(),
    }
}

pub(crate) fn url_source(url: &str) -> ModelSource {
    ModelSource::Url { url: url.into() }
}

/// The listing and selection an Ollama model is read through: its blobs named as GGUF files
/// (`sha256-HEX.gguf`, projectors `mmproj-sha256-HEX.gguf`), so that [`select`] picks them
/// as for a repository.
pub(crate) fn ollama_listing(model: &OllamaModel, digest: &str) -> (RepoListing, Selection) {
    let file = |layer: &OllamaLayer, prefix: &str, suffix: &str| RepoFile {
        path: format!("{prefix}{}{suffix}", layer.blob_name()),
        size: layer.size,
        sha256: layer.sha256().map(Into::into),
        url: None,
    };
    let mut listing = RepoListing {
        commit: digest.into(),
        files: std::iter::once(file(&model.model, "", ".gguf"))
            .chain(model.projectors.iter().map(|p| file(p, "mmproj-", ".gguf")))
            .chain(model.others.iter().map(|o| file(o, "", "")))
            .collect(),
    };
    listing.sort();
    let selection = Selection::Gguf {
        shards: vec![file(&model.model, "", ".gguf").path],
        projectors: model
            .projectors
            .iter()
            .map(|p| file(p, "mmproj-", ".gguf").path)
            .collect(),
    };
    (listing, selection)
}

fn directory_from_listing_names(listing: &RepoListing) -> DirectoryFacts {
    DirectoryFacts {
        files: listing.files.iter().map(|f| f.path.clone()).collect(),
        texts: Default::default(),
        sizes: listing
            .files
            .iter()
            .map(|f| (f.path.clone(), f.size))
            .collect(),
    }
}

pub(crate) fn is_cached(cache: &RepoCache, commit: &str, needed: &Needed) -> bool {
    cache
        .file(commit, &needed.file.path)
        .is_some_and(|entry| entry.size == needed.file.size)
}

fn offline_miss(
    options: &SourceOptions,
    label: &str,
    file: Option<&str>,
    what: &str,
) -> Result<Option<Resolved>, SourceError> {
    if !options.offline {
        return Ok(None);
    }
    let err = SourceError::new(
        SourceErrorKind::NotCached,
        label,
        format!("offline: {what}"),
    );
    Err(match file {
        Some(file) => err.in_file(file),
        None => err,
    })
}

pub(crate) fn select_in(
    listing: &RepoListing,
    choice: &FileChoice,
    label: &str,
) -> Result<Selection, SourceError> {
    select(listing, choice).map_err(|e| {
        let kind = match e {
            crate::listing::SelectError::NotAModel => SourceErrorKind::NotAModel,
            _ => SourceErrorKind::NoMatchingFile,
        };
        SourceError::new(kind, label, e.to_string())
    })
}

/// The files a download of the selection fetches.
pub(crate) fn remote_model(
    hub: Hub,
    repo: &RepoRef,
    options: &SourceOptions,
    listing: &RepoListing,
    selection: &Selection,
) -> RemoteModel {
    let files = match selection {
        Selection::Gguf { shards, projectors } => shards
            .iter()
            .chain(projectors)
            .filter_map(|p| listing.file(p))
            .cloned()
            .collect(),
        Selection::Folder { dir } => listing.under(dir).cloned().collect(),
    };
    RemoteModel {
        hub: hub.scheme().into(),
        repo: repo.repo.clone(),
        commit: listing.commit.clone(),
        endpoint: options.hub_endpoint(hub).url.clone(),
        files,
    }
}

/// The model in the Hugging Face or ModelScope cache of this machine, when every file its
/// facts need is there.
fn tool_cache(
    hub: Hub,
    repo: &RepoRef,
    options: &SourceOptions,
    label: &str,
) -> Result<Option<Resolved>, SourceError> {
    let snapshot = match hub {
        Hub::HuggingFace => options
            .caches
            .huggingface
            .as_deref()
            .and_then(|c| hf_snapshot(c, repo)),
        Hub::ModelScope => options
            .caches
            .modelscope
            .as_deref()
            .and_then(|c| modelscope_snapshot(c, repo)),
    };
    let Some(LocalSnapshot { root, listing }) = snapshot else {
        return Ok(None);
    };
    let Ok(selection) = select(&listing, &repo.file) else {
        return Ok(None); // the file asked for was not downloaded
    };
    if !complete(&root, &listing, &selection) {
        return Ok(None);
    }
    let path = match &selection {
        Selection::Gguf { shards, .. } => root.join(&shards[0]),
        Selection::Folder { dir } => root.join(dir),
    };
    let mut facts = ModelFacts::read(&ModelSource::LocalPath { path: path.clone() })
        .map_err(|e| SourceError::new(SourceErrorKind::NotAModel, label, e.to_string()))?;
    facts.source = hub_source(hub, repo, &listing.commit, &selection);
    Ok(Some(Resolved {
        facts,
        origin: Origin::ToolCache { path },
        remote: None,
    }))
}

/// Whether a cached folder model has the weights its index names (a download stopped
/// halfway has the configuration files but not every shard).
fn complete(root: &Path, listing: &RepoListing, selection: &Selection) -> bool {
    let Selection::Folder { dir } = selection else {
        return true; // select() found every shard
    };
    let folder = root.join(dir);
    if !folder.join("config.json").is_file() {
        return !listing.files.is_empty();
    }
    let index = folder.join(inferkit_formats::hf::INDEX_FILE);
    let Ok(text) = std::fs::read_to_string(index) else {
        return true;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return true; // the reader will report it
    };
    value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .is_none_or(|map| {
            map.values()
                .filter_map(|v| v.as_str())
                .all(|shard| folder.join(shard).is_file())
        })
}
