//! The HTTP client every source shares: bounded timeouts, retries with back-off on 429, 5xx
//! and dropped connections (honouring `Retry-After`), the standard proxy variables, and
//! counters of requests and bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, RANGE, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use inferkit_formats::source::url_host;

use crate::error::{SourceError, SourceErrorKind};
use crate::options::HttpOptions;

/// Requests sent and body bytes received, over the client's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStats {
    /// HTTP requests sent (retries and redirects followed count once per attempt).
    pub requests: u64,
    /// Response body bytes received.
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// Names what a request is for, in errors: the reference and the file.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub reference: String,
    pub file: Option<String>,
}

impl Target {
    pub(crate) fn new(reference: impl Into<String>, file: Option<&str>) -> Self {
        Target {
            reference: reference.into(),
            file: file.map(Into::into),
        }
    }

    pub(crate) fn error(&self, kind: SourceErrorKind, message: impl Into<String>) -> SourceError {
        let err = SourceError::new(kind, &self.reference, message);
        match &self.file {
            Some(file) => err.in_file(file),
            None => err,
        }
    }
}

/// A response body with its headers and the address that answered (after redirects).
#[derive(Debug)]
pub(crate) struct Body {
    pub bytes: Vec<u8>,
    pub headers: HeaderMap,
    pub url: String,
}

impl Body {
    /// The address and token for more requests of the same file: the address that answered,
    /// which saves the hub's redirect, and the token only if that is still the hub's host.
    pub(crate) fn follow_up(
        &self,
        requested: &str,
        token: Option<&str>,
    ) -> (String, Option<String>) {
        let same_host = url_host(requested) == url_host(&self.url);
        (
            self.url.clone(),
            token.filter(|_| same_host).map(Into::into),
        )
    }
}

/// The shared client.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    options: HttpOptions,
    counters: Arc<Counters>,
}

/// One request to send (and to send again on retry).
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub url: &'a str,
    /// A bearer token, sent to this URL's host only (the client drops it on redirects to
    /// another host).
    pub token: Option<&'a str>,
    /// `(start, end)`: bytes `start..end`, end exclusive; `None` for the whole body.
    pub range: Option<(u64, Option<u64>)>,
    pub headers: &'a [(&'a str, &'a str)],
    /// Whole-request timeout (metadata requests); `None` for streamed downloads.
    pub bounded: bool,
}

impl<'a> Request<'a> {
    pub(crate) fn get(url: &'a str, token: Option<&'a str>) -> Self {
        Request {
            url,
            token,
            range: None,
            headers: &[],
            bounded: true,
        }
    }

    pub(crate) fn range(mut self, start: u64, end: Option<u64>) -> Self {
        self.range = Some((start, end));
        self
    }
}

