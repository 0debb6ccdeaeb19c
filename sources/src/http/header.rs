//! Reading the header of a remote file by HTTP range requests, never its data.
//!
//! - safetensors: the first [`FIRST_READ`] bytes hold the 8-byte length and, for most files,
//!   the whole JSON header; a longer header takes one more request for exactly the rest.
//! - GGUF: the header's length is known only by parsing it, and it ranges from a few KiB (a
//!   shard holding tensors only) to several MiB (a 256k-token vocabulary). The first
//!   [`FIRST_READ`] bytes hold a short header whole; for a long one they give the counts and
//!   the start of the vocabulary, from which the header's length is estimated, and one more
//!   range request to about that length (rarely two) completes it. A streamed response
//!   would be cheaper in round trips but not in bytes: whatever the server has sent when the
//!   header ends (socket buffers, a TCP window of tensor data) is transferred for nothing.
//! - small configuration files: whole.

use std::cell::Cell;
use std::io::Read;
use std::path::Path;

use inferkit_formats::gguf::{GgufHeader, ReadOptions, estimate_header_len};
use reqwest::header::{ETAG, HeaderMap};

use super::client::{Http, Request, Target};
use crate::error::{SourceError, SourceErrorKind};

/// Size of the first range request.
pub const FIRST_READ: u64 = 64 * 1024;

/// Longest GGUF header read (GGUF strings are capped at 64 MiB by the reader; no real header
/// comes near this).
const MAX_GGUF_HEADER: u64 = 256 << 20;

/// Bytes asked for past a GGUF header's estimated end.
const RANGE_SLACK: u64 = 16 * 1024;

/// A remote file to read.
#[derive(Debug, Clone)]
pub(crate) struct RemoteFile {
    pub url: String,
    pub token: Option<String>,
    /// Its size (from the listing or manifest).
    pub size: u64,
}

/// What was fetched of a file.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
}

fn etag(headers: &HeaderMap) -> Option<String> {
    Some(headers.get(ETAG)?.to_str().ok()?.to_string())
}

/// The whole of a small file.
pub(crate) async fn whole(
    http: &Http,
    file: &RemoteFile,
    target: &Target,
) -> Result<Fetched, SourceError> {
    let request = Request::get(&file.url, file.token.as_deref());
    let body = http.body(&request, target, file.size).await?;
    Ok(Fetched {
        etag: etag(&body.headers),
        bytes: body.bytes,
    })
}

/// The 8-byte length and JSON header of a safetensors file.
pub(crate) async fn safetensors(
    http: &Http,
    file: &RemoteFile,
    target: &Target,
) -> Result<Fetched, SourceError> {
    let first = FIRST_READ.min(file.size);
    let request = Request::get(&file.url, file.token.as_deref()).range(0, Some(first));
    let body = http.body(&request, target, first).await?;
    let (url, token) = body.follow_up(&file.url, file.token.as_deref());
    let (mut bytes, headers) = (body.bytes, body.headers);
    let Some(prefix) = bytes.first_chunk::<8>() else {
        // Too short to hold a length: the reader reports it from what we have.
        return Ok(Fetched {
            etag: etag(&headers),
            bytes,
        });
    };
    let end = u64::from_le_bytes(*prefix).saturating_add(8);
    // A length beyond the file or the reader's cap is malformed: keep what we have and let
    // the reader say so, rather than fetching it.
    let plausible = end <= file.size && end - 8 <= inferkit_formats::hf::MAX_HEADER_LEN;
    let have = bytes.len() as u64;
    if plausible && end > have {
        let rest = Request::get(&url, token.as_deref()).range(have, Some(end));
        let tail = http.body(&rest, target, end - have).await?;
        bytes.extend_from_slice(&tail.bytes);
    } else if plausible {
        bytes.truncate(end as usize);
    }
    Ok(Fetched {
        etag: etag(&headers),
        bytes,
    })
}

