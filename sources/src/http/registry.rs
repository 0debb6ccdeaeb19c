//! Ollama registries and plain URLs.
//!
//! - Ollama: `GET {registry}/v2/{namespace}/{name}/manifests/{tag}` (a Docker distribution
//!   manifest) names the GGUF blob (`application/vnd.ollama.image.model`) and projector blobs;
//!   each blob's header is read by range from `{registry}/v2/{namespace}/{name}/blobs/{digest}`.
//!   The manifest's digest plays the commit's part in the header cache.
//! - A URL of a GGUF file (any shard of a split model: the siblings are found by name next
//!   to it): the first [`FIRST_READ`](super::header::FIRST_READ) bytes give the size
//!   (`Content-Range`) and ETag, which key the header cache.

use inferkit_formats::ollama;
use sha2::{Digest, Sha256};

use super::client::{Http, Request, Target};
use super::header::{self, RemoteFile};
use crate::error::{SourceError, SourceErrorKind};
use crate::local_cache::{OllamaModel, parse_ollama_manifest};
use crate::reference::OllamaRef;
use crate::resolve::ollama_blob_name;

/// Accept header of the manifest request (what the Ollama client sends).
const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest accepted.
const MAX_MANIFEST: u64 = 1 << 20;

/// The manifest of `reference` and its digest (hex).
pub(crate) async fn manifest(
    http: &Http,
    registry: &str,
    reference: &OllamaRef,
    token: Option<&str>,
    target: &Target,
) -> Result<(OllamaModel, String), SourceError> {
    let (bytes, digest) = manifest_bytes(
        http,
        registry,
        &reference.name,
        &reference.tag,
        token,
        target,
    )
    .await
    .map_err(|e| match e.kind {
        SourceErrorKind::NotFound => SourceError {
            message: format!(
                "no model `{}` with tag `{}` in the registry",
                reference.name, reference.tag
            ),
            ..e
        },
        _ => e,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let model = parse_ollama_manifest(&text).ok_or_else(|| {
        target.error(
            SourceErrorKind::NotAModel,
            "the manifest names no GGUF model layer",
        )
    })?;
    Ok((model, digest))
}

/// The bytes of the manifest of `name:tag` and their SHA-256 (hex), the manifest's digest.
pub(crate) async fn manifest_bytes(
    http: &Http,
    registry: &str,
    name: &str,
    tag: &str,
    token: Option<&str>,
    target: &Target,
) -> Result<(Vec<u8>, String), SourceError> {
    let url = ollama::manifest_url(registry, name, tag);
    let request = Request {
        headers: &[("Accept", MANIFEST_TYPE)],
        ..Request::get(&url, token)
    };
    let body = http.body(&request, target, MAX_MANIFEST).await?;
    let digest = hex(&Sha256::digest(&body.bytes));
    Ok((body.bytes, digest))
}

/// The URL of the blob a listing path names (`[mmproj-]sha256-HEX.gguf`, see
/// [`ollama_listing`](crate::resolve::ollama_listing)).
pub(crate) fn blob_url(registry: &str, name: &str, path: &str) -> String {
    ollama::blob_url(registry, name, &ollama::blob_digest(ollama_blob_name(path)))
}

/// The shards of the GGUF file at `url`: itself, or every sibling of a split model.
pub(crate) fn url_shards(url: &str) -> Vec<(String, String)> {
    let (base, name) = url.rsplit_once('/').unwrap_or(("", url));
    let (name, query) = match name.split_once('?') {
        Some((name, query)) => (name, format!("?{query}")),
        None => (name, String::new()),
    };
    match inferkit_formats::gguf::parse_split_name(std::path::Path::new(name)) {
        Some(split) => (1..=split.count)
            .map(|n| {
                let shard = split.shard_path(n).to_string_lossy().into_owned();
                (format!("{base}/{shard}{query}"), shard)
            })
            .collect(),
        None => vec![(url.to_string(), name.to_string())],
    }
}

/// Reads the first bytes of a URL: the bytes, the file's size and its ETag.
pub(crate) async fn first_bytes(
    http: &Http,
    url: &str,
    target: &Target,
) -> Result<(Vec<u8>, u64, Option<String>), SourceError> {
    let request = Request::get(url, None).range(0, Some(header::FIRST_READ));
    let body = http.body(&request, target, header::FIRST_READ).await?;
    let (bytes, headers) = (body.bytes, body.headers);
    let size = headers
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit_once('/'))
        .and_then(|(_, total)| total.parse().ok())
        .unwrap_or(bytes.len() as u64);
    let etag = headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    Ok((bytes, size, etag))
}

/// The rest of a GGUF header whose first bytes were read by [`first_bytes`].
pub(crate) async fn gguf_after(
    http: &Http,
    url: &str,
    size: u64,
    prefix: Vec<u8>,
    target: &Target,
) -> Result<Vec<u8>, SourceError> {
    let file = RemoteFile {
        url: url.into(),
        token: None,
        size,
    };
    header::gguf_from(http, &file, target, prefix).await
}

/// A version id of files from their sizes and ETags.
pub(crate) fn version_of(files: &[(u64, Option<String>)]) -> String {
    let mut hasher = Sha256::new();
    for (size, etag) in files {
        hasher.update(size.to_le_bytes());
        hasher.update(etag.as_deref().unwrap_or("-").as_bytes());
    }
    hex(&hasher.finalize())[..40].to_string()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_urls_name_every_shard() {
        let shards = url_shards("https://h/m/x-Q8_0-00002-of-00003.gguf?download=1");
        assert_eq!(shards.len(), 3);
        assert_eq!(
            shards[0].0,
            "https://h/m/x-Q8_0-00001-of-00003.gguf?download=1"
        );
        assert_eq!(shards[2].1, "x-Q8_0-00003-of-00003.gguf");
        assert_eq!(
            url_shards("https://h/a.gguf"),
            vec![("https://h/a.gguf".into(), "a.gguf".into())]
        );
    }
}