impl Http {
    pub(crate) fn new(options: HttpOptions) -> Result<Http, SourceError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .user_agent(concat!("inferkit/", env!("CARGO_PKG_VERSION")));
        if !options.env_proxy {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| {
            SourceError::new(SourceErrorKind::Network, "http client", e.to_string())
        })?;
        Ok(Http {
            client,
            options,
            counters: Arc::default(),
        })
    }

    pub(crate) fn stats(&self) -> TransferStats {
        TransferStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_bytes(&self, n: usize) {
        self.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Sends `request`, retrying 429, 5xx and transport failures; returns a successful
    /// response (2xx, or 206 for a range) or a typed error.
    pub(crate) async fn send(
        &self,
        request: &Request<'_>,
        target: &Target,
    ) -> Result<Response, SourceError> {
        let mut attempt = 0;
        loop {
            let outcome = self.send_once(request).await;
            let wait = match outcome {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    if !is_retryable(status) || attempt >= self.options.retries {
                        return Err(status_error(status, target, attempt));
                    }
                    let after = retry_after(response.headers());
                    if after.is_some_and(|after| after > self.options.max_wait) {
                        return Err(target.error(
                            SourceErrorKind::Network,
                            format!(
                                "HTTP {status}; the server asks to retry after {}s, longer than the {}s allowed",
                                after.unwrap_or_default().as_secs(),
                                self.options.max_wait.as_secs()
                            ),
                        )
                        .with_status(status.as_u16()));
                    }
                    after.unwrap_or_else(|| self.backoff(attempt))
                }
                Err(err) if attempt >= self.options.retries || !is_transient(&err) => {
                    return Err(target.error(
                        SourceErrorKind::Network,
                        format!("{} (after {} attempts)", describe(&err), attempt + 1),
                    ));
                }
                Err(_) => self.backoff(attempt),
            };
            tracing::debug!(url = request.url, attempt, ?wait, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, request: &Request<'_>) -> reqwest::Result<Response> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let mut builder = self.client.get(request.url);
        if let Some(token) = request.token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some((start, end)) = request.range {
            let value = match end {
                Some(end) => format!("bytes={start}-{}", end.saturating_sub(1)),
                None => format!("bytes={start}-"),
            };
            builder = builder.header(RANGE, value);
        }
        for (name, value) in request.headers {
            builder = builder.header(*name, *value);
        }
        if request.bounded {
            builder = builder.timeout(self.options.request_timeout);
        }
        builder.send().await
    }

    /// The whole body of a successful request (at most `limit` bytes), counted. When the
    /// connection drops midway, a range request continues from the first byte missing and
    /// any other request starts over.
    pub(crate) async fn body(
        &self,
        request: &Request<'_>,
        target: &Target,
        limit: u64,
    ) -> Result<Body, SourceError> {
        let mut attempt = 0;
        let mut body = Vec::new();
        let mut request = request.clone();
        loop {
            let mut response = self.send(&request, target).await?;
            let headers = response.headers().clone();
            let url = response.url().to_string();
            match (request.range, response.status()) {
                (Some((start, _)), StatusCode::OK) if start > 0 => {
                    return Err(target.error(
                        SourceErrorKind::Network,
                        "the server ignored the Range header (answered 200, not 206)",
                    ));
                }
                (Some(_), StatusCode::PARTIAL_CONTENT) => {}
                _ => body.clear(),
            }
            let read = async {
                while let Some(chunk) = response.chunk().await? {
                    self.count_bytes(chunk.len());
                    if (body.len() + chunk.len()) as u64 > limit {
                        body.extend_from_slice(
                            &chunk[..(limit as usize).saturating_sub(body.len())],
                        );
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok::<_, reqwest::Error>(())
            };
            match read.await {
                Ok(()) => {
                    return Ok(Body {
                        bytes: body,
                        headers,
                        url,
                    });
                }
                Err(err) if attempt < self.options.retries && is_transient(&err) => {
                    if let Some((start, end)) = request.range {
                        request.range = Some((start + body.len() as u64, end));
                    }
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(err) => {
                    return Err(target.error(
                        SourceErrorKind::Network,
                        format!("{} (after {} attempts)", describe(&err), attempt + 1),
                    ));
                }
            }
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.options
            .backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.options.max_wait)
    }

    pub(crate) fn options(&self) -> &HttpOptions {
        &self.options
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Timeouts, refused or dropped connections, bodies cut short.
pub(crate) fn is_transient(err: &reqwest::Error) -> bool {
    err.is_timeout() || err.is_connect() || err.is_body() || err.is_request() || err.is_decode()
}

/// The error's message with its causes, on one line (reqwest's own says only "error
/// sending request").
pub(crate) fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn status_error(status: StatusCode, target: &Target, retries: u32) -> SourceError {
    let (kind, what) = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => (
            SourceErrorKind::Unauthorized,
            "access denied: a gated or private repository needs a token with access (HF_TOKEN)",
        ),
        StatusCode::NOT_FOUND => (SourceErrorKind::NotFound, "not found"),
        StatusCode::RANGE_NOT_SATISFIABLE => (SourceErrorKind::NotFound, "range not satisfiable"),
        _ => (SourceErrorKind::Network, "unexpected answer"),
    };
    let tries = match retries {
        0 => String::new(),
        n => format!(" after {} attempts", n + 1),
    };
    target
        .error(kind, format!("{what} (HTTP {}{tries})", status.as_u16()))
        .with_status(status.as_u16())
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let past = httpdate::fmt_http_date(std::time::UNIX_EPOCH);
        headers.insert(RETRY_AFTER, past.parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let http = Http::new(HttpOptions {
            backoff: Duration::from_millis(100),
            max_wait: Duration::from_secs(1),
            ..HttpOptions::default()
        })
        .unwrap();
        assert_eq!(http.backoff(0), Duration::from_millis(100));
        assert_eq!(http.backoff(2), Duration::from_millis(400));
        assert_eq!(http.backoff(9), Duration::from_secs(1));
    }
}