/// The header of a GGUF file (magic to the end of the tensor infos, with the alignment
/// padding when it arrived): [`FIRST_READ`] bytes, then ranges sized by the header's length
/// as estimated from what arrived, until the parser has it all.
pub(crate) async fn gguf(
    http: &Http,
    file: &RemoteFile,
    target: &Target,
) -> Result<Fetched, SourceError> {
    let first = FIRST_READ.min(file.size);
    let request = Request::get(&file.url, file.token.as_deref()).range(0, Some(first));
    let body = http.body(&request, target, first).await?;
    let (url, token) = body.follow_up(&file.url, file.token.as_deref());
    let rest = RemoteFile {
        url,
        token,
        size: file.size,
    };
    let bytes = gguf_from(http, &rest, target, body.bytes).await?;
    Ok(Fetched {
        bytes,
        etag: etag(&body.headers),
    })
}

/// The header of a GGUF file whose first bytes are `prefix`: those bytes when they hold it,
/// else more ranges, each reaching the estimated end of the header. The estimate errs by
/// about 10% from the first 64 KiB (see [`estimate_header_len`]), so one range usually
/// finishes the header, and a second one, estimated from nearly all of it, the rest.
pub(crate) async fn gguf_from(
    http: &Http,
    file: &RemoteFile,
    target: &Target,
    mut bytes: Vec<u8>,
) -> Result<Vec<u8>, SourceError> {
    loop {
        if let Some(keep) = parse_prefix(&bytes, file.size, target)? {
            bytes.truncate(keep);
            return Ok(bytes);
        }
        let have = bytes.len() as u64;
        let limit = file.size.min(MAX_GGUF_HEADER);
        if have >= limit {
            return Err(target.error(
                SourceErrorKind::NotAModel,
                format!("no GGUF header ends within the first {limit} bytes"),
            ));
        }
        let end = next_end(&bytes).clamp(have + 1, limit);
        let request = Request::get(&file.url, file.token.as_deref()).range(have, Some(end));
        let body = http.body(&request, target, end - have).await?;
        if body.bytes.is_empty() {
            return Err(target.error(
                SourceErrorKind::Network,
                format!("the server sent no bytes from offset {have}"),
            ));
        }
        bytes.extend_from_slice(&body.bytes);
    }
}

/// Where the next range of a GGUF header should end: the estimated end plus an eighth of
/// what is still to come and [`RANGE_SLACK`] (so an estimate a little short still finishes
/// in this request), or twice what we have when the start does not allow an estimate.
fn next_end(bytes: &[u8]) -> u64 {
    let have = bytes.len() as u64;
    match estimate_header_len(bytes) {
        Some(total) if total > have => total + (total - have) / 8 + RANGE_SLACK,
        _ => have.saturating_mul(2).max(have + FIRST_READ),
    }
}

/// Parses a GGUF header from `bytes`, the start of a file of `size` bytes: `Some(length to
/// keep)` when complete, `None` when more bytes are needed.
fn parse_prefix(bytes: &[u8], size: u64, target: &Target) -> Result<Option<usize>, SourceError> {
    let ran_out = Cell::new(false);
    let reader = Prefix {
        bytes,
        pos: 0,
        ran_out: &ran_out,
    };
    match read_header(reader, size, target) {
        Ok(header) => Ok(Some(keep_len(&header, bytes.len()))),
        Err(_) if ran_out.get() && (bytes.len() as u64) < size => Ok(None),
        Err(err) => Err(not_gguf(target, err)),
    }
}

fn read_header(
    reader: impl Read,
    size: u64,
    target: &Target,
) -> inferkit_formats::Result<GgufHeader> {
    let origin = target.file.as_deref().unwrap_or(&target.reference);
    GgufHeader::read(
        reader,
        Some(size),
        Path::new(origin),
        &ReadOptions::default(),
    )
}

/// The header's bytes: up to where tensor data starts, or all that arrived if the padding
/// did not.
fn keep_len(header: &GgufHeader, have: usize) -> usize {
    usize::try_from(header.data_offset).map_or(have, |end| end.min(have))
}

fn not_gguf(target: &Target, err: inferkit_formats::Error) -> SourceError {
    target.error(
        SourceErrorKind::NotAModel,
        format!("not a readable GGUF header: {err}"),
    )
}

/// A byte slice that records when the parser asked for more than it holds.
struct Prefix<'a> {
    bytes: &'a [u8],
    pos: usize,
    ran_out: &'a Cell<bool>,
}

impl Read for Prefix<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.bytes[self.pos..];
        if rest.is_empty() && !buf.is_empty() {
            self.ran_out.set(true);
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}
