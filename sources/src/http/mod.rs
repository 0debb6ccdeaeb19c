//! Reading models over HTTP: [`Resolver`] answers a [`ModelRef`] from the caches when it can
//! and from the hub otherwise, fetching only headers and small configuration files.

mod client;
pub(crate) mod header;
pub(crate) mod hub;
pub(crate) mod registry;

use std::sync::Arc;

use inferkit_formats::hub::Hub;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use crate::options::HttpOptions;
pub use client::TransferStats;
pub(crate) use client::{Http, Request, Target, describe, is_transient};
use header::{Fetched, RemoteFile};

use crate::error::{SourceError, SourceErrorKind};
use crate::header_cache::{HeaderCache, RepoCache};
use crate::listing::RepoFile;
use crate::listing::RepoListing;
use crate::model_files::{Needed, Portion, facts_from_files, needed_files};
use crate::options::SourceOptions;
use crate::reference::{FileChoice, ModelRef, OllamaRef, RepoRef};
use crate::resolve::{
    Origin, Resolved, URL_REVISION, cached_resolution, hub_source, is_cached, ollama_cache,
    ollama_listing, ollama_registry, ollama_remote, ollama_source, remote_model, repo_cache,
    resolve_cached, select_in, url_cache, url_remote, url_source,
};

/// Files fetched at once.
const CONCURRENT_FETCHES: usize = 64;

/// Finds models by reference, reading the least it can.
#[derive(Debug, Clone)]
pub struct Resolver {
    options: SourceOptions,
    http: Http,
}

impl Resolver {
    /// A resolver with these options.
    pub fn new(options: SourceOptions) -> Result<Resolver, SourceError> {
        let http = Http::new(options.http.clone())?;
        Ok(Resolver { options, http })
    }

    /// Its options.
    pub fn options(&self) -> &SourceOptions {
        &self.options
    }

    /// Requests sent and bytes received so far.
    pub fn stats(&self) -> TransferStats {
        self.http.stats()
    }

    /// The facts of the model `reference` names: from the local path, a tool's cache, the
    /// header cache, or (unless offline) the hub.
    pub async fn resolve(&self, reference: &ModelRef) -> Result<Resolved, SourceError> {
        if let Some(resolved) = resolve_cached(reference, &self.options)? {
            return Ok(resolved);
        }
        let label = reference.to_string();
        match reference {
            ModelRef::HuggingFace(repo) => self.repo(Hub::HuggingFace, repo, &label).await,
            ModelRef::ModelScope(repo) => self.repo(Hub::ModelScope, repo, &label).await,
            ModelRef::Ollama(model) => self.ollama(model, &label).await,
            ModelRef::Url { url } => self.url(url, &label).await,
            ModelRef::Local { .. } => unreachable!("resolve_cached reads local paths"),
        }
    }

    async fn repo(&self, hub: Hub, repo: &RepoRef, label: &str) -> Result<Resolved, SourceError> {
        let endpoint = self.options.hub_endpoint(hub);
        let revision = repo.revision.as_deref().unwrap_or(hub.default_revision());
        let target = Target::new(label, None);
        let listing = hub::list(hub, &self.http, endpoint, &repo.repo, revision, &target).await?;
        let (cache, _scratch) = cache_or_scratch(repo_cache(hub, repo, &self.options), |root| {
            HeaderCache::new(root).repo(hub.scheme(), endpoint.host(), &repo.repo)
        })?;
        cache.write_ref(revision, &listing.commit)?;
        cache.write_listing(&listing.commit, &listing)?;
        let selection = select_in(&listing, &repo.file, label)?;
        let needed = needed_files(&listing, &selection);
        let files = |path: &str| RemoteFile {
            url: hub.file_url(&endpoint.url, &repo.repo, &listing.commit, path),
            token: endpoint.token().map(Into::into),
            size: 0,
        };
        self.fetch_all(&cache, &listing, needed, label, files)
            .await?;
        let facts = facts_from_files(
            &cache.files_dir(&listing.commit),
            &listing,
            &selection,
            hub_source(hub, repo, &listing.commit, &selection),
            label,
        )?;
        Ok(Resolved {
            facts,
            origin: Origin::Network,
            remote: Some(remote_model(hub, repo, &self.options, &listing, &selection)),
        })
    }

    async fn ollama(&self, model: &OllamaRef, label: &str) -> Result<Resolved, SourceError> {
        let registry = ollama_registry(model, &self.options);
        // The configured registry's token goes to that registry only.
        let token = match model.host {
            None => self.options.ollama.token(),
            Some(_) => None,
        };
        let target = Target::new(label, None);
        let (layers, digest) =
            registry::manifest(&self.http, &registry, model, token, &target).await?;
        let (listing, selection) = ollama_listing(&layers, &digest);
        let (cache, _scratch) = cache_or_scratch(ollama_cache(model, &self.options), |root| {
            HeaderCache::new(root).repo("ollama", "scratch", &model.name)
        })?;
        cache.write_ref(&model.tag, &digest)?;
        cache.write_listing(&digest, &listing)?;
        let needed = needed_files(&listing, &selection);
        let remote = |path: &str| RemoteFile {
            url: registry::blob_url(&registry, &model.name, path),
            token: token.map(Into::into),
            size: 0,
        };
        self.fetch_all(&cache, &listing, needed, label, remote)
            .await?;
        let mut resolved =
            cached_resolution(&cache, &listing, &selection, ollama_source(model), label)?;
        resolved.origin = Origin::Network;
        resolved.remote = Some(ollama_remote(model, &self.options, &listing));
        Ok(resolved)
    }

