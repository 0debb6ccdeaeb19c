//! The on-disk cache of fetched headers, so a model planned once plans again with no network.
//!
//! One folder per repository (`ROOT/KIND/HOST/ORG--NAME`), holding:
//!
//! - `refs/REVISION`: the commit a branch or tag resolved to, and when (JSON);
//! - `COMMIT/listing.json`: the repository's files at that commit;
//! - `COMMIT/files/PATH`: what was fetched of each file: the header of a GGUF or safetensors
//!   file (a *header-only* file, which the readers accept as the whole file), or a whole small
//!   configuration file;
//! - `COMMIT/meta/PATH.json`: the file's size at the hub, its ETag and the bytes kept.
//!
//! Every file is written to a temporary name and renamed, the metadata last, so a reader never
//! sees half an entry; two planners racing write the same content.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{SourceError, SourceErrorKind};
use crate::listing::RepoListing;

/// The fetched-header cache rooted at one folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderCache {
    root: PathBuf,
}

/// inferkit's cache folder: `$INFERKIT_CACHE`, else `$XDG_CACHE_HOME/inferkit`, else
/// `~/.cache/inferkit`.
pub fn inferkit_cache() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("INFERKIT_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("inferkit")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/inferkit")))
}

/// The default root: `headers/` in [`inferkit_cache`].
pub fn default_root() -> Option<PathBuf> {
    Some(inferkit_cache()?.join("headers"))
}

/// What a branch or tag resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedRef {
    /// The commit (or manifest digest).
    pub commit: String,
    /// When it was resolved, in seconds since the Unix epoch.
    pub resolved_at: u64,
}

impl CachedRef {
    /// Whether it was resolved less than `max_age` ago.
    pub fn is_fresh(&self, max_age: Duration) -> bool {
        now_secs().saturating_sub(self.resolved_at) < max_age.as_secs()
    }
}

/// What is known of one cached file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFile {
    /// Its size at the hub.
    pub size: u64,
    /// The ETag the hub sent with it, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Bytes kept in the cache (the whole file when equal to `size`).
    pub kept: u64,
}

/// The cache folder of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoCache {
    dir: PathBuf,
    /// Names the repository in errors.
    label: String,
}

impl HeaderCache {
    /// A cache rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HeaderCache { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a repository: `kind` (`hf`, `ms`, `ollama`, `url`), the host serving it,
    /// and its id (`org/name`; `/` becomes `--`).
    pub fn repo(&self, kind: &str, host: &str, id: &str) -> RepoCache {
        RepoCache {
            dir: self
                .root
                .join(kind)
                .join(safe_component(host))
                .join(safe_component(&id.replace('/', "--"))),
            label: id.to_string(),
        }
    }
}

impl RepoCache {
    /// The commit `revision` resolved to last time.
    pub fn read_ref(&self, revision: &str) -> Option<CachedRef> {
        read_json(&self.dir.join("refs").join(safe_component(revision)))
    }

