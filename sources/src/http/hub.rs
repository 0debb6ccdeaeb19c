//! The hubs' own endpoints: listing a repository at a revision.
//!
//! - Hugging Face: `GET {endpoint}/api/models/{repo}/revision/{revision}` (the commit),
//!   `GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true` (files with sizes and
//!   LFS SHA-256, paginated by `Link: <...>; rel="next"`).
//! - ModelScope: `GET {endpoint}/api/v1/models/{repo}/repo/files?Revision=..&Recursive=true`
//!   (files with sizes and SHA-256).
//!
//! A file's address is the hub's rule, [`Hub::file_url`].

use inferkit_formats::hub::{Hub, percent_encode as encode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::client::{Http, Request, Target};
use crate::error::{SourceError, SourceErrorKind};
use crate::header_cache::is_safe_path;
use crate::listing::{RepoFile, RepoListing};
use crate::options::HubEndpoint;

/// The commit `revision` points to and the files there.
pub(crate) async fn list(
    hub: Hub,
    http: &Http,
    endpoint: &HubEndpoint,
    repo: &str,
    revision: &str,
    target: &Target,
) -> Result<RepoListing, SourceError> {
    let mut listing = match hub {
        Hub::HuggingFace => {
            let (commit, files) = tokio::try_join!(
                hf_commit(http, endpoint, repo, revision, target),
                hf_tree(http, endpoint, repo, revision, target)
            )?;
            RepoListing { commit, files }
        }
        Hub::ModelScope => ms_files(http, endpoint, repo, revision, target).await?,
    };
    if let Some(bad) = listing.files.iter().find(|f| !is_safe_path(&f.path)) {
        return Err(target.error(
            SourceErrorKind::Network,
            format!(
                "the listing names `{}`, a path outside the repository",
                bad.path
            ),
        ));
    }
    listing.sort();
    Ok(listing)
}

/// Largest listing page or manifest accepted.
const MAX_METADATA: u64 = 64 << 20;

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &Http,
    url: &str,
    token: Option<&str>,
    target: &Target,
) -> Result<(T, reqwest::header::HeaderMap), SourceError> {
    let body = http
        .body(&Request::get(url, token), target, MAX_METADATA)
        .await?;
    let headers = body.headers;
    let value = serde_json::from_slice(&body.bytes).map_err(|e| {
        target.error(
            SourceErrorKind::Network,
            format!("unexpected answer from {}: {e}", strip_query(url)),
        )
    })?;
    Ok((value, headers))
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[derive(Deserialize)]
struct HfRevision {
    sha: String,
}

async fn hf_commit(
    http: &Http,
    endpoint: &HubEndpoint,
    repo: &str,
    revision: &str,
    target: &Target,
) -> Result<String, SourceError> {
    let url = format!(
        "{}/api/models/{repo}/revision/{}",
        endpoint.url.trim_end_matches('/'),
        encode(revision, false)
    );
    let (info, _) = get_json::<HfRevision>(http, &url, endpoint.token(), target)
        .await
        .map_err(|e| revision_error(e, revision))?;
    Ok(info.sha)
}

fn revision_error(err: SourceError, revision: &str) -> SourceError {
    match err.kind {
        SourceErrorKind::NotFound => SourceError {
            message: format!(
                "repository or revision `{revision}` not found ({})",
                err.message
            ),
            ..err
        },
        _ => err,
    }
}

#[derive(Deserialize)]
struct HfTreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    lfs: Option<HfLfs>,
}

#[derive(Deserialize)]
struct HfLfs {
    oid: String,
}

/// Most pages followed (the hub serves 1000 entries a page).
const MAX_PAGES: usize = 1000;

async fn hf_tree(
    http: &Http,
    endpoint: &HubEndpoint,
    repo: &str,
    revision: &str,
    target: &Target,
) -> Result<Vec<RepoFile>, SourceError> {
    let mut url = Some(format!(
        "{}/api/models/{repo}/tree/{}?recursive=true",
        endpoint.url.trim_end_matches('/'),
        encode(revision, false)
    ));
    let mut files = Vec::new();
    for _ in 0..MAX_PAGES {
        let Some(page) = url.take() else {
            return Ok(files);
        };
        let (entries, headers) =
            get_json::<Vec<HfTreeEntry>>(http, &page, endpoint.token(), target)
                .await
                .map_err(|e| revision_error(e, revision))?;
        files.extend(
            entries
                .into_iter()
                .filter(|e| e.kind == "file")
                .map(|e| RepoFile {
                    path: e.path,
                    size: e.size,
                    sha256: e.lfs.map(|lfs| lfs.oid),
                    url: None,
                }),
        );
        url = next_link(&headers);
    }
    Err(target.error(
        SourceErrorKind::Network,
        "the listing has more than 1000 pages",
    ))
}

/// The `rel="next"` address of a `Link` header (RFC 8288), as the hub paginates.
pub(crate) fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (url, params) = link.split_once(';')?;
            let next = params
                .split(';')
                .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
            let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
            next.then(|| url.to_string())
        })
}

#[derive(Deserialize)]
struct MsAnswer {
    #[serde(rename = "Data")]
    data: Option<MsData>,
    #[serde(rename = "Message", default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct MsData {
    #[serde(rename = "Files", default)]
    files: Vec<MsFile>,
}

#[derive(Deserialize)]
struct MsFile {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Size", default)]
    size: u64,
    #[serde(rename = "Sha256", default)]
    sha256: Option<String>,
}

async fn ms_files(
    http: &Http,
    endpoint: &HubEndpoint,
    repo: &str,
    revision: &str,
    target: &Target,
) -> Result<RepoListing, SourceError> {
    let url = format!(
        "{}/api/v1/models/{repo}/repo/files?Revision={}&Recursive=true",
        endpoint.url.trim_end_matches('/'),
        encode(revision, false)
    );
    let (answer, _) = get_json::<MsAnswer>(http, &url, endpoint.token(), target)
        .await
        .map_err(|e| revision_error(e, revision))?;
    let data = answer.data.ok_or_else(|| {
        target.error(
            SourceErrorKind::NotFound,
            format!(
                "revision `{revision}`: {}",
                answer.message.as_deref().unwrap_or("no files listed")
            ),
        )
    })?;
    let files: Vec<RepoFile> = data
        .files
        .into_iter()
        .filter(|f| f.kind == "blob")
        .map(|f| RepoFile {
            path: f.path,
            size: f.size,
            sha256: f.sha256.filter(|s| !s.is_empty()),
            url: None,
        })
        .collect();
    // ModelScope names no commit for a revision; the files' content hashes identify it.
    let mut hasher = Sha256::new();
    for f in &files {
        hasher.update(f.path.as_bytes());
        hasher.update(f.size.to_le_bytes());
        hasher.update(f.sha256.as_deref().unwrap_or("").as_bytes());
    }
    let digest = hasher.finalize();
    let commit = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    Ok(RepoListing { commit, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_and_encoding() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            "<https://hf.co/api/models/a/b/tree/main?cursor=x>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://hf.co/api/models/a/b/tree/main?cursor=x")
        );
        headers.insert(
            reqwest::header::LINK,
            "<https://x/>; rel=\"prev\"".parse().unwrap(),
        );
        assert_eq!(next_link(&headers), None);
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("Q4 K/m.gguf", true), "Q4%20K/m.gguf");
    }
}