    async fn url(&self, url: &str, label: &str) -> Result<Resolved, SourceError> {
        let shards = registry::url_shards(url);
        let mut tasks = JoinSet::new();
        for (index, (shard_url, _)) in shards.iter().enumerate() {
            let (http, shard_url) = (self.http.clone(), shard_url.clone());
            let target = Target::new(label, Some(&shard_url));
            tasks.spawn(async move {
                let first = registry::first_bytes(&http, &shard_url, &target).await;
                (index, first)
            });
        }
        let mut firsts = vec![None; shards.len()];
        while let Some(done) = tasks.join_next().await {
            let (index, first) =
                done.map_err(|e| SourceError::new(SourceErrorKind::Network, label, e.to_string()))?;
            firsts[index] = Some(first?);
        }
        let firsts: Vec<(Vec<u8>, u64, Option<String>)> = firsts.into_iter().flatten().collect();
        let version = registry::version_of(
            &firsts
                .iter()
                .map(|(_, size, etag)| (*size, etag.clone()))
                .collect::<Vec<_>>(),
        );
        let gguf_name = |name: &str| match name.ends_with(".gguf") {
            true => name.to_string(),
            false => format!("{name}.gguf"),
        };
        let mut listing = RepoListing {
            commit: version.clone(),
            files: shards
                .iter()
                .zip(&firsts)
                .map(|((shard_url, name), (_, size, _))| RepoFile {
                    path: gguf_name(name),
                    size: *size,
                    sha256: None,
                    url: Some(shard_url.clone()),
                })
                .collect(),
        };
        listing.sort();
        let selection = select_in(&listing, &FileChoice::Auto, label)?;
        let (cache, _scratch) = cache_or_scratch(url_cache(url, &self.options), |root| {
            HeaderCache::new(root).repo("url", "scratch", "url")
        })?;
        cache.write_ref(URL_REVISION, &version)?;
        cache.write_listing(&version, &listing)?;
        for ((shard_url, name), (prefix, size, etag)) in shards.iter().zip(firsts) {
            let path = gguf_name(name);
            if cache.file(&version, &path).is_some_and(|f| f.size == size) {
                continue;
            }
            let target = Target::new(label, Some(&path));
            let bytes = registry::gguf_after(&self.http, shard_url, size, prefix, &target).await?;
            cache.write_file(&version, &path, &bytes, size, etag)?;
        }
        let mut resolved = cached_resolution(&cache, &listing, &selection, url_source(url), label)?;
        resolved.origin = Origin::Network;
        resolved.remote = Some(url_remote(url, &listing));
        Ok(resolved)
    }

    /// Fetches every needed file the cache lacks, concurrently, into the cache.
    async fn fetch_all(
        &self,
        cache: &RepoCache,
        listing: &RepoListing,
        needed: Vec<Needed>,
        label: &str,
        remote: impl Fn(&str) -> RemoteFile,
    ) -> Result<(), SourceError> {
        let permits = Arc::new(Semaphore::new(CONCURRENT_FETCHES));
        let mut tasks = JoinSet::new();
        for need in needed {
            if is_cached(cache, &listing.commit, &need) {
                continue;
            }
            let file = RemoteFile {
                size: need.file.size,
                ..remote(&need.file.path)
            };
            let target = Target::new(label, Some(&need.file.path));
            let (http, permits, cache) = (self.http.clone(), permits.clone(), cache.clone());
            let commit = listing.commit.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let fetched = fetch(&http, &file, &target, need.portion).await?;
                cache.write_file(
                    &commit,
                    &need.file.path,
                    &fetched.bytes,
                    need.file.size,
                    fetched.etag,
                )
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| SourceError::new(SourceErrorKind::Network, label, e.to_string()))??;
        }
        Ok(())
    }
}

async fn fetch(
    http: &Http,
    file: &RemoteFile,
    target: &Target,
    portion: Portion,
) -> Result<Fetched, SourceError> {
    match portion {
        Portion::Whole => header::whole(http, file, target).await,
        Portion::GgufHeader => header::gguf(http, file, target).await,
        Portion::SafetensorsHeader => header::safetensors(http, file, target).await,
        Portion::Name => Ok(Fetched {
            bytes: Vec::new(),
            etag: None,
        }),
    }
}

/// The configured header cache, else one in a temporary folder removed when the returned
/// guard drops.
fn cache_or_scratch(
    cache: Option<RepoCache>,
    in_scratch: impl FnOnce(&std::path::Path) -> RepoCache,
) -> Result<(RepoCache, Option<Scratch>), SourceError> {
    match cache {
        Some(cache) => Ok((cache, None)),
        None => {
            let scratch = Scratch::new()?;
            Ok((in_scratch(&scratch.0), Some(scratch)))
        }
    }
}

/// A temporary header cache, removed when dropped (when no header cache is configured).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, SourceError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "inferkit-headers-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| {
            SourceError::new(
                SourceErrorKind::Io,
                dir.display().to_string(),
                e.to_string(),
            )
        })?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