    /// Records that `revision` resolved to `commit` now.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), SourceError> {
        let entry = CachedRef {
            commit: commit.into(),
            resolved_at: now_secs(),
        };
        self.write_json(
            &self.dir.join("refs").join(safe_component(revision)),
            &entry,
        )
    }

    /// The listing at `commit`.
    pub fn listing(&self, commit: &str) -> Option<RepoListing> {
        read_json(&self.commit_dir(commit).join("listing.json"))
    }

    /// Stores the listing at `commit`.
    pub fn write_listing(&self, commit: &str, listing: &RepoListing) -> Result<(), SourceError> {
        self.write_json(&self.commit_dir(commit).join("listing.json"), listing)
    }

    /// The folder holding the cached files at `commit`, laid out as in the repository.
    pub fn files_dir(&self, commit: &str) -> PathBuf {
        self.commit_dir(commit).join("files")
    }

    /// What is cached of `path` at `commit`.
    pub fn file(&self, commit: &str, path: &str) -> Option<CachedFile> {
        let meta = self.meta_path(commit, path)?;
        let entry: CachedFile = read_json(&meta)?;
        let data = self.files_dir(commit).join(path);
        let kept = std::fs::metadata(data).ok()?.len();
        (kept == entry.kept).then_some(entry)
    }

    /// Stores `bytes` (the start of `path`, or all of it) with its metadata.
    pub fn write_file(
        &self,
        commit: &str,
        path: &str,
        bytes: &[u8],
        size: u64,
        etag: Option<String>,
    ) -> Result<(), SourceError> {
        let meta = self
            .meta_path(commit, path)
            .ok_or_else(|| self.error(path, "a file path that leaves the repository"))?;
        let data = self.files_dir(commit).join(path);
        self.write_atomic(&data, bytes)?;
        let entry = CachedFile {
            size,
            etag,
            kept: bytes.len() as u64,
        };
        self.write_json(&meta, &entry)
    }

    fn commit_dir(&self, commit: &str) -> PathBuf {
        self.dir.join(safe_component(commit))
    }

    fn meta_path(&self, commit: &str, path: &str) -> Option<PathBuf> {
        is_safe_path(path).then(|| {
            self.commit_dir(commit)
                .join("meta")
                .join(format!("{path}.json"))
        })
    }

    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), SourceError> {
        let text =
            serde_json::to_vec(value).map_err(|e| self.error(&path.display().to_string(), e))?;
        self.write_atomic(path, &text)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), SourceError> {
        let fail = |e: std::io::Error| self.error(&path.display().to_string(), e);
        let parent = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(fail)?;
        let tmp = parent.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .map_or_else(Default::default, |n| n.to_string_lossy()),
            std::process::id()
        ));
        std::fs::write(&tmp, bytes).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }

    fn error(&self, file: &str, err: impl std::fmt::Display) -> SourceError {
        SourceError::new(
            SourceErrorKind::Io,
            &self.label,
            format!("header cache: {err}"),
        )
        .in_file(file)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A path inside a repository that stays inside it: relative, `/`-separated, no `..`, no
/// empty or hidden-dot components.
pub fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

/// One folder name from any text (revisions like `refs/pr/1`, hosts with ports).
fn safe_component(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '%',
        })
        .collect::<String>()
        .replace("..", "%%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::RepoFile;

    #[test]
    fn entries_round_trip_and_paths_stay_inside() {
        let root = tempfile::tempdir().unwrap();
        let cache = HeaderCache::new(root.path()).repo("hf", "huggingface.co", "Qwen/Qwen2.5");
        assert!(cache.read_ref("main").is_none());
        cache.write_ref("main", "abc").unwrap();
        let r = cache.read_ref("main").unwrap();
        assert_eq!(r.commit, "abc");
        assert!(r.is_fresh(Duration::from_secs(60)));
        assert!(!r.is_fresh(Duration::ZERO));

        let listing = RepoListing {
            commit: "abc".into(),
            files: vec![RepoFile {
                path: "config.json".into(),
                size: 2,
                sha256: None,
                url: None,
            }],
        };
        cache.write_listing("abc", &listing).unwrap();
        assert_eq!(cache.listing("abc"), Some(listing));

        cache
            .write_file("abc", "sub/config.json", b"{}", 2, Some("\"e\"".into()))
            .unwrap();
        let entry = cache.file("abc", "sub/config.json").unwrap();
        assert_eq!((entry.kept, entry.etag.as_deref()), (2, Some("\"e\"")));
        assert_eq!(
            std::fs::read(cache.files_dir("abc").join("sub/config.json")).unwrap(),
            b"{}"
        );
        assert!(cache.write_file("abc", "../x", b"", 0, None).is_err());
        assert!(cache.file("abc", "../x").is_none());
        // A data file changed behind the cache's back is not trusted.
        std::fs::write(cache.files_dir("abc").join("sub/config.json"), b"{ }").unwrap();
        assert!(cache.file("abc", "sub/config.json").is_none());
    }
}
