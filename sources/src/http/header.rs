//! Reading the header of a remote file by HTTP range requests, never its data.
//!
//! - safetensors: the first [`FIRST_READ`] bytes hold the 8-byte length and, for most files,
//!   the whole JSON header; a longer header takes one more request for exactly the rest.
//! - GGUF: the header's length is known only by parsing it, and it ranges from a few KiB (a
//!   shard holding tensors only) to several MiB (a 256k-token vocabulary). A file whose
//!   header is probably short starts with one [`FIRST_READ`] request; if the parser needs
//!   more, or from the start for a first shard (which carries the tokenizer), the rest is
//!   streamed into the parser as it arrives and the connection is closed as soon as the
//!   tensor infos end. Bytes read past the header are bounded by what is in flight.
//! - small configuration files: whole.

use std::cell::Cell;
use std::io::Read;
use std::path::Path;

use inferkit_formats::gguf::{GgufHeader, ReadOptions};
use reqwest::StatusCode;
use reqwest::header::{ETAG, HeaderMap};
use tokio::sync::mpsc;

use super::client::{Http, Request, Target, describe, is_transient};
use crate::error::{SourceError, SourceErrorKind};

/// Size of the first range request.
pub const FIRST_READ: u64 = 64 * 1024;

/// Longest GGUF header streamed (GGUF strings are capped at 64 MiB by the reader; no real
/// header comes near this).
const MAX_GGUF_HEADER: u64 = 256 << 20;

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
/// padding when it arrived). `long` says the header is probably long (a first shard, with the
/// tokenizer): stream from the start instead of reading [`FIRST_READ`] bytes first.
pub(crate) async fn gguf(
    http: &Http,
    file: &RemoteFile,
    target: &Target,
    long: bool,
) -> Result<Fetched, SourceError> {
    if long {
        let bytes = stream_parse(http, file, target, Vec::new()).await?;
        return Ok(Fetched { bytes, etag: None });
    }
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
/// else the rest streamed.
pub(crate) async fn gguf_from(
    http: &Http,
    file: &RemoteFile,
    target: &Target,
    mut prefix: Vec<u8>,
) -> Result<Vec<u8>, SourceError> {
    if let Some(keep) = parse_prefix(&prefix, file.size, target)? {
        prefix.truncate(keep);
        return Ok(prefix);
    }
    stream_parse(http, file, target, prefix).await
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

/// Streams the file from the end of `prefix` into the parser (on a blocking thread) until
/// the header is complete, then closes the connection.
async fn stream_parse(
    http: &Http,
    file: &RemoteFile,
    target: &Target,
    prefix: Vec<u8>,
) -> Result<Vec<u8>, SourceError> {
    let (tx, rx) = mpsc::channel(4);
    let end = file.size.min(MAX_GGUF_HEADER);
    let pump = tokio::spawn(pump(
        http.clone(),
        file.clone(),
        target.clone(),
        prefix.len() as u64,
        end,
        tx,
    ));
    let size = file.size;
    let parse_target = target.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let mut reader = Streamed {
            bytes: prefix,
            pos: 0,
            rx,
            failure: None,
        };
        let result = read_header(&mut reader, size, &parse_target);
        (result, reader)
    })
    .await;
    pump.abort();
    let (result, reader) =
        parsed.map_err(|e| target.error(SourceErrorKind::Network, e.to_string()))?;
    if let Some(failure) = reader.failure {
        return Err(failure);
    }
    let header = result.map_err(|err| not_gguf(target, err))?;
    let mut bytes = reader.bytes;
    bytes.truncate(keep_len(&header, bytes.len()));
    Ok(bytes)
}

/// Sends the file's bytes `start..end` down `tx`, resuming from where a dropped connection
/// stopped; ends when the receiver is gone (the header is complete).
async fn pump(
    http: Http,
    file: RemoteFile,
    target: Target,
    mut start: u64,
    end: u64,
    tx: mpsc::Sender<Result<bytes::Bytes, SourceError>>,
) {
    let mut attempt = 0;
    while start < end {
        let mut request = Request::get(&file.url, file.token.as_deref()).range(start, Some(end));
        request.bounded = false;
        let mut response = match http.send(&request, &target).await {
            Ok(response) if start > 0 && response.status() == StatusCode::OK => {
                let err = target.error(
                    SourceErrorKind::Network,
                    "the server ignored the Range header (answered 200, not 206)",
                );
                let _ = tx.send(Err(err)).await;
                return;
            }
            Ok(response) => response,
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
        };
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    http.count_bytes(chunk.len());
                    start += chunk.len() as u64;
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(err) if attempt < http.options().retries && is_transient(&err) => {
                    tokio::time::sleep(http.backoff(attempt)).await;
                    attempt += 1;
                    break;
                }
                Err(err) => {
                    let err = target.error(SourceErrorKind::Network, describe(&err));
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            }
        }
    }
}

/// The bytes received so far, then whatever the pump sends; end of file when it stops.
struct Streamed {
    bytes: Vec<u8>,
    pos: usize,
    rx: mpsc::Receiver<Result<bytes::Bytes, SourceError>>,
    failure: Option<SourceError>,
}

impl Read for Streamed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.bytes.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.bytes.extend_from_slice(&chunk),
                Some(Err(err)) => {
                    let message = err.to_string();
                    self.failure = Some(err);
                    return Err(std::io::Error::other(message));
                }
                None => return Ok(0),
            }
        }
        let rest = &self.bytes[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}
